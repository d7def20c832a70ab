"""The torch modules the model language needs beyond torch.nn's own."""
from __future__ import annotations

from torch import nn
import torch.nn.functional as F


class ChannelDense(nn.Linear):
    """A dense layer on a feature map acts on each position's channels, as Keras's Dense does on the last axis."""
    def forward(self, x):
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor}"


class Residual(nn.Module):
    """out = activation(body(x) + projection(x)); the projection is identity when the shapes already match."""
    def __init__(self, body: nn.Module, projection: nn.Module | None, activation: nn.Module | None):
        super().__init__()
        self.body = body
        self.projection = projection if projection is not None else nn.Identity()
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x):
        return self.activation(self.body(x) + self.projection(x))


class AsymmetricPad(nn.Module):
    """TensorFlow-style 'same' padding when the total is odd: the extra row/column goes to the bottom/right."""
    def __init__(self, pads: tuple[int, int, int, int], value: float = 0.0):
        super().__init__()
        self.pads, self.value = pads, value  # (left, right, top, bottom) as F.pad takes them

    def forward(self, x):
        return F.pad(x, self.pads, value=self.value)
