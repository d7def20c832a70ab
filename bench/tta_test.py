"""Finished runs' weights scored on the test set with each view set bench/tta_choice.py weighs: what a
test-time augmentation chosen on held-out images gives on the test set, paired on the same weights. It reports;
it chooses nothing (the choice is tta_choice.py's, on held-out images).

    python bench/fast.py ... --keep DIR --keep-weights     # runs with their weights kept
    python bench/tta_test.py DIR/cifar10-fast-seed7 DIR/cifar10-fast-seed8 --view "6 views" --view "18 views"
"""
from __future__ import annotations

import argparse
import statistics

from cnnlab.train.engine import evaluate
from cnnlab.train.session import prepare_data
from cnnlab.train.trained import TrainedModel
from tta_choice import VIEWS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories with model.safetensors")
    parser.add_argument("--view", action="append", help="a name from tta_choice.py's VIEWS, once for each (default: all)")
    parser.add_argument("--limit", type=int, help="the first N test images only: a check, not the figure")
    args = parser.parse_args()
    names = args.view or list(VIEWS)
    unknown = [n for n in names if n not in VIEWS]
    if unknown:
        parser.error(f"--view: {', '.join(unknown)} not among: {'; '.join(VIEWS)}")
    views = {name: VIEWS[name] for name in names}
    scores = {name: [] for name in views}
    print("test accuracy, the same weights under each view set:")
    print("| run | " + " | ".join(views) + " |")
    for run_dir in args.runs:
        trained = TrainedModel.load(run_dir)
        data = prepare_data(trained.cfg)
        x, y = data.test_x[:args.limit], data.test_y[:args.limit]
        row = []
        for name, tta in views.items():
            acc = evaluate(trained.model, x, y, trained.augmenter, trained.placement, trained.batch_size, tta=tta,
                           probabilities=trained.outputs_probabilities)["acc"]
            scores[name].append(acc)
            row.append(f"{acc:.4f}")
        print(f"| {run_dir} | " + " | ".join(row) + " |", flush=True)
    print("| mean | " + " | ".join(f"{statistics.mean(v):.4f}" for v in scores.values()) + " |")


if __name__ == "__main__":
    main()
