"""The FIRMS area-API poller against a real HTTP server on 127.0.0.1: retries, cut bodies, errors, budget, secrecy.

The server (``http.server.ThreadingHTTPServer`` on port 0, in a thread) speaks plain HTTP/1.1 over real sockets, so
timeouts, connections closed mid-body and short ``Content-Length`` bodies happen for real, not in a mock. Each
test scripts what one source's URL answers, call by call; the last step repeats.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from satellite.errors import (
    REDACTED,
    FirmsApiError,
    FirmsAuthError,
    FirmsBudgetError,
    FirmsError,
    FirmsFormatError,
    FirmsRateLimitError,
    FirmsTransportError,
)
from satellite.firms import read_firms_csv
from satellite.hotspot import Product
from satellite.poller import (
    CHANGCHUN_BBOX,
    DEFAULT_SOURCES,
    AreaRequest,
    BBox,
    FirmsPoller,
    RetryPolicy,
    TransactionBudget,
    estimate_transactions,
)
from tests.conftest import shared_path

DATA = Path(__file__).parent / "data"
KEY = "0123456789abcdef0123456789abcdef"
MODIS_NE = ("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")
KEY_STATUS_JSON = b'{"transaction_limit":5000,"current_transactions":1234,"transaction_interval":"10 minutes"}'
# The client's timeout: short to keep the stalls cheap, yet several times what a loaded machine takes to answer on
# 127.0.0.1 (an answer that missed it by a scheduling hiccup would read as a stall and change the attempts counted).
TIMEOUT_S = 1.0
# A stall ends when the test does (the fixture's teardown), or after this long: the client must give up on it, and
# one that waited would get its answer only long after every bound below.
STALL_S = 60.0

# --- a scripted FIRMS on 127.0.0.1 -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One scripted reply.

    kind: ``ok`` (status + body), ``stall`` (nothing until the test ends, then ok), ``cut`` (send ``cut_at`` bytes
    of the body and close the connection; with ``declare_length`` the headers still announce the whole body),
    ``trickle`` (headers and the first ``head`` bytes at once, then the rest ``piece`` bytes at a time, ``pause_s``
    before each).
    """

    body: bytes
    status: int = 200
    kind: str = "ok"
    cut_at: int = 0
    declare_length: bool = True
    head: int = 0
    piece: int = 0
    pause_s: float = 0.0


def ok(body: bytes) -> Answer:
    return Answer(body)


def status(code: int, body: bytes = b"Internal Server Error") -> Answer:
    return Answer(body, status=code)


def stall(body: bytes) -> Answer:
    return Answer(body, kind="stall")


def cut(body: bytes, at: int, *, declare_length: bool) -> Answer:
    return Answer(body, kind="cut", cut_at=at, declare_length=declare_length)


TRICKLE_BYTES = 8
TRICKLE_PAUSE_S = TIMEOUT_S / 2  # every read gets data in time: the read timeout never fires


def trickle(body: bytes, *, head: int = 0, piece: int = TRICKLE_BYTES, pause_s: float = TRICKLE_PAUSE_S) -> Answer:
    return Answer(body, kind="trickle", head=head, piece=piece, pause_s=pause_s)


@dataclass
class FakeFirms:
    """Routes ``/api/area/csv/{KEY}/{SOURCE}/{AREA}/{DAYS}[/{DATE}]`` to scripts; anything else is a bad key."""

    scripts: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    unstalled: threading.Event = field(default_factory=threading.Event)  # set at the end of the test

    def script(self, source: Product | str, answers: list[Answer], window: str = "2") -> None:
        self.scripts[(Product(source).value, window)] = list(answers)

    def next_answer(self, path: str) -> Answer:
        with self.lock:
            self.paths.append(path)
            parts = path.split("/")
            # ['', 'api', 'area', 'csv', KEY, SOURCE, AREA, DAYS, (DATE)]
            if path.startswith("/mapserver/mapkey_status/"):
                if path.endswith(f"MAP_KEY={KEY}"):
                    return ok(
                        b'{"transaction_limit":5000,"current_transactions":1234,"transaction_interval":"10 minutes"}'
                    )
                return ok(b"Invalid MAP_KEY.")
            if len(parts) < 8 or parts[4] != KEY:
                return ok(b"Invalid MAP_KEY.")
            window = "/".join(parts[7:])
            answers = self.scripts.get((parts[5], window))
            if not answers:
                return status(400, b"Invalid source or day range.")
            return answers.pop(0) if len(answers) > 1 else answers[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one send: separate small writes meet the client's delayed ACK (~40 ms each).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        answer = self.server.firms.next_answer(self.path)
        try:
            if answer.kind == "stall":
                self.server.firms.unstalled.wait(STALL_S)
            body = answer.body[: answer.cut_at] if answer.kind == "cut" else answer.body
            self.send_response(answer.status)
            self.send_header("Content-Type", "text/csv; charset=utf-8")
            if answer.kind != "cut" or answer.declare_length:
                self.send_header("Content-Length", str(len(answer.body)))
            if answer.kind == "cut":
                # Without a length the body ends when the connection does: a proxy or server dying mid-transfer.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if answer.kind == "trickle":
                self.wfile.write(body[: answer.head])
                self.wfile.flush()
                for start in range(answer.head, len(body), answer.piece):
                    time.sleep(answer.pause_s)
                    self.wfile.write(body[start : start + answer.piece])
                    self.wfile.flush()
                return
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a stalled answer
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


class _Server(ThreadingHTTPServer):
    firms: FakeFirms
    # Join stalled handlers at shutdown instead of leaving them to write into closed sockets after the test.
    daemon_threads = False


@pytest.fixture
def firms() -> Iterator[tuple[FakeFirms, str]]:
    fake = FakeFirms()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.firms = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        fake.unstalled.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_poller(base_url: str, sleeps: Sleeps | None = None, *, key: str = KEY, **kwargs: object) -> FirmsPoller:
    options: dict[str, object] = {
        "base_url": base_url,
        "timeout_s": TIMEOUT_S,
        "sleep": sleeps if sleeps is not None else Sleeps(),
        "rng": random.Random(7),
        # Plain HTTP to 127.0.0.1 needs no TLS; skipping the CA bundle saves ~50 ms per poller.
        "transport": httpx.HTTPTransport(verify=False),
    }
    options.update(kwargs)
    return FirmsPoller(key, **options)  # type: ignore[arg-type]


def fixture_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def modis_bytes() -> bytes:
    return shared_path(*MODIS_NE).read_bytes()


def viirs_snpp_bytes() -> bytes:
    return fixture_bytes("viirs_snpp_nrt_area.csv")


# Each retry scenario runs on a synthetic VIIRS fixture (always present) and on the real MODIS file (skipped
# with a reason when ../shared/data is absent).
SCENARIO_SOURCES = [
    pytest.param(Product.VIIRS_SNPP_NRT, id="viirs-fixture"),
    pytest.param(Product.MODIS_NRT, id="modis-real", marks=pytest.mark.shared_data),
]


def body_for(source: Product) -> bytes:
    return modis_bytes() if source is Product.MODIS_NRT else viirs_snpp_bytes()


def script_all_sources(fake: FakeFirms) -> None:
    fake.script(Product.VIIRS_NOAA20_NRT, [ok(fixture_bytes("viirs_noaa20_nrt_window_0422-0423.csv"))])
    fake.script(Product.VIIRS_NOAA21_NRT, [ok(fixture_bytes("viirs_noaa21_nrt_world.csv"))])
    fake.script(Product.VIIRS_SNPP_NRT, [ok(viirs_snpp_bytes())])
    fake.script(Product.MODIS_NRT, [ok(modis_bytes())])


# --- requests, boxes, costs ---------------------------------------------------------------------------------


def test_area_request_path_matches_the_api_layout() -> None:
    request = AreaRequest(Product.VIIRS_SNPP_NRT, CHANGCHUN_BBOX, 2)
    assert request.path("K") == "/api/area/csv/K/VIIRS_SNPP_NRT/124.3,43,127.1,45.3/2"
    dated = AreaRequest(Product.MODIS_NRT, BBox(-0.5, -10.25, 0.0, 1e-7), 1, date(2025, 4, 22))
    assert dated.path("K") == "/api/area/csv/K/MODIS_NRT/-0.5,-10.25,0,0/1/2025-04-22"
    assert request.describe() == f"/api/area/csv/{REDACTED}/VIIRS_SNPP_NRT/124.3,43,127.1,45.3/2"
    assert str(BBox(-180, -90, 180, 90)) == "world"


@pytest.mark.parametrize("days", [0, 6, -1])
def test_day_range_outside_1_to_5_is_refused(days: int) -> None:
    with pytest.raises(ValueError, match="1-5"):
        AreaRequest(Product.VIIRS_SNPP_NRT, CHANGCHUN_BBOX, days)


@pytest.mark.parametrize("days", [1, 5])
def test_day_range_bounds_are_accepted(days: int) -> None:
    assert AreaRequest(Product.VIIRS_SNPP_NRT, CHANGCHUN_BBOX, days).day_range == days


def test_request_values_are_type_checked() -> None:
    with pytest.raises(TypeError):
        AreaRequest(Product.VIIRS_SNPP_NRT, CHANGCHUN_BBOX, True)
    # A datetime is a date subclass, so only the runtime check catches it.
    with pytest.raises(TypeError):
        AreaRequest(Product.VIIRS_SNPP_NRT, CHANGCHUN_BBOX, 1, datetime(2025, 4, 22, tzinfo=UTC))
    with pytest.raises(ValueError):
        AreaRequest("NOT_A_SOURCE", CHANGCHUN_BBOX, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "box", [(125, 43, 124, 45), (124, 45, 125, 43), (-181, 0, 0, 1), (0, 0, float("nan"), 1), (0, -91, 1, 0)]
)
def test_bad_boxes_are_refused(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError):
        BBox(*box)


def test_transaction_estimate_grows_with_days_and_area() -> None:
    assert estimate_transactions(AreaRequest(Product.VIIRS_SNPP_NRT, CHANGCHUN_BBOX, 1)) == 1
    assert estimate_transactions(AreaRequest(Product.VIIRS_SNPP_NRT, CHANGCHUN_BBOX, 2)) == 2
    assert estimate_transactions(AreaRequest(Product.VIIRS_SNPP_NRT, BBox(100, 30, 120, 40), 1)) == 2
    assert estimate_transactions(AreaRequest(Product.VIIRS_SNPP_NRT, BBox(-180, -90, 180, 90), 5)) == 3240


def test_poller_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="letters and digits") as excinfo:
        FirmsPoller("abc/../" + KEY)
    assert KEY not in str(excinfo.value)
    with pytest.raises(ValueError, match="1-5"):
        FirmsPoller(KEY, day_range=6)
    with pytest.raises(ValueError, match="http"):
        FirmsPoller(KEY, base_url="ftp://example.org")
    with pytest.raises(ValueError, match="source"):
        FirmsPoller(KEY, sources=[])


def test_default_sources_are_the_three_viirs_feeds_and_modis() -> None:
    with FirmsPoller(KEY) as poller:
        assert poller.sources == DEFAULT_SOURCES
        assert set(poller.sources) == {"VIIRS_NOAA20_NRT", "VIIRS_NOAA21_NRT", "VIIRS_SNPP_NRT", "MODIS_NRT"}


# --- the transaction budget ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_budget_is_a_sliding_window() -> None:
    clock = FakeClock()
    budget = TransactionBudget(limit=10, window_s=600, clock=clock)
    assert budget.try_charge(4) == 0.0
    clock.now += 300
    assert budget.try_charge(6) == 0.0
    assert budget.used() == 10
    # Full: the first 4 free up 600 s after they were charged, i.e. in 300 s.
    assert budget.wait_time(1) == pytest.approx(300.0)
    assert budget.try_charge(4) == pytest.approx(300.0)
    assert budget.try_charge(5) == pytest.approx(600.0)  # 5 needs the second charge gone too
    assert budget.used() == 10  # a refused charge charges nothing
    clock.now += 299.999
    assert budget.try_charge(1) > 0
    clock.now += 0.001
    assert budget.try_charge(4) == 0.0  # exactly at expiry the first charge no longer counts
    # Needing 6 more means waiting for the 6 charged at t=300 as well.
    assert budget.wait_time(6) == pytest.approx(300.0)


def test_budget_never_exceeds_its_limit_in_any_window() -> None:
    """Hammer it with random costs at random times; check every 600 s span afterwards."""
    rng = random.Random(3)
    clock = FakeClock()
    budget = TransactionBudget(limit=50, window_s=600, clock=clock)
    charges: list[tuple[float, int]] = []
    for _ in range(3000):
        clock.now += rng.expovariate(1 / 5.0)
        cost = rng.randint(1, 8)
        if budget.try_charge(cost) == 0.0:
            charges.append((clock.now, cost))
    assert len(charges) > 300
    # Counts only change at charges, so the windows starting at each charge include the fullest one.
    fullest = max(sum(c for t, c in charges[i:] if t < start + 600) for i, (start, _) in enumerate(charges))
    assert fullest <= 50
    assert fullest > 50 - 8  # and it does use the budget: at most one cost short of full


def test_budget_saturate_and_reconcile() -> None:
    clock = FakeClock()
    budget = TransactionBudget(limit=100, clock=clock)
    budget.try_charge(10)
    budget.reconcile(40)  # FIRMS counted 40: someone else spent 30
    assert budget.used() == 40
    budget.reconcile(5)  # never lowered
    assert budget.used() == 40
    budget.saturate()
    assert budget.remaining() == 0
    assert budget.wait_time(1) == pytest.approx(600.0)
    clock.now += 600
    assert budget.remaining() == 100


def test_budget_refuses_impossible_costs() -> None:
    budget = TransactionBudget(limit=10)
    with pytest.raises(ValueError, match="never fit"):
        budget.try_charge(11)
    with pytest.raises(ValueError):
        budget.try_charge(0)


def test_poller_waits_for_budget_room_with_the_injected_sleep(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    fake.script(Product.VIIRS_SNPP_NRT, [ok(viirs_snpp_bytes())])
    clock = FakeClock()
    budget = TransactionBudget(limit=3, window_s=600, clock=clock)
    sources = [Product.VIIRS_SNPP_NRT]
    with make_poller(url, budget=budget, sleep=clock.sleep, max_budget_wait_s=600, sources=sources) as poller:
        first = poller.poll_once()  # costs 2 of 3
        started = clock.now
        second = poller.poll_once()
    assert first.ok
    assert second.ok
    assert clock.now - started == pytest.approx(600.0)  # waited exactly until the first charge expired
    assert len(fake.paths) == 2


def test_poller_reports_a_budget_error_instead_of_waiting_too_long(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    fake.script(Product.VIIRS_SNPP_NRT, [ok(viirs_snpp_bytes())])
    fake.script(Product.MODIS_NRT, [ok(viirs_snpp_bytes())])
    clock = FakeClock()
    budget = TransactionBudget(limit=3, clock=clock)
    sources = [Product.VIIRS_SNPP_NRT, Product.MODIS_NRT]
    with make_poller(url, budget=budget, sleep=clock.sleep, max_budget_wait_s=60, sources=sources) as poller:
        result = poller.poll_once()
    assert result.results[Product.VIIRS_SNPP_NRT].ok
    error = result.errors[Product.MODIS_NRT]
    assert isinstance(error, FirmsBudgetError)
    assert error.wait_s == pytest.approx(600.0)
    assert result.results[Product.MODIS_NRT].attempts == 0
    assert len(fake.paths) == 1  # nothing was sent for MODIS


# --- polling a real server --------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_poll_once_fetches_every_source(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    script_all_sources(fake)
    sleeps = Sleeps()
    with make_poller(url, sleeps) as poller:
        result = poller.poll_once()
    assert result.ok, result.errors
    expected = {
        Product.VIIRS_NOAA20_NRT: read_firms_csv(DATA / "viirs_noaa20_nrt_window_0422-0423.csv").hotspots,
        Product.VIIRS_NOAA21_NRT: read_firms_csv(DATA / "viirs_noaa21_nrt_world.csv").hotspots,
        Product.VIIRS_SNPP_NRT: read_firms_csv(DATA / "viirs_snpp_nrt_area.csv").hotspots,
        Product.MODIS_NRT: read_firms_csv(shared_path(*MODIS_NE)).hotspots,
    }
    assert result.hotspots == expected
    assert len(result.hotspots[Product.MODIS_NRT]) == 484
    assert len(result.all_hotspots()) == sum(map(len, expected.values()))
    assert result.rejected == []
    assert result.transactions == 4 * 2  # Changchun box, DAY_RANGE 2
    assert sleeps.calls == []
    # The server saw the real key in each path; the hotspots know which source they came from.
    assert [p.split("/")[4:6] for p in fake.paths] == [[KEY, s.value] for s in DEFAULT_SOURCES]
    assert all(p.endswith("/124.3,43,127.1,45.3/2") for p in fake.paths)
    assert {h.product for h in result.hotspots[Product.MODIS_NRT]} == {Product.MODIS_NRT}
    assert result.started_utc.tzinfo is UTC
    assert result.started_utc <= result.finished_utc


@pytest.mark.parametrize("source", SCENARIO_SOURCES)
def test_server_errors_are_retried_with_backoff(firms: tuple[FakeFirms, str], source: Product) -> None:
    fake, url = firms
    body = body_for(source)
    fake.script(source, [status(500), status(502), status(503), ok(body)])
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=4, base_delay_s=2.0, max_delay_s=60.0, jitter=0.5)
    with make_poller(url, sleeps, retry=policy, sources=[source]) as poller:
        result = poller.poll_once()
    outcome = result.results[source]
    assert outcome.ok
    assert outcome.attempts == 4
    assert outcome.transactions == 4 * 2  # every attempt that reached the server is charged
    assert outcome.hotspots == read_firms_csv(body).hotspots
    # Exponential with jitter: retry n waits within [0.5, 1] x 2 * 2^(n-1) seconds.
    assert len(sleeps.calls) == 3
    for n, delay in enumerate(sleeps.calls, start=1):
        nominal = 2.0 * 2 ** (n - 1)
        assert nominal * 0.5 <= delay <= nominal
    assert len(set(sleeps.calls)) == 3


@pytest.mark.parametrize("source", SCENARIO_SOURCES)
def test_a_stalled_server_times_out_and_the_next_attempt_succeeds(
    firms: tuple[FakeFirms, str], source: Product
) -> None:
    fake, url = firms
    body = body_for(source)
    fake.script(source, [stall(body), ok(body)])
    started = time.monotonic()
    with make_poller(url, sources=[source]) as poller:
        result = poller.poll_once()
    elapsed = time.monotonic() - started
    outcome = result.results[source]
    assert outcome.ok, outcome.error
    assert outcome.attempts == 2
    assert outcome.hotspots == read_firms_csv(body).hotspots
    assert TIMEOUT_S * 0.9 <= elapsed < STALL_S / 2  # gave up on the stall (it never answers in time)


def test_a_server_trickling_its_answer_is_abandoned_and_retried(firms: tuple[FakeFirms, str]) -> None:
    """A stall that keeps sending a few bytes inside every read timeout never trips httpx's per-read timeout: the
    605-byte fixture took ~14 s, a large answer trickled like that held the poll (and every later one) for as
    long as the server liked. Each attempt now has a deadline for headers and body together."""
    fake, url = firms
    body = viirs_snpp_bytes()
    fake.script(Product.VIIRS_SNPP_NRT, [trickle(body), ok(body)])
    started = time.monotonic()
    with make_poller(url, sources=[Product.VIIRS_SNPP_NRT], max_request_s=1.0) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    elapsed = time.monotonic() - started
    whole_s = len(body) / TRICKLE_BYTES * TRICKLE_PAUSE_S  # what waiting for the whole answer would take
    assert whole_s > 30
    assert outcome.ok, outcome.error
    assert outcome.attempts == 2
    assert outcome.hotspots == read_firms_csv(body).hotspots
    assert elapsed < whole_s / 2  # ~1 s: abandoned, not waited for (bounded generously: a loaded machine is slow)


def test_a_server_that_only_trickles_is_a_transport_error(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    fake.script(Product.VIIRS_SNPP_NRT, [trickle(viirs_snpp_bytes())])
    with make_poller(url, sources=[Product.VIIRS_SNPP_NRT], max_request_s=0.5, retry=RetryPolicy(attempts=2)) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert isinstance(outcome.error, FirmsTransportError)
    assert outcome.attempts == 2
    assert "0.5 s" in str(outcome.error)
    assert KEY not in str(outcome.error)


def test_the_request_deadline_is_validated() -> None:
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="max_request_s"):
            FirmsPoller(KEY, max_request_s=bad)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="min_rate_bps"):
            FirmsPoller(KEY, min_rate_bps=bad)


def test_a_large_answer_arriving_steadily_past_the_deadline_is_kept(firms: tuple[FakeFirms, str]) -> None:
    """The deadline is for answers that stall, not for large ones on a slow link: a 5-day world VIIRS request is
    ~100 MB (hundreds of thousands of rows of ~80 bytes a day), 10-20 minutes at 1 Mbit/s. Abandoned at 180 s,
    such a poll failed every attempt, every cycle, and spent the key's transactions on each. Scaled down here: a
    0.2 s deadline, an answer that takes ~0.5 s at ~1 kB/s, far above the 20 B/s floor (and a read timeout of its
    own), so that only a pause of seconds between two of its pieces, not a busy machine's hiccup, cuts it."""
    fake, url = firms
    body = viirs_snpp_bytes()
    fake.script(Product.VIIRS_SNPP_NRT, [trickle(body, piece=-(-len(body) // 10), pause_s=0.05)])
    with make_poller(
        url, sources=[Product.VIIRS_SNPP_NRT], max_request_s=0.2, min_rate_bps=20.0, timeout_s=30.0
    ) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok, outcome.error
    assert (outcome.attempts, len(fake.paths)) == (1, 1)
    assert outcome.hotspots == read_firms_csv(body).hotspots


def test_the_default_floor_keeps_a_slow_link_and_drops_a_trickle() -> None:
    from satellite.poller import DEFAULT_MIN_RATE_BPS

    assert DEFAULT_MIN_RATE_BPS <= 1_000_000 / 8 / 4  # a quarter of a 1 Mbit/s link still counts as arriving
    assert DEFAULT_MIN_RATE_BPS > TRICKLE_BYTES / TRICKLE_PAUSE_S * 100  # a few bytes a read timeout does not


@pytest.mark.parametrize(
    "body",
    [b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n", "\u00a0\n".encode(), "\ufeff\u3000\n".encode()],
    ids=["bom", "bom-crlf", "nbsp", "bom-ideographic-space"],
)
def test_a_body_with_no_visible_text_is_retried_and_stops_no_other_source(
    firms: tuple[FakeFirms, str], body: bytes
) -> None:
    """A body that is not empty as bytes but holds nothing once decoded (a byte-order mark, Unicode spaces) made
    the header search raise StopIteration out of poll_once: the whole cycle failed, other sources unpolled."""
    fake, url = firms
    fake.script(Product.VIIRS_SNPP_NRT, [ok(body), ok(viirs_snpp_bytes())])
    fake.script(Product.VIIRS_NOAA20_NRT, [ok(viirs_snpp_bytes())])
    sources = [Product.VIIRS_SNPP_NRT, Product.VIIRS_NOAA20_NRT]
    with make_poller(url, sources=sources, retry=RetryPolicy(attempts=2)) as poller:
        result = poller.poll_once()
    first = result.results[Product.VIIRS_SNPP_NRT]
    assert first.ok, first.error
    assert first.attempts == 2
    assert len(first.hotspots) == 6
    assert sum(path.split("/")[5] == Product.VIIRS_NOAA20_NRT.value for path in fake.paths) == 1


@pytest.mark.parametrize("source", SCENARIO_SOURCES)
@pytest.mark.parametrize("declare_length", [True, False], ids=["short-of-content-length", "connection-closed"])
def test_a_body_cut_mid_row_is_retried_and_no_row_is_lost(
    firms: tuple[FakeFirms, str], source: Product, declare_length: bool
) -> None:
    fake, url = firms
    body = body_for(source)
    middle = body.index(b"\n", len(body) // 2) + 20  # 20 bytes into a row
    assert body[middle - 20 : middle].count(b",") < body.split(b"\n", 1)[0].count(b",")
    fake.script(source, [cut(body, middle, declare_length=declare_length), ok(body)])
    with make_poller(url, sources=[source]) as poller:
        result = poller.poll_once()
    outcome = result.results[source]
    assert outcome.ok, outcome.error
    assert outcome.attempts == 2
    assert outcome.rejected == []
    assert outcome.hotspots == read_firms_csv(body).hotspots  # every row, including those after the cut


def test_a_body_cut_inside_the_last_field_is_retried(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    body = viirs_snpp_bytes()
    fake.script(Product.VIIRS_SNPP_NRT, [cut(body, len(body) - 2, declare_length=False), ok(body)])
    with make_poller(url, sources=[Product.VIIRS_SNPP_NRT]) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert body[: len(body) - 2].endswith(b",")  # every field present, the last one empty
    assert outcome.ok
    assert outcome.attempts == 2
    assert len(outcome.hotspots) == 6


def test_a_complete_body_without_final_newline_is_accepted(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    body = viirs_snpp_bytes().rstrip(b"\n")
    fake.script(Product.VIIRS_SNPP_NRT, [ok(body)])
    with make_poller(url, sources=[Product.VIIRS_SNPP_NRT]) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok
    assert outcome.attempts == 1
    assert len(outcome.hotspots) == 6


def test_header_only_answer_is_no_fires_not_an_error(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    fake.script(Product.VIIRS_SNPP_NRT, [ok(viirs_snpp_bytes().split(b"\n", 1)[0] + b"\n")])
    with make_poller(url, sources=[Product.VIIRS_SNPP_NRT]) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok
    assert outcome.hotspots == []
    assert outcome.attempts == 1


def test_empty_body_is_retried(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    fake.script(Product.VIIRS_SNPP_NRT, [ok(b""), ok(viirs_snpp_bytes())])
    with make_poller(url, sources=[Product.VIIRS_SNPP_NRT]) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok
    assert outcome.attempts == 2


def test_one_failing_source_does_not_stop_the_others(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    fake.script(Product.VIIRS_NOAA20_NRT, [ok(fixture_bytes("viirs_noaa20_nrt_window_0422-0423.csv"))])
    fake.script(Product.VIIRS_NOAA21_NRT, [status(503)])  # down for the whole cycle
    fake.script(Product.VIIRS_SNPP_NRT, [stall(b"")])  # never answers in time
    fake.script(Product.MODIS_NRT, [ok(b"latitude,longitude,brightness\n1,2,300\n")])  # wrong layout
    sleeps = Sleeps()
    with make_poller(url, sleeps, retry=RetryPolicy(attempts=2)) as poller:
        result = poller.poll_once()
    assert not result.ok
    assert result.results[Product.VIIRS_NOAA20_NRT].ok
    assert len(result.hotspots[Product.VIIRS_NOAA20_NRT]) == 7
    noaa21 = result.errors[Product.VIIRS_NOAA21_NRT]
    assert isinstance(noaa21, FirmsTransportError)
    assert noaa21.attempts == 2
    assert "HTTP 503" in str(noaa21)
    snpp = result.errors[Product.VIIRS_SNPP_NRT]
    assert isinstance(snpp, FirmsTransportError)
    assert "timed out" in str(snpp)
    assert isinstance(result.errors[Product.MODIS_NRT], FirmsFormatError)  # not retryable: asked again, same answer
    assert result.results[Product.MODIS_NRT].attempts == 1
    assert len(sleeps.calls) == 2  # one retry each for the two retryable failures


def test_overlapping_windows_give_the_same_keys(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    source = Product.VIIRS_NOAA20_NRT
    fake.script(source, [ok(fixture_bytes("viirs_noaa20_nrt_window_0423.csv"))], window="1")
    fake.script(source, [ok(fixture_bytes("viirs_noaa20_nrt_window_0422-0423.csv"))], window="2")
    fake.script(source, [ok(fixture_bytes("poller/viirs_noaa20_nrt_window_0422.csv"))], window="1/2025-04-22")
    with make_poller(url, sources=[source]) as poller:
        today = poller.poll_once(day_range=1)
        two_days = poller.poll_once(day_range=2)
        yesterday = poller.poll_once(day_range=1, start_date=date(2025, 4, 22))
    assert fake.paths[-1].endswith("/1/2025-04-22")
    keys_today = {h.key for h in today.all_hotspots()}
    keys_two = {h.key for h in two_days.all_hotspots()}
    keys_yesterday = {h.key for h in yesterday.all_hotspots()}
    assert len(keys_today) == 4
    assert len(keys_yesterday) == 3
    assert keys_today | keys_yesterday == keys_two
    assert not keys_today & keys_yesterday
    # The same detection fetched twice is the same record, not just the same key.
    by_key = {h.key: h for h in two_days.all_hotspots()}
    assert all(by_key[h.key] == h for h in today.all_hotspots())


# --- FIRMS error answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 400, 401])
def test_invalid_key_answer_is_an_auth_error_and_ends_the_cycle(firms: tuple[FakeFirms, str], code: int) -> None:
    fake, url = firms
    for source in DEFAULT_SOURCES:
        fake.script(source, [status(code, b"Invalid MAP_KEY.")])
    with make_poller(url) as poller:
        result = poller.poll_once()
    first = result.errors[DEFAULT_SOURCES[0]]
    assert isinstance(first, FirmsAuthError)
    assert first.status == code
    assert first.detail == "Invalid MAP_KEY."
    assert "Invalid MAP_KEY." in str(first)
    assert result.results[DEFAULT_SOURCES[0]].attempts == 1  # not retried
    # Key-wide: the other sources are not asked, and report the same error.
    assert len(fake.paths) == 1
    assert all(result.errors[s] is first for s in DEFAULT_SOURCES)
    assert all(result.results[s].attempts == 0 for s in DEFAULT_SOURCES[1:])


def test_a_wrong_key_reaches_the_server_as_sent_and_is_reported(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    other = "ffffffffffffffffffffffffffffffff"
    with make_poller(url, key=other, sources=[Product.VIIRS_SNPP_NRT]) as poller:
        result = poller.poll_once()
    assert isinstance(result.errors[Product.VIIRS_SNPP_NRT], FirmsAuthError)
    assert fake.paths[0].split("/")[4] == other


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (200, b"Exceeding allowed transaction limit"),
        (403, b"MAP_KEY is invalid or your have exceeded your transaction/time limit. Please try again later."),
        (429, b"Too Many Requests"),
    ],
)
def test_transaction_limit_answer_fills_the_budget(firms: tuple[FakeFirms, str], code: int, text: bytes) -> None:
    fake, url = firms
    for source in DEFAULT_SOURCES:
        fake.script(source, [status(code, text)])
    clock = FakeClock()
    budget = TransactionBudget(clock=clock)
    with make_poller(url, budget=budget, sleep=clock.sleep, max_budget_wait_s=0) as poller:
        result = poller.poll_once()
        again = poller.poll_once()
    assert isinstance(result.errors[DEFAULT_SOURCES[0]], FirmsRateLimitError)
    assert budget.remaining() == 0
    assert len(fake.paths) == 1
    # The next cycle does not ask at all until the window has rolled.
    assert all(isinstance(e, FirmsBudgetError) for e in again.errors.values())
    assert len(fake.paths) == 1


def test_other_error_text_is_an_api_error_for_that_source_only(firms: tuple[FakeFirms, str]) -> None:
    fake, url = firms
    fake.script(Product.VIIRS_SNPP_NRT, [ok(b"Invalid area coordinates.")])
    fake.script(Product.VIIRS_NOAA20_NRT, [ok(fixture_bytes("viirs_noaa20_nrt_window_0422-0423.csv"))])
    sources = [Product.VIIRS_SNPP_NRT, Product.VIIRS_NOAA20_NRT]
    with make_poller(url, sources=sources) as poller:
        result = poller.poll_once()
    error = result.errors[Product.VIIRS_SNPP_NRT]
    assert type(error) is FirmsApiError
    assert not error.key_wide
    assert result.results[Product.VIIRS_SNPP_NRT].attempts == 1
    assert len(result.hotspots[Product.VIIRS_NOAA20_NRT]) == 7


def test_key_status_and_budget_sync(firms: tuple[FakeFirms, str]) -> None:
    _, url = firms
    clock = FakeClock()
    budget = TransactionBudget(clock=clock)
    with make_poller(url, budget=budget) as poller:
        status_ = poller.sync_budget()
    assert (status_.current_transactions, status_.transaction_limit) == (1234, 5000)
    assert budget.used() == 1234


def test_unreachable_server_is_a_transport_error(firms: tuple[FakeFirms, str]) -> None:
    # Bind and close a socket to get a port nobody listens on.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with make_poller(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=2), sources=["VIIRS_SNPP_NRT"]) as poller:
        result = poller.poll_once()
    error = result.errors[Product.VIIRS_SNPP_NRT]
    assert isinstance(error, FirmsTransportError)
    assert error.attempts == 2
    assert "ConnectError" in error.reason


# --- the key stays secret ----------------------------------------------------------------------------------


def test_map_key_appears_in_no_log_line_error_or_repr(
    firms: tuple[FakeFirms, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = firms
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "satellite.poller"):
        caplog.set_level(logging.DEBUG, logger=name)
    modis = viirs_snpp_bytes()
    fake.script(Product.VIIRS_NOAA20_NRT, [status(500), ok(fixture_bytes("viirs_noaa20_nrt_window_0422-0423.csv"))])
    fake.script(Product.VIIRS_NOAA21_NRT, [stall(b""), status(404, f"no such path /api/area/csv/{KEY}/".encode())])
    fake.script(Product.VIIRS_SNPP_NRT, [cut(modis, 100, declare_length=True), status(500)])
    fake.script(Product.MODIS_NRT, [ok(f"Invalid MAP_KEY {KEY}.".encode())])
    with make_poller(url, retry=RetryPolicy(attempts=2)) as poller:
        result = poller.poll_once()
        text_repr = repr(poller)
        status_ = poller.key_status()
    assert status_.current_transactions == 1234
    # Every kind of outcome happened, so every message path was exercised.
    assert result.results[Product.VIIRS_NOAA20_NRT].ok
    assert set(result.errors) == {Product.VIIRS_NOAA21_NRT, Product.VIIRS_SNPP_NRT, Product.MODIS_NRT}
    # httpx's own request log was captured, with the placeholder where the key goes.
    http_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any(f"/api/area/csv/{REDACTED}/VIIRS_NOAA20_NRT/" in line for line in http_lines)
    assert any(f"MAP_KEY={REDACTED}" in line for line in http_lines)
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # its DEBUG traces were on too
    assert KEY not in caplog.text
    assert all(KEY not in r.getMessage() and KEY not in str(r.args) for r in caplog.records)
    for error in result.errors.values():
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in "".join(traceback.format_exception(error))
        assert KEY not in str(getattr(error, "detail", ""))
    assert isinstance(result.errors[Product.MODIS_NRT], FirmsAuthError)
    echoed = result.errors[Product.MODIS_NRT]
    assert isinstance(echoed, FirmsAuthError)
    assert REDACTED in echoed.detail  # the key echoed by the server is masked
    assert KEY not in text_repr
    assert REDACTED in text_repr
    assert KEY not in repr(result)
    # ... while the server did receive it.
    assert all(p.split("/")[4] == KEY for p in fake.paths if p.startswith("/api/"))


def test_repr_hides_a_secretstr_key() -> None:
    with FirmsPoller(SecretStr(KEY)) as poller:
        assert KEY not in repr(poller)
        assert KEY not in repr(poller._client._transport)


def test_transport_seam_accepts_an_httpx_mock_transport() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, content=viirs_snpp_bytes())

    poller = FirmsPoller(KEY, transport=httpx.MockTransport(handler), sources=[Product.VIIRS_SNPP_NRT], sleep=Sleeps())
    with poller:
        result = poller.poll_once()
    assert result.ok
    assert len(result.all_hotspots()) == 6
    assert seen == [f"/api/area/csv/{KEY}/VIIRS_SNPP_NRT/124.3,43,127.1,45.3/2"]


def test_retry_policy_delays_are_bounded_and_reproducible() -> None:
    policy = RetryPolicy(attempts=10, base_delay_s=1.0, max_delay_s=8.0, jitter=0.25)
    first = [policy.delay_s(n, random.Random(1)) for n in range(1, 10)]
    assert first == [policy.delay_s(n, random.Random(1)) for n in range(1, 10)]
    for n, delay in enumerate(first, start=1):
        nominal = min(8.0, 2 ** (n - 1))
        assert 0.75 * nominal <= delay <= nominal
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_errors_are_firms_errors() -> None:
    for kind in (FirmsApiError, FirmsAuthError, FirmsRateLimitError, FirmsTransportError, FirmsBudgetError):
        assert issubclass(kind, FirmsError)


def test_a_body_that_does_not_decode_is_retried_and_stops_no_other_source() -> None:
    """A gzip Content-Encoding over a body that is not gzip raises httpx.DecodingError, a RequestError but not a
    TransportError: it escaped the poll cycle, and the other sources were never asked."""
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        product = request.url.path.split("/")[5]
        calls[product] = calls.get(product, 0) + 1
        if product == Product.VIIRS_SNPP_NRT.value:
            return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip at all")
        return httpx.Response(200, content=viirs_snpp_bytes())

    sources = [Product.VIIRS_SNPP_NRT, Product.VIIRS_NOAA20_NRT]
    poller = FirmsPoller(
        KEY, transport=httpx.MockTransport(handler), sources=sources, sleep=Sleeps(), retry=RetryPolicy(attempts=2)
    )
    with poller:
        result = poller.poll_once()
        with pytest.raises(FirmsTransportError) as status:
            FirmsPoller(
                KEY,
                transport=httpx.MockTransport(
                    lambda r: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"nope")
                ),
                sleep=Sleeps(),
            ).key_status()
    failed = result.errors[Product.VIIRS_SNPP_NRT]
    assert isinstance(failed, FirmsTransportError)
    assert "DecodingError" in str(failed)
    assert KEY not in str(failed)
    assert calls[Product.VIIRS_SNPP_NRT.value] == 2  # retried like any transport failure
    assert result.results[Product.VIIRS_NOAA20_NRT].ok  # and the next source was polled
    assert KEY not in str(status.value)


def test_an_answer_that_stalls_into_a_trickle_after_a_good_start_is_abandoned(firms: tuple[FakeFirms, str]) -> None:
    """Judged by its rate over the last stretch, not its average since the request: a trickle after a fast start
    (here 500 bytes at once, then a byte every 0.5 s against a 10 B/s floor) would have been carried by its average
    to its end, ~250 times the stretch (a real 100 MB start: hours)."""
    fake, url = firms
    body = viirs_snpp_bytes()
    fake.script(Product.VIIRS_SNPP_NRT, [trickle(body, head=500, piece=1, pause_s=0.5), ok(body)])
    started = time.monotonic()
    with make_poller(url, sources=[Product.VIIRS_SNPP_NRT], max_request_s=0.2, min_rate_bps=10.0) as poller:
        outcome = poller.poll_once().results[Product.VIIRS_SNPP_NRT]
    assert outcome.ok, outcome.error
    assert outcome.attempts == 2
    # ~1 s; the whole trickle takes ~50 s, its average stays above 10 B/s to the end.
    assert time.monotonic() - started < 20.0
