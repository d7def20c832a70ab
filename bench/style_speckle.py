"""Style without speckle: the page's default Gatys run (128 px, 60 Adam steps, style weight 10, seed 0, the
weight-free loss network) in three versions: one stage at full size as it first was ("before"), the first
coarse-to-fine change ("coarse"), and now (a calmer last stage: cnnlab/style/lossnet.py `RandomLoss`), on the
page's three bundled styles and the gallery's two, judged by two statistics no loss network uses:

- texture movement (cnnlab/style/texture.py: Gabor Gram matrices): 0 the content's texture kept, 1 the style's;
- noise: the energy left after a 3x3 median filter (`noise_energy`), beside the style image's and the
  content image's own, and the style image's when drawn at 4x and shrunk (antialiased edges: a picture
  drawn on the pixel grid, like the dots, has none of its own).

    python bench/style_speckle.py        # writes docs/style/speckle.json and speckle-gallery.png
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.app.style import PAGE_SIZE, PAGE_STEPS, bundled_style
from cnnlab.style.gatys import stylise
from cnnlab.style.lossnet import RandomLoss
from cnnlab.style.texture import noise_energy, texture_movement
from style_gallery import content_image, mosaic_image, waves_image
from style_texture import gallery, machine, tensor

OUT = Path(__file__).resolve().parents[1] / "docs" / "style"


class RandomLossBefore(RandomLoss):
    """The weight-free network as it was before the coarse-to-fine change: five levels, per-pixel start noise of
    std 3, one stage at full size at the whole Adam step, the caller's content and TV weights as given."""
    stages, stage_share, noise_scale, start_noise, stage_lr = (1,), (1.0,), 1, 3.0, None
    content_gain = tv_gain = 1.0

    def __init__(self, seed: int = 0):
        super().__init__(seed, levels=5)


class RandomLossCoarse(RandomLoss):
    """The first coarse-to-fine version: the full-size stage at the whole Adam step, TV x100, start noise 3."""
    stage_lr, tv_gain, start_noise = None, 100.0, 3.0


NETS = {"before": RandomLossBefore, "coarse": RandomLossCoarse, "now": RandomLoss}


def styles(size: int) -> dict[str, torch.Tensor]:
    found = {name: bundled_style(name, size) for name in ("stripes", "cells", "dots")}
    found.update(waves=tensor(waves_image(size)), mosaic=tensor(mosaic_image(size)))
    return found


def main() -> None:
    torch.manual_seed(0)
    content = tensor(content_image(PAGE_SIZE))
    rows, results = [[content] + [torch.ones_like(content)] * len(NETS)], []
    smooth = {name: F.interpolate(style[None], size=(PAGE_SIZE, PAGE_SIZE), mode="area")[0]
              for name, style in styles(4 * PAGE_SIZE).items()}
    print("| style | movement: " + " / ".join(NETS) + " | noise x1e-4: " + " / ".join(NETS) +
          " | style's own | style's own, antialiased | content's own | now / style's own | s: " +
          " / ".join(NETS) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for name, style in styles(PAGE_SIZE).items():
        entry = {"style": name, "style_noise": noise_energy(style), "content_noise": noise_energy(content),
                 "style_noise_antialiased": noise_energy(smooth[name])}
        images = [style]
        for label, make in NETS.items():
            start = time.perf_counter()
            image = stylise(make(0), content, style, PAGE_STEPS, 10.0, 1.0, 1e-3, "adam", 0).image
            entry[label] = {"movement": texture_movement(content, image, style), "noise": noise_energy(image),
                            "seconds": time.perf_counter() - start}
            images.append(image)
        rows.append(images)
        results.append(entry)
        ratio = entry["now"]["noise"] / entry["style_noise"] if entry["style_noise"] > 1e-8 else float("inf")
        print(f"| {name} | " + " / ".join(f"{entry[k]['movement']:.2f}" for k in NETS) + " | " +
              " / ".join(f"{entry[k]['noise'] * 1e4:.1f}" for k in NETS) +
              f" | {entry['style_noise'] * 1e4:.2f} | {entry['style_noise_antialiased'] * 1e4:.2f} | "
              f"{entry['content_noise'] * 1e4:.2f} | {ratio:.2f}x | " +
              " / ".join(f"{entry[k]['seconds']:.0f}" for k in NETS) + " |", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speckle.json").write_text(json.dumps({"size": PAGE_SIZE, "steps": PAGE_STEPS, "machine": machine(),
                                                  "command": "python bench/style_speckle.py",
                                                  "results": results}, indent=1) + "\n")
    gallery(rows, OUT / "speckle-gallery.png")


if __name__ == "__main__":
    main()
