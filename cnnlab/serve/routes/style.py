"""Style transfer in the page: the bundled style images, Gatys's optimisation streamed as the image forms
(Server-Sent Events), and the fast style nets of <runs folder>/styles/ listed and chained on a photo."""
from __future__ import annotations

import threading

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from ...app import style as app_style
from ...errors import UserError
from .. import sse
from ..bodies import ApplyStyleRequest, ContentRequest, GatysRequest
from ..state import heavy, state, streamed

router = APIRouter(prefix="/api/style")
_creating = threading.Lock()


def _gatys_lock(request: Request) -> threading.Lock:
    """One Gatys at a time per server: it takes a core for up to minutes, and training runs beside it."""
    with _creating:
        if not hasattr(request.app.state, "gatys_lock"):
            request.app.state.gatys_lock = threading.Lock()
        return request.app.state.gatys_lock


@router.get("/styles")
async def bundled_styles(request: Request) -> list[dict]:
    return await heavy(request, app_style.bundled_styles)


@router.get("/nets")
async def nets(request: Request) -> list[dict]:
    return await heavy(request, app_style.style_nets, state(request).runs_root)


@router.post("/apply")
async def apply(body: ApplyStyleRequest, request: Request) -> dict:
    image = body.image if body.image is not None else {"run": body.run, "test_index": body.test_index}
    s = state(request)
    return await heavy(request, app_style.apply_nets, s.runs_root, image, body.nets, body.size, s.see)


@router.post("/content")
async def content(body: ContentRequest, request: Request) -> dict:
    """A finished run's test image, to show as the content before styling it."""
    s = state(request)
    return await heavy(request, app_style.content_preview, s.runs_root, body.run, body.test_index, body.size, s.see)


@router.post("/gatys")
async def gatys(body: GatysRequest, request: Request) -> StreamingResponse:
    """text/event-stream: a `step` event ({step, steps, style, content, total, image, seconds}) for the first
    step, every `every`-th and the last; then `done`, or `failed` with the reason. Closing the page stops it."""
    # inputs are checked and decoded before the stream starts: a bad upload is a 400/413 answer, not an event
    s = state(request)
    content, style = await heavy(request, app_style.gatys_inputs, s.runs_root, body.content, body.run,
                                 body.test_index, body.style, body.style_name, body.size, body.steps, body.every,
                                 s.see)
    lock = _gatys_lock(request)
    if not lock.acquire(blocking=False):
        raise HTTPException(503, "busy: a style transfer is already running on this server; "
                                 "wait for it to finish or close its page")

    def optimise(send, should_stop):
        try:
            app_style.gatys(content, style, lambda step: send(("step", step)), body.size, body.steps, body.every,
                            body.style_weight, body.content_weight, should_stop=should_stop)
        finally:
            lock.release()

    try:
        steps = streamed(optimise)
    except BaseException:
        lock.release()
        raise

    async def events():
        try:
            async for kind, data in steps:
                yield sse.frame(kind, data)
            yield sse.frame("done", {})
        except app_style.Stopped:
            pass
        except UserError as exc:
            yield sse.frame("failed", {"detail": str(exc)[:300]})
        except Exception as exc:  # noqa: BLE001 — the stream says it failed; never a hung page
            yield sse.frame("failed", {"detail": f"{type(exc).__name__}: {str(exc)[:200]}"})
        finally:
            steps.close()  # a client that hangs up (the generator is cancelled) stops the optimisation
    return sse.response(events())
