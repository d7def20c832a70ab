"""Starting from trained weights against starting from scratch, on a small target set (issue 35).

    python bench/finetune.py --data-dir ../shared/datasets [--seeds 1,2,3] [--pretrain-epochs 3]

Pretrains examples/small-cnn.yaml on Fashion-MNIST (the first --pretrain-limit training images), then trains on 20 images a
class of the MNIST sample (200 images, `data.subset`) three ways at the same epochs and compute: from scratch,
from the pretrained weights with every layer training (plain full fine-tuning), and fine-tuned as a schedule
(`finetune: {freeze: body, head_epochs: H}`: the head alone, then every layer at discriminative rates).
Prints the test accuracy on the MNIST sample's 1,996 test images, mean and std over the seeds, and the
machine. (CIFAR-100, the issue's source set, cannot be had offline here; Fashion-MNIST stands in for it.)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=15, help="epochs on the 200 target images")
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--pretrain-limit", type=int, default=20000, help="Fashion-MNIST training images")
    parser.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="cnnlab-finetune-"))
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}; runs in {root}")
    source = cnnlab.train({"model": MODEL, "data": {"name": "fashion-mnist", "dir": args.data_dir,
                                                    "limit": args.pretrain_limit},
                           "epochs": args.pretrain_epochs, "seed": 0}, run_dir=str(root / "pretrained"),
                          quiet=True, store=False)
    print(f"pretrained on {args.pretrain_limit:,} Fashion-MNIST images: test accuracy "
          f"{source.result['test_acc']:.4f} ({args.pretrain_epochs} epochs, {source.result['wall_time_s']:.0f} s)")
    ways = {
        "from scratch": {},
        "full fine-tune": {"weights": str(source.dir)},
        f"head {args.head_epochs} epochs, then all (discriminative)": {
            "weights": str(source.dir), "finetune": {"freeze": "body", "head_epochs": args.head_epochs}},
    }
    scores: dict[str, list[float]] = {way: [] for way in ways}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for way, extra in ways.items():
            run = cnnlab.train(target(args.data_dir, seed, args.epochs, **extra),
                               run_dir=str(root / f"{way.split()[0]}-{seed}"), quiet=True, store=False)
            scores[way].append(run.result["test_acc"])
            print(f"seed {seed}  {way:<45} test accuracy {run.result['test_acc']:.4f}  "
                  f"({run.result['wall_time_s']:.1f} s)", flush=True)
    print(f"\nMNIST sample, 20 images a class, {args.epochs} epochs (small-cnn; mean ± std over seeds {args.seeds}):")
    for way, values in scores.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {way:<45} {statistics.mean(values):.4f} ± {std:.4f}")


if __name__ == "__main__":
    main()
