"""A camera whose stream does not fit its registered lens gets its own health state, end to end.

Real pieces all the way: video files written with OpenCV, the real patrol (``run_inline``: file sources, sequence
verification, geolocation, ``SightingClient``), a real strawfire server on 127.0.0.1 with its SQLite database, the
registry as the service serves it, ``GET /api/v1/cameras/health``, ``GET /api/v1/status`` and ``strawfire status``
run on the same database. Before the fix a 16:9 stream on a 3:2 lens showed as ``ok`` everywhere (only an error
count grew) and its fires went out marked ``ground_error``, like a missing DEM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import select

from detector.detections import Detections, ImageArray, ModelInfo
from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.incidents.tables import Observation
from service.main import create_app
from tests.dashboard.live import bound_socket, serving
from tests.detector.test_sequence import frame as boxes_of_frame
from tests.video.figlib import figlib_camera
from video.client import SightingClient
from video.patrol import ClientSink, PatrolReport, locate_camera_box, run_inline
from video.registry import CameraRecord, CameraRegistry, PresetRecord
from video.sources import FrameSource, open_source

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
PASSWORD = "correct horse battery"
#: The FIgLib lens is calibrated for 1280×854 (3:2).
CALIBRATED = (1280, 854)
#: The operator switched p1's stream profile to 720p: 16:9, another aspect ratio.
HD720 = (1280, 720)
#: p2 patrols the camera's sub-stream: half the pixels each way, the same 3:2 picture.
SUBSTREAM = (640, 427)
#: Where the smoke is in the calibrated picture (the box tests/video/test_patrol.py's detector reports).
SMOKE_BOX = (600.0, 420.0, 660.0, 470.0)
FRAMES = 8


class SmokeInTheSamePlace:
    """The same smoke in every frame, at the same place of the picture whatever the frame's size (a sub-stream
    shows the same scene with fewer pixels): sequence verification confirms it on the fourth frame."""

    info = ModelInfo("steady", "1", ("fire", "smoke"), 320, 0.5, "test")

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            sx, sy = image.shape[1] / CALIBRATED[0], image.shape[0] / CALIBRATED[1]
            x1, y1, x2, y2 = SMOKE_BOX
            out.append(boxes_of_frame(("smoke", 0.9, (x1 * sx, y1 * sy, x2 * sx, y2 * sy))))
        return out


def write_video(path: Path, size: tuple[int, int], frames: int = FRAMES) -> Path:
    """A real MJPG file of ``frames`` moving (noise) frames of ``size`` (w, h): a feed that is not frozen."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 4, size)
    assert writer.isOpened()
    rng = np.random.default_rng(7)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def registry_of(p1_video: Path, p2_video: Path) -> CameraRegistry:
    camera = figlib_camera(presets=("p1", "p2"))
    p1, p2 = camera.presets
    presets = (
        replace(p1, source=str(p1_video), source_kind="file"),
        replace(p2, source=str(p2_video), source_kind="file"),
    )
    return CameraRegistry((replace(camera, presets=presets),))


@contextmanager
def strawfire_server(data_dir: Path) -> Iterator[tuple[str, Any]]:
    """A real server on a free port of 127.0.0.1 with an admin, a tower's device account and a supervisor."""
    app = create_app(Settings(data_dir=data_dir, alerts={"run_worker": False}))
    with serving(app, bound_socket()) as url:
        with transaction(app.state.session_factory) as session:
            create_user(session, "admin", PASSWORD, Role.ADMIN, None)
            create_user(session, "tower07", PASSWORD, Role.DEVICE, None)
            create_user(session, "sup", PASSWORD, Role.SUPERVISOR, "DEMO00")
        yield url, app


def token(url: str, username: str) -> str:
    answer = httpx.post(f"{url}/api/v1/auth/token", data={"username": username, "password": PASSWORD}, timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def get(url: str, path: str, username: str) -> Any:
    answer = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token(url, username)}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def patrol(url: str, device_token: str) -> PatrolReport:
    """``strawfire patrol``'s embedded run: the registry as the service serves it, sightings and heartbeats posted
    to the service. The frames are recent (the health view judges them against the clock)."""
    start = datetime.now(UTC) - timedelta(minutes=FRAMES)

    def sources(camera: CameraRecord, preset: PresetRecord) -> FrameSource:
        return open_source(camera, preset, start_time=start, frame_interval_s=60.0)

    with SightingClient(url, device_token) as client:
        registry = CameraRegistry.from_dict(
            httpx.get(f"{url}/api/v1/cameras", headers={"Authorization": f"Bearer {device_token}"}, timeout=30).json()
        )
        return run_inline(
            registry,
            ClientSink(client),
            detector=SmokeInTheSamePlace(),
            sources=sources,
            heartbeat=client.post_heartbeats,
            heartbeat_every_s=60.0,
        )


def sightings(app: Any) -> dict[str, dict[str, Any]]:
    """The camera observations the service stored, by preset: their details and point."""
    with app.state.session_factory() as session:
        rows = session.scalars(select(Observation).where(Observation.kind == "camera")).all()
        out = {}
        for row in rows:
            details = json.loads(row.details)
            out[details["preset_id"]] = details | {"point": (row.latitude, row.longitude)}
        return out


def strawfire_status(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    return subprocess.run(
        [STRAWFIRE, "status"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_stream_that_does_not_fit_its_lens_is_lens_mismatch_everywhere_and_its_fires_are_not_geolocated(
    tmp_path: Path,
) -> None:
    """p1's stream went 16:9 on a 3:2 lens: the preset is ``lens_mismatch`` with both sizes in the cameras API, the
    status (a named problem, its own count) and ``strawfire status``; its fire still reaches the service, but with
    its ground withheld and ``ground_status: "lens_mismatch"``. p2 runs on the sub-stream (same aspect, fewer
    pixels): scaling is exact, the preset is ``ok`` and its fire lands where the calibrated frame puts it."""
    registry = registry_of(
        write_video(tmp_path / "p1-720p.avi", HD720), write_video(tmp_path / "p2-substream.avi", SUBSTREAM)
    )
    with strawfire_server(tmp_path / "var") as (url, app):
        admin = {"Authorization": f"Bearer {token(url, 'admin')}"}
        put = httpx.put(f"{url}/api/v1/cameras", headers=admin, json=registry.to_dict(), timeout=30)
        assert put.status_code == 200, put.text

        report = patrol(url, token(url, "tower07"))
        assert {key: stats.frames for key, stats in report.presets.items()} == {
            "figlib-mobo-c/p1": FRAMES,
            "figlib-mobo-c/p2": FRAMES,
        }

        health = {p["preset"]: p for p in get(url, "/api/v1/cameras/health", "sup")}
        assert health["p1"]["state"] == "lens_mismatch"
        assert health["p1"]["lens_mismatch"] == {"registered": list(CALIBRATED), "received": list(HD720)}
        assert (health["p2"]["state"], health["p2"]["lens_mismatch"]) == ("ok", None)

        status = get(url, "/api/v1/status", "sup")
        assert status["cameras"]["lens_mismatch"] == 1
        assert status["cameras"]["ok"] == 1
        [problem] = [p for p in status["problems"] if p["code"] == "cameras_lens_mismatch"]
        assert (problem["component"], problem["count"], problem["items"]) == ("cameras", 1, ["figlib-mobo-c/p1"])
        assert "figlib-mobo-c/p1 (registered 1280×854, received 1280×720)" in problem["message"]
        assert "cameras.lens_mismatch" not in {c["name"] for c in status["components"]}  # the presets', not a part

        stored = sightings(app)
        assert stored["p1"]["ground_status"] == "lens_mismatch"  # withheld, and why: not a DEM problem
        assert stored["p2"]["ground_status"] == "hit"
        camera = registry.cameras[0]
        _, fix = locate_camera_box(camera, camera.presets[1], SMOKE_BOX, CALIBRATED)
        assert fix is not None
        assert fix.hit is not None
        assert stored["p2"]["point"] == pytest.approx((fix.hit.latitude, fix.hit.longitude), abs=1e-6)

        cli = strawfire_status(tmp_path)
        assert cli.returncode == 1, cli.stderr
        assert "1 lens_mismatch" in cli.stdout
        assert "figlib-mobo-c/p1 (registered 1280×854, received 1280×720)" in cli.stderr

        # The operator sets the stream back to the calibrated profile: the next patrol's heartbeats clear it.
        write_video(tmp_path / "p1-720p.avi", CALIBRATED)
        patrol(url, token(url, "tower07"))
        health = {p["preset"]: p for p in get(url, "/api/v1/cameras/health", "sup")}
        assert (health["p1"]["state"], health["p1"]["lens_mismatch"]) == ("ok", None)
        status = get(url, "/api/v1/status", "sup")
        assert status["cameras"]["lens_mismatch"] == 0
        assert not [p for p in status["problems"] if p["code"] == "cameras_lens_mismatch"]
