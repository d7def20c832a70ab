"""Data-parallel throughput on this machine: 2 processes x 1 thread (gloo) against 1 process x 2 threads, the
same training (Fashion-MNIST slice, tutorial net, global batch 128), interleaved, medians.

    python bench/ddp.py --data-dir ../shared/datasets [--repeats 3]

On a 2-core machine this is no speed-up (the cores are the same); the point is the path to many machines.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(data_dir: str, run_dir: Path, nproc: int, threads: int, limit: int) -> dict:
    command = [sys.executable, "-m", "cnnlab", "train", "--data", "fashion-mnist", "--data-dir", data_dir,
               "--set", f"data.limit={limit}", "--set", f"threads={threads}", "--epochs", "3", "--batch-size", "128",
               "--run-dir", str(run_dir), "--no-store", "--quiet"] + (["--nproc", str(nproc)] if nproc > 1 else [])
    subprocess.run(command, check=True, capture_output=True)
    result = json.loads((run_dir / "result.json").read_text())
    return {"train_s": result["wall_time_s"], "acc": result["test_acc"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=20000)
    args = parser.parse_args()
    import torch
    print(f"machine: {open('/proc/cpuinfo').read().split('model name')[1].split(chr(10))[0].strip(': ')}; torch {torch.__version__}")
    root = Path(tempfile.mkdtemp(prefix="cnnlab-bench-ddp-"))
    one, two = [], []
    for r in range(args.repeats):
        one.append(run(args.data_dir, root / f"one-{r}", 1, 2, args.limit))
        two.append(run(args.data_dir, root / f"two-{r}", 2, 1, args.limit))
    images = 3 * args.limit
    for label, rows in (("1 process x 2 threads", one), ("2 processes x 1 thread (DDP, gloo)", two)):
        t = statistics.median(r["train_s"] for r in rows)
        print(f"{label}: {t:.2f} s training, {images / t:.0f} img/s, test accuracy "
              f"{statistics.mean(r['acc'] for r in rows):.4f}")


if __name__ == "__main__":
    main()
