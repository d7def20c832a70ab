"""`cnnlab data info | doctor | show`: what a data set holds, and samples of it as the model sees them."""
from __future__ import annotations

from ..app import datasets
from .options import add_data_options, add_folder_options


def register(sub) -> None:
    data = sub.add_parser("data", help="inspect data sets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("info", help="counts per class, image size, channel mean/std")
    p.add_argument("name")
    p.add_argument("--val-split", type=float)
    add_data_options(p)
    add_folder_options(p)
    p.set_defaults(func=cmd_data_info)
    p = data.add_parser("doctor", help="duplicates, train/test leaks, label suspects, imbalance, odd sizes and modes")
    p.add_argument("name", help="a built-in set or an image folder")
    p.add_argument("--no-labels", action="store_true",
                   help="skip the label check (it trains a quick model 5 times: minutes on a CPU)")
    p.add_argument("--folds", type=int, default=5, help="folds of the label check's out-of-fold model")
    p.add_argument("--epochs", type=int, help="epochs of each fold's quick model (default: by the set's size)")
    p.add_argument("--json", help="also write every finding, all items listed, to this JSON file")
    add_data_options(p)
    p.set_defaults(func=cmd_data_doctor)
    p = data.add_parser("show", help="write a PNG grid of samples with labels")
    p.add_argument("name")
    p.add_argument("--augment", help="a config file (its augment section) or auto / none: show augmented samples")
    p.add_argument("--out", help="PNG path (default NAME-samples.png)")
    p.add_argument("--count", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    add_data_options(p)
    p.set_defaults(func=cmd_data_show)


def cmd_data_info(args) -> int:
    print(datasets.describe(args.name, args.data_dir, args.val_split, args.root, args.strict,
                            args.skip_empty).render())
    return 0


def cmd_data_doctor(args) -> int:
    import json
    import sys
    report = datasets.doctor(args.name, args.data_dir, args.root, labels=not args.no_labels,
                             folds=args.folds, epochs=args.epochs,
                             progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    print(report.render())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.as_dict(), f, indent=1)
        print(f"wrote {args.json}")
    return 0


def cmd_data_show(args) -> int:
    out = datasets.samples(args.name, args.out, args.augment, args.data_dir, args.root, args.count, args.seed)
    print(f"wrote {out}")
    return 0
