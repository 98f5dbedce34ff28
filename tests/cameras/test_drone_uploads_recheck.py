"""Issue #5 re-check, drone image uploads to the service: each refused image is named once in its error."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import service.drone_uploads as drone_uploads
from tests.cameras.test_registry_service import login
from tests.conftest import shared_path
from tests.video.test_patrol import CentreFireDetector


def test_refused_images_are_named_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader's messages already start with the file: the upload prefixed the name again ("x.jpg: x.jpg: …")."""
    monkeypatch.setattr(drone_uploads, "_detectors", {False: CentreFireDetector()})
    headers = login(client, "worker", "device-password")
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 30)).save(png, format="PNG")
    files = [
        ("images", ("M3T_DJI_0001_R.JPG", shared_path("drone", "M3T_DJI_0001_R.JPG").read_bytes(), "image/jpeg")),
        ("images", ("red.png", png.getvalue(), "image/png")),
        ("images", ("empty.jpg", b"", "image/jpeg")),
    ]
    response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "m3t-01"}, files=files)
    assert response.status_code == 200, response.text
    stripped, png_result, empty = response.json()
    assert stripped["error"] == "M3T_DJI_0001_R.JPG: no drone position (missing: GpsLatitude, GpsLongitude)"
    assert png_result["error"] == "red.png: not a JPEG file"
    assert empty["error"].startswith("empty.jpg: not a readable image")
    assert [r["sightings"] for r in response.json()] == [0, 0, 0]
