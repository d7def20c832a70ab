"""A recorded run, after (or while) it trains: find it, stop it, diagnose it, compare it with others,
evaluate it again, predict with it, look inside it, write its report, export it. Everything is read from what
the run wrote (cnnlab/rundir.py), so a run trained by the CLI, the web page or a script reads the same."""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from ..diagnose.facts import diagnose_run
from ..errors import Conflict, NotFound, UserError
from ..models.weights import described
from ..rundir import Run
from ..track.compare import Comparison, config_diff, model_diff
from ..track.store import Store

UNFINISHED = (None, "queued", "running", "running or crashed")  # a run's status before its ending is written
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,150}$")


def open_run(ref: str, store: str | os.PathLike | None = None) -> Run:
    """A run directory path, or a run's name (or a unique part of it) from the store."""
    from ..track.store import default_store_path
    if Path(ref).is_dir() or "/" in str(ref) or (store is None and not default_store_path().exists()):
        return Run(ref)  # names what is wrong with the directory, if anything
    return Run(Store(store).find(ref)["path"])


def run_in(runs_root: Path, run_id: str) -> Run:
    """The run `run_id` directly under `runs_root`, or one of a rescue's runs (runs_root/rescues/NAME/run_id:
    the store's ids are unique, a rescue's name is in each of its runs' names); an id that is not a plain
    name, or names no run, is NotFound (and the message names the run, never the server's folders)."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise NotFound(f"no run '{str(run_id)[:80]}'")
    root = Path(runs_root)
    found = root / run_id if (root / run_id / "config.yaml").is_file() else \
        next((p.parent for p in root.glob(f"rescues/*/{glob.escape(run_id)}/config.yaml")), None)
    if found is None:
        raise NotFound(f"no run '{str(run_id)[:80]}'")
    return Run(found)


def diagnose(run: Run):
    """The doctor's verdict: a Verdict with render() and as_dict()."""
    return diagnose_run(run)


def provisional(run: Run, rows: list[dict]) -> dict | None:
    """The doctor's reading of the curve so far, without the model's facts: cheap enough for every epoch."""
    from ..diagnose.doctor import diagnose as from_rows
    try:
        return from_rows(rows, len(run.data_info["classes"]), None).as_dict()
    except UserError:
        return None


def detail(run: Run) -> dict:
    """What the Runs page shows of one run: config, per-epoch rows, result and the doctor's verdict."""
    try:
        data = run.data_info
    except UserError:
        data = None
    try:
        verdict = diagnose_run(run) if data and run.metrics else None
    except UserError:
        verdict = None
    config = run.config.model_dump()
    if config.get("weights") and Path(config["weights"]).is_dir():
        config["weights"] = Path(config["weights"]).name  # the run it started from, by id, as a request names it
    return {"id": run.dir.name, "config": config, "metrics": run.metrics, "result": public_result(run.result),
            "data": data, "verdict": verdict.as_dict() if verdict else None}


def public_result(result: dict) -> dict:
    """result.json as a page shows it: `weights_from` says in a line where the weights came from (a run by its
    id, imagenet's file), and the weights' source is that line's, never a path in the server's folders."""
    weights = result.get("weights")
    if not isinstance(weights, dict) or not weights.get("source"):
        return result
    return {**result, "weights_from": described(weights),
            "weights": {**weights, "source": described({"source": weights["source"]})}}


def compare(runs: list[Run]) -> Comparison:
    """The config keys that differ (with each run's value), the curves and the results of several runs, and
    each later run's model against the first's, layer by layer (`model_diff`: {run id: rows}; a run whose
    model is a registered name rather than a layer list is left out). A dict; in a notebook, tables and the
    overlaid curves."""
    from ..viz.curves import curves_png
    layers = {r.dir.name: _layers(r.config.model) for r in runs}
    first = runs[0].dir.name
    metrics = {r.dir.name: r.metrics for r in runs}
    return Comparison({"differ": config_diff({r.dir.name: r.config.model_dump() for r in runs}),
                       "metrics": metrics, "results": {r.dir.name: r.result for r in runs},
                       "model_diff": {run_id: model_diff(layers[first], ls) for run_id, ls in layers.items()
                                      if run_id != first and ls is not None and layers[first] is not None}},
                      draw_curves=lambda: curves_png(metrics, "compare"))


def _layers(model) -> list | None:
    if isinstance(model, dict) and isinstance(model.get("layers"), list):
        return model["layers"]
    return model if isinstance(model, list) else None


def final_weights(run: Run) -> Run:
    """`run`, if its final weights are written; else a Conflict saying what state it is in."""
    if not (run.dir / "model.safetensors").exists():
        raise Conflict(f"{run.dir.name} has no final weights (model.safetensors) yet (status "
                       f"{run.result.get('status')})")
    return run


def report(run: Run, image: int = 0, fmt: str = "html") -> Path:
    """report.html (or the figures as PNG files) in the run's directory; an unfinished run is reported from its
    last checkpoint."""
    from ..viz.report import write_report
    return write_report(run.dir, image, fmt)


def export(run: Run, fmt: str = "onnx", out: str | None = None, input_kind: str = "float") -> Path:
    from ..interop.export import export as export_run
    return export_run(run.dir, fmt, out, input_kind)


def evaluate(run: Run, data: str | None = None, data_dir: str | None = None, split: str = "test") -> dict:
    from ..train import evaluate_run
    return evaluate_run(run.dir, data, data_dir, split)


def predict(run: Run, images: list[str], top_k: int = 3) -> list[dict]:
    from ..train.predict import predict as predict_files
    return predict_files(run.dir, images, top_k)


def epochs(runs_root: Path, run_id: str) -> list[dict]:
    """The per-epoch rows a run has written so far ([] before its first epoch, or before it exists)."""
    from ..rundir import read_metrics
    if not RUN_ID.match(run_id):
        return []
    return read_metrics(Path(runs_root) / run_id / "metrics.csv")


def ending(runs_root: Path, run_id: str) -> dict | None:
    """The run's final result.json, or None while it is queued or training."""
    import json
    try:
        result = json.loads((Path(runs_root) / run_id / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return None if result.get("status") in UNFINISHED else public_result(result)


class Watch:
    """What a page watching a run is told, as (type, data) pairs, whoever trains it (this server's worker, a CLI
    process, a script): its events as they come (`live`, from a worker), the epochs it writes to disk each with
    the doctor's provisional verdict, then its result, the diagnosis and the end. Paths under the runs folder
    and process ids are left out: a page names the run, never the server's folders."""

    # as the job says them; epoch_end comes from metrics.csv as written (so a CLI run streams too), with the
    # doctor's provisional verdict beside the row
    FORWARDED = ("fit_start", "log", "error", "batch_end", "epoch_start", "evaluation", "checkpoint")

    def __init__(self, runs_root: Path, run_id: str, past: list[dict] = ()):
        self.root, self.id = Path(runs_root), run_id
        self.sent_epochs = 0
        self.diagnosis = None
        self.done = False
        self._past = list(past)  # what a worker already said of the run, for a page that comes late

    def poll(self, live: list[dict], training_here: bool) -> list[tuple[str, dict]]:
        """The news since the last poll. `training_here`: a worker of this server holds the run (its ending
        comes as an `end` event; without one, a result on disk is the end)."""
        out, ended = [], None
        for event in self._past + live:
            kind, data = event["type"], event["data"]
            if kind in self.FORWARDED:
                out.append((kind, self._scrub(data)))
            elif kind == "diagnosis":
                self.diagnosis = data.get("verdict")
            elif kind == "end":
                ended = data
        self._past = []
        rows = epochs(self.root, self.id)
        if rows[self.sent_epochs:]:
            run = run_in(self.root, self.id)
            out += [("epoch_end", {"row": row, "verdict": provisional(run, rows[:row["epoch"]])})
                    for row in rows[self.sent_epochs:]]
            self.sent_epochs = len(rows)
        result = ending(self.root, self.id)
        if result is not None and (ended or not training_here):
            out.append(("result", result))
            if rows:
                verdict = self.diagnosis or diagnose_run(run_in(self.root, self.id)).as_dict()
                out.append(("diagnosis", verdict))
            out.append(("end", {"status": result.get("status")}))
            self.done = True
        elif ended:
            out.append(("end", ended))
            self.done = True
        return out

    def _scrub(self, data: dict) -> dict:
        root = str(self.root)
        clean = {k: v for k, v in data.items() if k not in ("run_dir", "pid", "path")}
        for key in ("text", "message"):
            if isinstance(clean.get(key), str):
                clean[key] = clean[key].replace(root + "/", "").replace(root, "the runs folder")
        return clean
