"""The ablation table of docs/recipes.md: each technique a config key, switched on alone over a small recipe
(cifar10-90 by default: 3 epochs of a narrow airbench net, ~1.5 min a run on a 2-core CPU), on seeds that no
recipe's figures use. Per variant and seed: the test accuracy with no TTA, image + mirror and 6 views (the same
weights scored three ways), the training FLOPs and the wall time; then the table, each variant's change against
the baseline paired by seed. Results go to a JSON file as they come, and a second call skips what it holds.

    python bench/ablation.py --data-dir ../shared/datasets --seeds 10,11 --out docs/results/ablation.json
    python bench/ablation.py --limit 2000 --seeds 10 --out /tmp/ablation.json   # a check, not the figure
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from cnnlab.app.recipes import budget
from cnnlab.fsutil import write_text
from cnnlab.train.engine import eval_batch_size, evaluate
from cnnlab.app.job import Job

VIEWS = {"none": False, "mirror": True, "6 views": "flip_translate"}
# name, the cnnlab keys it sets (as --set takes them), what it is
VARIANTS = [
    ("baseline", [], "the recipe as shipped"),
    ("lookahead", ["average={mode: lookahead}"], "weights pulled back to their average every 5 steps (airbench94)"),
    ("ema", ["average={mode: ema}"], "an average of the weights kept apart, taken at the end"),
    ("lower resolution first", ["resolution={size: 24, epochs: 1}"], "epoch 1 on 24x24 images: fewer FLOPs"),
    ("one more epoch, two at 24 px", ["epochs=4", "resolution={size: 24, epochs: 2}"],
     "the FLOPs of 3 epochs spent as 4, the first two on 24x24 images"),
    ("data filtering", ["select={keep: 0.5, after: 1}"],
     "after epoch 1, train on the hardest half of each batch (scored by a forward pass)"),
    ("no label smoothing", ["loss.label_smoothing=0.0"], "label smoothing 0 instead of 0.2"),
    # not here: the whitening bias's decay (`model+whiten_bias_decay=true`) is this recipe's own schedule when
    # the bias trains for all 3 of its epochs, so it would only repeat the baseline (docs/recipes.md)
]


def expand(recipe: str, keys: list[str]) -> list[str]:
    """`model+OPTION=VALUE`: the recipe's registry model with one more option (its widths kept)."""
    out = []
    for key in keys:
        if key.startswith("model+"):
            option, value = key[len("model+"):].split("=", 1)
            model = budget(recipe)["config"].model
            model = {"name": model} if isinstance(model, str) else dict(model)
            key = "model=" + json.dumps({**model, option: json.loads(value)})
        out.append(key)
    return out


def run_variant(recipe: str, overrides: list[str], seed: int, data_dir: str, limit: int | None) -> dict:
    overrides = expand(recipe, overrides)
    extra = [f"data.dir={data_dir}", f"seed={seed}"] + ([f"data.limit={limit}"] if limit else [])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        job = Job({"recipe": recipe}, overrides + extra, run_dir=f"{tmp}/run", store=False)
        job.run()
        wall = time.perf_counter() - start
    s = job.session
    views = {}
    for name, tta in VIEWS.items():
        r = evaluate(s.model, s.data.test_x, s.data.test_y, s.augmenter, s.placement,
                     eval_batch_size(s.cfg, s.placement), tta=tta)
        views[name] = r["acc"]
    return {"seed": seed, "test": views, "wall_s": wall}


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(recipe: str, results: dict, seeds: list[int]) -> str:
    base = results.get("baseline", {})
    lines = ["| technique | cnnlab key | PFLOP | test, no TTA | mirror | 6 views | change (6 views, paired) |",
             "|---|---|---|---|---|---|---|"]
    for name, keys, _ in VARIANTS:
        runs = [results.get(name, {}).get(str(s)) for s in seeds]
        runs = [r for r in runs if r]
        if not runs:
            continue
        cols = [fmt([r["test"][v] for r in runs]) for v in VIEWS]
        paired = [r["test"]["6 views"] - base[str(r["seed"])]["test"]["6 views"] for r in runs
                  if str(r["seed"]) in base]
        change = "" if name == "baseline" or not paired else f"{statistics.mean(paired) * 100:+.2f} points"
        pflop = budget(recipe, expand(recipe, keys))["pflop"]
        lines.append(f"| {name} | `{'`, `'.join(keys) or '(none)'}` | {pflop:.4f} | " + " | ".join(cols) + f" | {change} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar10-90")
    parser.add_argument("--seeds", default="10,11")
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--limit", type=int, help="train on this many images only: a check, not the figure")
    parser.add_argument("--only", help="comma-separated variant names")
    parser.add_argument("--out", default="docs/results/ablation.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    only = set(args.only.split(",")) if args.only else None
    for name, keys, what in VARIANTS:
        if only and name not in only and name != "baseline":
            continue
        for seed in seeds:
            if str(seed) in results.get(name, {}):
                continue
            r = run_variant(args.recipe, keys, seed, args.data_dir, args.limit)
            results.setdefault(name, {})[str(seed)] = r
            write_text(out, json.dumps(results, indent=1))
            print(f"{name} seed {seed}: " + ", ".join(f"{v} {a:.4f}" for v, a in r["test"].items())
                  + f"; {r['wall_s']:.0f} s", flush=True)
    print(f"\n{args.recipe}, seeds {args.seeds}" + (f", {args.limit} training images" if args.limit else ""))
    print(table(args.recipe, results, seeds))


if __name__ == "__main__":
    main()
