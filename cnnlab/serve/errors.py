"""Errors as short JSON answers: a user's mistake is a 4xx naming what was wrong and what is valid, never a
500, never the request echoed back (an upload can be megabytes), never the server's own paths."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..errors import Conflict, NotFound, TooLarge, UserError

STATUS = ((NotFound, 404), (Conflict, 409), (TooLarge, 413), (UserError, 400))


def install(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        status = next(code for kind, code in STATUS if isinstance(exc, kind))
        return JSONResponse({"detail": _without_paths(str(exc), request)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        """pydantic's first complaint, where it is and what it says; its `input` (the request) left out."""
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}{more}"[:500]}, status_code=422)


def _without_paths(message: str, request: Request) -> str:
    """A message naming the run, not the folder the server keeps runs in."""
    root = str(request.app.state.cnnlab.runs_root)
    return message.replace(root + "/", "").replace(root, "the runs folder")
