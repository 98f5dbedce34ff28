"""Poll the NASA FIRMS area API: one CSV request per source over one bounding box, safely and politely.

The building blocks, from the bottom up:

* :class:`BBox` and :class:`AreaRequest` — what to ask for, validated (DAY_RANGE 1-5) and rendered into the API
  path ``/api/area/csv/{MAP_KEY}/{SOURCE}/{W,S,E,N}/{DAY_RANGE}[/{DATE}]``.
* :class:`TransactionBudget` — a sliding-window limiter that keeps this process under FIRMS's 5,000
  transactions per 10 minutes per MAP_KEY, with an injectable clock.
* :class:`RetryPolicy` — exponential backoff with jitter for failures that another try can fix, and how many
  attempts may time out.
* :class:`FirmsPoller` — an ``httpx.Client`` (transport injectable) that fetches one request
  (:meth:`FirmsPoller.fetch`) or every configured source (:meth:`FirmsPoller.poll_once`), and never lets one
  failing source stop the others. The service schedules :meth:`~FirmsPoller.poll_once` (e.g. every 15 min).

**The MAP_KEY never leaves the transport.** FIRMS puts the key in the URL *path*, and httpx logs every request
URL at INFO (``HTTP Request: GET https://…``) and attaches the request to its exceptions. So the client only
ever builds URLs with ``***`` in the key's place; a thin transport (:class:`_MapKeyTransport`) swaps the real
key in just before the bytes go out, on a copy of the request that nothing above it sees. Log lines, exception
messages and ``repr`` therefore show ``***`` whatever logging level is enabled, including httpx's and
httpcore's own loggers. Environment proxy variables are not read (``trust_env=False``) because httpx would
route such requests through a transport of its own, past the key swap; pass ``proxy=`` instead.

**What FIRMS answers and what the poller makes of it:**

* CSV with a FIRMS header → parsed by :func:`satellite.firms.read_firms_csv`; bad rows come back as rejected
  rows, not errors.
* a short text instead of CSV — with status 200 as often as 4xx (``Invalid MAP_KEY.``, ``Exceeding allowed
  transaction limit``) → :class:`~satellite.errors.FirmsAuthError`, :class:`~satellite.errors.FirmsRateLimitError`
  or :class:`~satellite.errors.FirmsApiError`; never parsed as an empty CSV, never retried at once. Key-wide
  errors (auth, limit) end the cycle for the remaining sources without spending more requests, and a limit
  answer fills the local budget so the next cycle waits for the window to roll.
* 5xx, timeouts, refused or reset connections, an answer arriving more slowly than a link carries
  (``min_rate_bps`` over any ``max_request_s``: a server that trickles a few bytes inside every read timeout never
  trips httpx's per-read timeout; a large answer arriving steadily on a slow link is kept, however long it
  takes), an empty body (or one with nothing but a byte-order mark or spaces), a
  body shorter than its ``Content-Length`` or a body cut in the middle of a row → retried with backoff. A cut body
  is never parsed: its complete rows would be kept and the cut one reported as rejected, and a poll cycle that
  "succeeded" with a missing detection would not fetch it again. Retrying gets the whole window; if every
  attempt fails the source reports a :class:`~satellite.errors.FirmsTransportError`, and the next cycle's
  overlapping window (DAY_RANGE 2 polled every 15 min) fetches the same rows again. A body cut exactly at a
  line end is only detectable through ``Content-Length``; without one, the overlapping windows are what recover
  those rows.
* 503 or 429 with ``Retry-After`` (seconds or an HTTP date) → the retry waits exactly that long, and no other
  request of the poller goes out before it ends; when the wait does not fit the request's deadline the request
  ends there (a 503 as a transport error, a 429 as the transaction limit) and later sources are not sent. Without
  a valid ``Retry-After``: the backoff (503), or the transaction limit at once (429).

**How long a source can take.** A poll must end well within its interval whatever FIRMS does, so each request
(one source, or one back-fill window) has a deadline across its attempts and waits (``source_deadline_s``, 120 s):
a retry is made only if its wait and one full ``timeout_s`` end within it. Timeouts are retried less than cheap
failures (``RetryPolicy.timeout_attempts``, 2 of the 4 attempts): a server that accepts the request and never
answers costs a whole ``timeout_s`` per attempt. Once an attempt has timed out, later requests of the poller get
a single timed-out attempt until the server answers anything again, so a hung server costs a four-source poll two
timeouts for the first source and one for each other (about 2.5 min with the defaults, instead of 4 × 4 × 30 s).
An answer that is arriving is never cut by the deadline: ``min_rate_bps`` judges it.

**Each error is logged once**: a retry at WARNING when it is decided, a request's final error at ERROR (a budget
error at WARNING), and for the sources a key-wide error skips one WARNING (:data:`KEY_WIDE_SKIP_MESSAGE`) that
names them without repeating the error.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Final, Protocol

import httpx

from satellite.errors import (
    REDACTED,
    FirmsApiError,
    FirmsAuthError,
    FirmsBudgetError,
    FirmsError,
    FirmsRateLimitError,
    FirmsTransportError,
    redact,
)
from satellite.firms import RejectedRow, read_firms_csv
from satellite.hotspot import Hotspot, Product

__all__ = [
    "CHANGCHUN_BBOX",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_REQUEST_S",
    "DEFAULT_MIN_RATE_BPS",
    "DEFAULT_SOURCES",
    "DEFAULT_SOURCE_DEADLINE_S",
    "DEFAULT_TRANSACTION_BUDGET",
    "FIRMS_TRANSACTION_LIMIT",
    "FIRMS_TRANSACTION_WINDOW_S",
    "KEY_WIDE_SKIP_MESSAGE",
    "MAX_DAY_RANGE",
    "WORLD",
    "AreaRequest",
    "BBox",
    "FirmsPoller",
    "KeyStatus",
    "PollResult",
    "RetryPolicy",
    "SecretValue",
    "SourceResult",
    "TransactionBudget",
    "estimate_transactions",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://firms.modaps.eosdis.nasa.gov"

DEFAULT_SOURCES: Final[tuple[Product, ...]] = (
    Product.VIIRS_NOAA20_NRT,
    Product.VIIRS_NOAA21_NRT,
    Product.VIIRS_SNPP_NRT,
    Product.MODIS_NRT,
)
"""The three VIIRS 375 m NRT feeds (the backbone) and MODIS NRT (coarser, kept for continuity)."""

FIRMS_TRANSACTION_LIMIT: Final = 5_000
FIRMS_TRANSACTION_WINDOW_S: Final = 600.0
"""FIRMS allows 5,000 transactions per MAP_KEY in any rolling 10-minute window (reference §3.2)."""

DEFAULT_TRANSACTION_BUDGET: Final = 4_500
"""What this process allows itself per window: 10 % below FIRMS's limit, because our transaction count is an
estimate (see :func:`estimate_transactions`), our window and FIRMS's are measured on different clocks, and
another tool using the same key (a browser, a one-off script) counts against the same limit."""

DEFAULT_SOURCE_DEADLINE_S: Final = 120.0
"""How long one request (a source, or a back-fill window) may spend across its attempts and waits: with the 30 s
timeout, two timed-out attempts and their backoff fit, and four answers of 503 with their backoff; a ``Retry-After``
of up to 90 s is waited for. Four sources against a server that accepts and never answers cost about 2.5 minutes
(the first source two timeouts, the rest one each), not 4 × 4 × 30 s; a 15-minute poll interval stays free."""

DEFAULT_MAX_REQUEST_S: Final = 180.0
"""The stretch over which an answer's rate is judged, the first counted from the request: the configured box's CSV
is kilobytes and arrives well within it."""

DEFAULT_MIN_RATE_BPS: Final = 16_384.0
"""An answer still arriving at this many bytes per second (128 kbit/s) is waited for: a five-day world VIIRS
request is ~100 MB (hundreds of thousands of ~80-byte rows a day), 10-20 minutes on a 1 Mbit/s link, and cut at a
fixed deadline it failed every attempt of every cycle. A server trickling a few bytes per read timeout is
thousands of times slower."""

MAX_DAY_RANGE: Final = 5
"""The area API serves 1-5 days per request (reference §3.1; older clients used up to 10)."""

ESTIMATE_TILE_DEG2: Final = 100.0
"""Area of one "tile" in :func:`estimate_transactions`: a 10° × 10° box."""

KEY_WIDE_SKIP_MESSAGE: Final = "not asking FIRMS for %s this cycle: the error above is about the MAP_KEY itself"
"""The WARNING :meth:`FirmsPoller.poll_once` logs for the sources a key-wide error skips (a caller that prints the
error itself, as ``strawfire firms poll`` does, can drop this line by its ``msg``)."""

MAX_RETRY_AFTER_S: Final = 10**9
"""A larger ``Retry-After`` in seconds is read as this (~32 years): it is never waited for anyway."""

_USER_AGENT: Final = "strawfire-firms-poller/0.1"
_MAX_DETAIL: Final = 200
_KEY_RE: Final = re.compile(r"[A-Za-z0-9]{8,128}")


class SecretValue(Protocol):
    """Anything holding a secret behind ``get_secret_value()``, such as ``pydantic.SecretStr``."""

    def get_secret_value(self) -> str:
        """The secret in clear."""
        ...


@dataclass(frozen=True, slots=True)
class BBox:
    """A WGS-84 bounding box, west/south/east/north in degrees, as the area API takes it.

    A box crossing the antimeridian (west > east) is refused: FIRMS's ``AREA`` cannot express it; request the two
    halves instead.
    """

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        values = (self.west, self.south, self.east, self.north)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ValueError(f"bounding box values must be finite numbers, not {values!r}")
        if not (-180.0 <= self.west < self.east <= 180.0):
            raise ValueError(f"need -180 <= west < east <= 180, got west={self.west} east={self.east}")
        if not (-90.0 <= self.south < self.north <= 90.0):
            raise ValueError(f"need -90 <= south < north <= 90, got south={self.south} north={self.north}")

    @property
    def area_deg2(self) -> float:
        """Area in square degrees (what the transaction estimate scales with)."""
        return (self.east - self.west) * (self.north - self.south)

    @property
    def is_world(self) -> bool:
        """True for the whole globe, which the API spells ``world``."""
        return (self.west, self.south, self.east, self.north) == (-180.0, -90.0, 180.0, 90.0)

    def __str__(self) -> str:
        if self.is_world:
            return "world"
        return ",".join(_format_degrees(v) for v in (self.west, self.south, self.east, self.north))


def _format_degrees(value: float) -> str:
    """Shortest fixed-point form (``124.3``, ``43``): no exponent, no ``-0``, at most 6 decimals (~0.1 m)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


WORLD: Final = BBox(-180.0, -90.0, 180.0, 90.0)

CHANGCHUN_BBOX: Final = BBox(124.3, 43.0, 127.1, 45.3)
"""Changchun's extent plus a margin (reference S1: derive it from the boundary + 10 km buffer)."""


@dataclass(frozen=True, slots=True)
class AreaRequest:
    """One area-API request: a source, a box, DAY_RANGE days, and optionally the first day of the window.

    Without ``start_date`` FIRMS returns the most recent ``day_range`` days (today back to today − day_range + 1,
    UTC); with it, ``day_range`` days starting on that date (the API's ``DATE`` element).
    """

    source: Product
    bbox: BBox
    day_range: int
    start_date: date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Product(self.source))
        if isinstance(self.day_range, bool) or not isinstance(self.day_range, int):
            raise TypeError(f"day_range must be an int, not {type(self.day_range).__name__}")
        if not 1 <= self.day_range <= MAX_DAY_RANGE:
            raise ValueError(f"day_range must be 1-{MAX_DAY_RANGE} (FIRMS area API), not {self.day_range}")
        day = self.start_date
        if day is not None and (isinstance(day, datetime) or not isinstance(day, date)):
            raise TypeError("start_date must be a datetime.date (the API takes a calendar day), not a datetime")

    def path(self, map_key: str) -> str:
        """The API path with ``map_key`` in its place."""
        tail = "" if self.start_date is None else f"/{self.start_date:%Y-%m-%d}"
        return f"/api/area/csv/{map_key}/{self.source.value}/{self.bbox}/{self.day_range}{tail}"

    def describe(self) -> str:
        """The path with the key masked: safe for logs, errors and ``source_name``."""
        return self.path(REDACTED)


def estimate_transactions(request: AreaRequest) -> int:
    """How many FIRMS transactions a request is charged, estimated pessimistically.

    FIRMS counts *transactions*, not requests: a small request is one, and "large areas and multi-day ranges
    cost several" (reference §3.2 and closed-loop §5.2, after the api-evangelist rate-limit description), but the
    formula is not published and the server's count depends on its resource use. So this charges one
    transaction per day of the window per started 10° × 10° tile of the box: the Changchun box with DAY_RANGE 2
    costs 2, the world for 5 days 3,240. Over-counting only makes the poller wait earlier; under-counting
    would get the key suspended. The real count can be read back with :meth:`FirmsPoller.sync_budget`, and
    a deployment that learns the true formula passes its own function as ``transaction_cost``.
    """
    tiles = max(1, math.ceil(request.bbox.area_deg2 / ESTIMATE_TILE_DEG2 - 1e-9))
    return request.day_range * tiles


class TransactionBudget:
    """Sliding-window transaction limiter: at most ``limit`` transactions in any ``window_s`` seconds.

    A sliding window (every charge expires exactly ``window_s`` after it was made), not fixed buckets, because
    FIRMS's window is rolling: with buckets, a burst at the end of one bucket and another at the start of the
    next would put up to twice the limit inside one real 10-minute span. The clock is injectable so tests
    advance time instead of sleeping; it must be monotonic (``time.monotonic`` by default), never wall time,
    which can jump. Thread-safe.
    """

    def __init__(
        self,
        limit: int = DEFAULT_TRANSACTION_BUDGET,
        window_s: float = FIRMS_TRANSACTION_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, not {limit!r}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be positive, not {window_s!r}")
        self.limit = limit
        self.window_s = float(window_s)
        self._clock = clock
        self._charges: deque[tuple[float, int]] = deque()
        self._used = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TransactionBudget(limit={self.limit}, window_s={self.window_s:g}, used={self.used()})"

    def _expire(self, now: float) -> None:
        # A charge made at t counts while now < t + window.
        charges = self._charges
        while charges and charges[0][0] <= now - self.window_s:
            self._used -= charges.popleft()[1]

    def used(self) -> int:
        """Transactions charged in the current window."""
        with self._lock:
            self._expire(self._clock())
            return self._used

    def remaining(self) -> int:
        """Transactions that can be charged now without waiting."""
        return self.limit - self.used()

    def _wait_locked(self, cost: int, now: float) -> float:
        if self._used + cost <= self.limit:
            return 0.0
        excess = self._used + cost - self.limit
        for charged_at, charged in self._charges:
            excess -= charged
            if excess <= 0:
                return charged_at + self.window_s - now
        raise AssertionError("unreachable: cost <= limit was checked")  # pragma: no cover

    def wait_time(self, cost: int) -> float:
        """Seconds until ``cost`` transactions fit; 0.0 when they fit now."""
        self._check_cost(cost)
        with self._lock:
            now = self._clock()
            self._expire(now)
            return self._wait_locked(cost, now)

    def try_charge(self, cost: int) -> float:
        """Charge ``cost`` if it fits now and return 0.0; otherwise charge nothing and return the wait."""
        self._check_cost(cost)
        with self._lock:
            now = self._clock()
            self._expire(now)
            wait = self._wait_locked(cost, now)
            if wait == 0.0:
                self._charges.append((now, cost))
                self._used += cost
            return wait

    def saturate(self) -> None:
        """Fill the window now, because FIRMS said the key's limit is exhausted.

        FIRMS's count includes what other clients of the same key spent, which this process cannot see, so the
        only safe assumption is that the window is full from this moment: nothing is sent for ``window_s``.
        """
        with self._lock:
            now = self._clock()
            self._expire(now)
            if self._used < self.limit:
                self._charges.append((now, self.limit - self._used))
                self._used = self.limit

    def reconcile(self, server_count: int) -> None:
        """Raise the local count to FIRMS's own (``current_transactions`` of the key-status endpoint).

        The difference is charged *now*, so it expires later than the server's charges really do: the local
        view stays at or above the server's, never below.
        """
        if server_count < 0:
            raise ValueError(f"server_count must be >= 0, not {server_count}")
        with self._lock:
            now = self._clock()
            self._expire(now)
            missing = min(server_count, self.limit) - self._used
            if missing > 0:
                self._charges.append((now, missing))
                self._used += missing

    def _check_cost(self, cost: int) -> None:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise ValueError(f"cost must be a positive int, not {cost!r}")
        if cost > self.limit:
            raise ValueError(f"a request costing {cost} transactions can never fit a budget of {self.limit}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for failures that another try can fix.

    The delay before retry *n* (1-based) is ``min(max_delay_s, base_delay_s · 2^(n−1))``, of which the fraction
    ``jitter`` is drawn at random: many installations poll on the same quarter-hour schedule, and without jitter
    their retries after a FIRMS outage would arrive in lockstep.

    Attributes:
        attempts: requests per source and cycle, the first included (1 = no retry).
        timeout_attempts: of those, how many may end in a timeout (no answer within ``timeout_s``, or an answer
            abandoned as a trickle) before the source gives up. A refused connection or a 503 costs milliseconds and
            is worth every attempt; a server that accepted the request and let it time out costs a whole timeout
            each time and seldom answers the next one, so by default it is asked twice, not four times.
    """

    attempts: int = 4
    base_delay_s: float = 2.0
    max_delay_s: float = 60.0
    jitter: float = 0.5
    timeout_attempts: int = 2

    def __post_init__(self) -> None:
        for name in ("attempts", "timeout_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, not {value!r}")
        if not (0 <= self.base_delay_s <= self.max_delay_s) or not math.isfinite(self.max_delay_s):
            raise ValueError("need 0 <= base_delay_s <= max_delay_s < inf")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], not {self.jitter!r}")

    def delay_s(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
        if retry < 1:
            raise ValueError(f"retry must be >= 1, not {retry}")
        nominal = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(retry - 1, 62))
        return nominal * (1.0 - self.jitter) + nominal * self.jitter * rng.random()


@dataclass(frozen=True, slots=True)
class SourceResult:
    """What one request yielded: hotspots and rejected rows, or the error that stopped it.

    Attributes:
        request: what was asked.
        hotspots: valid detections, in file order (empty on error).
        rejected: rows the reader skipped, with line and reason.
        error: ``None`` on success; otherwise the :class:`~satellite.errors.FirmsError` that ended the request.
        attempts: requests actually sent (0 when the budget or a key-wide error stopped it before sending).
        transactions: transactions charged to the budget for them.
    """

    request: AreaRequest
    hotspots: list[Hotspot]
    rejected: list[RejectedRow]
    error: FirmsError | None
    attempts: int
    transactions: int

    @property
    def source(self) -> Product:
        """The FIRMS source requested."""
        return self.request.source

    @property
    def ok(self) -> bool:
        """True when the source answered with CSV."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class PollResult:
    """One poll cycle over every configured source.

    Attributes:
        started_utc, finished_utc: when the cycle ran (tz-aware UTC).
        results: one :class:`SourceResult` per source, in the configured order.
    """

    started_utc: datetime
    finished_utc: datetime
    results: dict[Product, SourceResult]

    @property
    def hotspots(self) -> dict[Product, list[Hotspot]]:
        """Hotspots per source (sources that failed map to an empty list)."""
        return {source: result.hotspots for source, result in self.results.items()}

    def all_hotspots(self) -> list[Hotspot]:
        """Every hotspot of the cycle once, by :attr:`~satellite.hotspot.Hotspot.key`, in source order."""
        seen: set[str] = set()
        out: list[Hotspot] = []
        for result in self.results.values():
            for hotspot in result.hotspots:
                key = hotspot.key
                if key not in seen:
                    seen.add(key)
                    out.append(hotspot)
        return out

    @property
    def rejected(self) -> list[RejectedRow]:
        """Rejected rows of every source."""
        return [row for result in self.results.values() for row in result.rejected]

    @property
    def errors(self) -> dict[Product, FirmsError]:
        """The sources that failed, with their error."""
        return {s: r.error for s, r in self.results.items() if r.error is not None}

    @property
    def ok(self) -> bool:
        """True when every source answered."""
        return not self.errors

    @property
    def transactions(self) -> int:
        """Transactions charged in this cycle."""
        return sum(result.transactions for result in self.results.values())


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """FIRMS's own view of the key (``/mapserver/mapkey_status/``)."""

    current_transactions: int
    transaction_limit: int
    transaction_interval: str


class _MapKeyTransport(httpx.BaseTransport):
    """Swaps the real MAP_KEY for the ``***`` placeholder on a private copy of each outgoing request.

    Everything above this transport — the client, its log line, the request attached to its exceptions and
    responses — only ever holds the placeholder URL.
    """

    def __init__(self, inner: httpx.BaseTransport, key: str) -> None:
        self._inner = inner
        self._key = key.encode("ascii")

    def __repr__(self) -> str:
        return f"_MapKeyTransport(inner={type(self._inner).__name__}, key={REDACTED!r})"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw_path = request.url.raw_path
        placeholder = REDACTED.encode("ascii")
        if placeholder in raw_path:
            raw_path = raw_path.replace(b"/" + placeholder + b"/", b"/" + self._key + b"/")
            raw_path = raw_path.replace(b"MAP_KEY=" + placeholder, b"MAP_KEY=" + self._key)
        outgoing = httpx.Request(
            request.method,
            request.url.copy_with(raw_path=raw_path),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return self._inner.handle_request(outgoing)

    def close(self) -> None:
        self._inner.close()


class _RetryableError(Exception):
    """Internal: this attempt failed in a way another attempt may fix.

    Attributes:
        reason: what went wrong, for the log and the final error (never holds the key).
        slow: the attempt cost a whole timeout (no answer in time, or an answer abandoned as a trickle): counted
            against :attr:`RetryPolicy.timeout_attempts`.
        retry_after: the server's ``Retry-After`` in seconds, when it sent a valid one (503, 429).
        final: the error to report instead of a transport error if this is the last attempt (a 429's
            :class:`~satellite.errors.FirmsRateLimitError`).
    """

    def __init__(
        self,
        reason: str,
        *,
        slow: bool = False,
        retry_after: float | None = None,
        final: FirmsApiError | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.slow = slow
        self.retry_after = retry_after
        self.final = final


class FirmsPoller:
    """Fetches FIRMS area-API CSV for a set of sources over one box.

    Args:
        map_key: the FIRMS MAP_KEY (``str`` or ``pydantic.SecretStr``); letters and digits only.
        base_url: scheme, host and optional port (and path prefix) of the API; tests point it at a local server.
        sources: FIRMS ``SOURCE`` values to poll, in order (:data:`DEFAULT_SOURCES`).
        bbox: the area (:data:`CHANGCHUN_BBOX`).
        day_range: default DAY_RANGE, 1-5 (2: with polling every 15 min, each detection is seen in many cycles,
            so a cycle that fails loses nothing).
        timeout_s: connect/read/write/pool timeout per request: how long one network operation may wait.
        max_request_s: the stretch over which an answer's rate is judged, the first from sending the request: one
            that brought less than ``min_rate_bps`` is abandoned and retried (a stall that drips data never trips
            ``timeout_s``).
        min_rate_bps: the rate (bytes per second) at which an answer is still waited for, however long it takes:
            a large answer on a slow link is not a stall (0: any answer that keeps arriving).
        retry: backoff for retryable failures, and how many of a request's attempts may time out.
        source_deadline_s: how long one request (one source, or one back-fill window) may take across its attempts
            and the waits between them: a retry is made only when its wait plus one whole ``timeout_s`` still ends
            within it (see :meth:`fetch`).
        budget: the transaction limiter; share one between pollers that use the same key.
        max_budget_wait_s: how long a request may wait for room in the budget before it is reported as
            :class:`~satellite.errors.FirmsBudgetError` instead.
        transaction_cost: what a request is charged (:func:`estimate_transactions`).
        transport: the httpx transport underneath (the test seam); default ``httpx.HTTPTransport``.
        proxy: an HTTP(S) proxy URL for the default transport (environment proxy variables are not read).
        sleep: how to wait (backoff, ``Retry-After``, budget); tests pass a recorder.
        rng: source of jitter; pass a seeded ``random.Random`` for reproducible delays.
        now: wall clock for :class:`PollResult` timestamps and for ``Retry-After`` given as an HTTP date.
        clock: monotonic clock for ``source_deadline_s`` and for when a ``Retry-After`` ends; a test that injects
            ``sleep`` passes a clock that the sleep advances.
    """

    def __init__(
        self,
        map_key: str | SecretValue,
        *,
        base_url: str = DEFAULT_BASE_URL,
        sources: Iterable[Product | str] = DEFAULT_SOURCES,
        bbox: BBox = CHANGCHUN_BBOX,
        day_range: int = 2,
        timeout_s: float = 30.0,
        max_request_s: float = DEFAULT_MAX_REQUEST_S,
        min_rate_bps: float = DEFAULT_MIN_RATE_BPS,
        retry: RetryPolicy | None = None,
        source_deadline_s: float = DEFAULT_SOURCE_DEADLINE_S,
        budget: TransactionBudget | None = None,
        max_budget_wait_s: float = 30.0,
        transaction_cost: Callable[[AreaRequest], int] = estimate_transactions,
        transport: httpx.BaseTransport | None = None,
        proxy: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key = map_key if isinstance(map_key, str) else map_key.get_secret_value()
        if not _KEY_RE.fullmatch(key):
            # Never echo the value: a near-miss of a real key is still most of the key.
            raise ValueError(f"MAP_KEY must be 8-128 ASCII letters and digits (got {len(key)} characters)")
        self._key = key
        self.base_url = _check_base_url(base_url, key)
        self.sources: tuple[Product, ...] = tuple(dict.fromkeys(Product(s) for s in sources))
        if not self.sources:
            raise ValueError("at least one source is needed")
        self.bbox = bbox
        AreaRequest(self.sources[0], bbox, day_range)  # validates day_range once, here
        self.day_range = day_range
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        if not (math.isfinite(source_deadline_s) and source_deadline_s > 0):
            raise ValueError(f"source_deadline_s must be positive, not {source_deadline_s!r}")
        self.source_deadline_s = float(source_deadline_s)
        if not (math.isfinite(max_request_s) and max_request_s > 0):
            raise ValueError(f"max_request_s must be positive, not {max_request_s!r}")
        self.max_request_s = float(max_request_s)
        if not (math.isfinite(min_rate_bps) and min_rate_bps >= 0):
            raise ValueError(f"min_rate_bps must be >= 0, not {min_rate_bps!r}")
        self.min_rate_bps = float(min_rate_bps)
        if not (math.isfinite(max_budget_wait_s) and max_budget_wait_s >= 0):
            raise ValueError(f"max_budget_wait_s must be >= 0, not {max_budget_wait_s!r}")
        self.retry = retry if retry is not None else RetryPolicy()
        self.budget = budget if budget is not None else TransactionBudget()
        self.max_budget_wait_s = float(max_budget_wait_s)
        self._cost = transaction_cost
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not cryptography
        self._now = now if now is not None else _utc_now
        self._clock = clock
        # When FIRMS's last Retry-After ends (on ``clock``): no request of this poller is sent before it.
        self._not_before = -math.inf
        # True from a timed-out attempt until the server answers anything again: a server that hung on one source
        # hangs on the next, so a request started meanwhile gets one timeout instead of ``timeout_attempts``.
        self._unanswered = False
        inner = transport if transport is not None else httpx.HTTPTransport(proxy=proxy)
        self._client = httpx.Client(
            transport=_MapKeyTransport(inner, key),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": _USER_AGENT, "Accept": "text/csv, text/plain;q=0.9, */*;q=0.1"},
        )

    def __repr__(self) -> str:
        sources = ",".join(s.value for s in self.sources)
        return (
            f"FirmsPoller(base_url={self.base_url!r}, sources={sources!r}, bbox={str(self.bbox)!r}, "
            f"day_range={self.day_range}, map_key={REDACTED!r})"
        )

    def __enter__(self) -> FirmsPoller:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def request_for(
        self, source: Product | str, *, day_range: int | None = None, start_date: date | None = None
    ) -> AreaRequest:
        """The :class:`AreaRequest` for ``source`` over this poller's box."""
        days = self.day_range if day_range is None else day_range
        return AreaRequest(Product(source), self.bbox, days, start_date)

    def poll_once(self, *, day_range: int | None = None, start_date: date | None = None) -> PollResult:
        """Fetch every configured source once; a failing source never stops the others.

        Only errors about the key itself (refused key, FIRMS's transaction limit) skip the remaining sources —
        they would fail the same way — and each skipped source reports that same error with 0 attempts. The error
        is logged once, by :meth:`fetch`; the skip adds one line naming the skipped sources, not the error again.
        """
        started = self._now()
        results: dict[Product, SourceResult] = {}
        key_wide: FirmsApiError | None = None
        for source in self.sources:
            request = self.request_for(source, day_range=day_range, start_date=start_date)
            if key_wide is not None:
                results[source] = SourceResult(request, [], [], key_wide, 0, 0)
                continue
            result = self.fetch(request)
            results[source] = result
            if isinstance(result.error, FirmsApiError) and result.error.key_wide:
                key_wide = result.error
                skipped = self.sources[self.sources.index(source) + 1 :]
                if skipped:
                    logger.warning(KEY_WIDE_SKIP_MESSAGE, ", ".join(s.value for s in skipped))
        return PollResult(started, self._now(), results)

    def fetch(self, request: AreaRequest) -> SourceResult:
        """Fetch one request, retrying what can be retried; errors are returned in the result, not raised.

        Each outcome is logged once: a retry as a warning when it is decided, the final error at ERROR (a budget
        error at WARNING), a success at INFO. How long it may take:

        * at most :attr:`RetryPolicy.attempts` requests, of which at most :attr:`RetryPolicy.timeout_attempts` may
          time out (one only when the server has not answered anything since an earlier attempt timed out);
        * the wait before a retry is FIRMS's ``Retry-After`` when a 503 or 429 carries a valid one (seconds or an
          HTTP date; a date in the past is 0), otherwise the policy's backoff. ``Retry-After`` holds for the whole
          poller: no request of it, for any source, is sent before it ends;
        * a retry is made only when its wait plus one whole ``timeout_s`` ends within :attr:`source_deadline_s`
          of the first request, so a longer ``Retry-After`` is not shortened but ends the request, and the
          sources after it report it without being sent (the next poll asks again). A 429 that cannot be waited
          for is FIRMS's transaction limit, as without ``Retry-After``;
        * an answer that is arriving is never cut by the deadline (``min_rate_bps`` judges it), so a request takes
          at most about ``source_deadline_s`` plus one attempt.
        """
        name = request.describe()
        cost = self._cost(request)
        started = self._clock()
        attempts = 0
        transactions = 0
        timeouts = 0
        timeout_limit = 1 if self._unanswered else self.retry.timeout_attempts
        failure: _RetryableError | None = None
        while True:
            now = self._clock()
            held = max(0.0, self._not_before - now)  # FIRMS's Retry-After, from this request or an earlier one
            wait = held
            if failure is not None:
                stop = ""
                if attempts >= self.retry.attempts:
                    stop = failure.reason
                elif failure.slow and timeouts >= timeout_limit:
                    plural = "s" if timeouts != 1 else ""
                    stop = f"{failure.reason}; not asked again after {timeouts} timed-out attempt{plural}"
                if not stop and not failure.retry_after:
                    # No Retry-After, or one of 0 / a date already past: the usual backoff (four requests within
                    # milliseconds would only meet the same 503)
                    wait = max(held, self.retry.delay_s(attempts, self._rng))
                if not stop and (now - started) + wait + self.timeout_s > self.source_deadline_s:
                    told = " (its Retry-After)" if failure.retry_after is not None else ""
                    stop = (
                        f"{failure.reason}; not retried: waiting {wait:.0f} s{told} and another attempt would take "
                        f"longer than the {self.source_deadline_s:g} s allowed per request"
                    )
                if stop:
                    return self._give_up(request, name, failure, stop, attempts, transactions)
                told = ", as FIRMS's Retry-After asks" if failure.retry_after is not None else ""
                logger.warning(
                    "%s: %s; retry %d of %d in %.1f s%s",
                    name,
                    failure.reason,
                    attempts,
                    self.retry.attempts - 1,
                    wait,
                    told,
                )
                self._sleep(wait)
            elif held > 0:
                if held + self.timeout_s > self.source_deadline_s:
                    error = FirmsTransportError(
                        source_name=name,
                        attempts=0,
                        reason=f"not sent: FIRMS's Retry-After asks for no request for another {held:.0f} s; "
                        f"waiting it and an attempt would take longer than the {self.source_deadline_s:g} s allowed "
                        "per request",
                    )
                    logger.error("%s", error)
                    return SourceResult(request, [], [], error, 0, 0)
                logger.info("%s: waiting %.1f s, as FIRMS's Retry-After asks", name, held)
                self._sleep(held)
            try:
                self._reserve(name, cost)
            except FirmsBudgetError as exc:
                logger.warning("%s", exc)
                return SourceResult(request, [], [], exc, attempts, transactions)
            attempts += 1
            transactions += cost
            try:
                result = self._attempt(request, name)
            except _RetryableError as exc:
                failure = exc
                if exc.slow:
                    timeouts += 1
                    self._unanswered = True  # until the server answers anything again (_attempt)
                if exc.retry_after is not None:
                    self._not_before = max(self._not_before, self._clock() + exc.retry_after)
                continue
            except FirmsError as exc:
                logger.error("%s", exc)
                return SourceResult(request, [], [], exc, attempts, transactions)
            hotspots, rejected = result
            logger.info(
                "%s: %d hotspots, %d rejected rows (%d attempt%s)",
                name,
                len(hotspots),
                len(rejected),
                attempts,
                "s" if attempts != 1 else "",
            )
            return SourceResult(request, hotspots, rejected, None, attempts, transactions)

    def _give_up(
        self, request: AreaRequest, name: str, failure: _RetryableError, reason: str, attempts: int, transactions: int
    ) -> SourceResult:
        """The result of a request that is not retried again, its error logged once."""
        error: FirmsError
        if failure.final is not None:  # a 429 not waited for: the key's transaction limit, as without Retry-After
            self.budget.saturate()
            error = failure.final
        else:
            error = FirmsTransportError(source_name=name, attempts=attempts, reason=reason)
        logger.error("%s", error)
        return SourceResult(request, [], [], error, attempts, transactions)

    def key_status(self) -> KeyStatus:
        """Ask FIRMS how many transactions the key has spent in the current window.

        One attempt, no budget charge (the status endpoint is not an area query). Raises
        :class:`~satellite.errors.FirmsError` subclasses on failure.
        """
        name = f"/mapserver/mapkey_status/?MAP_KEY={REDACTED}"
        try:
            response, body = self._get(self.base_url + name)
        except httpx.RequestError as exc:
            raise FirmsTransportError(source_name=name, attempts=1, reason=self._describe_exc(exc)) from None
        except _RetryableError as exc:
            raise FirmsTransportError(source_name=name, attempts=1, reason=str(exc)) from None
        text = body.decode("utf-8", errors="replace")
        try:
            data = json.loads(body) if response.status_code == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or "current_transactions" not in data:
            raise self._api_error(name, response.status_code, text)
        try:
            return KeyStatus(
                current_transactions=int(data["current_transactions"]),
                transaction_limit=int(data.get("transaction_limit", FIRMS_TRANSACTION_LIMIT)),
                transaction_interval=str(data.get("transaction_interval", "")),
            )
        except (TypeError, ValueError):
            raise self._api_error(name, response.status_code, text) from None

    def sync_budget(self) -> KeyStatus:
        """Read :meth:`key_status` and raise the local budget's count to FIRMS's if FIRMS counted more."""
        status = self.key_status()
        self.budget.reconcile(status.current_transactions)
        return status

    # --- internals ---------------------------------------------------------------------------------------

    def _reserve(self, name: str, cost: int) -> None:
        """Charge the budget, waiting (through the injectable sleep) up to ``max_budget_wait_s``."""
        waited = 0.0
        while True:
            wait = self.budget.try_charge(cost)
            if wait == 0.0:
                return
            if waited + wait > self.max_budget_wait_s:
                raise FirmsBudgetError(
                    source_name=name, cost=cost, wait_s=wait, limit=self.budget.limit, window_s=self.budget.window_s
                )
            logger.info("%s: waiting %.1f s for room in the transaction budget", name, wait)
            self._sleep(wait)
            waited += wait

    def _attempt(self, request: AreaRequest, name: str) -> tuple[list[Hotspot], list[RejectedRow]]:
        logger.debug("%s: GET", name)
        try:
            response, body = self._get(self.base_url + request.describe())
        except httpx.TimeoutException as exc:
            raise _RetryableError(f"timed out ({type(exc).__name__})", slow=True) from None
        except httpx.RequestError as exc:
            # Connection refused/reset, a body shorter than Content-Length (h11 raises RemoteProtocolError), a body
            # that does not decode as its Content-Encoding says (DecodingError, not a TransportError), ...
            raise _RetryableError(self._describe_exc(exc)) from None
        self._unanswered = False
        status = response.status_code
        # RFC 9110 §10.2.3: with 503 and 429 the server says how long to stay away.
        retry_after = (
            parse_retry_after(response.headers.get("retry-after"), self._now()) if status in (429, 503) else None
        )
        if status >= 500:
            told = f", Retry-After {retry_after:g} s" if retry_after is not None else ""
            raise _RetryableError(f"HTTP {status}{told}", retry_after=retry_after)
        if status == 429:
            error = self._api_error(name, status, body.decode("utf-8", errors="replace"), FirmsRateLimitError)
            if retry_after is not None:  # waited for if it fits the request's deadline (fetch)
                raise _RetryableError(f"HTTP 429, Retry-After {retry_after:g} s", retry_after=retry_after, final=error)
            self.budget.saturate()
            raise error
        if 300 <= status < 400:
            # Not followed: the Location of a redirect from FIRMS would hold the real key.
            raise FirmsApiError(f"unexpected redirect (HTTP {status}); not followed", source_name=name, status=status)
        if status >= 400:
            error = self._api_error(name, status, body.decode("utf-8", errors="replace"))
            if isinstance(error, FirmsRateLimitError):
                self.budget.saturate()
            raise error
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit():
            # Content-Length counts the bytes on the wire, before any Content-Encoding is undone.
            encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
            got = response.num_bytes_downloaded if encoded else len(body)
            if got < int(declared):
                raise _RetryableError(f"body shorter than Content-Length ({got} of {declared} bytes)")
        text = body.decode("utf-8", errors="replace").removeprefix("\ufeff")
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        first = next((line for line in lines if line.strip()), None)
        if first is None:  # nothing at all, or only a byte-order mark and (Unicode) spaces
            raise _RetryableError(f"empty body ({len(body)} bytes)" if body else "empty body")
        if not _looks_like_firms_header(first):
            error = self._api_error(name, status, text)
            if isinstance(error, FirmsRateLimitError):
                self.budget.saturate()
            raise error
        cut = _cut_row(body, lines, first)
        if cut is not None:
            raise _RetryableError(cut)
        parsed = read_firms_csv(body, source_name=name, product=request.source)
        return parsed.hotspots, parsed.rejected

    def _get(self, url: str) -> tuple[httpx.Response, bytes]:
        """GET ``url`` and read the whole (decoded) body, or raise ``_RetryableError`` when, over any stretch of
        :attr:`max_request_s` (the first from the request), it arrived more slowly than :attr:`min_rate_bps`.

        httpx's timeouts bound each network operation, not the request: a server that sends a few bytes inside
        every read timeout would hold the call for as long as it keeps doing so. A large answer on a slow link is
        no such stall: it is judged by its rate, not cut at a fixed time; and by its recent rate, so that an answer
        that stalls into a trickle after a good start is not carried for hours by its average.
        """
        started = time.monotonic()
        since, had = started, 0  # the start of the stretch being judged, and the bytes received before it
        with self._client.stream("GET", url) as response:
            chunks: list[bytes] = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                now = time.monotonic()
                if now - since > self.max_request_s:
                    got = response.num_bytes_downloaded
                    if got - had < self.min_rate_bps * (now - since):
                        raise _RetryableError(
                            f"answer arriving at under {self.min_rate_bps:g} bytes/s over {self.max_request_s:g} s "
                            f"({got} bytes in {now - started:.1f} s); abandoned",
                            slow=True,
                        )
                    since, had = now, got
        return response, b"".join(chunks)

    def _api_error(self, name: str, status: int, text: str, kind: type[FirmsApiError] | None = None) -> FirmsApiError:
        detail = " ".join(redact(text, self._key).split())[:_MAX_DETAIL]
        if kind is None:
            kind = _classify_error_text(detail)
            if kind is FirmsApiError and status in (401, 403):
                kind = FirmsAuthError
        shown = detail if detail else "(empty body)"
        return kind(
            f"FIRMS answered with an error instead of CSV (HTTP {status}): {shown!r}",
            source_name=name,
            status=status,
            detail=detail,
        )

    def _describe_exc(self, exc: Exception) -> str:
        text = redact(str(exc), self._key)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _utc_now() -> datetime:
    return datetime.now(UTC)


_DELAY_SECONDS_RE: Final = re.compile(r"[0-9]+")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or ``None`` when absent or unreadable.

    RFC 9110 §10.2.3 allows whole seconds (``120``) or an HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``, also the
    obsolete RFC 850 and asctime forms, read as UTC); a date is counted from ``now`` (tz-aware) and one already
    past is 0. Anything else (``-5``, ``1.5``, ``soon``) is ``None``: the caller falls back to its backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS_RE.fullmatch(text):
        digits = text.lstrip("0") or "0"  # "0005" is 5 s; the length check keeps int() off a huge string
        return float(MAX_RETRY_AFTER_S) if len(digits) > 9 else float(min(int(digits), MAX_RETRY_AFTER_S))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _check_base_url(base_url: str, key: str) -> str:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, not {redact(base_url, key)!r}")
    if url.query or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    return str(url).rstrip("/")


def _looks_like_firms_header(line: str) -> bool:
    """A FIRMS CSV header names ``latitude`` among comma-separated columns; error texts never do."""
    columns = {c.strip().strip('"').lower() for c in line.split(",")}
    return "latitude" in columns and "longitude" in columns


def _classify_error_text(text: str) -> type[FirmsApiError]:
    low = text.lower()
    # "MAP_KEY is invalid or your have exceeded your transaction/time limit" names both; either way the key is
    # unusable for now, and treating it as the limit makes the poller wait a window before asking again.
    if "transaction" in low and ("limit" in low or "exceed" in low):
        return FirmsRateLimitError
    if any(word in low for word in ("map_key", "mapkey", "map key", "api key", "unauthori")):
        return FirmsAuthError
    return FirmsApiError


def _cut_row(body: bytes, lines: list[str], header: str) -> str | None:
    """Why the body looks cut in the middle of a line, or ``None``.

    FIRMS ends every CSV with a newline. Without one, the last line is suspect: fewer fields than the header,
    or an empty last field (every FIRMS layout ends with a one-character column, ``daynight`` or ``type``, so
    a full-width row cut inside its last field has that field empty). A header alone without a newline is
    accepted only if it names every column the reader needs.
    """
    if body.endswith((b"\n", b"\r")):
        return None
    last = lines[-1]
    if last == header:
        try:
            read_firms_csv(body, source_name="<header>")
        except FirmsError:
            return f"body ends inside the header line ({len(body)} bytes)"
        return None
    width = header.count(",") + 1
    fields = last.count(",") + 1
    if fields < width or (fields == width and not last.rsplit(",", 1)[-1].strip()):
        return f"body cut in the middle of a row ({len(body)} bytes; last line has {fields} of {width} fields)"
    return None
