"""Training images/s of one model under each precision and memory layout, measured in the same run.

    python bench/precision.py [--model examples/keras-cifar10.yaml] [--batch 256] [--steps 12] [--repeats 3]

Prints the median of `repeats` timings per setting and the ratio to fp32 NCHW. This is how `precision: auto`
and `channels_last: auto` were chosen for the CPU (cnnlab/device.py).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnlab.device import cpu_has_bf16
from cnnlab.models import build_model


def images_per_second(model, batch, dtype, channels_last, steps):
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    x = torch.randn(batch, *model.input_shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model.num_classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up: oneDNN picks kernels on the first call
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="examples/keras-cifar10.yaml")
    parser.add_argument("--input", default="3,32,32")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fp32-only", action="store_true", help="skip bf16 (emulated and ~10x slower on AVX2 CPUs)")
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.input.split(","))
    import yaml
    from pathlib import Path
    spec = yaml.safe_load(Path(args.model).read_text()) if args.model.endswith(".yaml") else args.model
    if isinstance(spec, dict) and "model" in spec:  # a train config: its model
        spec = spec["model"]
    settings = [("fp32 NCHW", None, False), ("fp32 channels_last", None, True),
                ("bf16 NCHW", torch.bfloat16, False), ("bf16 channels_last", torch.bfloat16, True)]
    from cnnlab.models.summary import summarize
    macs = summarize(build_model(spec, shape, 10)).macs
    print(f"model {args.model}: {macs / 1e6:.1f} M MACs per image forward (~{6 * macs / 1e9:.2f} GFLOP per "
          "training image, forward + backward)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, oneDNN bf16 support: {cpu_has_bf16()}")
    if args.fp32_only:
        settings = settings[:2]
    results = {name: [] for name, _, _ in settings}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every setting alike
        for name, dtype, cl in settings:
            torch.manual_seed(0)
            model = build_model(spec, shape, 10)
            results[name].append(images_per_second(model, args.batch, dtype, cl, args.steps))
    base = statistics.median(results["fp32 NCHW"])
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:20s} {med:8.0f} img/s   x{med / base:.2f}   {med * 6 * macs / 1e9:6.1f} GFLOPS   "
              f"(runs: {', '.join(f'{v:.0f}' for v in values)})")


if __name__ == "__main__":
    main()
