"""Mask suggestions end to end: camera sightings → incidents → false alarms → suggested polygons (API and CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.auth.service import create_user
from service.config import AlertSettings, Settings
from service.db import transaction, utcnow
from service.demo import load_demo
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident
from service.main import create_app
from tests.incidents.test_sightings import TOWERS, camera_sighting, post, token

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
CHIMNEY = [[30, 4, 40, 30], [31, 2, 42, 28], [29, 5, 39, 31], [30, 3, 41, 29]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=data_dir, alerts=AlertSettings(run_worker=False)))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            load_demo(session)
            create_user(session, "cams", "device-password", Role.DEVICE, None)
            create_user(session, "admin", "admin-password", Role.ADMIN, None)
            create_user(session, "boss", "supervisor-password", Role.SUPERVISOR, "DEMO00")
        yield test_client


def chimney_incident(
    client: TestClient, day: int, box: list[int], reason: str, *, reopen: bool = False, again: bool = False
) -> int:
    """A sighting from tower-a's preset p1 on ``day`` (days apart: separate incidents), found a false alarm (then
    reopened, then found a false alarm ``again``)."""
    device = token(client, "cams", "device-password")
    sighting, image = camera_sighting("tower-a", day * 24 * 60)
    sighting["boxes"] = [{"class_name": "smoke", "confidence": 0.7, "xyxy": box}]
    response = post(client, device, "/api/v1/observations/camera", sighting, image)
    assert response.status_code == 200, response.text
    incident = int(response.json()["incident_id"])
    admin = token(client, "admin", "admin-password")
    moved = client.post(
        f"/api/v1/incidents/{incident}/transitions", headers=admin, json={"to": "false_alarm", "reason": reason}
    )
    assert moved.status_code == 200, moved.text
    for target in (["reopened"] if reopen else []) + (["false_alarm"] if again else []):
        body = {"to": target} | ({"reason": reason} if target == "false_alarm" else {})
        moved = client.post(f"/api/v1/incidents/{incident}/transitions", headers=admin, json=body)
        assert moved.status_code == 200, moved.text
    return incident


def test_false_alarms_from_one_place_become_a_suggestion(client: TestClient, data_dir: Path) -> None:
    registry = {
        "cameras": [
            {
                "id": "tower-a",
                "site": {"latitude": TOWERS["tower-a"][1], "longitude": TOWERS["tower-a"][0], "mast_height_m": 35},
                "lens": {"type": "intrinsics", "width": 64, "height": 48, "fx": 60.0, "fy": 60.0, "cx": 32.0,
                         "cy": 24.0},
                "presets": [{"id": "p1", "pan_deg": 60.0, "tilt_deg": -1.0}],
            }
        ]
    }  # fmt: skip
    admin = token(client, "admin", "admin-password")
    assert client.put("/api/v1/cameras", headers=admin, json=registry).status_code == 200
    counted = [chimney_incident(client, day, box, "industrial_heat") for day, box in enumerate(CHIMNEY[:2])]
    counted.append(chimney_incident(client, 2, CHIMNEY[2], "not_found"))
    chimney_incident(client, 3, CHIMNEY[3], "permitted_burn")  # a fire after all: not a reason to mask
    chimney_incident(client, 4, CHIMNEY[3], "not_found", reopen=True)  # reopened: maybe a fire
    chimney_incident(client, 5, [2, 40, 8, 46], "not_found")  # a one-off elsewhere
    counted.append(chimney_incident(client, 6, CHIMNEY[3], "not_found", reopen=True, again=True))  # found twice
    fire_after_all = chimney_incident(client, 7, CHIMNEY[3], "not_found", reopen=True)
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        # reopened, then handled as a fire and closed: the old false-alarm reason stays on the row
        session.get(Incident, fire_after_all).state = IncidentState.CLOSED.value  # type: ignore[union-attr]
        # the demo scenario's camera observations carry no boxes: they must not break the query
        for demo in session.scalars(select(Incident).where(Incident.id != fire_after_all)):
            if demo.false_alarm_at is None:
                demo.state, demo.false_alarm_reason, demo.false_alarm_at = "false_alarm", "not_found", utcnow()

    response = client.get("/api/v1/cameras/mask-suggestions", headers=admin)
    assert response.status_code == 200, response.text
    [suggestion] = response.json()
    assert suggestion | {"polygon": None, "frame_fraction": None} == {
        "camera_id": "tower-a",
        "preset_id": "p1",
        "registered": True,
        "status": "suggested",
        "polygon": None,
        "incidents": counted,
        "boxes": 4,
        "frame_size": [64, 48],
        "frame_fraction": None,
    }
    assert suggestion["polygon"] == [[27.7, 0.0], [43.3, 0.0], [43.3, 33.9], [27.7, 33.9]]  # grown, kept in the frame
    assert suggestion["frame_fraction"] == pytest.approx(15.6 * 33.9 / (64 * 48), abs=1e-3)
    boss = token(client, "boss", "supervisor-password")
    assert client.get("/api/v1/cameras/mask-suggestions", headers=boss).status_code == 403
    stricter = client.get("/api/v1/cameras/mask-suggestions?min_incidents=5", headers=admin)
    assert stricter.json() == []

    # Once the admin adds the polygon, the same alarms are reported as masked.
    registry["cameras"][0]["presets"][0]["ignore_mask"] = [suggestion["polygon"]]  # type: ignore[index]
    assert client.put("/api/v1/cameras", headers=admin, json=registry).status_code == 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env["STRAWFIRE_DATA_DIR"] = str(data_dir)
    cli = subprocess.run(
        [STRAWFIRE, "camera", "suggest-masks", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0, cli.stderr
    [masked] = json.loads(cli.stdout)
    assert (masked["status"], masked["incidents"]) == ("masked", counted)
    table = subprocess.run([STRAWFIRE, "camera", "suggest-masks", "--days", "1"], env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "tower-a/p1" in table.stdout
    assert "masked" in table.stdout


def test_no_false_alarms_no_suggestions(client: TestClient) -> None:
    admin = token(client, "admin", "admin-password")
    assert client.get("/api/v1/cameras/mask-suggestions", headers=admin).json() == []
    assert client.get("/api/v1/cameras/mask-suggestions?days=0", headers=admin).status_code == 422


def test_a_preset_no_longer_registered_is_still_reported(client: TestClient) -> None:
    chimney_incident(client, 0, CHIMNEY[0], "not_found")
    admin = token(client, "admin", "admin-password")
    [suggestion] = client.get("/api/v1/cameras/mask-suggestions?min_incidents=1", headers=admin).json()
    assert (suggestion["camera_id"], suggestion["registered"], suggestion["status"]) == ("tower-a", False, "suggested")
