"""The sun's glare in a tower camera's frame: the sun's position, its cone through the lens, and the patrol ignoring
boxes inside it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from detector.detections import Detections, ImageArray, ModelInfo
from video.camera import CameraSite, Intrinsics, PtzPose, ZoomLens, directions_to_pixels, pixel_rays
from video.errors import InputError
from video.patrol import FramePipeline
from video.registry import CameraRecord, CameraRegistry, PresetRecord, RegistryError
from video.sources import Frame
from video.sun import glare_polygon, sun_ray

CHANGCHUN = (43.88, 125.32)
#: 16:00 Beijing time on 20 October 2025: the sun low in the south-west, where an evening patrol looks into it.
AUTUMN_AFTERNOON = datetime(2025, 10, 20, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "noon_elevation"),
    [((2025, 6, 21), 90 - 43.88 + 23.44), ((2025, 12, 21), 90 - 43.88 - 23.44)],
)
def test_the_sun_culminates_due_south_at_colatitude_plus_declination(
    day: tuple[int, int, int], noon_elevation: float
) -> None:
    start = datetime(*day, 2, 30, tzinfo=UTC)  # local solar noon at 125.32° E is near 03:40 UTC
    rays = [sun_ray(*CHANGCHUN, start + timedelta(minutes=m)) for m in range(150)]
    highest = max(rays, key=lambda r: r.elevation_deg)
    assert highest.elevation_deg == pytest.approx(noon_elevation, abs=0.1)
    assert highest.bearing_deg == pytest.approx(180.0, abs=1.0)
    assert rays.index(highest) == pytest.approx(70, abs=5)  # 03:40 UTC


def test_sun_ray_needs_an_aware_time() -> None:
    with pytest.raises(InputError, match="UTC offset"):
        sun_ray(*CHANGCHUN, datetime(2025, 10, 20, 8, 0))


def test_pixels_and_rays_are_inverse_through_a_distorted_lens() -> None:
    site = CameraSite(*CHANGCHUN, mast_height_m=40.0, heading_offset_deg=3.0, tilt_offset_deg=0.2)
    lens = Intrinsics.from_hfov(1280, 720, 80.0, (-0.2, 0.05, 0.001, -0.001, 0.0))
    pose = PtzPose(120.0, -2.0, roll_deg=1.5)
    u, v = np.array([10.0, 640.0, 1200.0, 300.0]), np.array([5.0, 360.0, 700.0, 100.0])
    pixels, in_front = directions_to_pixels(site, lens, pose, pixel_rays(site, lens, pose, u, v))
    assert in_front.all()
    assert pixels == pytest.approx(np.stack([u, v], 1), abs=1e-6)
    behind, in_front = directions_to_pixels(site, lens, pose, -pixel_rays(site, lens, pose, u, v))
    assert not in_front.any()
    assert np.isnan(behind).all()


def test_a_sun_far_outside_a_distorted_lens_never_masks_the_frame() -> None:
    """OpenCV's radial polynomial folds back beyond the calibrated field: projected through it, a sun 70° off the
    axis of this 90° barrel lens landed in the middle of the frame and blanked it."""
    lens = Intrinsics.from_hfov(1920, 1080, 90.0, (-0.1, 0.0, 0.0, 0.0, 0.0))  # its right edge is 49° off-axis
    sun = sun_ray(*CHANGCHUN, AUTUMN_AFTERNOON)
    site = CameraSite(*CHANGCHUN, mast_height_m=40.0)
    reaching_in = []
    for off_axis in range(50, 90, 2):
        pose = PtzPose(sun.bearing_deg - off_axis, sun.elevation_deg)
        polygon = glare_polygon(site, lens, pose, AUTUMN_AFTERNOON, 4.0)
        if polygon is not None and max(u for u, _ in polygon) > 0 and min(u for u, _ in polygon) < 1920:
            reaching_in.append(off_axis)
            assert min(u for u, _ in polygon) > 1700  # only the right edge, next to the sun
    assert reaching_in == [50, 52]  # 4° of glare reaches 2–3° past the 49° edge


def aimed_at_the_sun(when: datetime, *, heading_offset_deg: float = 0.0) -> tuple[CameraSite, PtzPose]:
    sun = sun_ray(*CHANGCHUN, when)
    site = CameraSite(*CHANGCHUN, mast_height_m=40.0, heading_offset_deg=heading_offset_deg)
    return site, PtzPose(sun.bearing_deg - heading_offset_deg, sun.elevation_deg)


def test_glare_of_a_sun_on_the_optical_axis_is_a_circle_round_the_centre() -> None:
    lens = Intrinsics.from_hfov(1280, 720, 60.0)
    site, pose = aimed_at_the_sun(AUTUMN_AFTERNOON, heading_offset_deg=-7.0)
    polygon = glare_polygon(site, lens, pose, AUTUMN_AFTERNOON, 4.0)
    assert polygon is not None
    points = np.asarray(polygon)
    radii = np.hypot(points[:, 0] - 640.0, points[:, 1] - 360.0)
    assert radii == pytest.approx(lens.fx * math.tan(math.radians(4.0)), rel=1e-3)
    assert glare_polygon(site, lens, pose, AUTUMN_AFTERNOON, 0.0) is None  # switched off


def test_no_glare_at_night_behind_the_camera_or_off_to_the_side() -> None:
    lens = Intrinsics.from_hfov(1280, 720, 60.0)
    site, pose = aimed_at_the_sun(AUTUMN_AFTERNOON)
    midnight = AUTUMN_AFTERNOON + timedelta(hours=8)
    assert glare_polygon(site, lens, pose, midnight, 4.0) is None
    behind = PtzPose(pose.pan_deg + 180.0, 0.0)
    assert glare_polygon(site, lens, behind, AUTUMN_AFTERNOON, 4.0) is None
    aside = PtzPose(pose.pan_deg + 40.0, pose.tilt_deg)  # the half field of view is 30°: 40° away is out
    assert glare_polygon(site, lens, aside, AUTUMN_AFTERNOON, 4.0) is None
    edge = PtzPose(pose.pan_deg + 32.0, pose.tilt_deg)  # the sun just outside, its glare reaching in
    polygon = glare_polygon(site, lens, edge, AUTUMN_AFTERNOON, 4.0)
    assert polygon is not None
    assert min(u for u, _ in polygon) < 0 < max(u for u, _ in polygon)
    with pytest.raises(InputError, match="sun_glare_deg"):
        glare_polygon(site, lens, pose, AUTUMN_AFTERNOON, -1.0)


def test_the_registry_reads_and_checks_the_glare_cone() -> None:
    base = {
        "cameras": [
            {
                "id": "c1",
                "site": {"latitude": 43.88, "longitude": 125.32, "mast_height_m": 40.0},
                "lens": {"type": "intrinsics", "width": 1280, "height": 720, "fx": 1100.0, "fy": 1100.0,
                         "cx": 640.0, "cy": 360.0},
                "presets": [{"id": "p1", "pan_deg": 230.0, "tilt_deg": 0.0, "sun_glare_deg": 4}],
            }
        ]
    }  # fmt: skip
    registry = CameraRegistry.from_dict(base)
    _, preset = registry.preset("c1", "p1")
    assert preset.sun_glare_deg == 4.0
    assert CameraRegistry.from_dict(registry.to_dict()).preset("c1", "p1")[1].sun_glare_deg == 4.0
    assert "sun_glare_deg" not in PresetRecord("p", 0.0, 0.0).to_dict()  # off: not written
    for bad in (-1, 45, "4"):
        base["cameras"][0]["presets"][0]["sun_glare_deg"] = bad  # type: ignore[index]
        with pytest.raises(RegistryError, match="sun_glare_deg"):
            CameraRegistry.from_dict(base)


class TwoBoxes:
    """A stand-in detector: "smoke" at the frame's centre (where the sun is) and "fire" near a corner."""

    info = ModelInfo("two-boxes", "1", ("fire", "smoke"), 640, 0.4, "test")

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            h, w = image.shape[:2]
            xyxy = np.array([[w * 0.45, h * 0.42, w * 0.55, h * 0.58], [w * 0.05, h * 0.8, w * 0.1, h * 0.9]])
            confidence = np.array([0.9, 0.8], np.float32)
            out.append(Detections((w, h), "two-boxes", "1", ("fire", "smoke"), xyxy.astype(np.float32), confidence,
                                  np.array([1, 0], np.int64)))  # fmt: skip
        return out


class ListSink:
    def send(self, upload: object) -> object:
        raise AssertionError("nothing is confirmed from one frame")


@pytest.mark.parametrize("frame_width", [1280, 640])  # the main stream, and a sub-stream of half its size
def test_the_patrol_ignores_boxes_in_the_suns_glare(frame_width: int) -> None:
    site, pose = aimed_at_the_sun(AUTUMN_AFTERNOON, heading_offset_deg=2.0)
    lens = ZoomLens(1280, 720, ((1.0, 60.0), (10.0, 6.5)))

    def pipeline(glare_deg: float) -> FramePipeline:
        preset = PresetRecord("west", pose.pan_deg, pose.tilt_deg, sun_glare_deg=glare_deg)
        registry = CameraRegistry((CameraRecord("c1", site, lens, (preset,)),))
        return FramePipeline(registry, TwoBoxes(), ListSink())  # type: ignore[arg-type]

    image = np.zeros((frame_width * 9 // 16, frame_width, 3), np.uint8)
    at_sun = pipeline(5.0).process(Frame(image, AUTUMN_AFTERNOON, "c1", "west", 0))
    assert (at_sun.status, at_sun.candidates, at_sun.sun_glare) == ("ok", 1, 1)  # the corner fire stays
    assert at_sun.to_json()["sun_glare"] == 1
    night = pipeline(5.0).process(Frame(image, AUTUMN_AFTERNOON + timedelta(hours=8), "c1", "west", 0))
    assert (night.candidates, night.sun_glare) == (2, 0)
    off = pipeline(0.0).process(Frame(image, AUTUMN_AFTERNOON, "c1", "west", 0))
    assert (off.candidates, off.sun_glare) == (2, 0)
