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

The multipart body of an upload route has its parts' headers made parseable as it streams through
(:class:`PartHeaders`), because the parser (python-multipart, under starlette's form reading, whose limits
FastAPI does not let a route change) refuses the whole body for one odd part with a bare 400 "Invalid multipart
data.", and a township team's flight of 50 images was lost for one file name. By decision:

* a ``filename`` longer than :data:`MAX_NAME_CHARS` characters (no phone or drone file system writes one; a
  5,000-character name went over the parser's 4 KB header line) is shortened, keeping its start and its
  extension (:func:`shortened_file_name`): the image is taken, and answered or listed under that name;
* a part without a ``filename`` but sent as a file (``Content-Type: image/*`` or ``application/octet-stream``:
  some HTTP libraries leave the parameter out when the name is empty, and RFC 7578 only says it SHOULD be there;
  ``filename*`` is not read, as RFC 7578 forbids it) is given an empty one, so it is taken as the file it is
  (the routes name it ``image.jpg`` or ``photo``) instead of a form field over starlette's 1 MB field limit.

Nothing else of the body changes; a part whose headers are over 64 KB is left to the parser, which refuses it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import anyio.to_thread
from python_multipart.multipart import parse_options_header
from sqlalchemy.orm import Session, sessionmaker

from service.auth.security import TokenClaims, decode_token
from service.auth.service import user_of_token
from service.config import Settings

__all__ = ["MAX_NAME_CHARS", "BodyLimit", "PartHeaders", "body_limit_for", "shortened_file_name", "upload_limit_for"]

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
            boundary = _multipart_boundary(headers.get(b"content-type", b""))
            if boundary is not None:
                receive = _rewriting(receive, PartHeaders(boundary))
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


MAX_NAME_CHARS: Final[int] = 255  # ext4, APFS, FAT and NTFS all stop at 255 characters (or bytes) a name
_HEADERS_CAP: Final[int] = 64 * 1024
_FILE_TYPES: Final[tuple[bytes, ...]] = (b"image/", b"application/octet-stream")


def shortened_file_name(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """``name`` when it has at most ``limit`` characters, else its start, ``…`` and its extension (up to 16
    characters: ``.jpg``, ``.JPG``, ``.heic``), ``limit`` characters in all: still told apart from the batch's
    other images by its beginning, and still typed by its end."""
    if len(name) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = f".{extension}" if dot and stem and len(extension) < 16 else ""
    return name[: limit - 1 - len(suffix)] + "…" + suffix


def _multipart_boundary(content_type: bytes) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, read as starlette reads it; None for any other."""
    kind, params = parse_options_header(content_type)
    return (params.get(b"boundary") or None) if kind == b"multipart/form-data" else None


def _rewriting(receive: Receive, parts: PartHeaders) -> Receive:
    async def rewritten() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            more = bool(message.get("more_body", False))
            message = {**message, "body": parts.feed(message.get("body", b""), more=more)}
        return message

    return rewritten


class PartHeaders:
    """The parts' headers of one multipart body made parseable as it streams through, chunk by chunk (module
    docstring); the parts' contents are passed on as they are, at most a delimiter's length held back."""

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"\r\n--" + boundary
        # The first delimiter starts the body, without the CRLF of the others: one is put before the body, and
        # taken off again from what is passed on.
        self._pending = bytearray(b"\r\n")
        self._unsent_prefix = 2
        self._state = "content"  # content: a part's data (or the preamble); headers: after a delimiter; rest

    def feed(self, chunk: bytes, *, more: bool) -> bytes:
        """What can be passed on of the body so far, ``chunk`` added; all of it when no ``more`` is to come."""
        pending = self._pending
        pending += chunk
        out = bytearray()
        while pending:
            if self._state == "content":
                at = pending.find(self._delimiter)
                if at < 0:
                    # A delimiter may begin at the chunk's end: kept for the next chunk.
                    cut = len(pending) - (len(self._delimiter) - 1 if more else 0)
                    if cut <= 0:
                        break
                    out += pending[:cut]
                    del pending[:cut]
                    break
                end = at + len(self._delimiter)
                out += pending[:end]
                del pending[:end]
                self._state = "headers"
            elif self._state == "headers":
                if len(pending) < 2 and more:
                    break
                if pending.startswith(b"--"):  # the closing delimiter: the epilogue follows, passed on
                    self._state = "rest"
                    continue
                end = pending.find(b"\r\n\r\n")
                if end < 0:
                    if more and len(pending) <= _HEADERS_CAP:
                        break
                    self._state = "rest"  # over the cap, or the body ends in them: left to the parser
                    continue
                out += _parseable_headers(bytes(pending[: end + 4]))
                del pending[: end + 4]
                self._state = "content"
            else:
                out += pending
                pending.clear()
        if self._unsent_prefix:
            dropped = min(self._unsent_prefix, len(out))
            del out[:dropped]
            self._unsent_prefix -= dropped
        return bytes(out)


def _parseable_headers(block: bytes) -> bytes:
    """One part's header lines (from the CRLF after its delimiter to the blank line) with its file name shortened,
    or an empty one added to a file sent without a name (module docstring); the block itself when neither is needed.

    The Content-Disposition line is read as the parser reads it (python-multipart's ``parse_options_header``) and,
    when it must change, written again with the two parameters starlette reads, ``name`` and ``filename``."""
    lines = block.split(b"\r\n")
    values: dict[bytes, tuple[int, bytes]] = {}
    for number, line in enumerate(lines):
        field, colon, value = line.partition(b":")
        if colon:
            values.setdefault(field.strip().lower(), (number, value.strip()))
    if b"content-disposition" not in values:
        return block
    number, disposition = values[b"content-disposition"]
    kind, options = parse_options_header(disposition)
    if b"name" not in options:
        return block  # refused by the parser, naming what is missing
    if b"filename" in options:
        filename = _shortened_parameter(options[b"filename"])
        if filename == options[b"filename"]:
            return block
    else:
        content_type = parse_options_header(values.get(b"content-type", (0, b""))[1])[0]
        if not content_type.startswith(_FILE_TYPES):
            return block
        filename = b""
    lines[number] = b"Content-Disposition: %s; name=%s; filename=%s" % (
        kind or b"form-data",
        _quoted(options[b"name"]),
        _quoted(filename),
    )
    return b"\r\n".join(lines)


def _shortened_parameter(raw: bytes) -> bytes:
    """A file name's bytes as the parser read them, shortened to :data:`MAX_NAME_CHARS` characters as starlette
    will decode them: UTF-8 (the form's charset), else Latin-1."""
    try:
        name, codec = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        name, codec = raw.decode("latin-1"), "latin-1"
    shortened = shortened_file_name(name)
    return raw if shortened == name else shortened.encode(codec, "replace")


def _quoted(value: bytes) -> bytes:
    """A parameter value quoted as python-multipart unquotes it."""
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
