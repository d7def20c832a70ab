"""Which test-time augmentation a recipe should use, decided on held-out training images, never the test set:
the recipe trained on 90% of the training set per seed, then its last weights scored on the held-out 10% with
each view set in VIEWS (docs/recipes.md, "How cifar10-90 was chosen" and "Below the record").

    python bench/tta_choice.py --recipe cifar10-90 --seeds 1,2,3 --data-dir ../shared/datasets
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

from cnnlab.train.engine import eval_batch_size, evaluate
from cnnlab.app.job import Job

NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
# each a `tta` for cnnlab.train.engine: false, true (image + mirror), a name, or a table of (shift, weight)
VIEWS = {
    "no TTA": False,
    "image + mirror": True,
    "6 views": "flip_translate",
    "10 views, diagonal": tuple(((dy, dx), 1 / 8) for dy, dx in NEIGHBOURS if dy and dx),
    "10 views, axial": tuple(((dy, dx), 1 / 8) for dy, dx in NEIGHBOURS if not (dy and dx)),
    "18 views": "flip_neighbours",
    "18 views, even": tuple((shift, 1 / 9) for shift in NEIGHBOURS),
    "10 views, 1-2 px": (((-1, -1), 0.2), ((1, 1), 0.2), ((-2, -2), 0.1), ((2, 2), 0.1)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar10-90")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--val-split", type=float, default=0.1)
    parser.add_argument("--set", action="append", default=[], help="a config override, as cnnlab train --set")
    parser.add_argument("--limit", type=int, help="train on this many images only: a check, not the figure")
    args = parser.parse_args()
    scores = {name: [] for name in VIEWS}
    print(f"{args.recipe}, {args.val_split:.0%} of the training set held out; held-out accuracy:")
    print("| seed | " + " | ".join(VIEWS) + " |")
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            overrides = [f"data.dir={args.data_dir}", f"data.val_split={args.val_split}", f"seed={seed}"]
            overrides += args.set
            if args.limit:
                overrides.append(f"data.limit={args.limit}")
            job = Job({"recipe": args.recipe}, overrides, run_dir=f"{tmp}/run", store=False)
            job.run()
        s = job.session
        data = (s.model, s.data.val_x, s.data.val_y, s.augmenter, s.placement, eval_batch_size(s.cfg, s.placement))
        row = []
        for name, tta in VIEWS.items():
            scores[name].append(evaluate(*data, tta=tta, probabilities=s.trainer.probabilities)["acc"])
            row.append(f"{scores[name][-1]:.4f}")
        print(f"| {seed} | " + " | ".join(row) + " |", flush=True)
    print("| mean | " + " | ".join(f"{statistics.mean(v):.4f}" for v in scores.values()) + " |")


if __name__ == "__main__":
    main()
