"""Fire again at the same place (repeat_at_site): the pure decision, and through the API on the demo region."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient

from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.demo import load_demo
from service.incidents.fusion import ObservationKind
from service.incidents.repeat_site import RepeatSiteRule, SiteFire, find_repeats, is_real_fire, site_distance_m
from service.incidents.states import IncidentState, Role
from service.main import create_app

T0 = datetime(2025, 10, 20, 3, 0, tzinfo=UTC)
K = ObservationKind
RULE = RepeatSiteRule()  # 800 m, 30 days


def pixel_fire(
    incident_id: int, lat: float, lon: float, days: float, *, real: bool = True, half: float = 0.0045
) -> SiteFire:
    """A fire located by a ~1 km satellite pixel centred at (lat, lon), first and last seen ``days`` after T0."""
    at = T0 + timedelta(days=days)
    region = shapely.box(lon - half * 1.4, lat - half, lon + half * 1.4, lat + half)
    return SiteFire(incident_id, at, at, lat, lon, K.SATELLITE, region, real)


def test_a_new_fire_near_an_earlier_real_one_within_the_season_repeats_it() -> None:
    earlier = pixel_fire(1, 44.300, 125.600, 0)
    again = pixel_fire(2, 44.301, 125.601, 5)  # pixels overlap: 0 m apart
    assert find_repeats([again], [earlier], RULE)[0].repeat_of == 1
    match = find_repeats([again], [earlier], RULE)[0]
    assert (match.incident_id, match.distance_m, match.days_after) == (2, 0.0, 5.0)
    # Regions ~700 m apart (centres ~1.7 km): within the 800 m gate; ~3 km apart: not.
    near = pixel_fire(3, 44.300 + 0.0152, 125.600, 5)
    assert 600 < site_distance_m(near, earlier) < 800
    assert [m.repeat_of for m in find_repeats([near], [earlier], RULE)] == [1]
    far = pixel_fire(4, 44.300 + 0.035, 125.600, 5)
    assert find_repeats([far], [earlier], RULE) == []


def test_only_earlier_real_fires_within_the_window_count() -> None:
    earlier = pixel_fire(1, 44.3, 125.6, 0)
    assert find_repeats([pixel_fire(2, 44.3, 125.6, 31)], [earlier], RULE) == []  # another season
    assert find_repeats([pixel_fire(2, 44.3, 125.6, 29)], [earlier], RULE) != []
    false_alarm = pixel_fire(1, 44.3, 125.6, 0, real=False)
    assert find_repeats([pixel_fire(2, 44.3, 125.6, 5)], [false_alarm], RULE) == []
    # A later fire is not what an earlier one repeats (files arrive out of order), nor is a fire itself.
    assert find_repeats([pixel_fire(2, 44.3, 125.6, 0)], [pixel_fire(1, 44.3, 125.6, 3)], RULE) == []
    itself = pixel_fire(2, 44.3, 125.6, 3)
    assert find_repeats([itself], [itself], RULE) == []
    assert find_repeats([pixel_fire(2, 44.3, 125.6, 3)], [earlier], RepeatSiteRule(window=timedelta(days=2))) == []


def test_the_latest_earlier_fire_is_the_one_repeated_and_a_batch_can_repeat_itself() -> None:
    first, second = pixel_fire(1, 44.3, 125.6, 0), pixel_fire(2, 44.3, 125.6, 4)
    third = pixel_fire(3, 44.3, 125.6, 9)
    matches = find_repeats([second, third], [first, second, third], RULE)
    assert [(m.incident_id, m.repeat_of) for m in matches] == [(2, 1), (3, 2)]


def test_a_camera_wedge_stands_for_its_point_only() -> None:
    """A single camera's wedge is kilometres long: its region would make every fire along it a repeat."""
    wedge = shapely.Polygon([(125.55, 44.25), (125.65, 44.31), (125.65, 44.32)])
    camera_fire = SiteFire(1, T0, T0, 44.25, 125.55, K.CAMERA, wedge)
    on_the_wedge = pixel_fire(2, 44.31, 125.64, 3)
    assert find_repeats([on_the_wedge], [camera_fire], RULE) == []
    at_its_point = pixel_fire(3, 44.25, 125.55, 3)
    assert [m.repeat_of for m in find_repeats([at_its_point], [camera_fire], RULE)] == [1]


def test_what_counts_as_a_real_fire() -> None:
    day = T0
    for state in (IncidentState.SUSPECTED, IncidentState.ON_SITE, IncidentState.VERIFIED, IncidentState.REOPENED):
        assert is_real_fire(state, fed_back_at=None, false_alarm_at=None)
    assert not is_real_fire(IncidentState.FALSE_ALARM, fed_back_at=day, false_alarm_at=day)
    assert is_real_fire(IncidentState.CLOSED, fed_back_at=day, false_alarm_at=None)
    assert not is_real_fire(IncidentState.CLOSED, fed_back_at=None, false_alarm_at=day)  # closed as a false alarm
    later = day + timedelta(hours=1)
    assert not is_real_fire(IncidentState.CLOSED, fed_back_at=day, false_alarm_at=later)  # county overruled it


# ----------------------------------------------------------------------------------------------------------------
# Through the API, on the demo county (125.50–125.80 E, 44.15–44.40 N).

PASSWORD = "correct horse battery"
MODIS_HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n"
)
SPOT = (44.3012, 125.6034)
FAR = (44.2203, 125.7121)  # ~11 km away, still in the demo county


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            load_demo(session)
            create_user(session, "admin", PASSWORD, Role.ADMIN, None)
        yield test_client


def upload_pixel(client: TestClient, headers: dict[str, str], tmp_path: Path, at: datetime, where: tuple) -> dict:
    lat, lon = where
    row = f"{lat},{lon},330.1,1.0,1.0,{at:%Y-%m-%d},{at:%H%M},T,80,6.1NRT,290.0,15.5,D\n"
    path = tmp_path / f"MODIS_{at:%Y%m%d%H%M}_{lat}_{lon}.csv"
    path.write_text(MODIS_HEADER + row, encoding="utf-8")
    with path.open("rb") as handle:
        response = client.post(
            "/api/v1/observations/satellite", headers=headers, files={"file": (path.name, handle, "text/csv")}
        )
    assert response.status_code == 200, response.text
    return response.json()


FED_BACK: list[tuple[str, dict[str, Any]]] = [
    ("acknowledged", {}),
    ("en_route", {}),
    ("on_site", {}),
    ("extinguished", {}),
    ("feedback", {"feedback": {"cause": "straw"}}),
]
"""A real fire handled by the township up to its feedback (反馈)."""


def move(client: TestClient, headers: dict[str, str], incident: int, steps: list[tuple[str, dict[str, Any]]]) -> None:
    for step, extra in steps:
        moved = client.post(f"/api/v1/incidents/{incident}/transitions", headers=headers, json={"to": step, **extra})
        assert moved.status_code == 200, moved.text


def test_fire_again_at_the_same_place_through_the_api(client: TestClient, tmp_path: Path) -> None:
    token = client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}).json()
    admin = {"Authorization": f"Bearer {token['access_token']}"}
    day0 = datetime(2025, 10, 20, 2, 45, tzinfo=UTC)

    first = upload_pixel(client, admin, tmp_path, day0, SPOT)
    (a,) = first["new_incidents"]
    # 12 h later, the incident still open: the next pass at the spot joins it (§2.4 step 3).
    later = upload_pixel(client, admin, tmp_path, day0 + timedelta(hours=12), SPOT)
    assert (later["new_incidents"], later["updated_incidents"]) == ([], [a])

    # The township handles it as a real fire; the county closes it (销号).
    move(client, admin, a, [*FED_BACK, ("verified", {}), ("closed", {})])

    # Four days later at the same place: a new incident, flagged with the earlier one's id.
    again = upload_pixel(client, admin, tmp_path, day0 + timedelta(days=4), SPOT)
    (b,) = again["new_incidents"]
    assert again["repeat_at_site"] == [b]
    detail = client.get(f"/api/v1/incidents/{b}", headers=admin).json()
    assert detail["repeat_of_incident_id"] == a
    events = client.get(f"/api/v1/incidents/{b}/events", headers=admin).json()
    flagged = [e for e in events if e["kind"] == "repeat_at_site"]
    assert [e["data"]["repeat_of"] for e in flagged] == [a]
    listed = {i["id"]: i for i in client.get("/api/v1/incidents", headers=admin).json()}
    assert (listed[a]["repeat_of_incident_id"], listed[b]["repeat_of_incident_id"]) == (None, a)

    # Far away the same day: a new incident, not a repeat.
    elsewhere = upload_pixel(client, admin, tmp_path, day0 + timedelta(days=4, hours=1), FAR)
    (c,) = elsewhere["new_incidents"]
    assert elsewhere["repeat_at_site"] == []
    assert client.get(f"/api/v1/incidents/{c}", headers=admin).json()["repeat_of_incident_id"] is None

    # 12 h after the repeat, still open: joins it, and opens nothing new.
    repass = upload_pixel(client, admin, tmp_path, day0 + timedelta(days=4, hours=12), SPOT)
    assert (repass["new_incidents"], repass["updated_incidents"]) == ([], [b])

    # Put out and fed back, not yet closed: a pass 12 h later is the field burning again. It does not vanish into
    # the handled incident (no one would hear of it): a new incident, alerted, a repeat of the handled one.
    move(client, admin, b, FED_BACK)
    rekindled = upload_pixel(client, admin, tmp_path, day0 + timedelta(days=5), SPOT)
    (d,) = rekindled["new_incidents"]
    assert client.get(f"/api/v1/incidents/{d}", headers=admin).json()["repeat_of_incident_id"] == b

    # Accountability: the township of the spot counts one repeat in the scores and the outcome table.
    township = detail["township_code"]
    scores = client.get("/api/v1/scores", params={"period": "2025-10"}, headers=admin)
    assert scores.status_code == 200, scores.text
    by_unit = {u["code"]: u for u in scores.json()["units"]}
    assert by_unit[township]["repeat_at_site"] == 2
    assert sum(u["repeat_at_site"] for u in by_unit.values()) == 2
    outcomes = client.get(
        "/api/v1/stats/outcomes", params={"period": "2025-10", "group_by": "township"}, headers=admin
    ).json()
    assert outcomes["total"]["repeat_at_site"] == 2
