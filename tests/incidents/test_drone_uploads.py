"""A flight's DJI images uploaded to the service: detected, located by ray projection, ingested; bad ones named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient

import service.drone_uploads as drone_uploads
from service.auth.service import create_user
from service.config import DetectorSettings, Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import import_units
from service.regions.types import RegionLevel, RegionUnit
from tests.conftest import shared_path, without_alert_worker
from tests.video.test_patrol import CentreFireDetector


@pytest.fixture(params=[False, True], ids=["model", "second-opinion"])
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    # The real frames show no fire: a stand-in detector finds one in a fixed box; the test is about the flow. The
    # service picks its detector by the second-opinion setting; the other one fails the upload if it is used.
    second_opinion: bool = request.param
    monkeypatch.setattr(drone_uploads, "_detectors", {second_opinion: CentreFireDetector(), not second_opinion: None})
    settings = Settings(data_dir=tmp_path / "var", detector=DetectorSettings(second_opinion=second_opinion))
    app = create_app(without_alert_worker(settings))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            # The H20T sample was flown near 40.56 N, 79.76 W: a unit around it so the incident has an owner.
            unit = RegionUnit("T1", "test unit", RegionLevel.COUNTY, shapely.box(-79.80, 40.53, -79.73, 40.60))
            import_units(session, [unit], level=RegionLevel.COUNTY, crs=SourceCRS("wgs84"), report=ReadReport("t"))
            create_user(session, "uav", "device-password", Role.DEVICE, None)
        yield test_client


def test_flight_upload(client: TestClient) -> None:
    token = client.post("/api/v1/auth/token", data={"username": "uav", "password": "device-password"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    names = ("DJI_H20T.jpg", "M30T_DJI_0001_R.JPG")
    files = [("images", (name, shared_path("drone", name).read_bytes(), "image/jpeg")) for name in names]
    response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "h20t-01"}, files=files)
    assert response.status_code == 200, response.text
    located, stripped = response.json()
    assert located["image"] == "DJI_H20T.jpg"
    assert located["sightings"] == 1  # the 0.1-confidence box is below the operating threshold
    assert located["error"] is None
    incident = client.get(f"/api/v1/incidents/{located['incidents'][0]}", headers=headers)
    assert incident.status_code == 403  # devices post; they do not read incidents
    assert stripped["sightings"] == 0
    assert "GpsLatitude" in stripped["error"]
    again = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "h20t-01"}, files=files)
    assert again.json()[0]["incidents"] == located["incidents"]  # the same sighting key: no new incident


def test_odd_names_a_refused_image_and_a_renamed_copy_each_get_their_own_answer(client: TestClient) -> None:
    """A name the file system refuses ("..", 90 Chinese characters) answered 500 for the whole batch; an image the
    evidence check refuses (over 60 MP) rolled back the good images, named by its hash; the same photo under
    another name made a second observation."""
    import io

    from PIL import Image

    token = client.post("/api/v1/auth/token", data={"username": "uav", "password": "device-password"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    frame = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    huge = io.BytesIO()
    Image.new("RGB", (8000, 7700), (90, 90, 90)).save(huge, format="JPEG", quality=20)
    long_name = "无人机航拍" * 18 + ".jpg"
    files = [
        ("images", ("..", frame, "image/jpeg")),
        ("images", ("big.jpg", huge.getvalue(), "image/jpeg")),
        ("images", (long_name, frame, "image/jpeg")),
        ("images", ("DJI_H20T (1).jpg", frame, "image/jpeg")),
    ]
    response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "h20t-01"}, files=files)
    assert response.status_code == 200, response.text
    dots, big, long, renamed = response.json()
    assert (dots["image"], dots["sightings"], dots["error"]) == ("..", 1, None)  # reported as sent
    assert big["sightings"] == 0
    assert big["error"].startswith("big.jpg: ")
    assert (long["image"], long["error"]) == (long_name, None)
    # The same photo three times under three names: one sighting, one incident, not three observations.
    assert long["incidents"] == renamed["incidents"] == dots["incidents"]


def test_second_opinion_setting_loads_the_model_with_the_flame_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from detector.second_opinion import SecondOpinion
    from tests.detector.conftest import committed_model

    committed_model()
    monkeypatch.setattr(drone_uploads, "_detectors", {})
    judged = drone_uploads.shared_detector(True)
    assert isinstance(judged, SecondOpinion)
    assert judged.info.backend.endswith("+rules")  # onnx on a CPU, torch on a GPU
    assert drone_uploads.shared_detector(True) is judged
    assert not isinstance(drone_uploads.shared_detector(), SecondOpinion)
    monkeypatch.setenv("STRAWFIRE_DETECTOR__SECOND_OPINION", "true")
    assert Settings().detector.second_opinion


def test_second_opinion_without_a_model_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import detector.backends
    from detector.manifest import ModelError
    from service.errors import ConfigError

    def no_model(*args: object, **kwargs: object) -> None:
        raise ModelError("no model manifest at models/manifest.json")

    monkeypatch.setattr(drone_uploads, "_detectors", {})
    monkeypatch.setattr(detector.backends, "load_detector", no_model)
    app = create_app(Settings(data_dir=tmp_path / "var", detector=DetectorSettings(second_opinion=True)))
    with pytest.raises(ConfigError, match=r"detector\.second_opinion is on, but no model manifest"), TestClient(app):
        pass
