"""Every table of the service, imported in one place for Alembic and for tests."""

from service.auth.tables import User
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.tables import Region, RegionImport

__all__ = ["Incident", "IncidentEvent", "Observation", "Region", "RegionImport", "User"]
