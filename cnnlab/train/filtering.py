"""Data filtering (config key `select`): each batch scored by a forward pass without gradients, and only its
share with the highest loss trained on (selective backprop, Jiang et al. 2019; airbench96_faster ranks with
a small proxy network instead, cnnlab with the model itself). What it costs is counted in cnnlab/train/flops.py
with `kept_count`, the same count the engine keeps."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def kept_count(keep: float, n: int) -> int:
    """Images trained on out of a batch of `n`: at least 2 (BatchNorm cannot normalise one image)."""
    return min(n, max(2, round(keep * n)))


def example_losses(output: torch.Tensor, target: torch.Tensor, smoothing: float, probabilities: bool):
    """Each example's loss, as cnnlab/train/engine.py `classification_loss` computes the batch's (kept apart so
    the training loss keeps F.cross_entropy's own reduction, which the recipes' figures were made with)."""
    output = output.float()
    if not probabilities:
        return F.cross_entropy(output, target, label_smoothing=smoothing, reduction="none")
    logp = output.clamp_min(1e-7).log()
    nll = -logp.gather(1, target[:, None])[:, 0]
    return (1 - smoothing) * nll - smoothing * logp.mean(dim=1) if smoothing else nll


@contextlib.contextmanager
def running_stats_kept(norms: list):
    """BatchNorm's running statistics left as they are (momentum 0) for a forward that only scores: they then
    come from the images trained on, the hardest ones."""
    saved = [bn.momentum for bn in norms]
    try:
        for bn in norms:
            bn.momentum = 0.0
        yield
    finally:
        for bn, momentum in zip(norms, saved):
            bn.momentum = momentum


@torch.no_grad()
def hardest(model, xb, yb, keep: float, piece: int, norms: list, autocast, smoothing: float,
            probabilities: bool):
    """The batch's `keep` share with the highest loss, scored in pieces of `piece` images; and every image's
    loss and the count of correct predictions, so the epoch's training figures stay over the whole batch."""
    losses, correct = [], torch.zeros((), device=yb.device, dtype=torch.long)
    with running_stats_kept(norms):
        for start in range(0, len(yb), piece):
            with autocast():
                out = model(xb[start:start + piece])
            losses.append(example_losses(out, yb[start:start + piece], smoothing, probabilities))
            correct += (out.argmax(1) == yb[start:start + piece]).sum()
    losses = torch.cat(losses)
    chosen = losses.topk(kept_count(keep, len(yb))).indices
    return xb[chosen], yb[chosen], losses, correct
