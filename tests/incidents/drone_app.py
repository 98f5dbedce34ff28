"""A service app for drone-upload tests: a stand-in detector that finds a fire in a fixed box of any real frame,
one county around where the DJI_H20T sample was flown, and a device user ``uav``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import shapely
from fastapi.testclient import TestClient

import service.drone_uploads as drone_uploads
from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import import_units
from service.regions.types import RegionLevel, RegionUnit
from tests.conftest import without_alert_worker
from tests.video.test_patrol import CentreFireDetector

#: Around the H20T sample's position (40.56 N, 79.76 W): the incidents of its frames have an owner.
H20T_COUNTY = (-79.80, 40.53, -79.73, 40.60)
DEVICE_PASSWORD = "device-password"


def drone_upload_client(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, county: tuple[float, float, float, float] = H20T_COUNTY
) -> Iterator[TestClient]:
    """Yield a client of the app (for a fixture: ``yield from``)."""
    monkeypatch.setattr(drone_uploads, "_detectors", {False: CentreFireDetector()})
    app = create_app(without_alert_worker(settings))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            unit = RegionUnit("T1", "test unit", RegionLevel.COUNTY, shapely.box(*county))
            import_units(session, [unit], level=RegionLevel.COUNTY, crs=SourceCRS("wgs84"), report=ReadReport("t"))
            create_user(session, "uav", DEVICE_PASSWORD, Role.DEVICE, None)
        yield test_client
