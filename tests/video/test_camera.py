"""Pixel → ray with the exact pinhole model, and detection box → bearing wedge."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from video.camera import (
    GEOD,
    CameraSite,
    Intrinsics,
    PtzPose,
    ZoomLens,
    angles_from_directions,
    box_to_wedge,
    normalise_bearing,
    pixel_rays,
    pixel_to_ray,
    rotation_matrix,
)
from video.errors import InputError

SITE = CameraSite(latitude=43.9, longitude=125.3, mast_height_m=40.0, ground_elevation_m=200.0)


def linear_bearing(pan_deg: float, hfov_deg: float, x_fraction: float) -> float:
    """Pyronear's shortcut: angle taken as linear in pixels."""
    return pan_deg + hfov_deg * (x_fraction - 0.5)


def test_linear_fov_approximation_is_off_by_3_6_degrees_at_87_degree_lens() -> None:
    lens = Intrinsics.from_hfov(1920, 1080, 87.0)
    pose = PtzPose(pan_deg=100.0, tilt_deg=0.0)
    u = 0.25 * 1920
    exact = pixel_to_ray(SITE, lens, pose, u, 540.0).bearing_deg
    expected = 100.0 + math.degrees(math.atan((u - lens.cx) / lens.fx))
    assert exact == pytest.approx(expected, abs=1e-9)
    error = linear_bearing(100.0, 87.0, 0.25) - exact
    assert error == pytest.approx(3.6, abs=0.05)  # closed-loop.md § 1.3: −3.6° at 0.25 W
    # The image edge is exactly half the FOV off the axis for the pinhole, by construction.
    assert pixel_to_ray(SITE, lens, pose, 0.0, 540.0).bearing_deg == pytest.approx(100.0 - 43.5, abs=1e-9)


def test_bearing_adds_heading_offset_and_wraps() -> None:
    site = CameraSite(43.9, 125.3, 40.0, heading_offset_deg=-12.0)
    lens = Intrinsics.from_hfov(1000, 800, 60.0)
    ray = pixel_to_ray(site, lens, PtzPose(pan_deg=5.0, tilt_deg=0.0), 500.0, 400.0)
    assert ray.bearing_deg == pytest.approx(353.0)
    assert ray.elevation_deg == pytest.approx(0.0, abs=1e-12)


def test_rotation_is_orthonormal_and_right_handed() -> None:
    for bearing, elevation, roll in [(0, 0, 0), (37, -20, 5), (250, 80, -30)]:
        r = rotation_matrix(bearing, elevation, roll)
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        b, e = angles_from_directions(r[:, 2])
        assert b[0] == pytest.approx(bearing)
        assert e[0] == pytest.approx(elevation)


def test_positive_roll_dips_the_right_side() -> None:
    r = rotation_matrix(0.0, 0.0, 10.0)
    assert r[2, 0] < 0.0  # the camera's x (right) axis points below the horizon


def test_tilted_pixel_bearing_is_not_pan_plus_atan() -> None:
    """Looking down, an off-centre pixel lies on a cone: the flat formula would be wrong by degrees."""
    lens = Intrinsics.from_hfov(1920, 1080, 60.0)
    pose = PtzPose(pan_deg=0.0, tilt_deg=-40.0)
    u, v = 1800.0, 900.0
    ray = pixel_to_ray(SITE, lens, pose, u, v)
    # Independent check: the world point lies on the ray iff it projects back to (u, v) with OpenCV.
    world = ray.direction * 100.0
    rot = rotation_matrix(0.0, -40.0)
    cam = rot.T @ world
    projected, _ = cv2.projectPoints(cam.reshape(1, 3), np.zeros(3), np.zeros(3), lens.camera_matrix(), None)
    assert projected.ravel() == pytest.approx([u, v], abs=1e-6)
    naive = math.degrees(math.atan((u - lens.cx) / lens.fx))
    assert abs(ray.bearing_deg - naive) > 5.0


def test_distortion_is_removed_exactly_with_undistort_points() -> None:
    distortion = (-0.32, 0.12, 0.001, -0.0015, -0.02)
    lens = Intrinsics(1920, 1080, 1000.0, 1002.0, 955.0, 548.0, distortion)
    pose = PtzPose(pan_deg=80.0, tilt_deg=-5.0, roll_deg=2.0)
    # Camera-frame directions of known rays, projected through the distorted lens by OpenCV.
    cam_dirs = np.array([[0.0, 0.0, 1.0], [0.8, 0.4, 1.0], [-0.7, -0.45, 1.0], [0.5, -0.5, 1.0]])
    pixels, _ = cv2.projectPoints(cam_dirs, np.zeros(3), np.zeros(3), lens.camera_matrix(), np.array(distortion))
    pixels = pixels.reshape(-1, 2)
    rays = pixel_rays(SITE, lens, pose, pixels[:, 0], pixels[:, 1])
    truth = cam_dirs @ rotation_matrix(80.0, -5.0, 2.0).T
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    assert np.degrees(np.arccos(np.clip(np.sum(rays * truth, axis=1), -1, 1))).max() < 1e-6
    # Ignoring the distortion would be off by degrees at the corners.
    pinhole = Intrinsics(1920, 1080, 1000.0, 1002.0, 955.0, 548.0)
    wrong = pixel_rays(SITE, pinhole, pose, pixels[:, 0], pixels[:, 1])
    assert np.degrees(np.arccos(np.clip(np.sum(wrong * truth, axis=1), -1, 1))).max() > 3.0


def test_zoom_table_interpolates_focal_length_and_refuses_outside() -> None:
    lens = ZoomLens(1920, 1080, ((1.0, 60.0), (30.0, 2.3)))
    assert lens.intrinsics(1.0).hfov_deg == pytest.approx(60.0)
    assert lens.intrinsics(30.0).hfov_deg == pytest.approx(2.3)
    f1, f30 = lens.intrinsics(1.0).fx, lens.intrinsics(30.0).fx
    assert lens.intrinsics(15.5).fx == pytest.approx((f1 + f30) / 2.0)
    with pytest.raises(InputError, match="zoom"):
        lens.intrinsics(31.0)
    ray_wide = pixel_to_ray(SITE, lens, PtzPose(0.0, 0.0, zoom=1.0), 1920.0, 540.0)
    ray_tele = pixel_to_ray(SITE, lens, PtzPose(0.0, 0.0, zoom=30.0), 1920.0, 540.0)
    assert ray_wide.bearing_deg == pytest.approx(30.0)
    assert ray_tele.bearing_deg == pytest.approx(1.15)


def test_box_to_wedge_half_width_is_box_plus_pose_sigma() -> None:
    lens = Intrinsics.from_hfov(1920, 1080, 60.0)
    # σ_tilt 0: a tilt error turns the bearings of pixels off the centre row a little (see the tilted tests)
    pose = PtzPose(pan_deg=350.0, tilt_deg=0.0, sigma_pan_deg=0.25, sigma_tilt_deg=0.0)
    box = (1000.0, 500.0, 1100.0, 560.0)
    wedge = box_to_wedge(SITE, lens, pose, box, max_range_m=6000.0, n_sigma=2.0)
    left = pixel_to_ray(SITE, lens, pose, 1000.0, 530.0).bearing_deg
    right = pixel_to_ray(SITE, lens, pose, 1100.0, 530.0).bearing_deg
    assert wedge.box_half_width_deg == pytest.approx((right - left) / 2.0, abs=1e-9)
    assert wedge.half_width_deg == pytest.approx(wedge.box_half_width_deg + 0.5)
    assert wedge.centre_bearing_deg == pytest.approx(normalise_bearing((left + right) / 2.0))
    assert wedge.contains_bearing(left)
    assert wedge.contains_bearing(right)
    assert not wedge.contains_bearing(right + 0.6)

    polygon = wedge.polygon(step_deg=0.25)
    assert polygon.is_valid
    lons, lats = np.array(polygon.exterior.coords).T
    _, _, dist = GEOD.inv(np.full(len(lons), SITE.longitude), np.full(len(lats), SITE.latitude), lons, lats)
    far = dist[dist > 1.0]
    assert far == pytest.approx(np.full(len(far), 6000.0), abs=1e-6)
    assert dist.min() == pytest.approx(0.0, abs=1e-6)  # apex at the camera


def test_wedge_crossing_north_wraps() -> None:
    lens = Intrinsics.from_hfov(1920, 1080, 60.0)
    wedge = box_to_wedge(SITE, lens, PtzPose(pan_deg=0.0, tilt_deg=0.0), (900.0, 500.0, 1020.0, 560.0))
    assert wedge.left_bearing_deg > 350.0
    assert wedge.right_bearing_deg < 10.0
    assert wedge.contains_bearing(0.0)
    assert wedge.contains_bearing(359.9)
    assert wedge.polygon().is_valid


def test_tilted_box_extent_comes_from_the_corners() -> None:
    lens = Intrinsics.from_hfov(1920, 1080, 60.0)
    pose = PtzPose(pan_deg=90.0, tilt_deg=-45.0, sigma_pan_deg=0.0)
    box = (1500.0, 100.0, 1900.0, 1000.0)
    wedge = box_to_wedge(SITE, lens, pose, box)
    corners = [(1500.0, 100.0), (1900.0, 100.0), (1500.0, 1000.0), (1900.0, 1000.0)]
    bearings = [pixel_to_ray(SITE, lens, pose, u, v).bearing_deg for u, v in corners]
    assert wedge.box_half_width_deg == pytest.approx((max(bearings) - min(bearings)) / 2.0, abs=1e-9)
    mid_edges = [pixel_to_ray(SITE, lens, pose, u, 550.0).bearing_deg for u in (1500.0, 1900.0)]
    assert wedge.box_half_width_deg > (mid_edges[1] - mid_edges[0]) / 2.0 + 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latitude": 91.0}, "latitude"),
        ({"longitude": float("nan")}, "longitude"),
        ({"mast_height_m": -1.0}, "mast_height_m"),
    ],
)
def test_site_validation_names_the_field(kwargs: dict[str, float], field: str) -> None:
    values = {"latitude": 43.9, "longitude": 125.3, "mast_height_m": 40.0} | kwargs
    with pytest.raises(InputError, match=field):
        CameraSite(**values)


def test_intrinsics_validation() -> None:
    with pytest.raises(InputError, match="distortion"):
        Intrinsics(100, 100, 50.0, 50.0, 50.0, 50.0, (0.1, 0.2, 0.3))
    with pytest.raises(InputError, match="fx"):
        Intrinsics(100, 100, 0.0, 50.0, 50.0, 50.0)
    with pytest.raises(InputError, match="tilt_deg"):
        PtzPose(pan_deg=0.0, tilt_deg=-91.0)
