"""How much of a style image's texture a stylised picture carries, measured with statistics that no loss network
uses: Gram matrices of a fixed Gabor filter bank (Portilla & Simoncelli's kind of texture statistic).

Why a separate measure: a loss network's own style loss says how well the optimiser matched that network's
Gram matrices, which it always does; it cannot say whether the picture now *looks* like the style. Oriented
band-pass filters at several frequencies are what early vision (and every trained CNN's first layer) uses
for edges and texture; their co-activations are a texture description the random-filter network never sees
(its filters are random, not oriented, and followed by ReLU). Palette is not measured: the filters are
zero-mean, so a flat colour shift leaves every response unchanged.

    movement = (d(content, style) - d(output, style)) / d(content, style)

0: the output still has the content's texture statistics; 1: the style's; below 0: further from the style.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WAVELENGTHS = (4, 8, 16)     # pixels per cycle: fine edges, strokes, cells (at the page's 128 px)
ORIENTATIONS = 4             # 0, 45, 90, 135 degrees


def gabor_bank(wavelengths=WAVELENGTHS, orientations: int = ORIENTATIONS) -> list[torch.Tensor]:
    """One (2 * orientations, 1, k, k) bank per wavelength: even and odd (cosine and sine) Gabors, each
    zero-mean and unit-norm; the Gaussian envelope's sigma is half a wavelength (about one octave wide)."""
    banks = []
    for wavelength in wavelengths:
        sigma = 0.5 * wavelength
        half = math.ceil(2.5 * sigma)
        y, x = torch.meshgrid(torch.arange(-half, half + 1.0), torch.arange(-half, half + 1.0), indexing="ij")
        envelope = torch.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
        filters = []
        for i in range(orientations):
            theta = math.pi * i / orientations
            u = x * math.cos(theta) + y * math.sin(theta)
            for phase in (0.0, math.pi / 2):
                f = envelope * torch.cos(2 * math.pi * u / wavelength + phase)
                f = f - envelope * (f.sum() / envelope.sum())  # zero-mean: blind to flat colour
                filters.append(f / f.norm())
        banks.append(torch.stack(filters)[:, None])
    return banks


def gabor_grams(image: torch.Tensor, banks: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """(3, H, W) in [0, 1] -> one Gram matrix per wavelength, over the responses of every filter on every colour
    channel (3 * 2 * orientations channels), averaged over positions. Valid convolution: no padding edges."""
    banks = banks or gabor_bank()
    x = image.float()[:, None]                                   # the colour channels as a batch of grey images
    grams = []
    for bank in banks:
        r = F.conv2d(x, bank)                                     # (3, F, h, w)
        r = r.reshape(-1, r.shape[-2] * r.shape[-1])              # (3F, positions)
        grams.append(r @ r.T / r.shape[1])
    return grams


def texture_distance(a: torch.Tensor, b: torch.Tensor, wavelengths=WAVELENGTHS) -> float:
    """Relative distance of `a`'s Gabor Grams from `b`'s, each wavelength counted equally: the mean over
    wavelengths of ||G_a - G_b|| / ||G_b|| (Frobenius). 0 for the same texture statistics. An image needs
    sides over 5 wavelengths (the filters' reach); smaller ones, shorter `wavelengths`."""
    bank = gabor_bank(wavelengths)
    ga, gb = gabor_grams(a, bank), gabor_grams(b, bank)
    return sum(((x - y).norm() / y.norm().clamp_min(1e-12)).item() for x, y in zip(ga, gb)) / len(ga)


def texture_movement(content: torch.Tensor, output: torch.Tensor, style: torch.Tensor,
                     wavelengths=WAVELENGTHS) -> float:
    """How far `output` moved from `content`'s texture toward `style`'s: 0 none, 1 all the way."""
    before = texture_distance(content, style, wavelengths)
    return (before - texture_distance(output, style, wavelengths)) / before


def noise_energy(image: torch.Tensor) -> float:
    """Pixel-scale noise: the mean squared difference between an image ((3, H, W) in [0, 1]) and its 3x3 median
    filter. A median keeps edges, lines wider than a pixel and smooth shading, and removes isolated specks, so
    what is left is speckle (and the corners of fine detail). Neither loss network uses it; compare an output's
    with the style image's own (a style of fine dots has some; flat stripes almost none)."""
    x = F.pad(image.float()[:, None], (1, 1, 1, 1), mode="reflect")          # (3, 1, H+2, W+2)
    median = F.unfold(x, 3).median(dim=1).values.view(image.shape)             # (3, H*W) -> (3, H, W)
    return float(((image.float() - median) ** 2).mean())
