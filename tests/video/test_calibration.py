"""Heading and tilt calibration of a tower camera from known landmarks (video.calibration)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from video.calibration import Landmark, calibrate_site
from video.camera import GEOD, CameraSite, PtzPose, ZoomLens, box_to_wedge, directions_to_pixels
from video.cli import app
from video.errors import InputError
from video.ground import curvature_drop_m
from video.registry import CameraRecord, CameraRegistry, PresetRecord, save_registry

LENS = ZoomLens(1920, 1080, ((1.0, 58.0), (4.0, 15.2)))
# The mount as it really is: pan zero 7.3° east of north, tilt reading 0.4° too high.
TRUE_SITE = CameraSite(
    43.95, 125.10, mast_height_m=40.0, ground_elevation_m=200.0, heading_offset_deg=7.3, tilt_offset_deg=-0.4
)
# What the registry holds before calibration: pan zero taken as north.
UNCALIBRATED = CameraSite(43.95, 125.10, mast_height_m=40.0, ground_elevation_m=200.0)


def seen(
    site: CameraSite, bearing: float, distance: float, height: float | None, pose: PtzPose, name: str = ""
) -> Landmark:
    """A landmark at ``bearing``/``distance`` from the mast, ``height`` m above the mast foot's elevation, and the
    pixel the real camera shows it at."""
    lon, lat, _ = GEOD.fwd(site.longitude, site.latitude, bearing, distance)
    top = site.ground_elevation_m + (height or 0.0)
    rise = top - site.camera_altitude_m - curvature_drop_m(distance)
    elevation = math.atan2(rise, distance)
    b = math.radians(bearing)
    direction = np.array([[math.sin(b) * math.cos(elevation), math.cos(b) * math.cos(elevation), math.sin(elevation)]])
    pixels, in_front = directions_to_pixels(site, LENS, pose, direction)
    assert in_front[0]
    u, v = (float(x) for x in pixels[0])
    assert 0 <= u <= 1920
    assert 0 <= v <= 1080
    return Landmark(
        lat, lon, u, v, pose.pan_deg, pose.tilt_deg, pose.zoom, altitude_m=None if height is None else top, name=name
    )


def landmarks() -> list[Landmark]:
    return [
        seen(TRUE_SITE, 20.0, 3200.0, 45.0, PtzPose(10.0, -0.3), "silo"),
        seen(TRUE_SITE, 131.0, 5400.0, 60.0, PtzPose(118.0, -0.5, zoom=2.0), "chimney"),
        seen(TRUE_SITE, 250.0, 2100.0, None, PtzPose(250.0, -0.6), "water tower"),
        seen(TRUE_SITE, 305.0, 4100.0, 35.0, PtzPose(290.0, 0.0), "mobile mast"),
    ]


def test_landmarks_recover_heading_and_tilt_offsets() -> None:
    result = calibrate_site(UNCALIBRATED, LENS, landmarks())
    assert result.heading_offset_deg == pytest.approx(7.3, abs=1e-4)
    assert result.tilt_offset_deg == pytest.approx(-0.4, abs=1e-4)
    assert result.tilt_fitted
    assert result.max_abs_bearing_residual_deg < 1e-4
    assert result.elevation_residuals_deg[2] is None  # the water tower has no height
    assert result.warnings == ()


def test_calibrated_site_puts_the_fire_inside_the_wedge() -> None:
    """Uncalibrated, the 7.3° error puts a fire 4 km away ~510 m sideways: outside its own wedge."""
    fire = seen(TRUE_SITE, 77.0, 4000.0, 0.0, PtzPose(70.0, -0.6))
    box = (fire.u - 8.0, fire.v - 6.0, fire.u + 8.0, fire.v + 6.0)
    pose = PtzPose(70.0, -0.6)
    before = box_to_wedge(UNCALIBRATED, LENS, pose, box)
    assert not before.contains_bearing(77.0)
    calibrated = calibrate_site(UNCALIBRATED, LENS, landmarks()).apply(UNCALIBRATED)
    after = box_to_wedge(calibrated, LENS, pose, box)
    assert after.contains_bearing(77.0)
    assert after.centre_bearing_deg == pytest.approx(77.0, abs=0.01)


def test_heading_only_when_no_landmark_has_a_height() -> None:
    marks = [seen(TRUE_SITE, 45.0, 3000.0, None, PtzPose(38.0, -0.4))]
    result = calibrate_site(replace_tilt(UNCALIBRATED, -0.4), LENS, marks)
    assert not result.tilt_fitted
    assert result.tilt_offset_deg == -0.4  # kept from the site
    assert result.heading_offset_deg == pytest.approx(7.3, abs=1e-4)
    assert result.rms_bearing_deg == 0.0


def test_wrap_around_north() -> None:
    site = CameraSite(43.95, 125.10, 40.0, 200.0, heading_offset_deg=358.5)
    marks = [seen(site, b, 3000.0, None, PtzPose(p, -0.5)) for b, p in ((359.0, 0.0), (2.0, 4.0), (176.0, 178.0))]
    result = calibrate_site(UNCALIBRATED, LENS, marks, fit_tilt=False)
    assert result.heading_offset_deg == pytest.approx(358.5, abs=1e-4)


def test_a_misidentified_landmark_stands_out_in_the_residuals() -> None:
    marks = landmarks()
    wrong = marks[1]
    # the operator clicked a different chimney, 1.5° to the right of the real one
    marks[1] = Landmark(
        wrong.latitude,
        wrong.longitude,
        wrong.u + 1.5 * LENS.width / 58.0 * 2.0,
        wrong.v,
        wrong.pan_deg,
        wrong.tilt_deg,
        wrong.zoom,
        altitude_m=wrong.altitude_m,
        name="chimney",
    )
    result = calibrate_site(UNCALIBRATED, LENS, marks)
    worst = max(range(len(marks)), key=lambda i: abs(result.bearing_residuals_deg[i]))
    assert worst == 1
    assert result.rms_bearing_deg > 0.5


def test_close_landmark_warns_and_bad_input_is_refused() -> None:
    near = seen(TRUE_SITE, 20.0, 300.0, None, PtzPose(12.0, -3.0), "shed")
    result = calibrate_site(UNCALIBRATED, LENS, [near, *landmarks()])
    assert len(result.warnings) == 1
    assert "shed" in result.warnings[0]
    with pytest.raises(InputError, match="at least one landmark"):
        calibrate_site(UNCALIBRATED, LENS, [])
    outside = Landmark(43.97, 125.11, 5000.0, 10.0, 0.0, 0.0)
    with pytest.raises(InputError, match="outside"):
        calibrate_site(UNCALIBRATED, LENS, [outside])
    at_mast = Landmark(UNCALIBRATED.latitude, UNCALIBRATED.longitude, 10.0, 10.0, 0.0, 0.0)
    with pytest.raises(InputError, match="at the mast"):
        calibrate_site(UNCALIBRATED, LENS, [at_mast])


def replace_tilt(site: CameraSite, tilt: float) -> CameraSite:
    return CameraSite(
        site.latitude, site.longitude, site.mast_height_m, site.ground_elevation_m, site.heading_offset_deg, tilt
    )


def test_cli_calibrate_prints_offsets_from_registry_presets(tmp_path: Path) -> None:
    presets = (
        PresetRecord(id="n", pan_deg=10.0, tilt_deg=-0.3),
        PresetRecord(id="se", pan_deg=118.0, tilt_deg=-0.5, zoom=2.0),
        PresetRecord(id="w", pan_deg=290.0, tilt_deg=0.0),
    )
    camera = CameraRecord(id="nongan-07", site=UNCALIBRATED, lens=LENS, presets=presets)
    registry = save_registry(CameraRegistry((camera,)), tmp_path / "cameras.toml")
    marks = [m for m in landmarks() if m.name != "water tower"]
    rows = [
        {
            "name": m.name,
            "latitude": m.latitude,
            "longitude": m.longitude,
            "u": m.u,
            "v": m.v,
            "preset": p.id,
            "altitude_m": m.altitude_m,
        }
        for m, p in zip(marks, presets, strict=True)
    ]
    rows.append(
        {
            "name": "water tower",
            "latitude": landmarks()[2].latitude,
            "longitude": landmarks()[2].longitude,
            "u": landmarks()[2].u,
            "v": landmarks()[2].v,
            "pan_deg": 250.0,
            "tilt_deg": -0.6,
        }
    )
    path = tmp_path / "landmarks.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["camera", "calibrate", str(registry), "nongan-07", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["heading_offset_deg"] == pytest.approx(7.3, abs=1e-4)
    assert data["tilt_offset_deg"] == pytest.approx(-0.4, abs=1e-4)
    assert [row["name"] for row in data["landmarks"]] == ["silo", "chimney", "mobile mast", "water tower"]

    rows[0]["preset"] = "nowhere"
    path.write_text(json.dumps(rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["camera", "calibrate", str(registry), "nongan-07", str(path)])
    assert result.exit_code == 2
    assert "item 1" in result.stderr
    assert "nowhere" in result.stderr
