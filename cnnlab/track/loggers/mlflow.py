"""`loggers: [mlflow]`: the run as an MLflow run — the resolved config as params (flattened: `optimizer.lr`),
metrics per epoch (and the running training loss every `every_n_steps` steps), the final scores, the run's
files as artifacts (model, summary, curves, report, config, metrics, result) and its status (FINISHED,
FAILED, KILLED). A resumed run continues the same MLflow run (its id is kept in <run>/mlflow.json); a trial
of a sweep or rescue (config `group`) is nested under one parent run per group.

Where: `tracking_uri` in the logger's options (a server's URL, a database, or a folder: MLflow's file store),
else MLFLOW_TRACKING_URI, else MLflow's default;
the experiment: `experiment`, else MLFLOW_EXPERIMENT_NAME, else "cnnlab". A server that does not answer
fails fast (2 retries, 10 s) instead of MLflow's minutes of retrying: the logger is then dropped with one
warning and the run goes on."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ...events import Listener, register
from ...fsutil import write_text
from .common import artifacts, final_scores, final_status, need, numbers, params

STATE = "mlflow.json"        # in the run directory: where its MLflow run is, for a resume
MAX_PARAM_VALUE = 6000       # MLflow's limit on a param's value
BATCH = 100                  # MLflow's limit on params per log_batch call


@register("mlflow", "an MLflow run: params, metrics per epoch, artifacts, status (needs cnnlab[loggers])")
class MLflowLogger(Listener):
    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 every_n_steps: int | None = None, **_unused):
        need("mlflow", "loggers", "mlflow")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        import mlflow
        self.uri = tracking_uri or mlflow.get_tracking_uri()  # MLFLOW_TRACKING_URI, else MLflow's default
        if "://" not in self.uri or self.uri.startswith("file:"):  # a folder the user named: MLflow's file store
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "cnnlab"
        self.every = every_n_steps  # the trainer tells batch_end at these steps
        self.client = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None

    # ------------------------------------------------------------------ the run
    def on_fit_start(self, d, event) -> None:
        from mlflow import MlflowClient
        self.client = MlflowClient(tracking_uri=self.uri)
        self.run_dir = Path(d["run_dir"])
        experiment_id = self._experiment_id()
        kept = self._kept(experiment_id) if d["history"] else None
        if kept:  # a resume: the same MLflow run goes on
            self.run_id = kept
            self.client.update_run(self.run_id, status="RUNNING")
            return
        config = d["config"]
        tags = {"cnnlab.run_dir": str(self.run_dir), "cnnlab.run_id": self.run_dir.name,
                "cnnlab.model": d["summary"].get("name", ""), "cnnlab.data": d["data"]["name"]}
        if config.get("parent"):
            tags["cnnlab.parent"] = config["parent"]
        if config.get("group"):
            tags["cnnlab.group"] = config["group"]
            tags["mlflow.parentRunId"] = self._group_run(experiment_id, config["group"])
        run = self.client.create_run(experiment_id, run_name=d["name"], tags=tags)
        self.run_id = run.info.run_id
        write_text(self.run_dir / STATE, json.dumps({"tracking_uri": self.uri, "experiment_id": experiment_id,
                                                     "run_id": self.run_id}))
        self._log_params({k: v for k, v in params(config).items() if v != "None"})  # unset keys say nothing
        self._log_params({"params_trainable": str(d["summary"].get("params_trainable")),
                          "train_images": str(d["data"].get("train"))})

    def on_batch_end(self, d, event) -> None:
        if self.every and d["step"] % self.every == 0:
            self._log_metrics({"step_loss": d["loss"], "step_acc": d["acc"], "step_lr": d["lr"]}, d["step"])

    def on_epoch_end(self, d, event) -> None:
        self._log_metrics(numbers(d["row"]), d["row"]["epoch"])

    def on_result(self, result, event) -> None:
        self._log_metrics({f"final_{k}" if not k.startswith("final_") else k: v
                           for k, v in final_scores(result).items()}, result.get("epochs_completed") or 0)

    def on_end(self, d, event) -> None:
        if self.run_id is None:
            return  # ended before it trained: there is no MLflow run to close
        try:
            for path in artifacts(self.run_dir):
                self.client.log_artifact(self.run_id, str(path))
        finally:  # the status first of all: a run is never left RUNNING by an upload that failed
            self.client.set_terminated(self.run_id, final_status(d["status"]))

    def dropped(self, exc: Exception) -> None:
        """Dropped mid-run (the Emitter calls this): the MLflow run says FAILED, if the server still answers."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED")

    # ------------------------------------------------------------------ helpers
    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        return found.experiment_id if found else self.client.create_experiment(self.experiment)

    def _kept(self, experiment_id: str) -> str | None:
        """The MLflow run this run directory logged to before, if it is on this server."""
        try:
            state = json.loads((self.run_dir / STATE).read_text())
        except (OSError, ValueError):
            return None
        if state.get("tracking_uri") != self.uri or state.get("experiment_id") != experiment_id:
            return None
        return state.get("run_id")

    def _group_run(self, experiment_id: str, group: str) -> str:
        """The parent run of a sweep's or rescue's trials: found by its tag, made on the first trial."""
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`cnnlab.group` = '{group}' and "
                                                                        "tags.`cnnlab.role` = 'group'",
                                        max_results=1)
        if found:
            return found[0].info.run_id
        run = self.client.create_run(experiment_id, run_name=group, tags={"cnnlab.group": group,
                                                                          "cnnlab.role": "group"})
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def _log_params(self, values: dict[str, str]) -> None:
        from mlflow.entities import Param
        items = [Param(k[:250], v if len(v) <= MAX_PARAM_VALUE else v[:MAX_PARAM_VALUE - 1] + "…")
                 for k, v in values.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + BATCH])

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, int(step)) for k, v in values.items()])
