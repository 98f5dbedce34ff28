"""Audit fixes, drones: a drone below its take-off point is refused naming the file and the field; the warnings of
an uploaded image name the pilot's file, not the service's temporary one."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.conftest import shared_path
from tests.video.helpers import write_variant
from tests.video.test_cli import assert_one_line_error, flat_dem_under_the_h20t, invoke
from tests.video.test_patrol import CentreFireDetector
from video.drone import extract_xmp_packet, locate, read_drone_metadata
from video.errors import InputError
from video.patrol import drone_sightings


def variant(tmp_path: Path, name: str, pattern: bytes, replacement: bytes) -> Path:
    """The real H20T frame with one XMP attribute edited, written as ``name``."""
    source = shared_path("drone", "DJI_H20T.jpg")
    packet = extract_xmp_packet(source.read_bytes())
    assert packet is not None
    edited, count = re.subn(pattern, replacement, packet)
    assert count == 1
    return write_variant(source, tmp_path / name, edited)


def below_takeoff(tmp_path: Path, name: str = "below.jpg") -> Path:
    return variant(tmp_path, name, rb'RelativeAltitude="[^"]*"', b'RelativeAltitude="-5.000"')


def test_a_drone_below_its_take_off_point_names_the_file_and_the_field(tmp_path: Path) -> None:
    """It said "error: the camera (300 m) is not above the ground (305 m)": which file, which field?"""
    path = below_takeoff(tmp_path)
    with pytest.raises(InputError) as caught:
        locate(read_drone_metadata(path))
    assert caught.value.field == "RelativeAltitude"
    message = str(caught.value)
    assert message.startswith(f"{path}: RelativeAltitude -5 m puts the drone at or below its take-off point: ")
    assert "is not above the ground" in message
    status, out, err = invoke("drone", "locate", str(path), "--json")
    assert (status, out) == (2, "")
    assert_one_line_error(err, "below.jpg", "RelativeAltitude -5 m", "take-off point")


def test_a_drone_below_the_dems_ground_names_the_file_and_absolute_altitude(tmp_path: Path) -> None:
    image = shared_path("drone", "DJI_H20T.jpg")  # AbsoluteAltitude +221.404
    dem = flat_dem_under_the_h20t(tmp_path / "dem.tif", 230.0)
    status, out, err = invoke("drone", "locate", str(image), "--dem", str(dem))
    assert (status, out) == (2, "")
    assert_one_line_error(err, "DJI_H20T.jpg", "AbsoluteAltitude 221.404 m puts the drone at or below the DEM's ground")


def test_an_uploaded_images_warnings_name_its_own_file_not_the_temporary_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service writes each upload to ``/tmp/strawfire-drone-…/6.jpg`` and passes the pilot's name as
    ``image_name``: the warnings said "6.jpg: box 0 not located: /tmp/strawfire-drone-…/6.jpg: …"."""
    upload_folder = tmp_path / "strawfire-drone-x1"
    upload_folder.mkdir()
    no_pitch = variant(upload_folder, "6.jpg", rb'\s*drone-dji:GimbalPitchDegree="[^"]*"', b"")
    below = below_takeoff(upload_folder, "7.jpg")
    with caplog.at_level(logging.WARNING, logger="video.patrol"):
        first = drone_sightings(no_pitch, CentreFireDetector(), drone_id="uav-01", image_name="DJI_0042.JPG")
        second = drone_sightings(below, CentreFireDetector(), drone_id="uav-01", image_name="DJI_0043.JPG")
    assert first[0].sighting.ground_status == "no_metadata"
    assert second[0].sighting.ground_status == "ground_error"
    warnings = [r.getMessage() for r in caplog.records if "not located" in r.getMessage()]
    assert warnings
    assert all("strawfire-drone-x1" not in w and "6.jpg" not in w and "7.jpg" not in w for w in warnings)
    assert warnings[0] == (
        "DJI_0042.JPG: box 0 not located: cannot locate the frame on the ground (missing: GimbalPitchDegree)"
    )
    below_warning = "DJI_0043.JPG: box 0 not located: RelativeAltitude -5 m puts the drone at or below"
    assert any(w.startswith(below_warning) for w in warnings)
