"""Coordinates audit, patrol reports (SQLite and PostgreSQL): coordinates typed from a phone map say their system
(``crs``: GCJ-02 from Amap/WeChat, BD-09 from Baidu) and are converted to WGS-84; the outside-area rule tests the
position itself, not its accuracy circle.

Townships (boxes, tests/stats/scenario.py): 东镇 229901001 (125.0–125.1 E) and 西镇 229901002 (125.1–125.2 E),
44.0–44.1 N. The fire is at 44.05 N 125.097 E in 东镇, 240 m from 西镇; its GCJ-02 form is 550 m east, in 西镇.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prcoords
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod

from service.regions.crs import wgs84_to_gcj02
from tests.incidents.test_patrol_reports import USERS, events, login, report, reported
from tests.stats.patrol_found import DATABASES, empty_database_url, patrol_app
from tests.stats.scenario import EAST, WEST

GEOD = Geod(ellps="WGS84")
FIRE = (44.05, 125.097)  # (lat, lon), WGS-84, in 东镇
_gcj_lon, _gcj_lat = wgs84_to_gcj02(FIRE[1], FIRE[0])
FIRE_GCJ02 = (round(_gcj_lat, 6), round(_gcj_lon, 6))  # what Amap shows for it: in 西镇 if read as WGS-84
_bd = prcoords.wgs_bd(prcoords.Coords(FIRE[0], FIRE[1]))
FIRE_BD09 = (round(_bd.lat, 6), round(_bd.lon, 6))


@pytest.fixture(params=DATABASES)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    with patrol_app(tmp_path / "var", empty_database_url(request.param), USERS) as test_client:
        yield test_client


def _patrol_observations(client: TestClient, incident: int) -> list[dict[str, Any]]:
    detail = client.get(f"/api/v1/incidents/{incident}", headers=login(client, "admin")).json()
    return [o for o in detail["observations"] if o["kind"] == "patrol"]


def _patrol_observation(client: TestClient, incident: int) -> dict[str, Any]:
    (observation,) = _patrol_observations(client, incident)
    return observation


def test_coordinates_typed_from_a_phone_map_are_converted_to_wgs84(client: TestClient) -> None:
    """The audit's case: a 九台区 patrol typing Amap's 44.370271, 125.827113 had its fire placed 550–600 m off, in
    德惠市. Here: 东镇's fire typed from Amap lands in 东镇, and from Baidu too."""
    assert GEOD.inv(FIRE[1], FIRE[0], FIRE_GCJ02[1], FIRE_GCJ02[0])[2] > 500  # the offset the field guards against
    first = reported(client, "east", FIRE_GCJ02, crs="gcj02", accuracy_m=None, report_id="r-gcj")
    assert (first["township_code"], first["taken_on"], first["alerted"]) == (EAST, True, False)
    # Baidu's numbers for the same fire join it: the same place, to under a metre.
    again = reported(client, "east", FIRE_BD09, crs="bd09", accuracy_m=None, report_id="r-bd")
    assert (again["township_code"], again["incident_id"]) == (EAST, first["incident_id"])
    observations = _patrol_observations(client, first["incident_id"])
    for crs, where in (("gcj02", FIRE_GCJ02), ("bd09", FIRE_BD09)):
        (observation,) = [o for o in observations if o["details"].get("crs") == crs]
        assert GEOD.inv(FIRE[1], FIRE[0], observation["longitude"], observation["latitude"])[2] < 0.5, crs
        assert observation["details"]["position_as_sent"] == f"{where[0]}, {where[1]}"
    # The same numbers sent as WGS-84 (the default) are 西镇's: the system matters.
    plain = reported(client, "east", FIRE_GCJ02, accuracy_m=None, report_id="r-plain")
    assert plain["township_code"] == WEST
    assert "crs" not in _patrol_observation(client, plain["incident_id"])["details"]
    # CGCS2000 is GPS's datum: taken as it is.
    national = reported(client, "west", (44.05, 125.15), crs="cgcs2000", report_id="r-cgcs")
    assert _patrol_observation(client, national["incident_id"])["latitude"] == pytest.approx(44.05, abs=1e-7)


def test_a_fix_in_gcj02_places_the_on_site_position_where_the_team_is(client: TestClient) -> None:
    """A phone app that sends its fix in GCJ-02 with an accuracy: the on-site position is the converted one (it had
    read the unconverted numbers, 550 m from the fire it had just reported)."""
    out = reported(client, "east", FIRE_GCJ02, crs="gcj02", accuracy_m=10.0, report_id="r-fix")
    assert out["township_code"] == EAST
    on_site = [e for e in events(client, "east", out["incident_id"]) if e["to_state"] == "on_site"]
    position = on_site[0]["data"]["position"]
    assert (position["distance_m"], position["far_from_fire"]) == (0.0, False)
    assert position["latitude"] == pytest.approx(FIRE[0], abs=1e-6)


@pytest.mark.parametrize("crs", ["epsg:3857", "GCJ02", "", None])
def test_an_unknown_coordinate_system_is_refused_naming_the_field(client: TestClient, crs: str | None) -> None:
    response = report(client, "east", FIRE, crs=crs)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "crs"]]


def test_the_outside_area_rule_tests_the_position_not_its_accuracy_circle(client: TestClient) -> None:
    """A fix 800 m north of 西镇 with a 400 m accuracy was accepted: its circle came within the 500 m tolerance."""
    lon, lat, _ = GEOD.fwd(125.15, 44.1, 0.0, 800.0)
    far = report(client, "west", (lat, lon), accuracy_m=400.0, report_id="r-far")
    assert far.status_code == 422, far.text
    assert "in no imported township or county (nor within 500 m of one)" in far.json()["detail"]
    # Within the tolerance it is 西镇's (nearest), however precise.
    lon, lat, _ = GEOD.fwd(125.15, 44.1, 0.0, 450.0)
    near = reported(client, "west", (lat, lon), accuracy_m=5.0, report_id="r-near")
    assert near["township_code"] == WEST
    detail = client.get(f"/api/v1/incidents/{near['incident_id']}", headers=login(client, "west")).json()
    assert detail["assignment_status"] == "nearest"
