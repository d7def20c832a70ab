"""How close cnnlab's engine runs to this machine's peak, for a network and a training config (issue 12's
efficiency target): the peak is a bare forward+backward+SGD step of the same network at the same batch size
with the best precision and layout the machine has (bf16 + channels_last where there is bf16), measured in
the same run; the engine's rate is a whole training run — data, augmentation, optimizer, evaluation — through
cnnlab's Job. Prints the machine, the FLOP budget per epoch, and the fraction of peak.

    python bench/fast.py --data-dir ../shared/datasets [--model bench/airbench94-net.yaml] [--batch 512]
                         [--epochs 1] [--limit 10000] [--repeats 3]

(The recipes themselves — `--recipe cifar10-fast`, 94% in <= 0.36 PFLOP — are not built yet.)
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.device import choose_placement
from cnnlab.models import build_model
from cnnlab.models.summary import summarize


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in info]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{model}; {torch.get_num_threads()} threads; {' '.join(flags)}; {gpu}; torch {torch.__version__}"


def peak_images_per_second(spec, batch: int, steps: int, repeats: int) -> tuple[float, str]:
    placement = choose_placement("auto", "auto", "auto")
    model = build_model(spec, (3, 32, 32), 10).to(placement.device)
    fmt = torch.channels_last if placement.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, 3, 32, 32, device=placement.device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=placement.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def step():
        with placement.autocast():
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if placement.device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(steps * batch / (time.perf_counter() - start))
    return statistics.median(rates), placement.describe()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--model", default=str(Path(__file__).parent / "airbench94-net.yaml"))
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=10000, help="training images (50000 for the whole set)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    macs = summarize(build_model(args.model, (3, 32, 32), 10)).macs
    flop_per_image = 6 * macs  # forward 2 FLOP per MAC, backward twice the forward
    peak, how = peak_images_per_second(args.model, args.batch, args.steps, args.repeats)
    print(f"network {Path(args.model).name}: {macs / 1e6:.1f} M MACs per image, {flop_per_image / 1e9:.3f} GFLOP "
          f"per training image, {flop_per_image * 50_000 / 1e15:.4f} PFLOP per CIFAR-10 epoch")
    print(f"peak ({how}, batch {args.batch}, median of {args.repeats}): {peak:.0f} img/s = "
          f"{peak * flop_per_image / 1e9:.0f} GFLOPS")
    with tempfile.TemporaryDirectory() as tmp:
        run = cnnlab.train({"model": args.model, "data": {"name": "cifar10", "dir": args.data_dir, "limit": args.limit},
                            "epochs": args.epochs, "batch_size": args.batch}, run_dir=Path(tmp) / "run", quiet=True,
                           store=False)
        wall = run.result["wall_time_s"]
    images = args.limit * args.epochs
    need = images / peak
    print(f"engine: {images:,} training images in {wall:.1f} s (evaluation included) -> "
          f"{images / wall:.0f} img/s; at peak they would take {need:.1f} s: wall / ideal = {wall / need:.2f} "
          f"(target <= 1.2), fraction of peak {need / wall:.2f}")


if __name__ == "__main__":
    main()
