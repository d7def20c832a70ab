"""The style-transfer gallery of docs/style-transfer.md: a content image and two style images made here (no one's copyright),
each style applied with each loss network this machine has, with the time each took.

    python bench/style_gallery.py [--run RUN_DIR] [--vgg vgg19.pth] [--size 256] [--steps 200]

Writes docs/style/*.png and prints a Markdown table (its image paths relative to docs/).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnnlab.style.gatys import load_image, save_image, stylise
from cnnlab.style.lossnet import loss_network

OUT = Path(__file__).resolve().parents[1] / "docs" / "style"


def content_image(size: int = 256) -> Image.Image:
    """A landscape: sky, sun, two hills, a house with a door and a window."""
    img = Image.new("RGB", (size, size))
    d = ImageDraw.Draw(img)
    for y in range(size):
        t = y / size
        d.line([(0, y), (size, y)], fill=(int(90 + 120 * t), int(150 + 80 * t), int(235 - 20 * t)))
    s = size / 256
    d.ellipse([190 * s, 25 * s, 235 * s, 70 * s], fill=(255, 215, 80))
    xs = np.arange(size + 1)
    for base, amp, colour in ((170, 25, (70, 140, 70)), (200, 18, (40, 110, 50))):
        ys = base * s + amp * s * np.sin(xs / size * 2 * np.pi * 1.3 + base)
        d.polygon([(0, size)] + [(int(x), int(y)) for x, y in zip(xs, ys)] + [(size, size)], fill=colour)
    d.rectangle([60 * s, 130 * s, 140 * s, 205 * s], fill=(200, 80, 60))
    d.polygon([(50 * s, 132 * s), (100 * s, 85 * s), (150 * s, 132 * s)], fill=(110, 50, 40))
    d.rectangle([90 * s, 165 * s, 110 * s, 205 * s], fill=(80, 50, 30))
    d.rectangle([70 * s, 145 * s, 85 * s, 160 * s], fill=(230, 230, 160))
    return img


def waves_image(size: int = 256) -> Image.Image:
    """Swirling bands of strong colour, a little like a starry night."""
    y, x = np.mgrid[0:size, 0:size] / size
    phase = 14 * x + 4 * np.sin(7 * y + 3 * np.sin(5 * x)) + 2 * np.sin(11 * y * x)
    r = 0.5 + 0.5 * np.sin(phase)
    g = 0.5 + 0.5 * np.sin(phase + 2.1 + 3 * y)
    b = 0.6 + 0.4 * np.sin(phase * 0.5 + 4.2)
    rgb = np.stack([0.2 + 0.8 * r * b, 0.3 * g + 0.2, 0.35 + 0.65 * b], -1)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def mosaic_image(size: int = 256, cells: int = 60, seed: int = 1) -> Image.Image:
    """A mosaic of bright Voronoi tiles with dark grout."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, size, (cells, 2))
    colours = rng.choice(np.array([[230, 60, 50], [250, 200, 40], [40, 110, 220], [240, 240, 230], [30, 160, 90],
                                   [150, 60, 170]]), cells)
    y, x = np.mgrid[0:size, 0:size]
    d = np.sqrt((x[..., None] - points[:, 0]) ** 2 + (y[..., None] - points[:, 1]) ** 2)
    order = np.sort(d, -1)
    nearest = d.argmin(-1)
    rgb = colours[nearest].astype(np.float32)
    rgb[(order[..., 1] - order[..., 0]) < 2.5] = 25  # grout where two tiles meet
    return Image.fromarray(rgb.astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", help="a cnnlab run directory to use as a loss network")
    parser.add_argument("--vgg", help="a VGG-19/16 weights file (torchvision's vgg19-dcbb9e9d.pth)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in (("content", content_image), ("style-waves", waves_image), ("style-mosaic", mosaic_image)):
        make(args.size).save(OUT / f"{name}.png")
    nets = [("random filters", None)] + ([("cnnlab run", args.run)] if args.run else []) + \
        ([("VGG", args.vgg)] if args.vgg else [])
    content = load_image(OUT / "content.png", args.size)
    print(f"| loss network | style | result | time ({args.steps} Adam steps, {args.size} px) | style loss |")
    print("|---|---|---|---|---|")
    for label, spec in nets:
        net = loss_network(spec)
        for style_name in ("style-waves", "style-mosaic"):
            style = load_image(OUT / f"{style_name}.png", args.size)
            start = time.perf_counter()
            torch.manual_seed(0)
            result = stylise(net, content, style, steps=args.steps)
            seconds = time.perf_counter() - start
            tag = label.split()[0].lower().replace("cnnlab", "run")
            path = save_image(result.image, OUT / f"{tag}-{style_name}.png")
            print(f"| {label} | {style_name} | ![]({path.relative_to(OUT.parent)}) | {seconds:.0f} s | "
                  f"{result.history[0]['style']:.3g} -> {result.history[-1]['style']:.3g} |")


if __name__ == "__main__":
    main()
