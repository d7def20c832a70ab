"""A rescue's life on a server: claimed when the page asks (a folder and the request in it, so a rescue the
server accepted exists on disk before it starts), run in the training worker as one queue item that trains
many runs, stopped, resumed, and read back for the page — every decision here, the server only forwards.

The rescue itself is cnnlab.app.rescue's (`rescue`, `resume`, `request_stop`, `read`), as for
`cnnlab rescue`; its journal (rescue.json) says where it stands, and a rescue whose process is gone (a server
restart) reads as interrupted, to be resumed.
"""
from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from ..errors import Conflict, NotFound, UserError
from ..fsutil import write_text
from ..rescue.budget import parse_budget
from ..rundir import Run
from . import rescue as app_rescue

REQUEST = "request.json"   # in the rescue's folder: what the page asked for (and a failure before it started)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,60}$")
LOG_LINES = 200            # a rescue's log lines a server keeps for the page (each trial says a line or two)


def folder_in(runs_root: str | Path, name: str) -> Path:
    """The rescue `name` under runs_root/rescues; NotFound naming it otherwise (never the server's folders)."""
    folder = Path(runs_root) / "rescues" / str(name)
    if not NAME.match(str(name)) or not folder.is_dir():
        raise NotFound(f"no rescue '{str(name)[:80]}'")
    return folder


def claim(run: Run, runs_root: str | Path, budget: float, allow_architecture: bool = False) -> Path:
    """A new rescue of `run` with `budget` epochs: its folder (named after the run, -2, -3 ... when rescued
    again) with the request written in it. A budget that is not one is refused now, before anything queues."""
    parse_budget(f"{budget:g}")
    base = f"{run.dir.name[:50]}-rescue"
    rescues = Path(runs_root) / "rescues"
    rescues.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = rescues / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()  # the claim: two requests at once get two folders
        except FileExistsError:
            continue
        write_text(folder / REQUEST, json.dumps({"start": run.dir.name, "model": str(run.dir), "budget": f"{budget:g}",
                                                 "allow_architecture": bool(allow_architecture)}, indent=2))
        return folder
    raise Conflict(f"{run.dir.name} has been rescued 999 times; delete some of runs/rescues/{base}-*")


def _request(folder: Path) -> dict:
    try:
        return json.loads((folder / REQUEST).read_text())
    except (OSError, ValueError):
        return {}


def run_queued(folder: str | Path, resume: bool = False, log=print, started=None) -> str:
    """Run (or continue) the rescue in `folder` to its end, in this thread, and return its state as `read` then
    gives it. Stopped, failed or cut off, it is written down, never raised. `started(stop)`: the threading.Event
    that stops it after the current batch, for the process that may have to."""
    folder = Path(folder)
    request = _request(folder)
    stop = threading.Event()
    if started is not None:
        started(stop)
    try:
        if resume and (folder / "rescue.json").exists():
            app_rescue.resume(folder, log=log, stop=stop)
        else:
            app_rescue.rescue(request["model"], budget=request["budget"], name=folder.name,
                              runs_root=str(folder.parent.parent), allow_architecture=request["allow_architecture"],
                              log=log, stop=stop)
        write_text(folder / REQUEST, json.dumps({**request, "failed": None}, indent=2))
    except app_rescue.RescueStopped as exc:
        log(str(exc))
        log("Resume on the page continues it from its journal")
    except BaseException as exc:  # noqa: BLE001 — the rescue's failure is the rescue's: written down, not raised
        message = (str(exc).splitlines() or [type(exc).__name__])[0][:500]
        write_text(folder / REQUEST, json.dumps({**request, "failed": message}, indent=2))
        log(f"error: {message}")
    try:
        return view(folder)["state"]
    except UserError as exc:  # a journal that cannot be read: the rescue failed, and says why
        log(f"error: {exc}")
        return "failed"


def view(folder: str | Path, held: str | None = None, log: list | tuple = ()) -> dict:
    """What the page shows of a rescue: `read`'s dict, each step's run id beside its directory, the run it
    started from (`start_id`), the server's log lines, and what may be done now (`can_stop`, `can_resume`).
    `held`: queued or running, when this server's worker holds the rescue."""
    folder = Path(folder)
    request = _request(folder)
    if (folder / "rescue.json").exists():
        rescue = app_rescue.read(folder)
    else:  # accepted, not started (or it failed before its first step)
        rescue = {"name": folder.name, "budget": request.get("budget"), "state": "interrupted", "start": None,
                  "steps": [], "final": None, "spent": 0.0, "budget_total": float(request.get("budget") or 0),
                  "unit": "epochs", "table": "", "message": ""}
    if held == "queued":
        rescue["state"] = "queued"
    elif held == "running" and rescue["state"] != "finished":
        rescue["state"] = "running"
    elif request.get("failed") and rescue["state"] != "finished":
        rescue["state"], rescue["message"] = "failed", request["failed"]
    rescue["steps"] += _under_way(folder, rescue)
    for step in rescue["steps"] + ([rescue["final"]] if rescue["final"] else []):
        step["id"] = Path(step["run"]).name if step.get("run") else None
    root = str(folder.parent.parent)  # the server's runs folder: its paths are not the page's business
    rescue["message"] = rescue["message"].replace(root + "/", "").replace(root, "the runs folder")
    rescue.update(start_id=request.get("start"), log=[line.replace(root + "/", "").replace(root, "the runs folder")
                                                      for line in list(log)[-LOG_LINES:]],
                  allow_architecture=request.get("allow_architecture", False),
                  can_stop=rescue["state"] == "running", can_resume=rescue["state"] in ("interrupted", "failed"))
    return rescue


def _under_way(folder: Path, rescue: dict) -> list[dict]:
    """The runs in the rescue's folder its journal has no step for yet: the candidate training now (or, the
    rescue stopped, the one it stopped in), so the page shows it before it reaches the rung."""
    journalled = {Path(s["run"]).name for s in rescue["steps"] if s.get("run")}
    going = rescue["state"] == "running"
    rows = []
    for run_dir in sorted(p for p in folder.iterdir() if (p / "config.yaml").is_file() and p.name not in journalled):
        run = Run(run_dir)
        metrics = run.metrics
        last = metrics[-1] if metrics else {}
        rows.append({"name": run_dir.name.removeprefix(f"{folder.name}-"), "run": str(run_dir), "parent": None,
                     "label": "training now" if going else "stopped here: Resume continues it from its checkpoint",
                     "architecture": None, "val_acc": last.get("val_acc"), "test_acc": None, "kept": None,
                     "verdict": None, "detail": "", "status": "running" if going else "interrupted",
                     "cost": None, "epoch": len(metrics)})
    return rows


def check_resumable(folder: str | Path, held: str | None = None) -> None:
    state = view(folder, held)["state"]
    if state not in ("interrupted", "failed"):
        raise Conflict(f"rescue {Path(folder).name} is {state}; an interrupted or failed rescue resumes")


def stop(folder: str | Path, held: str | None = None) -> Path:
    """Ask the rescue to stop after the current batch (its trial is kept, and Resume continues it)."""
    state = view(folder, held)["state"]
    if state == "queued":
        raise Conflict(f"rescue {Path(folder).name} has not started yet; it runs when the job before it ends")
    if state != "running":
        raise Conflict(f"rescue {Path(folder).name} is {state}; nothing to stop")
    return app_rescue.request_stop(folder)


def after_worker_died(folder: str | Path) -> str:
    """The state of a rescue whose worker process died under it (the journal's pid is gone: interrupted)."""
    return view(folder)["state"]

