"""Does a left-right mirror keep an image's label? For photos of things yes (a car facing left is a car), for
digits and letters no (a mirrored 7 is no digit at all): augmenting an image folder with flips must be
decided from its content, since its name says nothing.

The test: a nearest-class-mean classifier, built from half the training images (at most 5,000), classifies
the other half as they are and mirrored. Where mirroring costs more than 30% of its above-chance accuracy,
flips would teach the network images that carry the wrong label. Measured on the shared data (seed 0,
2,500 images each way): CIFAR-10 0.20 -> 0.20 (flips kept), Fashion-MNIST 0.67 -> 0.55 (kept: shoes face
one way, but a mirrored shoe is still a shoe), the 10,000-digit MNIST sample 0.73 -> 0.40 (dropped).
A fraction of a second of arithmetic on at most 10,000 images; no training.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .diskcache import take

KEEP_SHARE = 0.7        # mirrored accuracy above chance, as a share of plain: at least this keeps flips
UNCLEAR_MARGIN = 0.05   # plain accuracy closer than this to chance: the classifier tells nothing either way


@dataclass(frozen=True)
class MirrorTest:
    plain: float        # nearest-class-mean accuracy on held-out images as they are
    mirrored: float     # ... and mirrored left to right
    chance: float
    keeps_labels: bool

    def describe(self) -> str:
        verdict = "flips kept" if self.keeps_labels else "mirrored images lose their labels: no flips"
        return (f"mirror test: nearest-class-mean accuracy {self.plain:.2f} as they are, {self.mirrored:.2f} "
                f"mirrored (chance {self.chance:.2f}): {verdict}")


def mirror_test(images: torch.Tensor, labels: torch.Tensor, seed: int = 0, limit: int = 5000) -> MirrorTest:
    """`images` uint8 or float (N, C, H, W), `labels` (N,). Deterministic for a seed."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen)[:2 * limit]
    half = len(order) // 2
    chance = 1 / max(1, len(labels.unique()))
    fit_x, fit_y = take(images, order[:half]).float().flatten(1), labels[order[:half]]  # at most 5,000 as floats
    held_x, held_y = take(images, order[half:]), labels[order[half:]]
    classes = fit_y.unique()
    if half == 0 or len(classes) < 2:
        return MirrorTest(0.0, 0.0, chance, True)
    means = torch.stack([fit_x[fit_y == c].mean(0) for c in classes])
    centre, scale = fit_x.mean(0), fit_x.std(0) + 0.05 * fit_x.max().clamp_min(1)

    def accuracy(query: torch.Tensor) -> float:
        distances = torch.cdist((query.flatten(1).float() - centre) / scale, (means - centre) / scale)
        return (classes[distances.argmin(1)] == held_y).float().mean().item()

    plain, mirrored = accuracy(held_x), accuracy(held_x.flip(-1))
    if plain - chance < UNCLEAR_MARGIN:
        return MirrorTest(plain, mirrored, chance, True)
    return MirrorTest(plain, mirrored, chance, (mirrored - chance) >= KEEP_SHARE * (plain - chance))
