"""Real runs pushed deliberately into each regime, and what `cnnlab doctor` says about each.

    python bench/doctor_regimes.py --data-dir ../shared/datasets [--out docs/doctor-regimes.md]

Prints a Markdown table (run, what was done to it, the doctor's regime, headline and first prescription).
Takes ~4 minutes on the 2-core CPU. Runs go to a temporary folder and are not recorded in the store.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cnnlab
from cnnlab.diagnose.doctor import diagnose
from cnnlab.diagnose.facts import facts_for_run
from cnnlab.errors import UserError

BASE = {"model": "tutorial", "threads": 2}

CASES = [
    ("overfitting", "Fashion-MNIST, 2,000 images, a wide tutorial net, no augmentation, decay or smoothing, "
     "30 epochs, val split", {"data": {"name": "fashion-mnist", "val_split": 0.1, "limit": 2000},
                              "model": {"name": "tutorial", "width": 4}, "augment": "none", "epochs": 30,
                              "loss": {"label_smoothing": 0.0}, "optimizer": {"weight_decay": 0.0},
                              "schedule": {"name": "constant"}, "optimizer_lr": 0.05}),
    ("lr too high", "Fashion-MNIST, SGD lr 0.9 constant, no warm-up",
     {"data": {"name": "fashion-mnist", "limit": 20000}, "epochs": 8, "schedule": {"name": "constant"},
      "optimizer_lr": 0.9}),
    ("lr too high", "Fashion-MNIST, SGD lr 0.2 constant (no decay), 8 epochs",
     {"data": {"name": "fashion-mnist", "limit": 20000}, "epochs": 8, "schedule": {"name": "constant"},
      "optimizer_lr": 0.2}),
    ("lr too low", "Fashion-MNIST, SGD lr 1e-5 constant",
     {"data": {"name": "fashion-mnist", "limit": 20000}, "epochs": 5, "schedule": {"name": "constant"},
      "optimizer_lr": 1e-5}),
    ("diverged", "Fashion-MNIST, SGD lr 1e4",
     {"data": {"name": "fashion-mnist", "limit": 5000}, "epochs": 3, "schedule": {"name": "constant"},
      "optimizer_lr": 1e4, "loss": {"label_smoothing": 0.0}}),
    ("chance level", "CIFAR-10, a sigmoid squeezing every hidden unit and the output: a dead network",
     {"data": {"name": "cifar10", "limit": 10000}, "epochs": 4,
      "model": {"name": "dead", "layers": [{"conv": {"filters": 8, "kernel": 5, "activation": "sigmoid"}},
                                           {"maxpool": 4}, "flatten", {"dense": {"units": 10, "activation": "sigmoid"}},
                                           {"dense": {"units": 10, "activation": "sigmoid"}}]},
      "optimizer_lr": 1e-4, "schedule": {"name": "constant"}}),
    ("underfitting", "CIFAR-10, the tutorial net at a tenth of its width, 10 epochs",
     {"data": {"name": "cifar10"}, "model": {"name": "tutorial", "width": 0.1}, "epochs": 10}),
    ("still improving", "CIFAR-10, the tutorial net, only 3 epochs at a constant learning rate",
     {"data": {"name": "cifar10"}, "epochs": 3, "schedule": {"name": "constant"}, "optimizer_lr": 0.02}),
    ("good fit", "Fashion-MNIST, the tutorial net at twice its width, weight decay and label smoothing but no "
     "augmentation, 15 epochs, val split",
     {"data": {"name": "fashion-mnist", "val_split": 0.1}, "model": {"name": "tutorial", "width": 2},
      "augment": "none", "epochs": 15}),
    ("nothing (reference)", "Fashion-MNIST, the tutorial net with cnnlab's defaults (crop + flip), 10 epochs",
     {"data": {"name": "fashion-mnist"}, "epochs": 10}),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = ["| pushed towards | what was done | doctor's regime | doctor's headline | first prescription |",
             "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (target, what, case) in enumerate(CASES):
            cfg = {**BASE, **{k: v for k, v in case.items() if k != "optimizer_lr"}}
            cfg["data"] = {**case["data"], "dir": args.data_dir}
            cfg["optimizer"] = {**case.get("optimizer", {}), "lr": case.get("optimizer_lr", 0.05)}
            run_dir = Path(tmp) / f"run{i}"
            try:
                cnnlab.train(cfg, run_dir=run_dir, quiet=True, store=False)
            except UserError as exc:  # divergence ends the run with an error; its metrics are written
                print(f"({target}: {str(exc)[:90]}...)")
            run = cnnlab.Run(run_dir)
            verdict = diagnose(run.metrics, len(run.data_info["classes"]), facts_for_run(run))
            first = verdict.prescriptions[0] if verdict.prescriptions else ""
            lines.append(f"| {target} | {what} | **{verdict.regime}** | {verdict.headline} | {first} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
