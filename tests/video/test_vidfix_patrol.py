"""Audit fixes, the patrol: a stream whose aspect ratio is not its lens's still posts its confirmed fires (with the
wedge of the whole view), and the preset's errors and heartbeats say what is wrong; a verified event whose
sighting could not be made is an error of its preset."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.httpserver import http_receiver
from tests.video.figlib import figlib_camera, figlib_registry
from tests.video.test_patrol import ListSink, SteadySmokeDetector, multipart
from video.camera import lens_intrinsics
from video.client import HEALTH_PATH, SightingClient
from video.patrol import ClientSink, EventOutcome, FramePipeline, FrameResult, Patrol, lens_mismatch, run_inline
from video.registry import CameraRecord, PresetRecord
from video.sighting import CAMERA_PATH, CameraSighting, parse_sighting
from video.sources import Frame, FrameSource, ImageFolderSource

T0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
#: The FIgLib lens is calibrated for 1280×854 (3:2); a 16:9 stream of the same width does not fit it.
WIDE = (1280, 720)
#: Another size that does not fit (16:10): the "once per camera, preset and size" warning is process-wide, and
#: tests/video/test_patrol.py locates a box in a 1280×720 frame of the same preset.
WIDER = (1280, 800)


def test_a_stream_of_another_aspect_ratio_still_posts_its_fire_with_the_whole_views_wedge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The confirmed fire was dropped ("cannot build the sighting ... a different aspect ratio"): it now goes out
    unlocated, placed by the wedge of the preset's whole view, and the host is told once."""
    camera = figlib_camera()
    preset = camera.presets[0]
    sink = ListSink()
    pipeline = FramePipeline(figlib_registry(), SteadySmokeDetector(), sink)
    for i in range(8):
        image = np.full((WIDER[1], WIDER[0], 3), 10 * i, np.uint8)
        result = pipeline.process(Frame(image, T0 + timedelta(minutes=i), camera.id, preset.id, i))
        assert all(e.error is None for e in result.events)
    [upload] = sink.uploads
    sighting = upload.sighting
    assert isinstance(sighting, CameraSighting)
    assert sighting.event.state == "confirmed"
    assert (sighting.ground, sighting.ground_status) == (None, "lens_mismatch")  # withheld, and why
    # The whole field of view (60° at zoom 1) around the preset's pan, not a bearing made up from the box.
    hfov = 60.0
    assert sighting.bearing.centre_deg == pytest.approx(preset.pan_deg, abs=0.5)
    assert sighting.bearing.box_half_width_deg == pytest.approx(hfov / 2.0, abs=1.0)
    assert sighting.bearing.half_width_deg >= hfov / 2.0
    assert sighting.wedge.to_shapely().area > 0
    warnings = [r.getMessage() for r in caplog.records if "different aspect ratio" in r.getMessage()]
    assert len(warnings) == 1
    assert "1280×800" in warnings[0]
    assert "whole view" in warnings[0]


def test_lens_mismatch_names_the_sizes_and_accepts_a_substream() -> None:
    camera = figlib_camera()
    preset = camera.presets[0]
    lens = lens_intrinsics(camera.lens, preset.zoom)
    assert lens_mismatch(camera, preset, (lens.width, lens.height)) is None
    assert lens_mismatch(camera, preset, (640, 427)) is None  # a sub-stream scaled down: fits
    problem = lens_mismatch(camera, preset, WIDE)
    assert problem is not None
    assert "1280×720" in problem
    assert "1280×854" in problem


def test_a_stream_the_lens_does_not_fit_counts_its_frames_as_errors_in_report_and_heartbeats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit's patrol said "25 frames, 0 errors" and the health view "ok" while every fire of that preset was
    dropped: now the fire is posted, and every frame the lens does not fit is an error of the preset."""
    frames = 8
    for i in range(frames):
        cv2.imwrite(str(tmp_path / f"frame{i:03d}.png"), np.full((WIDE[1], WIDE[0], 3), 20 * i, np.uint8))
    registry = figlib_registry(source=str(tmp_path), kind="folder")

    def sources(camera: CameraRecord, preset: PresetRecord) -> FrameSource:
        return ImageFolderSource(tmp_path, camera.id, preset.id, start_time=T0, frame_interval_s=60.0)

    with (
        caplog.at_level(logging.ERROR, logger="video.patrol"),
        http_receiver() as receiver,
        SightingClient(receiver.url, "tower-token") as client,
    ):
        report = run_inline(
            registry,
            ClientSink(client),
            detector=SteadySmokeDetector(),
            sources=sources,
            heartbeat=client.post_heartbeats,
            heartbeat_every_s=60.0,
        )
    stats = report.presets["figlib-mobo-c/p1"]
    assert (stats.frames, stats.errors) == (frames, frames)
    assert stats.last_error is not None
    assert "different aspect ratio" in stats.last_error
    posted = [r for r in receiver.received() if r.path == CAMERA_PATH]
    assert len(posted) == 1  # the confirmed fire reached the service
    sighting = parse_sighting(multipart(posted[0])["sighting"][1])
    assert isinstance(sighting, CameraSighting)
    assert sighting.ground_status == "lens_mismatch"
    [beats] = [r.json()["heartbeats"] for r in receiver.received() if r.path == HEALTH_PATH]
    [beat] = beats
    assert (beat["frames"], beat["errors"]) == (frames, frames)
    assert beat["lens_mismatch"] == {"registered": [1280, 854], "received": list(WIDE)}  # the service's own state
    logged = [r.getMessage() for r in caplog.records if "every frame of this size counts as an error" in r.getMessage()]
    assert len(logged) == 1  # once per frame size, not per frame


def test_an_event_whose_sighting_could_not_be_made_is_an_error_of_its_preset(tmp_path: Path) -> None:
    """``FramePipeline.process`` reports such an event with no sighting key and the reason: the patrol counts it."""
    cv2.imwrite(str(tmp_path / "frame000.png"), np.zeros((854, 1280, 3), np.uint8))
    registry = figlib_registry(source=str(tmp_path), kind="folder")
    lost = EventOutcome("confirmed", "fire", None, None, False, error="evidence: OpenCV could not encode the frame")

    def handle(frame: Frame) -> FrameResult:
        return FrameResult(frame.camera_id, frame.preset_id, frame.seq, frame.captured_at, "ok", events=(lost,))

    def sources(camera: CameraRecord, preset: PresetRecord) -> FrameSource:
        return ImageFolderSource(tmp_path, camera.id, preset.id, start_time=T0)

    report = Patrol(registry, handle, sources=sources).run()
    stats = report.presets["figlib-mobo-c/p1"]
    assert (stats.frames, stats.errors) == (1, 1)
    assert stats.last_error == "a confirmed fire event was not posted: evidence: OpenCV could not encode the frame"
