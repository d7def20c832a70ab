"""What one server holds between requests (its folders, its training worker, the See cache), and how it runs
CPU-heavy work: off the event loop, a few at a time, within a time limit, in daemon threads — so /api/info
answers while a large model is checked, and Ctrl-C or SIGTERM never wait on a request (anyio's own worker
threads are not daemons: a Python exit joins them). `heavy` hands back one answer; `streamed` what the work
says as it goes (Gatys's steps)."""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request

from ..app.see import SeeCache
from .worker import TrainingWorker

HEAVY_AT_ONCE = 2        # CPU-heavy requests in flight (2 cores, and training beside); more wait for a slot
HEAVY_TIMEOUT_S = 30.0   # then the page gets a 503 (the limits in cnnlab/schema/limits.py keep work below it)
SLOT_WAIT_S = 5.0        # a request waits this long for a free slot (a page drawing fast), then gets a 503


@dataclass
class ServerState:
    runs_root: Path
    data_dir: str | None
    token: str | None
    worker: TrainingWorker | None
    see: SeeCache = field(default_factory=SeeCache)
    # folders of photos read on Start (by path or unpacked from a zip): the only ones the Data panel's
    # thumbnails come from, beside the uploads folder
    read_folders: set[str] = field(default_factory=set)
    _slots: tuple | None = None   # (event loop, its semaphore)

    @property
    def heavy_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one per event loop (a test client may make several)
            self._slots = (loop, asyncio.Semaphore(HEAVY_AT_ONCE))
        return self._slots[1]

    @property
    def uploads(self) -> Path:
        return self.runs_root / "uploads"

    @property
    def store_path(self) -> Path:
        return self.runs_root / "cnnlab.db"


def state(request: Request) -> ServerState:
    return request.app.state.cnnlab


async def heavy(request: Request, fn, *args, timeout: float | None = None, **kwargs):
    """`fn(*args, **kwargs)` in a daemon thread; its exception is raised here. 503 when no slot frees within
    SLOT_WAIT_S, or when it outlasts `timeout` (the thread then finishes alone, bounded by the input limits)."""
    timeout = timeout or HEAVY_TIMEOUT_S
    slots = state(request).heavy_slots
    try:
        await asyncio.wait_for(slots.acquire(), SLOT_WAIT_S)
    except asyncio.TimeoutError:
        raise HTTPException(503, f"busy: {HEAVY_AT_ONCE} requests are being worked on; try again in a moment") \
            from None
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(value, error):
        slots.release()  # when the work ends, not when the request gives up: abandoned work still holds a slot
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(value)

    _in_thread(loop, lambda: fn(*args, **kwargs), settle)
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except asyncio.TimeoutError:
        raise HTTPException(503, f"the request took longer than {timeout:.0f} s and was abandoned; "
                                 "make the model or image smaller") from None


_DONE = object()


def streamed(fn, *args, **kwargs) -> "Streamed":
    """`fn(send, should_stop, *args, **kwargs)` started now in a daemon thread, and what it sends as it goes:
    each `send(item)` comes out of the returned async iterator, then fn's exception, if it raised, is raised
    there. `close()` it when the consumer leaves (the page closed): `should_stop()` turns true, as it does
    when the server stops. For work of minutes that limits itself (one Gatys at a time): no heavy slot, no
    time limit."""
    loop = asyncio.get_running_loop()
    stream = Streamed()

    def send(item) -> None:
        if not _call_in(loop, stream.items.put_nowait, (item, None)):
            stream.close()
    _in_thread(loop, lambda: fn(send, stream.stop.is_set, *args, **kwargs),
               lambda _, error: stream.items.put_nowait((_DONE, error)))
    return stream


class Streamed:
    def __init__(self):
        self.items: asyncio.Queue = asyncio.Queue()
        self.stop = threading.Event()

    def __aiter__(self) -> "Streamed":
        return self

    async def __anext__(self):
        item, error = await self.items.get()
        if item is not _DONE:
            return item
        if error is not None:
            raise error
        raise StopAsyncIteration

    def close(self) -> None:
        self.stop.set()


def _in_thread(loop, work, settle) -> None:
    """`work()` in a daemon thread, then `settle(value, error)` on the event loop (never, if it stopped)."""
    def run():
        try:
            value, error = work(), None
        except BaseException as exc:  # noqa: BLE001 — handed to the request, which maps it to a response
            value, error = None, exc
        _call_in(loop, settle, value, error)
    threading.Thread(target=run, name="cnnlab-request", daemon=True).start()


def _call_in(loop, callback, *args) -> bool:
    """`callback(*args)` on the event loop, from another thread; False when the server stopped meanwhile."""
    try:
        loop.call_soon_threadsafe(callback, *args)
        return True
    except RuntimeError:
        return False
