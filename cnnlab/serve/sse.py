"""Server-sent events, framed in one place: a run's live stream and the style route's optimisation both
speak it (text/event-stream: `event:` and `data:` lines, a blank line after each event)."""
from __future__ import annotations

import json

from fastapi.responses import StreamingResponse

PING = ": ping\n\n"   # a comment line: keeps a quiet connection open through proxies


def frame(kind: str, data) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


def response(frames) -> StreamingResponse:
    """A stream of frames, never cached or buffered on the way (X-Accel-Buffering: nginx's)."""
    return StreamingResponse(frames, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
