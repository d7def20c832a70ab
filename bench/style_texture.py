"""Does the weight-free loss network carry a style's texture, or only its palette? The page's default Gatys run
(128 px, 60 Adam steps, cnnlab/app/style.py) with the old and the new random-filter network on four procedural
style images, judged by a statistic neither network uses (cnnlab/style/texture.py: Gabor Gram matrices):
movement 0 = the content's texture statistics kept, 1 = the style's taken.

    python bench/style_texture.py            # writes docs/style/texture.{md,json} and texture-gallery.png
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn
import torch.nn.functional as F

from cnnlab.app.style import PAGE_SIZE, PAGE_STEPS
from cnnlab.style.gatys import stylise
from cnnlab.style.lossnet import LossNet, RandomLoss
from cnnlab.style.texture import texture_distance
from style_gallery import content_image, mosaic_image

OUT = Path(__file__).resolve().parents[1] / "docs" / "style"


# ------------------------------------------------------------------ the style images, made in code
def hatching_image(size: int = 256, seed: int = 2) -> Image.Image:
    """Pen cross-hatching: short dark strokes in two diagonal directions on cream paper."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (240, 232, 210))
    d = ImageDraw.Draw(img)
    for _ in range(size * 2):
        x, y = rng.uniform(-10, size + 10, 2)
        angle = rng.choice([np.pi / 4, 3 * np.pi / 4]) + rng.normal(0, 0.08)
        length = rng.uniform(0.08, 0.2) * size
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        ink = tuple(int(v) for v in rng.uniform(20, 70, 3))
        d.line([(x - dx, y - dy), (x + dx, y + dy)], fill=ink, width=max(1, size // 128))
    return img


def dots_image(size: int = 256, seed: int = 3) -> Image.Image:
    """Pointillist dots of mixed colours, scattered, touching, on a pale ground."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (235, 235, 225))
    d = ImageDraw.Draw(img)
    palette = np.array([[220, 40, 60], [30, 90, 200], [250, 190, 30], [40, 150, 80], [20, 20, 30]])
    r = size / 64
    for _ in range(int(size * size / (r * r * 9))):
        x, y = rng.uniform(0, size, 2)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in palette[rng.integers(len(palette))]))
    return img


def brush_image(size: int = 256, seed: int = 4) -> Image.Image:
    """Broad brush strokes: thick wavy bands in flowing directions, each with a darker edge."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (60, 50, 90))
    d = ImageDraw.Draw(img)
    palette = np.array([[230, 120, 40], [250, 220, 120], [70, 130, 200], [180, 60, 60], [240, 240, 220]])
    width = max(2, size // 25)
    for _ in range(size // 2):
        x, y = rng.uniform(0, size, 2)
        angle = 0.6 * np.sin(3 * y / size * np.pi + x / size) + rng.normal(0, 0.2)
        length = rng.uniform(0.15, 0.35) * size
        points = [(x + np.cos(angle) * t + 3 * np.sin(t / 9), y + np.sin(angle) * t) for t in np.linspace(0, length, 8)]
        colour = palette[rng.integers(len(palette))]
        d.line(points, fill=tuple(int(v * 0.5) for v in colour), width=width + 2, joint="curve")
        d.line(points, fill=tuple(int(v) for v in colour), width=width, joint="curve")
    return img


STYLES = {"mosaic": mosaic_image, "hatching": hatching_image, "dots": dots_image, "brush": brush_image}


# ------------------------------------------------------------------ the old network (main before this change)
class RandomLossV1(LossNet):
    """cnnlab's weight-free loss network until this change, kept here to measure against: 64 unit-norm 5x5
    random filters on the image at full, half, quarter and eighth resolution, ReLU; content read at full
    resolution, Gram matrices compared absolutely, Adam at lr 0.05."""

    def __init__(self, seed: int = 0, filters: int = 64, kernel: int = 5, scales=(1, 2, 4, 8)):
        super().__init__((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        gen = torch.Generator().manual_seed(seed)
        self.scales = scales
        self.convs = nn.ModuleList()
        for _ in scales:
            conv = nn.Conv2d(3, filters, kernel, padding=kernel // 2, padding_mode="reflect", bias=False)
            weight = torch.randn(conv.weight.shape, generator=gen)
            conv.weight.data = weight / weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            self.convs.append(conv)
        self.style = [f"scale{s}" for s in scales]
        self.content = self.style[0]
        self.requires_grad_(False).eval()

    def forward(self, x):
        x = self.prepare(x)
        out = {}
        for name, factor, conv in zip(self.style, self.scales, self.convs):
            xs = F.avg_pool2d(x, factor) if factor > 1 and min(x.shape[-2:]) >= factor * 4 else x
            out[name] = F.relu(conv(xs))
        return out


# ------------------------------------------------------------------ the measurement
def tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1).contiguous()


def page_run(net: LossNet, content: torch.Tensor, style: torch.Tensor, steps: int,
             repeats: int = 3) -> tuple[torch.Tensor, float]:
    """The page's Gatys call (cnnlab/app/style.py `gatys`): style weight 10, content 1, TV 1e-3, Adam, seed 0.
    Seconds: the fastest of `repeats` identical runs (the CPU is shared; a run is deterministic)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = stylise(net, content, style, steps, 10.0, 1.0, 1e-3, "adam", 0)
        times.append(time.perf_counter() - start)
    return result.image, min(times)


def machine() -> str:
    flags = subprocess.run("grep -o 'avx512_bf16\\|amx_bf16' /proc/cpuinfo | sort -u", shell=True,
                           capture_output=True, text=True).stdout.split()
    model = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    model = model.split(":", 1)[-1].strip() or platform.processor()
    return (f"{model}; {torch.get_num_threads()} threads; bf16 flags: {', '.join(flags) or 'none'}; "
            f"torch {torch.__version__}")


def gallery(rows: list[list[torch.Tensor]], path: Path, pad: int = 4) -> None:
    """Rows of (3, H, W) images as one PNG on white."""
    h, w = rows[0][0].shape[1:]
    sheet = np.ones((len(rows) * (h + pad) + pad, len(rows[0]) * (w + pad) + pad, 3), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            sheet[y:y + h, x:x + w] = image.clamp(0, 1).permute(1, 2, 0).numpy()
    Image.fromarray((sheet * 255).round().astype(np.uint8)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=PAGE_SIZE)
    parser.add_argument("--steps", type=int, default=PAGE_STEPS)
    parser.add_argument("--styles", nargs="*", default=list(STYLES))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    torch.manual_seed(0)
    content = tensor(content_image(args.size))
    nets = {"before": RandomLossV1(0), "after": RandomLoss(0)}
    rows, results = [[content, torch.ones_like(content), torch.ones_like(content)]], []
    print("| style | before: movement | after: movement | noisy start alone | before: s | after: s |")
    print("|---|---|---|---|---|---|")
    for name in args.styles:
        style = tensor(STYLES[name](args.size))
        entry, images = {"style": name, "d_content": texture_distance(content, style)}, [style]
        for label, net in nets.items():
            image, seconds = page_run(net, content, style, args.steps)
            d = texture_distance(image, style)
            entry[label] = {"movement": (entry["d_content"] - d) / entry["d_content"], "d_output": d,
                            "seconds": seconds}
            images.append(image)
        # the control: the new network's noisy start, not optimised at all (does noise alone look like texture?)
        start = stylise(nets["after"], content, style, 0).image
        entry["start_movement"] = (entry["d_content"] - texture_distance(start, style)) / entry["d_content"]
        rows.append(images)
        results.append(entry)
        print(f"| {name} | {entry['before']['movement']:.2f} | {entry['after']['movement']:.2f} | "
              f"{entry['start_movement']:.2f} | "
              f"{entry['before']['seconds']:.1f} | {entry['after']['seconds']:.1f} |", flush=True)
    if args.no_write:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    info = {"size": args.size, "steps": args.steps, "machine": machine(), "results": results,
            "command": "python bench/style_texture.py"}
    (OUT / "texture.json").write_text(json.dumps(info, indent=1) + "\n")
    gallery(rows, OUT / "texture-gallery.png")
    table = "\n".join(
        ["| style | movement before | movement after | after's noisy start alone | seconds before | seconds after |",
         "|---|---|---|---|---|---|"] +
        [f"| {r['style']} | {r['before']['movement']:.2f} | {r['after']['movement']:.2f} | "
         f"{r['start_movement']:.2f} | "
         f"{r['before']['seconds']:.1f} | {r['after']['seconds']:.1f} |" for r in results])
    (OUT / "texture.md").write_text(TEMPLATE.format(table=table, size=args.size, steps=args.steps,
                                                    machine=info["machine"]))


TEMPLATE = """# Texture without downloaded weights

The weight-free loss network (`RandomLoss`, cnnlab/style/lossnet.py) measured on the page's default run
({size} px, {steps} Adam steps, style weight 10, seed 0), before (main's network) and after this change.

**Texture movement** = (d(content, style) - d(output, style)) / d(content, style), where d is the relative
distance between Gram matrices of a fixed Gabor filter bank (4 orientations x wavelengths 4, 8, 16 px, even and
odd, zero-mean, on each colour channel; cnnlab/style/texture.py). Neither loss network uses these statistics.
0 = the output kept the content's texture, 1 = it has the style's.

{table}

![rows: content; then per style: style image, before, after](texture-gallery.png)

Rows after the first: the style image, main's network (before), this network (after); the first row is the
content image. "Noisy start alone": the movement of the new network's starting image (the content image with
logit-space noise, not optimised), the control that the noise by itself is not what the measure rewards.
Seconds: wall time of one run, the fastest of three (the 2-core CPU is shared with other jobs, so single runs vary
several-fold); a forward and backward pass of the loss at 128 px took 15-18 ms before and 20-21 ms after.

Command: `python bench/style_texture.py` (the numbers: texture.json).
Machine: {machine}.
"""


if __name__ == "__main__":
    main()
