"""DJI drone frames: metadata of the real samples, refusals, centre projection, the LRF cross-check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from tests.conftest import shared_path
from tests.video.helpers import dji_packet, write_variant
from video.camera import GEOD, Intrinsics
from video.drone import (
    DJI_LEGACY_NS,
    DJI_NS,
    drone_intrinsics,
    extract_xmp_packet,
    locate,
    lrf_fix,
    parse_xmp,
    read_drone_metadata,
)
from video.errors import InputError, MetadataError, NoGroundIntersectionError
from video.ground import DemTerrain

WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3


def drone_file(name: str) -> Path:
    return shared_path("drone", name)


def hand_projection(lat: float, lon: float, height: float, pitch_deg: float, yaw_deg: float) -> tuple[float, float]:
    """Flat ground, local tangent plane, WGS-84 radii of curvature: what one computes on paper for ~100 m."""
    distance = height / math.tan(math.radians(-pitch_deg))
    north = distance * math.cos(math.radians(yaw_deg))
    east = distance * math.sin(math.radians(yaw_deg))
    phi = math.radians(lat)
    w = math.sqrt(1.0 - WGS84_E2 * math.sin(phi) ** 2)
    meridian = WGS84_A * (1.0 - WGS84_E2) / w**3
    prime_vertical = WGS84_A / w
    return lat + math.degrees(north / meridian), lon + math.degrees(east / (prime_vertical * math.cos(phi)))


def lrf_point_along_axis(
    lat: float, lon: float, alt: float, yaw_deg: float, pitch_deg: float, distance: float
) -> tuple[float, float, float]:
    """DJI's LRF definition: the point ``distance`` metres along the optical axis — computed in ECEF, straight."""
    to_ecef = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    origin = np.array(to_ecef.transform(lon, lat, alt))
    phi, lam = math.radians(lat), math.radians(lon)
    east = np.array([-math.sin(lam), math.cos(lam), 0.0])
    north = np.array([-math.sin(phi) * math.cos(lam), -math.sin(phi) * math.sin(lam), math.cos(phi)])
    up = np.array([math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)])
    p, y = math.radians(pitch_deg), math.radians(yaw_deg)
    axis = math.cos(p) * math.sin(y) * east + math.cos(p) * math.cos(y) * north + math.sin(p) * up
    x, yy, z = origin + distance * axis
    lon2, lat2, h2 = to_ecef.transform(x, yy, z, direction="INVERSE")
    return float(lat2), float(lon2), float(h2)


EXPECTED = {
    # data README § drone, plus what the files hold beyond it.
    "DJI_H20T.jpg": {
        "model": "ZH20T",
        "latitude": 40.5637811,
        "longitude": -79.7649628,
        "absolute_altitude_m": 221.404,
        "relative_altitude_m": 16.508,
        "gimbal_pitch_deg": -10.5,
        "gimbal_yaw_deg": 32.5,
        "gimbal_roll_deg": 0.0,
        "flight_yaw_deg": 30.3,
        "xmp_namespace": DJI_NS,
        "position_source": "xmp",
    },
    "DJI_XT2.jpg": {
        "model": "FLIR",
        "latitude": 9.9721574,
        "longitude": 76.3777859,
        "absolute_altitude_m": 39.156853,
        "relative_altitude_m": 1.9,
        "gimbal_pitch_deg": 0.0,
        "gimbal_yaw_deg": 82.400002,
        "gimbal_roll_deg": 0.0,
        "flight_yaw_deg": 81.900002,
        "xmp_namespace": DJI_NS,
        "position_source": "exif",  # "no XMP GPS"
    },
    "DJI_XTR.jpg": {
        "model": "FLIR",
        "latitude": -20.2327963,
        "longitude": -43.4913761,
        "absolute_altitude_m": 863.583862,
        "relative_altitude_m": 1.5,
        "gimbal_pitch_deg": -8.3,
        "gimbal_yaw_deg": 153.600006,
        "gimbal_roll_deg": 0.0,
        "flight_yaw_deg": 66.599998,
        "xmp_namespace": DJI_NS,
        "position_source": "exif",
    },
    "DJI_XTS.jpg": {
        # No drone-dji XMP, EXIF GPS: the attitude sits in the legacy http://www.dji.com namespace.
        "model": "XT S",
        "latitude": 36.7296940,
        "longitude": 119.8433415,
        "absolute_altitude_m": -29.44,
        "relative_altitude_m": 37.7,
        "gimbal_pitch_deg": 19.9,
        "gimbal_yaw_deg": 91.3,
        "gimbal_roll_deg": 0.0,
        "flight_yaw_deg": 86.2,
        "xmp_namespace": DJI_LEGACY_NS,
        "position_source": "exif",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_sample_metadata(name: str) -> None:
    meta = read_drone_metadata(drone_file(name))
    expected = EXPECTED[name]
    assert (meta.width, meta.height) == (640, 512)
    assert meta.make == "DJI"
    assert meta.model == expected["model"]
    assert meta.xmp_namespace == expected["xmp_namespace"]
    for key in (
        "latitude",
        "longitude",
        "absolute_altitude_m",
        "relative_altitude_m",
        "gimbal_pitch_deg",
        "gimbal_yaw_deg",
        "gimbal_roll_deg",
        "flight_yaw_deg",
    ):
        assert getattr(meta, key) == pytest.approx(expected[key], abs=1e-6), key
    assert meta.sources["latitude"] == meta.sources["longitude"] == expected["position_source"]
    assert meta.lrf is None  # none of the shared samples carries a laser-rangefinder target


def test_h20t_xmp_and_exif_positions_agree() -> None:
    path = drone_file("DJI_H20T.jpg")
    meta = read_drone_metadata(path)
    # EXIF: 40°33'49.6119" N, 79°45'53.8661" W, GPSAltitude 221.404.
    assert meta.latitude == pytest.approx(40 + 33 / 60 + 49.6119 / 3600, abs=1e-7)
    assert meta.longitude == pytest.approx(-(79 + 45 / 60 + 53.8661 / 3600), abs=1e-7)
    assert meta.focal_length_mm == 13.5
    assert meta.focal_length_35mm == 58.0


@pytest.mark.parametrize("name", ["M3T_DJI_0001_R.JPG", "M30T_DJI_0001_R.JPG"])
def test_stripped_frames_are_refused_naming_the_missing_fields(name: str) -> None:
    meta = read_drone_metadata(drone_file(name))
    assert meta.xmp_namespace is None
    assert meta.latitude is None
    with pytest.raises(MetadataError) as info:
        locate(meta)
    assert info.value.missing == (
        "GpsLatitude",
        "GpsLongitude",
        "AbsoluteAltitude",
        "RelativeAltitude",
        "GimbalPitchDegree",
        "GimbalYawDegree",
    )
    assert name in str(info.value)
    assert "no DJI XMP packet" in str(info.value)


@pytest.mark.parametrize("name", ["DJI_H20T.jpg", "DJI_XTR.jpg"])
def test_centre_projection_agrees_with_hand_computation(name: str) -> None:
    meta = read_drone_metadata(drone_file(name))
    assert meta.latitude is not None
    assert meta.longitude is not None
    assert meta.relative_altitude_m is not None
    assert meta.gimbal_pitch_deg is not None
    assert meta.gimbal_yaw_deg is not None
    assert meta.takeoff_elevation_m is not None
    fix = locate(meta)
    lat, lon = hand_projection(
        meta.latitude, meta.longitude, meta.relative_altitude_m, meta.gimbal_pitch_deg, meta.gimbal_yaw_deg
    )
    _, _, gap = GEOD.inv(fix.longitude, fix.latitude, lon, lat)
    assert gap < 0.05
    assert fix.altitude_m == pytest.approx(meta.takeoff_elevation_m)
    assert fix.terrain == "flat_takeoff"
    assert fix.yaw_source == "GimbalYawDegree"
    assert fix.pixel == (320.0, 256.0)
    assert fix.lrf_check_m is None
    assert fix.ground.near_range_m < fix.ground.hit.horizontal_range_m < fix.ground.far_range_m  # type: ignore[union-attr]


def test_h20t_centre_numbers() -> None:
    fix = locate(read_drone_metadata(drone_file("DJI_H20T.jpg")))
    assert fix.ground.hit is not None
    assert fix.ground.hit.horizontal_range_m == pytest.approx(16.508 / math.tan(math.radians(10.5)), abs=0.01)
    assert fix.ground.ray.bearing_deg == pytest.approx(32.5)


@pytest.mark.parametrize(("name", "pitch"), [("DJI_XT2.jpg", 0.0), ("DJI_XTS.jpg", 19.9)])
def test_frames_at_or_above_the_horizon_have_no_ground_point(name: str, pitch: float) -> None:
    meta = read_drone_metadata(drone_file(name))
    assert meta.gimbal_pitch_deg == pytest.approx(pitch)
    with pytest.raises(NoGroundIntersectionError) as info:
        locate(meta)
    assert info.value.reason == "above_horizon"


def test_off_axis_pixel_uses_35mm_equivalent_focal_length() -> None:
    meta = read_drone_metadata(drone_file("DJI_H20T.jpg"))
    found = drone_intrinsics(meta)
    assert found is not None
    lens, source = found
    assert source.startswith("FocalLengthIn35mmFilm")
    # 13.5 mm on a 640×512, 12 µm sensor (7.68 × 6.144 mm): the 35 mm equivalent on the diagonal is 59.4; EXIF
    # says 58, so the two focal lengths in pixels agree within 2.5 %.
    assert lens.fx == pytest.approx(13.5 / 0.012, rel=0.025)
    bottom_centre = locate(meta, (320.0, 512.0))
    depression = 10.5 + math.degrees(math.atan(256.0 / lens.fx))
    assert bottom_centre.ground.ray.elevation_deg == pytest.approx(-depression)
    assert bottom_centre.ground.ray.bearing_deg == pytest.approx(32.5)
    assert bottom_centre.ground.hit is not None
    assert bottom_centre.ground.hit.horizontal_range_m == pytest.approx(
        16.508 / math.tan(math.radians(depression)), abs=0.01
    )
    # The top row looks 2.6° above the horizon: no ground there.
    with pytest.raises(NoGroundIntersectionError):
        locate(meta, (320.0, 0.0))
    right = locate(meta, (640.0, 256.0))
    assert right.ground.ray.bearing_deg > 32.5 + 10.0
    with pytest.raises(InputError, match="outside"):
        locate(meta, (641.0, 10.0))


def test_off_axis_pixel_without_focal_length_is_refused_unless_given() -> None:
    meta = read_drone_metadata(drone_file("DJI_XTR.jpg"))
    assert drone_intrinsics(meta) is None
    with pytest.raises(MetadataError, match="CalibratedFocalLength"):
        locate(meta, (320.0, 400.0))
    fix = locate(meta, (320.0, 400.0), intrinsics=Intrinsics.from_hfov(640, 512, 32.0))
    assert fix.intrinsics_source == "given"
    assert fix.ground.hit is not None
    assert fix.ground.hit.horizontal_range_m < locate(meta).ground.hit.horizontal_range_m  # type: ignore[union-attr]


def h20t_with_lrf(tmp_path: Path, extra: str) -> Path:
    source = drone_file("DJI_H20T.jpg")
    packet = extract_xmp_packet(source.read_bytes())
    assert packet is not None
    patched = packet.replace(b'drone-dji:SelfData=""', b'drone-dji:SelfData=""\n   ' + extra.encode())
    assert patched != packet
    return write_variant(source, tmp_path / "h20t_lrf.jpg", patched)


def lrf_attributes(lat: float, lon: float, alt: float, distance: float, status: str = "Normal") -> str:
    return (
        f'drone-dji:LRFStatus="{status}" drone-dji:LRFTargetDistance="{distance:.3f}" '
        f'drone-dji:LRFTargetLon="{lon:.9f}" drone-dji:LRFTargetLat="{lat:.9f}" '
        f'drone-dji:LRFTargetAlt="{alt - 204.896:.3f}" drone-dji:LRFTargetAbsAlt="{alt:.3f}"'
    )


def test_lrf_acceptance_ray_centre_matches_an_independent_lrf_target(tmp_path: Path) -> None:
    """No shared sample has LRF fields, so the real H20T metadata gets the target DJI would have measured."""
    meta = read_drone_metadata(drone_file("DJI_H20T.jpg"))
    slant = 16.508 / math.sin(math.radians(10.5))  # optical axis to the take-off plane
    lat, lon, alt = lrf_point_along_axis(40.5637811, -79.7649628, 221.404, 32.5, -10.5, slant)
    assert alt == pytest.approx(204.896, abs=0.01)
    path = h20t_with_lrf(tmp_path, lrf_attributes(lat, lon, alt, slant))
    with_lrf = read_drone_metadata(path)
    assert with_lrf.lrf is not None
    assert with_lrf.lrf.distance_m == pytest.approx(slant, abs=1e-3)
    assert with_lrf.gimbal_pitch_deg == meta.gimbal_pitch_deg
    fix = locate(with_lrf)
    assert fix.lrf_check_m is not None
    assert fix.lrf_check_m < 0.05
    # The ray result is computed, not copied: it equals the LRF-free result bit for bit.
    plain = locate(meta)
    assert (fix.latitude, fix.longitude) == (plain.latitude, plain.longitude)
    assert lrf_fix(with_lrf).latitude == pytest.approx(lat, abs=1e-9)


def test_lrf_check_reports_disagreement(tmp_path: Path) -> None:
    # An LRF return from a wall 30 m short of the ground point (what a stubble fire's smoke would not be).
    lat, lon, alt = lrf_point_along_axis(40.5637811, -79.7649628, 221.404, 32.5, -10.5, 60.0)
    meta = read_drone_metadata(h20t_with_lrf(tmp_path, lrf_attributes(lat, lon, alt, 60.0)))
    fix = locate(meta)
    expected = 16.508 / math.tan(math.radians(10.5)) - 60.0 * math.cos(math.radians(10.5))
    assert fix.lrf_check_m == pytest.approx(expected, abs=0.05)


def test_lrf_with_bad_status_is_ignored(tmp_path: Path) -> None:
    meta = read_drone_metadata(h20t_with_lrf(tmp_path, lrf_attributes(40.5644, -79.7644, 204.9, 90.0, "TooFar")))
    assert meta.lrf is None
    assert meta.lrf_status == "TooFar"
    with pytest.raises(MetadataError, match="TooFar"):
        lrf_fix(meta)


def test_misspelt_longitude_and_yaw_fallbacks(tmp_path: Path) -> None:
    source = drone_file("M3T_DJI_0001_R.JPG")
    attributes = {
        "GpsLatitude": "+43.9000000",
        "GpsLongtitude": "+125.3000000",  # older firmware
        "AbsoluteAltitude": "+320.00",
        "RelativeAltitude": "+120.00",
        "GimbalPitchDegree": "-45.00",
        "FlightYawDegree": "+90.00",
    }
    meta = read_drone_metadata(write_variant(source, tmp_path / "old.jpg", dji_packet(attributes)))
    assert meta.longitude == pytest.approx(125.3)
    assert meta.sources["longitude"] == "xmp"
    fix = locate(meta)
    assert fix.yaw_source == "FlightYawDegree (GimbalYawDegree missing)"
    assert fix.ground.hit is not None
    assert fix.ground.hit.horizontal_range_m == pytest.approx(120.0, abs=0.01)
    assert fix.ground.ray.bearing_deg == pytest.approx(90.0)
    # Off-axis pixels use the M3T's EXIF 35 mm equivalent (40 mm).
    assert locate(meta, (0.0, 256.0)).intrinsics_source == "FocalLengthIn35mmFilm (diagonal)"

    zero = meta.__class__(**{**{f: getattr(meta, f) for f in meta.__dataclass_fields__}, "gimbal_yaw_deg": 0.0})
    assert zero.yaw() == (90.0, "FlightYawDegree (GimbalYawDegree was 0)")


def test_dem_projection_agrees_with_flat_takeoff(tmp_path: Path) -> None:
    meta = read_drone_metadata(drone_file("DJI_H20T.jpg"))
    assert meta.latitude is not None
    assert meta.longitude is not None
    heights = np.full((100, 100), 204.896, dtype=np.float32)
    transform = Affine(0.00002, 0.0, meta.longitude - 0.001, 0.0, -0.00002, meta.latitude + 0.001)
    path = tmp_path / "flat.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=100,
        height=100,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=transform,
    ) as ds:
        ds.write(heights, 1)
    on_dem = locate(meta, terrain=DemTerrain.from_file(path))
    flat = locate(meta)
    assert on_dem.terrain == "dem"
    _, _, gap = GEOD.inv(on_dem.longitude, on_dem.latitude, flat.longitude, flat.latitude)
    assert gap < 0.05


def test_xmp_parser_forms() -> None:
    packet = (
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='r'>"
        b"<rdf:Description xmlns:drone-dji='http://www.dji.com/drone-dji/1.0/' drone-dji:GpsLatitude='+1.5'>"
        b"<drone-dji:GimbalYawDegree>-12.25</drone-dji:GimbalYawDegree>"
        b"<other:Thing>x &amp; y</other:Thing></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    props = parse_xmp(packet)
    assert props[(DJI_NS, "GpsLatitude")] == "+1.5"
    assert props[(DJI_NS, "GimbalYawDegree")] == "-12.25"
    assert props[("prefix:other", "Thing")] == "x & y"
    with pytest.raises(InputError, match="not a JPEG"):
        extract_xmp_packet(b"GIF89a")


def test_not_a_jpeg_and_missing_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match="not a JPEG"):
        read_drone_metadata(text)
    with pytest.raises(InputError, match="no such file"):
        read_drone_metadata(tmp_path / "absent.jpg")


def test_malformed_xmp_number_names_the_field(tmp_path: Path) -> None:
    source = drone_file("M3T_DJI_0001_R.JPG")
    path = write_variant(source, tmp_path / "bad.jpg", dji_packet({"GimbalPitchDegree": "down"}))
    with pytest.raises(MetadataError, match="GimbalPitchDegree"):
        read_drone_metadata(path)
