"""A run directory: its layout, and `Run`, which reads one back. Training writes it; every later tool (the
store, the doctor, the report, the web page) reads it through here and never reaches into the trainer.

runs/<date>-<time>-<name>/
  config.yaml        the resolved config (defaults, augmentation and model written out)
  data.json          classes, input shape, normalisation: what predict needs without the data set
  summary.txt        the model summary
  skipped.txt        an image folder's files that were skipped: reason, path, detail (only when there are some)
  metrics.csv        one row per epoch
  checkpoint.pt      everything to resume, written atomically every epoch
  model.safetensors  final weights
  result.json        final accuracy, size, cost, time, device, versions, commit, status
  curves.png         loss and accuracy curves
  STOP               present while a stop has been asked for (`cnnlab stop`)
"""
from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path

import torch

from . import config as config_mod
from .errors import Conflict, UserError
from .fsutil import write_text
from .htmlrepr import block, esc, png, table
from .schema.config import TrainConfig

METRIC_COLUMNS = ("epoch", "lr", "loss", "acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds", "img_per_s")
STOP_FILE = "STOP"
SHOWN_EPOCHS = 12   # rows of the metrics table a notebook shows: the last ones; run.metrics holds them all


class Run:
    """A run directory, read back: config, metrics table, result, and (lazily) the trained model."""

    def __init__(self, path: str | os.PathLike):
        self.dir = Path(path)
        if not (self.dir / "config.yaml").exists():
            raise UserError(f"{self.dir}: not a cnnlab run directory (no config.yaml)")
        self._model = None

    @property
    def config(self) -> TrainConfig:
        """config.yaml, validated against the schema (a fresh object each time: change it freely)."""
        return config_mod.load(self.dir / "config.yaml")

    @property
    def data_info(self) -> dict:
        path = self.dir / "data.json"
        if not path.exists():
            raise UserError(f"{path}: missing: the run stopped before its data set was loaded, so it has nothing "
                            "to read; start it again with `cnnlab train`")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg})") from None

    @property
    def metrics(self) -> list[dict]:
        return read_metrics(self.dir / "metrics.csv")

    @property
    def result(self) -> dict:
        path = self.dir / "result.json"
        return json.loads(path.read_text()) if path.exists() else {"status": "running or crashed"}

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = load_model(self.dir)
        return self._model

    @property
    def summary(self):
        """The model's layer table and totals (a `Summary`: `render()` for a terminal, an HTML table in a
        notebook)."""
        from .models.summary import summarize
        return summarize(self.model)

    def __repr__(self) -> str:
        acc = self.result.get("test_acc")
        return f"Run({str(self.dir)!r}, test_acc={acc})"

    def _repr_html_(self) -> str:
        """A notebook's view of the run: name, status, test accuracy, the last epochs' metrics and curves.png."""
        result, rows = self.result, self.metrics
        facts = [f"status {result.get('status')}"]
        if result.get("test_acc") is not None:
            facts.append(f"test accuracy {result['test_acc']:.4f}")
        if result.get("model") and result.get("data"):
            facts.append(f"{result['model']} on {result['data']}")
        if result.get("wall_time_s") is not None:
            facts.append(f"{result.get('epochs_completed')} epochs in {result['wall_time_s']:.1f} s")
        parts = [f"<b>{esc(self.dir.name)}</b> \u2014 {esc(', '.join(facts))}"]
        columns = [c for c in METRIC_COLUMNS if any(r.get(c) is not None for r in rows)]
        if rows:
            if len(rows) > SHOWN_EPOCHS:
                parts.append(f"<div>the last {SHOWN_EPOCHS} of {len(rows)} epochs (run.metrics has them all)</div>")
            parts.append(table([c.replace("_", " ") for c in columns],
                               [[_metric_text(c, r.get(c)) for c in columns] for r in rows[-SHOWN_EPOCHS:]],
                               right=tuple(range(len(columns)))))
        curves = self.dir / "curves.png"
        if curves.exists():
            parts.append(f"<div>{png(curves.read_bytes(), 'loss and accuracy curves', width=660)}</div>")
        return block(*parts)


def _metric_text(column: str, value) -> str:
    if value is None:
        return ""
    formats = {"epoch": "{:d}", "lr": "{:.3g}", "seconds": "{:.1f}", "img_per_s": "{:.0f}"}
    return formats.get(column, "{:.4f}").format(int(value) if column == "epoch" else value)


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for raw in reader:
            row = {}
            for key, value in raw.items():
                if key is None:  # more fields than the header names: ignore the extras
                    continue
                try:
                    if value in ("", None):
                        row[key] = None
                    elif key == "epoch":
                        row[key] = int(value)
                    else:
                        row[key] = float(value)
                except ValueError:
                    raise UserError(f"{path} line {reader.line_num}: column '{key}' holds {value!r}, not a number; "
                                    "metrics.csv is written by cnnlab (each value a number or empty)") from None
            rows.append(row)
    return rows


def write_metrics(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]))
                         for k in METRIC_COLUMNS})
    write_text(path, buffer.getvalue())


def load_model(run_dir: Path, weights: str = "auto") -> torch.nn.Module:
    """Rebuild the model from config.yaml and data.json, and load model.safetensors (or the checkpoint)."""
    from .models import build_model
    info = json.loads((run_dir / "data.json").read_text())
    model = build_model(config_mod.load(run_dir / "config.yaml").model, info["input_shape"], len(info["classes"]))
    final = run_dir / "model.safetensors"
    if weights in ("auto", "final") and final.exists():
        from safetensors.torch import load_file
        model.load_state_dict(load_file(str(final)))
    elif (run_dir / "checkpoint.pt").exists():
        model.load_state_dict(torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["model"])
    else:
        raise UserError(f"{run_dir}: no model.safetensors or checkpoint.pt to load weights from")
    return model.eval()


def new_run_dir(name: str, run_dir: str | None, runs_root: str | None, overwrite: bool) -> Path:
    """Claim `run_dir` (refusing an existing one unless `overwrite`) or a fresh runs/<date>-<time>-<name>."""
    if run_dir:
        path = Path(run_dir)
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise UserError(f"{path}: the run directory already exists; choose another --run-dir, "
                                "or pass --overwrite to replace it (or `cnnlab resume` it)")
            # STOP first: a stop asked once the old result is gone is for this run, and is kept
            for file in (STOP_FILE, "metrics.csv", "checkpoint.pt", "model.safetensors", "result.json", "curves.png"):
                (path / file).unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        return path
    root = Path(runs_root or os.environ.get("CNNLAB_RUNS") or "runs")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}-{name}"
    root.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:  # mkdir is the claim: two runs of the same name in the same second get -1 and -2
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = Path(f"{base}-{n}")


def request_stop(run_dir: str | os.PathLike) -> Path:
    """Ask the process training `run_dir` to stop after its current batch (it checks about twice a second)."""
    run = Run(run_dir)
    status = run.result.get("status")
    if status not in (None, "running or crashed"):
        raise Conflict(f"{run.dir}: the run is not running (status {status}); nothing to stop")
    path = run.dir / STOP_FILE
    write_text(path, datetime.now().isoformat(timespec="seconds") + "\n")
    return path
