"""Johnson, Alahi & Fei-Fei (2016): a feed-forward network that paints a photo in one style in one pass,
trained with the same perceptual losses as Gatys's optimisation on a folder of photos. Strided convs down,
residual blocks, upsampling convs back (nearest-neighbour + conv: no checkerboard), instance norm."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import UserError
from ..fsutil import atomic_path
from .gatys import gram, losses, targets
from .lossnet import LossNet


def _conv(cin, cout, k, stride=1):
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride),
                         nn.InstanceNorm2d(cout, affine=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3), nn.ReLU(), _conv(channels, channels, 3))

    def forward(self, x):
        return x + self.body(x)


class StyleNet(nn.Module):
    """(B, 3, H, W) in [0, 1] -> the same size, stylised. `width` scales every layer (Johnson: 32).

    `noise`: the std of a fixed pattern of smooth noise added to the input (as Ulyanov et al.'s texture networks
    take noise): a net of convolutions paints a flat patch of sky flat, whatever the style, since every pixel
    there sees the same thing; the pattern gives texture somewhere to start. Drawn from a fixed seed at the
    input's size, so a picture is painted the same every time and a batch as each of its images."""

    def __init__(self, width: int = 16, blocks: int = 5, noise: float = 0.0):
        super().__init__()
        w = width
        self.width, self.blocks, self.noise = width, blocks, noise
        self.down = nn.Sequential(_conv(3, w, 9), nn.ReLU(), _conv(w, 2 * w, 3, 2), nn.ReLU(),
                                  _conv(2 * w, 4 * w, 3, 2), nn.ReLU())
        self.res = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(blocks)])
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(4 * w, 2 * w, 3), nn.ReLU(),
                                nn.Upsample(scale_factor=2, mode="nearest"), _conv(2 * w, w, 3), nn.ReLU(),
                                nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

    def forward(self, x):
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4  # the two stride-2 steps need sides divisible by 4
        if self.noise:  # in training a fresh pattern per picture, so the net cannot learn one pattern by heart
            x = x + self.noise * _pattern(x.shape, x.dtype, x.device, fresh=self.training)
        y = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        y = self.up(self.res(self.down(y)))
        return torch.sigmoid(y[..., :h, :w])


def _pattern(shape, dtype, device, fresh: bool = False) -> torch.Tensor:
    """Smooth noise for a batch of `shape` (B, 3, h, w): drawn at 1/4 of the size and enlarged bicubically
    (blotches a few pixels wide, what cells can grow from; per-pixel noise would be painted as speckle). Not
    `fresh`: one pattern, the same for a size every time, for every picture in the batch."""
    b, c, h, w = shape
    gen = None if fresh else torch.Generator().manual_seed(0)
    small = torch.randn(b if fresh else 1, c, max(2, h // 4), max(2, w // 4), generator=gen)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).to(device, dtype)


def train_style_net(net: LossNet, style: torch.Tensor, photos: torch.Tensor, steps: int = 500, batch: int = 4,
                    size: int = 128, lr: float = 1e-3, style_weight: float = 10.0, content_weight: float = 1.0,
                    tv_weight: float = 1e-4, width: int = 16, seed: int = 0, on_step=None,
                    on_model=None, noise: float = 0.0) -> StyleNet:
    """Train on random crops of `photos` (N, 3, H, W in [0, 1]) to paint them in `style` (3, h, w).
    `on_step(step, losses)` hears every step; `on_model(step, model)` too, so a long run can keep snapshots."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    content_weight, tv_weight = content_weight * net.content_gain, tv_weight * net.tv_gain  # as Gatys weighs them
    model = StyleNet(width, noise=noise)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t = targets(net, None, style[None])
    n, _, h, w = photos.shape
    if h < size or w < size:
        photos = F.interpolate(photos, size=(max(h, size), max(w, size)), mode="bilinear", align_corners=False)
        h, w = photos.shape[-2:]
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (batch,), generator=gen)
        ys = torch.randint(0, h - size + 1, (1,), generator=gen).item()
        xs = torch.randint(0, w - size + 1, (1,), generator=gen).item()
        x = photos[idx, :, ys:ys + size, xs:xs + size]
        with torch.no_grad():
            t.content = net(x)[net.content]
        out = model(x)
        parts = losses(net, out, t, style_weight, content_weight, tv_weight)
        opt.zero_grad()
        parts["total"].backward()
        opt.step()
        if on_step is not None:
            on_step(step, {k: v.item() for k, v in parts.items()})
        if on_model is not None:
            on_model(step, model)
    return model.eval()


def save_style_net(model: StyleNet, path: str | Path, info: dict) -> Path:
    from safetensors.torch import save_file
    path = Path(path)
    meta = {"format": "cnnlab-style-net", "width": str(model.width), "blocks": str(model.blocks),
            "noise": str(model.noise), "info": json.dumps(info)}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=meta)
    return path


def load_style_net(path: str | Path) -> StyleNet:
    from safetensors import safe_open
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such style network (make one with `cnnlab style train`)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != "cnnlab-style-net":
        raise UserError(f"{path}: not a cnnlab style network (made by `cnnlab style train`)")
    model = StyleNet(int(meta["width"]), int(meta["blocks"]), float(meta.get("noise", 0)))  # nets before noise: 0
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def apply_style_net(model: StyleNet, images: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Stylise a batch (B, 3, H, W); returns the images and the seconds per image."""
    start = time.perf_counter()
    out = model(images)
    return out, (time.perf_counter() - start) / len(images)


__all__ = ["StyleNet", "train_style_net", "save_style_net", "load_style_net", "apply_style_net", "gram"]
