"""Camera and drone sightings through the API: fused into incidents, frames kept, two towers triangulated."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pyproj import Geod

from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.demo import load_demo
from service.incidents.states import Role
from service.main import create_app
from tests.conftest import without_alert_worker
from video.camera import sector_polygon
from video.sighting import GeoJsonPolygon, evidence_info

GEOD = Geod(ellps="WGS84")
FIRE = (125.60, 44.30)  # lon, lat inside the DEMO county
TOWERS = {"tower-a": (125.52, 44.24), "tower-b": (125.70, 44.23)}
T0 = datetime(2025, 10, 20, 6, 0, tzinfo=UTC)


def jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 255, 80, 40)).save(out, format="JPEG")
    return out.getvalue()


def camera_sighting(camera: str, minutes: int, noise_deg: float = 0.0) -> tuple[dict[str, Any], bytes]:
    lon, lat = TOWERS[camera]
    azimuth, _, _ = GEOD.inv(lon, lat, *FIRE)
    bearing = (azimuth + noise_deg) % 360
    wedge = sector_polygon(lat, lon, bearing - 1.0, bearing + 1.0, 20_000.0, 500.0)
    image = jpeg(minutes)
    sighting = {
        "kind": "camera",
        "sighting_key": f"camera/{camera}/p1/smoke/{minutes}/confirmed",
        "camera_id": camera,
        "preset_id": "p1",
        "captured_at": (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "frame_seq": minutes,
        "image_size": [64, 48],
        "event": {
            "class_name": "smoke",
            "state": "confirmed",
            "start_frame": 0,
            "confirm_frame": 4,
            "end_frame": None,
            "frame_index": 4,
            "cadence_s": 60,
            "first_seen_at": T0.isoformat(),
            "max_confidence": 0.7,
        },
        "boxes": [{"class_name": "smoke", "confidence": 0.7, "xyxy": [10, 10, 20, 20]}],
        "site": {
            "latitude": lat,
            "longitude": lon,
            "mast_height_m": 35,
            "ground_elevation_m": 200,
            "heading_offset_deg": 0,
        },
        "pose": {
            "pan_deg": bearing,
            "tilt_deg": -1,
            "zoom": 1,
            "roll_deg": 0,
            "sigma_pan_deg": 0.3,
            "sigma_tilt_deg": 0.1,
        },
        "bearing": {
            "centre_deg": bearing,
            "half_width_deg": 1.0,
            "box_half_width_deg": 0.4,
            "sigma_deg": 0.3,
            "min_range_m": 500,
            "max_range_m": 20_000,
        },
        "wedge": GeoJsonPolygon.from_shapely(wedge).model_dump(),
        "ground": None,
        "ground_status": "beyond_max_range",
        "model": {"name": "strawfire-yolov8n", "version": "test", "backend": "onnx"},
        "evidence": evidence_info(image, 64, 48).model_dump(),
    }
    return sighting, image


def drone_sighting(minutes: int) -> tuple[dict[str, Any], bytes, Any]:
    """A drone photo of the fire ``minutes`` after T0, located on the ground: (sighting, photo, ground point)."""
    import shapely

    point = shapely.Point(FIRE[0] + 0.0002, FIRE[1])
    square = shapely.buffer(point, 0.0001, cap_style="square")
    photo = jpeg(7 + minutes)
    drone = {
        "kind": "drone",
        "sighting_key": f"drone/m30t/DJI_0001/abc/{minutes}",
        "drone_id": "m30t",
        "image_name": "DJI_0001.JPG",
        "captured_at": (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "time_source": "exif",
        "image_size": [64, 48],
        "boxes": [{"class_name": "fire", "confidence": 0.9, "xyxy": [30, 20, 34, 26]}],
        "pixel": [32, 26],
        "drone": {
            "latitude": FIRE[1] - 0.001,
            "longitude": FIRE[0],
            "absolute_altitude_m": 320,
            "relative_altitude_m": 120,
            "gimbal_pitch_deg": -60,
            "gimbal_yaw_deg": 0,
            "gimbal_roll_deg": 0,
            "yaw_source": "gimbal",
            "make": "DJI",
            "model": "M30T",
        },
        "ground": {
            "point": {"type": "Point", "coordinates": [point.x, point.y]},
            "uncertainty": GeoJsonPolygon.from_shapely(square).model_dump(),
            "horizontal_range_m": 70,
            "near_range_m": 60,
            "far_range_m": 80,
            "far_open": False,
            "terrain": "flat_takeoff",
        },
        "ground_status": "hit",
        "model": {"name": "m", "version": "1", "backend": "onnx"},
        "evidence": evidence_info(photo, 64, 48).model_dump(),
    }
    return drone, photo, point


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(without_alert_worker(Settings(data_dir=tmp_path / "var")))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            load_demo(session)
            create_user(session, "cams", "device-password", Role.DEVICE, None)
            create_user(session, "admin", "admin-password", Role.ADMIN, None)
        yield test_client


def token(client: TestClient, name: str, password: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": name, "password": password})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def post(client: TestClient, headers: dict[str, str], path: str, sighting: dict[str, Any], image: bytes):  # type: ignore[no-untyped-def]
    import json

    return client.post(
        path,
        headers=headers,
        data={"sighting": json.dumps(sighting)},
        files={"evidence": ("frame.jpg", image, "image/jpeg")},
    )


def test_two_towers_fuse_and_triangulate(client: TestClient) -> None:
    device = token(client, "cams", "device-password")
    first = post(client, device, "/api/v1/observations/camera", *camera_sighting("tower-a", 0, noise_deg=0.2))
    assert first.status_code == 200, first.text
    assert first.json()["triangulated"] is False
    incident = first.json()["incident_id"]
    second = post(client, device, "/api/v1/observations/camera", *camera_sighting("tower-b", 3, noise_deg=-0.2))
    assert second.json() == {"duplicate": False, "incident_id": incident, "triangulated": True}
    again = post(client, device, "/api/v1/observations/camera", *camera_sighting("tower-b", 3, noise_deg=-0.2))
    assert again.json()["duplicate"] is True
    admin = token(client, "admin", "admin-password")
    detail = client.get(f"/api/v1/incidents/{incident}", headers=admin).json()
    assert sorted(o["kind"] for o in detail["observations"]) == ["camera", "camera", "triangulated"]
    assert detail["location_kind"] == "triangulated"
    _, _, error = GEOD.inv(detail["longitude"], detail["latitude"], *FIRE)
    assert error < 400  # ±0.2° at ~8 km from each tower
    assert detail["township_code"] == "DEMO01"
    photos = client.get(f"/api/v1/incidents/{incident}/evidence", headers=admin).json()
    assert len(photos) == 2
    assert all(p["flags"] == "" for p in photos)  # device frames are not expected to carry phone GPS


def test_bad_sightings_are_refused_with_the_field(client: TestClient) -> None:
    device = token(client, "cams", "device-password")
    sighting, image = camera_sighting("tower-a", 0)
    broken = dict(sighting, boxes=[{"class_name": "smoke", "confidence": 2.0, "xyxy": [0, 0, 1, 1]}])
    response = post(client, device, "/api/v1/observations/camera", broken, image)
    assert response.status_code == 422
    assert "boxes.0.confidence" in response.json()["detail"]
    wrong_file = post(client, device, "/api/v1/observations/camera", sighting, jpeg(99))
    assert wrong_file.status_code == 422
    assert "evidence" in wrong_file.json()["detail"]
    to_drone = post(client, device, "/api/v1/observations/drone", sighting, image)
    assert to_drone.status_code == 422
    admin_only = token(client, "admin", "admin-password")
    assert post(client, admin_only, "/api/v1/observations/camera", sighting, image).status_code == 200


def test_drone_sighting_locates_the_incident(client: TestClient) -> None:
    device = token(client, "cams", "device-password")
    camera, image = camera_sighting("tower-a", 0)
    post(client, device, "/api/v1/observations/camera", camera, image)
    drone, photo, point = drone_sighting(20)
    response = post(client, device, "/api/v1/observations/drone", drone, photo)
    assert response.status_code == 200, response.text
    admin = token(client, "admin", "admin-password")
    detail = client.get(f"/api/v1/incidents/{response.json()['incident_id']}", headers=admin).json()
    assert detail["location_kind"] == "drone"  # the most precise observation gives the location
    assert (round(detail["longitude"], 5), round(detail["latitude"], 5)) == (round(point.x, 5), round(point.y, 5))


def test_a_crossing_of_long_sighting_keys_fits_the_key_column() -> None:
    """Three towers' keys joined ran past the 200 characters observations.source_key holds (PostgreSQL refused the
    crossing, and the sighting's transaction with it); the crossing's key is now a digest of the set."""
    from service.flows import triangulated_key
    from video.errors import VideoError
    from video.sighting import parse_sighting

    keys = [f"camera/{name * 12}/p1/smoke/4-8/{x},10/confirmed" for name, x in (("a", 1), ("b", 2), ("c", 3))]
    key = triangulated_key(keys)
    assert key.startswith("tri:")
    assert len(key) <= 200
    assert triangulated_key(list(reversed(keys))) == key
    assert triangulated_key(keys[:2]) != key
    sighting, _ = camera_sighting("tower-a", 0)
    sighting["sighting_key"] = "k" * 201  # longer than the service stores: refused at the schema
    with pytest.raises(VideoError, match="sighting_key"):
        parse_sighting(sighting)
