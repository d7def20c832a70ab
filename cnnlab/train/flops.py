"""What a training run costs in FLOPs, computed from its network and config, not measured: 2 FLOP per
multiply-accumulate forward and twice that backward (6 x MACs per training image), epoch by epoch, since
`resolution` makes early epochs cheaper and `select` scores every image (a forward, 2 x MACs) but trains on a
share. Evaluation is not counted (the public records count training only)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import auto_batch_size
from ..models import build_model
from ..models.summary import summarize
from ..schema.config import TrainConfig
from .filtering import kept_count


@dataclass
class FlopBudget:
    macs: int                    # per image at the full input size
    epochs: list[float]          # training FLOPs of each epoch

    @property
    def flop_per_image(self) -> float:
        return 6.0 * self.macs

    @property
    def total(self) -> float:
        return sum(self.epochs)

    @property
    def pflop(self) -> float:
        return self.total / 1e15


def macs_at(model_spec, input_shape, num_classes: int) -> int:
    with torch.device("meta"):  # sizes only: nothing is allocated
        return summarize(build_model(model_spec, input_shape, num_classes)).macs


def training_flop(cfg: TrainConfig, input_shape, num_classes: int, images: int) -> FlopBudget:
    """Counted batch by batch as the engine cuts them (`batch_size`, a last smaller batch, `kept_count` of each
    where data filtering is on)."""
    c, h, w = input_shape
    full = macs_at(cfg.model, input_shape, num_classes)
    res, select = cfg.resolution, cfg.select
    small = None
    pixels = res.pixels(h) if res is not None else h
    if pixels != h:
        small = macs_at(cfg.model, (c, pixels, max(1, round(w * pixels / h))), num_classes)
    per_epoch = []
    for epoch in range(cfg.epochs):
        macs = small if small is not None and res.is_small(epoch, cfg.epochs) else full
        if select is not None and select.keep < 1 and epoch >= select.after:
            size = cfg.batch_size or auto_batch_size(images, cfg.epochs)  # left out: as the run works it out
            batches = [size] * (images // size) + ([images % size] if images % size > 1 else [])
            flop = 2 * macs * sum(batches) + 6 * macs * sum(kept_count(select.keep, n) for n in batches)
        else:
            flop = 6 * macs * images
        per_epoch.append(float(flop))
    return FlopBudget(full, per_epoch)
