"""Every table of the service, imported in one place for Alembic and for tests."""

from service.alerts.tables import Alert, Recipient
from service.auth.tables import User
from service.cameras.tables import Camera, PresetHeartbeat
from service.evidence.tables import Evidence
from service.history.tables import HotspotHistory
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.tables import Region, RegionImport
from service.status.tables import ComponentRun

__all__ = [
    "Alert",
    "Camera",
    "ComponentRun",
    "Evidence",
    "HotspotHistory",
    "Incident",
    "IncidentEvent",
    "Observation",
    "PresetHeartbeat",
    "Recipient",
    "Region",
    "RegionImport",
    "User",
]
