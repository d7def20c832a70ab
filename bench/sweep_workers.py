"""Sweep workers on a small machine: the same 8-trial sweep (no pruning) with 1 worker and with 2 workers
sharing the cores (each gets cores/K torch threads), total wall time.

    python bench/sweep_workers.py --data-dir ../shared/datasets
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores")
    for workers in (1, 2):
        root = Path(tempfile.mkdtemp(prefix=f"cnnlab-sweep-{workers}-"))
        spec = {"name": f"w{workers}", "base": {"model": "tutorial", "epochs": 3,
                                                "data": {"name": "fashion-mnist", "dir": args.data_dir,
                                                         "limit": 6000, "val_split": 0.2}},
                "sampler": "random", "pruner": "none", "trials": args.trials,
                "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.2, "log": True}}}
        path = root / "sweep.yaml"
        path.write_text(yaml.safe_dump(spec))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cnnlab", "sweep", str(path), "--runs-root", str(root / "runs"),
                        "--workers", str(workers)], check=True, capture_output=True)
        print(f"{workers} worker(s): {args.trials} trials in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
