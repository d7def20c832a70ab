"""Batched data augmentation on the training device: per-sample random parameters, no per-image Python loop.

Every function takes a float batch (B, C, H, W) in 0..1 and a torch.Generator (kept on the CPU; the few
random numbers per batch are moved to the batch's device), so a seeded run augments identically.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data.diskcache import note
from ..errors import UserError
from ..schema.config import AugmentConfig

PAD_MODES = {"reflect": "reflect", "constant": "constant", "edge": "replicate", "replicate": "replicate"}
FILL_MODES = {"reflect": "reflection", "constant": "zeros", "edge": "border", "replicate": "border"}


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * (high - low) + low).to(device)


def _source_index(offset: torch.Tensor, pad: int, size: int, mode: str, reverse: torch.Tensor | None):
    """For each image, the `size` source rows (or columns) of a window that starts `offset` pixels into the
    image padded by `pad`, read backwards where `reverse` (a flip); and where they fall in the padding, None
    or a mask of the positions outside the image (constant padding: those read zero)."""
    steps = torch.arange(size, device=offset.device)
    if reverse is not None:
        steps = torch.where(reverse[:, None], size - 1 - steps, steps)
    i = offset[:, None] - pad + steps  # in the unpadded image's coordinates: -pad .. size - 1 + pad
    if mode == "reflect":  # -1 -> 1, size -> size - 2: the edge pixel itself is not repeated
        i = i.abs()
        return torch.where(i > size - 1, 2 * (size - 1) - i, i), None
    outside = (i < 0) | (i > size - 1) if mode == "constant" else None
    return i.clamp(0, size - 1), outside


def crop_and_flip(x: torch.Tensor, pad: int, mode: str, dy: torch.Tensor | None = None,
                  dx: torch.Tensor | None = None, hflip: torch.Tensor | None = None,
                  vflip: torch.Tensor | None = None) -> torch.Tensor:
    """The HxW window at (dy, dx) of each image padded by `pad` (None: no crop), mirrored where `hflip` /
    `vflip` (per-image bools): one gather per channel plane of the unpadded images, in any dtype. On the uint8
    batch it moves a quarter of the bytes that padding, cropping and flipping float images did: cifar10-90's
    batch of 500 augments and normalises in 3.4 ms instead of 7.8 on the 2-core Xeon (advanced indexing of an
    NHWC view, the first version of this, took 3.6 ms for the gather alone; torch.gather takes 0.7)."""
    b, c, h, w = x.shape
    zero = torch.zeros(b, dtype=torch.long, device=x.device)
    rows, rows_out = _source_index(zero if dy is None else dy, pad, h, mode, vflip)
    cols, cols_out = _source_index(zero if dx is None else dx, pad, w, mode, hflip)
    where = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    out = torch.gather(x.reshape(b, c, h * w), 2, where).view(b, c, h, w)
    if rows_out is not None:
        out = out.masked_fill((rows_out[:, :, None] | cols_out[:, None, :])[:, None], 0)
    return out


def _crop_offsets(b: int, pad: int, gen: torch.Generator, device) -> tuple:
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(device)
    return dy, dx


def random_crop(x: torch.Tensor, pad: int, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Pad by `pad` pixels and cut a random HxW window per image (a gather, not a loop over images)."""
    return crop_and_flip(x, pad, PAD_MODES[mode], *_crop_offsets(x.shape[0], pad, gen, x.device))


def _flip_masks(direction: str, b: int, gen: torch.Generator, device) -> tuple:
    h = (torch.rand(b, generator=gen) < 0.5).to(device) if direction in ("horizontal", "both") else None
    v = (torch.rand(b, generator=gen) < 0.5).to(device) if direction in ("vertical", "both") else None
    return h, v


def random_flip(x: torch.Tensor, direction: str, gen: torch.Generator) -> torch.Tensor:
    hflip, vflip = _flip_masks(direction, x.shape[0], gen, x.device)
    if hflip is not None:
        x = torch.where(hflip[:, None, None, None], x.flip(3), x)
    if vflip is not None:
        x = torch.where(vflip[:, None, None, None], x.flip(2), x)
    return x


def _alternating_mask(idx: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    # a cheap integer hash of (image index, seed): the same images every epoch, no state to checkpoint
    h = (idx.to(torch.int64) * 2654435761 + seed * 40503 + 12345) % 4294967296
    return (((h >> 16) & 1) ^ (epoch % 2)).bool()


def alternating_flip(x: torch.Tensor, idx: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    """Flip half the images (a fixed, seeded half) in even epochs and the other half in odd ones: over two
    epochs every image is seen both ways, which random flips only manage on average (Jordan 2024)."""
    mask = _alternating_mask(idx, epoch, seed).to(x.device)[:, None, None, None]
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


class Augmenter:
    """Turns a uint8 batch into a normalised float batch, augmenting it when training. `settings`: every key
    set (cnnlab.config.augment_settings writes them out; the schema has checked each value)."""

    def __init__(self, settings: AugmentConfig, mean, std, device: torch.device, channels_last: bool = False,
                 seed: int = 0):
        unset = [key for key, value in settings.model_dump().items() if value is None]
        if unset:
            raise UserError(f"augment: {', '.join(unset)} not set; the settings an Augmenter takes have every key "
                            "(cnnlab.config.augment_settings writes them out)")
        self.seed = seed
        self.s = settings
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.channels_last = channels_last
        self.device = device

    @property
    def flips_horizontally(self) -> bool:
        return self.s.flip in ("horizontal", "both", "alternating")

    def augment(self, x: torch.Tensor, gen: torch.Generator, idx: torch.Tensor | None = None,
                epoch: int = 0) -> torch.Tensor:
        """uint8 -> augmented float in 0..1 (not yet normalised), for training and for `data show`."""
        s = self.s
        x = x.to(self.device, non_blocking=True)
        if s.crop and s.crop_mode == "reflect" and s.crop >= min(x.shape[2:]):
            raise UserError(f"augment.crop {s.crop}: reflect padding must be smaller than the image "
                            f"({x.shape[2]}x{x.shape[3]})")
        # crop and flip first, as one gather of the still-uint8 images, with the same draws in the same order
        # as cropping then flipping float images: a seeded run augments as it did
        if s.crop or s.flip != "none":
            b = x.shape[0]
            dy, dx = _crop_offsets(b, s.crop, gen, x.device) if s.crop else (None, None)
            if s.flip == "alternating" and idx is not None:
                hflip, vflip = _alternating_mask(idx, epoch, self.seed).to(x.device), None
            elif s.flip != "none":
                hflip, vflip = _flip_masks("horizontal" if s.flip == "alternating" else s.flip, b, gen, x.device)
            else:
                hflip = vflip = None
            x = crop_and_flip(x, s.crop, PAD_MODES[s.crop_mode], dy, dx, hflip, vflip)
        x = self._float01(x)
        if s.rotate or s.scale or s.translate:
            x = random_affine(x, s.rotate, s.scale, s.translate, s.fill, gen)
        if s.brightness or s.channel_shift:
            x = random_color(x, s.brightness, s.channel_shift, gen)
        if s.cutout:
            x = cutout(x, s.cutout, gen)
        return x

    def _float01(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> a new float tensor in 0..1 (a copy even of float input, which is the caller's)."""
        if self.channels_last:  # the layout is changed on the uint8 images, a quarter of the bytes
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(torch.float32, copy=True).div_(255)

    def _standardise_(self, x: torch.Tensor) -> torch.Tensor:
        return x.sub_(self.mean).div_(self.std)

    def train_batch(self, x: torch.Tensor, gen: torch.Generator, idx: torch.Tensor | None = None,
                    epoch: int = 0) -> torch.Tensor:
        """`idx` (the images' indices in the training set) and `epoch` drive the alternating flip."""
        x = self._standardise_(self.augment(x, gen, idx, epoch))  # augment's result is a new tensor
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def eval_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self._standardise_(self._float01(x.to(self.device, non_blocking=True)))


class BatchResizer:
    """Each float batch (B, C, H, W) resized to `size` pixels high (the width in proportion), bilinear and
    antialiased as F.interpolate does it, for `resolution: {resize: batch}`: the crop and flip then happen at
    full size. Bilinear resizing is a fixed linear map along each axis, so it is made once as two small
    matrices (F.interpolate of the identity) and applied as two matmuls: for cifar10-fast's batch of 2000 at
    32 -> 24 on the 2-core Xeon that is a few ms, where F.interpolate per batch cost the 24-pixel epochs a
    fifth of their time (1.22x at peak; docs/recipes.md)."""

    def __init__(self, height: int, width: int, size: int, device=None):
        self.size, self.width = size, max(1, round(width * size / height))
        self.rows = _resize_matrix(height, size, device)        # (size, H)
        self.cols = _resize_matrix(width, self.width, device).T  # (W, out_w)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        out = torch.matmul(self.rows, torch.matmul(x, self.cols.to(x.dtype)).to(self.rows.dtype)).to(x.dtype)
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def _resize_matrix(n: int, size: int, device) -> torch.Tensor:
    """The (size, n) matrix that resizes one axis of n pixels to `size` as F.interpolate (bilinear,
    antialiased, align_corners False) does."""
    eye = torch.eye(n, dtype=torch.float64).view(n, 1, 1, n)  # n one-row images, each one pixel lit
    rows = F.interpolate(eye.float(), size=(1, size), mode="bilinear", antialias=True, align_corners=False)
    return rows.view(n, size).T.contiguous().to(device)


def resized_images(x: torch.Tensor, size: int, chunk: int = 5000) -> torch.Tensor:
    """A whole image set at `size` pixels high (the width in proportion), bilinear and antialiased — the same
    pictures, smaller — in the set's own dtype (uint8 rounded). For `resolution` (progressive resizing): made
    once per phase, so each batch is cropped and flipped at the small size and nothing is resized per step (per
    batch, resizing cost the 24-pixel epochs of cifar10-fast 1.22x their time at peak; docs/recipes.md)."""
    h, w = x.shape[2:]
    out_w = max(1, round(w * size / h))
    parts = []
    for start in range(0, len(x), chunk):
        part = F.interpolate(x[start:start + chunk].float(), size=(size, out_w), mode="bilinear",
                             antialias=True, align_corners=False)
        note(x, part.shape[0] * x[0].nbytes)  # a memory-mapped set's pages are handed back as it is read
        parts.append(part.round_().clamp_(0, 255).to(x.dtype) if x.dtype == torch.uint8 else part.to(x.dtype))
    return torch.cat(parts)
