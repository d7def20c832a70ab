"""TEMPORARY: the parts of `cnnlab.app.rescue`'s contract (read, request_stop, resume, `stop`, RescueStopped)
that the rescue on main does not have yet, over its journal (rescue.json). The lead's rewrite of the rescue
loop brings them into cnnlab/app/rescue.py; then the server calls that module and this one goes.

What the journal lacks is kept beside it in web.json: the process running the rescue (its pid: a rescue
whose process is gone is `interrupted`, resumable), the run it started from, the arguments to continue it
with, and how it last ended.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ..errors import UserError
from ..fsutil import write_text
from ..process import alive
from ..rescue.budget import Meter, parse_budget
from ..rescue.loop import Journal, render_table
from ..rundir import STOP_FILE, Run
from . import rescue as _rescue

WEB = "web.json"
STOP_POLL_S = 0.5   # how often a stop is looked for (a trial checks its own STOP file about twice a second)


class RescueStopped(UserError):
    """A rescue stopped on request; str() says how to continue it."""


def _web(folder: Path) -> dict:
    try:
        return json.loads((folder / WEB).read_text())
    except (OSError, ValueError):
        return {}


def _set_web(folder: Path, **changes) -> None:
    write_text(folder / WEB, json.dumps({**_web(folder), **changes}, indent=2))


def _trial_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "config.yaml").is_file())


def _forward_stops(folder: Path, stop: threading.Event | None, done: threading.Event) -> None:
    """Until `done`: a STOP in the rescue's folder (or `stop` set) becomes a STOP in the trial training now."""
    while not done.wait(STOP_POLL_S):
        if (stop is not None and stop.is_set()) or (folder / STOP_FILE).exists():
            write_text(folder / STOP_FILE, "stop\n")
            for run_dir in _trial_dirs(folder):
                if Run(run_dir).result.get("status") in (None, "running or crashed"):
                    write_text(run_dir / STOP_FILE, "stop\n")


def rescue(model: str, data: str | None = None, budget: str = "15", *, name: str | None = None,
           data_dir: str | None = None, root: str | None = None, allow_architecture: bool = False, seed: int = 0,
           runs_root: str | None = None, store: bool = True, log=print, final_listeners=(), stop=None):
    """cnnlab.app.rescue.rescue, with `stop` and a record of the process that runs it."""
    args = dict(model=str(model), data=data, budget=str(budget), name=name, data_dir=data_dir, root=root,
                allow_architecture=allow_architecture, seed=seed, runs_root=str(runs_root or "runs"), store=store)
    start = str(model) if (Path(model) / "config.yaml").is_file() else None
    config, stem = _rescue.load_start(str(model))
    name = name or f"{stem}"
    folder = Path(args["runs_root"]) / "rescues" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STOP_FILE).unlink(missing_ok=True)
    _set_web(folder, pid=os.getpid(), args={**args, "name": name}, start=start, ended=None, message="")
    done = threading.Event()
    threading.Thread(target=_forward_stops, args=(folder, stop, done), daemon=True).start()
    try:
        result = _rescue.rescue(**{**args, "name": name}, log=log, final_listeners=final_listeners)
    except BaseException as exc:
        stopped = (folder / STOP_FILE).exists() or (stop is not None and stop.is_set())
        _set_web(folder, pid=None, ended="stopped" if stopped else "failed",
                 message=f"stopped; Resume continues it" if stopped else (str(exc).splitlines() or [repr(exc)])[0])
        if stopped:
            raise RescueStopped(f"rescue {name} stopped; `cnnlab rescue {model} --name {name} --budget {budget}` "
                                "(or Resume on the page) continues it") from None
        raise
    finally:
        done.set()
        (folder / STOP_FILE).unlink(missing_ok=True)
    _set_web(folder, pid=None, ended="finished", message="")
    return result


def resume(folder, *, log=print, final_listeners=(), stop=None):
    """Continue a stopped or interrupted rescue from its journal, with the arguments it was started with."""
    folder = Path(folder)
    args = _web(folder).get("args")
    if not args:
        raise UserError(f"{folder.name}: no rescue to continue here (its web.json is missing)")
    return rescue(**args, log=log, final_listeners=final_listeners, stop=stop)


def request_stop(folder) -> Path:
    path = Path(folder) / STOP_FILE
    write_text(path, "stop\n")
    return path


def read(folder) -> dict:
    """The rescue as it stands: the contract's dict (see the lead's cnnlab.app.rescue.read)."""
    folder = Path(folder)
    web = _web(folder)
    journal = Journal.load(folder / "rescue.json") if (folder / "rescue.json").exists() else None
    raw = json.loads((folder / "rescue.json").read_text()) if journal else {}
    train_images = raw.get("train_images") or 1
    meter = Meter(train_images, raw.get("flop_per_image") or 1.0)
    budget = parse_budget(journal.budget if journal else web.get("args", {}).get("budget", "15"))
    steps = []
    for s in (journal.steps if journal else []):
        status = "finished" if s.val_acc is not None or s.test_acc is not None else \
            "diverged" if s.verdict == "diverged" else "dropped"
        steps.append({"name": s.name, "label": s.label, "architecture": s.architecture, "run": s.run,
                      "parent": s.parent, "val_acc": s.val_acc, "test_acc": s.test_acc, "kept": s.kept,
                      "verdict": s.verdict, "detail": s.detail, "status": status, "cost": meter.epochs(s.images)})
    journalled = {Path(s["run"]).name for s in steps if s["run"]}
    running = alive(web.get("pid")) and web.get("pid") != 0
    for run_dir in _trial_dirs(folder) if folder.is_dir() else []:  # the trial under way, not journalled yet
        if run_dir.name not in journalled:
            result = Run(run_dir).result.get("status")
            unfinished = result in (None, "running or crashed", "queued")
            steps.append({"name": run_dir.name.removeprefix(f"{folder.name}-"), "label": "training now" if running
                          else "cut off", "architecture": False, "run": str(run_dir), "parent": None, "val_acc": None,
                          "test_acc": None, "kept": None, "verdict": None, "detail": "",
                          "status": ("running" if running else "interrupted") if unfinished else result, "cost": 0.0})
    final = next((s for s in steps if s["name"] == "final" and s["test_acc"] is not None), None)
    state = "finished" if final else "running" if running else "failed" if web.get("ended") == "failed" else \
        "interrupted"
    return {"name": folder.name, "budget": str(budget), "state": state, "start": web.get("start"), "steps": steps,
            "final": final, "spent": sum(s["cost"] for s in steps), "budget_total": meter.in_epochs(budget)
            if journal else float(budget.amount), "unit": "epochs",
            "table": render_table(journal, meter, budget) if journal else "", "message": web.get("message") or ""}
