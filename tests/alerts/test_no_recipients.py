"""A fire in a unit nobody is alerted for goes to the county at once (SQLite and PostgreSQL), to the unit above the
county when the county has no supervisor recipient either, and is escalated all the same when there is nobody.

东河乡 (DEMO02) has no alert recipient. Its fire queued no township alert, so nothing was delivered or failed: the
early "unreachable" escalation, which waits for a failed delivery, never ran, and the fire sat ``suspected`` (where
no deadline runs) without anyone hearing of it. The county's real webhook stand-in receives the escalation now.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.messages import UNREACHABLE
from service.alerts.service import create_recipient
from service.alerts.tables import Channel, RecipientRole
from service.config import Settings
from service.db import transaction, utcnow
from service.demo_inbox import provide_demo_recipients, retire_demo_recipients
from service.flows import ingest_observations, reassign_incident
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from service.regions.tables import Region
from service.status import service as status
from tests.alerts.conftest import SETTINGS, alert_rows, escalation_events, worker_passes
from tests.alerts.test_deadlines_after_a_move import SUPERVISOR
from tests.alerts.test_outbox import ADMIN, factory, observation  # noqa: F401  (the fixture, with the DEMO region)
from tests.httpserver import Receiver, http_receiver

BEIGANG = (125.52, 44.33)  # 北岗镇 (DEMO01), which has a recipient in most tests here
DONGHE = (125.73, 44.36)  # 东河乡 (DEMO02), which has none
NO_ONE_IN_DONGHE = "no recipients configured for DEMO02"


def _recipient(
    factory: sessionmaker[Session],  # noqa: F811
    receiver: Receiver,
    unit: str,
    path: str,
    role: RecipientRole = RecipientRole.TOWNSHIP,
) -> int:
    with transaction(factory) as session:
        return create_recipient(
            session, name=path, unit_code=unit, channel=Channel.WEBHOOK, target=receiver.url + path, role=role
        ).id


def _fire(factory: sessionmaker[Session], i: int, place: tuple[float, float]) -> int:  # noqa: F811
    with transaction(factory) as session:
        (number,) = ingest_observations(
            session, [observation(i, *place)], indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
        ).new_incidents
    return number


def _state(factory: sessionmaker[Session], number: int) -> str:  # noqa: F811
    with factory() as session:
        return session.get_one(Incident, number).state


def test_a_fire_in_a_township_without_recipients_goes_to_the_county_at_once(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    with http_receiver() as receiver:
        _recipient(factory, receiver, "DEMO01", "/town")
        county = _recipient(factory, receiver, "DEMO00", "/county", RecipientRole.COUNTY)
        unheard, heard = _fire(factory, 0, DONGHE), _fire(factory, 1, BEIGANG)
        assert alert_rows(factory, unheard) == []  # nobody to queue 东河乡's alert for
        at = utcnow() + timedelta(seconds=1)
        assert worker_passes(factory, at) == [[unheard]]  # at the first pass, not on any deadline
        assert worker_passes(factory, at + timedelta(minutes=10)) == [[]]  # once (北岗镇 has 15 minutes to acknowledge)
        received = [(r.path, r.json()) for r in receiver.received()]
    assert sorted((path, body["incident_id"], body["kind"]) for path, body in received) == [
        ("/county", unheard, "escalation"),
        ("/town", heard, "new"),
    ]
    (escalation,) = [body for path, body in received if path == "/county"]
    assert escalation["escalation_reason"] == UNREACHABLE  # the county is asked to phone the township
    assert alert_rows(factory, unheard) == [("escalation", county, "sent")]
    assert (_state(factory, unheard), _state(factory, heard)) == ("escalated", "notified")
    (event,) = escalation_events(factory, unheard)
    assert (event.actor_role, event.from_state) == (Role.SYSTEM.value, IncidentState.SUSPECTED.value)
    assert event.note.startswith("the township could not be reached: the new-fire alert to DEMO02 could not be queued")
    data = json.loads(event.data)
    assert data["unreachable"] == {"unit": "DEMO02", "recipients": [], "error": NO_ONE_IN_DONGHE}
    assert data["escalation"] == {"cause": "no_recipients", "limit_s": None, "from": None, "to": "DEMO00"}


def test_a_county_without_supervisors_escalates_to_the_unit_above_it(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """演示县 (DEMO00) has no supervisor recipient, its city (DEMO-CITY, the county's parent code) has: both a fire
    nobody in 东河乡 hears of and 北岗镇's fire nobody acknowledged reach the city's duty desk."""
    with transaction(factory) as session:
        session.execute(update(Region).where(Region.code == "DEMO00").values(parent_code="DEMO-CITY"))
    with http_receiver() as receiver:
        _recipient(factory, receiver, "DEMO01", "/town")
        city = _recipient(factory, receiver, "DEMO-CITY", "/city", RecipientRole.COUNTY)
        unheard, unanswered = _fire(factory, 0, DONGHE), _fire(factory, 1, BEIGANG)
        at = utcnow() + timedelta(seconds=1)
        assert worker_passes(factory, at) == [[unheard]]  # and 北岗镇 is told of its fire
        assert worker_passes(factory, at + timedelta(minutes=16)) == [[]]  # 北岗镇 is reminded
        assert worker_passes(factory, at + timedelta(minutes=31)) == [[unanswered]]  # not acknowledged within 30 min
        received = [(r.path, r.json()["incident_id"], r.json()["kind"]) for r in receiver.received()]
    assert sorted(received) == [
        ("/city", unheard, "escalation"),
        ("/city", unanswered, "escalation"),
        ("/town", unanswered, "new"),
        ("/town", unanswered, "reminder"),
    ]
    assert alert_rows(factory, unheard) == [("escalation", city, "sent")]
    (first,), (second,) = escalation_events(factory, unheard), escalation_events(factory, unanswered)
    assert first.note.endswith("; DEMO00 has no supervisor recipient: its escalation goes to DEMO-CITY")
    assert json.loads(first.data)["escalation"]["to"] == "DEMO-CITY"
    assert second.note == (
        "not acknowledged within 0:30:00; DEMO00 has no supervisor recipient: its escalation goes to DEMO-CITY"
    )
    assert json.loads(second.data)["escalation"] == {
        "cause": "not_acknowledged",
        "limit_s": 1800,
        "from": "notified",
        "to": "DEMO-CITY",
    }


def test_with_nobody_to_alert_the_fire_is_escalated_all_the_same_and_the_status_says_so(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """No recipient anywhere: the fire is escalated (it heads the supervisors' and admins' queues) with no alert,
    its record says nobody was alerted, and the system status lists the township and the county until recipients
    are added."""
    settings = Settings(alerts=SETTINGS.model_copy(update={"run_worker": False}))

    def problems() -> dict[str, tuple[int, tuple[str, ...]]]:
        with factory() as session:
            found = status.system_status(session, settings, now=utcnow())
        return {p.code: (p.count, p.items) for p in found.problems if p.component == status.RECIPIENTS}

    number = _fire(factory, 0, DONGHE)
    assert problems() == {
        "units_without_recipients": (1, ("东河乡 (DEMO) (DEMO02)",)),
        "counties_without_supervisors": (1, ("演示县 (DEMO) (DEMO00)",)),
    }
    assert worker_passes(factory, utcnow() + timedelta(seconds=1)) == [[number]]
    assert alert_rows(factory, number) == []
    (event,) = escalation_events(factory, number)
    assert event.note.endswith("; no supervisor recipient is configured for DEMO00 or above it: nobody was alerted")
    assert json.loads(event.data)["escalation"]["to"] is None
    assert set(problems()) == {"units_without_recipients", "counties_without_supervisors"}  # still open
    with http_receiver() as receiver:
        _recipient(factory, receiver, "DEMO02", "/town")
        assert set(problems()) == {"counties_without_supervisors"}
        _recipient(factory, receiver, "DEMO00", "/county", RecipientRole.COUNTY)
        assert problems() == {}
    with transaction(factory) as session:  # a closed fire asks nobody to be alerted: 西坡乡 has no recipient
        session.execute(update(Incident).values(state=IncidentState.CLOSED.value))
    _fire(factory, 1, (125.57, 44.21))
    assert problems() == {"units_without_recipients": (1, ("西坡乡 (DEMO) (DEMO04)",))}


def test_a_notified_fire_moved_into_a_township_without_recipients_goes_to_the_county_at_once(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """北岗镇 was told; the supervisor moves the fire to 东河乡, which nobody would tell: the county hears at once,
    not 30 minutes after the move (the deadline of a township that was alerted)."""
    with http_receiver() as receiver:
        _recipient(factory, receiver, "DEMO01", "/town")
        _recipient(factory, receiver, "DEMO00", "/county", RecipientRole.COUNTY)
        number = _fire(factory, 0, BEIGANG)
        at = utcnow() + timedelta(seconds=1)
        assert worker_passes(factory, at) == [[]]
        assert _state(factory, number) == "notified"
        with transaction(factory) as session:
            incident = session.get_one(Incident, number)
            reassign_incident(session, incident, SUPERVISOR, township_code="DEMO02", county_code=None, note="属东河乡")
        assert worker_passes(factory, utcnow() + timedelta(seconds=2)) == [[number]]
        paths = [r.path for r in receiver.received()]
    assert paths == ["/town", "/county"]
    (event,) = escalation_events(factory, number)
    assert event.from_state == IncidentState.NOTIFIED.value
    assert json.loads(event.data)["unreachable"]["error"] == NO_ONE_IN_DONGHE


def test_a_fire_outside_every_unit_is_nobodys_to_escalate(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """Far outside 演示县: no township, no county, no supervisor to tell; it waits for a supervisor to assign it."""
    number = _fire(factory, 0, (126.5, 45.2))
    with factory() as session:
        incident = session.get_one(Incident, number)
        assert (incident.township_code, incident.county_code) == (None, None)
    assert worker_passes(factory, utcnow() + timedelta(hours=1)) == [[]]
    assert _state(factory, number) == "suspected"


def test_a_recipient_added_after_the_fire_is_told_of_it_instead(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """东河乡's group is added after its fire came in: the pass sends the group the fire's alert (late, but the
    township is told and its clock starts) rather than escalating a fire a township can now answer."""
    number = _fire(factory, 0, DONGHE)
    with http_receiver() as receiver:
        group = _recipient(factory, receiver, "DEMO02", "/town")
        assert worker_passes(factory, utcnow() + timedelta(seconds=1)) == [[]]
        received = [(r.path, r.json()["incident_id"], r.json()["kind"]) for r in receiver.received()]
    assert received == [("/town", number, "new")]
    assert alert_rows(factory, number) == [("new", group, "sent")]
    assert _state(factory, number) == "notified"


def test_fires_whose_alerts_were_all_withdrawn_are_told_nobody(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """`serve --demo`, then a start without it on the same database: the DEMO inbox recipients are retired and the
    fires' pending new-fire alerts withdrawn. Those alerts had counted as telling the townships: the fires were never
    alerted nor escalated, and the status listed their units for good. Now 北岗镇's fire, with nobody left to tell,
    goes to the county's own duty desk, and 东河乡's is sent to the real group added since."""
    with transaction(factory) as session:
        provide_demo_recipients(session, "http://127.0.0.1:9", "demo-secret")
    beigang, donghe = _fire(factory, 0, BEIGANG), _fire(factory, 1, DONGHE)
    with transaction(factory) as session:
        assert retire_demo_recipients(session) == (5, 2)
    with http_receiver() as receiver:
        county = _recipient(factory, receiver, "DEMO00", "/county", RecipientRole.COUNTY)
        group = _recipient(factory, receiver, "DEMO02", "/town")
        assert worker_passes(factory, utcnow() + timedelta(seconds=1)) == [[beigang]]
        received = sorted((r.path, r.json()["incident_id"], r.json()["kind"]) for r in receiver.received())
    assert received == [("/county", beigang, "escalation"), ("/town", donghe, "new")]
    assert alert_rows(factory, beigang)[-1] == ("escalation", county, "sent")
    assert alert_rows(factory, donghe)[-1] == ("new", group, "sent")
    (event,) = escalation_events(factory, beigang)
    data = json.loads(event.data)
    assert data["unreachable"] == {"unit": "DEMO01", "recipients": [], "error": "no recipients configured for DEMO01"}


def test_untold_fires_too_old_to_catch_up_on_are_left_to_the_supervisors_and_counted(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """东河乡's first group is added when its fires have waited untold: the one that came in 23 hours ago is sent its
    alert late; the one of 25 hours ago is left as it is (a day-old "new fire", or a county escalation for it, would
    bury the day's real alerts; after an upgrade every untold fire of the season would go out at once), and the
    system status counts it until a supervisor deals with it."""
    settings = Settings(alerts=SETTINGS.model_copy(update={"run_worker": False}))
    now = utcnow()
    recent, old = _fire(factory, 0, DONGHE), _fire(factory, 1, (125.75, 44.38))
    with transaction(factory) as session:
        for number, hours in ((recent, 23), (old, 25)):
            session.get_one(Incident, number).created_at = now - timedelta(hours=hours)

    def untold() -> tuple[str, ...] | None:
        with factory() as session:
            found = status.system_status(session, settings, now=now)
        return next((p.items for p in found.problems if p.code == "fires_left_untold"), None)

    assert untold() == (f"#{old}",)
    with http_receiver() as receiver:
        _recipient(factory, receiver, "DEMO02", "/town")
        _recipient(factory, receiver, "DEMO00", "/county", RecipientRole.COUNTY)
        assert worker_passes(factory, now) == [[]]
        assert worker_passes(factory, now + timedelta(minutes=31)) == [[recent]]  # on its deadline, from the late alert
        received = [(r.path, r.json()["incident_id"], r.json()["kind"]) for r in receiver.received()]
    assert received == [("/town", recent, "new"), ("/county", recent, "escalation")]
    assert (_state(factory, old), alert_rows(factory, old)) == ("suspected", [])
    assert untold() == (f"#{old}",)
    with transaction(factory) as session:  # a supervisor closes it as out of reach: the problem clears
        session.get_one(Incident, old).state = IncidentState.FALSE_ALARM.value
    assert untold() is None
