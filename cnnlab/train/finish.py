"""The end of a run: the final test evaluation (last epoch's weights), the weights file, result.json and
curves.png; and re-evaluating a finished run later (`cnnlab eval`)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from .. import faults
from ..device import peak_memory
from ..errors import UserError
from ..fsutil import atomic_path, write_text
from ..models.summary import summarize
from ..rundir import Run
from .session import prepare_data
from .trained import TrainedModel


def _versions() -> dict:
    from ..version import __version__
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


def _test_scores(session) -> dict:
    """Test loss and accuracy of the final weights, and with flip TTA where training flipped: computed as
    `cnnlab eval` computes them later, by the same TrainedModel."""
    t = session.trainer
    known = {}
    last = t.history[-1] if t.history else {}
    if last.get("test_acc") is not None and last["epoch"] == t.epoch and t.stop_reason is None:
        known.update(loss=last["test_loss"], acc=last["test_acc"])  # the last epoch scored these same weights
        seen = t.last_evaluation
        if seen is not None and seen["split"] == "test" and seen["step"] == t.step:
            known["probs"] = seen["probs"]  # and its plain view is the first of the test-time views
    scores = TrainedModel.from_session(session).evaluate(session.data.test_x, session.data.test_y, "test", known)
    faults.hit("final-eval")
    return scores


def _save_weights(session, run_dir: Path) -> None:
    from safetensors.torch import save_file
    state = {k: v.detach().cpu().contiguous() for k, v in session.model.state_dict().items()}
    with atomic_path(run_dir / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"classes": json.dumps(session.data.classes)})
        faults.hit("weights-write")


def finish_run(session, run_dir: Path, status: str, message: str | None = None, also_write=()) -> dict:
    """Write the run's end and return result.json's content. An interrupted run's state is its checkpoint."""
    t = session.trainer
    result = {"status": status, "epochs_completed": t.epoch, "epochs": session.cfg.epochs}
    if t.epoch > 0 and status == "finished" and session.cfg.evaluate_test:
        result.update(_test_scores(session))
        _save_weights(session, run_dir)
    val_rows = [r for r in t.history if r.get("val_acc") is not None]
    if val_rows:
        result["val_acc"] = val_rows[-1]["val_acc"]
        result["best_val_acc"] = max(r["val_acc"] for r in val_rows)
    # a fine-tune's frozen layers count as trainable once they trained (the summary at the start says frozen)
    summary = summarize(session.model) if t.finetune is not None and not t.finetune.is_frozen(t.epoch - 1) \
        else session.summary
    result.update({
        "final_acc": result.get("test_acc_tta", result.get("test_acc")),
        "params_trainable": summary.trainable, "params_non_trainable": summary.non_trainable,
        "macs": summary.macs, "wall_time_s": round(t.elapsed, 2),
        "device": session.placement.describe(), "threads": torch.get_num_threads(),
        "peak_memory": peak_memory(session.placement.device),
        "model": summary.name, "data": session.data.name, "versions": _versions(),
        "git_commit": _git_commit(), "finished_at": datetime.now().isoformat(timespec="seconds"),
    })
    if session.cfg.weights:  # where the run started from: the report and Compare say it
        result["weights"] = session.weights.as_dict() if session.weights else {"source": session.cfg.weights}
    if message or t.stop_reason:
        result["message"] = message or t.stop_reason
    for write in also_write:  # the job's own files (the curves), before the result that says all is there
        write(session, run_dir)
    faults.hit("result-write")
    write_text(run_dir / "result.json", json.dumps(result, indent=2))  # last: a finished result means all is there
    return result


def evaluate_run(run_dir: str | os.PathLike, data: str | None = None, data_dir: str | None = None,
                 split: str = "test") -> dict:
    """Re-evaluate a run's final model on its test set (or another data set with the same classes): result.json's
    keys ({split}_acc, {split}_loss, and with TTA {split}_acc_tta, {split}_loss_tta, tta), the split and the
    number of images. On the same data and device the figures are result.json's to the last digit."""
    run = Run(run_dir)
    cfg = run.config
    if data:
        cfg.data.name = data
    if data_dir:
        cfg.data.dir = data_dir
    cfg.data.limit = None
    trained = TrainedModel.load(run)
    dataset = prepare_data(cfg)
    if dataset.input_shape != trained.input_shape or dataset.num_classes != len(trained.classes):
        raise UserError(f"{dataset.name} has {dataset.num_classes} classes of {dataset.input_shape}; the run was "
                        f"trained on {len(trained.classes)} classes of {trained.input_shape}")
    x, y = (dataset.test_x, dataset.test_y) if split == "test" else (dataset.val_x, dataset.val_y)
    if x is None:
        raise UserError(f"the run has no '{split}' split")
    return {"split": split, "images": len(y), **trained.evaluate(x, y, split)}
