"""Starting from trained weights against starting from scratch, on a small target set (issue 35).

    python bench/finetune.py --data-dir ../shared/datasets [--seeds 1,2,3] [--pretrain-epochs 3]

Pretrains examples/small-cnn.yaml on Fashion-MNIST (the first --pretrain-limit training images), then trains on 20 images a
class of the MNIST sample (200 images, `data.subset`) three ways at the same epochs and compute: from scratch,
from the pretrained weights with every layer training (plain full fine-tuning), and fine-tuned as a schedule
(`finetune: {freeze: body, head_epochs: H}`: the head alone, then every layer at discriminative rates).
Prints the test accuracy on the MNIST sample's 1,996 test images, mean and std over the seeds, and the
machine. (CIFAR-100, the issue's source set, cannot be had offline here; Fashion-MNIST stands in for it.)

    python bench/finetune.py --data-dir ../shared/datasets --pair cifar-halves

The issue's own shape with the data there is: pretrained on CIFAR-10's first five classes (airplane,
automobile, bird, cat, deer: all 25,000 training images), then trained on 100 images a class of the other five
(dog, frog, horse, ship, truck: 500 images), scored on their 5,000 test images. Both halves are written once as
image folders under --out.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

import cnnlab

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "examples" / "small-cnn.yaml")


def target(data_dir: str, seed: int, epochs: int, **extra) -> dict:
    return {"model": MODEL, "data": {"name": "imagefolder", "root": str(Path(data_dir) / "mnist-sample"),
                                     "subset": 0.025}, "epochs": epochs, "seed": seed, "batch_size": 32,
            "augment": "none", **extra}


def cifar_halves(data_dir: str, out: Path) -> tuple[Path, Path]:
    """CIFAR-10 as two image folders (train/ and test/ each): classes 0-4, and classes 5-9."""
    from PIL import Image
    from cnnlab.data.readers import read_cifar10
    first, second = out / "cifar-first-five", out / "cifar-last-five"
    if (second / "test").is_dir():
        return first, second
    (tx, ty), (vx, vy), names = read_cifar10(Path(data_dir) / "cifar-10-batches-py")
    for split, x, y in (("train", tx, ty), ("test", vx, vy)):
        for i, (image, label) in enumerate(zip(x, y)):
            folder = (first if label < 5 else second) / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:05d}.png")
    return first, second


def halves_target(root: Path, seed: int, epochs: int, **extra) -> dict:
    return {"model": MODEL, "data": {"name": "imagefolder", "root": str(root), "subset": 0.02}, "epochs": epochs,
            "seed": seed, "batch_size": 32, "eval_every": epochs, **extra}  # the 5,000 test images scored once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=15, help="epochs on the 200 target images")
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--pretrain-limit", type=int, default=20000, help="Fashion-MNIST training images")
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--pair", choices=["fashion-to-digits", "cifar-halves"], default="fashion-to-digits")
    parser.add_argument("--source", help="a pretrained run to start from (default: pretrain one now)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="cnnlab-finetune-"))
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}; runs in {root}")
    if args.pair == "cifar-halves":
        first, second = cifar_halves(args.data_dir, root)
        source_data, what = {"name": "imagefolder", "root": str(first)}, "CIFAR-10's first five classes (25,000)"
        make_target = lambda seed, epochs, **extra: halves_target(second, seed, epochs, **extra)  # noqa: E731
        goal = "CIFAR-10's last five classes, 100 images a class"
    else:
        source_data = {"name": "fashion-mnist", "dir": args.data_dir, "limit": args.pretrain_limit}
        what = f"{args.pretrain_limit:,} Fashion-MNIST images"
        make_target = lambda seed, epochs, **extra: target(args.data_dir, seed, epochs, **extra)  # noqa: E731
        goal = "MNIST sample, 20 images a class"
    source = cnnlab.Run(args.source) if args.source else cnnlab.train(
        {"model": MODEL, "data": source_data, "epochs": args.pretrain_epochs, "seed": 0},
        run_dir=str(root / "pretrained"), quiet=True, store=False)
    print(f"pretrained on {what}: test accuracy "
          f"{source.result['test_acc']:.4f} ({args.pretrain_epochs} epochs, {source.result['wall_time_s']:.0f} s)",
          flush=True)
    ways = {
        "from scratch": {},
        "full fine-tune": {"weights": str(source.dir)},
        f"head {args.head_epochs} epochs, then all (discriminative)": {
            "weights": str(source.dir), "finetune": {"freeze": "body", "head_epochs": args.head_epochs}},
    }
    scores: dict[str, list[float]] = {way: [] for way in ways}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for way, extra in ways.items():
            run = cnnlab.train(make_target(seed, args.epochs, **extra),
                               run_dir=str(root / f"{way.split()[0]}-{seed}"), quiet=True, store=False)
            scores[way].append(run.result["test_acc"])
            print(f"seed {seed}  {way:<45} test accuracy {run.result['test_acc']:.4f}  "
                  f"({run.result['wall_time_s']:.1f} s)", flush=True)
    print(f"\n{goal}, {args.epochs} epochs (small-cnn; mean ± std over seeds {args.seeds}):")
    for way, values in scores.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {way:<45} {statistics.mean(values):.4f} ± {std:.4f}")


if __name__ == "__main__":
    main()
