"""An escalation's log and note word the unreached unit by its level: a county-level unit is not a "township"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import shapely
from sqlalchemy.engine import Engine

from service.alerts.escalation import escalate_due
from service.config import Settings
from service.db import make_session_factory, transaction
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.tables import Incident
from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import RegionIndexCache, import_units
from service.regions.types import RegionLevel, RegionUnit
from tests.alerts.conftest import escalation_events
from tests.alerts.test_outbox import ADMIN


def test_a_districts_unreached_fire_is_logged_as_the_unit_it_is(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Counties loaded without townships: a fire in 南关区 (220102, a district) is its own to act on. With nobody
    to alert there, the escalation said "township 220102 could not be reached"."""
    factory = make_session_factory(engine)
    district = RegionUnit("220102", "南关区", RegionLevel.COUNTY, shapely.box(125.3, 43.8, 125.4, 43.9))
    observed = datetime.now(UTC) - timedelta(minutes=5)
    fire = ObservationIn(
        ObservationKind.SATELLITE, "sat-1", observed, 43.85, 125.35, shapely.box(125.347, 43.847, 125.353, 43.853), 0.8
    )
    with transaction(factory) as session:
        import_units(session, [district], level=RegionLevel.COUNTY, crs=SourceCRS("wgs84"), report=ReadReport("t"))
        (number,) = ingest_observations(
            session, [fire], indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
        ).new_incidents
        incident = session.get_one(Incident, number)
        assert (incident.township_code, incident.county_code) == (None, "220102")
    with caplog.at_level("WARNING", "strawfire.alerts"), transaction(factory) as session:
        assert escalate_due(session, datetime.now(UTC)).escalated == [number]
    said = [r.getMessage() for r in caplog.records if "could not be reached" in r.getMessage()]
    assert said == [f"incident {number} escalated: unit 220102 (南关区) could not be reached"]
    (event,) = escalation_events(factory, number)
    assert event.note.startswith("the unit could not be reached: the new-fire alert to 220102 could not be queued")
