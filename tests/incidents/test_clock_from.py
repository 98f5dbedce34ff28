"""The incident API says when the deadline running now started (``clock_from``), counting from a move to another
unit as the escalation timer does (SQLite and PostgreSQL).

The dashboard measured lateness from ``notified_at``: a fire 北岗镇 was alerted of 28 minutes ago and a supervisor
then moved to 东河乡 showed as 28 minutes late in 东河乡's queue the moment it arrived, while the escalation timer
gave 东河乡 its full 15 minutes from the move.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from service.alerts.escalation import moved_at
from service.auth.service import SYSTEM
from service.db import transaction, utcnow
from service.incidents.moves import moves_of
from service.incidents.service import transition
from service.incidents.states import IncidentState
from service.incidents.tables import Incident, IncidentEvent
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points
from tests.incidents.test_incidents_paging import app, observe  # noqa: F401  (the fixture: demo county, admin)


def _notify(application: FastAPI, incident_id: int, at: datetime) -> None:
    with transaction(application.state.session_factory) as session:
        transition(session, session.get_one(Incident, incident_id), IncidentState.NOTIFIED, SYSTEM, at=at)


def _elsewhere(application: FastAPI, incident_id: int) -> str:
    """A township of the demo county that the incident is not in."""
    with application.state.session_factory() as session:
        here = session.get_one(Incident, incident_id).township_code
    return "DEMO02" if here != "DEMO02" else "DEMO03"


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def test_clock_from_is_the_later_of_the_states_own_start_and_the_latest_move(
    app: tuple[FastAPI, TestClient],  # noqa: F811
) -> None:
    application, client = app
    stays, moves, waits = observe(application, (0, 0), (1, 0), (2, 0))
    notified = utcnow() - timedelta(minutes=28)
    for incident_id in (stays, moves):
        _notify(application, incident_id, notified)
    reassigned = client.post(
        f"/api/v1/incidents/{moves}/assignment",
        json={"township_code": _elsewhere(application, moves), "note": "地块属邻镇"},
    )
    assert reassigned.status_code == 200, reassigned.text
    with application.state.session_factory() as session:
        move = moved_at(session, [moves])[moves]
    assert _when(reassigned.json()["clock_from"]) == move

    listed = {row["id"]: row for row in client.get("/api/v1/incidents").json()}
    assert _when(listed[stays]["clock_from"]) == notified
    assert _when(listed[moves]["clock_from"]) == move
    assert _when(listed[moves]["notified_at"]) == notified  # the notification itself is what it was
    assert listed[waits]["clock_from"] is None  # suspected: the township has not been told, no deadline runs
    detail = client.get(f"/api/v1/incidents/{moves}").json()
    assert _when(detail["clock_from"]) == move

    # 东河乡 acknowledges: the on-site deadline runs from the acknowledgement, after the move.
    acknowledged = client.post(f"/api/v1/incidents/{moves}/transitions", json={"to": "acknowledged"})
    assert acknowledged.status_code == 200, acknowledged.text
    assert _when(acknowledged.json()["clock_from"]) == _when(acknowledged.json()["acknowledged_at"])
    # On site: no township deadline runs any more.
    on_site = client.post(f"/api/v1/incidents/{moves}/transitions", json={"to": "on_site"})
    assert on_site.json()["clock_from"] is None


def test_a_list_page_reads_the_moves_in_one_query(app: tuple[FastAPI, TestClient]) -> None:  # noqa: F811
    """As many statements for a page of one notified fire as for a page of eight moved ones (no query per row)."""
    application, client = app
    engine = application.state.session_factory.kw["bind"]
    first, *others = observe(application, *[(n, 0) for n in range(8)])
    notified = utcnow() - timedelta(minutes=5)

    def statements(params: dict[str, str]) -> list[str]:
        seen: list[str] = []

        def record(conn: object, cursor: object, statement: str, *rest: object) -> None:
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            assert client.get("/api/v1/incidents", params=params).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return seen

    _notify(application, first, notified)
    one = statements({"state": "notified"})
    for incident_id in others:
        _notify(application, incident_id, notified)
        moved = client.post(
            f"/api/v1/incidents/{incident_id}/assignment",
            json={"township_code": _elsewhere(application, incident_id), "note": "地块属邻镇"},
        )
        assert moved.status_code == 200, moved.text
    many = statements({"state": "notified"})
    assert len(many) == len(one)
    assert sum("incident_events" in s for s in many) == 1
    with application.state.session_factory() as session:
        reassigned = session.scalars(select(IncidentEvent).where(IncidentEvent.kind == "reassigned")).all()
    assert len(reassigned) == len(others)


def test_the_timer_the_api_and_the_statistics_read_the_same_moves(
    app: tuple[FastAPI, TestClient],  # noqa: F811
) -> None:
    """Confirmed in its township (no move), moved to a neighbouring township (named again there: refused, nothing
    recorded), moved back: two moves in time order for the statistics, the latest for the escalation timer and
    ``clock_from``, from one loader (``moves_of``)."""
    application, client = app
    (number,) = observe(application, (0, 0))
    _notify(application, number, utcnow() - timedelta(minutes=10))
    with application.state.session_factory() as session:
        home = session.get_one(Incident, number).township_code
    neighbour = _elsewhere(application, number)
    for township, status in ((home, 200), (neighbour, 200), (neighbour, 409), (home, 200)):
        moved = client.post(f"/api/v1/incidents/{number}/assignment", json={"township_code": township, "note": "核实"})
        assert moved.status_code == status, moved.text
    with application.state.session_factory() as session:
        moves = moves_of(session, [number])[number]
        (fire_point,) = load_fire_points(session, parse_period("2025-10"))
        assert moved_at(session, [number]) == {number: moves[-1]}
        recorded = session.scalars(select(IncidentEvent).where(IncidentEvent.kind == "reassigned")).all()
    assert len(recorded) == 3  # the confirmation, the two moves; not the refused one
    assert len(moves) == 2
    assert moves == sorted(moves)
    assert fire_point.moves == tuple(moves)
    assert _when(client.get(f"/api/v1/incidents/{number}").json()["clock_from"]) == moves[-1]
