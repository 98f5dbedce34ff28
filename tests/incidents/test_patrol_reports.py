"""A township patrol reports a fire it found itself (巡查发现), through the API on SQLite and PostgreSQL: who may
report, what is refused, the incident the team takes on without alerting itself, a fire across the boundary that
alerts the other township, joining a known fire without moving ahead of the source that reported first, photos
afterwards, and the self-found credit in the scores (and none for a fire another township's patrol reported).

Townships (boxes, tests/stats/scenario.py): 东镇 229901001 (125.0–125.1 E) and 西镇 229901002 (125.1–125.2 E) of
甲县 229901, 44.0–44.1 N.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import event, select

from service.alerts.service import create_recipient
from service.alerts.tables import Alert, Channel
from service.auth.service import SYSTEM, Principal
from service.config import Settings
from service.db import transaction, utcnow
from service.flows import ingest_observations
from service.incidents.fusion import FusionWindows, Located, ObservationIn, ObservationKind, best_location, plan_batch
from service.incidents.patrol_reports import MIN_RADIUS_M, PatrolReportIn, report_fire, uncertainty_circle
from service.incidents.states import Role
from service.incidents.tables import Incident, Observation
from service.regions.service import RegionIndexCache
from tests.incidents.test_evidence import photo
from tests.stats.patrol_found import DATABASES, PASSWORD, empty_database_url, patrol_app
from tests.stats.scenario import COUNTY_A, EAST, WEST

USERS = {
    "admin": (Role.ADMIN, None),
    "cam": (Role.DEVICE, None),
    "eval": (Role.EVALUATOR, None),
    "sup": (Role.SUPERVISOR, COUNTY_A),
    "east": (Role.PATROL, EAST),
    "west": (Role.PATROL, WEST),
    "county": (Role.PATROL, COUNTY_A),  # 甲县's own patrol account: it sees both townships' fires
}
IN_EAST = (44.05, 125.05)  # (lat, lon)
IN_WEST = (44.05, 125.15)
GEOD = Geod(ellps="WGS84")
BEIJING = timedelta(hours=8)


@pytest.fixture(params=DATABASES)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The service with the scenario's regions, :data:`USERS` and a group bot for each township."""
    with patrol_app(tmp_path / "var", empty_database_url(request.param), USERS) as test_client:
        with transaction(test_client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            for unit in (EAST, WEST):
                create_recipient(
                    session, name=f"bot {unit}", unit_code=unit, channel=Channel.WEBHOOK, target="https://x.test/h"
                )
        yield test_client


_TOKENS: dict[tuple[int, str], dict[str, str]] = {}


def login(client: TestClient, name: str) -> dict[str, str]:
    key = (id(client), name)
    if key not in _TOKENS:
        response = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        _TOKENS[key] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return _TOKENS[key]


def report(client: TestClient, user: str, where: tuple[float, float], **extra: Any) -> Any:
    body = {"latitude": where[0], "longitude": where[1], "accuracy_m": 12.0, **extra}
    return client.post("/api/v1/observations/patrol", headers=login(client, user), json=body)


def reported(client: TestClient, user: str, where: tuple[float, float], **extra: Any) -> dict[str, Any]:
    response = report(client, user, where, **extra)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def events(client: TestClient, user: str, incident: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/incidents/{incident}/events", headers=login(client, user))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def alerts_of(client: TestClient, incident: int) -> list[Alert]:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(Alert).where(Alert.incident_id == incident)))


def move(client: TestClient, user: str, incident: int, to: str, **extra: Any) -> None:
    response = client.post(
        f"/api/v1/incidents/{incident}/transitions", headers=login(client, user), json={"to": to, **extra}
    )
    assert response.status_code == 200, response.text


def test_only_patrol_users_and_admins_report(client: TestClient) -> None:
    for user in ("cam", "eval", "sup"):
        response = report(client, user, IN_EAST)
        assert response.status_code == 403, (user, response.text)
    anonymous = client.post("/api/v1/observations/patrol", json={"latitude": IN_EAST[0], "longitude": IN_EAST[1]})
    assert anonymous.status_code == 401
    assert reported(client, "east", IN_EAST)["taken_on"] is True
    # An admin's report opens the incident like any (alerted to the township), credited to nobody.
    by_admin = reported(client, "admin", IN_WEST)
    assert (by_admin["township_code"], by_admin["taken_on"], by_admin["alerted"]) == (WEST, False, True)
    detail = client.get(f"/api/v1/incidents/{by_admin['incident_id']}", headers=login(client, "admin")).json()
    assert detail["state"] == "suspected"
    assert "reporter_unit" not in detail["observations"][0]["details"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": 91.0}, "latitude"),
        ({"latitude": "44.05"}, "latitude"),  # a number, not text
        ({"longitude": -181.0}, "longitude"),
        ({"longitude": None}, "longitude"),
        ({"accuracy_m": 501.0}, "accuracy_m"),  # cannot tell which field burns
        ({"accuracy_m": -1.0}, "accuracy_m"),
        ({"report_id": "../x"}, "report_id"),
        ({"note": "x" * 2001}, "note"),
        ({"unit_code": WEST}, "unit_code"),  # the unit is the account's, never the body's
        ({"observed_at": "2026-01-01T10:00:00"}, "observed_at"),  # no UTC offset
    ],
)
def test_bad_reports_are_refused_naming_the_field(client: TestClient, change: dict[str, Any], field: str) -> None:
    body = {"latitude": IN_EAST[0], "longitude": IN_EAST[1], "accuracy_m": 10.0} | change
    response = client.post("/api/v1/observations/patrol", headers=login(client, "east"), json=body)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]


def test_times_in_the_future_or_too_old_are_refused(client: TestClient) -> None:
    now = utcnow()
    for when in (now + timedelta(minutes=11), now - timedelta(hours=2, minutes=1)):
        response = report(client, "east", IN_EAST, observed_at=when.isoformat())
        assert response.status_code == 422, response.text
        assert "field 'observed_at'" in response.json()["detail"]
    # A phone clock a few minutes fast is the server's now; one 20 minutes back is kept.
    fast = reported(client, "east", IN_EAST, observed_at=(now + timedelta(minutes=5)).isoformat())
    earlier = now - timedelta(minutes=20)
    kept = reported(client, "east", (44.02, 125.02), observed_at=earlier.isoformat())
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        first = session.get_one(Incident, fast["incident_id"])
        assert now <= first.first_observed_at <= utcnow()
        second = session.get_one(Incident, kept["incident_id"])
        assert second.first_observed_at == earlier


def test_a_report_outside_every_unit_is_refused_and_nothing_is_stored(client: TestClient) -> None:
    """(0, 0) and a place 8 km past 南乡 opened an incident in no unit (200): the reporter could not see it and no
    township was told. A fix within the assignment tolerance (500 m) goes to the nearest township as before."""
    for user, where in (("east", (0.0, 0.0)), ("east", (44.05, 125.4)), ("admin", (44.05, 125.4))):
        response = report(client, user, where, report_id=f"r-{user}-{where[1]}")
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith("field 'latitude/longitude': ")
        assert "in no imported township or county (nor within 500 m of one)" in detail
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert session.scalars(select(Observation)).all() == []
        assert session.scalars(select(Incident)).all() == []
        assert session.scalars(select(Alert)).all() == []
    near = reported(client, "east", (44.1018, 125.15))  # ~200 m north of 西镇's edge
    assert (near["township_code"], near["taken_on"], near["alerted"]) == (WEST, False, True)


def test_own_fire_is_taken_on_without_alerting_the_team_and_takes_photos(client: TestClient) -> None:
    out = reported(client, "east", IN_EAST, note="东头玉米地，已在扑救", report_id="r-1")
    assert (out["duplicate"], out["taken_on"], out["alerted"], out["state"]) == (False, True, False, "on_site")
    assert (out["township_code"], out["township_name"], out["county_code"]) == (EAST, "东镇", COUNTY_A)
    incident = out["incident_id"]
    assert alerts_of(client, incident) == []  # no "new fire" alert to the team that reported it

    detail = client.get(f"/api/v1/incidents/{incident}", headers=login(client, "east")).json()
    (obs,) = detail["observations"]
    assert obs["kind"] == "patrol"
    assert detail["location_kind"] == "patrol"
    assert obs["details"]["reporter_unit"] == EAST
    assert (obs["details"]["reporter"], obs["details"]["note"]) == ("east", "东头玉米地，已在扑救")
    assert obs["confidence"] == pytest.approx(0.99)
    # The uncertainty is a circle of at least 30 m (the 12 m fix is beside the fire, not in it).
    circle = shapely.geometry.shape(obs["region"])
    east_edge = circle.bounds[2]
    assert GEOD.inv(IN_EAST[1], IN_EAST[0], east_edge, IN_EAST[0])[2] == pytest.approx(MIN_RADIUS_M, rel=0.01)
    assert "extinguished" in detail["allowed_transitions"]

    moves = [(e["actor"], e["from_state"], e["to_state"]) for e in events(client, "east", incident) if e["to_state"]]
    assert moves == [
        ("east", None, "suspected"),
        ("east", "suspected", "acknowledged"),
        ("east", "acknowledged", "on_site"),
    ]
    on_site = events(client, "east", incident)[-1]["data"]["position"]
    assert (on_site["distance_m"], on_site["far_from_fire"], on_site["accuracy_m"]) == (0.0, False, 12.0)

    # A retry of the same report (the answer was lost) is the same incident, nothing new.
    again = reported(client, "east", IN_EAST, report_id="r-1")
    assert (again["duplicate"], again["incident_id"], again["state"]) == (True, incident, "on_site")
    # Photos go through the existing evidence upload.
    upload = client.post(
        f"/api/v1/incidents/{incident}/evidence",
        headers=login(client, "east"),
        files={"file": ("fire.jpg", photo(IN_EAST[0], IN_EAST[1], f"{utcnow():%Y:%m:%d %H:%M:%S}"), "image/jpeg")},
    )
    assert upload.status_code == 201, upload.text


def test_typed_in_coordinates_place_the_fire_but_prove_no_presence(client: TestClient) -> None:
    body = {"latitude": IN_EAST[0], "longitude": IN_EAST[1]}
    response = client.post("/api/v1/observations/patrol", headers=login(client, "east"), json=body)
    assert response.status_code == 200, response.text
    incident = response.json()["incident_id"]
    detail = client.get(f"/api/v1/incidents/{incident}", headers=login(client, "east")).json()
    assert detail["observations"][0]["details"]["radius_m"] == 50.0
    on_site = [e for e in events(client, "east", incident) if e["to_state"] == "on_site"]
    assert on_site[0]["data"]["position"] is None  # shown as "no position reported" (虚假到场 evidence)


def test_a_fire_across_the_boundary_is_the_other_townships(client: TestClient) -> None:
    out = reported(client, "east", IN_WEST)  # 东镇's patrol, standing in 西镇
    assert (out["township_code"], out["state"], out["taken_on"], out["alerted"]) == (WEST, "suspected", False, True)
    incident = out["incident_id"]
    assert [a.recipient_id for a in alerts_of(client, incident)] != []
    assert client.get(f"/api/v1/incidents/{incident}", headers=login(client, "east")).status_code == 404
    detail = client.get(f"/api/v1/incidents/{incident}", headers=login(client, "west")).json()
    assert detail["observations"][0]["details"]["reporter_unit"] == EAST


def test_a_county_patrol_accounts_report_is_the_townships_fire_to_answer(client: TestClient) -> None:
    """甲县's patrol account sees 东镇's fires, but 东镇's team answers for them (the statistics judge its own
    acknowledgement and arrival): the report alerts 东镇 and leaves the fire for its team, as another township's
    report would. It was taken on by the county's account: 东镇 never told, and charged with a missed
    acknowledgement."""
    out = reported(client, "county", IN_EAST)
    assert (out["township_code"], out["state"], out["taken_on"], out["alerted"]) == (EAST, "suspected", False, True)
    incident = out["incident_id"]
    assert len(alerts_of(client, incident)) == 1  # 东镇's bot
    assert [e["to_state"] for e in events(client, "county", incident) if e["to_state"]] == ["suspected"]
    detail = client.get(f"/api/v1/incidents/{incident}", headers=login(client, "east")).json()
    assert detail["observations"][0]["details"]["reporter_unit"] == COUNTY_A
    move(client, "east", incident, "acknowledged")  # 东镇's team answers it


def test_a_resend_racing_the_first_request_is_answered_with_the_same_incident(client: TestClient) -> None:
    """The phone resends a report whose first request is still being written: both pass the stored-key check and
    the later insert breaks the unique (kind, source_key). Forced here: the first request commits just before the
    second one's first insert. It was a 500; the resend is answered as one, with the first request's incident."""
    app: Any = client.app
    first: list[int] = []

    def the_first_request_lands(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if first or not statement.lstrip().upper().startswith("INSERT"):
            return
        first.append(0)  # before the nested report's own inserts
        body = PatrolReportIn(latitude=IN_EAST[0], longitude=IN_EAST[1], accuracy_m=12.0, report_id="r-race")
        with transaction(app.state.session_factory) as session:
            result = report_fire(
                session,
                body,
                Principal("east", Role.PATROL, EAST),
                indexes=app.state.region_indexes,
                settings=app.state.settings,
            )
            assert result.incident is not None
            first[0] = result.incident.id

    event.listen(app.state.engine, "before_cursor_execute", the_first_request_lands)
    try:
        out = reported(client, "east", IN_EAST, report_id="r-race")
    finally:
        event.remove(app.state.engine, "before_cursor_execute", the_first_request_lands)
    assert first != [0]
    assert (out["duplicate"], out["incident_id"], out["state"]) == (True, first[0], "on_site")
    with app.state.session_factory() as session:
        assert session.scalars(select(Incident.id)).all() == first
        rows = session.scalars(select(Observation.source_key)).all()
    assert rows == ["patrol:east:r-race"]


def _ingest(client: TestClient, kind: ObservationKind, key: str, where: tuple[float, float], at: datetime) -> int:
    lat, lon = where
    half = 0.003 if kind is ObservationKind.SATELLITE else 0.001
    region = shapely.box(lon - half, lat - half, lon + half, lat + half)
    observation = ObservationIn(kind, key, at, lat, lon, region, 0.8)
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        summary = ingest_observations(
            session, [observation], indexes=RegionIndexCache(500), settings=Settings(), actor=SYSTEM
        )
    (incident,) = summary.new_incidents
    return incident


def test_a_report_joins_the_known_fire_without_moving_ahead_of_it(client: TestClient) -> None:
    camera_at = utcnow() - timedelta(minutes=10)
    known = _ingest(client, ObservationKind.CAMERA, "cam-1", IN_EAST, camera_at)
    move(client, "admin", known, "notified")  # the camera's alert reached the township
    # The team arrives and reports 80 m away, claiming it saw the fire 25 minutes ago (before the camera).
    lon, lat, _ = GEOD.fwd(IN_EAST[1], IN_EAST[0], 90.0, 80.0)
    claimed = utcnow() - timedelta(minutes=25)
    out = reported(client, "east", (lat, lon), observed_at=claimed.isoformat())
    assert (out["incident_id"], out["duplicate"], out["taken_on"], out["state"]) == (known, False, True, "on_site")
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        incident = session.get_one(Incident, known)
        # The patrol's fix now locates the fire; the camera still reported it first.
        assert (incident.location_kind, incident.latitude, incident.longitude) == ("patrol", lat, lon)
        assert incident.first_observed_at == camera_at
        in_order = (Observation.observed_at, Observation.id)  # as the statistics order sightings
        rows = session.scalars(select(Observation).where(Observation.incident_id == known).order_by(*in_order)).all()
        assert [r.kind for r in rows] == ["camera", "patrol"]
        assert rows[1].observed_at == camera_at
        assert json.loads(rows[1].details)["observed_at_claimed"] == claimed.isoformat()
    moves = [(e["from_state"], e["to_state"]) for e in events(client, "east", known) if e["kind"] == "transition"]
    assert moves[-2:] == [("notified", "acknowledged"), ("acknowledged", "on_site")]
    # Far from it (3 km), the same team's report is another fire.
    lon3, lat3, _ = GEOD.fwd(IN_EAST[1], IN_EAST[0], 0.0, 3_000.0)
    assert reported(client, "east", (lat3, lon3))["incident_id"] != known


def _scores(client: TestClient, incident: int, user: str = "admin") -> dict[str, dict[str, Any]]:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        first = session.get_one(Incident, incident).first_observed_at
    params = {"period": f"{first + BEIJING:%Y-%m}"}  # periods are Beijing months
    if user == "admin":
        params["area"] = COUNTY_A
    response = client.get("/api/v1/scores", params=params, headers=login(client, user))
    assert response.status_code == 200, response.text
    return {u["code"]: u for u in response.json()["units"]}


def _feed_back(client: TestClient, user: str, incident: int) -> None:
    move(client, user, incident, "extinguished")
    move(client, user, incident, "feedback", feedback={"cause": "straw", "burned_area_m2": 120})


def test_a_township_reporting_its_own_fire_gets_the_self_found_credit(client: TestClient) -> None:
    own = reported(client, "east", IN_EAST)["incident_id"]
    _feed_back(client, "east", own)
    east = _scores(client, own)[EAST]
    # Rules example-v2: no source deduction, +2 credit; never notified, so no deadline to miss. The density term
    # (2 points per violation per 1,000 ha; 东镇 has 1,000 ha of cropland) is the only deduction.
    assert (east["violations"], east["self_found"], east["unreported"]) == (1, 1, 0)
    assert [(i["incident_id"], i["rule"], i["points"]) for i in east["items"] if i["incident_id"]] == [
        (own, "self_found", 2.0)
    ]
    assert (east["late_acknowledge"], east["late_on_site"], east["credits"]) == (0, 0, 2.0)
    assert east["score"] == pytest.approx(100.0 - 2.0 + 2.0)
    # The patrol reads its own score with the credit.
    mine = _scores(client, own, user="east")
    assert list(mine) == [EAST]
    assert mine[EAST]["self_found"] == 1


def test_another_townships_report_earns_the_burning_township_no_credit(client: TestClient) -> None:
    found_by_east = reported(client, "east", IN_WEST)["incident_id"]  # 东镇's patrol reports a fire in 西镇
    move(client, "west", found_by_east, "acknowledged")
    move(client, "west", found_by_east, "on_site")
    _feed_back(client, "west", found_by_east)
    units = _scores(client, found_by_east)
    west, east = units[WEST], units[EAST]
    assert (west["violations"], west["self_found"], west["credits"]) == (1, 0, 0.0)
    # Not self-found: charged by its source, a patrol point (service.stats.records.source_of; example-v2 sets no
    # fire_points.patrol, so it weighs as a drone point, −3).
    fire_items = [(i["incident_id"], i["rule"], i["points"]) for i in west["items"] if i["incident_id"]]
    assert fire_items == [(found_by_east, "fire_point:patrol", -3.0)]
    # The reporting township's score is untouched: the fire point is not its own.
    assert (east["fire_points"], east["violations"], east["self_found"], east["items"]) == (0, 0, 0, [])
    assert east["score"] == 100.0


# --- fusion, pure ------------------------------------------------------------------------------------------------


def _patrol_at(lat: float, lon: float, at: datetime, accuracy_m: float = 10.0) -> ObservationIn:
    region = uncertainty_circle(lat, lon, max(accuracy_m, MIN_RADIUS_M))
    return ObservationIn(ObservationKind.PATROL, "patrol:east:1", at, lat, lon, region, 0.99)


def test_a_patrol_fix_joins_the_satellite_pixel_it_is_in_and_locates_the_fire() -> None:
    at = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)
    pixel = shapely.box(125.045, 44.045, 125.055, 44.055)
    satellite = ObservationIn(ObservationKind.SATELLITE, "s", at, 44.05, 125.05, pixel, 0.9, 20.0)
    drone = ObservationIn(ObservationKind.DRONE, "d", at, 44.051, 125.051, shapely.Point(125.051, 44.051), 0.95)
    patrol = _patrol_at(44.052, 125.052, at + timedelta(hours=3))
    windows = FusionWindows()
    existing = [Located(7, ObservationKind.SATELLITE, at, pixel)]
    assert [g.incidents for g in plan_batch([patrol], existing, windows)] == [(7,)]
    # Beyond the satellite window (6 h) and the repass (24 h), it is a fire of its own.
    late = _patrol_at(44.052, 125.052, at + timedelta(hours=25))
    assert [g.incidents for g in plan_batch([late], existing, windows)] == [()]
    # The phone at the fire outranks the drone's projection and the pixel centre.
    assert best_location([satellite, drone, patrol]) is patrol


def test_the_uncertainty_circle_is_round_on_the_ground() -> None:
    circle = uncertainty_circle(44.05, 125.05, 100.0)
    x0, y0, x1, y1 = circle.bounds
    east_west = GEOD.inv(x0, 44.05, x1, 44.05)[2]
    north_south = GEOD.inv(125.05, y0, 125.05, y1)[2]
    assert east_west == pytest.approx(200.0, rel=0.01)
    assert north_south == pytest.approx(200.0, rel=0.01)


def test_a_report_on_the_antimeridian_or_a_pole_is_refused_not_an_error(client: TestClient) -> None:
    """Valid coordinates at the edges of WGS-84 (found by the API fuzzing: the circle ran past them, a 500) are
    judged like any other place: in no unit, so refused."""
    for where in ((90.0, 180.0), (-90.0, -180.0), (0.0, 180.0)):
        response = report(client, "admin", where)
        assert response.status_code == 422, response.text
        assert "field 'latitude/longitude'" in response.json()["detail"]
    _, _, x1, y1 = uncertainty_circle(89.9999, 179.9999, 500.0).bounds
    assert x1 <= 180.0
    assert y1 <= 90.0
