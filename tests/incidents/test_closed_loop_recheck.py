"""Acceptance re-check of issue #6, incidents side: the unit that answers for a fire when a better fix moves it,
reassignments that cannot be followed, a photo sent twice at once, fields that do not belong to a move, and the
append-only record on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.service import create_recipient
from service.alerts.tables import Alert, Channel
from service.auth.service import SYSTEM, Principal, create_user
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.errors import InputError
from service.evidence import service as evidence
from service.flows import ingest_observations, reassign_incident
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.service import transition
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident, IncidentEvent
from service.regions.service import RegionIndexCache
from tests.incidents.test_assignment_and_events import FIRE, pixel, two_counties
from tests.incidents.test_evidence import PASSWORD, demo_service, photo, token

T = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
ADMIN = Principal("admin", Role.ADMIN)
# On the border of 北岗镇 (DEMO01) and 东河乡 (DEMO02), which runs from (125.67, 44.40) to (125.66, 44.27): at
# latitude 44.35 it is at longitude 125.6662. A ~1 km pixel centred at 125.663 lies three quarters in 北岗镇.
BORDER_LAT, PIXEL_LON, DRONE_LON = 44.35, 125.663, 125.668


def _factory(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
        for code in ("DEMO01", "DEMO02"):
            create_recipient(
                session, name=code, unit_code=code, channel=Channel.WEBHOOK, target=f"http://127.0.0.1:9/{code}"
            )
    return factory


def _pixel_on_the_border() -> ObservationIn:
    lon, lat = PIXEL_LON, BORDER_LAT
    region = shapely.box(lon - 0.006, lat - 0.0045, lon + 0.006, lat + 0.0045)
    return ObservationIn(ObservationKind.SATELLITE, "sat-border", T, lat, lon, region, 0.8)


def _drone_in_donghe(minutes: int = 60) -> ObservationIn:
    point = shapely.Point(DRONE_LON, BORDER_LAT)
    return ObservationIn(
        ObservationKind.DRONE,
        f"drone-{minutes}",
        T + timedelta(minutes=minutes),
        BORDER_LAT,
        DRONE_LON,
        shapely.buffer(point, 0.0001),
        0.99,
    )


def test_a_fix_that_moves_the_fire_into_another_township_is_recorded_and_alerts_that_township(
    engine: Engine,
) -> None:
    """Satellite pixel (mostly 北岗镇) → alert to 北岗镇; an hour later a drone places the fire 150 m inside 东河乡.
    The incident's township changed silently: no event said so, and 东河乡's team — now the one that answers for
    it, the only one that can see it — was never alerted."""
    factory, settings, indexes = _factory(engine), Settings(), RegionIndexCache(500)
    with transaction(factory) as session:
        (number,) = ingest_observations(
            session, [_pixel_on_the_border()], indexes=indexes, settings=settings, actor=SYSTEM
        ).new_incidents
        assert session.get_one(Incident, number).township_code == "DEMO01"
    with transaction(factory) as session:
        summary = ingest_observations(session, [_drone_in_donghe()], indexes=indexes, settings=settings, actor=SYSTEM)
        assert summary.updated_incidents == [number]
    with factory() as session:
        incident = session.get_one(Incident, number)
        assert (incident.township_code, incident.county_code, incident.location_kind) == ("DEMO02", "DEMO00", "drone")
        events = list(
            session.scalars(
                select(IncidentEvent).where(IncidentEvent.incident_id == number, IncidentEvent.kind == "reassigned")
            )
        )
        assert len(events) == 1
        data = json.loads(events[0].data)
        assert data["from"] == {"township": "DEMO01", "county": "DEMO00"}
        assert data["to"] == {"township": "DEMO02", "county": "DEMO00"}
        assert data["automatic"] is True
        alerted = {a.recipient_id for a in session.scalars(select(Alert).where(Alert.incident_id == number))}
    assert alerted == {1, 2}  # 北岗镇's first alert, and 东河乡's now
    # A second drone image at the same place changes nothing: no new event, no new alert.
    with transaction(factory) as session:
        ingest_observations(session, [_drone_in_donghe(70)], indexes=indexes, settings=settings, actor=SYSTEM)
    with factory() as session:
        kinds = [e.kind for e in session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == number))]
        assert kinds.count("reassigned") == 1
        assert len(session.scalars(select(Alert)).all()) == 2


def test_a_fire_the_team_has_acknowledged_stays_with_it_when_a_fix_lands_across_the_border(engine: Engine) -> None:
    """The same drone fix after 北岗镇's team acknowledged: the incident stays with 北岗镇 (its team on the way
    would lose it from its phone, and 东河乡 would get a "new fire" alert for a fire already acknowledged); the
    record says where the drone placed it, for a supervisor to reassign."""
    factory, settings, indexes = _factory(engine), Settings(), RegionIndexCache(500)
    with transaction(factory) as session:
        (number,) = ingest_observations(
            session, [_pixel_on_the_border()], indexes=indexes, settings=settings, actor=SYSTEM
        ).new_incidents
        incident = session.get_one(Incident, number)
        transition(session, incident, IncidentState.NOTIFIED, SYSTEM)
        transition(session, incident, IncidentState.ACKNOWLEDGED, Principal("p", Role.PATROL, "DEMO01"))
    with transaction(factory) as session:
        summary = ingest_observations(session, [_drone_in_donghe()], indexes=indexes, settings=settings, actor=SYSTEM)
    assert summary.reassigned_incidents == []
    with factory() as session:
        incident = session.get_one(Incident, number)
        assert (incident.township_code, incident.county_code, incident.location_kind) == ("DEMO01", "DEMO00", "drone")
        events = {e.kind: e for e in session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == number))}
        assert "reassigned" not in events
        placed = json.loads(events["located_other"].data)
        assert placed["placed_in"] == {"township": "DEMO02", "county": "DEMO00"}
        assert placed["unit"] == {"township": "DEMO01", "county": "DEMO00"}
        alerted = {a.recipient_id for a in session.scalars(select(Alert).where(Alert.incident_id == number))}
    assert alerted == {1}  # 北岗镇's first alert only


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_reassignment_whose_township_and_county_disagree_is_refused(engine: Engine) -> None:
    """A township of county DEMO90 with county DEMO00: DEMO90's supervisors could not see a fire in their own
    township, and DEMO00's saw one outside their county. Refused, naming the field, and nothing changes."""
    factory, settings, indexes = make_session_factory(engine), Settings(), RegionIndexCache(500)
    with transaction(factory) as session:
        two_counties(session)
        (number,) = ingest_observations(
            session, [pixel(*FIRE, "s1")], indexes=indexes, settings=settings, actor=ADMIN
        ).new_incidents
    with transaction(factory) as session:
        incident = session.get_one(Incident, number)
        with pytest.raises(InputError, match="county_code") as info:
            reassign_incident(session, incident, ADMIN, township_code="DEMO91", county_code="DEMO00", note="x")
        assert "DEMO91" in str(info.value)
        assert "DEMO90" in str(info.value)
        with pytest.raises(InputError, match="township_code"):  # DEMO01 stays in DEMO00: name one in DEMO90
            reassign_incident(session, incident, ADMIN, township_code=None, county_code="DEMO90", note="x")
        with pytest.raises(InputError, match="township_code"):
            reassign_incident(session, incident, ADMIN, township_code=None, county_code=None, note="nothing")
        with pytest.raises(InputError, match="township_code"):
            reassign_incident(session, incident, ADMIN, township_code="NOPE", county_code=None, note="typo")
        with pytest.raises(InputError, match="county_code"):
            reassign_incident(session, incident, ADMIN, township_code=None, county_code="NOPE", note="typo")
        session.rollback()
    with factory() as session:
        incident = session.get_one(Incident, number)
        assert (incident.township_code, incident.county_code, incident.assignment_status) == (
            "DEMO01",
            "DEMO00",
            "inside",
        )
    # Matching township and county, or the township alone, still work.
    with transaction(factory) as session:
        incident = session.get_one(Incident, number)
        reassign_incident(session, incident, ADMIN, township_code="DEMO91", county_code="DEMO90", note="their field")
        assert (incident.township_code, incident.county_code) == ("DEMO91", "DEMO90")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[TestClient, int, Settings]]:
    settings = Settings(data_dir=tmp_path / "var")
    users = {"beigang": (Role.PATROL, "DEMO01"), "sup": (Role.SUPERVISOR, "DEMO00")}
    with demo_service(settings, users) as (client, [number]):
        yield client, number, settings


def test_the_api_refuses_a_reassignment_that_cannot_be_followed_with_422(
    service: tuple[TestClient, int, Settings],
) -> None:
    client, number, _ = service
    supervisor = token(client, "sup")
    url = f"/api/v1/incidents/{number}/assignment"
    unknown = client.post(url, headers=supervisor, json={"township_code": "NOPE", "note": "typo"})
    assert unknown.status_code == 422  # a code in the body, not the resource: it was a 404
    assert "township_code" in unknown.json()["detail"]
    empty = client.post(url, headers=supervisor, json={"note": "nothing to change"})
    assert empty.status_code == 422
    events = client.get(f"/api/v1/incidents/{number}/events", headers=supervisor).json()
    assert [e["kind"] for e in events] == ["created"]


def test_the_same_photo_sent_twice_at_once_is_stored_once_without_an_error(
    service: tuple[TestClient, int, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phone retries an upload that is still in flight (the network dropped the answer, not the request): the
    second request's insert met the first one's row and failed with a 500 (unique incident + sha256)."""
    client, number, settings = service
    data = photo(44.33, 125.55)
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    real_path_of = evidence.path_of
    raced: list[str] = []

    def first_request_lands_meanwhile(settings_: Settings, sha256: str) -> Path:
        if not raced:  # between this request's "already stored?" check and its insert
            raced.append(sha256)
            with transaction(factory) as other:
                evidence.store_evidence(
                    other, other.get_one(Incident, number), data, filename="a.jpg", actor=SYSTEM, settings=settings
                )
        return real_path_of(settings_, sha256)

    monkeypatch.setattr(evidence, "path_of", first_request_lands_meanwhile)
    patrol = token(client, "beigang")
    response = client.post(
        f"/api/v1/incidents/{number}/evidence", headers=patrol, files={"file": ("a.jpg", data, "image/jpeg")}
    )
    assert raced, "the race did not happen"
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == raced[0]
    listed = client.get(f"/api/v1/incidents/{number}/evidence", headers=patrol).json()
    assert [p["sha256"] for p in listed] == raced
    events = client.get(f"/api/v1/incidents/{number}/events", headers=patrol).json()
    assert [e["kind"] for e in events].count("evidence") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "acknowledged", "reason": "duplicate"}, "reason"),
        ({"to": "acknowledged", "feedback": {"cause": "straw"}}, "feedback"),
    ],
)
def test_a_field_that_does_not_belong_to_the_move_is_refused(
    service: tuple[TestClient, int, Settings], body: dict[str, object], field: str
) -> None:
    """A false-alarm reason sent with "acknowledged" was written into that event's record ("reason: duplicate" on
    an acknowledgement, for evaluators to read) and a feedback with any other move was dropped without a word."""
    client, number, _ = service
    patrol = token(client, "beigang")
    response = client.post(f"/api/v1/incidents/{number}/transitions", headers=patrol, json=body)
    assert response.status_code == 422
    assert field in response.json()["detail"]
    incident = client.get(f"/api/v1/incidents/{number}", headers=patrol).json()
    assert incident["state"] == "suspected"
    events = client.get(f"/api/v1/incidents/{number}/events", headers=patrol).json()
    assert [e["kind"] for e in events] == ["created"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE incident_events SET note = 'edited'",
        "DELETE FROM incident_events",
        "TRUNCATE incident_events",
        "TRUNCATE incidents CASCADE",
    ],
)
@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_record_is_append_only_on_postgresql(engine: Engine, statement: str) -> None:
    """The triggers of migrations 0002 and 0011 on PostgreSQL (only SQLite's were tested): UPDATE, DELETE and
    TRUNCATE (of the events, or of the incidents with CASCADE, which had emptied the record) are refused."""
    factory = _factory(engine)
    with transaction(factory) as session:
        ingest_observations(
            session, [_pixel_on_the_border()], indexes=RegionIndexCache(500), settings=Settings(), actor=SYSTEM
        )
    with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM incident_events")).scalar_one() == 1


def test_two_phones_acknowledging_at_once_one_lands_one_is_told_to_reload(
    service: tuple[TestClient, int, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both phones show "suspected" and press 签收; the second one's request reads the incident before the first
    one's move commits. One move lands (one event); the other is a 409, not a second acknowledgement or a 500."""
    from service.incidents import router
    from service.incidents import service as incidents

    client, number, _ = service
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    real_require = router.require_evidence
    raced: list[int] = []

    def other_phone_first(session: Session, incident: Incident, sha256: str | None) -> None:
        if not raced:  # this request has read the incident; the other phone's move commits now
            raced.append(incident.id)
            with transaction(factory) as other:
                beigang = Principal("beigang-2", Role.PATROL, "DEMO01")
                incidents.transition(
                    other, other.get_one(Incident, number), incidents.IncidentState.ACKNOWLEDGED, beigang
                )
        real_require(session, incident, sha256)

    monkeypatch.setattr(router, "require_evidence", other_phone_first)
    patrol = token(client, "beigang")
    response = client.post(f"/api/v1/incidents/{number}/transitions", headers=patrol, json={"to": "acknowledged"})
    assert raced == [number]
    assert response.status_code == 409
    assert "reload" in response.json()["detail"]
    events = client.get(f"/api/v1/incidents/{number}/events", headers=patrol).json()
    assert [(e["kind"], e["actor"]) for e in events] == [("created", "strawfire"), ("transition", "beigang-2")]


def test_another_unit_can_neither_read_nor_change_the_incident_on_any_endpoint(
    service: tuple[TestClient, int, Settings],
) -> None:
    """A township patrol of 东河乡 and the supervisor of another county, on every incident endpoint (the photo file
    included, by the hash of a photo that exists): 404, or 403 where the role may not call the endpoint at all."""
    client, number, _ = service
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        create_user(session, "donghe", PASSWORD, Role.PATROL, "DEMO02")
        create_user(session, "elsewhere", PASSWORD, Role.SUPERVISOR, "DEMO90")
    own = token(client, "beigang")
    base = f"/api/v1/incidents/{number}"
    uploaded = client.post(
        f"{base}/evidence", headers=own, files={"file": ("a.jpg", photo(44.33, 125.55), "image/jpeg")}
    )
    sha = uploaded.json()["sha256"]
    for name in ("donghe", "elsewhere"):
        other = token(client, name)
        calls = [
            client.get(base, headers=other),
            client.get(f"{base}/events", headers=other),
            client.get(f"{base}/evidence", headers=other),
            client.get(f"{base}/evidence/{sha}", headers=other),
            client.post(
                f"{base}/evidence", headers=other, files={"file": ("b.jpg", photo(44.33, 125.55), "image/jpeg")}
            ),
            client.post(f"{base}/transitions", headers=other, json={"to": "acknowledged"}),
            client.post(f"{base}/assignment", headers=other, json={"township_code": "DEMO02", "note": "mine"}),
        ]
        expected = [404] * 6 + [403 if name == "donghe" else 404]
        assert [c.status_code for c in calls] == expected, name
        assert number not in {i["id"] for i in client.get("/api/v1/incidents", headers=other).json()}
        for params in ({"township": "DEMO01"}, {"county": "DEMO00"}):
            assert client.get("/api/v1/incidents", params=params, headers=other).json() == []
    events = client.get(f"{base}/events", headers=own).json()
    assert [e["kind"] for e in events] == ["created", "evidence"]
    assert client.get(f"{base}/evidence/{sha}", headers=own).status_code == 200


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_reassigning_a_closed_incident_sends_no_fire_alert(engine: Engine) -> None:
    """A supervisor corrects the unit of a fire already closed (销号), e.g. after a dispute over whose field it was:
    the record changes (audited), but the new township's group used to get a "秸秆焚烧火点预警" for a fire nobody
    has to act on. An open incident still goes to its new township at once."""
    from service.incidents import service as incidents
    from service.incidents.states import FalseAlarmReason, IncidentState

    factory, settings, indexes = _factory(engine), Settings(), RegionIndexCache(500)
    with transaction(factory) as session:
        closed, still_open = ingest_observations(
            session,
            [pixel(125.55, 44.33, "a"), pixel(125.60, 44.38, "b")],
            indexes=indexes,
            settings=settings,
            actor=ADMIN,
        ).new_incidents
        incident = session.get_one(Incident, closed)
        incidents.transition(session, incident, IncidentState.FALSE_ALARM, ADMIN, reason=FalseAlarmReason.NOT_FOUND)
        incidents.transition(session, incident, IncidentState.CLOSED, ADMIN)
    with transaction(factory) as session:
        for number in (closed, still_open):
            reassign_incident(
                session, session.get_one(Incident, number), ADMIN, township_code="DEMO02", county_code=None, note="x"
            )
    with factory() as session:
        alerts = {(a.incident_id, a.recipient_id) for a in session.scalars(select(Alert))}
        moved = session.scalars(select(IncidentEvent).where(IncidentEvent.kind == "reassigned")).all()
    assert alerts == {(closed, 1), (still_open, 1), (still_open, 2)}  # DEMO01 at creation; DEMO02 the open one
    assert sorted(e.incident_id for e in moved) == [closed, still_open]
