"""Satellite data with no administrative units imported is refused, wherever it enters (file, upload, poll, scan)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from satellite.firms import read_firms_csv
from service.config import Settings
from service.db import make_session_factory, transaction
from service.errors import ConflictError
from service.flows import ingest_hotspots
from service.incidents.tables import Incident, Observation
from service.regions.service import RegionIndexCache
from tests.service.test_api import signed_in_device
from tests.service.test_fire_point_windows import ADMIN, FIRST, HEADER, LATER

#: A hotspot in Changchun and one on the other side of the Earth (Mato Grosso).
FIRES = HEADER + FIRST + LATER + "-12.50000,-55.70000,340.0,0.39,0.36,2025-10-20,1710,N20,VIIRS,n,2.0NRT,296.0,9.0,D\n"


def test_hotspots_with_no_units_imported_are_refused_and_nothing_is_stored(engine: Engine) -> None:
    """The coverage test was skipped when no units were imported: a global FIRMS day (16,017 rows) became 8,673
    incidents with no township, silently, and importing the regions later did not fix them."""
    factory = make_session_factory(engine)
    hotspots = read_firms_csv(FIRES).hotspots
    with (
        pytest.raises(ConflictError, match=r"no administrative units are imported.*`strawfire regions import`"),
        transaction(factory) as session,
    ):
        ingest_hotspots(session, hotspots, indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Observation)) == 0
        assert session.scalar(select(func.count()).select_from(Incident)) == 0


def test_coverage_from_regions_off_is_the_deliberate_way_to_take_every_hotspot(engine: Engine) -> None:
    factory = make_session_factory(engine)
    settings = Settings(screening={"coverage_from_regions": False})
    with transaction(factory) as session:
        summary = ingest_hotspots(
            session, read_firms_csv(FIRES).hotspots, indexes=RegionIndexCache(500), settings=settings, actor=ADMIN
        )
    assert summary.new == 3


@pytest.fixture
def device_client(tmp_path: Path) -> Iterator[TestClient]:
    """The service on an empty database (no DEMO region), signed in as a device."""
    yield from signed_in_device(Settings(data_dir=tmp_path / "var", demo=False))


def test_an_upload_with_no_units_imported_is_a_409_that_says_what_to_do(device_client: TestClient) -> None:
    response = device_client.post(
        "/api/v1/observations/satellite", files={"file": ("fires.csv", FIRES.encode(), "text/csv")}
    )
    assert response.status_code == 409, response.text
    assert "no administrative units are imported" in response.json()["detail"]
    assert "strawfire regions import" in response.json()["detail"]
