"""`loggers: [tensorboard]` (or `tensorboard: true`): one scalar per metric per epoch in <run>/tensorboard,
and the running training loss every `every_n_steps` steps where asked."""
from __future__ import annotations

from pathlib import Path

from ...events import Listener, register
from .common import need, numbers


@register("tensorboard", "scalars per epoch in <run>/tensorboard (needs the tensorboard package)")
class TensorBoardLogger(Listener):
    name = "tensorboard"

    def __init__(self, every_n_steps: int | None = None, **_unused):
        need("tensorboard", "loggers", "tensorboard")
        self.every = every_n_steps  # the trainer tells batch_end at these steps
        self.writer = None

    def on_fit_start(self, d, event) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(Path(d["run_dir"]) / "tensorboard"))

    def on_batch_end(self, d, event) -> None:
        if self.every and d["step"] % self.every == 0:
            self.writer.add_scalar("step/loss", d["loss"], d["step"])
            self.writer.add_scalar("step/acc", d["acc"], d["step"])

    def on_epoch_end(self, d, event) -> None:
        row = d["row"]
        for key, value in numbers(row).items():
            group = "val" if key.startswith("val_") else "test" if key.startswith("test_") else "train"
            self.writer.add_scalar(f"{group}/{key}", value, row["epoch"])
        self.writer.flush()

    def on_end(self, d, event) -> None:
        if self.writer:
            self.writer.close()
