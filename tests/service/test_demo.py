"""The generated DEMO scenario: incidents in several states and DEMO users, loaded once, never over real data."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.engine import Engine

from service.auth.tables import User
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo, load_demo_scenario
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache


def test_scenario_has_incidents_in_several_states_and_loads_once(engine: Engine) -> None:
    factory = make_session_factory(engine)
    indexes = RegionIndexCache(500)
    with transaction(factory) as session:
        assert load_demo(session)
        created, users = load_demo_scenario(session, Settings(), indexes)
    assert created == 12
    assert users == ["demo-admin", "demo-supervisor", "demo-patrol"]
    with factory() as session:
        states = Counter(session.scalars(select(Incident.state)))
        assert states["closed"] == 2
        assert states["on_site"] == 1
        assert states["notified"] == 1
        assert states["suspected"] == 8
        assert {u.role for u in session.scalars(select(User))} == {"admin", "supervisor", "patrol"}
    with transaction(factory) as session:
        assert load_demo_scenario(session, Settings(), indexes) == (0, [])


def test_every_demo_move_is_one_its_user_may_make(engine: Engine) -> None:
    """demo-patrol (DEMO01) had acknowledged and fed back a fire in DEMO04 and one outside every township, which
    the API would have refused it (404): each recorded move's user must see the incident and hold a role the
    lifecycle lets make that move, and demo-patrol acts only in its own township."""
    from service.auth.service import Principal
    from service.incidents.states import IncidentState, Role, check_transition
    from service.incidents.tables import IncidentEvent

    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
        load_demo_scenario(session, Settings(), RegionIndexCache(500))
    with factory() as session:
        users = {u.username: Principal(u.username, Role(u.role), u.unit_code) for u in session.scalars(select(User))}
        moves = session.execute(
            select(IncidentEvent, Incident)
            .join(Incident, Incident.id == IncidentEvent.incident_id)
            .where(IncidentEvent.kind == "transition", IncidentEvent.actor.in_(users))
        ).all()
        assert len(moves) == 12  # every step but the service's notifications
        for event, incident in moves:
            user = users[event.actor]
            assert user.can_see(incident), (event.actor, incident.township_code)
            assert check_transition(IncidentState(event.from_state), IncidentState(event.to_state), user.role) is None
        patrol_townships = {incident.township_code for event, incident in moves if event.actor == "demo-patrol"}
        assert patrol_townships == {"DEMO01"}
