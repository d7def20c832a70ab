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
    own (`net.lr`). From the content image, a loss network with `stages` is optimised coarse to fine: the
    first share of the steps at 1/4 of the size, then 1/2, then full size, each stage starting from the last
    one's picture enlarged (smoothly), so the style's large shapes form where few pixels are free to turn into
    speckle; the network's `stage_lr` may make the last stage's steps smaller, and its Adam settings
    (`adam_betas`, `eps_gain`, `average`: see `LossNet`) keep pixels the loss barely cares about from
    jittering. `on_step` hears every step with the picture at full size (the running average, where the
    network averages). Deterministic for a seed on the CPU."""
    torch.manual_seed(seed)
    if init == "noise":
        start = torch.rand(content[None].shape, generator=torch.Generator().manual_seed(seed))
        stages = [(1, steps)]
    else:  # the coarse-to-fine path, with the weights the network was tuned with on it
        start = content[None].clone()
        stages = _stages(net, steps, min(content.shape[-2:]))
        content_weight, tv_weight = content_weight * net.content_gain, tv_weight * net.tv_gain
    size = tuple(content.shape[-2:])
    history: list[dict] = []
    param = None
    for stage, (divisor, count) in enumerate(stages):
        shape = (max(1, size[0] // divisor), max(1, size[1] // divisor))
        t = targets(net, _resized(content[None], shape), _resized(style[None], shape))
        if param is None:
            # optimise in logit space: the image stays in (0, 1) without clamping, which L-BFGS dislikes
            param = torch.logit(_resized(start, shape).clamp(1e-3, 1 - 1e-3))
            if init != "noise" and net.start_noise:
                # a flat patch gets the same gradient at every pixel and so stays flat: texture cannot start
                # there unless something breaks the symmetry (smooth noise: no speckle to start from)
                param += _smooth_noise(param.shape, net.noise_scale, seed) * net.start_noise
        else:
            param = F.interpolate(param.detach(), size=shape, mode="bicubic", align_corners=False)
        param = param.detach().requires_grad_(True)
        tuned = init != "noise"  # the network's Adam settings were tuned on the coarse-to-fine path
        tuned_adam = tuned and optimizer == "adam"
        if optimizer == "lbfgs":
            opt = torch.optim.LBFGS([param], lr=1, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
        elif optimizer == "adam":
            opt = torch.optim.Adam([param], lr=(lr or net.lr) * _stage_gain(net, stage, len(stages), init),
                                   betas=net.adam_betas if tuned else (0.9, 0.999))
        else:
            raise UserError(f"optimizer '{optimizer}' is not valid; valid: lbfgs, adam")
        averaging = tuned_adam and net.average and stage == len(stages) - 1
        average = None
        for count_in_stage in range(count):
            record = {}

            def closure():
                opt.zero_grad()
                parts = losses(net, torch.sigmoid(param), t, style_weight, content_weight, tv_weight)
                parts["total"].backward()
                record.update({k: v.item() for k, v in parts.items()})
                if tuned_adam and net.eps_gain and count_in_stage == 0:
                    # Adam's eps at this stage's typical gradient: a pixel whose gradient is far smaller
                    # takes a step that much smaller, not a full-size one in a random direction (speckle)
                    opt.param_groups[0]["eps"] = net.eps_gain * param.grad.abs().median().item() + 1e-12
                return parts["total"]
            opt.step(closure)
            if averaging:  # the mean of the last steps: what they agree on stays, their jitter cancels
                average = param.detach().clone() if average is None else average.lerp_(param.detach(),
                                                                                       1 - net.average)
            step = len(history) + 1
            if not np.isfinite(record["total"]):
                raise UserError(f"the loss became {record['total']} at step {step}; lower --style-weight")
            record["step"] = step
            history.append(record)
            if on_step is not None:
                on_step(step, record, _full(param if average is None else average, size))
        if average is not None:
            param = average
    return Transfer(_full(param, size), history)


def _stages(net: LossNet, steps: int, side: int) -> list[tuple[int, int]]:
    """[(divisor, steps)] coarse to fine: `net.stages` with `net.stage_share` of the steps each (the last stage
    gets the rest), leaving out stages under 16 px."""
    chosen = [(d, share) for d, share in zip(net.stages, net.stage_share) if side // d >= 16 or d == 1]
    total = sum(share for _, share in chosen)
    counts = [int(steps * share / total) for _, share in chosen]
    counts[-1] += steps - sum(counts)
    return [(d, n) for (d, _), n in zip(chosen, counts) if n > 0 or d == 1]


def _stage_gain(net: LossNet, stage: int, count: int, init: str) -> float:
    """What the network multiplies Adam's step by in stage `stage` of `count`. `net.stage_lr` is aligned to the
    last stage (full size), since a small picture leaves out the coarsest stages."""
    if init == "noise" or not net.stage_lr:
        return 1.0
    return net.stage_lr[-count:][stage]


def _resized(x: torch.Tensor, shape: tuple) -> torch.Tensor:
    return x if tuple(x.shape[-2:]) == tuple(shape) else F.interpolate(x, size=shape, mode="area")


def _full(param: torch.Tensor, size: tuple) -> torch.Tensor:
    """The picture so far, (3, H, W) at the full size."""
    p = param.detach()
    if tuple(p.shape[-2:]) != tuple(size):
        p = F.interpolate(p, size=size, mode="bicubic", align_corners=False)
    return torch.sigmoid(p)[0]


def _smooth_noise(shape: tuple, scale: int, seed: int) -> torch.Tensor:
    """Gaussian noise drawn at 1/`scale` of the size and enlarged bicubically: blotches, not specks."""
    gen = torch.Generator().manual_seed(seed)
    h, w = shape[-2:]
    small = torch.randn(shape[0], shape[1], max(2, h // scale), max(2, w // scale), generator=gen)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False) if scale > 1 else small


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
