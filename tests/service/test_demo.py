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
