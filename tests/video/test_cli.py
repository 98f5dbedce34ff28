"""``strawfire drone …`` / ``strawfire camera …`` as mounted: JSON contracts, exit statuses, one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import typer
from affine import Affine
from typer.testing import CliRunner

from tests.conftest import shared_path
from tests.video.helpers import write_variant
from video.camera import GEOD
from video.cli import app, camera_app, drone_app
from video.drone import extract_xmp_packet

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(stderr: str, *needles: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0]


def test_locate_centre_json() -> None:
    image = shared_path("drone", "DJI_H20T.jpg")
    status, out, err = invoke("drone", "locate", str(image), "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert payload["method"] == "ray"
    assert payload["terrain"] == "flat_takeoff"
    assert payload["pixel"] == [320.0, 256.0]
    assert payload["horizontal_range_m"] == pytest.approx(16.508 / math.tan(math.radians(10.5)), abs=0.01)
    azimuth, _, distance = GEOD.inv(-79.7649628, 40.5637811, payload["longitude"], payload["latitude"])
    assert azimuth == pytest.approx(32.5, abs=1e-6)
    assert distance == pytest.approx(payload["horizontal_range_m"], abs=1e-6)
    assert payload["altitude_m"] == pytest.approx(221.404 - 16.508)
    assert payload["lrf_check_m"] is None
    assert payload["lrf"] is None
    assert payload["near_range_m"] < payload["horizontal_range_m"] < payload["far_range_m"]
    assert payload["drone"]["model"] == "ZH20T"


def test_locate_pixel_and_human_output() -> None:
    image = shared_path("drone", "DJI_H20T.jpg")
    status, out, _ = invoke("drone", "locate", str(image), "--pixel", "320", "512", "--json")
    assert status == 0
    payload = json.loads(out)
    assert payload["pixel"] == [320.0, 512.0]
    assert payload["intrinsics_source"] == "FocalLengthIn35mmFilm (diagonal)"
    assert payload["horizontal_range_m"] < 40.0
    status, out, _ = invoke("drone", "locate", str(image))
    assert status == 0
    assert out.startswith("40.56445")
    assert "(ray, flat_takeoff" in out


def lrf_variant(tmp_path: Path) -> tuple[Path, float, float]:
    source = shared_path("drone", "DJI_H20T.jpg")
    packet = extract_xmp_packet(source.read_bytes())
    assert packet is not None
    lat, lon = 40.56445, -79.76440
    extra = (
        f'drone-dji:LRFStatus="Normal" drone-dji:LRFTargetLat="{lat}" drone-dji:LRFTargetLon="{lon}" '
        'drone-dji:LRFTargetAbsAlt="204.900" drone-dji:LRFTargetDistance="90.589"'
    )
    patched = packet.replace(b'drone-dji:SelfData=""', b'drone-dji:SelfData="" ' + extra.encode())
    return write_variant(source, tmp_path / "lrf.jpg", patched), lat, lon


def test_locate_with_lrf_fields(tmp_path: Path) -> None:
    image, lat, lon = lrf_variant(tmp_path)
    status, out, _ = invoke("drone", "locate", str(image), "--json")
    assert status == 0
    ray = json.loads(out)
    assert ray["method"] == "ray"
    assert (ray["latitude"], ray["longitude"]) != (lat, lon)  # never copied from LRFTarget*
    expected_gap = GEOD.inv(ray["longitude"], ray["latitude"], lon, lat)[2]
    assert ray["lrf_check_m"] == pytest.approx(expected_gap)
    assert ray["lrf_check_m"] < 1.0
    assert ray["lrf"]["distance_m"] == pytest.approx(90.589)

    status, out, _ = invoke("drone", "locate", str(image), "--use-lrf", "--json")
    assert status == 0
    chosen = json.loads(out)
    assert chosen["method"] == "lrf"
    assert (chosen["latitude"], chosen["longitude"], chosen["altitude_m"]) == (lat, lon, 204.9)
    assert chosen["lrf_check_m"] == pytest.approx(ray["lrf_check_m"])


def test_use_lrf_without_lrf_fields_is_refused() -> None:
    status, out, err = invoke("drone", "locate", str(shared_path("drone", "DJI_XTR.jpg")), "--use-lrf", "--json")
    assert status == 2
    assert out == ""
    assert_one_line_error(err, "DJI_XTR.jpg", "LRFTargetLat", "LRFTargetLon")


def flat_dem_under_the_h20t(path: Path, height_m: float) -> Path:
    """A flat 50×50-cell DEM (EPSG:4326) at ``height_m`` around where the DJI_H20T sample was flown."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=50,
        height=50,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=Affine(0.00005, 0.0, -79.7662, 0.0, -0.00005, 40.5650),
    ) as ds:
        ds.write(np.full((50, 50), height_m, dtype=np.float32), 1)
    return path


def test_locate_on_a_dem(tmp_path: Path) -> None:
    image = shared_path("drone", "DJI_H20T.jpg")
    dem = flat_dem_under_the_h20t(tmp_path / "dem.tif", 204.896)
    status, out, err = invoke("drone", "locate", str(image), "--dem", str(dem), "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert payload["terrain"] == "dem"
    assert payload["horizontal_range_m"] == pytest.approx(89.07, abs=0.05)
    status, _, err = invoke("drone", "locate", str(image), "--dem", str(tmp_path / "nope.tif"))
    assert status == 2
    assert_one_line_error(err, "nope.tif")


@pytest.mark.parametrize(
    ("args", "status", "needles"),
    [
        (["M3T_DJI_0001_R.JPG"], 2, ["M3T_DJI_0001_R.JPG", "GpsLatitude", "GimbalYawDegree"]),
        (["M30T_DJI_0001_R.JPG"], 2, ["M30T_DJI_0001_R.JPG", "RelativeAltitude"]),
        (["DJI_XT2.jpg"], 1, ["DJI_XT2.jpg", "above horizon"]),
        (["DJI_XTS.jpg"], 1, ["DJI_XTS.jpg", "+19.90°"]),
        (["DJI_XTR.jpg", "--pixel", "10", "10"], 2, ["DJI_XTR.jpg", "CalibratedFocalLength"]),
        (["DJI_H20T.jpg", "--pixel", "700", "10"], 2, ["DJI_H20T.jpg", "pixel (700, 10)", "outside"]),
        (["DJI_H20T.jpg", "--sigma-yaw", "-1"], 2, ["--sigma-yaw"]),
        (["DJI_H20T.jpg", "--hfov", "200"], 2, ["--hfov"]),
    ],
)
def test_locate_refusals(args: list[str], status: int, needles: list[str]) -> None:
    image = str(shared_path("drone", args[0]))
    code, out, err = invoke("drone", "locate", image, *args[1:], "--json")
    assert code == status
    assert out == ""
    assert_one_line_error(err, *needles)


def test_locate_missing_and_non_jpeg_files(tmp_path: Path) -> None:
    status, _, err = invoke("drone", "locate", str(tmp_path / "absent.jpg"))
    assert status == 2
    assert_one_line_error(err, "absent.jpg", "no such file")
    text = tmp_path / "x.jpg"
    text.write_text("not an image", encoding="utf-8")
    status, _, err = invoke("drone", "locate", str(text))
    assert status == 2
    assert_one_line_error(err, "x.jpg", "not a JPEG")


def observations(tmp_path: Path, items: object, name: str = "obs.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def two_towers() -> tuple[list[dict[str, float]], tuple[float, float]]:
    fire = (125.3, 43.95)
    items = []
    for azimuth in (210.0, 150.0):
        lon, lat, _ = GEOD.fwd(fire[0], fire[1], azimuth, 4000.0)
        bearing = GEOD.inv(lon, lat, fire[0], fire[1])[0]
        items.append(
            {"latitude": lat, "longitude": lon, "height_m": 40.0, "bearing_deg": bearing, "bearing_sigma_deg": 0.5}
        )
    return items, fire


def test_triangulate_json(tmp_path: Path) -> None:
    items, fire = two_towers()
    status, out, err = invoke("camera", "triangulate", str(observations(tmp_path, items)), "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert {"latitude", "longitude", "sigma_major_m", "sigma_minor_m", "crossing_angle_deg"} <= set(payload)
    assert GEOD.inv(payload["longitude"], payload["latitude"], *fire)[2] < 0.01
    assert payload["crossing_angle_deg"] == pytest.approx(60.0, abs=0.01)
    assert payload["sigma_major_m"] == pytest.approx(49.4, abs=0.5)
    assert payload["sigma_minor_m"] == pytest.approx(28.5, abs=0.5)
    assert payload["accepted"] is True
    assert payload["reasons"] == []
    assert payload["dof"] == 0
    assert payload["p_value"] is None
    status, out, _ = invoke("camera", "triangulate", str(observations(tmp_path, items)))
    assert status == 0
    assert "crossing 60.0°, accepted" in out


def test_triangulate_rejection_exits_1_without_a_position(tmp_path: Path) -> None:
    """A rejected crossing exited 0 with its least-squares point printed as a position: now exit status 1, the
    reasons on stderr, and with --json the diagnostics but no position."""
    items, _ = two_towers()
    items[0]["bearing_deg"] = (items[0]["bearing_deg"] + 180.0) % 360.0
    path = observations(tmp_path, items, "towers.json")
    status, out, err = invoke("camera", "triangulate", str(path), "--json")
    assert status == 1
    payload = json.loads(out)
    assert payload["accepted"] is False
    assert payload["reasons"][0].startswith("behind camera 0")
    assert [payload[k] for k in ("latitude", "longitude", "sigma_major_m", "sigma_minor_m", "orientation_deg")] == [
        None
    ] * 5
    assert payload["crossing_angle_deg"] > 15.0  # the diagnostics stay
    assert_one_line_error(err, "towers.json", "no accepted crossing", "behind camera 0")
    status, out, err = invoke("camera", "triangulate", str(path))
    assert (status, out) == (1, "")
    assert_one_line_error(err, "towers.json", "no accepted crossing", "behind camera 0")


def test_triangulate_bearings_parallel_in_the_same_direction_exit_1(tmp_path: Path) -> None:
    """Two towers 800 m apart both looking north: the least squares "crossed" them in Greenland, printed with exit
    status 0 (the audit's case)."""
    items = [
        {"latitude": 44.1, "longitude": lon, "height_m": 35, "bearing_deg": 0, "bearing_sigma_deg": 0.5}
        for lon in (125.3, 125.31)
    ]
    path = observations(tmp_path, items, "parallel.json")
    status, out, err = invoke("camera", "triangulate", str(path))
    assert (status, out) == (1, "")
    assert_one_line_error(err, "parallel.json", "crossing angle 0.0° is under 15°")
    status, out, _ = invoke("camera", "triangulate", str(path), "--json")
    assert status == 1
    assert (json.loads(out)["latitude"], json.loads(out)["longitude"]) == (None, None)


def test_triangulate_parallel_bearings_have_no_solution(tmp_path: Path) -> None:
    items, _ = two_towers()
    items[1] = dict(items[0], bearing_deg=(items[0]["bearing_deg"] + 180.0) % 360.0)
    status, out, err = invoke("camera", "triangulate", str(observations(tmp_path, items)), "--json")
    assert status == 1
    assert out == ""
    assert_one_line_error(err, "parallel")


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        (lambda items: items[1].pop("bearing_deg"), ["item 2", "missing field 'bearing_deg'"]),
        (lambda items: items[0].update(latitude=95.0), ["item 1", "latitude", "[-90, 90]"]),
        (lambda items: items[1].update(bearing_sigma_deg=0.0), ["item 2", "bearing_sigma_deg"]),
        (lambda items: items[0].update(longitude="125.3"), ["item 1", "'longitude' must be a finite number"]),
        (lambda items: items[0].update(height_m=True), ["item 1", "'height_m'"]),
        (lambda items: items[1].update(bearing="x"), ["item 2", "unknown field 'bearing'"]),
        (lambda items: items.pop(), ["at least 2 observations"]),
        (lambda items: items.append(3), ["item 3", "expected an object"]),
    ],
)
def test_triangulate_bad_items(tmp_path: Path, mutate: object, needles: list[str]) -> None:
    items, _ = two_towers()
    mutate(items)  # type: ignore[operator]
    path = observations(tmp_path, items, "towers.json")
    status, out, err = invoke("camera", "triangulate", str(path), "--json")
    assert status == 2
    assert out == ""
    assert_one_line_error(err, "towers.json", *needles)


def test_triangulate_bad_files(tmp_path: Path) -> None:
    status, _, err = invoke("camera", "triangulate", str(tmp_path / "none.json"))
    assert status == 2
    assert_one_line_error(err, "none.json", "no such file")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"latitude": 43.9,\n  "longitude": }]', encoding="utf-8")
    status, _, err = invoke("camera", "triangulate", str(broken))
    assert status == 2
    assert_one_line_error(err, "broken.json", "malformed JSON at line 2")
    status, _, err = invoke("camera", "triangulate", str(observations(tmp_path, {"latitude": 1}, "obj.json")))
    assert status == 2
    assert_one_line_error(err, "obj.json", "expected a JSON list")
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(two_towers()[0]).replace("40.0", "NaN", 1), encoding="utf-8")
    status, _, err = invoke("camera", "triangulate", str(nan))
    assert status == 2
    assert_one_line_error(err, "nan.json", "item 1", "height_m")


def test_apps_mount_under_a_parent_cli(tmp_path: Path) -> None:
    parent = typer.Typer()
    parent.add_typer(drone_app, name="drone")
    parent.add_typer(camera_app, name="camera")
    items, _ = two_towers()
    result = runner.invoke(parent, ["camera", "triangulate", str(observations(tmp_path, items)), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["accepted"] is True
    result = runner.invoke(parent, ["drone", "--help"])
    assert result.exit_code == 0
    assert "locate" in result.stdout


def test_cli_module_imports_no_heavy_packages() -> None:
    code = (
        "import sys, video.cli; "
        "print(sorted(m for m in ('numpy', 'cv2', 'pyproj', 'rasterio', 'PIL', 'shapely') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
