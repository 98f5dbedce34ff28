"""Request bodies refused by their declared size before anything reads them.

Why: FastAPI parses a multipart body (spooling files to disk) before the route's dependencies run, so the upload
limits checked in the routes (``read_limited``) and authentication both came after the whole body had been
received: anyone could fill the disk with one unauthenticated request. This ASGI middleware answers 413 when a
request's ``Content-Length`` is over the largest body its route may take, and 411 when a body comes without one
(chunked), before a byte of it is read. The routes keep their own per-file checks, whose
messages name the file.

The limits, by decision: an upload route takes its file limit plus 1 MB of multipart framing (the drone batch
route: 50 files); every other request 16 MB (the largest JSON the API takes, a camera registry, is far smaller).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from service.config import Settings

__all__ = ["BodyLimit", "body_limit_for"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_MB: Final[int] = 1 << 20
_FRAMING: Final[int] = _MB  # multipart boundaries and the form fields beside the files
DEFAULT_LIMIT: Final[int] = 16 * _MB
DRONE_BATCH: Final[int] = 50  # images per /drone/images request (the route refuses more)
# Any spelling of the incident id ("+1", "1_0", "%201" reach the same route): the limit follows the route.
_EVIDENCE = re.compile(r"^/api/v1/(incidents/[^/]+/evidence|observations/(camera|drone))/?$")


def body_limit_for(path: str, settings: Settings) -> int:
    """The largest body a POST to ``path`` may have (bytes)."""
    evidence = int(settings.evidence.max_upload_mb * _MB)
    path = path.rstrip("/") or "/"
    if path == "/api/v1/observations/satellite":
        return int(settings.incidents.max_upload_mb * _MB) + _FRAMING
    if path == "/api/v1/drone/images":
        return DRONE_BATCH * evidence + _FRAMING
    if _EVIDENCE.match(path):
        return evidence + _FRAMING
    return DEFAULT_LIMIT


class BodyLimit:
    """The ASGI middleware (module docstring)."""

    def __init__(self, app: App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"], self.settings)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is None:
            if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                # Not one request this API takes needs a body of unknown size, and a body's size is only checked
                # before it is read when it is declared.
                await _refuse(send, 411, "a request body must declare its Content-Length")
                return
            await self.app(scope, receive, send)
            return
        try:
            size = int(declared)
        except ValueError:
            await _refuse(send, 400, "Content-Length is not a number")
            return
        if size > limit:
            await _refuse(send, 413, f"the request body ({size / _MB:.1f} MB) is over this route's {limit / _MB:g} MB")
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
