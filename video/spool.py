"""Sightings the service cannot take now, kept on disk and sent again: :class:`SpoolSink`.

Why: a confirmed fire's sighting is made once (sequence verification has moved on when it is posted), so a sighting
lost to a service outage is lost for good. Celery workers with a broker retry it as a task; the in-process patrol
(``strawfire patrol``) and the embedded mode without a broker had only the client's ~15 s of retries.
:class:`SpoolSink` writes what the client could not deliver (the sighting's JSON and its evidence JPEG, one file
per sighting, written atomically) to a folder, and sends it again, oldest first, from a background thread every
``retry_every_s`` and before each new sighting, until the service takes it (or refuses it for good: a 4xx other
than 401/403/409, which say nothing about the sighting, is logged and the file removed). The folder survives
restarts: a patrol started again sends what the last one kept. The service treats a re-sent sighting by its natural
key, so a sighting sent twice is stored once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from video.client import ServiceUnavailable, SightingClient, SightingRejected
from video.patrol import ClientSink, PostOutcome
from video.sighting import SightingUpload, parse_sighting

__all__ = ["FlushReport", "SpoolSink"]

log = logging.getLogger(__name__)
_SUFFIX: Final[str] = ".sighting.json"
#: Refusals that say nothing about the sighting: the device's token (401, 403) or a clash in flight (409). The
#: sighting waits for them to pass instead of being dropped.
_NOT_THE_SIGHTINGS_FAULT: Final[frozenset[int]] = frozenset({401, 403, 409})


@dataclass(frozen=True, slots=True)
class FlushReport:
    """One pass over the spool: sent, refused for good (removed), and still waiting."""

    sent: int
    refused: int
    waiting: int


class SpoolSink(ClientSink):
    """A :class:`~video.patrol.ClientSink` whose undeliverable sightings wait in ``folder`` (module docstring)."""

    def __init__(self, client: SightingClient, folder: Path, *, retry_every_s: float = 60.0) -> None:
        super().__init__(client)
        self.folder = folder
        self.retry_every_s = retry_every_s
        self._lock = threading.Lock()  # one flush at a time; new files may be written meanwhile
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._ending = False
        self._last_flush = 0.0
        folder.mkdir(parents=True, exist_ok=True)
        if self.pending():
            log.warning("%d sighting(s) from an earlier run wait in %s: sending them", self.pending(), folder)
            self._start()

    def pending(self) -> int:
        """How many sightings wait in the spool."""
        return sum(1 for _ in self.folder.glob(f"*{_SUFFIX}"))

    def send(self, upload: SightingUpload) -> PostOutcome:
        """Send what waits (at most once per ``retry_every_s``), then this sighting (:class:`ClientSink`)."""
        if time.monotonic() - self._last_flush >= self.retry_every_s and self.pending():
            self.flush()
        return super().send(upload)

    def rejected(self, upload: SightingUpload, exc: SightingRejected) -> PostOutcome:
        """Spool it too when the refusal is of this device's token (401/403: a password changed, a token expired)
        or a clash (409), which pass, unlike a refusal of the sighting itself."""
        if exc.status_code in _NOT_THE_SIGHTINGS_FAULT:
            return self.unavailable(upload, exc)
        return super().rejected(upload, exc)

    def unavailable(self, upload: SightingUpload, exc: Exception) -> PostOutcome:
        """Keep the sighting on disk for a later attempt instead of dropping it."""
        path = self._write(upload)
        log.warning("%s; kept in %s for a later attempt", exc, path)
        self._start()
        return PostOutcome(upload.key, False, queued=True, error=str(exc))

    def flush(self) -> FlushReport:
        """Send the waiting sightings, oldest first, until the service is unreachable again."""
        sent = refused = 0
        with self._lock:
            self._last_flush = time.monotonic()
            for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
                try:
                    upload = self._read(path)
                except (OSError, ValueError, KeyError) as exc:
                    log.error("%s: not a spooled sighting, set aside (%s)", path, exc)
                    path.rename(path.with_suffix(".unreadable"))
                    continue
                try:
                    self.client.post(upload)
                except ServiceUnavailable:
                    break  # still down: the rest waits, in order
                except SightingRejected as exc:
                    if exc.status_code in _NOT_THE_SIGHTINGS_FAULT:
                        log.warning("spool %s: %s; kept until the device's token is mended", self.folder, exc)
                        break
                    log.error("spooled %s", exc)
                    refused += 1
                else:
                    sent += 1
                path.unlink(missing_ok=True)
        waiting = self.pending()
        if sent or refused:
            log.info("spool %s: %d sent, %d refused, %d waiting", self.folder, sent, refused, waiting)
        return FlushReport(sent, refused, waiting)

    def close(self) -> None:
        """Stop the background thread (what waits stays on disk for the next run)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _start(self) -> None:
        with self._thread_lock:  # decided together with the thread's own decision to end (_run)
            if self._thread is not None and self._thread.is_alive() and not self._ending:
                return
            self._ending = False
            self._thread = threading.Thread(target=self._run, name="sighting-spool", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.retry_every_s):
            try:
                self.flush()
            except Exception:  # a flush must never kill the thread that keeps fires from being lost
                log.exception("spool %s: flush failed", self.folder)
            with self._thread_lock:  # a sighting spooled meanwhile either sees this thread go on or starts one
                if not self.pending():
                    self._ending = True
                    return

    def _write(self, upload: SightingUpload) -> Path:
        digest = hashlib.sha256(upload.key.encode()).hexdigest()[:24]
        existing = next(iter(self.folder.glob(f"*-{digest}{_SUFFIX}")), None)
        if existing is not None:
            return existing  # the same sighting again: one copy waits
        path = self.folder / f"{time.time_ns():020d}-{digest}{_SUFFIX}"
        data = {
            "sighting": upload.json_text(),
            "evidence_b64": base64.b64encode(upload.evidence_jpeg).decode("ascii"),
        }
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out)
        Path(temporary).replace(path)  # whole or absent: a crash mid-write leaves no half sighting
        return path

    @staticmethod
    def _read(path: Path) -> SightingUpload:
        data = json.loads(path.read_text(encoding="utf-8"))
        return SightingUpload(parse_sighting(data["sighting"]), base64.b64decode(data["evidence_b64"]))
