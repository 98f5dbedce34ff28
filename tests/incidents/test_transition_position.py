"""The position a phone sends with a move: stored in the event with the server's distance to the fire.

The field notes: every transition should carry the actor's position and client time as tamper evidence, because a
team declaring "on site" (到场) from the office is a known abuse (虚假到场). The distance rule is the evidence photos'
(``evidence.max_distance_m``), measured the same way (pyproj, WGS-84 ellipsoid).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pyproj import Geod

from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from tests.incidents.test_evidence import FIRE, PASSWORD, demo_service, token

GEOD = Geod(ellps="WGS84")


def _client(tmp_path: Path, **evidence: Any) -> Iterator[tuple[TestClient, int]]:
    settings = Settings(data_dir=tmp_path / "var", evidence=evidence)
    with demo_service(settings, {"beigang": (Role.PATROL, "DEMO01")}) as (client, [incident]):
        me = token(client, "beigang")
        for step in ("acknowledged", "en_route"):
            response = client.post(f"/api/v1/incidents/{incident}/transitions", headers=me, json={"to": step})
            assert response.status_code == 200, response.text
        yield client, incident


@pytest.fixture
def en_route(tmp_path: Path) -> Iterator[tuple[TestClient, int]]:
    """A 北岗镇 fire (incident at FIRE) its patrol team is on the way to; the default 1000 m rule."""
    yield from _client(tmp_path)


def _at(east_m: float, north_m: float) -> tuple[float, float]:
    """(lat, lon) of the point east_m, north_m from the fire (geodesic forward steps)."""
    lon, lat, _ = GEOD.fwd(FIRE[0], FIRE[1], 90.0, east_m)
    lon, lat, _ = GEOD.fwd(lon, lat, 0.0, north_m)
    return lat, lon


def _position(lat: float, lon: float, accuracy: float = 15.0, at: datetime | None = None) -> dict[str, Any]:
    when = at or datetime.now(UTC) - timedelta(seconds=5)
    return {"latitude": lat, "longitude": lon, "accuracy_m": accuracy, "at": when.isoformat()}


def _move(client: TestClient, incident: int, body: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/incidents/{incident}/transitions",
        # Serialised here: the server's JSON parser accepts NaN and Infinity, which httpx refuses to send.
        content=json.dumps(body),
        headers={**token(client, "beigang"), "Content-Type": "application/json"},
    )


def _last_transition(client: TestClient, incident: int) -> dict[str, Any]:
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=token(client, "beigang")).json()
    return [e for e in events if e["kind"] == "transition"][-1]  # type: ignore[no-any-return]


def test_on_site_position_is_stored_with_the_geodesic_distance(en_route: tuple[TestClient, int]) -> None:
    client, incident = en_route
    lat, lon = _at(300.0, 400.0)  # ~500 m away: within the 1000 m rule
    sent = _position(lat, lon, accuracy=12.5)
    response = _move(client, incident, {"to": "on_site", "expected_state": "en_route", "position": sent})
    assert response.status_code == 200, response.text
    event = _last_transition(client, incident)
    assert event["to_state"] == "on_site"
    stored = event["data"]["position"]
    expected = GEOD.inv(FIRE[0], FIRE[1], lon, lat)[2]
    assert 480 < expected < 520
    assert stored["distance_m"] == pytest.approx(expected, abs=0.1)
    assert (stored["latitude"], stored["longitude"], stored["accuracy_m"]) == (lat, lon, 12.5)
    assert datetime.fromisoformat(stored["at"]) == datetime.fromisoformat(sent["at"])
    assert 0 <= stored["age_s"] < 120
    assert stored["far_from_fire"] is False
    assert stored["imprecise"] is False
    assert stored["max_distance_m"] == 1000.0
    # The move without a position before it (en_route) carries no position at all.
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=token(client, "beigang")).json()
    en = next(e for e in events if e["to_state"] == "en_route")
    assert "position" not in en["data"]


@pytest.mark.parametrize(
    ("east_m", "accuracy", "far", "imprecise"),
    [
        (5_000.0, 20.0, True, False),  # declared "on site" 5 km away: the 虚假到场 case
        (1_200.0, 100.0, True, False),  # 1 100 m even at the edge of the accuracy circle
        (1_200.0, 500.0, False, False),  # within reach given the phone's own accuracy
        (900.0, 20.0, False, False),
        (3_000.0, 2_500.0, False, True),  # a coarse (network) fix: proves nothing either way
    ],
)
def test_far_from_fire_flag_uses_distance_minus_accuracy(
    en_route: tuple[TestClient, int], east_m: float, accuracy: float, far: bool, imprecise: bool
) -> None:
    client, incident = en_route
    lat, lon = _at(east_m, 0.0)
    response = _move(client, incident, {"to": "on_site", "position": _position(lat, lon, accuracy)})
    assert response.status_code == 200, response.text
    stored = _last_transition(client, incident)["data"]["position"]
    assert stored["distance_m"] == pytest.approx(east_m, abs=1.0)
    assert (stored["far_from_fire"], stored["imprecise"]) == (far, imprecise)


def test_the_distance_rule_is_the_evidence_setting(tmp_path: Path) -> None:
    for client, incident in _client(tmp_path, max_distance_m=6_000.0):
        lat, lon = _at(5_000.0, 0.0)
        assert _move(client, incident, {"to": "on_site", "position": _position(lat, lon)}).status_code == 200
        stored = _last_transition(client, incident)["data"]["position"]
        assert (stored["far_from_fire"], stored["max_distance_m"]) == (False, 6_000.0)


def test_on_site_without_a_position_is_accepted_and_recorded_as_null(en_route: tuple[TestClient, int]) -> None:
    client, incident = en_route
    response = _move(client, incident, {"to": "on_site", "expected_state": "en_route"})
    assert response.status_code == 200, response.text
    data = _last_transition(client, incident)["data"]
    assert "position" in data
    assert data["position"] is None


def test_a_position_with_another_move_is_stored_too(en_route: tuple[TestClient, int]) -> None:
    client, incident = en_route
    assert _move(client, incident, {"to": "on_site"}).status_code == 200
    lat, lon = _at(50.0, 50.0)
    assert _move(client, incident, {"to": "extinguished", "position": _position(lat, lon)}).status_code == 200
    stored = _last_transition(client, incident)["data"]["position"]
    assert stored["distance_m"] == pytest.approx(70.7, abs=1.0)


_GOOD = {"latitude": FIRE[1], "longitude": FIRE[0], "accuracy_m": 10.0, "at": "2025-10-20T13:45:00+08:00"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latitude", 91.0),
        ("latitude", -90.5),
        ("longitude", 180.5),
        ("longitude", float("nan")),
        ("latitude", float("inf")),
        ("accuracy_m", -1.0),
        ("accuracy_m", float("inf")),
        ("latitude", "44.33"),  # text is refused, not converted
        ("longitude", True),
        ("accuracy_m", None),
        ("at", "2025-10-20T13:45:00"),  # no UTC offset: which clock?
        ("at", "yesterday"),
    ],
)
def test_bad_position_values_are_refused_naming_the_field(
    en_route: tuple[TestClient, int], field: str, value: Any
) -> None:
    client, incident = en_route
    response = _move(client, incident, {"to": "on_site", "position": {**_GOOD, field: value}})
    assert response.status_code == 422, response.text
    assert any(d["loc"][-2:] == ["position", field] for d in response.json()["detail"]), response.text
    assert client.get(f"/api/v1/incidents/{incident}", headers=token(client, "beigang")).json()["state"] == "en_route"


@pytest.mark.parametrize("missing", ["latitude", "longitude", "accuracy_m", "at"])
def test_an_incomplete_position_is_refused(en_route: tuple[TestClient, int], missing: str) -> None:
    client, incident = en_route
    position = {k: v for k, v in _GOOD.items() if k != missing}
    response = _move(client, incident, {"to": "on_site", "position": position})
    assert response.status_code == 422, response.text
    assert missing in response.text


def test_a_position_from_the_future_is_refused(en_route: tuple[TestClient, int]) -> None:
    client, incident = en_route
    china = datetime.now(ZoneInfo("Asia/Shanghai"))  # a phone in China sends +08:00
    ahead = _position(FIRE[1], FIRE[0], at=china + timedelta(minutes=11))
    response = _move(client, incident, {"to": "on_site", "position": ahead})
    assert response.status_code == 422, response.text
    assert "position.at" in response.json()["detail"]
    assert client.get(f"/api/v1/incidents/{incident}", headers=token(client, "beigang")).json()["state"] == "en_route"
    # A phone clock a few minutes fast is within the same allowance as photos.
    slightly = _position(FIRE[1], FIRE[0], at=china + timedelta(minutes=8))
    assert _move(client, incident, {"to": "on_site", "position": slightly}).status_code == 200
    stored = _last_transition(client, incident)["data"]["position"]
    assert stored["age_s"] < 0


def test_response_statistics_count_on_site_far_and_without_position(tmp_path: Path) -> None:
    """Per unit in the response-time table: "on site" declared far from the fire, and declared with no position.
    The fire is reopened once so that one incident holds two on-site declarations (each is counted)."""
    for client, incident in _client(tmp_path):
        lat, lon = _at(4_000.0, 0.0)
        assert _move(client, incident, {"to": "on_site", "position": _position(lat, lon)}).status_code == 200
        assert _move(client, incident, {"to": "false_alarm", "reason": "not_found"}).status_code == 200
        with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            create_user(session, "sup", PASSWORD, Role.SUPERVISOR, "DEMO00")
        sup = token(client, "sup")
        reopened = client.post(f"/api/v1/incidents/{incident}/transitions", headers=sup, json={"to": "reopened"})
        assert reopened.status_code == 200, reopened.text
        for step in ("acknowledged", "on_site"):
            assert _move(client, incident, {"to": step}).status_code == 200
        response = client.get(
            "/api/v1/stats/response-times",
            headers=sup,
            params={"group_by": "township", "period": "2025-10"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        row = next(g for g in body["groups"] if g["key"] == "DEMO01")
        assert (row["on_site_far"], row["on_site_without_position"], row["on_site_imprecise"]) == (1, 1, 0)
        assert (body["total"]["on_site_far"], body["total"]["on_site_without_position"]) == (1, 1)


def test_a_stale_position_is_flagged_and_never_far(en_route: tuple[TestClient, int]) -> None:
    """A fix older than POSITION_MAX_AGE (a cached one, a draft sent hours later) says nothing about where the team
    was at the move: a fix taken at the office that morning must not read as 虚假到场, nor one at the fire as proof."""
    client, incident = en_route
    lat, lon = _at(5_000.0, 0.0)
    old = _position(lat, lon, at=datetime.now(UTC) - timedelta(hours=2))
    assert _move(client, incident, {"to": "on_site", "position": old}).status_code == 200
    stored = _last_transition(client, incident)["data"]["position"]
    assert (stored["stale"], stored["far_from_fire"]) == (True, False)
    assert stored["age_s"] > 7000
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        create_user(session, "sup", PASSWORD, Role.SUPERVISOR, "DEMO00")
    response = client.get(
        "/api/v1/stats/response-times",
        headers=token(client, "sup"),
        params={"group_by": "township", "period": "2025-10"},
    )
    row = next(g for g in response.json()["groups"] if g["key"] == "DEMO01")
    assert (row["on_site_far"], row["on_site_stale"], row["on_site_without_position"]) == (0, 1, 0)


def test_a_fresh_position_is_not_stale(en_route: tuple[TestClient, int]) -> None:
    client, incident = en_route
    recent = _position(FIRE[1], FIRE[0], at=datetime.now(UTC) - timedelta(minutes=20))
    assert _move(client, incident, {"to": "on_site", "position": recent}).status_code == 200
    assert _last_transition(client, incident)["data"]["position"]["stale"] is False


@pytest.mark.parametrize(
    ("reader", "role", "unit", "sees"),
    [
        ("beigang", None, None, True),  # the member who sent it
        ("sup", Role.SUPERVISOR, "DEMO00", True),  # the county supervisor verifying the arrival
        ("judge", Role.EVALUATOR, None, False),  # an evaluator scores units: distance and flags only
        ("colleague", Role.PATROL, "DEMO01", False),  # another account of the township
    ],
)
def test_the_position_coordinates_are_personal_data(
    en_route: tuple[TestClient, int], reader: str, role: Role | None, unit: str | None, sees: bool
) -> None:
    client, incident = en_route
    lat, lon = _at(300.0, 0.0)
    assert _move(client, incident, {"to": "on_site", "position": _position(lat, lon)}).status_code == 200
    if role is not None:
        with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            create_user(session, reader, PASSWORD, role, unit)
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=token(client, reader))
    assert events.status_code == 200, events.text
    stored = [e for e in events.json() if e["kind"] == "transition"][-1]["data"]["position"]
    assert stored["distance_m"] == pytest.approx(300.0, abs=1.0)
    assert stored["far_from_fire"] is False
    assert ("latitude" in stored, "longitude" in stored) == (sees, sees)
