"""A drone sighting whose ray does not land: placed by a bearing wedge from the drone (a disc measured on the ground
when not even the bearing is known), never fused into a fire next to the drone that the frame does not show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.config import Settings
from service.incidents.sources import UNLOCATED_DRONE_RANGE_M, sighting_observation
from service.incidents.tables import Observation
from tests.conftest import shared_path
from tests.incidents.drone_app import drone_upload_client
from tests.video.helpers import with_xmp
from tests.video.test_patrol import CentreFireDetector
from video.camera import GEOD
from video.drone import extract_xmp_packet
from video.patrol import drone_sightings
from video.sighting import DroneSighting

DRONE = (40.5637811, -79.7649628)  # the H20T sample's position (lat, lon)


def _variant(tmp_path: Path, name: str, **fields: str) -> Path:
    """The H20T frame with some DJI XMP fields changed (``RelativeAltitude="+500.0"``)."""
    original = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    packet = extract_xmp_packet(original)
    assert packet is not None
    for field, value in fields.items():
        start = packet.index(f'drone-dji:{field}="'.encode())
        end = packet.index(b'"', start + len(field) + 12)
        packet = packet[:start] + f'drone-dji:{field}="{value}'.encode() + packet[end:]
    path = tmp_path / name
    path.write_bytes(with_xmp(original, packet))
    return path


def _near(tmp_path: Path) -> Path:
    """Looking down at 45° from 100 m, east: the fire lands about 90 m east of the drone."""
    return _variant(
        tmp_path, "near.jpg", RelativeAltitude="+100.0", AbsoluteAltitude="+305.0", GimbalPitchDegree="-45.00",
        GimbalYawDegree="+90.00",
    )  # fmt: skip


def _far(tmp_path: Path) -> Path:
    """At 500 m looking east at the horizon (pitch −2°): the ray lands beyond the 5 km the projection goes to."""
    return _variant(
        tmp_path, "far.jpg", RelativeAltitude="+500.0", AbsoluteAltitude="+705.0", GimbalPitchDegree="-2.00",
        GimbalYawDegree="+90.00",
    )  # fmt: skip


def _sighting(path: Path) -> DroneSighting:
    (upload,) = drone_sightings(path, CentreFireDetector(), drone_id="m2")
    sighting = upload.sighting
    assert isinstance(sighting, DroneSighting)
    return sighting


def _at(bearing_deg: float, distance_m: float) -> shapely.Point:
    lon, lat, _ = GEOD.fwd(DRONE[1], DRONE[0], bearing_deg, distance_m)
    return shapely.Point(lon, lat)


def test_a_ray_that_misses_is_placed_by_the_bearing_wedge(tmp_path: Path) -> None:
    far = _sighting(_far(tmp_path))
    assert far.ground_status == "beyond_max_range"
    region = sighting_observation(far).region
    assert region.contains(_at(90.0, 6000.0))  # along the view, where the ray went
    # The box is in the middle of the frame: whatever the lens, its bearing is the yaw's, ±2σ of the compass (4°)
    # and the box's own width (up to 5.7° with the widest lens).
    assert region.contains(_at(84.0, 3000.0))
    assert not region.contains(_at(75.0, 3000.0))
    assert not region.contains(_at(270.0, 3000.0))  # behind the drone
    assert not region.contains(_at(0.0, 3000.0))
    # Not next to the drone: looking at the horizon from 500 m, the frame's lowest rays land over 1 km away.
    assert not region.contains(_at(90.0, 100.0))
    assert not region.contains(_at(90.0, 900.0))
    assert not region.contains(_at(90.0, UNLOCATED_DRONE_RANGE_M + 500.0))


def test_without_a_yaw_the_drone_gets_a_disc_measured_on_the_ground(tmp_path: Path) -> None:
    far = _sighting(_far(tmp_path))
    no_yaw = far.model_copy(update={"drone": far.drone.model_copy(update={"gimbal_yaw_deg": None})})
    region = sighting_observation(no_yaw).region
    x0, y0, x1, y1 = region.bounds
    east_west = GEOD.inv(x0, DRONE[0], x1, DRONE[0])[2]
    north_south = GEOD.inv(DRONE[1], y0, DRONE[1], y1)[2]
    # It was a 500 m buffer in degrees: 2 × 500 m north-south but 2 × 380 m east-west at 40.6° N.
    assert east_west == pytest.approx(2 * UNLOCATED_DRONE_RANGE_M, rel=0.01)
    assert north_south == pytest.approx(2 * UNLOCATED_DRONE_RANGE_M, rel=0.01)
    # A yaw taken from the flight yaw is not in the record: the gimbal's 0 is not a bearing.
    from_flight = {"gimbal_yaw_deg": 0.0, "yaw_source": "FlightYawDegree (GimbalYawDegree was 0)"}
    flight_yaw = far.drone.model_copy(update=from_flight)
    assert sighting_observation(far.model_copy(update={"drone": flight_yaw})).region.equals(region)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    yield from drone_upload_client(Settings(data_dir=tmp_path / "var"), monkeypatch, (-79.90, 40.45, -79.60, 40.70))


def test_a_frame_of_the_horizon_is_not_fused_into_the_fire_below_the_drone(client: TestClient, tmp_path: Path) -> None:
    """The audit's repro: the same drone, one frame looking down at a fire 90 m east, one at the horizon 5 km+
    east. The second was placed at the drone in a 500 m circle and joined the first fire's incident."""
    token = client.post("/api/v1/auth/token", data={"username": "uav", "password": "device-password"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in (_near(tmp_path), _far(tmp_path))]
    response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "m2"}, files=files)
    assert response.status_code == 200, response.text
    near, far = response.json()
    assert (near["sightings"], far["sightings"]) == (1, 1)
    assert near["incidents"] != far["incidents"]
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        stored = session.scalars(select(Observation).where(Observation.incident_id == far["incidents"][0])).one()
        assert json.loads(stored.details)["ground_status"] == "beyond_max_range"
        # Its point is in the wedge, east of the drone, not the drone's own position.
        assert stored.longitude > DRONE[1] + 0.01
