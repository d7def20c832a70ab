"""The run as a job: start a training from a config, hear its events as data, stop it from anywhere.

    job = cnnlab.Job("examples/keras-cifar10.yaml", overrides=["epochs=5"], listeners=[print])
    job.start()                 # a background thread; job.run() trains in this one
    for event in job.events():  # log, fit_start, epoch_end, result, diagnosis, end ... (cnnlab/events.py)
        ...
    job.stop()                  # after the current batch; the run is marked interrupted and can resume

Another process stops it with `cnnlab stop RUN` (a STOP file the job looks for twice a second) or SIGTERM
(the CLI maps it to `stop`). The trainer, the checkpoint writer and the job emit into one Emitter; the
store, the terminal, the config's loggers (MLflow, W&B, TensorBoard, CSV) and the web stream listen to it.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from .. import config as config_mod
from ..diagnose.doctor import diagnose
from ..diagnose.facts import run_facts
from ..diagnose.lint import lint, lint_training
from ..errors import UserError
from ..events import Emitter, Event, Listener, make_listener
from ..rundir import STOP_FILE, Run, new_run_dir
from ..track import loggers as _loggers  # noqa: F401 — registers the named loggers
from ..track.store import Store, StoreListener
from ..train import distributed
from ..train.engine import Diverged, StopRequested
from ..train.finish import finish_run
from ..train.progress import Progress
from ..train.session import CheckpointWriter, Session, prepare
from ..viz.curves import plot_curves
from ..viz.notebook import NotebookProgress, in_notebook
from ..viz.report import write_report

REPORTED_BY = {"mlflow", "wandb"}  # loggers that keep report.html among a run's files
STOP_FILE_INTERVAL = 0.5    # seconds between looks for a STOP file


class Job:
    """One training run: a new one from a config, or `Job.resume(run_dir)`.

    The config is resolved and checked when the job is made, so bad input fails in the caller. `store`:
    True records the run in the default store (runs/cnnlab.db), a path records it there, False not at all.
    """

    def __init__(self, config=None, overrides: list | None = None, *,
                 run_dir: str | os.PathLike | None = None, runs_root: str | os.PathLike | None = None,
                 overwrite: bool = False, listeners: list[Callable[[Event], None]] = (), store=True,
                 _resume: tuple | None = None):
        if _resume is None:
            self.cfg, self.spec = prepare(config, overrides)
            if run_dir and Path(run_dir).exists() and any(Path(run_dir).iterdir()) and not overwrite:
                new_run_dir(self.cfg.name, run_dir, runs_root, overwrite)  # raises 'already exists' now
            self.dir, self.resume_state = None, None
        else:
            self.cfg, self.dir, self.resume_state = _resume
            self.spec = self.cfg.model
        self._target = (run_dir, runs_root, overwrite)
        self.rank = distributed.world().rank
        if self.rank > 0:  # a data-parallel rank other than 0 trains and says nothing: rank 0 writes and tells
            listeners, store = [], False
        self.bus = Emitter([_Recorder(self)])
        self.listeners = self.bus.listeners  # one list: add a listener here, before or while the job runs
        self.listeners += list(listeners)
        self.store = store = _open_store(store, runs_root)
        if store is not None:
            self.listeners.append(StoreListener(store))
        if self.rank == 0:
            self.listeners += [make_listener(name, **options) for name, options in _logger_specs(self.cfg)]
        self.session: Session | None = None
        self.status = "pending"
        self.result: dict | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._stop_checked = 0.0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._replay: list[Event] = []      # every event but batches, for a listener that comes late
        self._queues: list[queue.Queue] = []

    @classmethod
    def claimed(cls, run_dir: str | os.PathLike, **kwargs) -> "Job":
        """A job training, from its first epoch, the config a claimed run directory holds: config.yaml as
        cnnlab.app.lifecycle.submit resolved and wrote it, trained as it stands (never resolved again)."""
        run_dir = Path(run_dir)
        return cls(_resume=(_run_config(run_dir), run_dir, None), **kwargs)

    @classmethod
    def resume(cls, run_dir: str | os.PathLike, **kwargs) -> "Job":
        """A job continuing `run_dir` from its last checkpoint; on the CPU with a fixed seed it ends as if
        never stopped (bit-identical weights; tests/test_resume.py kills it at 20 points)."""
        run_dir = Path(run_dir)
        cfg = _run_config(run_dir)
        state = None
        checkpoint = run_dir / "checkpoint.pt"
        if checkpoint.exists():
            try:
                state = torch.load(checkpoint, map_location="cpu", weights_only=False)
            except Exception as exc:  # noqa: BLE001 — a damaged file is the user's to know about
                raise UserError(f"{checkpoint}: cannot be read ({exc}); the run cannot resume from it") from None
        return cls(_resume=(cfg, run_dir, state), **kwargs)

    # ------------------------------------------------------------------ events
    def emit(self, type_: str, data: dict) -> None:
        self.bus.run = str(self.dir) if self.dir else None
        self.bus.emit(type_, data)

    def _record(self, event: Event) -> None:
        with self._lock:
            if event.type != "batch_end":
                self._replay.append(event)
            queues = list(self._queues)
        for q in queues:
            q.put(event)

    def events(self, replay: bool = True) -> Iterator[Event]:
        """Every event from the moment of this call (and, with `replay`, those already sent but batches),
        until `end`. Subscribes at once, so `events = job.events(); job.start()` misses nothing."""
        q: queue.Queue = queue.Queue()
        with self._lock:
            past = list(self._replay) if replay else []
            self._queues.append(q)
        return self._follow(q, past)

    def _follow(self, q: queue.Queue, past: list[Event]) -> Iterator[Event]:
        try:
            for event in past:
                yield event
                if event.type == "end":
                    return
            while True:
                event = q.get()
                yield event
                if event.type == "end":
                    return
        finally:
            with self._lock:
                self._queues.remove(q)

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Ask the run to stop after the current batch. Safe from any thread; harmless when already over."""
        self._stop.set()

    def _should_stop(self) -> bool:
        if self._stop.is_set():
            return True
        now = time.monotonic()
        if now - self._stop_checked >= STOP_FILE_INTERVAL:
            self._stop_checked = now
            if self.dir is not None and (self.dir / STOP_FILE).exists():
                self._stop.set()
        return self._stop.is_set()

    def start(self) -> "Job":
        """Train in a background thread; `wait()` for the Run, or follow `events()`."""
        self._thread = threading.Thread(target=self._run_quietly, name=f"cnnlab-job-{self.cfg.name}", daemon=True)
        self._thread.start()
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except BaseException:  # noqa: BLE001 — kept in self.error and told as an 'error' event
            pass

    def wait(self, timeout: float | None = None) -> Run | None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return None
        if self.error is not None and not isinstance(self.error, StopRequested):
            raise self.error
        return Run(self.dir) if self.dir else None

    # ------------------------------------------------------------------ the run itself
    def run(self) -> Run:
        """Train in this thread and return the finished Run (raises what a failed run raised)."""
        self.status = "running"
        try:
            return self._run()
        except BaseException as exc:
            self.error = exc
            kind = error_kind(exc)
            if kind != "interrupted":
                self.emit("error", {"message": str(exc) or type(exc).__name__, "kind": kind})
            if self.status == "running":
                self.status = "interrupted" if kind == "interrupted" else "failed"
            raise
        finally:
            self.emit("end", {"status": self.status})

    def _run(self) -> Run:
        # Load the data and build the model first: bad input fails before a run directory is claimed.
        # ranks above 0 say nothing (rank 0 tells): their trainer gets no listeners, so no batch_end syncs
        self.session = session = Session(self.cfg, self.resume_state, events=self.bus if self.rank == 0 else None,
                                         spec=self.spec)
        if self.rank > 0:
            return self._run_as_helper()
        if self.dir is None:
            run_dir, runs_root, overwrite = self._target
            self.dir = new_run_dir(self.cfg.name, run_dir, runs_root, overwrite)
            session.write_start_files(self.dir)
        else:
            for partial in self.dir.glob(".*.tmp"):  # half-written by a process killed mid-write
                partial.unlink()
            if self._already_finished():
                self.emit("log", {"text": f"{self.dir} already finished all {self.cfg.epochs} epochs; "
                                          "nothing to resume"})
                self.status = "finished"
                return Run(self.dir)
            if not (self.dir / "data.json").exists() or not (self.dir / "summary.txt").exists():
                # claimed by a server (config.yaml only), or killed while writing them; config.yaml is kept as
                # written (read back, rotate: 0 would turn 0.0)
                session.write_start_files(self.dir, config=False)
            # a stop asked of an earlier attempt goes first: one asked once the run shows as running (its old
            # result gone) is this attempt's, and is kept
            (self.dir / STOP_FILE).unlink(missing_ok=True)
            (self.dir / "result.json").unlink(missing_ok=True)
        trainer = session.trainer
        self.bus.run = str(self.dir)
        self.checkpoints = CheckpointWriter(self.dir, trainer, self.bus)
        self.listeners.insert(0, self.checkpoints)  # on disk before anyone hears
        trainer.should_stop = self._should_stop
        for finding in lint(session.model) + lint_training(session.cfg):
            self.emit("log", {"text": finding.render()})
        if session.weights is not None:
            for line in session.weights.lines():
                self.emit("log", {"text": line})
        if trainer.finetune is not None:
            self.emit("log", {"text": trainer.finetune.describe()})
        if self.resume_state is not None:
            self.emit("log", {"text": f"Resuming {self.dir} after epoch {trainer.epoch}"})
        params = f"{session.summary.trainable:,} params"
        if trainer.finetune is not None and trainer.finetune.is_frozen(trainer.epoch):
            every = sum(p.numel() for p in session.model.parameters())
            params = f"{session.summary.trainable:,} of {every:,} params training while the rest is frozen"
        self.emit("log", {"text": f"Run {self.dir}  ({session.summary.name} on {session.data.name}, "
                                  f"{params}, {session.placement.describe()}, "
                                  f"{len(session.data.train_x):,} training images)"})
        report = session.data.ingest
        if report is not None and (report.skipped or report.warnings):  # the folder's problems, said once
            self.emit("log", {"text": report.render() + (f"\n  every skipped file: {self.dir / 'skipped.txt'}"
                                                         if report.skipped else "")})
        self.emit("fit_start", {
            "run_dir": str(self.dir), "name": session.cfg.name, "config": session.cfg.model_dump(),  # JSON-ready
            "summary": session.summary.as_dict(), "data": session.data_info(), "epochs": trainer.epochs,
            "batches_per_epoch": trainer.batches_per_epoch, "history": list(trainer.history), "pid": os.getpid()})
        try:
            trainer.fit()
        except (KeyboardInterrupt, StopRequested) as exc:
            message = str(exc) if isinstance(exc, StopRequested) else f"interrupted during epoch {trainer.epoch + 1}"
            self._finish("interrupted", message)
            distributed.barrier()
            (self.dir / STOP_FILE).unlink(missing_ok=True)
            if isinstance(exc, KeyboardInterrupt):
                raise
            return Run(self.dir)
        except Diverged as exc:
            self._finish("diverged", str(exc))
            raise
        except Exception as exc:
            self._finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        self._finish("finished")
        distributed.barrier()
        if trainer.stop_reason:
            self.emit("log", {"text": trainer.stop_reason})
        self._diagnose()
        self._write_report()
        return Run(self.dir)

    def _run_as_helper(self) -> Run | None:
        """Ranks above 0 train their share and leave writing, evaluating and telling to rank 0."""
        trainer = self.session.trainer
        trainer.should_stop = lambda: self._stop.is_set()
        if self.dir is not None and self._already_finished():  # as rank 0 decides, from the same files
            return None
        try:
            trainer.fit()
        except StopRequested:
            self.status = "interrupted"
        else:
            self.status = "finished"
        distributed.barrier()
        return None

    def _already_finished(self) -> bool:
        state, result = self.resume_state, Run(self.dir).result
        return state is not None and state["epoch"] >= self.cfg.epochs and result.get("status") == "finished"

    def _finish(self, status: str, message: str | None = None) -> None:
        self.checkpoints.flush()  # an epoch kept in memory (its write was slow) is on disk before the run ends
        self.result = finish_run(self.session, self.dir, status, message, also_write=[_write_curves])
        self.status = status
        r = self.result
        if "test_acc" in r:  # the final test evaluation of the weights the run keeps
            tta = {"acc_tta": r["test_acc_tta"], "loss_tta": r.get("test_loss_tta"), "tta": r.get("tta")} \
                if "test_acc_tta" in r else {}
            self.emit("evaluation", {"epoch": None, "split": "test", "loss": r["test_loss"], "acc": r["test_acc"],
                                     **tta})
        self.emit("result", self.result)

    def _write_report(self) -> None:
        """report.html, where a tracking logger keeps the run's files: it is one of them (MLflow, W&B)."""
        if not {name for name, _ in _logger_specs(self.cfg)} & REPORTED_BY:
            return
        try:
            write_report(self.dir)
        except Exception as exc:  # noqa: BLE001 — the run is done; a report that fails is a warning
            self.emit("log", {"text": f"warning: report.html was not written ({exc}); `cnnlab report "
                                      f"{self.dir}` tries again"})

    def _diagnose(self) -> None:
        s = self.session
        facts = run_facts(s.model, s.cfg)
        facts["test_in_train"], facts["test_images"] = s.test_in_train, len(s.data.test_x)
        verdict = diagnose(s.trainer.history, s.data.num_classes, facts)
        self.emit("diagnosis", {"verdict": verdict.as_dict(), "text": verdict.render()})


def error_kind(exc: BaseException) -> str:
    """What an `error` event calls a failure (cnnlab/events.py), and `interrupted` for Ctrl-C (no error)."""
    return "diverged" if isinstance(exc, Diverged) else "user" if isinstance(exc, UserError) else \
        "interrupted" if isinstance(exc, KeyboardInterrupt) else "crash"


class _Recorder(Listener):
    """The job's own first listener: keeps every event but batches for a listener that comes late, and feeds
    the queues of `job.events()`."""

    required = True

    def __init__(self, job: "Job"):
        self.job = job

    def __call__(self, event: Event) -> None:
        self.job._record(event)


def _logger_specs(cfg) -> list[tuple[str, dict]]:
    """(name, options) of each logger the config asks for; `tensorboard: true` is `loggers: [tensorboard]`."""
    specs = [(entry.name, {k: v for k, v in entry.__dict__.items() if k != "name" and v is not None})
             for entry in cfg.loggers]
    if cfg.tensorboard and "tensorboard" not in [name for name, _ in specs]:
        specs.append(("tensorboard", {}))
    return specs


def _run_config(run_dir: Path):
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"{run_dir}: not a cnnlab run directory (no config.yaml)")
    return config_mod.load(run_dir / "config.yaml")


def _write_curves(session, run_dir: Path) -> None:
    """curves.png: loss and accuracy per epoch."""
    history, name = session.trainer.history, session.summary.name
    if history:
        plot_curves({name: history}, run_dir / "curves.png", f"{name} on {session.data.name}")


def _open_store(store, runs_root=None):
    if store is False or store is None:
        return None
    if store is True:
        return Store(Path(runs_root) / "cnnlab.db" if runs_root else None)
    return Store(store)


def progress(quiet: bool = False) -> Listener:
    """What a person watches a run with: in a Jupyter kernel a live bar and curves (NotebookProgress), else the
    terminal's lines; `quiet` keeps only the result line, anywhere."""
    return NotebookProgress() if not quiet and in_notebook() else Progress(quiet=quiet)


def train(config=None, overrides: list | None = None, run_dir: str | None = None,
          runs_root: str | None = None, overwrite: bool = False, quiet: bool = False, store=True,
          listeners=()) -> Run:
    """Train as `cnnlab train` does. `config` is a path, YAML text or a dict; `overrides` `key=value` texts as
    `--set` takes them; returns the finished Run."""
    return Job(config, overrides, run_dir=run_dir, runs_root=runs_root, overwrite=overwrite,
               listeners=[progress(quiet), *listeners], store=store).run()


def resume(run_dir: str | os.PathLike, quiet: bool = False, store=True, listeners=()) -> Run:
    """Continue a run from its last checkpoint; with a fixed seed on the CPU it ends as if never stopped."""
    return Job.resume(run_dir, listeners=[progress(quiet), *listeners], store=store).run()


def start(config=None, overrides: list | None = None, **kwargs) -> Job:
    """Start training in a background thread and return the Job (follow `job.events()`, `job.stop()`)."""
    return Job(config, overrides, **kwargs).start()
