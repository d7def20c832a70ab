"""Optional TensorBoard logging, for users who live there: one scalar per metric per epoch."""
from __future__ import annotations

from ..errors import UserError


class TensorBoardLogger:
    def __init__(self, session):
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401 — needs the tensorboard package
        except ImportError:
            raise UserError("tensorboard logging needs the tensorboard package: pip install tensorboard "
                            "(or drop --tensorboard)") from None
        self.session = session
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(self.session.dir / "tensorboard"))

    def on_epoch_end(self, trainer) -> None:
        row = trainer.history[-1]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                group = "val" if key.startswith("val_") else "test" if key.startswith("test_") else "train"
                self.writer.add_scalar(f"{group}/{key}", value, row["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        if self.writer:
            self.writer.close()
