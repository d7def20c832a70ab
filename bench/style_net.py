"""The fast style net cnnlab ships (cnnlab/style/nets/cells.safetensors), trained here on pictures made in code:
no downloaded photos or weights, so the file is as free as the code. Scenes like the style gallery's content
image (sky, sun, hills, houses, trees) in random colours and places, the bundled 'cells' style, the weight-free
loss network (RandomLoss), a few minutes on the CPU.

    python bench/style_net.py                 # writes cnnlab/style/nets/cells.safetensors, prints the timings
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnnlab.app.style import bundled_style
from cnnlab.style.fast import StyleNet, apply_style_net, save_style_net, train_style_net
from cnnlab.style.lossnet import RandomLoss

OUT = Path(__file__).resolve().parents[1] / "cnnlab" / "style" / "nets"


def scene(seed: int, size: int = 128) -> Image.Image:
    """A made-up landscape: a sky gradient, a sun, two or three hills, one to three houses, a few trees."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size))
    d = ImageDraw.Draw(img)
    top, bottom = rng.uniform(60, 240, 3), rng.uniform(120, 255, 3)
    for y in range(size):
        t = y / size
        d.line([(0, y), (size, y)], fill=tuple(int(v) for v in top * (1 - t) + bottom * t))
    sx, sy, r = rng.uniform(0.1, 0.9) * size, rng.uniform(0.05, 0.35) * size, rng.uniform(0.05, 0.12) * size
    d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=tuple(int(v) for v in rng.uniform(180, 255, 3)))
    xs = np.arange(size + 1)
    for k in range(rng.integers(2, 4)):
        base, amp = rng.uniform(0.5, 0.85) * size, rng.uniform(0.03, 0.12) * size
        ys = base + amp * np.sin(xs / size * 2 * np.pi * rng.uniform(0.5, 2) + rng.uniform(0, 6))
        colour = tuple(int(v) for v in rng.uniform(20, 200, 3))
        d.polygon([(0, size)] + [(int(x), int(y)) for x, y in zip(xs, ys)] + [(size, size)], fill=colour)
    for _ in range(rng.integers(1, 4)):
        w, h = rng.uniform(0.15, 0.35) * size, rng.uniform(0.12, 0.3) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0.45, 0.9) * size - h
        wall, roof = (tuple(int(v) for v in rng.uniform(60, 255, 3)) for _ in range(2))
        d.rectangle([x0, y0, x0 + w, y0 + h], fill=wall)
        d.polygon([(x0 - 0.1 * w, y0), (x0 + w / 2, y0 - 0.6 * h), (x0 + 1.1 * w, y0)], fill=roof)
        d.rectangle([x0 + 0.4 * w, y0 + 0.5 * h, x0 + 0.6 * w, y0 + h], fill=(70, 45, 30))
        d.rectangle([x0 + 0.1 * w, y0 + 0.2 * h, x0 + 0.3 * w, y0 + 0.4 * h], fill=(230, 230, 170))
    for _ in range(rng.integers(0, 4)):
        x, y, r = rng.uniform(0, size), rng.uniform(0.5, 0.95) * size, rng.uniform(0.03, 0.08) * size
        d.rectangle([x - r / 4, y, x + r / 4, y + 2 * r], fill=(90, 60, 30))
        d.ellipse([x - r, y - 1.5 * r, x + r, y + 0.5 * r], fill=tuple(int(v) for v in rng.uniform(20, 160, 3)))
    return img


def photos(count: int, size: int) -> torch.Tensor:
    arrays = [np.asarray(scene(seed, size), dtype=np.float32) / 255 for seed in range(count)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--style", default="cells")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    # Adam: 1e-3 for 120 steps ended at style loss 0.040; 5e-3 for 150 steps at 0.29 (too large a step)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("-o", "--out", default=str(OUT / "cells.safetensors"))
    args = parser.parse_args()
    torch.manual_seed(0)
    style = bundled_style(args.style, args.size)
    train = photos(args.images, args.size)
    start = time.perf_counter()

    def progress(step, parts):
        if step % 25 == 0 or step == 1:
            print(f"step {step}/{args.steps}: style {parts['style']:.4f} content {parts['content']:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    model = train_style_net(RandomLoss(0), style, train, steps=args.steps, batch=4, size=args.size, lr=args.lr,
                            on_step=progress)
    trained = time.perf_counter() - start
    path = save_style_net(model, args.out, {"style": f"bundled:{args.style}", "images": f"{args.images} scenes made "
                                            "in code (bench/style_net.py)", "steps": args.steps,
                                            "lr": args.lr, "loss_net": "random"})
    test = photos(1, 256)
    apply_style_net(model, test)  # warm
    _, seconds = apply_style_net(model, test)
    print(f"trained {args.steps} steps in {trained:.0f} s; {path} {path.stat().st_size / 1e6:.2f} MB; "
          f"one 256 px picture in {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
