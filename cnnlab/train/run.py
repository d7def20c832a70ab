"""One path from a config to a finished run directory, and the `Run` that later tools read.

runs/<date>-<time>-<name>/
  config.yaml        the resolved config (defaults, augmentation and model written out)
  data.json          classes, input shape, normalisation: what predict needs without the data set
  summary.txt        the model summary
  metrics.csv        one row per epoch
  checkpoint.pt      everything to resume, written atomically every epoch
  model.safetensors  final weights
  result.json        final accuracy, size, cost, time, device, versions, commit, status
  curves.png         loss and accuracy curves
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from .. import config as config_mod
from ..data import ImageDataset, load_dataset
from ..device import available_memory, choose_placement
from ..errors import UserError
from ..fsutil import atomic_path, write_text
from ..models import build_model, resolve_spec
from ..models.summary import render, summarize
from ..viz.curves import plot_curves
from .augment import Augmenter
from .engine import Diverged, Trainer, evaluate
from .progress import Progress, fmt_seconds

METRIC_COLUMNS = ("epoch", "lr", "loss", "acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds", "img_per_s")


# ---------------------------------------------------------------------------- the Run a user gets back

class Run:
    """A run directory, read back: config, metrics table, result, and (lazily) the trained model."""

    def __init__(self, path: str | os.PathLike):
        self.dir = Path(path)
        if not (self.dir / "config.yaml").exists():
            raise UserError(f"{self.dir}: not a cnnlab run directory (no config.yaml)")
        self._model = None

    @property
    def config(self) -> dict:
        from ..yamlio import load_yaml
        config = load_yaml(self.dir / "config.yaml").data
        if not isinstance(config, dict):
            raise UserError(f"{self.dir / 'config.yaml'}: not a cnnlab run config (a mapping of keys was expected)")
        return config

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

    def __repr__(self) -> str:
        acc = self.result.get("test_acc")
        return f"Run({str(self.dir)!r}, test_acc={acc})"


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
    import yaml
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    info = json.loads((run_dir / "data.json").read_text())
    model = build_model(cfg["model"], info["input_shape"], len(info["classes"]))
    final = run_dir / "model.safetensors"
    if weights in ("auto", "final") and final.exists():
        from safetensors.torch import load_file
        model.load_state_dict(load_file(str(final)))
    elif (run_dir / "checkpoint.pt").exists():
        model.load_state_dict(torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["model"])
    else:
        raise UserError(f"{run_dir}: no model.safetensors or checkpoint.pt to load weights from")
    return model.eval()


# ---------------------------------------------------------------------------- callbacks writing the run

class RunWriter:
    """Writes metrics.csv and checkpoint.pt after every epoch (atomically), so a killed run can resume."""

    def __init__(self, session: "Session"):
        self.session = session

    @property
    def dir(self) -> Path:
        return self.session.dir

    def _save_checkpoint(self, trainer) -> None:
        with atomic_path(self.dir / "checkpoint.pt") as tmp:
            torch.save(trainer.state_dict(), tmp)

    def on_fit_start(self, trainer) -> None:
        write_metrics(self.dir / "metrics.csv", trainer.history)

    def on_epoch_end(self, trainer) -> None:
        write_metrics(self.dir / "metrics.csv", trainer.history)
        self._save_checkpoint(trainer)

    def on_diverged(self, trainer) -> None:
        write_metrics(self.dir / "metrics.csv", trainer.history)  # the NaN row, for the doctor; checkpoint kept


class StoreWriter:
    """Indexes the run in the SQLite store as it goes. The store is an index: if it cannot be written, the
    run carries on (its directory holds everything) and `cnnlab runs reindex` recovers it."""

    def __init__(self, session: "Session", store):
        self.session, self.store = session, store

    def _safely(self, action) -> None:
        try:
            action()
        except UserError as exc:
            self.session.log(f"warning: {exc}")

    def on_fit_start(self, trainer) -> None:
        s = self.session
        self._safely(lambda: self.store.record_start(s.dir, s.cfg, s.summary.as_dict(), s.data.name))
        for row in trainer.history:  # a resumed run re-records its epochs (and drops any after the checkpoint)
            self._safely(lambda row=row: self.store.record_epoch(s.dir.name, row))

    def on_epoch_end(self, trainer) -> None:
        self._safely(lambda: self.store.record_epoch(self.session.dir.name, trainer.history[-1]))

    on_diverged = on_epoch_end

    def on_result(self, result: dict) -> None:
        self._safely(lambda: self.store.record_result(self.session.dir.name, result))


# ---------------------------------------------------------------------------- assembling a run

def _versions() -> dict:
    from .. import __version__
    return {"cnnlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_data(cfg: dict) -> ImageDataset:
    d = cfg["data"]
    dataset = load_dataset(d["name"], d["dir"], d["val_split"] or None, cfg["seed"], d["root"], d["image_size"],
                           d["download"])
    if d["limit"]:
        dataset.train_x, dataset.train_y = dataset.train_x[:d["limit"]], dataset.train_y[:d["limit"]]
    return dataset


def _check_memory(summary, cfg: dict, placement) -> None:
    free = available_memory(placement.device)
    params = summary.total
    # weights + gradients + two optimizer slots (Adam), and activations kept for backward in the batch
    need = params * 4 * 4 + summary.activations_per_image * cfg["batch_size"] * 4 * 3
    if free is not None and need > 0.9 * free:
        raise UserError(f"the model needs about {need / 2**30:.1f} GB for batch_size {cfg['batch_size']} "
                        f"({params:,} parameters), but only {free / 2**30:.1f} GB is free on "
                        f"{placement.device.type}; lower batch_size, narrow the layers, or pool earlier")


def new_run_dir(cfg: dict, run_dir: str | None, runs_root: str | None, overwrite: bool) -> Path:
    if run_dir:
        path = Path(run_dir)
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise UserError(f"{path}: the run directory already exists; choose another --run-dir, "
                                "or pass --overwrite to replace it (or `cnnlab resume` it)")
            for name in ("metrics.csv", "checkpoint.pt", "model.safetensors", "result.json", "curves.png"):
                (path / name).unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        return path
    root = Path(runs_root or os.environ.get("CNNLAB_RUNS") or "runs")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}-{cfg['name']}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    path.mkdir(parents=True)
    return path


def _inline_model(cfg: dict) -> None:
    """A model given as a YAML file is copied into the config, so the run directory stands alone."""
    model = cfg["model"]
    if isinstance(model, str) and (model.endswith((".yaml", ".yml")) or Path(model).is_file()):
        cfg["model"] = resolve_spec(model, (1, 1, 1), 1).data


class Session:
    """Everything a run needs in memory: config, data, model, placement, augmenter, trainer."""

    def __init__(self, cfg: dict, run_dir: Path | None, quiet: bool, resume_state: dict | None = None, log=None,
                 store=None):
        self.cfg, self.dir = cfg, run_dir  # dir may be set later: nothing is written before fit starts
        self.progress = Progress(quiet=quiet)
        self.log = log or self.progress.write
        if cfg["threads"]:
            torch.set_num_threads(int(cfg["threads"]))
        torch.manual_seed(cfg["seed"])
        self.placement = choose_placement(cfg["device"], cfg["precision"], cfg["channels_last"])
        self.data = prepare_data(cfg)
        with torch.device("meta"):  # sizes first, allocating nothing: a model too big for memory fails here
            _check_memory(summarize(build_model(cfg["model"], self.data.input_shape, self.data.num_classes)),
                          cfg, self.placement)
        self.model = build_model(cfg["model"], self.data.input_shape, self.data.num_classes)
        self.summary = summarize(self.model)
        self.model.to(self.placement.device)
        if self.placement.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.mean, self.std = self.data.channel_stats()
        self.augmenter = Augmenter(cfg["augment"], self.mean, self.std, self.placement.device,
                                   self.placement.channels_last)
        callbacks = [RunWriter(self), self.progress]
        self.store_writer = StoreWriter(self, store) if store is not None else None
        if self.store_writer:
            callbacks.append(self.store_writer)
        if cfg.get("tensorboard"):
            from ..track.tensorboard import TensorBoardLogger
            callbacks.append(TensorBoardLogger(self))
        self.trainer = Trainer(self.model, self.data, cfg, self.augmenter, self.placement, callbacks=callbacks)
        if resume_state is not None:
            self.trainer.load_state_dict(resume_state)

    def write_start_files(self) -> None:
        write_text(self.dir / "config.yaml", config_mod.dump(self.cfg))
        info = {"name": self.data.name, "classes": self.data.classes, "input_shape": list(self.data.input_shape),
                "mean": self.mean, "std": self.std, "train": len(self.data.train_x), "test": len(self.data.test_x),
                "val": 0 if self.data.val_x is None else len(self.data.val_x)}
        write_text(self.dir / "data.json", json.dumps(info, indent=2))
        write_text(self.dir / "summary.txt", render(self.summary, self.cfg["batch_size"]) + "\n")

    def finish(self, status: str, message: str | None = None) -> dict:
        """Final test evaluation (last epoch's weights), weights, result.json and curves.png."""
        from safetensors.torch import save_file
        t = self.trainer
        result = {"status": status, "epochs_completed": t.epoch, "epochs": self.cfg["epochs"]}
        if t.epoch > 0 and status == "finished":  # an interrupted run's state is its checkpoint
            tta = bool(self.cfg["tta"]) and self.augmenter.flips_horizontally
            plain = evaluate(self.model, self.data.test_x, self.data.test_y, self.augmenter, self.placement,
                             self.cfg["eval_batch_size"], probabilities=t.probabilities)
            result.update(test_loss=plain["loss"], test_acc=plain["acc"])
            if tta:
                flip = evaluate(self.model, self.data.test_x, self.data.test_y, self.augmenter, self.placement,
                                self.cfg["eval_batch_size"], tta=True, probabilities=t.probabilities)
                result.update(test_acc_tta=flip["acc"], test_loss_tta=flip["loss"])
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
            with atomic_path(self.dir / "model.safetensors") as tmp:
                save_file(state, str(tmp), metadata={"classes": json.dumps(self.data.classes)})
        val_rows = [r for r in t.history if r.get("val_acc") is not None]
        if val_rows:
            result["val_acc"] = val_rows[-1]["val_acc"]
            result["best_val_acc"] = max(r["val_acc"] for r in val_rows)
        result.update({
            "final_acc": result.get("test_acc_tta", result.get("test_acc")),
            "params_trainable": self.summary.trainable, "params_non_trainable": self.summary.non_trainable,
            "macs": self.summary.macs, "wall_time_s": round(t.elapsed, 2),
            "device": self.placement.describe(), "threads": torch.get_num_threads(),
            "model": self.summary.name, "data": self.data.name, "versions": _versions(),
            "git_commit": _git_commit(), "finished_at": datetime.now().isoformat(timespec="seconds"),
        })
        if message or t.stop_reason:
            result["message"] = message or t.stop_reason
        write_text(self.dir / "result.json", json.dumps(result, indent=2))
        if self.store_writer:
            self.store_writer.on_result(result)
        if t.history:
            plot_curves({self.summary.name: t.history}, self.dir / "curves.png",
                        f"{self.summary.name} on {self.data.name}")
        return result

    def run(self) -> Run:
        from ..diagnose.lint import lint
        for finding in lint(self.model):
            self.log(finding.render())
        self.log(f"Run {self.dir}  ({self.summary.name} on {self.data.name}, {self.summary.trainable:,} params, "
                 f"{self.placement.describe()}, {len(self.data.train_x):,} training images)")
        try:
            self.trainer.fit()
        except KeyboardInterrupt:
            result = self.finish("interrupted", f"interrupted during epoch {self.trainer.epoch + 1}")
            self.log(f"\nInterrupted after {self.trainer.epoch} finished epochs; resume with: cnnlab resume {self.dir}")
            raise
        except Diverged as exc:
            self.finish("diverged", str(exc))
            raise
        result = self.finish("finished")
        if self.trainer.stop_reason:
            self.log(self.trainer.stop_reason)
        line = f"Test accuracy {result['test_acc']:.4f}"
        if "test_acc_tta" in result:
            line += f" ({result['test_acc_tta']:.4f} with flip TTA)"
        # the one line --quiet keeps: what a log needs
        print(f"{line} after {self.trainer.epoch} epochs in {fmt_seconds(self.trainer.elapsed)}  ->  {self.dir}",
              flush=True)
        from ..diagnose.doctor import diagnose
        from ..diagnose.facts import run_facts
        facts = run_facts(self.model, self.cfg, self.cfg["data"]["name"])
        self.log(diagnose(self.trainer.history, self.data.num_classes, facts).render())
        return Run(self.dir)


def _default_name(model) -> str:
    if isinstance(model, str):
        return model
    if isinstance(model, dict):
        return str(model.get("name") or model.get("model") or str(model.get("module", "model")).split(":")[-1])
    return "model"


def prepare_config(config=None, overrides: list[str] | None = None, flags: dict | None = None) -> dict:
    """The resolved config as a run records it: model inlined, name set, augmentation written out."""
    cfg, _ = config_mod.resolve(config, overrides, flags)
    _inline_model(cfg)
    cfg["name"] = cfg["name"] or _default_name(cfg["model"])
    name = cfg["data"]["name"]
    cfg["augment"] = config_mod.augment_settings(cfg, name if name in config_mod.AUGMENT_DEFAULTS else "imagefolder")
    return cfg


def train(config=None, overrides: list[str] | None = None, flags: dict | None = None, run_dir: str | None = None,
          runs_root: str | None = None, overwrite: bool = False, quiet: bool = False, store=True) -> Run:
    """Train as `cnnlab train` does. `config` is a path, YAML text or a dict; returns the finished Run.

    `store`: True records the run in the default store (runs/cnnlab.db), a path records it there, False not at all.
    """
    cfg = prepare_config(config, overrides, flags)
    if run_dir and Path(run_dir).exists() and any(Path(run_dir).iterdir()) and not overwrite:
        new_run_dir(cfg, run_dir, runs_root, overwrite)  # raises 'already exists' before any work
    # Load the data and build the model first: bad input fails before a run directory is claimed.
    session = Session(cfg, None, quiet, store=_open_store(store, runs_root))
    session.dir = new_run_dir(cfg, run_dir, runs_root, overwrite)
    session.write_start_files()
    return session.run()


def _open_store(store, runs_root=None):
    if store is False or store is None:
        return None
    from ..track.store import Store
    if store is True:
        return Store(Path(runs_root) / "cnnlab.db" if runs_root else None)
    return Store(store)


def resume(run_dir: str | os.PathLike, quiet: bool = False, store=True) -> Run:
    """Continue a run from its last checkpoint; with a fixed seed on the CPU it ends as if never stopped."""
    run_dir = Path(run_dir)
    import yaml
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"{run_dir}: not a cnnlab run directory (no config.yaml)")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    checkpoint = run_dir / "checkpoint.pt"
    state = None
    if checkpoint.exists():
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 — a damaged file is the user's to know about
            raise UserError(f"{checkpoint}: cannot be read ({exc}); the run cannot resume from it") from None
    session = Session(cfg, run_dir, quiet, resume_state=state, store=_open_store(store))
    if state is not None and state["epoch"] >= cfg["epochs"] and (run_dir / "result.json").exists() \
            and json.loads((run_dir / "result.json").read_text()).get("status") == "finished":
        session.log(f"{run_dir} already finished all {cfg['epochs']} epochs; nothing to resume")
        return Run(run_dir)
    (run_dir / "result.json").unlink(missing_ok=True)
    session.log(f"Resuming {run_dir} after epoch {session.trainer.epoch}")
    return session.run()


def evaluate_run(run_dir: str | os.PathLike, data: str | None = None, data_dir: str | None = None,
                 split: str = "test") -> dict:
    """Re-evaluate a run's final model on its test set (or another data set with the same classes)."""
    run = Run(run_dir)
    cfg = run.config
    if data:
        cfg["data"]["name"] = data
    if data_dir:
        cfg["data"]["dir"] = data_dir
    cfg["data"]["limit"] = None
    info = run.data_info
    dataset = prepare_data(cfg)
    if dataset.input_shape != tuple(info["input_shape"]) or dataset.num_classes != len(info["classes"]):
        raise UserError(f"{dataset.name} has {dataset.num_classes} classes of {dataset.input_shape}; the run was "
                        f"trained on {len(info['classes'])} classes of {tuple(info['input_shape'])}")
    placement = choose_placement(cfg["device"], cfg["precision"], cfg["channels_last"])
    model = run.model.to(placement.device)
    augmenter = Augmenter(cfg["augment"], info["mean"], info["std"], placement.device, placement.channels_last)
    x, y = (dataset.test_x, dataset.test_y) if split == "test" else (dataset.val_x, dataset.val_y)
    if x is None:
        raise UserError(f"the run has no '{split}' split")
    probs = getattr(model, "outputs_probabilities", False)
    out = evaluate(model, x, y, augmenter, placement, cfg["eval_batch_size"], probabilities=probs)
    result = {"split": split, "images": len(y), "loss": out["loss"], "acc": out["acc"]}
    if cfg.get("tta") and augmenter.flips_horizontally:
        result["acc_tta"] = evaluate(model, x, y, augmenter, placement, cfg["eval_batch_size"], tta=True,
                                     probabilities=probs)["acc"]
    return result
