"""Short runs with the defaults, before and after the first-minute defaults (cnnlab/config.py: a batch size
that gives at least 1,000 steps, no augmentation under 5 epochs, an image folder's flips from its content).

    python bench/first_minute.py [--data-dir ../shared/datasets]

"Before" is the same run with the old defaults written out (batch 128, the data set's crop and flip).
Prints a Markdown table; docs/first-minute.md holds it.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from cnnlab.app.job import Job

ROOT = Path(__file__).resolve().parents[1]
OLD_AUGMENT = {"fashion-mnist": {"crop": 2, "crop_mode": "constant", "flip": "horizontal"},
               "mnist-sample": {"crop": 4, "flip": "horizontal"}}


def train(data: dict, epochs: int, extra: dict, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Job({"model": "tutorial", "data": data, "epochs": epochs, "seed": seed, **extra},
                  run_dir=Path(tmp) / "run", store=False).run()
        return {"acc": run.result["test_acc"], "batch": run.config.batch_size,
                "augment": ", ".join(f"{k} {v}" for k, v in run.config.augment.model_dump().items()
                                     if v not in (0, 0.0, "none") and k not in ("crop_mode", "fill")) or "none"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cases = [("Fashion-MNIST", "fashion-mnist", {"name": "fashion-mnist", "dir": args.data_dir}, 1),
             ("Fashion-MNIST", "fashion-mnist", {"name": "fashion-mnist", "dir": args.data_dir}, 3),
             ("MNIST sample", "mnist-sample", {"name": str(Path(args.data_dir) / "mnist-sample")}, 1),
             ("MNIST sample", "mnist-sample", {"name": str(Path(args.data_dir) / "mnist-sample")}, 3)]
    print(subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip())
    print("| data | epochs | before: batch, augmentation | before: test acc | after: batch, augmentation | "
          "after: test acc |\n|---|---|---|---|---|---|")
    for label, key, data, epochs in cases:
        before = [train(data, epochs, {"batch_size": 128, "augment": OLD_AUGMENT[key]}, s) for s in seeds]
        after = [train(data, epochs, {}, s) for s in seeds]

        def cell(rows):
            accs = [r["acc"] for r in rows]
            mean = sum(accs) / len(accs)
            std = (sum((a - mean) ** 2 for a in accs) / max(1, len(accs) - 1)) ** 0.5
            return f"{rows[0]['batch']}, {rows[0]['augment']} | {mean:.4f} ± {std:.4f}"
        print(f"| {label} | {epochs} | {cell(before)} | {cell(after)} |", flush=True)


if __name__ == "__main__":
    main()
