"""Issue #5 re-check, drone frames: a DJI position of (0, 0) is a receiver without a fix, in XMP as in EXIF."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_path
from tests.video.helpers import dji_packet, with_xmp, write_variant
from video.drone import extract_xmp_packet, locate, read_drone_metadata
from video.errors import MetadataError

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))

NO_FIX = {
    "GpsLatitude": "+0.0000000",
    "GpsLongitude": "+0.0000000",
    "AbsoluteAltitude": "+320.00",
    "RelativeAltitude": "+120.00",
    "GimbalPitchDegree": "-45.00",
    "GimbalYawDegree": "+90.00",
}


def test_an_xmp_fix_of_zero_zero_is_refused_naming_the_position_fields(tmp_path: Path) -> None:
    """DJI writes 0/0 when the aircraft has no GPS lock (indoors, ATTI mode). The EXIF reader took that for "no
    fix", the XMP reader for a position: the frame was located in the Gulf of Guinea instead of refused."""
    path = write_variant(shared_path("drone", "M3T_DJI_0001_R.JPG"), tmp_path / "nofix.jpg", dji_packet(NO_FIX))
    meta = read_drone_metadata(path)
    assert (meta.latitude, meta.longitude) == (None, None)
    with pytest.raises(MetadataError) as refused:
        locate(meta)
    assert refused.value.missing == ("GpsLatitude", "GpsLongitude")

    result = subprocess.run(
        [STRAWFIRE, "drone", "locate", str(path), "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stdout
    assert "GpsLatitude" in result.stderr
    assert "GpsLongitude" in result.stderr
    assert result.stdout == ""


def test_an_xmp_fix_of_zero_zero_falls_back_to_a_good_exif_fix(tmp_path: Path) -> None:
    """The H20T frame with its XMP position zeroed still carries its EXIF GPS (40.5637811 N, 79.7649628 W)."""
    original = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    packet = extract_xmp_packet(original)
    assert packet is not None
    zeroed = packet.replace(b'GpsLatitude="+40.5637811"', b'GpsLatitude="+0.0000000"').replace(
        b'GpsLongitude="-79.7649628"', b'GpsLongitude="+0.0000000"'
    )
    assert zeroed != packet
    path = tmp_path / "h20t-zeroed.jpg"
    path.write_bytes(with_xmp(original, zeroed))
    meta = read_drone_metadata(path)
    assert meta.sources["latitude"] == meta.sources["longitude"] == "exif"
    assert meta.latitude == pytest.approx(40.5637811, abs=1e-6)
    assert meta.longitude == pytest.approx(-79.7649628, abs=1e-6)
    fix = locate(meta)
    assert fix.ground.hit is not None
    assert fix.ground.hit.horizontal_range_m == pytest.approx(89.07, abs=0.01)


def test_one_zero_coordinate_is_a_real_place(tmp_path: Path) -> None:
    """Only both at 0 is "no fix": the equator and the prime meridian are places."""
    attributes = NO_FIX | {"GpsLatitude": "+0.0000000", "GpsLongitude": "+32.5800000"}  # Lake Victoria
    path = write_variant(shared_path("drone", "M3T_DJI_0001_R.JPG"), tmp_path / "equator.jpg", dji_packet(attributes))
    meta = read_drone_metadata(path)
    assert (meta.latitude, meta.longitude) == (0.0, 32.58)
    assert locate(meta).ground.hit is not None


def test_cross_range_stays_finite_when_the_wedge_opens_to_a_half_circle() -> None:
    """``--sigma-yaw 45`` (the CLI's limit) makes the region ±90°: r·tan(90°) printed "±1454658116452568576 m across".
    Across the ray, at the hit, the region reaches to its far arc."""
    meta = read_drone_metadata(shared_path("drone", "DJI_H20T.jpg"))
    wide = locate(meta, sigma_yaw_deg=45.0).ground
    assert wide.half_width_deg == pytest.approx(90.0)
    assert wide.hit is not None
    assert wide.cross_range_m == pytest.approx(math.sqrt(wide.far_range_m**2 - wide.hit.horizontal_range_m**2))
    narrow = locate(meta, sigma_yaw_deg=2.0).ground
    assert narrow.hit is not None
    assert narrow.cross_range_m == pytest.approx(narrow.hit.horizontal_range_m * math.tan(math.radians(4.0)))

    result = subprocess.run(
        [STRAWFIRE, "drone", "locate", str(shared_path("drone", "DJI_H20T.jpg")), "--sigma-yaw", "45"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "±65 m across" in result.stdout
