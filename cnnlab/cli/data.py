"""`cnnlab data info | show`: what a data set holds, and samples of it as the model sees them."""
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


def cmd_data_show(args) -> int:
    out = datasets.samples(args.name, args.out, args.augment, args.data_dir, args.root, args.count, args.seed)
    print(f"wrote {out}")
    return 0
