"""A fine-tune's speed against the machine's peak for its network (issue 35), measured as bench/fast.py measures
the recipes: each phase of the run timed as a bare training step (no data, no augmentation, no evaluation), the
run's wall time held against the time those steps alone would take.

    python bench/finetune_speed.py --data-dir ../shared/datasets [--model resnet18-imagenet] [--train 1000]

The run is the issue's: a network that starts from a past run's weights (here a one-epoch run on other CIFAR-10
images: speed does not depend on what the weights learned), fine-tuned on 1,000 CIFAR-10 training images with
`finetune: {freeze: body, head_epochs: H}` (the head alone, then every layer at discriminative rates), and
scored once on the 10,000 test images. Its two phases cost differently: while the body is frozen its layers run
without gradients (backward stops at the head), so the peak of a frozen epoch is a step with the body's
parameters set not to need gradients. The at-peak time is the sum over phases of images / that phase's peak,
plus the test images at the machine's peak for a forward pass alone, once per view the run reports (two where
it reports flip TTA beside the plain figure) (a run that scores a 10,000-image test set
after training on 1,000 spends as long scoring as training; leaving that out would make any fine-tune look
slow). Both peaks are measured before and after the run, and the run is held against their mean.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fast import machine, median_rate, release_memory  # noqa: E402 — the recipes' bench: the same machine line and hygiene

from cnnlab.device import choose_placement  # noqa: E402
from cnnlab.models import build_model  # noqa: E402
from cnnlab.train.engine import view_count  # noqa: E402
from cnnlab.train.finetune import Finetune  # noqa: E402
from cnnlab.train.session import prepare_config  # noqa: E402


def placed_model(cfg):
    placement = choose_placement(cfg.device, cfg.precision, cfg.channels_last)
    model = build_model(cfg.model, (3, 32, 32), 10).to(placement.device)
    fmt = torch.channels_last if placement.channels_last else torch.contiguous_format
    return model.to(memory_format=fmt), placement, fmt


def peak_train(cfg, frozen: bool, steps: int, repeats: int) -> float:
    """Median img/s of a bare SGD step at the run's batch size, the body frozen or not (as `Finetune` sets it)."""
    model, placement, fmt = placed_model(cfg)
    model.train()
    tune = Finetune(model, cfg.finetune, cfg.epochs)
    tune.apply(0 if frozen else tune.until)
    batch = cfg.batch_size
    x = torch.randn(batch, 3, 32, 32, device=placement.device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=placement.device)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9, nesterov=True)

    def step():
        opt.zero_grad(set_to_none=True)
        with placement.autocast():
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
    return median_rate(step, batch, steps, repeats, placement)


def peak_eval(cfg, steps: int, repeats: int) -> float:
    """Median img/s of a bare forward pass without gradients at the run's evaluation batch size."""
    model, placement, fmt = placed_model(cfg)
    model.eval()
    batch = cfg.eval_batch_size or cfg.batch_size
    x = torch.randn(batch, 3, 32, 32, device=placement.device).contiguous(memory_format=fmt)

    def step():
        with torch.no_grad(), placement.autocast():
            model(x)
    return median_rate(step, batch, steps, repeats, placement)


def seconds_at_peak(cfg, train: int, test: int, views: int, args) -> tuple[float, str]:
    """`views`: forwards per test image. A run whose training flipped reports the test accuracy plain and with
    flip TTA, two forwards an image (the plain view reused, cnnlab/train/finish.py)."""
    head = int(cfg.finetune.head_epochs) if cfg.finetune and cfg.finetune.head_epochs != "all" else 0
    frozen, full, forward = (peak_train(cfg, True, args.steps, args.repeats),
                             peak_train(cfg, False, args.steps, args.repeats), peak_eval(cfg, args.steps, args.repeats))
    seconds = train * head / frozen + train * (cfg.epochs - head) / full + test * views / forward
    return seconds, (f"peak: body frozen {frozen:.0f} img/s x {head} epochs, every layer {full:.0f} img/s x "
                     f"{cfg.epochs - head} epochs, forward only {forward:.0f} img/s x {test:,} test images x "
                     f"{views} view{'s' if views > 1 else ''}")


def run(config: dict, run_dir: Path, data_dir: str) -> float:
    """`cnnlab train` in its own process, as a user runs it; its wall time."""
    release_memory()
    path = run_dir.parent / f"{run_dir.name}.json"
    path.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "cnnlab", "train", str(path), "--data-dir", data_dir, "--run-dir", str(run_dir),
           "--no-store", "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default="resnet18-imagenet")
    parser.add_argument("--train", type=int, default=1000, help="CIFAR-10 training images fine-tuned on")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--head-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--steps", type=int, default=5, help="steps per peak timing")
    parser.add_argument("--repeats", type=int, default=5, help="peak timings, of which the median is taken")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="cnnlab-finetune-speed-"))
    source = tmp / "source"
    run({"model": {"name": args.model}, "data": {"name": "cifar10", "limit": 2000}, "epochs": 1,
         "batch_size": args.batch_size, "augment": "none"}, source, args.data_dir)
    walls, ratios = [], []
    for seed in [int(s) for s in args.seeds.split(",")]:
        config = {"model": {"name": args.model}, "weights": str(source),
                  "data": {"name": "cifar10", "limit": args.train}, "epochs": args.epochs, "seed": seed,
                  "batch_size": args.batch_size, "eval_every": args.epochs,
                  "finetune": {"freeze": "body", "head_epochs": args.head_epochs}}
        cfg = prepare_config(config)
        test = 10_000
        views = view_count(cfg.tta) if cfg.tta else 1  # what the run will report (checked below)
        before, line = seconds_at_peak(cfg, args.train, test, views, args)
        wall = run(config, tmp / f"tune-{seed}", args.data_dir)
        result = json.loads((tmp / f"tune-{seed}" / "result.json").read_text())
        if ("test_acc_tta" in result) != (views > 1):
            raise SystemExit(f"the run's test-time views ({result.get('tta', 'none')}) are not the {views} counted")
        after, _ = seconds_at_peak(cfg, args.train, test, views, args)
        at_peak = (before + after) / 2
        walls.append(wall)
        ratios.append(wall / at_peak)
        print(f"seed {seed}: {line}\n    wall {wall:.1f} s (training loop {result['wall_time_s']:.1f} s, "
              f"{args.train * args.epochs / result['wall_time_s']:.0f} img/s), at peak {at_peak:.1f} s "
              f"(before {before:.1f}, after {after:.1f}); wall / at-peak {ratios[-1]:.2f}; test accuracy "
              f"{result['test_acc']:.4f}", flush=True)
    print(f"{args.model}, {args.train:,} images, {args.epochs} epochs ({args.head_epochs} with the body frozen): "
          f"median wall {statistics.median(walls):.1f} s, wall / at-peak {statistics.median(ratios):.2f} (median; "
          f"{min(ratios):.2f} .. {max(ratios):.2f}); target <= 1.3")


if __name__ == "__main__":
    main()
