"""Deterministic stand-in weights for an architecture, made from the tensor names and shapes alone with numpy,
so torchvision (in its own environment, scripts/imagenet_fixtures.py) and cnnlab (here) fill the same network
with the same numbers without storing 100 MB of weights in the repository. Needs numpy only: the fixture
script runs it beside torchvision, where cnnlab is not installed."""
from __future__ import annotations

import math
import zlib

import numpy as np

INPUT_SHAPE = (1, 3, 64, 64)  # every architecture pools adaptively, so a small image checks them all in seconds


def tensor(name: str, shape: tuple) -> np.ndarray:
    """One tensor, from a generator seeded by its name (not by its place in a list: order cannot matter)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.array(0, dtype=np.int64)
    if leaf == "running_var" or (leaf == "weight" and len(shape) == 1):  # BN variances and scales: positive
        values = rng.uniform(0.5, 1.5, shape)
    elif leaf in ("running_mean", "bias"):
        values = rng.normal(0.0, 0.1, shape)
    else:  # conv and dense weights at 1/sqrt(fan-in): activations stay near unit scale through 50 layers
        values = rng.normal(0.0, 1.0 / math.sqrt(math.prod(shape[1:])), shape)
    return values.astype(np.float32)


def filled(shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    return {name: tensor(name, tuple(shape)) for name, shape in shapes.items()}


def image() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32)
