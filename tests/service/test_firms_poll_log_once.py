"""A refused MAP_KEY in the service's poll cycle: one request, one log line with the error, never the key.

Audit finding: the poller logged the error, then again with "skipping the remaining sources"; the back-fill logged
it a third time, the cycle's regular poll asked FIRMS again with the refused key (two more lines), and the web
process's summary line listed it once per source. The FIRMS stand-in is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from satellite.errors import FirmsAuthError
from satellite.poller import KEY_WIDE_SKIP_MESSAGE, TransactionBudget
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.firms_poll import POLL_NOT_SENT_MESSAGE, FirmsPollWorker, PollSummary, run_poll
from service.regions.service import RegionIndexCache
from service.status.service import firms_component, record_run
from service.status.tables import ComponentRun
from tests.httpserver import Recorded, http_receiver

KEY = "0123456789abcdef0123456789abcdef"
SOURCES = ["VIIRS_SNPP_NRT", "VIIRS_NOAA20_NRT", "MODIS_NRT"]
REFUSED = b"Invalid MAP_KEY."


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    return factory


def settings_for(tmp_path: Path, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        firms={"map_key": KEY, "base_url": url, "sources": SOURCES, "bbox": [125.4, 44.1, 125.9, 44.5]},
    )


class Refusing:
    """Answers every request as FIRMS answers a revoked key (status 200, a short text) and counts them."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        self.paths.append(request.path)
        return 200, {"Content-Type": "text/plain"}, REFUSED


def assert_logged_once_without_key(caplog: pytest.LogCaptureFixture) -> None:
    refused = [r for r in caplog.records if "Invalid MAP_KEY" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]
    assert refused[0].name == "satellite.poller"
    assert refused[0].levelno == logging.ERROR
    assert KEY not in caplog.text
    assert all(KEY not in r.getMessage() and KEY not in str(r.args) for r in caplog.records)


def poll_a_refusing_firms(tmp_path: Path, factory: sessionmaker[Session]) -> tuple[Refusing, PollSummary]:
    """One ``run_poll`` against a FIRMS that refuses the key: what it was asked, and the poll's summary."""
    with http_receiver() as firms:
        refusing = Refusing()
        firms.respond = refusing
        summary = run_poll(factory, settings_for(tmp_path, firms.url), RegionIndexCache(500), TransactionBudget())
    return refusing, summary


def test_a_refused_key_is_one_request_and_one_error_line(
    tmp_path: Path, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    refusing, summary = poll_a_refusing_firms(tmp_path, factory)
    assert len(refusing.paths) == 1
    assert set(summary.errors) == set(SOURCES)
    assert_logged_once_without_key(caplog)
    skipped = [r for r in caplog.records if r.msg == KEY_WIDE_SKIP_MESSAGE]
    assert [r.getMessage() for r in skipped] == [KEY_WIDE_SKIP_MESSAGE % "VIIRS_NOAA20_NRT, MODIS_NRT"]


def test_a_key_refused_in_the_back_fill_sends_no_regular_poll(
    tmp_path: Path, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """The back-fill's first window is refused: the regular poll would be refused the same way, so it is not sent,
    and every source reports the one error (recorded for the system status)."""
    with transaction(factory) as session:  # VIIRS_SNPP_NRT last succeeded 12 days ago: a back-fill is due
        record_run(session, firms_component(SOURCES[0]), at=datetime.now(UTC) - timedelta(days=12), ok=True)
    caplog.set_level(logging.DEBUG)
    refusing, summary = poll_a_refusing_firms(tmp_path, factory)
    assert len(refusing.paths) == 1
    assert len(refusing.paths[0].split("/")) == 9  # .../AREA/DAY_RANGE/DATE: the back-fill's window
    assert summary.backfill is not None
    assert isinstance(summary.backfill.key_error, FirmsAuthError)
    assert set(summary.errors) == set(SOURCES)
    assert set(summary.errors.values()) == {str(summary.backfill.key_error)}
    assert_logged_once_without_key(caplog)
    stopped = [r.getMessage() for r in caplog.records if "back-fill stopped at" in r.getMessage()]
    assert len(stopped) == 1
    assert "(the error above)" in stopped[0]
    assert [r for r in caplog.records if r.msg == POLL_NOT_SENT_MESSAGE]
    with factory() as session:
        rows = session.scalars(select(ComponentRun).where(ComponentRun.name.like("firms:%"))).all()
    assert {row.name: row.last_error is not None for row in rows} == {firms_component(s): True for s in SOURCES}
    assert all(KEY not in (row.last_error or "") for row in rows)


def test_the_web_process_summary_line_names_the_failed_sources_not_the_error_again(
    tmp_path: Path, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with http_receiver() as firms:
        firms.respond = Refusing()
        worker = FirmsPollWorker(factory, settings_for(tmp_path, firms.url), RegionIndexCache(500))

        class StopAfterOneCycle(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage().startswith("FIRMS poll:"):
                    worker._stop_event.set()  # the loop ends after this cycle, without waiting its interval

        handler = StopAfterOneCycle()
        logging.getLogger("strawfire.firms").addHandler(handler)
        try:
            worker.run()  # in this thread: one cycle
        finally:
            logging.getLogger("strawfire.firms").removeHandler(handler)
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("FIRMS poll:")]
    assert summaries == ["FIRMS poll: 0 new, 0 duplicate, failed sources: VIIRS_SNPP_NRT, VIIRS_NOAA20_NRT, MODIS_NRT"]
    assert_logged_once_without_key(caplog)
