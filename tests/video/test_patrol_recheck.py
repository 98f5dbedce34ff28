"""Issue #5 re-check, the patrol: a camera that never delivers, or delivers garbage, shows its stream errors in the
heartbeats and the run's report (they said "0 errors" for a camera refusing the connection every time)."""

from __future__ import annotations

import socket
from collections import deque
from typing import Any

from tests.video.streamserver import Feed, camera_server
from tests.video.test_sources import FAST, small_frames
from video.camera import CameraSite, ZoomLens
from video.patrol import Patrol
from video.registry import CameraRecord, CameraRegistry, PresetRecord
from video.sources import Frame, FrameSource, open_source


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def registry(dead_url: str, garbled_url: str) -> CameraRegistry:
    presets = (
        PresetRecord("dead", 10.0, -1.0, source=dead_url, source_kind="mjpeg", cadence_s=0.05),
        PresetRecord("garbled", 40.0, -1.0, source=garbled_url, source_kind="snapshot", cadence_s=0.05),
    )
    site = CameraSite(44.16, 125.51, 40.0, 190.0)
    lens = ZoomLens(640, 427, ((1.0, 60.0),))  # the served frames' size: a lens they do not fit is an error too
    return CameraRegistry((CameraRecord("tower-a", site, lens, presets),))


def test_stream_failures_and_corrupt_frames_count_as_the_presets_errors() -> None:
    beats: list[list[dict[str, Any]]] = []
    frames: list[Frame] = []
    feed = Feed(0, small_frames(3), script=deque(["corrupt", "corrupt", "corrupt"]))
    with camera_server([feed]) as server:
        dead_url = f"http://admin:s3cret@127.0.0.1:{closed_port()}/cam/0/mjpeg"
        cameras = registry(dead_url, server.snapshot_url(0))

        def sources(camera: CameraRecord, preset: PresetRecord) -> FrameSource:
            return open_source(camera, preset, backoff=FAST, stall_timeout_s=1.0)

        patrol = Patrol(cameras, frames.append, sources=sources, heartbeat=beats.append, heartbeat_every_s=0.3)
        report = patrol.run(timeout_s=1.5)

    dead, garbled = report.presets["tower-a/dead"], report.presets["tower-a/garbled"]
    assert dead.frames == 0
    assert dead.errors >= 3  # one per failed connection (FAST backoff: many in 1.5 s)
    assert dead.last_error is not None
    assert "ConnectError" in dead.last_error
    assert "s3cret" not in dead.last_error
    assert garbled.frames >= 1  # the good snapshots after the garbage
    assert garbled.errors == 3  # the three corrupt snapshots
    assert "corrupt" in (garbled.last_error or "")

    live = [b for batch in beats[:-1] for b in batch if b["preset"] == "dead"]
    assert live
    assert max(b["errors"] for b in live) >= 1  # the heartbeats during the run already say so
    [last_dead] = [b for b in beats[-1] if b["preset"] == "dead"]
    [last_garbled] = [b for b in beats[-1] if b["preset"] == "garbled"]
    assert last_dead["errors"] == dead.errors
    assert last_garbled["errors"] == garbled.errors
    assert all(f.camera_id == "tower-a" and f.preset_id == "garbled" for f in frames)
