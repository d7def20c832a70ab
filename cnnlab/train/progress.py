"""What the user watches: a Keras-style bar within each epoch and one line per finished epoch."""
from __future__ import annotations

import sys
import time


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m{s:02d}s"


def epoch_line(row: dict, epochs: int) -> str:
    """`Epoch 3/20  loss 1.234  acc 0.562  val_loss 1.101  val_acc 0.613  lr 0.040  12.3s  4061 img/s`."""
    parts = [f"Epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.3f}", f"acc {row['acc']:.3f}"]
    for prefix in ("val", "test"):
        if row.get(f"{prefix}_loss") is not None:
            parts += [f"{prefix}_loss {row[f'{prefix}_loss']:.3f}", f"{prefix}_acc {row[f'{prefix}_acc']:.3f}"]
    parts += [f"lr {row['lr']:.3g}", fmt_seconds(row["seconds"]), f"{row['img_per_s']:.0f} img/s"]
    return "  ".join(parts)


class Progress:
    """A training callback. On a terminal it redraws a bar; in logs (not a tty) it prints epoch lines only."""

    def __init__(self, quiet: bool = False, stream=None, refresh: float = 0.25):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.live = (not quiet) and self.stream.isatty()
        self.refresh = refresh
        self._last = 0.0

    def write(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def on_batch_end(self, trainer) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        done, total = trainer.batch_index + 1, trainer.batches_per_epoch
        if now - self._last < self.refresh and done != total:
            return
        self._last = now
        stats = trainer.running_stats()
        width = 24
        filled = int(width * done / total)
        bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + "." * (width - filled)
        self.stream.write(f"\r{done:>{len(str(total))}}/{total} [{bar}] loss {stats['loss']:.4f}  "
                          f"acc {stats['acc']:.4f}  {stats['img_per_s']:.0f} img/s ")
        self.stream.flush()

    def on_epoch_end(self, trainer) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        self.write(epoch_line(trainer.history[-1], trainer.epochs))
