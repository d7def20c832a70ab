"""A grid of images with their labels."""
from __future__ import annotations

import math
from pathlib import Path

from ..mplbackend import headless

headless()
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..fsutil import atomic_path  # noqa: E402


def grid_figure(images: torch.Tensor, labels: list[str], columns: int = 8, title: str = "", fontsize: float = 7):
    """A matplotlib figure of `images` (N, C, H, W; uint8, or float in 0..1), each titled by its label."""
    images = images.detach().cpu()
    if images.dtype != torch.uint8:
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    n = len(images)
    rows = max(1, math.ceil(n / columns))
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * (1.3 + 0.15 * lines)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = images[i].permute(1, 2, 0).numpy()
            ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None,
                      vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(labels[i], fontsize=fontsize)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def image_grid(images: torch.Tensor, labels: list[str], path: str | Path, columns: int = 8, title: str = "") -> Path:
    fig = grid_figure(images, labels, columns, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
