"""The pictures a practitioner looks at to understand a classifier, each returned as PNG bytes."""
from __future__ import annotations

import io
import math

from ..mplbackend import headless

headless()
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(true * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def per_class_scores(cm: np.ndarray) -> list[dict]:
    """Accuracy (= recall) per true class, and precision per predicted class."""
    rows = []
    for c in range(len(cm)):
        support, predicted, hit = cm[c].sum(), cm[:, c].sum(), cm[c, c]
        rows.append({"support": int(support), "recall": hit / support if support else 0.0,
                     "precision": hit / predicted if predicted else 0.0})
    return rows


def confusion_figure(cm: np.ndarray, classes: list[str]) -> bytes:
    n = len(classes)
    size = max(4.5, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    if n <= 20:
        ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        top = cm.max() or 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    return _png(fig)


def wrong_grid(images: torch.Tensor, titles: list[str], columns: int = 8) -> bytes:
    from .grid import grid_figure
    return _png(grid_figure(images, titles, columns, "Most confidently wrong test images (true -> predicted, "
                            "confidence)", fontsize=6.5))


def filters_figure(weight: torch.Tensor) -> bytes:
    """First-layer kernels as small images: RGB when the input has 3 channels, else the first channel."""
    w = weight.detach().float().cpu()
    n = min(len(w), 64)
    columns = min(16, n)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.7, rows * 0.7), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            k = w[i]
            k = (k - k.min()) / (k.max() - k.min() + 1e-8)
            ax.imshow(k.permute(1, 2, 0).numpy() if k.shape[0] == 3 else k[0].numpy(),
                      cmap=None if k.shape[0] == 3 else "gray", interpolation="nearest")
    fig.suptitle(f"First conv layer: {len(w)} filters of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def feature_maps_figure(image: torch.Tensor, maps: list[tuple[str, torch.Tensor]], per_layer: int = 12) -> bytes:
    """One row per conv layer: the input image, then the first `per_layer` channels of that layer's output."""
    rows = max(1, len(maps))
    fig, axes = plt.subplots(rows, per_layer + 1, figsize=((per_layer + 1) * 0.9, rows * 1.05), squeeze=False)
    img = image.permute(1, 2, 0).numpy()
    for r, (name, fmap) in enumerate(maps):
        axes[r, 0].imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None)
        axes[r, 0].set_title(name, fontsize=6, loc="left")
        for c in range(per_layer):
            ax = axes[r, c + 1]
            if c < fmap.shape[0]:
                ax.imshow(fmap[c].float().numpy(), cmap="viridis", interpolation="nearest")
        for ax in axes[r]:
            ax.axis("off")
    fig.suptitle("What each conv layer sees (first channels of its output)", fontsize=9)
    fig.tight_layout()
    return _png(fig)
