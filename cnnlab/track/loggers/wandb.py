"""`loggers: [wandb]`: the run as a Weights & Biases run, with the same content as MLflow's — the resolved
config, metrics per epoch (x axis `epoch`) and every `every_n_steps` steps (x axis `step`), the final scores
in the summary, the run's files as a `model` artifact, and its ending as the exit code. Offline unless the
user's environment says otherwise (WANDB_MODE; set WANDB_MODE=online after `wandb login`): the files go to
<run>/wandb (or the logger's `dir`), ready for `wandb sync`. A resumed run continues the same W&B run (its
id is kept in <run>/wandb.json); a trial of a sweep or rescue is in the W&B group of its config's `group`."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from ...events import Listener, register
from ...fsutil import write_text
from .common import artifacts, final_scores, need, numbers, params

STATE = "wandb.json"


@register("wandb", "a Weights & Biases run, offline by default: files for `wandb sync` (needs cnnlab[loggers])")
class WandbLogger(Listener):
    name = "wandb"

    def __init__(self, experiment: str | None = None, dir: str | None = None, every_n_steps: int | None = None,
                 **_unused):
        need("wandb", "loggers", "wandb")
        self.project = experiment or os.environ.get("WANDB_PROJECT") or "cnnlab"
        self.dir = dir
        self.every = every_n_steps  # the trainer tells batch_end at these steps
        self.run = None
        self.run_dir: Path | None = None

    def on_fit_start(self, d, event) -> None:
        import wandb
        self.run_dir = Path(d["run_dir"])
        folder = Path(self.dir) if self.dir else self.run_dir
        folder.mkdir(parents=True, exist_ok=True)
        run_id = self._kept_id() if d["history"] else None
        config = d["config"]
        self.run = wandb.init(
            project=self.project, name=d["name"], id=run_id or uuid.uuid4().hex[:8], resume="allow",
            dir=str(folder), mode=os.environ.get("WANDB_MODE") or "offline", group=config.get("group"),
            config=params(config), reinit="create_new",
            tags=[t for t in (d["data"]["name"], config.get("parent") and f"parent:{config['parent']}") if t],
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
        self.run.define_metric("epoch")
        self.run.define_metric("step")
        self.run.define_metric("step_*", step_metric="step")
        for key in ("loss", "acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr", "seconds", "img_per_s"):
            self.run.define_metric(key, step_metric="epoch")
        self.run.summary.update({"params_trainable": d["summary"].get("params_trainable"),
                                 "train_images": d["data"].get("train")})
        write_text(self.run_dir / STATE, json.dumps({"id": self.run.id, "project": self.project}))

    def on_batch_end(self, d, event) -> None:
        if self.every and d["step"] % self.every == 0:
            self.run.log({"step": d["step"], "step_loss": d["loss"], "step_acc": d["acc"], "step_lr": d["lr"]})

    def on_epoch_end(self, d, event) -> None:
        self.run.log({"epoch": d["row"]["epoch"], **numbers(d["row"])})

    def on_result(self, result, event) -> None:
        if self.run is not None:
            self.run.summary.update({"status": result["status"], **{f"final/{k}": v for k, v in
                                                                   final_scores(result).items()}})

    def on_end(self, d, event) -> None:
        if self.run is None:
            return
        import wandb
        files = artifacts(self.run_dir)
        if files:
            artifact = wandb.Artifact(f"{self.run_dir.name}-files".replace("+", "-"), type="model")
            for path in files:
                artifact.add_file(str(path))
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if d["status"] == "finished" else 1)
        self.run = None

    def _kept_id(self) -> str | None:
        try:
            state = json.loads((self.run_dir / STATE).read_text())
        except (OSError, ValueError):
            return None
        return state.get("id") if state.get("project") == self.project else None
