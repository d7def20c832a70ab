"""Out-of-fold class probabilities from a quick model, for confident learning (cleanlab): each image is scored by
a network that never saw it. The settings are cnnlab's cifar10-90 recipe (Muon, label smoothing, flip TTA) on
the airbench net at a quarter of its width, trained by the ordinary engine on images shrunk to at most 32
pixels, so the cost does not grow with a folder's resolution. On the 2-core AVX2 EPYC the half-width net
trained at 60-70 img/s beside another job (78% out of fold on 4,000 CIFAR-10 images, 8 epochs): 6 min a fold;
a quarter width costs a quarter.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

QUICK_SIDE = 32            # pixels: images larger than this are shrunk (antialiased) before the quick model
# per fold: epochs = this / training images, within [3, 12]. On 4,036 planted CIFAR-10 images, 6 epochs agreed
# with 75% of fold 0, 12 epochs with 79% (52 s a fold on a quiet 2-core EPYC) and put 0.67 of the flipped labels
# in the top suspects instead of 0.58 (docs/data.md)
IMAGE_PASSES = 48_000
WIDTHS = [32, 64, 64]      # the airbench net's groups (cifar10-90: [64, 128, 128])
# steps an epoch, at least: a small set is mostly short of steps, not of images. On 4,036 planted CIFAR-10 images
# (6 epochs) batch 252 (16 steps) agreed with 72% of the held-out fold, batch 64 with 76% (docs/data.md)
STEPS_PER_EPOCH = 64


def shrink(x: torch.Tensor, side: int = QUICK_SIDE) -> torch.Tensor:
    """uint8 (N, C, H, W) with the shorter side at most `side` pixels."""
    h, w = x.shape[2:]
    if min(h, w) <= side:
        return x
    scale = side / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = [F.interpolate(x[i:i + 512].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
           for i in range(0, len(x), 512)]
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8)


def quick_config(train_images: int, epochs: int | None = None, seed: int = 0):
    from ..train.session import prepare_config
    epochs = epochs or int(np.clip(round(IMAGE_PASSES / max(train_images, 1)), 3, 12))
    batch = int(np.clip(train_images // STEPS_PER_EPOCH, 32, 500))
    return prepare_config({"recipe": "cifar10-90", "model": {"name": "airbench", "widths": WIDTHS},
                           "data": {"name": "cifar10"}, "epochs": epochs,
                           "eval_every": epochs, "batch_size": batch, "seed": seed, "resolution": None})


def out_of_fold_probs(x: np.ndarray, y: np.ndarray, num_classes: int, folds: int = 5, epochs: int | None = None,
                      seed: int = 0, progress=None) -> np.ndarray:
    """(N, num_classes) probabilities, each row from the model of the fold that held that image out
    (stratified folds, seeded)."""
    say = progress or (lambda text: None)
    if folds < 2:
        from ..errors import UserError
        raise UserError(f"folds: {folds}; out-of-fold probabilities need at least 2 folds (5 is usual)")
    images, labels = shrink(torch.from_numpy(np.ascontiguousarray(x))), torch.from_numpy(np.asarray(y, np.int64))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for c in range(num_classes):  # stratified: every class spread over the folds
        members = rng.permutation(np.flatnonzero(y == c))
        fold_of[members] = np.arange(len(members)) % folds
    probs = np.zeros((len(y), num_classes), dtype=np.float32)
    cfg = quick_config(int((fold_of != 0).sum()), epochs, seed)
    for k in range(folds):
        held, kept = np.flatnonzero(fold_of == k), np.flatnonzero(fold_of != k)
        probs[held], agree = fold_probs(images, labels, kept, held, num_classes, cfg.model_copy(update={"seed": seed + k}))
        say(f"fold {k + 1}/{folds}: {agree:.1%} of the held-out images agree with their labels")
    return probs


def fold_probs(images: torch.Tensor, labels: torch.Tensor, kept: np.ndarray, held: np.ndarray, num_classes: int,
               cfg) -> tuple[np.ndarray, float]:
    """The quick model trained on images[kept]: its probabilities for images[held], and the share of them
    that agree with their labels."""
    from ..data import ImageDataset
    from ..device import choose_placement
    from ..models import build_model
    from ..train.augment import Augmenter
    from ..train.engine import Trainer, evaluate
    from ..train.session import init_from_data
    placement = choose_placement(cfg.device, cfg.precision, cfg.channels_last)
    ds = ImageDataset("fold", [str(c) for c in range(num_classes)], images[kept], labels[kept],
                      images[held], labels[held])
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, ds.input_shape, num_classes).to(placement.device)
    if placement.channels_last:
        model.to(memory_format=torch.channels_last)
    mean, std = ds.channel_stats()
    augmenter = Augmenter(cfg.augment, mean, std, placement.device, placement.channels_last, cfg.seed)
    init_from_data(model, ds.train_x, augmenter)
    Trainer(model, ds, cfg, augmenter, placement).fit()
    scored = evaluate(model, ds.test_x, ds.test_y, augmenter, placement, 1000, tta=True)
    return scored["probs"].numpy(), float(scored["acc"])
