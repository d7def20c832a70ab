"""Style transfer (cnnlab/style/): Gatys optimisation of one image, and fast feed-forward style networks
trained on a folder of photos and applied to new ones."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class Stylised:
    out: Path
    width: int
    height: int
    steps: int
    seconds: float
    first: dict
    last: dict
    loss_net: str


def stylise(content: str, style: str, out: str | Path, size: int = 256, steps: int = 300,
            style_weight: float = 10.0, content_weight: float = 1.0, tv_weight: float = 1e-3,
            loss_net: str = "random", optimizer: str = "adam", seed: int = 0, init: str = "content",
            save_every: int | None = None, on_step=None) -> Stylised:
    """Gatys et al.: optimise an image to keep `content`'s layout and take `style`'s textures. `on_step(step,
    losses)` hears each step; with `save_every`, the image is also written every so many steps."""
    from ..style.gatys import load_image, save_image, stylise as optimise
    from ..style.lossnet import loss_network
    content_image, style_image = load_image(content, size), load_image(style, size)
    net = loss_network(loss_net, seed)
    out = Path(out)
    start = time.perf_counter()

    def step(n, record, image):
        if on_step is not None:
            on_step(n, record)
        if save_every and n % save_every == 0:
            save_image(image, out.with_name(f"{out.stem}-{n:04d}{out.suffix}"))
    result = optimise(net, content_image, style_image, steps, style_weight, content_weight, tv_weight, optimizer,
                      seed, init=init, on_step=step)
    save_image(result.image, out)
    return Stylised(out, result.image.shape[2], result.image.shape[1], steps, time.perf_counter() - start,
                    result.history[0], result.history[-1], type(net).__name__)


def train_net(style: str, images: str, out: str | Path | None = None, size: int = 256, steps: int = 300,
              batch: int = 4, style_weight: float = 10.0, content_weight: float = 1.0, loss_net: str = "random",
              seed: int = 0, on_step=None) -> tuple[Path, int, float]:
    """A fast style network for `style`, trained on the photos in `images`: (its file, photos, seconds)."""
    import numpy as np
    import torch
    from ..data.readers import decode_image
    from ..style.fast import save_style_net, train_style_net
    from ..style.gatys import load_image
    from ..style.lossnet import loss_network
    style_image = load_image(style, size)
    folder = Path(images)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no images (png, jpg, bmp, webp) to train on")
    photos = torch.from_numpy(np.stack([decode_image(p, (size, size), False) for p in files])).float() / 255
    net = loss_network(loss_net, seed)
    start = time.perf_counter()
    model = train_style_net(net, style_image, photos, steps, batch, min(size, 128), style_weight=style_weight,
                            content_weight=content_weight, seed=seed, on_step=on_step)
    path = Path(out or f"{Path(style).stem}.safetensors")
    save_style_net(model, path, {"style": str(style), "images": len(files), "steps": steps,
                                 "loss_net": type(net).__name__})
    return path, len(files), time.perf_counter() - start


def apply_net(net_file: str, photos: list[str], out_dir: str | Path = ".", size: int = 256) -> list[dict]:
    """Each photo through a fast style network: [{path, width, height, ms}]."""
    from ..style.fast import apply_style_net, load_style_net
    from ..style.gatys import load_image, save_image
    model = load_style_net(net_file)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for photo in photos:
        image = load_image(photo, size)
        styled, seconds = apply_style_net(model, image[None])
        path = save_image(styled[0], out_dir / f"{Path(photo).stem}-{Path(net_file).stem}.png")
        done.append({"path": path, "width": image.shape[2], "height": image.shape[1], "ms": seconds * 1000})
    return done
