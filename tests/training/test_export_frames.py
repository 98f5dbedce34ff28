"""Judged sighting frames exported for labelling: outcome rule, YOLO folders, the CLI, and the way back in
through ``strawfire detector dataset build --extra-sets``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.evidence.service import path_of
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from service.training.service import export_frames, judged_frames, judged_outcome
from tests.incidents.test_sightings import camera_sighting, drone_sighting, post, token
from tests.incidents.test_sightings import client as client  # the sightings tests' service: demo, cams, admin

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
T = datetime(2026, 10, 1, tzinfo=UTC)


def incident(state: IncidentState, **times: object) -> Incident:
    return Incident(state=state.value, **times)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (incident(IncidentState.FALSE_ALARM, false_alarm_reason="not_found", false_alarm_at=T), "nothing"),
        (incident(IncidentState.CLOSED, false_alarm_reason="not_found", false_alarm_at=T), "nothing"),
        (incident(IncidentState.FALSE_ALARM, false_alarm_reason="industrial_heat", false_alarm_at=T), "seen"),
        (incident(IncidentState.FALSE_ALARM, false_alarm_reason="permitted_burn", false_alarm_at=T), "seen"),
        (incident(IncidentState.EXTINGUISHED, extinguished_at=T), "seen"),
        (incident(IncidentState.VERIFIED), "seen"),
        # reopened after the false alarm, then handled as a fire and closed: the old reason stays on the row
        (
            incident(
                IncidentState.CLOSED,
                false_alarm_reason="not_found",
                false_alarm_at=T,
                reopened_at=T + timedelta(hours=1),
            ),
            "seen",
        ),
        # reopened and not judged again: nobody knows yet
        (
            incident(
                IncidentState.REOPENED, false_alarm_reason="not_found", false_alarm_at=T, reopened_at=T + timedelta(1)
            ),
            None,
        ),
        # a fire was put out, then the incident reopened and called a false alarm: the frames showed the fire
        (
            incident(
                IncidentState.FALSE_ALARM,
                extinguished_at=T,
                reopened_at=T + timedelta(hours=2),
                false_alarm_reason="not_found",
                false_alarm_at=T + timedelta(hours=3),
            ),
            "seen",
        ),
        (incident(IncidentState.ACKNOWLEDGED, extinguished_at=T, reopened_at=T + timedelta(hours=2)), "seen"),
        (incident(IncidentState.SUSPECTED), None),
        (incident(IncidentState.ON_SITE), None),
        (incident(IncidentState.ESCALATED), None),
    ],
)
def test_judged_outcome(row: Incident, expected: str | None) -> None:
    assert judged_outcome(row) == expected


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"  # where the sightings tests' service keeps its data


def sighting_incident(
    client: TestClient, day: int, box: list[int], moves: list[dict[str, str]], *, drone: bool = False
) -> int:
    """A tower-a sighting on ``day`` (days apart: separate incidents), and with ``drone`` a drone photo of the same
    fire 20 minutes later, moved through ``moves``."""
    device = token(client, "cams", "device-password")
    sighting, image = camera_sighting("tower-a", day * 24 * 60)
    sighting["boxes"] = [
        {"class_name": "smoke", "confidence": 0.7, "xyxy": box},
        {"class_name": "fire", "confidence": 0.5, "xyxy": [0, 40, 4, 60]},  # past the bottom edge: clipped
    ]
    response = post(client, device, "/api/v1/observations/camera", sighting, image)
    assert response.status_code == 200, response.text
    number = int(response.json()["incident_id"])
    if drone:
        photo = drone_sighting(day * 24 * 60 + 20)
        fused = post(client, device, "/api/v1/observations/drone", *photo[:2])
        assert fused.json()["incident_id"] == number, fused.text
    admin = token(client, "admin", "admin-password")
    for body in moves:
        moved = client.post(f"/api/v1/incidents/{number}/transitions", headers=admin, json=body)
        assert moved.status_code == 200, moved.text
    return number


def test_export_judged_frames_end_to_end(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    from detector.extra_sets import load_extra_sets

    nothing = sighting_incident(client, 0, [10, 10, 20, 20], [{"to": "false_alarm", "reason": "not_found"}])
    chimney = sighting_incident(client, 1, [30, 4, 40, 30], [{"to": "false_alarm", "reason": "industrial_heat"}])
    handled = [{"to": "acknowledged"}, {"to": "on_site"}, {"to": "extinguished"}]
    fire = sighting_incident(client, 2, [12, 8, 28, 24], handled, drone=True)
    sighting_incident(client, 3, [10, 10, 20, 20], [])  # still open: not judged
    sighting_incident(
        client, 4, [10, 10, 20, 20], [{"to": "false_alarm", "reason": "not_found"}, {"to": "reopened"}]
    )  # reopened: not judged any more

    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        frames = judged_frames(session, since=T - timedelta(days=400))
    assert [(f.incident_id, f.outcome, f.kind) for f in frames] == [
        (nothing, "nothing", "camera"),
        (chimney, "seen", "camera"),
        (fire, "seen", "camera"),
        (fire, "seen", "drone"),  # every frame of a judged incident
    ]
    assert [f.position for f in frames[2:]] == ["tower-a-p1", "m30t"]
    assert frames[2].boxes[0] == ("smoke", 0.7, (12.0, 8.0, 28.0, 24.0))

    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env["STRAWFIRE_DATA_DIR"] = str(data_dir)
    out = tmp_path / "export"
    result = subprocess.run(
        [STRAWFIRE, "training", "export-frames", str(out), "--days", "3660"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 frames with fire or smoke seen" in result.stdout
    assert "1 with nothing found on site" in result.stdout
    labels = out / "labels"
    assert sorted(p.name for p in labels.iterdir()) == [
        "m30t_20251022062000.txt",
        "tower-a-p1_20251020060000.txt",  # day 0: nothing found on site
        "tower-a-p1_20251021060000.txt",
        "tower-a-p1_20251022060000.txt",
    ]
    assert (labels / "m30t_20251022062000.txt").read_text() == "0 0.500000 0.479167 0.062500 0.125000\n"
    # The camera frames are 64x48: the smoke box and the fire box clipped to x 0..4, y 40..48.
    assert (labels / "tower-a-p1_20251022060000.txt").read_text().splitlines() == [
        "1 0.312500 0.333333 0.250000 0.333333",
        "0 0.031250 0.916667 0.062500 0.166667",
    ]
    assert (labels / "tower-a-p1_20251020060000.txt").read_text() == ""  # a negative
    assert (out / "images" / "tower-a-p1_20251020060000.jpg").read_bytes()[:2] == b"\xff\xd8"
    with (out / "frames.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["outcome"], r["draft_label"], r["incident"], r["false_alarm_reason"]) for r in rows] == [
        ("nothing", "no", str(nothing), "not_found"),
        ("seen", "yes", str(chimney), "industrial_heat"),
        ("seen", "yes", str(fire), ""),
        ("seen", "yes", str(fire), ""),
    ]
    # The way back in: the written TOML is a valid --extra-sets file naming the folder and the licence.
    [extra] = load_extra_sets(out / "extra_sets.toml")
    assert (extra.name, extra.path, extra.split) == ("field_frames", out.resolve(), "sequence")
    assert extra.licence == "own frames of this deployment"
    assert "checked before training" in extra.note

    again = subprocess.run(
        [STRAWFIRE, "training", "export-frames", str(out), "--days", "3660"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 2
    assert "not an empty folder" in again.stderr


def test_a_missing_frame_is_left_out_and_reported(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    sighting_incident(client, 0, [10, 10, 20, 20], [{"to": "false_alarm", "reason": "not_found"}])
    sighting_incident(client, 1, [10, 10, 20, 20], [{"to": "false_alarm", "reason": "permitted_burn"}])
    settings = Settings(data_dir=data_dir)
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        frames = judged_frames(session, since=T - timedelta(days=400))
    path_of(settings, frames[0].evidence_sha256).unlink()
    summary = export_frames(
        frames,
        tmp_path / "out",
        evidence_path=lambda sha: path_of(settings, sha),
        licence="x",
        attribution="y",
        exported_on=date(2026, 11, 30),
    )
    assert summary.written == {"seen": 1, "nothing": 0}
    assert len(summary.problems) == 1
    assert f"incident {frames[0].incident_id}" in summary.problems[0]
    assert len(list((tmp_path / "out" / "images").iterdir())) == 1
    empty = export_frames(
        [], tmp_path / "none", evidence_path=lambda sha: path_of(settings, sha), licence="x", attribution="y",
        exported_on=date(2026, 11, 30),
    )  # fmt: skip
    assert empty.extra_sets is None
    assert not (tmp_path / "none").exists()


def test_boxes_of_a_rotated_photo_are_normalised_by_its_upright_size(tmp_path: Path) -> None:
    """A drone JPEG stored landscape with EXIF orientation 6 is portrait for the detector (and for ultralytics and
    OpenCV, which apply the tag): its boxes are normalised by the upright size."""
    import io

    from PIL import Image

    from service.training.service import JudgedFrame

    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (80, 40), (90, 90, 90)).save(buffer, format="JPEG", exif=exif.tobytes())
    (tmp_path / "photo").write_bytes(buffer.getvalue())
    frame = JudgedFrame(
        observation_id=1, incident_id=1, kind="drone", position="m30t", observed_at=T, outcome="seen",
        state="verified", false_alarm_reason=None, evidence_sha256="ab" * 32,
        boxes=(("fire", 0.9, (10.0, 20.0, 30.0, 60.0)),), model="m 1",
    )  # fmt: skip
    out = tmp_path / "out"
    export_frames(
        [frame], out, evidence_path=lambda sha: tmp_path / "photo", licence="x", attribution="y",
        exported_on=date(2026, 11, 30),
    )  # fmt: skip
    # upright: 40 wide, 80 high
    assert (out / "labels" / "m30t_20261001000000.txt").read_text() == "0 0.500000 0.500000 0.500000 0.500000\n"
