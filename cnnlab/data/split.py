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
