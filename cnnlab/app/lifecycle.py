"""A run's life around its Job: run it here, submit it to a server's worker, and a record of how it ended
whatever happened.

The Job (cnnlab/app/job.py) trains and tells its listeners; this module adds what a front end needs around
it: a run submitted from the web exists on disk (config.yaml, status queued) from the moment it is accepted;
a run that fails before or during training — bad data, an impossible model, a crashed worker — is written
down as failed with its one-line reason; and a run cut off by a server restart is marked interrupted, to be
resumed."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import config as config_mod
from ..errors import UserError
from ..fsutil import write_text
from ..rundir import Run, new_run_dir
from ..track.store import Store
from ..train import distributed
from .job import Job, resume, start, train
from ..train.progress import Progress  # the terminal's listener, for the CLI
from ..train.session import prepare
from .models import refuse_code

JOURNAL = ".served.json"   # in the runs folder: the ids a server accepted, to recover after a restart
UNFINISHED = (None, "queued", "running", "running or crashed")


@dataclass
class Submitted:
    id: str
    run_dir: Path
    config: dict        # as sent (the worker resolves it again, as a config file would be)
    status: str = "queued"


def run_here(job: Job) -> None:
    """Run a job in this thread, as `cnnlab train` does: SIGTERM asks it to stop cleanly (marked interrupted,
    resumable), and data-parallel ranks are shut down after it."""
    import signal
    previous = signal.signal(signal.SIGTERM, lambda *_: job.stop())
    try:
        job.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        distributed.finish()


def launch(nproc: int, argv: list[str]) -> int:
    """`--nproc N` outside torchrun: N ranks of this same command on this machine; their exit status."""
    return distributed.launch(nproc, argv)


def is_rank() -> bool:
    """Whether this process is already one rank of a data-parallel launch."""
    return "WORLD_SIZE" in os.environ


def checked(config: dict, data_dir: str | None = None) -> tuple[dict, dict]:
    """A config that came over the network, checked as a config file is (a bad value names its key), with no
    Python code or file path for the model: (the config as sent, with the server's data folder; resolved)."""
    config = dict(config)
    refuse_code(config.get("model"), "config.model")
    if not isinstance(config.get("data", {}), dict):
        raise UserError("config.data: a mapping of data keys (name, dir, val_split, ...)")
    config["data"] = dict(config.get("data") or {})
    if data_dir and not config["data"].get("dir"):
        config["data"]["dir"] = data_dir
    cfg, _ = prepare(config)
    return config, cfg


def submit(config: dict, runs_root: str | os.PathLike, data_dir: str | None = None) -> Submitted:
    """Check a config from the network (`checked`), claim its run directory and write config.yaml and a
    `queued` result: from here on the run is on record, whatever happens to it."""
    config, cfg = checked(config, data_dir)
    run_dir = new_run_dir(cfg.name, None, str(runs_root), False)
    write_text(run_dir / "config.yaml", config_mod.dump(cfg))
    write_text(run_dir / "result.json", json.dumps({"status": "queued", "epochs_completed": 0,
                                                     "epochs": cfg.epochs}))
    _journal(Path(runs_root), add=run_dir.name)
    return Submitted(run_dir.name, run_dir, config)


def record_end(run_dir: str | os.PathLike, status: str, message: str, store: str | os.PathLike | None) -> dict:
    """Write result.json for a run that ended without writing one (it failed before training, its process died,
    its server stopped) and record it in the store; a run that wrote its own ending keeps it."""
    run = Run(run_dir)
    result = run.result
    if result.get("status") not in UNFINISHED:
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
            db.record_start(run.dir, config.model_dump(), {"name": config.name}, config.data.name)
            for row in rows:
                db.record_epoch(run.dir.name, row)
            db.record_result(run.dir.name, result)
        except UserError:
            pass  # the store is an index: `cnnlab runs reindex` catches it up from the directory
    return result


def recover(runs_root: str | os.PathLike, store: str | os.PathLike | None) -> list[str]:
    """After a server restart: every run the last server accepted and did not see end is marked interrupted
    (resumable: its checkpoint is kept). Returns their ids."""
    root = Path(runs_root)
    recovered = []
    for run_id in _journal(root):
        if not (root / run_id / "config.yaml").is_file():
            continue
        run = Run(root / run_id)
        status = run.result.get("status")
        if status in UNFINISHED:
            where = "before it started" if status == "queued" else f"after epoch {len(run.metrics)}"
            record_end(run.dir, "interrupted", f"interrupted: the server stopped {where}; Resume on the Runs page "
                                               f"(or `cnnlab resume {run_id}`) continues it", store)
            recovered.append(run_id)
    _journal(root, clear=True)
    return recovered


def _journal(root: Path, add: str | None = None, clear: bool = False) -> list[str]:
    path = root / JOURNAL
    try:
        ids = [] if clear else json.loads(path.read_text())
    except (OSError, ValueError):
        ids = []
    if add is not None or clear:
        if add is not None:  # keep it short: only runs not yet ended
            ids = [i for i in ids if (root / i / "config.yaml").is_file()
                   and Run(root / i).result.get("status") in UNFINISHED] + [add]
        write_text(path, json.dumps(ids))
    return ids


__all__ = ["Job", "Progress", "Submitted", "checked", "is_rank", "launch", "run_here", "record_end", "recover", "resume", "start", "submit", "train"]
