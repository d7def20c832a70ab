"""Rescues from the page: start one from a run (it queues for the worker as one job that trains many runs),
read where it stands, stop it, resume it. Each route a few lines over cnnlab.app.rescue_jobs, which calls
cnnlab.app.rescue as `cnnlab rescue` does; the page polls GET /api/rescues/NAME for the trials as they come."""
from __future__ import annotations

from fastapi import APIRouter, Request

from ...app import rescue_jobs, runs as app_runs
from ..bodies import RescueRequest
from ..state import heavy, state
from .runs import _worker

router = APIRouter(prefix="/api/rescues")


def _held(request: Request, name: str) -> tuple[str | None, list[str]]:
    worker = state(request).worker
    return worker.rescue_held(name) if worker is not None else (None, [])


@router.post("", status_code=202)
async def start(body: RescueRequest, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, body.run)
    worker = _worker(request)
    folder = await heavy(request, rescue_jobs.claim, run, s.runs_root, body.budget, body.change_architecture)
    worker.submit_rescue(folder.name, str(folder))
    return {"name": folder.name, "state": "queued"}


@router.get("/{name}")
async def read(name: str, request: Request) -> dict:
    folder = rescue_jobs.folder_in(state(request).runs_root, name)
    held, log = _held(request, name)
    return await heavy(request, rescue_jobs.view, folder, held, log)


@router.post("/{name}/stop")
async def stop(name: str, request: Request) -> dict:
    folder = rescue_jobs.folder_in(state(request).runs_root, name)
    await heavy(request, rescue_jobs.stop, folder, _held(request, name)[0])
    return {"name": name, "stopping": True}


@router.post("/{name}/resume", status_code=202)
async def resume(name: str, request: Request) -> dict:
    folder = rescue_jobs.folder_in(state(request).runs_root, name)
    worker = _worker(request)
    await heavy(request, rescue_jobs.check_resumable, folder, _held(request, name)[0])
    worker.submit_rescue(name, str(folder), resume=True)
    return {"name": name, "state": "queued"}
