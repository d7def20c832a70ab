"""Identical images by their decoded pixels: within a split, and test images that are in training too (what
makes a test accuracy optimistic). The data doctor (cnnlab/diagnose/data_doctor.py) adds near copies."""
from __future__ import annotations

import hashlib

import numpy as np

from .diskcache import blocks


def pixel_hashes(x) -> list[str]:
    """sha1 of each image's decoded uint8 pixels (numpy or torch, (N, C, H, W)): 0.3 s for CIFAR-10's 60,000."""
    # in blocks: a memory-mapped set passes through RSS a block at a time (cnnlab/data/diskcache.py)
    return [hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()
            for block in blocks(x) for img in np.asarray(block)]


def exact_duplicates(hashes_a: list[str], hashes_b: list[str] | None = None) -> list[tuple[int, int]]:
    """Pairs (i, j) of identical images: within `hashes_a` (i < j), or between a and b when b is given. A
    group of k copies gives its k-1 pairs to the first copy."""
    first: dict[str, int] = {}
    if hashes_b is None:
        pairs = []
        for i, h in enumerate(hashes_a):
            if h in first:
                pairs.append((first[h], i))
            else:
                first[h] = i
        return pairs
    for i, h in enumerate(hashes_a):
        first.setdefault(h, i)
    return [(first[h], j) for j, h in enumerate(hashes_b) if h in first]


def test_in_train(train_x, test_x, *more_train) -> int:
    """How many test images are, pixel for pixel, also training (or validation) images."""
    train = set(pixel_hashes(train_x))
    for extra in more_train:
        if extra is not None:
            train.update(pixel_hashes(extra))
    return sum(1 for h in pixel_hashes(test_x) if h in train)
