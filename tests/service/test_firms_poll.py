"""The service's FIRMS poller: one transaction budget for its key across poll cycles; bad settings are
configuration errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from satellite.poller import FirmsPoller, TransactionBudget
from service.config import Settings
from service.db import make_engine, make_session_factory, transaction, upgrade
from service.demo import load_demo
from service.errors import ConfigError
from service.firms_poll import make_poller, poll_and_ingest
from service.regions.service import RegionIndexCache
from tests.httpserver import http_receiver

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite database in ``tmp_path`` with the demo county."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    yield factory
    engine.dispose()


def test_the_budget_outlives_a_poll_cycle(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    """A poller (and its budget) was rebuilt every cycle: the sliding window, and FIRMS's "limit exceeded",
    were forgotten at each poll. The worker and `firms poll --loop` now pass one budget to every cycle's poller."""
    settings = Settings(data_dir=tmp_path, firms={"map_key": "0123456789abcdef0123456789abcdef"})
    budget = TransactionBudget()
    with factory() as session:
        first, second = make_poller(session, settings, budget), make_poller(session, settings, budget)
    assert first.budget is second.budget is budget
    budget.saturate()
    assert second.budget.try_charge(1) > 0  # the next cycle waits for the window FIRMS said was full


@pytest.mark.parametrize(
    ("firms", "message"),
    [
        ({"map_key": "abc-def"}, "firms.map_key: MAP_KEY must be 8-128 ASCII letters and digits"),
        ({"map_key": KEY, "bbox": [127.0, 43.0, 124.0, 45.0]}, "firms.bbox: need -180 <= west < east <= 180"),
        ({"map_key": KEY, "base_url": "ftp://firms.example"}, "firms.base_url: base_url must be an http(s) URL"),
    ],
)
def test_a_bad_firms_setting_is_a_configuration_error(
    tmp_path: Path, factory: sessionmaker[Session], firms: dict[str, object], message: str
) -> None:
    """A malformed MAP_KEY, box or base URL raised a bare ValueError from the poller: `strawfire firms poll` printed
    a Python traceback instead of the one-line configuration error the other settings give."""
    settings = Settings(data_dir=tmp_path, firms=firms)
    with factory() as session, pytest.raises(ConfigError) as caught:
        make_poller(session, settings)
    assert message in str(caught.value)
    assert "abc-def" not in str(caught.value)  # not even a near-miss of a key is echoed


def test_a_box_and_no_regions_is_refused_before_anything_is_fetched(tmp_path: Path) -> None:
    """The ingest refuses satellite data while no units are imported: a poll with a box but no regions fetched
    FIRMS every cycle (spending its transactions) only to be refused after. It is now refused before it fetches,
    unless screening.coverage_from_regions is off, the deliberate way to take every hotspot in the box."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    boxed = {"map_key": KEY, "bbox": [124.0, 43.0, 127.0, 45.0]}
    with factory() as session, pytest.raises(ConfigError, match=r"no regions imported: .* `strawfire regions import`"):
        make_poller(session, Settings(data_dir=tmp_path, firms=boxed))
    with factory() as session:
        poller = make_poller(
            session, Settings(data_dir=tmp_path, firms=boxed, screening={"coverage_from_regions": False})
        )
    assert poller is not None
    engine.dispose()


def test_rows_the_api_answer_rejects_are_reported_with_their_line(
    tmp_path: Path, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed row in an API answer was skipped with only a count in an INFO line of the poller: which row and
    why reached neither the poll summary nor any warning, so a FIRMS format change dropped detections unseen."""
    header = (
        "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
        "bright_ti5,frp,daynight\n"
    )
    good = "44.33000,125.55000,330.1,0.39,0.36,2025-10-20,510,N,VIIRS,n,2.0NRT,295.0,5.0,D\n"
    bad = "44.33300,125.55000,330.1,0.39,0.36,2025-10-20,510,N,VIIRS,maybe,2.0NRT,295.0,5.0,D\n"
    settings = Settings(data_dir=tmp_path, firms={"map_key": KEY, "sources": ["VIIRS_SNPP_NRT"]})
    with http_receiver() as firms:
        firms.respond = lambda request: (200, {}, (header + good + bad).encode())
        poller = FirmsPoller(KEY, base_url=firms.url, sources=["VIIRS_SNPP_NRT"], sleep=lambda s: None)
        with caplog.at_level(logging.WARNING), poller:
            summary = poll_and_ingest(factory, settings, RegionIndexCache(500), poller)
    assert summary.per_source == {"VIIRS_SNPP_NRT": 1}
    assert len(summary.rejected) == 1
    assert ":3: confidence: VIIRS confidence must be" in summary.rejected[0]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "rejected" in r.getMessage()]
    assert any(":3: confidence:" in message for message in warned)
    assert all(KEY not in message for message in [*summary.rejected, *warned])
