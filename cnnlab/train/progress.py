"""What the user watches on a terminal: a Keras-style bar within each epoch and one line per finished
epoch. A listener of the job's events, like the store and TensorBoard."""
from __future__ import annotations

import sys

from ..events import Listener


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


def stopped_line(result: dict, resume: str) -> str:
    """What a stopped run says: how far it got and how to go on (`resume`: the command, or the Python call)."""
    done = result["epochs_completed"]
    return f"Stopped after {done} finished epoch{'' if done == 1 else 's'}; resume with: {resume}"


def result_line(result: dict, run_dir) -> str:
    """The one line --quiet keeps: what a log needs."""
    line = f"Test accuracy {result['test_acc']:.4f}"
    if "test_acc_tta" in result:
        line += f" ({result['test_acc_tta']:.4f} with {result.get('tta', 'flip')} TTA)"
    return f"{line} after {result['epochs_completed']} epochs in {fmt_seconds(result['wall_time_s'])}  ->  {run_dir}"


class Progress(Listener):
    """On a terminal it redraws a bar; in logs (not a tty) it prints epoch lines only; --quiet keeps the result."""

    def __init__(self, quiet: bool = False, stream=None):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.live = (not quiet) and self.stream.isatty()

    def write(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def on_log(self, data, event) -> None:
        if self.quiet and data["text"].startswith("warning"):
            print(data["text"], file=sys.stderr, flush=True)  # --quiet keeps warnings, where logs go
        self.write(data["text"])

    def on_batch_end(self, d, event) -> None:
        if not self.live:
            return
        width, done, total = 24, d["batch"], d["batches"]
        filled = int(width * done / total)
        bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + "." * (width - filled)
        self.stream.write(f"\r{done:>{len(str(total))}}/{total} [{bar}] loss {d['loss']:.4f}  "
                          f"acc {d['acc']:.4f}  {d['img_per_s']:.0f} img/s ")
        self.stream.flush()

    def on_epoch_end(self, d, event) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        self.write(epoch_line(d["row"], d["epochs"]))

    def on_result(self, result, event) -> None:
        if result["status"] == "finished":
            print(result_line(result, event.run), file=self.stream, flush=True)
        elif result["status"] == "interrupted":
            self.write("\n" + stopped_line(result, f"cnnlab resume {event.run}"))

    def on_diagnosis(self, d, event) -> None:
        self.write(d["text"])
