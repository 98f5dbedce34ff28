"""FIRMS back-fill: a service down longer than the poll's day range fetches the days it missed, in dated windows.

The FIRMS stand-in is a real HTTP server on 127.0.0.1 that answers the area API like FIRMS: one VIIRS row per day of
the window asked for (``/{DAY_RANGE}`` = the last DAY_RANGE days, ``/{DAY_RANGE}/{DATE}`` = DAY_RANGE days from
DATE), at a place and minute of its own per day, so every day's detection is one row with one key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import sleep

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from satellite.firms import read_firms_csv
from satellite.poller import TransactionBudget
from service.auth.service import SYSTEM
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.firms_poll import run_poll
from service.flows import ingest_hotspots
from service.incidents.tables import Observation
from service.regions.service import RegionIndexCache
from service.status.service import firms_component, record_run
from service.status.tables import ComponentRun
from tests.httpserver import Recorded, http_receiver
from tests.service.test_firms_poll import KEY

HEADER = (
    "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
    "bright_ti5,frp,daynight\n"
)
SOURCE = "VIIRS_SNPP_NRT"


@pytest.fixture(autouse=True)
def _not_across_midnight() -> None:
    """These tests take "today" from the clock, and so does the poll they run (``run_poll`` reads it itself: it has
    no clock to inject): a test begun in the last two minutes before midnight UTC starts just after it instead,
    rather than ask for windows of one day and be answered for the next."""
    to_midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(), UTC) - datetime.now(UTC)
    if to_midnight < timedelta(minutes=2):
        sleep(to_midnight.total_seconds() + 1)


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    """The DEMO county on SQLite and, when configured, PostgreSQL (progress is written in the ingest's transaction)."""
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    return factory


def row(day: date) -> str:
    """The stand-in's one detection on ``day``: inside the DEMO county, a place and minute of its own per day."""
    n = day.toordinal()
    latitude, longitude = 44.16 + (n % 15) * 0.015, 125.52 + (n % 4) * 0.06
    minute = (n % 24) * 100 + n % 60  # HHMM
    if day >= datetime.now(UTC).date():
        minute = 0  # today's detection has been made already: a later time of today is refused as in the future
    return f"{latitude:.5f},{longitude:.5f},330.1,0.39,0.36,{day:%Y-%m-%d},{minute},N,VIIRS,n,2.0NRT,295.0,5.0,D\n"


def window(request: Recorded) -> tuple[str, int, date | None]:
    """Source, DAY_RANGE and DATE of an area-API path."""
    parts = request.path.split("/")  # '', api, area, csv, KEY, SOURCE, AREA, DAY_RANGE[, DATE]
    return parts[5], int(parts[7]), date.fromisoformat(parts[8]) if len(parts) > 8 else None


def firms_stand_in(today: date, fail: Callable[[date | None], bool] = lambda start: False) -> Callable[..., object]:
    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        _, days, start = window(request)
        if fail(start):
            return 400, {"Content-Type": "text/plain"}, b"Invalid date parameter."
        first = start if start is not None else today - timedelta(days=days - 1)
        days_asked = (first + timedelta(days=i) for i in range(days))
        body = HEADER + "".join(row(day) for day in days_asked if day <= today)
        return 200, {"Content-Type": "text/csv"}, body.encode()

    return respond


def settings_for(tmp_path: Path, url: str, **firms: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        firms={"map_key": KEY, "base_url": url, "sources": [SOURCE], "bbox": [125.4, 44.1, 125.9, 44.5], **firms},
    )


def last_success(factory: sessionmaker[Session], source: str, at: datetime) -> None:
    """The source's status row as a poll that succeeded at ``at`` left it (before back-fill progress existed)."""
    with transaction(factory) as session:
        record_run(session, firms_component(source), at=at, ok=True, detail={"hotspots": 0})


def stored_days(factory: sessionmaker[Session]) -> list[date]:
    with factory() as session:
        times = session.scalars(select(Observation.observed_at).where(Observation.kind == "satellite")).all()
    return sorted(t.astimezone(UTC).date() for t in times)


def resume_from(factory: sessionmaker[Session], source: str) -> str:
    with factory() as session:
        detail = session.scalar(select(ComponentRun.detail).where(ComponentRun.name == firms_component(source)))
    return str(json.loads(detail or "{}").get("resume_from"))


def test_days_missed_in_an_outage_are_fetched_oldest_first_and_none_twice(
    tmp_path: Path,
    factory: sessionmaker[Session],
) -> None:
    """The service was down 12 days with DAY_RANGE 2: the polls after it fetched the last 2 days only, and the 10
    days in between were never asked for."""
    now = datetime.now(UTC)
    today = now.date()
    last_success(factory, SOURCE, now - timedelta(days=12))
    with transaction(factory) as session:  # the last poll before the outage had the first day's detection
        before = read_firms_csv((HEADER + row(today - timedelta(days=13))).encode(), source_name="before").hotspots
        settings = Settings(data_dir=tmp_path)
        ingest_hotspots(session, before, indexes=RegionIndexCache(500), settings=settings, actor=SYSTEM)
    with http_receiver() as firms:
        firms.respond = firms_stand_in(today)
        settings = settings_for(tmp_path, firms.url)
        summary = run_poll(factory, settings, RegionIndexCache(500), TransactionBudget())
        asked = [window(r) for r in firms.received()]
        again = run_poll(factory, settings, RegionIndexCache(500), TransactionBudget())
        asked_again = [window(r) for r in firms.received()][len(asked) :]

    # From the day before the last success (a late-published pass) to the regular window, 5 days at most each.
    assert asked == [
        (SOURCE, 5, today - timedelta(days=13)),
        (SOURCE, 5, today - timedelta(days=8)),
        (SOURCE, 2, today - timedelta(days=3)),
        (SOURCE, 2, None),  # the regular poll: yesterday and today
    ]
    assert stored_days(factory) == [today - timedelta(days=i) for i in range(13, -1, -1)]  # every day, once
    assert summary.new == 13
    assert summary.duplicates == 1  # the day stored before the outage
    assert summary.backfill is not None
    assert summary.backfill.windows == {
        SOURCE: [f"{today - timedelta(days=d)}+{n}" for d, n in ((13, 5), (8, 5), (3, 2))]
    }
    assert resume_from(factory, SOURCE) == "None"  # caught up: the next back-fill starts from the last success
    assert asked_again == [(SOURCE, 2, None)]  # caught up: the next cycle back-fills nothing
    assert again.new == 0


def test_a_back_fill_that_stops_resumes_where_it_stopped(
    tmp_path: Path,
    factory: sessionmaker[Session],
) -> None:
    """A window that fails (or a crash) must not be covered over by the regular poll that succeeds after it: its
    success would have marked the source as caught up, and the days from the failed window on were lost."""
    now = datetime.now(UTC)
    today = now.date()
    broken = today - timedelta(days=8)
    last_success(factory, SOURCE, now - timedelta(days=12))
    with http_receiver() as firms:
        firms.respond = firms_stand_in(today, fail=lambda start: start == broken)
        settings = settings_for(tmp_path, firms.url)
        first = run_poll(factory, settings, RegionIndexCache(500), TransactionBudget())
        asked = [window(r) for r in firms.received()]  # a 400 is not recorded by the receiver
        assert first.backfill is not None
        assert first.backfill.pending == {SOURCE: broken}
        assert "Invalid date parameter" in first.backfill.errors[SOURCE]
        assert KEY not in first.backfill.errors[SOURCE]
        assert resume_from(factory, SOURCE) == str(broken)  # not yesterday: the regular poll succeeded, but ...
        assert stored_days(factory) == [today - timedelta(days=i) for i in (13, 12, 11, 10, 9, 1, 0)]

        firms.respond = firms_stand_in(today)  # FIRMS answers again
        run_poll(factory, settings, RegionIndexCache(500), TransactionBudget())
        asked_after = [window(r) for r in firms.received()][len(asked) :]

    assert asked == [(SOURCE, 5, today - timedelta(days=13)), (SOURCE, 2, None)]
    assert asked_after == [(SOURCE, 5, broken), (SOURCE, 2, today - timedelta(days=3)), (SOURCE, 2, None)]
    assert stored_days(factory) == [today - timedelta(days=i) for i in range(13, -1, -1)]
    assert resume_from(factory, SOURCE) == "None"


def test_back_fill_reaches_back_at_most_the_configured_days_and_never_for_a_new_source(
    tmp_path: Path,
    factory: sessionmaker[Session],
) -> None:
    now = datetime.now(UTC)
    today = now.date()
    last_success(factory, SOURCE, now - timedelta(days=60))
    with http_receiver() as firms:
        firms.respond = firms_stand_in(today)
        settings = settings_for(tmp_path, firms.url, sources=[SOURCE, "MODIS_NRT"], backfill_max_days=12)
        summary = run_poll(factory, settings, RegionIndexCache(500), TransactionBudget())
        asked = [window(r) for r in firms.received()]
    assert asked == [
        (SOURCE, 5, today - timedelta(days=12)),
        (SOURCE, 5, today - timedelta(days=7)),
        (SOURCE, 1, today - timedelta(days=2)),
        (SOURCE, 2, None),
        ("MODIS_NRT", 2, None),  # never polled before: its past is history to import, not to back-fill
    ]
    assert summary.backfill is not None
    assert summary.backfill.skipped == {SOURCE: (today - timedelta(days=61), today - timedelta(days=13))}
    with factory() as session:
        count = session.scalar(select(func.count()).select_from(Observation))
    assert count == 13  # today - 12 .. today, once each (the same rows under MODIS_NRT are duplicates)
