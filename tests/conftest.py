"""Shared fixtures: the real data folder, databases (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from service.config import Settings
from service.db import make_engine, upgrade

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
POSTGRES_URL = os.environ.get("STRAWFIRE_TEST_POSTGRES_URL")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a clear reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (../shared/data is not checked out)")
    return path


def without_alert_worker(settings: Settings) -> Settings:
    """``settings`` with the web process's own alert worker off, for tests of the API that move incidents
    themselves. The worker escalates a fire whose unit has no recipient at its next pass (every 5 s), so with it
    running an incident's state under test depended on whether the machine reached the next request within the
    pass: a CI run under load found "escalated" where the test moved "suspected" (a 409)."""
    return settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"run_worker": False})})


@pytest.fixture
def changchun_counties() -> Path:
    """Changchun's 11 counties, GeoJSON in GCJ-02."""
    return shared_path("boundaries", "220100_full.json")


def _reset_postgres(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: SQLite in a temp folder, or the test PostgreSQL server."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'test.sqlite3'}")
    else:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL not configured: set STRAWFIRE_TEST_POSTGRES_URL (.ci/run does)")
        eng = make_engine(POSTGRES_URL)
        _reset_postgres(eng)
    upgrade(eng)
    yield eng
    eng.dispose()
