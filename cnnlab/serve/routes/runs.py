"""Training and runs: start a run (it queues for the worker), list and read runs, stop, resume, tag,
compare, the report, and the live stream of a run's events."""
from __future__ import annotations

import asyncio
import json
import queue
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from ...app import lifecycle, runs as app_runs, store as app_store
from ...errors import Conflict, NotFound
from ..bodies import CompareRequest, RunRequest, TagRequest
from ..state import heavy, state

router = APIRouter(prefix="/api/runs")


def _worker(request: Request):
    worker = state(request).worker
    if worker is None:
        raise HTTPException(503, "this server was started without a training worker")
    return worker


@router.post("", status_code=202)
async def start_run(body: RunRequest, request: Request) -> dict:
    s = state(request)
    await heavy(request, lifecycle.checked, body.config, s.data_dir)  # a bad config is a 400 with or without a worker
    worker = _worker(request)
    submitted = await heavy(request, lifecycle.submit, body.config, s.runs_root, s.data_dir)
    worker.submit(submitted.id, str(submitted.run_dir), submitted.config)
    return {"id": submitted.id, "status": submitted.status}


@router.get("")
async def list_runs(request: Request) -> list[dict]:
    s = state(request)
    rows = await heavy(request, app_store.page_rows, s.store_path)
    by_id = {r["id"]: r for r in rows}
    for q in (s.worker.queued() if s.worker else []):  # accepted, not yet started: not in the store yet
        if q.id in by_id:
            by_id[q.id]["status"] = q.status
        else:
            rows.append({"id": q.id, "name": q.config.get("name"), "status": q.status, "tags": []})
    return rows


@router.get("/{run_id}")
async def run_detail(run_id: str, request: Request) -> dict:
    run = app_runs.run_in(state(request).runs_root, run_id)
    return await heavy(request, app_runs.detail, run)


@router.post("/{run_id}/stop")
async def stop(run_id: str, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    queued = s.worker.runs.get(run_id) if s.worker else None
    if queued is not None and queued.status == "queued":
        raise Conflict(f"{run_id} has not started yet; it will run when the one before it ends")
    app_runs.stop(run)
    return {"id": run_id, "stopping": True}


@router.post("/{run_id}/resume", status_code=202)
async def resume(run_id: str, request: Request) -> dict:
    """Continue an interrupted (or crashed) run from its last checkpoint, in the worker."""
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    status = run.result.get("status")
    if status not in ("interrupted", "crashed", "failed", "running or crashed") or \
            (s.worker and run_id in s.worker.runs and s.worker.runs[run_id].status in ("queued", "running")):
        raise Conflict(f"{run_id} is {status}; only an interrupted run resumes")
    queued = _worker(request).submit(run_id, str(run.dir), run.config, resume=True)
    return {"id": run_id, "status": queued.status}


@router.post("/{run_id}/tags")
async def tags(run_id: str, body: TagRequest, request: Request) -> dict:
    s = state(request)
    app_runs.run_in(s.runs_root, run_id)
    return {"id": run_id, "tags": app_store.set_tags(s.store_path, run_id, body.tags)}


@router.get("/{run_id}/report", response_class=HTMLResponse)
async def report(run_id: str, request: Request):
    run = app_runs.final_weights(app_runs.run_in(state(request).runs_root, run_id))
    path = await heavy(request, app_runs.report, run, timeout=120)
    return HTMLResponse(path.read_text())


compare_router = APIRouter(prefix="/api")


@compare_router.post("/compare")
async def compare(body: CompareRequest, request: Request) -> dict:
    root = state(request).runs_root
    return await heavy(request, app_runs.compare, [app_runs.run_in(root, i) for i in body.ids])


@router.get("/{run_id}/events", response_class=StreamingResponse)
async def events(run_id: str, request: Request):
    """Server-sent events: a run's epochs (from any process, CLI included: read from its directory as they
    land), its batches when this server trains it, the doctor's provisional verdict after each epoch, and its
    end. A run that does not exist is a 404, not a stream that waits for it."""
    s = state(request)
    worker = s.worker
    known = worker is not None and run_id in worker.runs
    if not known:
        app_runs.run_in(s.runs_root, run_id)  # NotFound -> 404
    live, past = worker.subscribe(run_id) if worker else (None, [])

    async def stream():
        sent_epochs, last_ping = 0, time.monotonic()
        try:
            yield _sse("hello", {"id": run_id, "queued": known and not any(e["type"] == "start" for e in past)})
            while not await request.is_disconnected():
                ended = None
                while live is not None:
                    try:
                        event = live.get_nowait()
                    except queue.Empty:
                        break
                    if event["type"] in ("batch", "start", "log", "error"):
                        yield _sse(event["type"], event["data"])
                    if event["type"] == "end":
                        ended = event["data"]
                rows = app_runs.epochs(s.runs_root, run_id)
                if rows[sent_epochs:]:
                    run = app_runs.run_in(s.runs_root, run_id)
                    for row in rows[sent_epochs:]:
                        yield _sse("epoch", {"row": row, "verdict": app_runs.provisional(run, rows[:row["epoch"]])})
                sent_epochs = max(sent_epochs, len(rows))
                result = app_runs.ending(s.runs_root, run_id)
                if result is not None and (ended or not _running_here(worker, run_id)):
                    yield _sse("result", result)
                    if rows:
                        try:
                            verdict = await heavy(request, app_runs.diagnose, app_runs.run_in(s.runs_root, run_id))
                        except HTTPException:  # busy: the page still has the provisional verdicts
                            verdict = None
                        if verdict:
                            yield _sse("diagnosis", verdict.as_dict())
                    yield _sse("end", {"status": result.get("status")})
                    return
                if ended:
                    yield _sse("end", ended)
                    return
                if time.monotonic() - last_ping > 15:
                    last_ping = time.monotonic()
                    yield ": ping\n\n"
                await asyncio.sleep(0.25)
        except (NotFound, HTTPException):
            yield _sse("end", {"status": "unknown"})
        finally:
            if live is not None:
                worker.unsubscribe(run_id, live)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _running_here(worker, run_id: str) -> bool:
    return worker is not None and run_id in worker.runs and worker.runs[run_id].status in ("queued", "running")
