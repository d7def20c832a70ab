"""Rescue measured on three stuck models (examples/stuck/): each trained as its author had it for the budget's
15 epochs (the starting test accuracy), then rescued with `cnnlab rescue --budget 15` for seeds 0 and 1.

    python bench/rescue_stuck.py [--data-dir ../shared/datasets] [--models keras-cifar10,...] [--seeds 0,1]

Writes docs/results/rescue/<model>.json (start, rescued, the tables) and prints a Markdown summary. Hours on a
2-core CPU: run it alone.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "rescue"
FLAGS = {"deep-unpadded": ["--change-architecture"]}  # the other two keep their layers


def cnnlab(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cnnlab {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--models", default="pytorch-tutorial,deep-unpadded,keras-cifar10")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--runs-root", default="runs-rescue-bench")
    args = ap.parse_args()
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    OUT.mkdir(parents=True, exist_ok=True)
    for model in args.models.split(","):
        # MODEL+arch: the same stuck model rescued with --change-architecture (its start is MODEL's)
        base, _, variant = model.partition("+")
        config = ROOT / "examples" / "stuck" / f"{base}.yaml"
        path = OUT / f"{model}.json"
        record = json.loads(path.read_text()) if path.exists() else {"model": model, "rescued": {}}
        if variant and "start" not in record and (OUT / f"{base}.json").exists():
            record["start"] = json.loads((OUT / f"{base}.json").read_text()).get("start")
        flags = ["--change-architecture"] if variant == "arch" else FLAGS.get(base, [])
        if "start" not in record or record["start"] is None:
            t0 = time.time()
            cnnlab("train", str(config), "--data-dir", args.data_dir, "--epochs", "15", "--seed", "0",
                   "--run-dir", f"{args.runs_root}/{model}-start", "--overwrite", "--quiet")
            result = json.loads(Path(f"{args.runs_root}/{model}-start/result.json").read_text())
            record["start"] = {"test_acc": result["test_acc"], "test_acc_tta": result.get("test_acc_tta"),
                               "seconds": round(time.time() - t0)}
            path.write_text(json.dumps(record, indent=2))
        for seed in args.seeds.split(","):
            if seed in record["rescued"]:
                continue
            t0 = time.time()
            out = cnnlab("rescue", str(config), "--data-dir", args.data_dir, "--budget", "15", "--seed", seed,
                         "--name", f"{model.replace('+', '-')}-s{seed}", "--runs-root", args.runs_root, *flags)
            folder = Path(args.runs_root) / "rescues" / f"{model.replace('+', '-')}-s{seed}"
            journal = json.loads((folder / "rescue.json").read_text())
            final = next(s for s in journal["steps"] if s["name"] == "final")
            result = json.loads((Path(final["run"]) / "result.json").read_text())
            record["rescued"][seed] = {"test_acc": final["test_acc"], "test_acc_tta": result.get("test_acc_tta"),
                                       "spent_epochs": sum(s["images"] for s in journal["steps"]) / journal["train_images"],
                                       "seconds": round(time.time() - t0), "table": (folder / "rescue.md").read_text(),
                                       "log": out.split("What each change gave")[0][-4000:]}
            record["machine"] = f"{cpu}; {platform.machine()}"
            path.write_text(json.dumps(record, indent=2))
        rescued = [r["test_acc"] for r in record["rescued"].values()]
        mean = sum(rescued) / len(rescued)
        std = (sum((a - mean) ** 2 for a in rescued) / max(1, len(rescued) - 1)) ** 0.5
        print(f"| {model} | {record['start']['test_acc']:.4f} | {mean:.4f} ± {std:.4f} ({', '.join(f'{a:.4f}' for a in rescued)}) | "
              f"{', '.join(format(r['spent_epochs'], '.2f') for r in record['rescued'].values())} |", flush=True)


if __name__ == "__main__":
    main()
