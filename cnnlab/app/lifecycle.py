"""A run's life around its Job: run it here, submit it to a server's worker and run it there, the rules for
stopping and resuming it, and a record of how it ended whatever happened. Every decision about a run's fate
is taken here, for the CLI and the server alike; the server's worker (cnnlab/serve/worker.py) only runs
processes and forwards events.

The Job (cnnlab/app/job.py) trains and tells its listeners; this module adds what a front end needs around
it: a run submitted from the web exists on disk (config.yaml resolved once, status queued) from the moment
it is accepted, and trains exactly that config; a run that fails before or during training — bad data, an
impossible model, a crashed worker — is written down as failed with its one-line reason; and a run cut off
by a server restart is marked interrupted, to be resumed."""
from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import config as config_mod
from ..errors import Conflict, UserError
from ..events import Emitter, Event
from ..fsutil import write_text
from ..process import alive
from ..rundir import Run, new_run_dir, request_stop
from ..track.store import Store
from ..train import distributed
from ..train.progress import Progress  # the terminal's listener; `cnnlab rescue` passes one too
from ..train.session import prepare
from .job import Job, error_kind, resume, start, train  # noqa: F401 — the Python API, re-exported
from . import weights
from .models import refuse_code
from .runs import UNFINISHED

JOURNAL = ".served.json"   # in the runs folder: the runs each server accepted, to recover after a restart
RESUMABLE = ("interrupted", "failed", "crashed")
# where a logger writes: the server's own settings decide (MLFLOW_TRACKING_URI; W&B's files in the run)
LOGGER_LIBRARIES = {"mlflow": "mlflow", "wandb": "wandb", "tensorboard": "tensorboard"}  # checked before a web run
_journal_lock = threading.Lock()  # requests submit from several threads


@dataclass
class Submitted:
    id: str
    run_dir: Path
    name: str           # the resolved config's, as config.yaml holds it
    status: str = "queued"


def train_here(config=None, overrides: list | None = None, *, nproc: int | None = None, argv: list | tuple = (),
               run_dir: str | None = None, runs_root: str | None = None, overwrite: bool = False,
               quiet: bool = False, store=True) -> int:
    """`cnnlab train`: the Job made (its config resolved, once) and run in this thread, the terminal told;
    0 when it ends. Where `nproc` asks for data-parallel ranks (see `spreads`), N ranks of the command `argv`
    (without its --nproc) instead, and their exit status: each rank takes this same path."""
    if spreads(nproc):
        return launch(nproc, argv)
    run_here(Job(config, overrides, run_dir=run_dir, runs_root=runs_root, overwrite=overwrite,
                 listeners=[Progress(quiet=quiet)], store=store))
    return 0


def resume_here(run_dir: str | os.PathLike, *, nproc: int | None = None, argv: list | tuple = (),
                quiet: bool = False) -> int:
    """`cnnlab resume`: as `train_here`, for a run continued from its last checkpoint."""
    if spreads(nproc):
        return launch(nproc, argv)
    run_here(Job.resume(run_dir, listeners=[Progress(quiet=quiet)]))
    return 0


def spreads(nproc: int | None) -> bool:
    """Whether `--nproc N` asks this process to start N ranks: N > 1, and this process not one of them yet."""
    return bool(nproc) and nproc > 1 and not is_rank()


def run_here(job: Job) -> None:
    """Run a job in this thread, as `cnnlab train` does: SIGTERM asks it to stop cleanly (marked interrupted,
    resumable), a failure is recorded as the run's ending (`_record_failure`) and raised, and data-parallel
    ranks are shut down after it."""
    import signal
    previous = signal.signal(signal.SIGTERM, lambda *_: job.stop())
    try:
        job.run()
    except BaseException as exc:
        if job.dir is not None and job.rank == 0:  # a run that claimed no directory has nothing to record
            _record_failure(job, job.dir, job.store.path if job.store else None, exc)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        distributed.finish()


def run_submitted(run_dir: str | os.PathLike, store: str | os.PathLike | None, resume: bool = False,
                  listeners=(), started=None) -> str:
    """Train a run the server accepted (`submit`) to its end, in this thread, and return how it ended. A new run
    trains config.yaml as `submit` resolved it; `resume` continues from the checkpoint. Any failure is the
    run's ending, recorded, never raised. Listeners hear `end` only once the ending is on disk (a page that
    hears it reads the result); a job that failed before it existed tells them `error` and `end` as a job
    would. `started(job)`: the job once made, for the process that may have to stop it."""
    bus = Emitter(listeners, run=str(run_dir))
    ends: list[Event] = []

    def relay(event: Event) -> None:  # the job's events to `listeners`, its end held back
        (ends.append if event.type == "end" else bus.tell)(event)
    job = None
    try:
        job = (Job.resume if resume else Job.claimed)(run_dir, listeners=[relay], store=store or False)
        if started is not None:
            started(job)
        job.run()
        status = job.status
    except BaseException as exc:  # noqa: BLE001 — one run's failure is that run's: written down, not raised
        status = _record_failure(job, run_dir, store, exc)["status"]
        if job is None:
            bus.emit("error", {"message": _first_line(exc), "kind": error_kind(exc)})
            bus.emit("end", {"status": status})
    for event in ends:
        bus.tell(event)
    return status


def worker_died(run_dirs: list, exitcode: int | None, store: str | os.PathLike | None) -> list[Event]:
    """The process training `run_dirs` died (a segfault, the OOM killer): each run failed, on disk and in the
    store, its last checkpoint kept (resumable). Returns what to tell whoever watches them: `error` (kind
    crash) and `end`, each with its run directory as `run`."""
    reason = f"the training process died (signal {-exitcode})" if exitcode and exitcode < 0 else \
        f"the training process exited with status {exitcode}"
    told: list[Event] = []
    for run_dir in run_dirs:
        result = record_end(run_dir, "failed", f"{reason}; its last checkpoint is kept", store)
        bus = Emitter([told.append], run=str(run_dir))
        bus.emit("error", {"message": result.get("message"), "kind": "crash"})
        bus.emit("end", {"status": result["status"]})
    return told


def _record_failure(job: Job | None, run_dir, store, exc: BaseException) -> dict:
    """The ending of a run whose job raised `exc`: Ctrl-C interrupted it, anything else failed it. A job that
    wrote its own ending (it trained) keeps it; one that wrote none — it never existed, or failed loading its
    data — gets this one, over an older run's ending too (a resume that failed: the old one no longer says
    what happened)."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    return record_end(run_dir, status, _first_line(exc), store, force=job is None or job.result is None)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def launch(nproc: int, argv: list[str]) -> int:
    """`--nproc N` outside torchrun: N ranks of this same command on this machine; their exit status."""
    return distributed.launch(nproc, argv)


def is_rank() -> bool:
    """Whether this process is already one rank of a data-parallel launch."""
    return "WORLD_SIZE" in os.environ


def checked(config: dict, data_dir: str | None = None, runs_root: str | os.PathLike | None = None):
    """A config that came over the network, checked as a config file is (a bad value names its key), with the
    server's data folder where it names none, and resolved (the TrainConfig a run records). Refused: Python
    code or a file path for the model, and a logger told where to write (the server's settings decide).
    `weights` may name `imagenet` or a finished run in `runs_root` (cnnlab/app/weights.py decides); without a
    runs folder, nothing."""
    config = dict(config)
    chosen = weights.requested(config)  # before the model is looked at: a path as weights names config.weights
    if chosen is not None and runs_root is None:
        raise UserError("config.weights: a file on the server is refused over the network; start from weights "
                        "with `cnnlab train --weights` on the server's machine")
    refuse_code(config.get("model"), "config.model")
    if not isinstance(config.get("data", {}), dict):
        raise UserError("config.data: a mapping of data keys (name, dir, val_split, ...)")
    config["data"] = dict(config.get("data") or {})
    if data_dir and not config["data"].get("dir"):
        config["data"]["dir"] = data_dir
    if chosen is not None:
        config = weights.resolve(config, runs_root, data_dir)
    cfg, _ = prepare(config)
    for i, logger in enumerate(cfg.loggers):
        option = next((key for key, value in logger.__dict__.items() if key != "name" and value is not None), None)
        if option:
            raise UserError(f"config.loggers[{i}].{option}: a logger's options are refused over the network; the "
                            f"server's own settings decide (MLflow: its MLFLOW_TRACKING_URI; W&B: WANDB_MODE, the "
                            f"run directory). Name the logger alone: loggers: [{logger.name}]")
        missing = LOGGER_LIBRARIES.get(logger.name)
        if missing and importlib.util.find_spec(missing) is None:
            raise UserError(f"config.loggers[{i}]: the {logger.name} logger needs the {missing} package, which this "
                            "server does not have (pip install 'cnnlab[loggers]' where it runs)")
    return cfg


def submit(config: dict, runs_root: str | os.PathLike, data_dir: str | None = None) -> Submitted:
    """Check and resolve a config from the network (`checked`), claim its run directory and write config.yaml
    from the resolved config — what the run trains (`run_submitted`) — and a `queued` result: from here on
    the run is on record, whatever happens to it."""
    cfg = checked(config, data_dir, runs_root)
    run_dir = new_run_dir(cfg.name, None, str(runs_root), False)
    write_text(run_dir / "config.yaml", config_mod.dump(cfg))
    write_text(run_dir / "result.json", json.dumps({"status": "queued", "epochs_completed": 0,
                                                     "epochs": cfg.epochs}))
    _journal(Path(runs_root), add=run_dir.name)
    return Submitted(run_dir.name, run_dir, cfg.name)


def stop(run: Run, queued_status: str | None = None) -> Path:
    """Ask the process training `run` to stop after its current batch. `queued_status`: what a server's
    worker says of the run, if it holds it (queued: not started; running before the run's files say so:
    still loading its data)."""
    if queued_status == "queued":
        raise Conflict(f"{run.dir.name} has not started yet; it will run when the one before it ends")
    if queued_status == "running" and run.result.get("status") != "running or crashed":  # its ending not yet cleared
        raise Conflict(f"{run.dir.name} is starting (loading its data); stop it in a moment")
    return request_stop(run.dir)


def check_resumable(run: Run, store: str | os.PathLike | None, held: bool = False) -> None:
    """A run may resume when it was interrupted, failed, or crashed (no ending written and its process gone,
    as the store knows); never while a process still trains it. `held`: a server's worker holds it now."""
    status = run.result.get("status")
    if status in UNFINISHED and store is not None:
        row = next((r for r in Store(store).runs() if r["id"] == run.dir.name), None)
        status = row["status"] if row else status  # the store reads 'crashed' where the process is gone
    if held or status not in RESUMABLE:
        what = "queued or training here" if held else "still training in another process" \
            if status in ("running", "running or crashed") else status
        raise Conflict(f"{run.dir.name} is {what}; an interrupted, failed or crashed run resumes")


def record_end(run_dir: str | os.PathLike, status: str, message: str, store: str | os.PathLike | None,
               force: bool = False) -> dict:
    """Write result.json for a run that ended without writing one (it failed before training, its process died,
    its server stopped) and record it in the store. A run that wrote its own ending keeps it, unless `force`
    (a resume that failed before it trained: the old ending no longer says what happened)."""
    run = Run(run_dir)
    result = run.result
    if result.get("status") not in UNFINISHED and not force:
        return result
    config = run.config
    rows = run.metrics
    result = {"status": status, "message": message.splitlines()[0][:500] if message else status,
              "epochs_completed": len(rows), "epochs": config.epochs,
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_text(run.dir / "result.json", json.dumps(result, indent=2))
    if store is not None:
        try:
            db = Store(store)
            if not db.has(run.dir.name):  # never started: put it on record; else keep what its start recorded
                db.record_start(run.dir, config.model_dump(), {"name": config.name}, config.data.name)
                for row in rows:
                    db.record_epoch(run.dir.name, row)
            db.record_result(run.dir.name, result)
        except UserError:
            pass  # the store is an index: `cnnlab runs reindex` catches it up from the directory
    return result


def recover(runs_root: str | os.PathLike, store: str | os.PathLike | None) -> list[str]:
    """At a server's start: every run that a server now gone accepted and did not see end is marked
    interrupted (resumable: its checkpoint is kept). A server still running on the same folder keeps its
    own. Returns the ids marked."""
    root = Path(runs_root)
    recovered = []
    with _journal_lock:
        entries = _read_journal(root)
        gone = [e for e in entries if not alive(e.get("server"))]
        for entry in gone:
            run_id = entry.get("id", "")
            if not (root / run_id / "config.yaml").is_file():
                continue
            recovered += server_stopped([root / run_id], store)
        write_text(root / JOURNAL, json.dumps([e for e in entries if e not in gone]))
    return recovered


def server_stopped(run_dirs: list, store: str | os.PathLike | None) -> list[str]:
    """Runs a stopped server had accepted and that did not write their own ending (queued, or stopped while
    their data loaded): interrupted, resumable. Returns their ids."""
    marked = []
    for run_dir in run_dirs:
        run = Run(run_dir)
        status = run.result.get("status")
        if status in UNFINISHED:
            where = "before it started" if status == "queued" or not run.metrics else f"after epoch {len(run.metrics)}"
            record_end(run.dir, "interrupted", f"interrupted: the server stopped {where}; Resume on the Runs "
                                               f"page (or `cnnlab resume {run.dir.name}`) continues it", store)
            marked.append(run.dir.name)
    return marked


def _read_journal(root: Path) -> list[dict]:
    try:
        entries = json.loads((root / JOURNAL).read_text())
    except (OSError, ValueError):
        return []
    return [e if isinstance(e, dict) else {"id": str(e)} for e in entries if isinstance(e, (dict, str))]


def _journal(root: Path, add: str) -> None:
    """Note that this server accepted run `add` (runs that have ended are dropped, keeping the file short)."""
    with _journal_lock:
        entries = [e for e in _read_journal(root) if (root / e.get("id", "") / "config.yaml").is_file()
                   and Run(root / e["id"]).result.get("status") in UNFINISHED]
        write_text(root / JOURNAL, json.dumps(entries + [{"id": add, "server": os.getpid()}]))


__all__ = ["Job", "Progress", "Submitted", "check_resumable", "checked", "is_rank", "launch", "record_end",
           "recover", "resume", "resume_here", "run_here", "run_submitted", "spreads", "start", "stop", "submit",
           "train", "train_here", "worker_died"]
