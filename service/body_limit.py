"""Request bodies refused by their declared size before anything reads them.

Why: FastAPI parses a multipart body (spooling files to disk) before the route's dependencies run, so the upload
limits checked in the routes (``read_limited``) and authentication both came after the whole body had been
received: anyone could fill the disk with one unauthenticated request. This ASGI middleware answers 413 when a
request's ``Content-Length`` is over the largest body its route may take, and 411 when a body comes without one
(chunked), before a byte of it is read. The routes keep their own per-file checks, whose
messages name the file.

The limits, by decision: an upload route takes its file limit plus 1 MB of multipart framing (the drone batch
route: 50 files); every other request 16 MB (the largest JSON the API takes, a camera registry, is far smaller).

A size within its limit was still read whole (the drone route takes 1.2 GB, spooled to disk) before the route said
401 to a caller without a token. So a POST to an upload route must also carry a valid bearer token before a byte
of its body is read: signed with this service's key, unexpired, naming a user who is active and whose password is
the one the token was issued under (one indexed query, in a worker thread) — the checks of ``service.deps``'s
``CurrentPrincipal``, answered with its 401. Whether that user's role may post there stays the route's to say
(403): a signed-in user is accountable for what they send. Small requests (every other route) are left to their
routes' own authentication.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from service.auth.security import TokenClaims, decode_token
from service.auth.service import user_of_token
from service.config import Settings

__all__ = ["BodyLimit", "body_limit_for", "upload_limit_for"]

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
    upload = upload_limit_for(path, settings)
    return DEFAULT_LIMIT if upload is None else upload


def upload_limit_for(path: str, settings: Settings) -> int | None:
    """The largest body a POST to ``path`` may have when it is an upload route (bytes), else None."""
    evidence = int(settings.evidence.max_upload_mb * _MB)
    path = path.rstrip("/") or "/"
    if path == "/api/v1/observations/satellite":
        return int(settings.incidents.max_upload_mb * _MB) + _FRAMING
    if path == "/api/v1/drone/images":
        return DRONE_BATCH * evidence + _FRAMING
    if _EVIDENCE.match(path):
        return evidence + _FRAMING
    return None


class BodyLimit:
    """The ASGI middleware (module docstring)."""

    def __init__(self, app: App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        upload = upload_limit_for(scope["path"], self.settings)
        limit = DEFAULT_LIMIT if upload is None else upload
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
        if upload is not None:
            refusal = await _token_refusal(scope, headers.get(b"authorization"))
            if refusal is not None:
                await _refuse(send, 401, refusal, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


async def _token_refusal(scope: Scope, authorization: bytes | None) -> str | None:
    """Why an upload's token is refused (the message its route's authentication would give), or None when it is
    valid. An app whose lifespan has not run (no key, no database) is let through to its route."""
    state = scope["app"].state if "app" in scope else None
    secret: str | None = getattr(state, "token_secret", None)
    factory: sessionmaker[Session] | None = getattr(state, "session_factory", None)
    if secret is None or factory is None:
        return None
    scheme, _, token = (authorization or b"").decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "Not authenticated"  # FastAPI's OAuth2PasswordBearer words it so
    claims = decode_token(secret, token.strip())
    if claims is None or not await anyio.to_thread.run_sync(_active_user, factory, claims):
        return "invalid or expired token"
    return None


def _active_user(factory: sessionmaker[Session], claims: TokenClaims) -> bool:
    with factory() as session:
        return user_of_token(session, claims) is not None


async def _refuse(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
