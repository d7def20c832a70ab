"""Gatys, Ecker & Bethge (2016): optimise an image so that its feature maps match the content image's at one
layer, and their Gram matrices (which channels fire together, wherever they are) match the style image's at
several layers; a little total variation keeps it smooth. The style is the Gram matrices: that is the point
the page and docs/style-transfer.md make."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .lossnet import LossNet


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): channel co-activations, averaged over positions (so an image's size does
    not change its style)."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


@dataclass
class StyleTargets:
    content: torch.Tensor | None
    grams: dict[str, torch.Tensor]


def targets(net: LossNet, content: torch.Tensor | None, style: torch.Tensor) -> StyleTargets:
    with torch.no_grad():
        style_maps = net(style)
        content_map = net(content)[net.content] if content is not None else None
    # a multi-scale network leaves out levels too small to pool: the style layers are those the style image has
    return StyleTargets(content_map, {k: gram(style_maps[k]) for k in net.style if k in style_maps})


def losses(net: LossNet, image: torch.Tensor, t: StyleTargets, style_weight: float, content_weight: float,
           tv_weight: float) -> dict[str, torch.Tensor]:
    maps = net(image)
    names = [k for k in t.grams if k in maps]
    style = sum(net.style_loss(gram(maps[k]), t.grams[k].expand(len(image), -1, -1)) for k in names) / len(names)
    content = F.mse_loss(maps[net.content], t.content) if t.content is not None else image.new_zeros(())
    tv = total_variation(image)
    return {"style": style, "content": content, "tv": tv,
            "total": style_weight * style + content_weight * content + tv_weight * tv}


@dataclass
class Transfer:
    image: torch.Tensor                  # (3, H, W) in [0, 1]
    history: list[dict] = field(default_factory=list)


def stylise(net: LossNet, content: torch.Tensor, style: torch.Tensor, steps: int = 300, style_weight: float = 10.0,
            content_weight: float = 1.0, tv_weight: float = 1e-3, optimizer: str = "adam", seed: int = 0,
            init: str = "content", lr: float | None = None,
            on_step: Callable[[int, dict, torch.Tensor], None] | None = None) -> Transfer:
    """Optimise an image (from the content image, or noise with `init='noise'`) for `steps` steps.

    `content`, `style`: (3, H, W) in [0, 1]. `lr`: Adam's step in logit space, by default the loss network's
    own (`net.lr`). Deterministic for a seed on the CPU."""
    torch.manual_seed(seed)
    t = targets(net, content[None], style[None])
    if init == "noise":
        start = torch.rand(content[None].shape, generator=torch.Generator().manual_seed(seed))
    else:
        start = content[None].clone()
    # optimise in logit space: the image stays in (0, 1) without clamping, which L-BFGS dislikes
    param = torch.logit(start.clamp(1e-3, 1 - 1e-3))
    if init != "noise" and net.start_noise:
        # a flat patch gets the same gradient at every pixel and so stays flat: texture cannot start there
        # unless something breaks the symmetry
        param += net.start_noise * torch.randn(param.shape, generator=torch.Generator().manual_seed(seed))
    param.requires_grad_(True)
    history: list[dict] = []
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([param], lr=1, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
    elif optimizer == "adam":
        opt = torch.optim.Adam([param], lr=lr or net.lr)
    else:
        raise UserError(f"optimizer '{optimizer}' is not valid; valid: lbfgs, adam")
    for step in range(1, steps + 1):
        record = {}

        def closure():
            opt.zero_grad()
            parts = losses(net, torch.sigmoid(param), t, style_weight, content_weight, tv_weight)
            parts["total"].backward()
            record.update({k: v.item() for k, v in parts.items()})
            return parts["total"]
        opt.step(closure)
        if not np.isfinite(record["total"]):
            raise UserError(f"the loss became {record['total']} at step {step}; lower --style-weight")
        record["step"] = step
        history.append(record)
        if on_step is not None:
            on_step(step, record, torch.sigmoid(param.detach())[0])
    return Transfer(torch.sigmoid(param.detach())[0], history)


def load_image(path: str | Path, size: int | None) -> torch.Tensor:
    """An image file as (3, H, W) float in [0, 1], its longer side scaled to `size`."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size:
                scale = size / max(img.size)
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                 Image.BICUBIC)
            array = np.asarray(img, dtype=np.float32) / 255
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot decode the image ({exc}); valid: PNG, JPEG, BMP, GIF or WebP") from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    from PIL import Image
    from ..fsutil import atomic_path
    path = Path(path)
    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    return path
