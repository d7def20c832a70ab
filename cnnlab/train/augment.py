"""Batched data augmentation on the training device: per-sample random parameters, no per-image Python loop.

Every function takes a float batch (B, C, H, W) in 0..1 and a torch.Generator (kept on the CPU; the few
random numbers per batch are moved to the batch's device), so a seeded run augments identically.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import UserError

PAD_MODES = {"reflect": "reflect", "constant": "constant", "edge": "replicate", "replicate": "replicate"}
FILL_MODES = {"reflect": "reflection", "constant": "zeros", "edge": "border", "replicate": "border"}
FLIPS = ("none", "horizontal", "vertical", "both", "alternating")


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * (high - low) + low).to(device)


def random_crop(x: torch.Tensor, pad: int, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Pad by `pad` pixels and cut a random HxW window per image (a gather, not a loop over images)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode=PAD_MODES[mode])
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    cols = dx[:, None] + torch.arange(w, device=x.device)
    nhwc = padded.permute(0, 2, 3, 1)
    out = nhwc[torch.arange(b, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)  # memory stays NHWC: already channels_last for the convolution


def random_flip(x: torch.Tensor, direction: str, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    if direction in ("horizontal", "both"):
        mask = (torch.rand(b, generator=gen) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mask, x.flip(3), x)
    if direction in ("vertical", "both"):
        mask = (torch.rand(b, generator=gen) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(mask, x.flip(2), x)
    return x


def alternating_flip(x: torch.Tensor, idx: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    """Flip half the images (a fixed, seeded half) in even epochs and the other half in odd ones: over two
    epochs every image is seen both ways, which random flips only manage on average (Jordan 2024)."""
    # a cheap integer hash of (image index, seed): the same images every epoch, no state to checkpoint
    h = (idx.to(torch.int64) * 2654435761 + seed * 40503 + 12345) % 4294967296
    mask = (((h >> 16) & 1) ^ (epoch % 2)).bool().to(x.device)[:, None, None, None]
    return torch.where(mask, x.flip(3), x)


def random_affine(x: torch.Tensor, degrees: float, scale: float, translate: int, fill: str,
                  gen: torch.Generator) -> torch.Tensor:
    """Rotation, zoom and shift in one resampling; `fill` decides what enters at the borders."""
    b, _, h, w = x.shape
    angle = _uniform(b, -degrees, degrees, gen, x.device) * (math.pi / 180)
    zoom = _uniform(b, 1 - scale, 1 + scale, gen, x.device)
    tx = _uniform(b, -translate, translate, gen, x.device) * (2 / w)
    ty = _uniform(b, -translate, translate, gen, x.device) * (2 / h)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=FILL_MODES[fill], align_corners=False)


def random_color(x: torch.Tensor, brightness: float, channel_shift: float, gen: torch.Generator) -> torch.Tensor:
    b, c = x.shape[:2]
    shift = torch.zeros(b, c, device=x.device)
    if brightness:
        shift += _uniform(b, -brightness, brightness, gen, x.device)[:, None]
    if channel_shift:
        shift += _uniform(b * c, -channel_shift, channel_shift, gen, x.device).view(b, c)
    return (x + shift[:, :, None, None].to(x.dtype)).clamp_(0, 1)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a size x size square (clipped at the border) centred at a random pixel of each image."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=gen).to(x.device)[:, None, None]
    cx = torch.randint(0, w, (b,), generator=gen).to(x.device)[:, None, None]
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    top, left = cy - size // 2, cx - size // 2
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return x.masked_fill(inside[:, None], 0.0)


def check(settings: dict) -> None:
    """Reject impossible settings before training starts, naming the key."""
    def bad(key, valid):
        raise UserError(f"augment.{key}: {settings[key]!r} is not valid; valid: {valid}")
    for key in ("crop", "translate", "cutout"):
        v = settings[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            bad(key, "a whole number of pixels >= 0")
    for key in ("rotate", "scale", "brightness", "channel_shift"):
        v = settings[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            bad(key, "a number >= 0")
    if settings["scale"] >= 1:
        bad("scale", "a fraction below 1 (0.1 zooms by 0.9..1.1)")
    if settings["crop_mode"] not in PAD_MODES:
        bad("crop_mode", ", ".join(PAD_MODES))
    if settings["fill"] not in FILL_MODES:
        bad("fill", ", ".join(FILL_MODES))
    if settings["flip"] not in FLIPS:
        bad("flip", ", ".join(FLIPS))


class Augmenter:
    """Turns a uint8 batch into a normalised float batch, augmenting it when training."""

    def __init__(self, settings: dict, mean, std, device: torch.device, channels_last: bool = False,
                 seed: int = 0):
        check(settings)
        self.seed = seed
        self.s = settings
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.channels_last = channels_last
        self.device = device

    @property
    def flips_horizontally(self) -> bool:
        return self.s["flip"] in ("horizontal", "both", "alternating")

    def augment(self, x: torch.Tensor, gen: torch.Generator, idx: torch.Tensor | None = None,
                epoch: int = 0) -> torch.Tensor:
        """uint8 -> augmented float in 0..1 (not yet normalised), for training and for `data show`."""
        s = self.s
        x = x.to(self.device, non_blocking=True).float().div_(255)
        if s["crop"]:
            if s["crop_mode"] == "reflect" and s["crop"] >= min(x.shape[2:]):
                raise UserError(f"augment.crop {s['crop']}: reflect padding must be smaller than the image "
                                f"({x.shape[2]}x{x.shape[3]})")
            x = random_crop(x, s["crop"], s["crop_mode"], gen)
        if s["flip"] == "alternating" and idx is not None:
            x = alternating_flip(x, idx, epoch, self.seed)
        elif s["flip"] != "none":
            x = random_flip(x, "horizontal" if s["flip"] == "alternating" else s["flip"], gen)
        if s["rotate"] or s["scale"] or s["translate"]:
            x = random_affine(x, s["rotate"], s["scale"], s["translate"], s["fill"], gen)
        if s["brightness"] or s["channel_shift"]:
            x = random_color(x, s["brightness"], s["channel_shift"], gen)
        if s["cutout"]:
            x = cutout(x, s["cutout"], gen)
        return x

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_batch(self, x: torch.Tensor, gen: torch.Generator, idx: torch.Tensor | None = None,
                    epoch: int = 0) -> torch.Tensor:
        """`idx` (the images' indices in the training set) and `epoch` drive the alternating flip."""
        return self.normalise(self.augment(x, gen, idx, epoch))

    def eval_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalise(x.to(self.device, non_blocking=True).float().div_(255))
