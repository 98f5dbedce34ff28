"""Sentinel Hub answering HTTP 429 for ever: the call gives up within its bound, with one error that says so.

sentinelhub-py's download client retries a 429 without end (``SHConfig.max_retries`` is ``None`` by default), and a
processing-unit quota spent for the month answers 429 for weeks: a scene scan hung without a word. The server here
is a real HTTP server on 127.0.0.1 (``tests.httpserver``) that grants a token and rate-limits everything else;
``SHConfig.sh_base_url``/``sh_token_url`` point at it.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from satellite.errors import (
    SatelliteError,
    SentinelHubRateLimitError,
    SentinelHubRequestError,
    SentinelHubResponseError,
)
from satellite.sentinel import Collection, SceneRecord, SentinelHubSettings
from tests.httpserver import Recorded, http_receiver
from tests.satellite.test_sentinel import (  # noqa: F401  (local_env: a fixture)
    BBOX,
    CLIENT_ID,
    SECRET,
    TOKEN,
    client_at,
    local_env,
)

START, END = datetime(2025, 4, 14, tzinfo=UTC), datetime(2025, 4, 24, tzinfo=UTC)
SCENE = SceneRecord("LC09_L1TP_118029_20250423", Collection.LANDSAT_OT_L1, datetime(2025, 4, 23, 2, 35, tzinfo=UTC))


class RateLimited:
    """Grants a token on ``/oauth/token`` (unless ``limit_token``) and answers every other request 429."""

    def __init__(self, retry_after_ms: str | None, *, limit_token: bool = False) -> None:
        self.retry_after_ms = retry_after_ms
        self.limit_token = limit_token
        self.limited: list[tuple[str, float]] = []  # (path, monotonic time) of each 429 sent
        self.lock = threading.Lock()

    def __call__(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        if request.path == "/oauth/token" and not self.limit_token:
            answer = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        with self.lock:
            self.limited.append((request.path, time.monotonic()))
        headers = {"Content-Type": "application/json"}
        if self.retry_after_ms is not None:
            headers["Retry-After"] = self.retry_after_ms
        body = {"error": {"status": 429, "reason": "Too Many Requests", "message": "You have exceeded your rate limit"}}
        return 429, headers, json.dumps(body).encode()


def timed(call: Callable[[], object]) -> tuple[SentinelHubRateLimitError, float]:
    started = time.monotonic()
    with pytest.raises(SentinelHubRateLimitError) as caught:
        call()
    return caught.value, time.monotonic() - started


@pytest.mark.usefixtures("local_env")
@pytest.mark.filterwarnings("ignore::sentinelhub.exceptions.SHRateLimitWarning")
def test_a_search_rate_limited_for_ever_gives_up_after_the_allowed_attempts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = RateLimited(retry_after_ms="200")  # Sentinel Hub's Retry-After is in milliseconds
    with http_receiver() as hub:
        hub.respond = server
        client = client_at(hub.url, rate_limit_attempts=3, rate_limit_budget_s=30)
        error, took = timed(lambda: client.search("landsat", BBOX, START, END))

    catalog_calls = [at for path, at in server.limited if path == "/api/v1/catalog/1.0.0/search"]
    assert len(catalog_calls) == 3  # before: the 4th, 5th, ... request, for ever
    assert all(later - earlier >= 0.15 for earlier, later in itertools.pairwise(catalog_calls))
    assert took < 20  # two waits of 0.2 s and three round trips (~0.5 s), never a default wait of 30 s
    assert error.attempts == 3
    assert error.status == 429
    assert 0.3 <= error.elapsed_s <= took
    message = str(error)
    assert message.startswith("catalog search of landsat-ot-l1: rate limited by http://127.0.0.1:")
    assert "(HTTP 429); gave up after 3 rate-limited attempts in " in message
    assert isinstance(error, SentinelHubResponseError)
    assert isinstance(error, SatelliteError)
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert SECRET not in message
    assert TOKEN not in message
    assert SECRET not in caplog.text
    assert TOKEN not in caplog.text
    assert any("rate limited" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.usefixtures("local_env")
@pytest.mark.filterwarnings("ignore::sentinelhub.exceptions.SHRateLimitWarning")
def test_a_wait_beyond_the_time_budget_is_not_slept(caplog: pytest.LogCaptureFixture) -> None:
    """Without Retry-After sentinelhub-py waits 30 s between 429s; a 2 s budget gives up at the first one."""
    server = RateLimited(retry_after_ms=None)
    with http_receiver() as hub:
        hub.respond = server
        client = client_at(hub.url, rate_limit_attempts=10, rate_limit_budget_s=2)
        error, took = timed(lambda: client.scan_scene(SCENE, BBOX))
    assert [path for path, _ in server.limited] == ["/api/v1/process"]
    assert took < 20  # well under the 30 s wait (the 2 s budget gives up at once; a loaded machine is slow)
    assert error.attempts == 1
    assert str(error).startswith(f"process request for {SCENE.scene_id}: rate limited by ")
    assert "gave up after 1 rate-limited attempt in " in str(error)
    assert SECRET not in str(error)


@pytest.mark.usefixtures("local_env")
@pytest.mark.filterwarnings("ignore::sentinelhub.exceptions.SHRateLimitWarning")
def test_a_retry_after_longer_than_the_budget_gives_up_at_once() -> None:
    server = RateLimited(retry_after_ms="3600000")  # an hour
    with http_receiver() as hub:
        hub.respond = server
        client = client_at(hub.url, rate_limit_attempts=10, rate_limit_budget_s=60)
        error, took = timed(lambda: client.search("s2l2a", BBOX, START, END))
    assert len(server.limited) == 1
    assert took < 20  # not the hour asked for
    assert error.attempts == 1


@pytest.mark.usefixtures("local_env")
def test_a_rate_limited_token_endpoint_is_a_rate_limit_error_without_the_secret() -> None:
    server = RateLimited(retry_after_ms="1000", limit_token=True)
    with http_receiver() as hub:
        hub.respond = server
        client = client_at(hub.url)
        error, took = timed(lambda: client.search("s2l2a", BBOX, START, END))
    assert [path for path, _ in server.limited] == ["/oauth/token"]
    assert took < 5
    assert error.attempts == 1
    assert str(error).startswith("OAuth token request to http://127.0.0.1:")
    assert "rate limited" in str(error)
    assert SECRET not in str(error)


def test_rate_limit_bounds_are_validated() -> None:
    with pytest.raises(SentinelHubRequestError, match="rate_limit_attempts"):
        SentinelHubSettings(CLIENT_ID, SECRET, rate_limit_attempts=0)  # type: ignore[arg-type]
    with pytest.raises(SentinelHubRequestError, match="rate_limit_budget_s"):
        SentinelHubSettings(CLIENT_ID, SECRET, rate_limit_budget_s=-1)  # type: ignore[arg-type]
