"""The torch modules the model language needs beyond torch.nn's own."""
from __future__ import annotations

import torch
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
    """out = activation(body(x) + projection(x)); the projection is identity when the shapes already match,
    a strided 1x1 conv when they do not, or the layers the block's `shortcut` names."""
    def __init__(self, body: nn.Module, projection: nn.Module | None, activation: nn.Module | None):
        super().__init__()
        self.body = body
        self.projection = projection if projection is not None else nn.Identity()
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x):
        return self.activation(self.body(x) + self.projection(x))


class SqueezeExcite(nn.Module):
    """x * gate(fc2(activation(fc1(mean of x over H, W)))): channels re-weighted by a summary of all of them
    (Hu et al. 2018). Named fc1 and fc2, 1x1 convs with bias, as torchvision's SqueezeExcitation, so its
    MobileNetV3 and EfficientNet weights load by name."""
    def __init__(self, channels: int, squeeze: int, activation: nn.Module, gate: nn.Module):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation, self.gate = activation, gate

    def forward(self, x):
        return self.gate(self.fc2(self.activation(self.fc1(F.adaptive_avg_pool2d(x, 1))))) * x


class Concat(nn.Module):
    """out = activation(cat([branch(x) for each branch], channels)); an empty branch is nn.Identity."""
    def __init__(self, branches: list[nn.Module], activation: nn.Module | None):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x):
        return self.activation(torch.cat([branch(x) for branch in self.branches], dim=1))


class AsymmetricPad(nn.Module):
    """TensorFlow-style 'same' padding when the total is odd: the extra row/column goes to the bottom/right."""
    def __init__(self, pads: tuple[int, int, int, int], value: float = 0.0):
        super().__init__()
        self.pads, self.value = pads, value  # (left, right, top, bottom) as F.pad takes them

    def forward(self, x):
        return F.pad(x, self.pads, value=self.value)


class PatchWhitening(nn.Conv2d):
    """A conv whose filters whiten the input's k x k patches: the eigenvectors of the training images' patch
    covariance, scaled by 1/sqrt(eigenvalue), and their negatives (so a following GELU keeps both signs).
    Set once from data (`init_from_images`) and frozen; its bias trains for `bias_epochs` epochs (all if None),
    with `bias_decay` at a rate falling linearly to zero over them (the optimizer reads `bias.decay_epochs`).
    Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (2024), after Page (2018)."""

    def __init__(self, channels: int, kernel: int, eps: float, bias_epochs: int | None, bias_decay: bool = False):
        super().__init__(channels, 2 * channels * kernel * kernel, kernel, bias=True)
        self.eps, self.bias_epochs, self.bias_decay = eps, bias_epochs, bias_decay
        self.weight.requires_grad_(False)
        if bias_decay and bias_epochs:
            self.bias.decay_epochs = bias_epochs  # cnnlab/train/optim.py gives it a group of its own

    @torch.no_grad()
    def init_from_images(self, images: torch.Tensor) -> None:
        """`images`: normalised training images (N, C, H, W); a few thousand are plenty."""
        c, (h, w) = images.shape[1], self.kernel_size
        patches = images.float().unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance.cpu().double())  # a 12x12 matrix; MPS has no fp64
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + self.eps)[:, None]).float()
        filters = filters.reshape(-1, c, h, w)  # rows of `patches` are in the conv weight's (C, kh, kw) order
        self.weight.copy_(torch.cat((filters, -filters)).to(self.weight.device, self.weight.dtype))

    def train_bias(self, epoch: int) -> None:
        if self.bias_epochs is not None:
            self.bias.requires_grad_(epoch < self.bias_epochs)

    def extra_repr(self):
        return super().extra_repr() + f", eps={self.eps}, bias_epochs={self.bias_epochs}" + (
            ", bias_decay=True" if self.bias_decay else "")
