"""Optional TensorBoard logging, for users who live there: one scalar per metric per epoch."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..events import Listener


class TensorBoardLogger(Listener):
    def __init__(self):
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401 — needs the tensorboard package
        except ImportError:
            raise UserError("tensorboard logging needs the tensorboard package: pip install tensorboard "
                            "(or drop --tensorboard)") from None
        self.writer = None

    def on_start(self, d, event) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(Path(d["run_dir"]) / "tensorboard"))

    def on_epoch(self, d, event) -> None:
        row = d["row"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                group = "val" if key.startswith("val_") else "test" if key.startswith("test_") else "train"
                self.writer.add_scalar(f"{group}/{key}", value, row["epoch"])
        self.writer.flush()

    def on_end(self, d, event) -> None:
        if self.writer:
            self.writer.close()
