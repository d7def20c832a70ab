"""Seeded, stratified hold-outs: the same share of every class, the same images for the same seed."""
from __future__ import annotations

import numpy as np

from ..errors import UserError


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): `fraction` of every class held out, chosen by a seeded permutation."""
    if not 0 < fraction < 1:
        raise UserError(f"val_split must be between 0 and 1 (exclusive), got {fraction}")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_held = int(round(fraction * len(members)))
        held.append(members[:n_held])
        keep.append(members[n_held:])
    keep, held = np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))
    if len(held) == 0 or len(keep) == 0:
        raise UserError(f"val_split {fraction} leaves an empty split of {len(labels)} training images")
    return keep, held


def first_images(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of "the first `n` training images" (`data.limit`), sorted. A set stored in a shuffled order
    (CIFAR-10, MNIST) gives its first n. A set stored class by class (an image folder: every cat, then every
    dog) would give n cats, so there each class gives its first images in proportion to its size: the
    classes interleaved by each image's rank within its class. A larger n keeps every image a smaller one took."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    if len(labels) < 2 or np.any(np.diff(labels) < 0):  # not grouped by class: its own order is a fair sample
        return np.arange(n)
    rank = np.empty(len(labels), dtype=np.float64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    return np.sort(np.argsort(rank, kind="stable")[:n])
