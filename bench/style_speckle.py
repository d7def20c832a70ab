"""Style without speckle: the page's default Gatys run (128 px, 60 Adam steps, style weight 10, seed 0, the
weight-free loss network) in four versions: one stage at full size as it first was ("before"), the first
coarse-to-fine change ("coarse"), the calmer last stage of the session after ("calmer"), and now (Adam that
leaves quiet pixels alone, the last steps averaged: cnnlab/style/lossnet.py `RandomLoss`), on the page's three
bundled styles and the gallery's two, judged by two statistics no loss network uses:

- texture movement (cnnlab/style/texture.py: Gabor Gram matrices): 0 the content's texture kept, 1 the style's;
- noise: the energy left after a 3x3 median filter (`noise_energy`), beside the style image's and the
  content image's own.

"now" is also run with seeds 1 and 2 (the random filters and the start noise), since both statistics move with
the seed by up to 0.1 and 0.3x.

    python bench/style_speckle.py        # writes docs/style/speckle.json and speckle-gallery.png
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from cnnlab.app.style import PAGE_SIZE, PAGE_STEPS, bundled_style
from cnnlab.style.gatys import stylise
from cnnlab.style.lossnet import RandomLoss
from cnnlab.style.texture import noise_energy, texture_movement
from style_gallery import content_image, mosaic_image, waves_image
from style_texture import gallery, machine, tensor

OUT = Path(__file__).resolve().parents[1] / "docs" / "style"


class RandomLossCalmer(RandomLoss):
    """The network one session before now: 96 filters a level, 3x3 to 7x7, style x0.3, plain Adam (betas 0.9,
    0.999, eps 1e-8) and the last step's picture; the calmer last stage (0.7x the step, TV x250, start noise 2)."""
    STYLE_GAIN = 0.3
    adam_betas, eps_gain, average = (0.9, 0.999), 0.0, 0.0

    def __init__(self, seed: int = 0, levels: int = 4):
        super().__init__(seed, filters=96, kernels=(3, 5, 7, 5, 3), levels=levels)


class RandomLossCoarse(RandomLossCalmer):
    """The first coarse-to-fine version: the full-size stage at the whole Adam step, TV x100, start noise 3."""
    stage_lr, tv_gain, start_noise = None, 100.0, 3.0


class RandomLossBefore(RandomLossCalmer):
    """The weight-free network as it was before the coarse-to-fine change: five levels, per-pixel start noise of
    std 3, one stage at full size at the whole Adam step, the caller's content and TV weights as given."""
    stages, stage_share, noise_scale, start_noise, stage_lr = (1,), (1.0,), 1, 3.0, None
    content_gain = tv_gain = 1.0

    def __init__(self, seed: int = 0):
        super().__init__(seed, levels=5)


NETS = {"before": RandomLossBefore, "coarse": RandomLossCoarse, "calmer": RandomLossCalmer, "now": RandomLoss}
SEEDS = (0, 1, 2)   # "now" at each; the others at seed 0 (the page's)


def styles(size: int) -> dict[str, torch.Tensor]:
    found = {name: bundled_style(name, size) for name in ("stripes", "cells", "dots")}
    found.update(waves=tensor(waves_image(size)), mosaic=tensor(mosaic_image(size)))
    return found


def page_run(net, content, style, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """The page's call (cnnlab/app/style.py `gatys`) and its two statistics."""
    start = time.perf_counter()
    image = stylise(net, content, style, PAGE_STEPS, 10.0, 1.0, 1e-3, "adam", seed).image
    return image, {"movement": texture_movement(content, image, style), "noise": noise_energy(image),
                   "seconds": time.perf_counter() - start}


def main() -> None:
    torch.manual_seed(0)
    content = tensor(content_image(PAGE_SIZE))
    rows, results = [[content] + [torch.ones_like(content)] * len(NETS)], []
    print("| style | movement: " + " / ".join(NETS) + " | noise x1e-4: " + " / ".join(NETS) +
          " | style's own | content's own | now / style's own | now, seeds " + ", ".join(map(str, SEEDS)) +
          ": movement; noise / style's own | s: " + " / ".join(NETS) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, style in styles(PAGE_SIZE).items():
        entry = {"style": name, "style_noise": noise_energy(style), "content_noise": noise_energy(content)}
        images = [style]
        for label, make in NETS.items():
            image, entry[label] = page_run(make(0), content, style)
            images.append(image)
        entry["now_seeds"] = {seed: entry["now"] if seed == 0 else page_run(RandomLoss(seed), content, style, seed)[1]
                              for seed in SEEDS}
        rows.append(images)
        results.append(entry)
        own = entry["style_noise"]
        seeds = "; ".join(f"{r['movement']:.2f}, {r['noise'] / own:.2f}x" for r in entry["now_seeds"].values())
        print(f"| {name} | " + " / ".join(f"{entry[k]['movement']:.2f}" for k in NETS) + " | " +
              " / ".join(f"{entry[k]['noise'] * 1e4:.1f}" for k in NETS) +
              f" | {own * 1e4:.2f} | {entry['content_noise'] * 1e4:.2f} | {entry['now']['noise'] / own:.2f}x | "
              f"{seeds} | " + " / ".join(f"{entry[k]['seconds']:.0f}" for k in NETS) + " |", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speckle.json").write_text(json.dumps({"size": PAGE_SIZE, "steps": PAGE_STEPS, "machine": machine(),
                                                  "command": "python bench/style_speckle.py",
                                                  "results": results}, indent=1) + "\n")
    gallery(rows, OUT / "speckle-gallery.png")


if __name__ == "__main__":
    main()
