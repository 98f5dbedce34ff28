"""A frozen camera feed is noticed (video.health) and reported by the patrol."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path
from video.camera import CameraSite, Intrinsics
from video.health import FrozenFeedWatch
from video.patrol import Patrol
from video.registry import CameraRecord, CameraRegistry, PresetRecord
from video.sources import Frame


def scene(seed: int, noise: float = 3.0) -> np.ndarray:
    """A textured field with fresh sensor noise."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(40, 200, 320, dtype=np.float32), (240, 1))
    base += 30 * np.sin(np.arange(240, dtype=np.float32)[:, None] / 7.0)
    image = np.clip(base + rng.normal(0.0, noise, base.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def test_a_repeated_picture_is_frozen_after_n_frames_and_recovers() -> None:
    watch = FrozenFeedWatch(after_frames=3)
    stuck = scene(1)
    assert watch.update(scene(0)) is None
    clock = stuck.copy()
    changes = []
    for second in range(5):
        clock[5:15, 5:40] = 255 * (second % 2)  # the on-screen clock still ticks
        changes.append(watch.update(clock))
    assert changes == [None, None, None, "frozen", None]
    assert watch.update(scene(2)) == "recovered"
    assert not watch.frozen


def test_a_live_camera_and_a_fogged_one_are_never_frozen() -> None:
    watch = FrozenFeedWatch(after_frames=2)
    assert all(watch.update(scene(seed)) is None for seed in range(20))
    fog = np.full((240, 320, 3), 180, np.uint8)
    assert all(watch.update(fog) is None for _ in range(20))  # flat: the fog guard


def test_a_flat_frame_inside_a_frozen_run_neither_breaks_it_nor_recovers_it() -> None:
    """The fog guard's flat frame (a black frame the encoder slips in, a fog bank) became the picture the next
    frame was compared with: the stuck picture after it counted as changed, so a frozen feed was reported
    recovered, and a run that had not yet reached ``after_frames`` started over."""
    stuck = scene(1)
    flat = np.full((240, 320, 3), 20, np.uint8)
    watch = FrozenFeedWatch(after_frames=3)
    changes = [watch.update(frame) for frame in (scene(0), stuck, stuck, flat, stuck, stuck)]
    assert changes == [None, None, None, None, None, "frozen"]
    assert watch.repeats == 4  # the stuck picture, shown four times (the flat frame not counted)
    assert [watch.update(frame) for frame in (flat, stuck, stuck)] == [None, None, None]
    assert watch.frozen
    assert watch.update(scene(2)) == "recovered"
    assert watch.repeats == 0


def test_the_real_tower_clip_is_never_frozen() -> None:
    folder = shared_path("tower_sequences", "20190925_FIRE_wc-s-mobo-c", "images")
    files = sorted(folder.glob("*.jpg"))
    if not files:
        pytest.skip("tower sequence not available")
    watch = FrozenFeedWatch(after_frames=1)
    assert [watch.update(cv2.imread(str(f))) for f in files[:30]] == [None] * len(files[:30])


class ListSource:
    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames

    def __iter__(self) -> Any:
        return iter(self.frames)

    def close(self) -> None:
        pass


def test_the_patrol_reports_a_frozen_feed(caplog: pytest.LogCaptureFixture) -> None:
    camera = CameraRecord(
        id="tower-1",
        site=CameraSite(44.0, 125.0, 40.0),
        lens=Intrinsics.from_hfov(320, 240, 58.0),
        presets=(PresetRecord(id="p1", pan_deg=0.0, tilt_deg=-0.5),),
    )
    start = datetime(2025, 10, 20, 8, 0, tzinfo=UTC)
    stuck = scene(7)
    frames = [
        Frame(scene(i) if i < 3 else stuck, start + timedelta(seconds=30 * i), "tower-1", "p1", i) for i in range(16)
    ]
    handled: list[int] = []
    patrol = Patrol(
        CameraRegistry((camera,)), lambda frame: handled.append(frame.seq), sources=lambda c, p: ListSource(frames)
    )
    with caplog.at_level(logging.ERROR, logger="video.patrol"):
        report = patrol.run()
    stats = report.presets["tower-1/p1"]
    assert (stats.frames, stats.frozen, stats.frozen_episodes) == (16, True, 1)
    assert len(handled) == 16  # frames are still handled
    # Frames 3-13 show the stuck picture when it is reported: 11 frames, 10 of them unchanged from the one before.
    assert any("same picture for 11 frames" in r.getMessage() for r in caplog.records)


def test_the_patrol_sends_heartbeats_to_a_real_service_without_holding_up_frames() -> None:
    from tests.httpserver import http_receiver
    from video.client import SightingClient

    camera = CameraRecord(
        id="tower-1",
        site=CameraSite(44.0, 125.0, 40.0),
        lens=Intrinsics.from_hfov(320, 240, 58.0),
        presets=(PresetRecord(id="p1", pan_deg=0.0, tilt_deg=-0.5),),
    )
    start = datetime.now(UTC) - timedelta(minutes=10)
    stuck = scene(7)
    frames = [
        Frame(scene(i) if i < 3 else stuck, start + timedelta(seconds=30 * i), "tower-1", "p1", i) for i in range(16)
    ]

    with http_receiver() as receiver:
        answers = iter([503])  # the first post finds the service down: the patrol goes on, and the next one lands

        def respond(request: Any) -> tuple[int, dict[str, str], bytes]:
            status = next(answers, 200)
            return status, {"Content-Type": "application/json"}, b'{"stored": 1, "stale": 0, "rejected": []}'

        receiver.respond = respond

        def frozen_heard() -> bool:
            return any(r.json()["heartbeats"][0]["frozen"] for r in receiver.received())

        class LiveSource(ListSource):
            def __iter__(self) -> Any:
                yield from self.frames
                deadline = time.monotonic() + 10
                while not frozen_heard() and time.monotonic() < deadline:  # a live stream would go on
                    time.sleep(0.02)

        client = SightingClient(receiver.url, "tower-token")
        patrol = Patrol(
            CameraRegistry((camera,)),
            lambda frame: None,
            sources=lambda c, p: LiveSource(frames),
            heartbeat=client.post_heartbeats,
            heartbeat_every_s=0.05,
        )
        report = patrol.run(timeout_s=20)
        client.close()
        requests = receiver.received()
    assert report.presets["tower-1/p1"].frames == 16
    assert requests
    assert all(r.path == "/api/v1/cameras/health" for r in requests)
    assert requests[-1].headers["Authorization"] == "Bearer tower-token"
    [last] = requests[-1].json()["heartbeats"]
    assert (last["camera_id"], last["preset"], last["frames"], last["errors"], last["frozen"]) == (
        "tower-1", "p1", 16, 0, True,
    )  # fmt: skip
    assert datetime.fromisoformat(last["last_frame_at"]) == frames[-1].captured_at
    assert datetime.fromisoformat(last["at"]).tzinfo is not None
