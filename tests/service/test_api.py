"""The HTTP API on the embedded default with the DEMO region."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from tests.conftest import without_alert_worker


def signed_in_device(settings: Settings) -> Iterator[TestClient]:
    """A client of the service on ``settings``, signed in as the device user ``cam`` (for a fixture: ``yield from``)."""
    app = create_app(without_alert_worker(settings))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "cam", "device-password", Role.DEVICE, None)
        token = test_client.post("/api/v1/auth/token", data={"username": "cam", "password": "device-password"})
        test_client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield test_client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from signed_in_device(Settings(data_dir=tmp_path / "var", demo=True))


def test_regions_need_a_signed_in_user(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    assert client.get("/api/v1/regions", headers=anonymous).status_code == 401
    assert client.post("/api/v1/regions/assign", json={}, headers=anonymous).status_code == 401


def test_home_docs_and_openapi(client: TestClient) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert "DEMO" in home.text
    assert "北岗镇 (DEMO)" in home.text
    assert client.get("/docs").status_code == 200
    assert "/api/v1/regions/assign" in client.get("/openapi.json").json()["paths"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_regions_listing_and_geojson(client: TestClient) -> None:
    townships = client.get("/api/v1/regions", params={"level": "township"}).json()
    assert [t["code"] for t in townships] == ["DEMO01", "DEMO02", "DEMO03", "DEMO04"]
    assert all(t["parent_code"] == "DEMO00" for t in townships)
    feature = client.get("/api/v1/regions/township/DEMO02").json()
    assert feature["geometry"]["type"] == "Polygon"
    collection = client.get("/api/v1/regions/geojson", params={"level": "county"}).json()
    assert len(collection["features"]) == 1
    assert client.get("/api/v1/regions/township/NOPE").status_code == 404
    assert client.get("/api/v1/regions", params={"level": "planet"}).status_code == 422


def test_assign_points_and_footprints(client: TestClient) -> None:
    body = {
        "points": [
            {"latitude": 44.35, "longitude": 125.55},
            {"latitude": 44.2, "longitude": 125.75},
            {"latitude": 30.0, "longitude": 100.0},
        ],
        "footprints": [
            {
                "type": "Polygon",
                "coordinates": [[[125.64, 44.36], [125.69, 44.36], [125.69, 44.38], [125.64, 44.38], [125.64, 44.36]]],
            }
        ],
    }
    response = client.post("/api/v1/regions/assign", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["level"] == "township"
    assert [p["region_code"] for p in data["points"]] == ["DEMO01", "DEMO03", None]
    assert [p["status"] for p in data["points"]] == ["inside", "inside", "outside"]
    shares = data["footprints"][0]["shares"]
    assert {s["region_code"] for s in shares} == {"DEMO01", "DEMO02"}
    assert sum(s["share"] for s in shares) == pytest.approx(1.0)
    county = client.post("/api/v1/regions/assign", json={"level": "county", "points": body["points"][:1]})
    assert county.json()["points"][0]["region_code"] == "DEMO00"


def test_assign_rejects_bad_input(client: TestClient) -> None:
    assert client.post("/api/v1/regions/assign", json={"points": [{"latitude": 91, "longitude": 0}]}).status_code == 422
    bad = client.post("/api/v1/regions/assign", json={"footprints": [{"type": "Point", "coordinates": [1, 2]}]})
    assert bad.status_code == 422
    assert "footprints[0]" in bad.json()["detail"]
    assert client.post("/api/v1/regions/assign", json={"level": "village"}).status_code == 404
