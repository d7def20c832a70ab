"""`cnnlab eval | predict`: a finished run evaluated again, or predicting on image files."""
from __future__ import annotations

import json

from ..app import runs


def register(sub) -> None:
    p = sub.add_parser("eval", help="re-evaluate a run's final model")
    p.add_argument("run_dir")
    p.add_argument("--data", help="another data set with the same classes and image size")
    p.add_argument("--data-dir")
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes for image files")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)


def cmd_eval(args) -> int:
    result = runs.evaluate(runs.open_run(args.run_dir), args.data, args.data_dir, args.split)
    split = result["split"]
    line = f"{args.run_dir}: {split} accuracy {result[f'{split}_acc']:.4f}  loss {result[f'{split}_loss']:.4f}  " \
           f"({result['images']:,} images)"
    if f"{split}_acc_tta" in result:
        line += f"  with {result['tta']} TTA {result[f'{split}_acc_tta']:.4f}"
    print(json.dumps(result) if args.json else line)
    return 0


def cmd_predict(args) -> int:
    results = runs.predict(runs.open_run(args.run_dir), args.images, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        print(item["file"])
        for rank, (name, p) in enumerate(item["top"], 1):
            print(f"  {rank}. {name:16s} {p:.3f}")
    return 0
