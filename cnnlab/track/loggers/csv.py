"""`loggers: [csv]`: every metric as it comes, one row each (time, epoch, step, metric, value) in
<run>/log.csv — per epoch always, per `every_n_steps` steps for the running training loss and accuracy
(default 50). Long format, as MLflow and W&B keep metrics: `pandas.read_csv(...).pivot_table(...)` reshapes it."""
from __future__ import annotations

import csv as csvlib
import time
from pathlib import Path

from ...events import Listener, register
from ...fsutil import write_text
from .common import final_scores, numbers

COLUMNS = ("time", "epoch", "step", "metric", "value")


@register("csv", "every metric as a row of <run>/log.csv (time, epoch, step, metric, value)")
class CSVLogger(Listener):
    name = "csv"

    def __init__(self, every_n_steps: int | None = None, **_unused):
        self.every = every_n_steps or 50  # the trainer tells batch_end at these steps
        self.path: Path | None = None

    def _write(self, rows: list[tuple]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:  # appended: a resumed run goes on in the same file
            out = csvlib.writer(f)
            if new:
                out.writerow(COLUMNS)
            out.writerows(rows)

    def on_fit_start(self, d, event) -> None:
        self.path = Path(d["run_dir"]) / "log.csv"
        self._drop_after(len(d["history"]))

    def _drop_after(self, epochs: int) -> None:
        """A resumed run trains again from its checkpoint: rows a killed attempt logged past it go, as
        metrics.csv's do."""
        if not self.path.exists():
            return
        with self.path.open(newline="") as f:
            rows = list(csvlib.reader(f))
        kept = rows[:1] + [r for r in rows[1:] if r[1] and int(r[1]) <= epochs and not r[3].startswith("final/")]
        if len(kept) != len(rows):
            write_text(self.path, "".join(",".join(r) + "\n" for r in kept))

    def on_batch_end(self, d, event) -> None:
        if d["step"] % self.every:
            return
        now = round(time.time(), 3)
        self._write([(now, d["epoch"], d["step"], f"step_{k}", v) for k, v in
                     numbers({"loss": d["loss"], "acc": d["acc"], "lr": d["lr"]}).items()])

    def on_epoch_end(self, d, event) -> None:
        row, now = d["row"], round(time.time(), 3)
        self._write([(now, row["epoch"], None, k, v) for k, v in numbers(row).items()])

    def on_result(self, result, event) -> None:
        if self.path is not None:
            now = round(time.time(), 3)
            self._write([(now, result.get("epochs_completed"), None, f"final/{k}", v)
                         for k, v in final_scores(result).items()])
