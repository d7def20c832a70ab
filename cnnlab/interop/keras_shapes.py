"""Shapes as Keras works them out, layer by layer, so that the reader of functional code (keras_interpret.py)
can decide `if x.shape[-1] != filters` the way the script would when it runs."""
from __future__ import annotations

import math

from .keras_layers import ALIASES, MERGE_LAYERS, SKIPPED, SUPPORTED

def _pair(value) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None, None


def _size(n, kernel, stride, dilation, padding):
    if not all(isinstance(v, int) for v in (n, kernel, stride, dilation)):
        return None
    if padding == "same":
        return math.ceil(n / stride)
    return max((n - dilation * (kernel - 1) - 1) // stride + 1, 0)


def out_shape(kind: str, kw: dict, shape: tuple) -> tuple:
    """The shape (Keras's order, no batch axis) a layer gives for `shape`; None where it is not known."""
    kind = ALIASES.get(kind, kind)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return shape[-1:]
    if kind == "Flatten":
        return (math.prod(shape) if all(isinstance(s, int) for s in shape) else None,)
    if kind == "Dense":
        units = kw.get("units")
        return shape[:-1] + (units if isinstance(units, int) else None,)
    if kind not in ("Conv2D", "MaxPooling2D", "AveragePooling2D", "ZeroPadding2D"):
        keeps = kind in SUPPORTED or kind in MERGE_LAYERS or kind in SKIPPED and kind != "RandomCrop"
        return shape if keeps else tuple(None for _ in shape)
    if len(shape) != 3:
        return shape
    h, w, c = shape
    padding = kw.get("padding", "valid")
    if kind == "ZeroPadding2D":
        pad = padding if padding != "valid" else 1
        if isinstance(pad, (list, tuple)) and pad and isinstance(pad[0], (list, tuple)):
            pad = (pad[0][0] + pad[0][1], pad[1][0] + pad[1][1])
        else:
            pad = tuple(2 * p if isinstance(p, int) else None for p in _pair(pad))
        return tuple(n + p if isinstance(n, int) and isinstance(p, int) else None for n, p in zip((h, w), pad)) + (c,)
    padding = padding.lower() if isinstance(padding, str) else padding
    if kind == "Conv2D":
        kernel, strides = _pair(kw.get("kernel_size", 3)), _pair(kw.get("strides", 1))
        dilation = _pair(kw.get("dilation_rate", 1))
        c = kw.get("filters") if isinstance(kw.get("filters"), int) else None
    else:
        kernel = _pair(kw.get("pool_size", 2))
        strides = _pair(kw["strides"]) if kw.get("strides") is not None else kernel
        dilation = (1, 1)
    return (_size(h, kernel[0], strides[0], dilation[0], padding),
            _size(w, kernel[1], strides[1], dilation[1], padding), c)
