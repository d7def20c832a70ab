"""Training and runs: start a run (it queues for the worker), list and read runs, stop, resume, tag,
compare, the report, and the live stream of a run's events."""
from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from ...app import lifecycle, runs as app_runs, store as app_store
from ...errors import UserError
from .. import sse
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
    if s.worker is None:  # a bad config is a 400 with or without a worker
        await heavy(request, lifecycle.checked, body.config, s.data_dir, s.runs_root)
    worker = _worker(request)
    submitted = await heavy(request, lifecycle.submit, body.config, s.runs_root, s.data_dir)
    worker.submit(submitted.id, str(submitted.run_dir), submitted.name)
    return {"id": submitted.id, "status": submitted.status}


@router.get("")
async def list_runs(request: Request) -> list[dict]:
    s = state(request)
    held = [(q.id, q.name, q.status) for q in (s.worker.queued() if s.worker else [])]
    return await heavy(request, app_store.page_rows, s.store_path, held)


@router.get("/{run_id}")
async def run_detail(run_id: str, request: Request) -> dict:
    run = app_runs.run_in(state(request).runs_root, run_id)
    return await heavy(request, app_runs.detail, run)


@router.post("/{run_id}/stop")
async def stop(run_id: str, request: Request) -> dict:
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    held = s.worker.runs.get(run_id) if s.worker else None
    lifecycle.stop(run, held.status if held else None)
    return {"id": run_id, "stopping": True}


@router.post("/{run_id}/resume", status_code=202)
async def resume(run_id: str, request: Request) -> dict:
    """Continue an interrupted (or crashed) run from its last checkpoint, in the worker."""
    s = state(request)
    run = app_runs.run_in(s.runs_root, run_id)
    worker = _worker(request)
    await heavy(request, lifecycle.check_resumable, run, s.store_path, _held(worker, run_id))
    queued = worker.submit(run_id, str(run.dir), run.config.name, resume=True)
    return {"id": run_id, "status": queued.status}


@router.post("/{run_id}/tags")
async def tags(run_id: str, body: TagRequest, request: Request) -> dict:
    s = state(request)
    app_runs.run_in(s.runs_root, run_id)
    return {"id": run_id, "tags": await heavy(request, app_store.set_tags, s.store_path, run_id, body.tags)}


@router.get("/{run_id}/report", response_class=HTMLResponse)
async def report(run_id: str, request: Request):
    run = app_runs.final_weights(app_runs.run_in(state(request).runs_root, run_id))
    path = await heavy(request, app_runs.report, run, timeout=120)
    return HTMLResponse(path.read_text())


@router.get("/{run_id}/events", response_class=StreamingResponse)
async def events(run_id: str, request: Request):
    """Server-sent events of a run (cnnlab.app.runs.Watch says what): a run that does not exist is a 404,
    not a stream that waits for it."""
    s = state(request)
    worker = s.worker
    if not (worker is not None and run_id in worker.runs):
        app_runs.run_in(s.runs_root, run_id)  # NotFound -> 404
    live, past = worker.subscribe(run_id) if worker else (None, [])
    watch = app_runs.Watch(s.runs_root, run_id, past)

    async def stream():
        last_ping = time.monotonic()
        try:
            yield sse.frame("hello", {"id": run_id, "queued": bool(worker and run_id in worker.runs
                                                                   and worker.runs[run_id].status == "queued")})
            while not watch.done and not await request.is_disconnected():
                news = []
                while live is not None and not live.empty():
                    news.append(live.get_nowait())
                # a light poll (a few files read) in a thread of its own: it does not take a heavy slot
                for kind, data in await asyncio.to_thread(watch.poll, news, _held(worker, run_id)):
                    yield sse.frame(kind, data)
                if time.monotonic() - last_ping > 15:
                    last_ping = time.monotonic()
                    yield sse.PING
                await asyncio.sleep(0.25)
        except (UserError, HTTPException) as exc:  # the run vanished, or the server is too busy to tell
            yield sse.frame("end", {"status": "unknown", "message": str(getattr(exc, "detail", exc))})
        finally:
            if live is not None:
                worker.unsubscribe(run_id, live)

    return sse.response(stream())


def _held(worker, run_id: str) -> bool:
    """Whether this server's worker holds the run (queued or training)."""
    return worker is not None and run_id in worker.runs and worker.runs[run_id].status in ("queued", "running")


compare_router = APIRouter(prefix="/api")


@compare_router.post("/compare")
async def compare(body: CompareRequest, request: Request) -> dict:
    root = state(request).runs_root
    return await heavy(request, app_runs.compare, [app_runs.run_in(root, i) for i in body.ids])
