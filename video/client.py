"""A small typed HTTP client that posts sightings to the service (``video`` talks to ``service`` over HTTP only).

Why retries live here and are safe: every sighting carries a deterministic ``sighting_key``, sent as the
``Idempotency-Key`` header too, so re-posting after a timeout cannot create a second observation. Connection
errors, timeouts, 408/425/429 and 5xx are retried with exponential backoff (honouring a ``Retry-After`` of a few
seconds); any other 4xx is the client's fault and is raised at once as :class:`SightingRejected` with the
service's message — retrying it would only repeat the error. When retries run out the error is
:class:`ServiceUnavailable`, which the Celery path turns into a delayed retry of the post alone.

The transport is injectable (``httpx.MockTransport`` in tests, a proxy or mTLS transport in deployments); the
device token is sent as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import httpx

from video.errors import VideoError
from video.sighting import SightingUpload
from video.sources import Backoff, redact_url

__all__ = ["PostResponse", "ServiceUnavailable", "SightingClient", "SightingRejected"]

log = logging.getLogger(__name__)

_RETRY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S: Final = 30.0
USER_AGENT: Final = "strawfire-video/0.1"
HEALTH_PATH: Final = "/api/v1/cameras/health"
#: A post is small and the service is local: retry fast, give up within ~15 s (the Celery path retries later).
DEFAULT_POST_BACKOFF: Final = Backoff(initial_s=0.5, max_s=8.0)


class SightingRejected(VideoError):  # noqa: N818  (a rejection, not a bug: the name says what happened)
    """The service refused the sighting (4xx other than 408/425/429); resending it unchanged will not help.

    Attributes:
        status_code: the HTTP status.
        detail: the service's explanation (``detail`` of a FastAPI error body, else the body text).
    """

    def __init__(self, key: str, status_code: int, detail: str) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"sighting {key}: rejected with HTTP {status_code}: {detail}")


class ServiceUnavailable(VideoError):  # noqa: N818
    """The service could not be reached or kept failing (5xx, timeouts) through every retry."""


@dataclass(frozen=True, slots=True)
class PostResponse:
    """A sighting the service accepted: status, parsed JSON body (``None`` when not JSON), attempts used."""

    sighting_key: str
    status_code: int
    body: Any
    attempts: int


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return json.dumps(body, ensure_ascii=False)[:500]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(_MAX_RETRY_AFTER_S, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


class SightingClient:
    """Posts :class:`~video.sighting.SightingUpload` s to ``base_url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 15.0,
        retries: int = 3,
        backoff: Backoff = DEFAULT_POST_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be ≥ 0")
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport, timeout=httpx.Timeout(timeout_s)
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def post(self, upload: SightingUpload, *, retries: int | None = None) -> PostResponse:
        """Post one sighting with its evidence (multipart: ``sighting`` JSON + ``evidence`` JPEG).

        Raises:
            SightingRejected: the service refused it (4xx).
            ServiceUnavailable: unreachable or failing through all ``retries`` (default: the client's).
        """
        allowed = self.retries if retries is None else retries
        files = {
            "sighting": (None, upload.json_text().encode("utf-8"), "application/json"),
            "evidence": (f"{upload.sighting.evidence.sha256}.jpg", upload.evidence_jpeg, "image/jpeg"),
        }
        headers = {"Idempotency-Key": upload.key}
        last = ""
        for attempt in range(1, allowed + 2):
            delay: float | None = None
            try:
                response = self._http.post(upload.path, files=files, headers=headers)
            except httpx.TransportError as exc:  # connect/read errors and timeouts: the request may not have landed
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    try:
                        body: Any = response.json()
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        body = None
                    return PostResponse(upload.key, response.status_code, body, attempt)
                if response.status_code not in _RETRY_STATUS:
                    raise SightingRejected(upload.key, response.status_code, _detail(response))
                last = f"HTTP {response.status_code}: {_detail(response)}"
                delay = _retry_after(response)
            if attempt > allowed:
                break
            wait = delay if delay is not None else self.backoff.delay(attempt)
            log.warning(
                "posting sighting %s to %s failed (%s); retry %d/%d in %.1f s",
                upload.key,
                redact_url(self.base_url),
                last,
                attempt,
                allowed,
                wait,
            )
            self._sleep(wait)
        raise ServiceUnavailable(
            f"sighting {upload.key}: {redact_url(self.base_url)}{upload.path} failed {allowed + 1} times: {last}"
        )

    def post_heartbeats(self, heartbeats: list[dict[str, Any]], *, timeout_s: float = 5.0) -> Any:
        """Post per-preset heartbeats (``POST /api/v1/cameras/health``) once, without retries: a lost heartbeat is
        replaced by the next one. Returns the service's JSON answer (stored, stale, rejected).

        Raises:
            SightingRejected: the service refused the batch (4xx).
            ServiceUnavailable: unreachable, timed out or failing (5xx).
        """
        try:
            response = self._http.post(HEALTH_PATH, json={"heartbeats": heartbeats}, timeout=timeout_s)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"heartbeats: {redact_url(self.base_url)}: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            body = response.json()
            for item in body.get("rejected", []) if isinstance(body, dict) else []:
                log.warning(
                    "heartbeat of %s/%s refused: %s", item.get("camera_id"), item.get("preset"), item.get("error")
                )
            return body
        if response.status_code in _RETRY_STATUS:
            raise ServiceUnavailable(f"heartbeats: HTTP {response.status_code}: {_detail(response)}")
        raise SightingRejected("heartbeats", response.status_code, _detail(response))
