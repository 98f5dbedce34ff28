"""The FIRMS poller's time per source and its logs, against a real HTTP server on 127.0.0.1.

Audit findings: a 503 (or 429) with ``Retry-After`` was retried on the poller's own backoff; a FIRMS that accepts a
request and never answers cost 4 attempts × the 30 s timeout for every source of every poll; a refused MAP_KEY was
logged twice by the poller alone. Waits go through an injected sleep that advances an injected clock: nothing here
waits for real except the short client timeout of the hanging server, and nothing asserts on wall time.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from satellite.errors import FirmsAuthError, FirmsRateLimitError, FirmsTransportError
from satellite.hotspot import Product
from satellite.poller import (
    KEY_WIDE_SKIP_MESSAGE,
    FirmsPoller,
    RetryPolicy,
    TransactionBudget,
    parse_retry_after,
)
from tests.httpserver import Recorded, http_receiver

KEY = "0123456789abcdef0123456789abcdef"
NOW = datetime(2025, 4, 23, 6, 0, tzinfo=UTC)
CSV = (Path(__file__).parent / "data" / "viirs_snpp_nrt_area.csv").read_bytes()
# What a MODIS source answers when there are no fires (the VIIRS file would not fit its layout).
MODIS_NO_FIRES = (
    b"latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
    b"bright_t31,frp,daynight\n"
)
SOURCES = [Product.VIIRS_NOAA20_NRT, Product.VIIRS_NOAA21_NRT, Product.VIIRS_SNPP_NRT, Product.MODIS_NRT]
# The client's timeout against the server that never answers: each hung attempt costs this much real time. Short,
# yet many times what a loaded 2-core machine takes to answer on 127.0.0.1 (the same timeout serves the answering
# server of the test that follows a hang).
HANG_TIMEOUT_S = 2.0

Answer = tuple[int, dict[str, str], bytes]


class FakeClock:
    """A monotonic clock that only the injected sleep (or the test) moves; records the sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


@dataclass
class Script:
    """What the server answers, call by call (the last answer repeats); ``None`` hangs until the test ends."""

    answers: list[Answer | None]
    paths: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    on_request: Callable[[], None] = lambda: None

    def __call__(self, request: Recorded) -> Answer:
        self.paths.append(request.path)
        self.on_request()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is None:  # accept, read the request, and never answer (until the test is over)
            self.released.wait(60)
            return 503, {}, b"released at the end of the test"
        if answer[2] is CSV and "/MODIS_NRT/" in request.path:
            return 200, {}, MODIS_NO_FIRES
        return answer


@pytest.fixture
def firms() -> Iterator[tuple[Script, str]]:
    script = Script([(200, {}, CSV)])
    with http_receiver() as receiver:
        receiver.respond = script
        try:
            yield script, receiver.url
        finally:
            script.released.set()


def make_poller(url: str, clock: FakeClock, **kwargs: object) -> FirmsPoller:
    options: dict[str, object] = {
        "base_url": url,
        "sources": [Product.VIIRS_SNPP_NRT],
        "timeout_s": 5.0,
        "sleep": clock.sleep,
        "clock": clock,
        "now": lambda: NOW,
        "rng": random.Random(7),
        "transport": httpx.HTTPTransport(verify=False),
    }
    options.update(kwargs)
    return FirmsPoller(KEY, **options)  # type: ignore[arg-type]


def unavailable(retry_after: str | None = None, code: int = 503) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return code, headers, b"Service Unavailable"


def records_with(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


# --- Retry-After ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("0000000005", 5.0),  # zero-padded: 5 s, not "forever"
        (format_datetime(NOW + timedelta(seconds=40), usegmt=True), 40.0),  # IMF-fixdate
        ("Wednesday, 23-Apr-25 06:01:30 GMT", 90.0),  # the obsolete RFC 850 form
        ("Wed Apr 23 06:00:05 2025", 5.0),  # asctime, read as UTC
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # already past: ask now
        ("99999999999999999999", 1e9),  # never waited for anyway; no overflow
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_a_503_with_retry_after_in_seconds_is_retried_after_exactly_that(
    firms: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    script, url = firms
    script.answers = [unavailable("7"), unavailable("11"), (200, {}, CSV)]
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="satellite.poller"), make_poller(url, clock) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok, outcome.error
    assert outcome.attempts == 3
    assert clock.sleeps == [7.0, 11.0]  # the server's word, not the 1-2 s and 2-4 s backoff
    retries = records_with(caplog, "retry")
    assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
    assert "HTTP 503, Retry-After 7 s; retry 1 of 3 in 7.0 s, as FIRMS's Retry-After asks" in retries[0].getMessage()


def test_a_503_with_retry_after_as_an_http_date_waits_until_that_date(firms: tuple[Script, str]) -> None:
    script, url = firms
    script.answers = [unavailable(format_datetime(NOW + timedelta(seconds=30), usegmt=True)), (200, {}, CSV)]
    clock = FakeClock()
    with make_poller(url, clock) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok, outcome.error
    assert clock.sleeps == [30.0]


@pytest.mark.parametrize("value", [None, "soon", "-3", "1.5", "0"])
def test_a_503_without_a_valid_retry_after_falls_back_to_the_backoff(firms: tuple[Script, str], value: str) -> None:
    """So does a Retry-After of 0: four requests within milliseconds would only meet the same 503."""
    script, url = firms
    script.answers = [unavailable(value), (200, {}, CSV)]
    clock = FakeClock()
    policy = RetryPolicy(base_delay_s=2.0, jitter=0.5)
    with make_poller(url, clock, retry=policy) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok, outcome.error
    assert len(clock.sleeps) == 1
    assert 1.0 <= clock.sleeps[0] <= 2.0  # retry 1: 2 s with half of it jittered


def test_a_retry_after_past_the_deadline_ends_the_request_and_holds_the_other_sources(
    firms: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Waiting less than FIRMS asked would ignore it, and waiting 10 min would hold the poll: the source fails now,
    and the sources after it are not sent before the Retry-After ends (the next poll asks again)."""
    script, url = firms
    script.answers = [unavailable("600")]
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="satellite.poller"), make_poller(url, clock, sources=SOURCES) as poller:
        result = poller.poll_once()
        assert clock.sleeps == []
        assert len(script.paths) == 1  # one request, to the first source
        first = result.errors[SOURCES[0]]
        assert isinstance(first, FirmsTransportError)
        assert first.attempts == 1
        assert "HTTP 503, Retry-After 600 s; not retried: waiting 600 s (its Retry-After)" in str(first)
        assert "120 s allowed per request" in str(first)
        for source in SOURCES[1:]:
            held = result.results[source]
            assert isinstance(held.error, FirmsTransportError)
            assert held.attempts == 0
            assert "not sent: FIRMS's Retry-After asks for no request for another 600 s" in str(held.error)
        # Each source's error once, at ERROR; nothing else at ERROR.
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [str(result.errors[s]) for s in SOURCES]

        clock.advance(600)  # the Retry-After is over: the next poll asks every source again
        script.answers = [(200, {}, CSV)]
        again = poller.poll_once()
    assert again.ok
    assert len(script.paths) == 1 + len(SOURCES)
    assert clock.sleeps == []


def test_a_retry_after_that_fits_is_waited_for_before_the_next_source_too(firms: tuple[Script, str]) -> None:
    script, url = firms
    script.answers = [unavailable("5"), unavailable("5"), unavailable("5"), unavailable("5"), (200, {}, CSV)]
    clock = FakeClock()
    sources = SOURCES[:2]
    with make_poller(url, clock, sources=sources) as poller:
        result = poller.poll_once()
    assert isinstance(result.errors[sources[0]], FirmsTransportError)  # 4 attempts, all 503
    assert result.results[sources[0]].attempts == 4
    assert result.results[sources[1]].ok
    assert clock.sleeps == [5.0] * 4  # three retries, then the second source waits out the last Retry-After


def test_a_429_with_a_short_retry_after_is_waited_for_without_filling_the_budget(firms: tuple[Script, str]) -> None:
    script, url = firms
    script.answers = [unavailable("20", code=429), (200, {}, CSV)]
    clock = FakeClock()
    budget = TransactionBudget(clock=clock)
    with make_poller(url, clock, budget=budget) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok, outcome.error
    assert clock.sleeps == [20.0]
    assert budget.remaining() > 4000


def test_a_429_with_a_long_retry_after_is_the_transaction_limit(firms: tuple[Script, str]) -> None:
    script, url = firms
    script.answers = [unavailable("3600", code=429)]
    clock = FakeClock()
    budget = TransactionBudget(clock=clock)
    with make_poller(url, clock, budget=budget, sources=SOURCES) as poller:
        result = poller.poll_once()
    error = result.errors[SOURCES[0]]
    assert isinstance(error, FirmsRateLimitError)
    assert error.key_wide
    assert budget.remaining() == 0
    assert len(script.paths) == 1
    assert all(result.errors[s] is error for s in SOURCES)
    assert clock.sleeps == []


# --- time per source -----------------------------------------------------------------------------------------


def test_a_server_that_never_answers_is_asked_twice_then_once_per_source(
    firms: tuple[Script, str], caplog: pytest.LogCaptureFixture
) -> None:
    """It accepts the connection, reads the request, and never answers. Before: 4 attempts × the timeout per
    source. Now: two timed-out attempts for the first source, one for each source after it, until it answers."""
    script, url = firms
    script.answers = [None]
    clock = FakeClock()
    sources = SOURCES[:3]
    with (
        caplog.at_level(logging.INFO, logger="satellite.poller"),
        make_poller(url, clock, sources=sources, timeout_s=HANG_TIMEOUT_S) as poller,
    ):
        hung = poller.poll_once()
        assert [hung.results[s].attempts for s in sources] == [2, 1, 1]
        assert len(script.paths) == 4
        assert len(clock.sleeps) == 1  # the backoff between the first source's two attempts
        for source in sources:
            error = hung.errors[source]
            assert isinstance(error, FirmsTransportError)
            assert "timed out (ReadTimeout); not asked again after" in error.reason
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
            str(hung.errors[s]) for s in sources
        ]

        script.answers = [(200, {}, CSV)]  # it answers again: the next timeout is retried once more
        assert poller.poll_once().ok
        script.answers = [None]
        again = poller.fetch(poller.request_for(sources[0]))
    assert again.attempts == 2


def test_a_refused_connection_is_retried_more_than_a_timeout() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = FakeClock()
    with make_poller(f"http://127.0.0.1:{port}", clock) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert isinstance(outcome.error, FirmsTransportError)
    assert outcome.attempts == 4  # cheap to ask again: every attempt of the policy
    assert len(clock.sleeps) == 3


def test_retries_stop_at_the_deadline_per_request(firms: tuple[Script, str]) -> None:
    """Each answer takes 60 s (of the injected clock): the second comes 121-122 s after the first request, past the
    120 s allowed, so no third attempt is made, although the policy allows four."""
    script, url = firms
    clock = FakeClock()
    script.answers = [unavailable()]
    script.on_request = lambda: clock.advance(60)
    with make_poller(url, clock, timeout_s=1.0) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert isinstance(outcome.error, FirmsTransportError)
    assert outcome.attempts == 2
    assert len(clock.sleeps) == 1
    assert "HTTP 503; not retried" in str(outcome.error)
    assert "longer than the 120 s allowed per request" in str(outcome.error)


def test_the_new_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout_attempts"):
        RetryPolicy(timeout_attempts=0)
    with pytest.raises(ValueError, match="source_deadline_s"):
        FirmsPoller(KEY, source_deadline_s=0)
    with pytest.raises(ValueError, match="source_deadline_s"):
        FirmsPoller(KEY, source_deadline_s=float("inf"))


# --- a refused MAP_KEY is logged once, without the key ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (200, b"Invalid MAP_KEY."),
        (401, b"Unauthorized"),
        (403, b"Invalid MAP_KEY."),
        (400, b"Invalid MAP_KEY: " + KEY.encode()),  # a body that echoes the key
    ],
)
def test_a_refused_map_key_is_logged_once_and_never_shown(
    firms: tuple[Script, str], caplog: pytest.LogCaptureFixture, code: int, body: bytes
) -> None:
    script, url = firms
    script.answers = [(code, {}, body)]
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "satellite.poller"):
        caplog.set_level(logging.DEBUG, logger=name)
    clock = FakeClock()
    with make_poller(url, clock, sources=SOURCES) as poller:
        result = poller.poll_once()
    error = result.errors[SOURCES[0]]
    assert isinstance(error, FirmsAuthError)
    assert len(script.paths) == 1  # not retried, and the other sources not sent
    assert KEY in script.paths[0]  # the server got the key ...
    logged = [r for r in caplog.records if str(error) in r.getMessage()]
    assert len(logged) == 1  # ... the log has the error once
    assert logged[0].levelno == logging.ERROR
    skipped = [r for r in caplog.records if r.msg == KEY_WIDE_SKIP_MESSAGE]
    assert len(skipped) == 1
    assert skipped[0].levelno == logging.WARNING
    assert skipped[0].getMessage().startswith("not asking FIRMS for VIIRS_NOAA21_NRT, VIIRS_SNPP_NRT, MODIS_NRT")
    assert error.detail not in skipped[0].getMessage()
    assert KEY not in caplog.text
    assert all(KEY not in r.getMessage() and KEY not in str(r.args) for r in caplog.records)
    assert all(KEY not in str(e) for e in result.errors.values())
