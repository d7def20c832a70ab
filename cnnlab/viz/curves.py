"""Loss and accuracy curves, train against validation/test: the picture users otherwise draw by hand."""
from __future__ import annotations

import io
from pathlib import Path

from ..mplbackend import headless

headless()
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from ..fsutil import write_bytes  # noqa: E402


def _series(rows: list[dict], key: str):
    points = [(r["epoch"], r[key]) for r in rows if r.get(key) not in (None, "")]
    return [p[0] for p in points], [float(p[1]) for p in points]


def plot_curves(runs: dict[str, list[dict]], path: str | Path, title: str = "") -> Path:
    """One figure, loss left and accuracy right; several runs overlay with one colour each."""
    write_bytes(path, curves_png(runs, title))
    return Path(path)


def curves_png(runs: dict[str, list[dict]], title: str = "") -> bytes:
    """The figure `plot_curves` writes, as PNG bytes (what a notebook shows, epoch by epoch)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        name = f"{label} " if len(runs) > 1 else ""
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(*_series(rows, metric), "-o", color=color, ms=3, label=f"{name}train")
            for prefix, style in (("val", "--s"), ("test", ":^")):
                xs, ys = _series(rows, f"{prefix}_{metric}")
                if xs:
                    ax.plot(xs, ys, style, color=color, ms=3, label=f"{name}{prefix}")
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
