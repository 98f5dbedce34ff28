"""The patrol pipeline on the real FIgLib tower fire and real DJI frames: detect → verify → geolocate → post."""

from __future__ import annotations

import email.parser
import email.policy
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.detections import Detections, ImageArray, ModelInfo
from detector.sequence import SequenceConfig, SequenceVerifier, frame_threshold_for
from tests.conftest import shared_path
from tests.detector.test_sequence import frame as boxes_of_frame
from tests.httpserver import Recorded, http_receiver
from tests.video.figlib import (
    CLIP_START,
    CONFIRM_FRAME,
    END_FRAME,
    FRAMES,
    IGNITION,
    VIDEO,
    FiglibLabelledDetector,
    clip_frames,
    figlib_camera,
    figlib_registry,
    labelled_boxes,
    require,
)
from video.client import SightingClient
from video.patrol import (
    ClientSink,
    FramePipeline,
    Patrol,
    PostOutcome,
    PresetState,
    default_detector,
    drone_capture_time,
    drone_sightings,
    locate_camera_box,
    post_drone_batch,
    run_inline,
)
from video.registry import CameraRecord, CameraRegistry, PresetRecord
from video.sighting import CAMERA_PATH, DRONE_PATH, CameraSighting, DroneSighting, SightingUpload, parse_sighting
from video.sources import Frame, open_source


class ListSink:
    def __init__(self) -> None:
        self.uploads: list[SightingUpload] = []

    def send(self, upload: SightingUpload) -> PostOutcome:
        self.uploads.append(upload)
        return PostOutcome(upload.key, True, 201)


def multipart(request: Recorded) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data request: name → (content type, bytes)."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        parts[name] = (part.get_content_type(), payload)
    return parts


def clip_sources(camera: CameraRecord, preset: PresetRecord) -> Any:
    return open_source(camera, preset, start_time=CLIP_START, frame_interval_s=60.0)


def test_inline_patrol_on_the_real_tower_fire_posts_confirmed_then_ended() -> None:
    registry = figlib_registry(source=str(require(VIDEO)), kind="file")
    with http_receiver() as receiver, SightingClient(receiver.url, "tower-token") as client:
        report = run_inline(registry, ClientSink(client), detector=FiglibLabelledDetector(), sources=clip_sources)
    stats = report.presets["figlib-mobo-c/p1"]
    assert (stats.frames, stats.errors) == (FRAMES, 0)
    results = stats.results
    assert [r.status for r in results] == ["ok"] * FRAMES
    assert [r.seq for r in results if r.candidates] == sorted(labelled_boxes())
    changes = {r.seq: [(e.state, e.posted) for e in r.events] for r in results if r.events}
    assert changes == {CONFIRM_FRAME: [("confirmed", True)], END_FRAME: [("ended", True)]}
    indices = [r.frame_index for r in results]
    assert indices == list(range(indices[0], indices[0] + FRAMES))  # one cadence step per real minute

    requests = receiver.received()
    assert [r.path for r in requests] == [CAMERA_PATH, CAMERA_PATH]
    assert all(r.headers["Authorization"] == "Bearer tower-token" for r in requests)
    confirmed, ended = (multipart(r) for r in requests)
    sighting = parse_sighting(confirmed["sighting"][1])
    assert isinstance(sighting, CameraSighting)
    assert confirmed["sighting"][0] == "application/json"
    assert confirmed["evidence"][0] == "image/jpeg"
    assert sighting.camera_id == "figlib-mobo-c"
    assert sighting.captured_at == CLIP_START + timedelta(minutes=CONFIRM_FRAME)
    assert sighting.event.first_seen_at == IGNITION  # the first labelled frame: +0 min
    assert sighting.event.state == "confirmed"
    assert sighting.boxes[0].class_name == "smoke"
    assert sighting.evidence.size_bytes == len(confirmed["evidence"][1])
    assert requests[0].headers["Idempotency-Key"] == sighting.sighting_key
    # The geometry is what the camera module computes for the event's box, nothing else.
    camera, preset = registry.preset("figlib-mobo-c", "p1")
    box = labelled_boxes()[CONFIRM_FRAME]
    wedge, fix = locate_camera_box(camera, preset, box, (1280, 854))
    assert sighting.bearing.centre_deg == pytest.approx(wedge.centre_bearing_deg)
    assert sighting.ground_status == fix.status.value == "hit"
    assert sighting.ground is not None
    assert fix.hit is not None
    assert sighting.ground.point.coordinates == pytest.approx((fix.hit.longitude, fix.hit.latitude), abs=1e-7)
    assert sighting.wedge.to_shapely().contains(sighting.ground.point.to_shapely())
    last = parse_sighting(ended["sighting"][1])
    assert isinstance(last, CameraSighting)
    assert (last.event.state, last.event.end_frame) == ("ended", indices[35])
    assert last.sighting_key != sighting.sighting_key


def test_the_default_detector_runs_the_committed_model_through_the_pipeline() -> None:
    """The committed model (through the detector package's loader) on real tower frames, end to end."""
    require(VIDEO)
    detector = default_detector(threads=1)
    registry = figlib_registry()
    pipeline = FramePipeline(registry, detector, ListSink())
    frames = clip_frames()
    results = [
        pipeline.process(Frame(frames[i], CLIP_START + timedelta(minutes=i), "figlib-mobo-c", "p1", i))
        for i in range(18, 30)
    ]
    assert {r.status for r in results} == {"ok"}
    assert {r.model for r in results} == {detector.info.name}
    assert pipeline.sequence_config().frame_threshold == frame_threshold_for(detector.info.operating_threshold)


def test_frames_of_unknown_cameras_are_dropped_never_attributed() -> None:
    sink = ListSink()
    pipeline = FramePipeline(figlib_registry(), FiglibLabelledDetector(), sink)
    frame = Frame(clip_frames()[25], CLIP_START, "ghost-camera", "p1", 0)
    result = pipeline.process(frame)
    assert result.status == "error"
    assert "no camera 'ghost-camera'" in (result.error or "")
    assert sink.uploads == []
    wrong_preset = pipeline.process(Frame(clip_frames()[25], CLIP_START, "figlib-mobo-c", "p9", 0))
    assert wrong_preset.status == "error"


def test_late_frames_are_reported_not_fed_out_of_order() -> None:
    state = PresetState(SequenceVerifier(SequenceConfig()))
    empty = Detections((8, 8), "m", "1")
    t0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    assert state.advance(t0, 60.0, empty)[0] == round(t0.timestamp() / 60)
    first = state.last_index
    assert first is not None
    assert state.advance(t0 + timedelta(seconds=20), 60.0, empty)[0] == first + 1  # same step: bumped, kept
    assert state.advance(t0 + timedelta(seconds=10), 60.0, empty) == (None, [])  # older than the last: late
    assert state.advance(t0 + timedelta(minutes=5), 60.0, empty)[0] == first + 5  # a gap is missing frames


def test_a_gap_after_a_burst_of_frames_still_counts_as_missed_frames() -> None:
    """Frames faster than the cadence run the index ahead of the clock (each is a frame); an outage after them
    must still add its cadence steps, or hits minutes apart would count as consecutive frames and an outage
    would not end an event."""
    state = PresetState(SequenceVerifier(SequenceConfig(window=8, min_hits=4, end_after=5)))
    t0 = datetime(2026, 4, 23, 8, 0, 0, tzinfo=UTC)
    smoke = boxes_of_frame(("smoke", 0.5, (10.0, 10.0, 60.0, 60.0)))
    indices = [state.advance(t0 + timedelta(seconds=3 * i), 60.0, smoke)[0] for i in range(20)]
    assert indices == list(range(indices[0], indices[0] + 20))  # a burst: one index each, ahead of the clock
    assert [e.confirm_frame for e in state.verifier.events] == [indices[3]]
    index, events = state.advance(t0 + timedelta(seconds=57 + 11 * 60), 60.0, smoke)  # 11 minutes later
    assert index == indices[-1] + 11
    assert [(e.end_frame, e.confirm_frame) for e in events] == [(indices[-1], indices[3])]  # the outage ended it


class RecordingMotionDetector:
    """A MotionDetector that records which previous frame it was given (by the frame's mean grey level)."""

    info = ModelInfo("motion-probe", "1", ("fire", "smoke"), 0, 0.5, "test")

    def __init__(self) -> None:
        self.pairs: list[tuple[int, int | None]] = []

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        return [self.detect_pair(image, None) for image in images]

    def detect_pair(self, image: ImageArray, previous: ImageArray | None, *, conf: float | None = None) -> Detections:
        self.pairs.append((int(image.mean()), None if previous is None else int(previous.mean())))
        return Detections((image.shape[1], image.shape[0]), "motion-probe", "1")


def test_motion_detectors_compare_frames_of_the_same_preset_only() -> None:
    registry = figlib_registry(presets=("north", "east"))
    detector = RecordingMotionDetector()
    pipeline = FramePipeline(registry, detector, ListSink())
    t0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    for step in range(3):
        for offset, preset in ((10, "north"), (100, "east")):
            image = np.full((854, 1280, 3), offset + step, np.uint8)
            pipeline.process(Frame(image, t0 + timedelta(minutes=step), "figlib-mobo-c", preset, step))
    assert detector.pairs == [(10, None), (100, None), (11, 10), (101, 100), (12, 11), (102, 101)]
    # A frame long after the last one of its preset is not compared with it (the light has changed).
    pipeline.process(Frame(np.full((854, 1280, 3), 50, np.uint8), t0 + timedelta(hours=2), "figlib-mobo-c", "north", 9))
    assert detector.pairs[-1] == (50, None)


def test_a_substream_box_is_scaled_to_the_calibrated_lens() -> None:
    camera, preset = figlib_registry().preset("figlib-mobo-c", "p1")
    box = labelled_boxes()[CONFIRM_FRAME] if VIDEO.exists() else (10.9, 405.9, 46.8, 429.3)
    full, _ = locate_camera_box(camera, preset, box, (1280, 854))
    half, _ = locate_camera_box(camera, preset, [v / 2 for v in box], (640, 427))
    assert half.centre_bearing_deg == pytest.approx(full.centre_bearing_deg, abs=0.01)
    # Another aspect ratio cannot place the box: the whole view's wedge, no ground (tests/video/test_vidfix_patrol.py).
    whole, fix = locate_camera_box(camera, preset, box, (1280, 720))
    assert fix is None
    assert whole.box_half_width_deg == pytest.approx(30.0, abs=1.0)  # half the lens's 60° field of view


def test_patrol_threads_keep_going_after_a_failing_frame() -> None:
    registry = figlib_registry(source=str(require(VIDEO)), kind="file", presets=("p1", "p2"))
    seen: list[tuple[str, int]] = []

    def handle(frame: Frame) -> str:
        if frame.seq == 3:
            raise RuntimeError("detector hiccup")
        seen.append((frame.preset_id, frame.seq))
        return frame.preset_id

    report = Patrol(registry, handle, sources=clip_sources, keep_results=True).run()
    for key in ("figlib-mobo-c/p1", "figlib-mobo-c/p2"):
        stats = report.presets[key]
        assert (stats.frames, stats.errors) == (FRAMES, 1)
        assert stats.last_error == "RuntimeError: detector hiccup"
        assert set(stats.results) == {key.split("/")[1]}  # each preset's thread only saw its own frames
    assert report.frames == 2 * FRAMES


def test_a_source_failing_with_any_error_ends_its_preset_and_says_so_without_the_password() -> None:
    """httpx refuses an URL with InvalidURL, not an HTTPError: that used to kill the preset's thread silently
    (frames 0, errors 0) with the password in the traceback."""
    registry = figlib_registry(source=str(require(VIDEO)), kind="file", presets=("p1", "p2"))

    def sources(camera: CameraRecord, preset: PresetRecord) -> Any:
        if preset.id == "p1":
            raise ValueError("Invalid port in rtsp://admin:s3cret@10.0.0.5:x/ch1")
        return clip_sources(camera, preset)

    report = Patrol(registry, lambda frame: None, sources=sources).run()
    failed = report.presets["figlib-mobo-c/p1"]
    assert (failed.frames, failed.errors) == (0, 1)
    assert failed.last_error == "ValueError: Invalid port in rtsp://admin:***@10.0.0.5:x/ch1"
    assert report.presets["figlib-mobo-c/p2"].frames == FRAMES  # the other preset patrolled on


def test_a_preset_without_a_source_ends_alone() -> None:
    registry = figlib_registry(presets=("p1",))
    report = Patrol(registry, lambda frame: None).run()
    assert report.presets["figlib-mobo-c/p1"].last_error == "camera 'figlib-mobo-c' preset 'p1' has no frame source"


class SizeRecordingDetector:
    """Records the size of every image it is asked about; finds nothing."""

    info = ModelInfo("size-probe", "1", ("fire", "smoke"), 320, 0.5, "test")

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        self.sizes += [(image.shape[1], image.shape[0]) for image in images]
        return [Detections((image.shape[1], image.shape[0]), "size-probe", "1") for image in images]


def test_a_tiled_preset_runs_the_detector_on_the_whole_frame_and_its_tiles() -> None:
    camera = figlib_camera(presets=("wide", "plain", "auto"))
    tiled = replace(camera.presets[0], tiles=(3, 2))
    plain = replace(camera.presets[1], tiles=(1, 1))
    assert camera.presets[2].tiles is None  # the default
    registry = CameraRegistry((replace(camera, presets=(tiled, plain, camera.presets[2])),))
    detector = SizeRecordingDetector()  # a 320 px model
    pipeline = FramePipeline(registry, detector, ListSink())
    t0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    image = np.zeros((854, 1280, 3), np.uint8)
    assert pipeline.process(Frame(image, t0, "figlib-mobo-c", "wide", 0)).status != "error"
    assert detector.sizes == [(1280, 854)] + [(474, 462)] * 6  # the frame, then 3x2 overlapping tiles
    detector.sizes.clear()
    pipeline.process(Frame(image, t0, "figlib-mobo-c", "plain", 0))
    assert detector.sizes == [(1280, 854)]
    # Not configured: the whole frame only.
    detector.sizes.clear()
    pipeline.process(Frame(image, t0, "figlib-mobo-c", "auto", 0))
    assert detector.sizes == [(1280, 854)]


class CentreFireDetector:
    """Finds "fire" in a fixed box: the real drone frames show none, and the test is about the geometry."""

    info = ModelInfo("centre-fire", "1", ("fire", "smoke"), 0, 0.25, "test")

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            h, w = image.shape[:2]
            xyxy = np.array([[w * 0.45, h * 0.55, w * 0.55, h * 0.65], [0, 0, w * 0.1, h * 0.1]], np.float32)
            out.append(
                Detections(
                    (w, h),
                    "centre-fire",
                    "1",
                    ("fire", "smoke"),
                    xyxy,
                    np.array([0.9, 0.1], np.float32),
                    np.zeros(2, np.int64),
                )
            )
        return out


def test_drone_batch_locates_boxes_and_posts_drone_sightings(tmp_path: Path) -> None:
    names = ("DJI_H20T.jpg", "DJI_XT2.jpg", "DJI_XTS.jpg", "M30T_DJI_0001_R.JPG")
    for name in names:
        shutil.copy(shared_path("drone", name), tmp_path / name)
    paths = [tmp_path / name for name in names]
    with http_receiver() as receiver, SightingClient(receiver.url, "uav-token") as client:
        results = post_drone_batch(
            paths, CentreFireDetector(), ClientSink(client), drone_id="uav-01", utc_offset=timedelta(hours=-4)
        )
    h20t, xt2, xts, m30t = results
    assert (h20t.boxes, h20t.error) == (1, None)  # the 0.1 box is under the operating threshold
    assert h20t.outcomes[0].posted
    assert xt2.boxes == 1  # no focal length in its EXIF: a sighting without a ground fix
    assert xts.boxes == 0
    assert "truncated" in (xts.error or "")  # the real file is cut short: reported, the batch goes on
    assert m30t.boxes == 0
    assert "no drone position" in (m30t.error or "")
    requests = receiver.received()
    assert [r.path for r in requests] == [DRONE_PATH, DRONE_PATH]
    first = multipart(requests[0])
    sighting = parse_sighting(first["sighting"][1])
    assert isinstance(sighting, DroneSighting)
    assert first["evidence"][1] == paths[0].read_bytes()  # the original file, metadata included
    assert sighting.captured_at == datetime(2021, 5, 28, 14, 33, 46, tzinfo=UTC)  # 10:33:46 local at UTC−4
    assert sighting.time_source == "exif:DateTimeOriginal (assumed UTC-4h)"
    assert sighting.drone.model == "ZH20T"
    assert sighting.ground_status == "hit"
    assert sighting.ground is not None
    assert sighting.ground.terrain == "flat_takeoff"
    assert sighting.ground.horizontal_range_m < 200.0  # 16.5 m above take-off, looking 10.5° down (+ box offset)
    assert sighting.ground.uncertainty.to_shapely().contains(sighting.ground.point.to_shapely())
    no_fix = parse_sighting(multipart(requests[1])["sighting"][1])
    assert isinstance(no_fix, DroneSighting)
    assert (no_fix.ground, no_fix.ground_status) == (None, "no_metadata")
    # Given the field of view the metadata lacks, the same kind of frame is located.
    (xtr,) = drone_sightings(shared_path("drone", "DJI_XTR.jpg"), CentreFireDetector(), drone_id="uav-01", hfov_deg=45)
    assert xtr.sighting.ground_status == "hit"


def test_drone_capture_time_prefers_explicit_offsets(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "offset.jpg"
    image = Image.new("RGB", (8, 8))
    exif = image.getexif()
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0x9003] = "2026:04:20 10:00:00"
    exif_ifd[0x9011] = "+08:00"
    image.save(path, exif=exif)
    assert drone_capture_time(path) == (
        datetime(2026, 4, 20, 2, 0, tzinfo=UTC),
        "exif:DateTimeOriginal+OffsetTimeOriginal",
    )


class SteadySmokeDetector:
    """The same smoke box in every frame: sequence verification confirms it on the fourth."""

    info = ModelInfo("steady", "1", ("fire", "smoke"), 320, 0.5, "test")

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        return [boxes_of_frame(("smoke", 0.9, (600.0, 420.0, 660.0, 470.0))) for _ in images]


def test_a_camera_whose_ground_cannot_be_computed_still_posts_its_fire_with_the_wedge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The registry comes from the service, so a DEM path may not exist on the patrol host: the confirmed fire
    goes out placed by its bearing wedge (ground null, ground_status "ground_error"), and the host is told once."""
    camera = replace(figlib_camera(), dem="/nowhere/songliao-dem.tif")
    sink = ListSink()
    pipeline = FramePipeline(CameraRegistry((camera,)), SteadySmokeDetector(), sink)
    t0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    image = np.zeros((854, 1280, 3), np.uint8)
    for i in range(8):
        pipeline.process(Frame(image, t0 + timedelta(minutes=i), camera.id, "p1", i))
    [upload] = sink.uploads
    sighting = upload.sighting
    assert isinstance(sighting, CameraSighting)
    assert (sighting.ground, sighting.ground_status) == (None, "ground_error")
    assert sighting.wedge.to_shapely().area > 0
    warnings = [r.getMessage() for r in caplog.records if "no ground point" in r.getMessage()]
    assert len(warnings) == 1
    assert "songliao-dem.tif" in warnings[0]


def test_a_drone_below_its_ground_still_posts_its_fire(tmp_path: Path) -> None:
    """A take-off altitude a little off (RelativeAltitude -0.3 m) put the camera under the ground: the box was
    dropped with an error; it now goes out unlocated (ground_status "ground_error")."""
    import re

    from tests.video.helpers import with_xmp
    from video.drone import extract_xmp_packet

    original = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    packet = extract_xmp_packet(original)
    assert packet is not None
    below = re.sub(rb'RelativeAltitude="[^"]*"', b'RelativeAltitude="-0.300"', packet)
    path = tmp_path / "below.jpg"
    path.write_bytes(with_xmp(original, below))
    sink = ListSink()
    [result] = post_drone_batch([path], CentreFireDetector(), sink, drone_id="uav-01")
    assert (result.boxes, result.error) == (1, None)
    [upload] = sink.uploads
    assert isinstance(upload.sighting, DroneSighting)
    assert (upload.sighting.ground, upload.sighting.ground_status) == (None, "ground_error")
