"""Every request passes here before a route sees it (a plain ASGI middleware: it reads the body itself).

- Host: bound to loopback, only requests addressed to a loopback name are answered (no DNS rebinding);
  bound elsewhere, every request needs the token `cnnlab serve` printed.
- The API is not answered to another site's page (the browser's Sec-Fetch-Site header says where a request
  comes from; a client that sends none, like curl or Python, is answered).
- State-changing requests: JSON only (a cross-site form cannot post), and an Origin header, when sent, must be
  this server's own (a page on another site cannot drive it).
- Bodies: over MAX_BODY_BYTES is a 413 before anything is parsed, and JSON nested deeper than MAX_JSON_DEPTH
  a 400 (json.loads would recurse).
"""
from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs, urlsplit

from ..app.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_ZIP_BYTES, json_depth

# The zip of the user's own photos: the one body that is not JSON. A cross-site form cannot send
# application/zip (it is not one of a form's three types), so it stays as safe as JSON.
ZIP_PATH, ZIP_TYPE = "/api/data/zip", "application/zip"

LOOPBACK = ("127.0.0.1", "localhost", "::1")   # addresses that keep the server on this machine
# Host names answered without a token: loopback, and Starlette's test client (a name no DNS resolves)
ANSWERED = ("127.0.0.1", "localhost", "[::1]", "testserver")
CHANGES_STATE = ("POST", "PUT", "PATCH", "DELETE")


class Guard:
    def __init__(self, app, token: str | None = None):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await _answer(send, *refusal)
        if scope["method"] in CHANGES_STATE:
            limit = MAX_ZIP_BYTES if _is_zip(scope, headers) else MAX_BODY_BYTES
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return await _answer(send, 413, _too_large(limit))
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > limit:
                    return await _answer(send, 413, _too_large(limit))
            body = b"".join(chunks)
            if limit == MAX_BODY_BYTES and body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
                return await _answer(send, 400, f"the JSON body is nested more than {MAX_JSON_DEPTH} deep")
            sent = False

            async def replay():
                nonlocal sent
                if sent:
                    return await receive()
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await self._respond(scope, replay, send)
        return await self._respond(scope, receive, send)

    async def _respond(self, scope, receive, send):
        if self.token is None or not parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token"):
            return await self.app(scope, receive, send)

        async def with_cookie(message):  # the token from the printed URL becomes a cookie for the page's requests
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append(
                    (b"set-cookie", f"cnnlab_token={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()))
            await send(message)
        return await self.app(scope, receive, with_cookie)

    def _refusal(self, scope, headers) -> tuple[int, str] | None:
        raw_host = headers.get("host", "")
        host = raw_host.split("]", 1)[0] + "]" if raw_host.startswith("[") else raw_host.rsplit(":", 1)[0]
        if self.token is None and host not in ANSWERED:
            return 403, f"host '{host[:100]}' is not served; use http://127.0.0.1"
        path = scope.get("path", "")
        if self.token is not None and not path.startswith("/static/"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            cookies = dict(part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part)
            given = headers.get("authorization", "").removeprefix("Bearer ") or (query.get("token") or [""])[0] \
                or cookies.get("cnnlab_token", "")
            if not given or not secrets.compare_digest(given.encode(), self.token.encode()):
                return 401, "a token is needed: open the URL `cnnlab serve` printed"
        if path.startswith("/api/") and headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            # a page on another site (or another port) reading the API: a GET of a folder's report would let it
            # make the server scan any folder, and show its pictures through the thumbnail route
            return 403, "a page on another site cannot read this server's API; open http://127.0.0.1 itself"
        if scope["method"] in CHANGES_STATE:
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != raw_host:
                return 403, f"a request from another site ({origin[:100]}) cannot change anything here"
            if not headers.get("content-type", "").startswith("application/json") and not _is_zip(scope, headers):
                return 415, "send JSON (Content-Type: application/json)"
        return None


def _is_zip(scope, headers) -> bool:
    return scope.get("path") == ZIP_PATH and headers.get("content-type", "").startswith(ZIP_TYPE)


def _too_large(limit: int = MAX_BODY_BYTES) -> str:
    return f"the request body is over the limit of {limit / 2 ** 20:.0f} MB"


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
