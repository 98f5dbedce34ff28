"""Coordinates audit, incidents: the real FIRMS pixel at the edge of Changchun is an incident ``nearest``, not
``inside``, with its outside share, and still alerted; importing the province's cities after Changchun's counties
does not widen satellite coverage; ``incidents.link_buffer_m`` is metres in every direction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import select

from service.alerts.service import create_recipient
from service.alerts.tables import Alert, Channel
from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.fusion import FusionWindows, Located, ObservationIn, ObservationKind, linked_incidents
from service.incidents.states import Role
from service.main import create_app
from service.regions.crs import parse_crs
from service.regions.loader import read_units
from service.regions.service import import_units
from service.regions.types import RegionLevel
from tests.conftest import shared_path
from tests.incidents.test_incidents_api import PASSWORD, login, upload

GEOD = Geod(ellps="WGS84")
MODIS_NE = ("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")
JIUTAI = "220113"  # 九台区


def changchun_app(tmp_path: Path, *, with_cities: bool) -> Iterator[TestClient]:
    """The service with Changchun's counties (GCJ-02), optionally Jilin's cities after them, a device and an admin
    account, and a group bot for 九台区."""
    app = create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}))
    gcj02 = parse_crs("gcj02")
    with TestClient(app) as client:
        with transaction(app.state.session_factory) as session:
            units, report = read_units(
                shared_path("boundaries", "220100_full.json"), level=RegionLevel.COUNTY, crs=gcj02
            )
            import_units(session, units, level=RegionLevel.COUNTY, crs=gcj02, report=report)
            if with_cities:
                cities, report = read_units(
                    shared_path("boundaries", "220000_full.json"), level=RegionLevel.CITY, crs=gcj02
                )
                import_units(session, cities, level=RegionLevel.CITY, crs=gcj02, report=report)
            create_user(session, "admin", PASSWORD, Role.ADMIN, None)
            create_user(session, "cam01", PASSWORD, Role.DEVICE, None)
            create_recipient(
                session, name="九台区群", unit_code=JIUTAI, channel=Channel.WEBHOOK, target="https://x.test/h"
            )
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from changchun_app(tmp_path, with_cities=False)


@pytest.fixture
def client_with_cities(tmp_path: Path) -> Iterator[TestClient]:
    yield from changchun_app(tmp_path, with_cities=True)


def _incidents(client: TestClient) -> list[dict[str, Any]]:
    admin = login(client, "admin")
    listed = client.get("/api/v1/incidents", params={"limit": 1000}, headers=admin).json()
    return [client.get(f"/api/v1/incidents/{i['id']}", headers=admin).json() for i in listed]


@pytest.mark.shared_data
def test_the_real_pixel_at_the_edge_of_changchun_is_nearest_alerted_and_shows_its_outside_share(
    client: TestClient,
) -> None:
    """The audit's MODIS row (centred 558 m outside 九台区, 97.6 % of its 1.15 × 1.07 km outside) was an incident
    "inside" 九台区 at a certainty of 0.024. It is the eighth of the file's incidents: at the edge, still 九台区's to
    check, and marked so."""
    result = upload(client, login(client, "cam01"), shared_path(*MODIS_NE))
    assert (result["new"], result["held"], len(result["new_incidents"])) == (10, {"outside_coverage": 474}, 8)
    incidents = _incidents(client)
    assert len(incidents) == 8
    (edge,) = [i for i in incidents if i["assignment_status"] != "inside"]
    assert (edge["latitude"], edge["longitude"]) == (43.99067, 126.01398)
    assert (edge["assignment_status"], edge["county_code"]) == ("nearest", JIUTAI)
    assert edge["assignment_certainty"] == pytest.approx(0.024, abs=0.002)  # 九台区's share of the pixel
    (unit,) = [c for c in edge["assignment_candidates"] if c["code"]]
    (outside,) = [c for c in edge["assignment_candidates"] if c.get("outside")]
    assert (unit["code"], unit["share"]) == (JIUTAI, pytest.approx(0.024, abs=0.002))
    share = pytest.approx(0.976, abs=0.002)  # the part beyond every county
    assert outside == {"level": "county", "code": None, "name": None, "share": share, "outside": True}
    # Pixels wholly inside a county are inside, certain, and have no outside candidate.
    inside = [i for i in incidents if i is not edge and i["assignment_candidates"][0]["share"] == 1.0]
    assert inside
    assert all(i["assignment_status"] == "inside" for i in inside)
    assert all(not any(c.get("outside") for c in i["assignment_candidates"]) for i in inside)
    # Alerted to 九台区 as any fire: it may burn on its side of the boundary.
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert session.scalars(select(Alert).where(Alert.incident_id == edge["id"])).all()


@pytest.mark.shared_data
def test_cities_imported_after_the_counties_do_not_widen_satellite_coverage(client_with_cities: TestClient) -> None:
    """With Jilin's cities imported too, coverage was the cities' (the coarsest level): fires in 吉林市 and the
    other cities became incidents with no county, alerted to no one."""
    result = upload(client_with_cities, login(client_with_cities, "cam01"), shared_path(*MODIS_NE))
    assert (result["new"], result["held"], len(result["new_incidents"])) == (10, {"outside_coverage": 474}, 8)
    assert all(i["county_code"] for i in _incidents(client_with_cities))


# --- link_buffer_m ------------------------------------------------------------------------------------------------

AT = datetime(2025, 4, 23, 5, 14, tzinfo=UTC)


def _patrol(lat: float, lon: float, key: str) -> ObservationIn:
    return ObservationIn(
        kind=ObservationKind.PATROL,
        source_key=key,
        observed_at=AT,
        latitude=lat,
        longitude=lon,
        region=shapely.Point(lon, lat),
        confidence=0.99,
    )


def _linked(buffer_m: float, bearing_deg: float, apart_m: float) -> bool:
    lon, lat, _ = GEOD.fwd(125.5, 44.0, bearing_deg, apart_m)
    known = Located(1, ObservationKind.PATROL, AT - timedelta(minutes=10), shapely.Point(125.5, 44.0))
    new = _patrol(lat, lon, "new")
    return linked_incidents(new, [known], FusionWindows(buffer_m=buffer_m)) == [1]


@pytest.mark.parametrize("bearing_deg", [0.0, 90.0, 45.0])
def test_the_link_buffer_is_metres_in_every_direction(bearing_deg: float) -> None:
    """Two points are linked by a 250 m buffer up to 500 m apart, whichever way: north-south it had reached
    694 m at 44° N (metres converted with the cosine of the latitude in every direction)."""
    assert _linked(250.0, bearing_deg, 495.0)
    assert not _linked(250.0, bearing_deg, 505.0)
    assert not _linked(250.0, bearing_deg, 600.0)
