"""Frame sources: RTSP, HTTP-MJPEG and HTTP snapshot cameras, video files and image folders, behind one iterator.

Every source is bound to one camera and one preset at construction and stamps every :class:`Frame` it yields
with exactly those ids. There is no other way to make a frame here, so a frame can never be attributed to a
camera it did not come from (``tests/video/test_sources.py`` serves two cameras at once and checks it).

Live sources (RTSP, MJPEG, snapshot) never give up on their own: when the stream drops, errors, or *stalls*
(nothing new for ``stall_timeout_s`` — a camera that keeps the TCP connection open but stops sending is the common
failure of cheap tower links), they reconnect with exponential backoff (0.5 s doubling to 30 s, ±10 % jitter so
that a hundred cameras behind one router do not reconnect in lockstep), and the delay resets after the next good
frame received, whether or not the cadence lets it through. A frame that does not decode (a truncated or garbled
JPEG part) is counted and skipped; it never ends the stream. ``max_failures`` exists for callers that prefer an
error after N failed reconnects in a row (a connection that delivered a good frame is not a failure).

Timestamps are UTC. Live frames get the wall clock at grab (the camera's own clock is not trusted: tower cameras
drift by minutes and are often never set). Video files get ``start_time + index × frame_interval_s`` (the
container's 1/fps unless given — time-lapse clips need it); image folders get the epoch in FIgLib-style names
(``<unix epoch>_<offset>.jpg``), else ``start_time + index × frame_interval_s``, else the file's mtime when those
increase in name order, else (a copy ties them) the start of the iteration + index × ``frame_interval_s``.

Cadence: sources yield at most one frame per ``min_interval_s`` (the preset's cadence; files and folders by their
own timestamps, folders only by capture times, never by modification times: :class:`ImageFolderSource`); the
frames in between are read (so a stream does not back up) but not decoded (MJPEG) or not converted (RTSP, files),
and counted as throttled. A live stream is read by a thread of its own, also while the
consumer works on the last frame: a detector slower than the cadence gets the newest frame when it asks for the
next, stamped when it arrived, never a backlog that waited in the socket or FFmpeg's buffer (the first frame of an
RTSP connection is the one FFmpeg read while probing the stream at open). ``Frame.seq`` counts every frame the
source received, so gaps show what was dropped.

RTSP goes through OpenCV's FFmpeg backend with TCP transport (``OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp``
unless the environment already sets it): UDP loses packets on 4G tower links and smears frames. Open and read
timeouts are passed to FFmpeg so a dead camera cannot block a grabber forever. MJPEG and snapshots use httpx
(credentials in the URL; ``http_auth="digest"`` for Hikvision ISAPI).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray

from video.errors import VideoError

if TYPE_CHECKING:
    import httpx

    from video.registry import CameraRecord, HttpAuth, PresetRecord

__all__ = [
    "IMAGE_SUFFIXES",
    "Backoff",
    "Clock",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "MjpegSource",
    "MultipartJpegParser",
    "RtspSource",
    "SnapshotSource",
    "SourceError",
    "SourceStats",
    "VideoFileSource",
    "decode_jpeg",
    "epoch_from_name",
    "open_source",
    "redact_url",
    "utc_now",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_FIGLIB_NAME: Final = re.compile(r"^(?P<epoch>\d{9,11})(?:_[+-]\d+)?$")
_BOUNDARY: Final = re.compile(r"""boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))""", re.IGNORECASE)
_MAX_HEADER_BYTES: Final = 16 * 1024
#: Larger than any camera JPEG (a 4K frame at high quality is ~3 MB); bounds memory when a stream is garbage.
DEFAULT_MAX_PART_BYTES: Final = 32 * 1024 * 1024

Clock = Callable[[], datetime]
ImageArray = NDArray[np.uint8]


def utc_now() -> datetime:
    """The wall clock, UTC."""
    return datetime.now(UTC)


class SourceError(VideoError):
    """A source cannot deliver frames at all (missing file, not a video, not an MJPEG stream, too many failures)."""


class _DroppedError(Exception):
    """The connection is unusable; reconnect."""


class _StallError(_DroppedError):
    """Nothing new arrived within the stall timeout; reconnect."""


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One image from one camera preset.

    Attributes:
        image: BGR ``uint8`` (height, width, 3), OpenCV's order.
        captured_at: UTC, timezone-aware (see the module docstring for where it comes from).
        camera_id, preset_id: the ids the source was bound to.
        seq: index of the frame among everything this source received (strictly increasing; gaps are frames
            skipped as corrupt or throttled).
        encoded: the camera's own JPEG bytes when the source received a JPEG, so evidence can be sent untouched.
    """

    image: ImageArray
    captured_at: datetime
    camera_id: str
    preset_id: str
    seq: int
    encoded: bytes | None = None

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"a frame is a BGR uint8 (h, w, 3) array, got {self.image.dtype} {self.image.shape}")
        if self.captured_at.tzinfo is None or self.captured_at.utcoffset() is None:
            raise ValueError("captured_at must be timezone-aware")
        object.__setattr__(self, "captured_at", self.captured_at.astimezone(UTC))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def rgb(self) -> ImageArray:
        """The image in RGB order (what :class:`detector.detections.Detector` takes)."""
        return np.ascontiguousarray(self.image[:, :, ::-1])


@dataclass
class SourceStats:
    """Counters a health check can read while the source runs."""

    frames: int = 0
    corrupt: int = 0
    throttled: int = 0
    reconnects: int = 0
    stalls: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential reconnect delays: ``initial_s · factor^(n−1)``, capped at ``max_s``, with ±``jitter`` spread."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        """The delay before reconnect attempt ``attempt`` (1-based)."""
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        # Not a secret: jitter only spreads reconnects of many cameras over time.
        return base * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)  # noqa: S311


class FrameSource(Protocol):
    """What every source offers: bound ids, an iterator of frames, counters and a thread-safe ``close``."""

    @property
    def camera_id(self) -> str:
        """The camera every frame is attributed to."""
        ...

    @property
    def preset_id(self) -> str:
        """The preset every frame is attributed to."""
        ...

    @property
    def stats(self) -> SourceStats:
        """Live counters."""
        ...

    def __iter__(self) -> Iterator[Frame]:
        """Frames in order until the source ends (files) or is closed (live)."""
        ...

    def close(self) -> None:
        """Stop iterating as soon as possible; callable from another thread."""
        ...


#: Path and query parameters whose value is a secret: cameras put passwords there too (XMEye's
#: ``.../user=admin&password=...``, Foscam-style ``loginpas=``, Vivotek's ``userpass=``), and signed URLs carry
#: tokens. Any name ending in a password-, token- or key-like word counts (``adminpass``, ``userpwd``,
#: ``stream_key``), and any starting with ``auth``: redacting a harmless parameter costs less than printing a
#: password under a name nobody listed.
_SECRET_PARAM = re.compile(
    r"(?i)(?<![a-z0-9])([a-z0-9_]*?(?:password|passwort|passwd|pass|pwd|psw|psd|pas|pw|token|secret|key|sig|signature)"
    r"|auth[a-z0-9_]*)=([^&;/?#\s_]*(?:_(?![a-z]+=)[^&;/?#\s_]*)*)"
)


def url_userinfo(url: str) -> tuple[int, int] | None:
    """Where the user part of ``url`` lies (start, end: the index of its ``@``), None without one.

    Read by hand, not by ``urlsplit``: a password holding an unencoded ``#`` or ``?`` (``admin:ab#cd@host``) makes
    URL parsers cut the authority short and take part of the password for a host, a port or a fragment. An ``@``
    before the first ``/``, ``?`` or ``#`` ends the user part; a later one does too when the text before it holds
    a ``:`` and no ``/`` (such a password), but not an ``@`` in a path or query (``…:554/user=a&password=p@ss``).
    """
    scheme = url.find("://")
    if scheme < 0:
        return None
    start, at = scheme + 3, url.rfind("@")
    if at <= start:
        return None
    authority_end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
    userinfo = url[start:at]
    if at < authority_end or (":" in userinfo and "/" not in userinfo):
        return start, at
    return None


def redact_url(url: str, *, keep_user: bool = True) -> str:
    """The URL with its secrets replaced by ``***``, for logs, error messages and views of people who may not see
    them: the password of its user part (all of the user part unless ``keep_user``), and the value of every
    password-like parameter in its path or query (:data:`_SECRET_PARAM`)."""
    rest_start, head = 0, ""
    if (span := url_userinfo(url)) is not None:
        start, at = span
        user, has_password, _ = url[start:at].partition(":")
        shown = (f"{user}:***" if has_password else user) if keep_user else "***"
        head, rest_start = url[:start] + shown + "@", at + 1
    return head + _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", url[rest_start:])


def decode_jpeg(data: bytes) -> ImageArray | None:
    """A complete JPEG → BGR image, or ``None`` for anything else.

    The SOI/EOI check matters: libjpeg happily decodes a truncated JPEG into a frame whose bottom is grey, which a
    detector would then analyse; a missing end-of-image marker means the part was cut, so it is refused.
    """
    import cv2

    body = data.rstrip(b"\r\n\t ")
    if len(body) < 4 or not body.startswith(b"\xff\xd8") or not body.endswith(b"\xff\xd9"):
        return None
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        return None
    return np.asarray(image, dtype=np.uint8)


def epoch_from_name(name: str) -> datetime | None:
    """The UTC time in a FIgLib-style file stem (``1569442402_+00000``, or a bare epoch), else ``None``."""
    match = _FIGLIB_NAME.match(Path(name).stem)
    return datetime.fromtimestamp(int(match.group("epoch")), UTC) if match else None


class _BoundSource:
    """Ids, counters, the stop flag and frame stamping shared by every source."""

    def __init__(self, camera_id: str, preset_id: str, *, clock: Clock = utc_now) -> None:
        if not camera_id or not preset_id:
            raise SourceError("a frame source must be bound to a camera id and a preset id")
        self._camera_id = camera_id
        self._preset_id = preset_id
        self._clock = clock
        self._stop = threading.Event()
        self._stats = SourceStats()

    @property
    def camera_id(self) -> str:
        """The camera every frame is attributed to."""
        return self._camera_id

    @property
    def preset_id(self) -> str:
        """The preset every frame is attributed to."""
        return self._preset_id

    @property
    def stats(self) -> SourceStats:
        """Live counters."""
        return self._stats

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Stop at the next frame or wait (thread-safe)."""
        self._stop.set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _frame(self, image: ImageArray, captured_at: datetime, seq: int, encoded: bytes | None = None) -> Frame:
        self._stats.frames += 1
        return Frame(image, captured_at, self._camera_id, self._preset_id, seq, encoded)

    @property
    def label(self) -> str:
        """``camera/preset`` for log lines."""
        return f"{self._camera_id}/{self._preset_id}"


class _LiveSource(_BoundSource):
    """Reconnect, backoff, stall and cadence logic; subclasses implement one connection as :meth:`_session`.

    The connection is read by a thread of its own, all the time, while the consumer (the detector) works: a live
    camera does not wait for a slow consumer, so whatever it sends meanwhile is read and dropped (counted as
    throttled) instead of piling up in the socket's or FFmpeg's buffer and being handed over late under a fresh
    time stamp. A frame is decoded and handed over only when the consumer asks for the next one and the cadence
    allows it: it is then the newest the camera sent, stamped when it arrived.
    """

    def __init__(
        self,
        camera_id: str,
        preset_id: str,
        *,
        min_interval_s: float = 0.0,
        stall_timeout_s: float = 10.0,
        backoff: Backoff = Backoff(),
        max_failures: int | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(camera_id, preset_id, clock=clock)
        if min_interval_s < 0.0 or stall_timeout_s <= 0.0:
            raise SourceError("min_interval_s must be ≥ 0 and stall_timeout_s > 0")
        self.min_interval_s = min_interval_s
        self.stall_timeout_s = stall_timeout_s
        self.backoff = backoff
        self.max_failures = max_failures
        self._seq = 0
        self._last_emit: float | None = None
        self._failures = 0
        self._halt = threading.Event()  # ends the current iteration's reader (close, or the consumer left)
        self._want = threading.Event()  # the consumer waits for a frame

    def close(self) -> None:
        """Stop at the next frame or wait (thread-safe); wakes the reader wherever it waits."""
        super().close()
        self._halt.set()
        self._want.set()

    def _halted(self) -> bool:
        return self._halt.is_set()

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _received(self) -> None:
        """A complete frame arrived: the connection works, so the reconnect backoff starts over (whether or not
        the cadence lets this frame through)."""
        self._failures = 0

    def _due(self) -> bool:
        """Whether a frame received now should be handed over: the consumer waits for one and the cadence allows
        it; counts it as throttled otherwise."""
        now = time.monotonic()
        if not self._want.is_set() or (self._last_emit is not None and now - self._last_emit < self.min_interval_s):
            self._stats.throttled += 1
            return False
        return True

    def _wait_wanted(self) -> bool:
        """Block until the consumer asks for a frame; False when the iteration ends first."""
        self._want.wait()
        return not self._halted()

    def _emitted(self) -> None:
        self._last_emit = time.monotonic()

    def _session(self) -> Iterator[Frame]:
        """Frames of one connection; returns when the stream ends, raises on errors."""
        raise NotImplementedError

    def _describe(self) -> str:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        import queue

        if self.closed:
            return
        self._halt = halt = threading.Event()
        self._want = want = threading.Event()
        handoff: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

        def read() -> None:
            try:
                for frame in self._frames():
                    want.clear()
                    handoff.put(("frame", frame))
            except BaseException as exc:  # handed to the consumer, raised there
                handoff.put(("error", exc))
            finally:
                handoff.put(("end", None))

        reader = threading.Thread(target=read, name=f"source-{self.label}", daemon=True)
        reader.start()
        try:
            while True:
                want.set()
                kind, value = handoff.get()
                if kind == "frame":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            halt.set()
            want.set()

    def _frames(self) -> Iterator[Frame]:
        """The reader: sessions with reconnects and backoff, until closed or halted."""
        import httpx

        self._failures = 0
        while not self._halted():
            try:
                for frame in self._session():
                    self._failures = 0
                    self._emitted()
                    yield frame
                    if self._halted():
                        return
                reason = "the stream ended"
            except _StallError as exc:
                self._stats.stalls += 1
                reason = f"stalled: {exc}"
            except _DroppedError as exc:
                reason = str(exc)
            except httpx.TimeoutException as exc:
                self._stats.stalls += 1
                reason = f"stalled: no data for {self.stall_timeout_s:g} s ({type(exc).__name__})"
            except (httpx.HTTPError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if self._halted():
                return
            self._failures += 1
            failures = self._failures
            self._stats.last_error = reason
            if self.max_failures is not None and failures > self.max_failures:
                raise SourceError(f"{self.label}: {self._describe()}: giving up after {failures} failures: {reason}")
            delay = self.backoff.delay(failures)
            log.warning("%s: %s: %s; reconnecting in %.1f s", self.label, self._describe(), reason, delay)
            self._stats.reconnects += 1
            if self._halt.wait(delay):
                return


def _http_auth(url: str, mode: HttpAuth) -> tuple[str, httpx.Auth | None]:
    """Move credentials out of the URL into an httpx auth object (digest cannot be expressed in a URL)."""
    import httpx

    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    user, password = unquote(parts.username), unquote(parts.password or "")
    return bare, httpx.DigestAuth(user, password) if mode == "digest" else httpx.BasicAuth(user, password)


class _HttpSource(_LiveSource):
    def __init__(
        self,
        url: str,
        camera_id: str,
        preset_id: str,
        *,
        http_auth: HttpAuth = "basic",
        connect_timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(camera_id, preset_id, **options)
        self._display_url = redact_url(url)
        self._url, self._auth = _http_auth(url, http_auth)
        self.connect_timeout_s = connect_timeout_s
        self._transport = transport

    def _describe(self) -> str:
        return self._display_url

    def _client(self) -> httpx.Client:
        import httpx

        timeout = httpx.Timeout(self.stall_timeout_s, connect=self.connect_timeout_s)
        return httpx.Client(auth=self._auth, timeout=timeout, transport=self._transport, follow_redirects=True)


class MultipartJpegParser:
    """Incremental parser of a ``multipart/x-mixed-replace`` body into its parts' bytes.

    Cameras differ: some send ``Content-Length`` in every part (Axis, Hikvision), some do not (then the part ends
    at the next delimiter), and some declare ``boundary=--foo`` while delimiting with ``--foo`` instead of
    ``----foo``. All three are accepted. A part larger than ``max_part_bytes`` or an endless header raises
    ``_DroppedError`` so the source reconnects and resynchronises instead of buffering without bound.
    """

    def __init__(self, boundary: str, *, max_part_bytes: int = DEFAULT_MAX_PART_BYTES) -> None:
        raw = boundary.encode("latin-1")
        self._candidates = [b"--" + raw] + ([raw] if raw.startswith(b"--") else [])
        self._delim: bytes | None = None
        self._buf = bytearray()
        self._state = "seek"
        self._length: int | None = None
        self.max_part_bytes = max_part_bytes
        self.finished = False

    def _find_delim(self, start: int = 0) -> tuple[int, bytes] | None:
        if self._delim is not None:
            at = self._buf.find(self._delim, start)
            return (at, self._delim) if at >= 0 else None
        found = [(at, d) for d in self._candidates if (at := self._buf.find(d, start)) >= 0]
        if not found:
            return None
        # The shorter candidate also matches inside the longer one; prefer the earliest, then the longest.
        at, delim = min(found, key=lambda item: (item[0], -len(item[1])))
        self._delim = delim
        return at, delim

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add received bytes; return the parts completed by them, in order."""
        self._buf += chunk
        parts: list[bytes] = []
        while not self.finished:
            if self._state == "seek":
                hit = self._find_delim()
                if hit is None:
                    keep = max(len(c) for c in self._candidates)
                    if len(self._buf) > keep:
                        del self._buf[: len(self._buf) - keep]
                    return parts
                at, delim = hit
                end = at + len(delim)
                if len(self._buf) < end + 2:
                    return parts
                if self._buf[end : end + 2] == b"--":
                    self.finished = True
                    return parts
                newline = self._buf.find(b"\n", end)
                if newline < 0:
                    return parts
                del self._buf[: newline + 1]
                self._state = "headers"
            elif self._state == "headers":
                headers, body_at = self._headers()
                if body_at is None:
                    return parts
                del self._buf[:body_at]
                length = headers.get("content-length")
                self._length = int(length) if length and length.strip().isdigit() else None
                if self._length is not None and self._length > self.max_part_bytes:
                    raise _DroppedError(f"a part of {self._length} bytes is over the {self.max_part_bytes}-byte limit")
                self._state = "body"
            else:
                part = self._body()
                if part is None:
                    return parts
                parts.append(part)
                self._state = "seek"
        return parts

    def _headers(self) -> tuple[dict[str, str], int | None]:
        headers: dict[str, str] = {}
        pos = 0
        while True:
            newline = self._buf.find(b"\n", pos)
            if newline < 0:
                if len(self._buf) > _MAX_HEADER_BYTES:
                    raise _DroppedError("a part header never ended")
                return headers, None
            line = bytes(self._buf[pos:newline]).rstrip(b"\r")
            pos = newline + 1
            if not line:
                return headers, pos
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()

    def _body(self) -> bytes | None:
        if self._length is not None:
            if len(self._buf) < self._length:
                return None
            part = bytes(self._buf[: self._length])
            del self._buf[: self._length]
            return part
        hit = self._find_delim()
        if hit is None:
            if len(self._buf) > self.max_part_bytes:
                raise _DroppedError(f"no part delimiter within {self.max_part_bytes} bytes")
            return None
        at, _ = hit
        part = bytes(self._buf[:at]).rstrip(b"\r\n")
        del self._buf[:at]
        return part


class MjpegSource(_HttpSource):
    """An HTTP ``multipart/x-mixed-replace`` JPEG stream (the "MJPEG URL" of most IP cameras)."""

    def _session(self) -> Iterator[Frame]:
        with self._client() as client, client.stream("GET", self._url) as response:
            if response.status_code != 200:
                raise _DroppedError(f"HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "")
            match = _BOUNDARY.search(content_type)
            if not content_type.lower().startswith("multipart/") or match is None:
                # A snapshot URL configured as a stream would otherwise "reconnect" forever, one frame at a time.
                raise SourceError(
                    f"{self.label}: {self._display_url} is not an MJPEG stream (Content-Type {content_type!r}); "
                    "use source_kind 'snapshot' for still-image URLs"
                )
            parser = MultipartJpegParser(match.group(1) or match.group(2))
            last_part = time.monotonic()
            for chunk in response.iter_raw():
                if self._halted():
                    return
                for part in parser.feed(chunk):
                    last_part = time.monotonic()
                    seq = self._next_seq()
                    if part.startswith(b"\xff\xd8") and part.rstrip(b"\r\n\t ").endswith(b"\xff\xd9"):
                        self._received()
                    if not self._due():
                        continue
                    captured_at = self._clock()
                    image = decode_jpeg(part)
                    if image is None:
                        self._stats.corrupt += 1
                        self._stats.last_error = f"skipped a corrupt JPEG part ({len(part)} bytes)"
                        log.info("%s: skipped a corrupt JPEG part (%d bytes)", self.label, len(part))
                        continue
                    yield self._frame(image, captured_at, seq, part)
                if parser.finished:
                    return
                if time.monotonic() - last_part > self.stall_timeout_s:
                    raise _StallError(f"bytes but no complete frame for {self.stall_timeout_s:g} s")


class SnapshotSource(_HttpSource):
    """An HTTP URL that returns one JPEG per request, polled every ``interval_s`` (PTZ patrols: the preset's cadence).

    A connection error, a timeout or a non-200 answer is a failure (backoff, then the next poll); a 200 answer that
    is not a complete image is counted as corrupt and the next poll happens on schedule.
    """

    def __init__(self, url: str, camera_id: str, preset_id: str, *, interval_s: float = 60.0, **options: Any) -> None:
        options.setdefault("min_interval_s", 0.0)
        super().__init__(url, camera_id, preset_id, **options)
        if interval_s < 0.0:
            raise SourceError("interval_s must be ≥ 0")
        self.interval_s = interval_s
        self._next_poll: float | None = None

    def _session(self) -> Iterator[Frame]:
        with self._client() as client:
            while self._wait_wanted():  # polled only for a consumer that waits: a snapshot is taken fresh
                if self._next_poll is not None:
                    wait = self._next_poll - time.monotonic()
                    if wait > 0.0 and self._halt.wait(wait):
                        return
                self._next_poll = time.monotonic() + self.interval_s
                captured_at = self._clock()
                response = client.get(self._url)
                if response.status_code != 200:
                    raise _DroppedError(f"HTTP {response.status_code}")
                seq = self._next_seq()
                image = decode_jpeg(response.content)
                if image is None:
                    self._stats.corrupt += 1
                    self._stats.last_error = f"skipped a corrupt snapshot ({len(response.content)} bytes)"
                    log.info("%s: skipped a corrupt snapshot (%d bytes)", self.label, len(response.content))
                    continue
                yield self._frame(image, captured_at, seq, response.content)


class RtspSource(_LiveSource):
    """An RTSP stream through OpenCV's FFmpeg backend (TCP transport, open and read timeouts).

    Every frame is grabbed, by the reader thread, also while the consumer works (so FFmpeg's buffer never holds
    stale frames), but only a frame the consumer waits for, due by the cadence, is converted and handed over. A
    failed grab — the camera closed the session, or nothing arrived within ``stall_timeout_s`` — releases the
    capture and reconnects with backoff.
    """

    def __init__(
        self, url: str, camera_id: str, preset_id: str, *, open_timeout_s: float = 10.0, **options: Any
    ) -> None:
        super().__init__(camera_id, preset_id, **options)
        self._url = url
        self._display_url = redact_url(url)
        self.open_timeout_s = open_timeout_s

    def _describe(self) -> str:
        return self._display_url

    def _session(self) -> Iterator[Frame]:
        import cv2

        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            max(1, round(self.open_timeout_s * 1000)),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            max(1, round(self.stall_timeout_s * 1000)),
        ]
        capture = cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, params)
        try:
            if not capture.isOpened():
                raise _DroppedError("cannot open the stream")
            while not self._halted():
                started = time.monotonic()
                if not capture.grab():
                    if time.monotonic() - started >= 0.9 * self.stall_timeout_s:
                        raise _StallError(f"no frame for {self.stall_timeout_s:g} s")
                    raise _DroppedError("the stream ended or the connection dropped")
                seq = self._next_seq()
                self._received()
                if not self._due():
                    continue
                captured_at = self._clock()
                ok, image = capture.retrieve()
                if not ok or image is None:
                    self._stats.corrupt += 1
                    continue
                yield self._frame(np.asarray(image, dtype=np.uint8), captured_at, seq)
        finally:
            capture.release()


class VideoFileSource(_BoundSource):
    """Frames of a video file, stamped ``start_time + index × frame_interval_s``.

    ``frame_interval_s`` defaults to the container's 1/fps; a time-lapse (FIgLib's clip holds one frame per real
    minute at 4 fps) needs the real interval. ``start_time`` defaults to the moment iteration starts.
    ``min_interval_s`` keeps one frame per that much *video* time (a 25 fps recording replayed as a patrol at a
    60 s cadence yields one frame a minute; the rest are grabbed, not converted, and counted as throttled).
    ``realtime`` paces frames at their interval (replaying a clip as if it were live); otherwise they come as fast
    as they decode. Undecodable frames are counted and skipped.
    """

    def __init__(
        self,
        path: str | Path,
        camera_id: str,
        preset_id: str,
        *,
        start_time: datetime | None = None,
        frame_interval_s: float | None = None,
        min_interval_s: float = 0.0,
        realtime: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(camera_id, preset_id, clock=clock)
        self.path = Path(path)
        if start_time is not None and start_time.tzinfo is None:
            raise SourceError("start_time must be timezone-aware")
        if frame_interval_s is not None and frame_interval_s <= 0.0:
            raise SourceError("frame_interval_s must be positive")
        if min_interval_s < 0.0:
            raise SourceError("min_interval_s must be ≥ 0")
        self.start_time = start_time
        self.frame_interval_s = frame_interval_s
        self.min_interval_s = min_interval_s
        self.realtime = realtime

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        try:
            if not capture.isOpened():
                raise SourceError(f"{self.path}: OpenCV cannot open this as a video")
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            interval = self.frame_interval_s or (1.0 / fps if fps > 0.0 else None)
            if interval is None:
                raise SourceError(f"{self.path}: the file declares no frame rate; pass frame_interval_s")
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            start = self.start_time or self._clock()
            started = time.monotonic()
            index = 0
            last: float | None = None
            while not self.closed:
                if not capture.grab():
                    if index < count - 1:  # a broken packet mid-file, not the end
                        self._stats.corrupt += 1
                        index += 1
                        continue
                    return
                offset = index * interval
                if last is not None and offset - last < self.min_interval_s - 1e-6:
                    self._stats.throttled += 1
                    index += 1
                    continue
                ok, image = capture.retrieve()
                if not ok or image is None:
                    self._stats.corrupt += 1
                    index += 1
                    continue
                if self.realtime and self._stop.wait(max(0.0, started + offset - time.monotonic())):
                    return
                last = offset
                yield self._frame(np.asarray(image, dtype=np.uint8), start + timedelta(seconds=offset), index)
                index += 1
        finally:
            capture.release()


class ImageFolderSource(_BoundSource):
    """The images of a folder in file-name order (see the module docstring for their timestamps).

    A file that does not decode (empty, truncated, not an image) is counted as corrupt (an error of the preset) and
    skipped; JPEG files keep their bytes as ``Frame.encoded``.

    ``min_interval_s`` keeps one image per that much time, by the images' timestamps (files in between are not
    even read), but only when those are capture times: the epoch in FIgLib-style names, or ``start_time`` + index ×
    ``frame_interval_s``. By decision a file's modification time never throttles: it is when the file was written,
    which a copy (``cp`` without ``-p``) sets to the same second, or milliseconds apart, for every file, so that
    one image was analysed and the rest were dropped unread. Modification times are used as the frames' times
    only when they increase strictly in name order; otherwise (tied, or out of order) the images' times are
    unknown and they are stamped as a video file's frames are: the start of the iteration + index ×
    ``frame_interval_s``. Either way every image is analysed, in name order. When the folder ends, one log line
    says how many images were analysed, skipped by the cadence and unreadable.
    """

    def __init__(
        self,
        folder: str | Path,
        camera_id: str,
        preset_id: str,
        *,
        start_time: datetime | None = None,
        frame_interval_s: float = 60.0,
        min_interval_s: float = 0.0,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(camera_id, preset_id, clock=clock)
        self.folder = Path(folder)
        if start_time is not None and start_time.tzinfo is None:
            raise SourceError("start_time must be timezone-aware")
        if frame_interval_s <= 0.0 or min_interval_s < 0.0:
            raise SourceError("frame_interval_s must be positive and min_interval_s ≥ 0")
        self.start_time = start_time
        self.frame_interval_s = frame_interval_s
        self.min_interval_s = min_interval_s

    def paths(self) -> list[Path]:
        """The image files, sorted by name."""
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: no such folder")
        return sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())

    def _timestamps(self, paths: list[Path]) -> list[tuple[datetime, bool]]:
        """Each image's time and whether it is a capture time (which the cadence may throttle), in ``paths`` order."""
        times: list[tuple[datetime, bool]] = []
        start = self.start_time
        for index, path in enumerate(paths):
            from_name = epoch_from_name(path.name)
            if from_name is not None:
                times.append((from_name, True))
            elif start is not None:
                times.append((start + timedelta(seconds=index * self.frame_interval_s), True))
            else:
                try:
                    times.append((datetime.fromtimestamp(path.stat().st_mtime, UTC), False))
                except OSError:  # gone since the listing: read_bytes says so below
                    times.append((datetime.min.replace(tzinfo=UTC), False))
        from_mtime = [when for when, real in times if not real]
        if any(later <= earlier for earlier, later in itertools.pairwise(from_mtime)):
            # Tied or out of order: the modification times do not tell when, nor in which order, the images were
            # taken (a copy wrote them): name order, one interval apart.
            base = self._clock()
            log.info(
                "%s: %s: the names carry no time and the files' modification times do not increase in name order "
                "(a copy?): the images are taken in name order, %g s apart",
                self.label,
                self.folder,
                self.frame_interval_s,
            )
            times = [
                (when, True) if real else (base + timedelta(seconds=index * self.frame_interval_s), False)
                for index, (when, real) in enumerate(times)
            ]
        return times

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        paths = self.paths()
        last: datetime | None = None
        analysed = 0
        try:
            for index, (path, (captured_at, real)) in enumerate(zip(paths, self._timestamps(paths), strict=True)):
                if self.closed:
                    return
                if real and last is not None and (captured_at - last).total_seconds() < self.min_interval_s - 1e-6:
                    self._stats.throttled += 1
                    continue
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    self._corrupt(path, str(exc))
                    continue
                is_jpeg = data.startswith(b"\xff\xd8")
                if is_jpeg:
                    image = decode_jpeg(data)
                elif data:  # OpenCV asserts on an empty buffer rather than saying it is no image
                    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                    image = None if decoded is None else np.asarray(decoded, dtype=np.uint8)
                else:
                    image = None
                if image is None:
                    self._corrupt(path, "an empty file" if not data else "not a decodable image")
                    continue
                last = captured_at
                analysed += 1
                yield self._frame(image, captured_at, index, data if is_jpeg else None)
        finally:
            self._summarise(len(paths), analysed)

    def _corrupt(self, path: Path, why: str) -> None:
        self._stats.corrupt += 1
        self._stats.last_error = f"{path.name}: {why}"
        log.warning("%s: skipped %s (%s)", self.label, path, why)

    def _summarise(self, images: int, analysed: int) -> None:
        """One line for the folder: what was analysed, and what was not and why."""
        stats = self._stats
        log.info(
            "%s: %s: %d image(s), %d analysed, %d skipped (less than the cadence of %g s after the previous by "
            "their capture times), %d unreadable%s",
            self.label,
            self.folder,
            images,
            analysed,
            stats.throttled,
            self.min_interval_s,
            stats.corrupt,
            f" (last: {stats.last_error})" if stats.corrupt and stats.last_error else "",
        )


def open_source(
    camera: CameraRecord,
    preset: PresetRecord,
    *,
    clock: Clock = utc_now,
    backoff: Backoff | None = None,
    stall_timeout_s: float = 10.0,
    max_failures: int | None = None,
    start_time: datetime | None = None,
    frame_interval_s: float | None = None,
    realtime: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> FrameSource:
    """The frame source of one preset, bound to that camera and preset, paced at the preset's cadence.

    Every kind keeps at most one frame per cadence (files and folders by their own timestamps). ``start_time``,
    ``frame_interval_s`` and ``realtime`` apply to files and folders (folders default their interval to the
    cadence); the rest to live sources.

    Raises:
        SourceError: the preset has no source.
    """
    kind = preset.resolved_kind
    live: dict[str, Any] = {
        "clock": clock,
        "backoff": backoff or Backoff(),
        "stall_timeout_s": stall_timeout_s,
        "max_failures": max_failures,
    }
    if kind == "rtsp":
        return RtspSource(preset.source, camera.id, preset.id, min_interval_s=preset.cadence_s, **live)
    if kind == "mjpeg":
        return MjpegSource(
            preset.source,
            camera.id,
            preset.id,
            min_interval_s=preset.cadence_s,
            http_auth=preset.http_auth,
            transport=transport,
            **live,
        )
    if kind == "snapshot":
        return SnapshotSource(
            preset.source,
            camera.id,
            preset.id,
            interval_s=preset.cadence_s,
            http_auth=preset.http_auth,
            transport=transport,
            **live,
        )
    path = preset.source.removeprefix("file://")
    if kind == "file":
        return VideoFileSource(
            path,
            camera.id,
            preset.id,
            start_time=start_time,
            frame_interval_s=frame_interval_s,
            min_interval_s=preset.cadence_s,
            realtime=realtime,
            clock=clock,
        )
    if kind == "folder":
        return ImageFolderSource(
            path,
            camera.id,
            preset.id,
            start_time=start_time,
            frame_interval_s=frame_interval_s or preset.cadence_s,
            min_interval_s=preset.cadence_s,
            clock=clock,
        )
    raise SourceError(f"camera {camera.id!r} preset {preset.id!r} has no frame source")
