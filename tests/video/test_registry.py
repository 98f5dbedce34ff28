"""The camera registry: typed records, validation errors that name the place, JSON/TOML round trips."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from video.camera import CameraSite, Intrinsics, PtzPose, ZoomLens
from video.errors import InputError, VideoError
from video.registry import (
    CameraRecord,
    CameraRegistry,
    PresetRecord,
    RegistryError,
    infer_source_kind,
    load_registry,
    parse_registry,
    save_registry,
)

BASE: dict[str, Any] = {
    "schema_version": 1,
    "cameras": [
        {
            "id": "nongan-07",
            "name": "农安7号塔",
            "site": {
                "latitude": 44.43,
                "longitude": 125.17,
                "mast_height_m": 40.0,
                "ground_elevation_m": 190.0,
                "heading_offset_deg": 1.5,
            },
            "lens": {"type": "zoom", "width": 1920, "height": 1080, "hfov_table": [[1.0, 58.0], [4.0, 15.2]]},
            "sigma_pan_deg": 0.3,
            "presets": [
                {
                    "id": "p1",
                    "pan_deg": 30.0,
                    "tilt_deg": -0.8,
                    "source": "rtsp://admin:secret@10.0.0.7/Streaming/Channels/101",
                    "cadence_s": 30,
                    "ignore_mask": [[[0, 0], [100, 0], [100, 50]]],
                    "tiles": [3, 2],
                },
                {
                    "id": "p2",
                    "pan_deg": 90.0,
                    "tilt_deg": -1.0,
                    "zoom": 2.5,
                    "source": "http://10.0.0.7/ISAPI/Streaming/channels/101/picture",
                    "http_auth": "digest",
                },
            ],
        },
        {
            "id": "dehui-02",
            "site": {"latitude": 44.53, "longitude": 125.70, "mast_height_m": 35.0},
            "lens": {"type": "intrinsics", "width": 1280, "height": 720, "fx": 1100, "fy": 1100, "cx": 640, "cy": 360},
            "dem": "dem/dehui.tif",
            "presets": [
                {"id": "east", "pan_deg": 90, "tilt_deg": -1.2, "source": "http://cam/mjpg", "source_kind": "mjpeg"}
            ],
        },
    ],
}


def data() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def test_registry_builds_typed_records_reusing_the_camera_types() -> None:
    registry = CameraRegistry.from_dict(data())
    camera, preset = registry.preset("nongan-07", "p2")
    assert isinstance(camera.site, CameraSite)
    assert camera.site.heading_offset_deg == 1.5
    assert isinstance(camera.lens, ZoomLens)
    assert preset.resolved_kind == "snapshot"
    assert preset.http_auth == "digest"
    assert camera.preset("p1").resolved_kind == "rtsp"
    assert camera.preset("p1").ignore_mask == (((0.0, 0.0), (100.0, 0.0), (100.0, 50.0)),)
    assert camera.pose(preset) == PtzPose(90.0, -1.0, 2.5, 0.0, 0.3, 0.1)
    other = registry.camera("dehui-02")
    assert isinstance(other.lens, Intrinsics)
    assert other.dem == "dem/dehui.tif"
    assert other.preset("east").resolved_kind == "mjpeg"
    assert [(c.id, p.id) for c, p in registry.presets()] == [
        ("nongan-07", "p1"),
        ("nongan-07", "p2"),
        ("dehui-02", "east"),
    ]


def test_json_and_toml_round_trip_exactly(tmp_path: Path) -> None:
    registry = CameraRegistry.from_dict(data())
    assert CameraRegistry.from_dict(json.loads(registry.to_json())) == registry
    assert CameraRegistry.from_dict(tomllib.loads(registry.to_toml())) == registry
    for name in ("cameras.json", "cameras.toml"):
        path = save_registry(registry, tmp_path / name)
        assert load_registry(path) == registry
    assert "农安7号塔" in (tmp_path / "cameras.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["cameras"][0]["site"].update(latitude=91), "cameras[0].site.latitude: must be within [-90, 90]"),
        (lambda d: d["cameras"][0]["site"].pop("mast_height_m"), "cameras[0].site: missing field 'mast_height_m'"),
        (lambda d: d["cameras"][0]["presets"][1].update(zoom=9), "cameras[0].presets[1].zoom: outside the lens table"),
        (lambda d: d["cameras"][0]["presets"][1].update(cadence_s=0), "cameras[0].presets[1].cadence_s: must be"),
        (lambda d: d["cameras"][0]["presets"][1].update(id="p1"), "cameras[0].presets[1].id: duplicate preset id"),
        (lambda d: d["cameras"][1].update(id="nongan-07"), "cameras[1].id: duplicate camera id 'nongan-07'"),
        (lambda d: d["cameras"][0]["presets"][0].update(id="北 1"), "cameras[0].presets[0].id: must be 1–64"),
        (lambda d: d["cameras"][0]["presets"][0].update(tilt="x"), "cameras[0].presets[0]: unknown field 'tilt'"),
        (lambda d: d["cameras"][0]["lens"].update(type="fisheye"), "cameras[0].lens.type: type must be 'zoom'"),
        (
            lambda d: d["cameras"][0]["lens"].update(hfov_table=[[4, 15], [1, 58]]),
            "cameras[0].lens.hfov_table: zoom values must strictly increase",
        ),
        (
            lambda d: d["cameras"][1]["presets"][0].update(source="rtsp://cam/1"),
            "cameras[1].presets[0].source: a mjpeg source needs an http:// or https:// URL",
        ),
        (
            lambda d: d["cameras"][0]["presets"][0].update(ignore_mask=[[[0, 0], [1, 1]]]),
            "cameras[0].presets[0].ignore_mask[0]: a polygon needs at least 3 points",
        ),
        (
            lambda d: d["cameras"][0]["presets"][0].update(tiles=[3]),
            "cameras[0].presets[0].tiles: must be [cols, rows]",
        ),
        (
            lambda d: d["cameras"][0]["presets"][0].update(tiles=[0, 2]),
            "cameras[0].presets[0].tiles: must be [cols, rows]",
        ),
        (lambda d: d.update(schema_version=2), "unsupported schema_version 2"),
        (
            lambda d: d["cameras"][0]["presets"][0].update(source="rtsp://admin:ab#cd@10.0.0.5/ch1"),
            "cameras[0].presets[0].source: the user part holds #, ? or /: percent-encode them",
        ),
        (  # the error quotes the URL without its password
            lambda d: d["cameras"][0]["presets"][0].update(source="http://admin:s3cret@cam/x", source_kind="rtsp"),
            "an rtsp source needs an rtsp:// URL, got 'http://admin:***@cam/x'",
        ),
    ],
)
def test_errors_name_the_record_and_the_field(edit: Any, message: str) -> None:
    broken = data()
    edit(broken)
    with pytest.raises(RegistryError) as info:
        CameraRegistry.from_dict(broken)
    assert message in str(info.value)
    assert isinstance(info.value, InputError)
    assert isinstance(info.value, VideoError)


def test_an_at_sign_in_a_path_or_query_is_not_a_user_part() -> None:
    for url in ("rtsp://10.0.0.1:554/user=admin&password=p@ss&channel=1", "http://10.0.0.7:80/snap.cgi?pwd=a@b"):
        broken = data()
        broken["cameras"][0]["presets"][0].update(source=url)
        assert CameraRegistry.from_dict(broken).cameras[0].presets[0].source == url


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "cameras.toml"
    bad.write_text("[[cameras]]\nid = 'x'\nsite = 3\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"cameras\.toml: .*cameras\[0\]: missing field 'lens'"):
        load_registry(bad)
    broken_json = tmp_path / "cameras.json"
    broken_json.write_text('{"cameras": [', encoding="utf-8")
    with pytest.raises(RegistryError, match=r"cameras\.json: malformed JSON at line 1"):
        load_registry(broken_json)
    with pytest.raises(RegistryError, match="no such registry file"):
        load_registry(tmp_path / "missing.json")
    with pytest.raises(RegistryError, match=r"\.json or \.toml"):
        load_registry(tmp_path / "cameras.yaml")
    with pytest.raises(RegistryError, match="<registry>: malformed TOML"):
        parse_registry("[[cameras]\n", "toml")


def test_unknown_camera_or_preset_is_an_error_not_a_guess() -> None:
    registry = CameraRegistry.from_dict(data())
    with pytest.raises(RegistryError, match="no camera 'nope'"):
        registry.camera("nope")
    with pytest.raises(RegistryError, match=r"camera 'nongan-07' has no preset 'p9' \(known: p1, p2\)"):
        registry.preset("nongan-07", "p9")


def test_source_kind_inference(tmp_path: Path) -> None:
    assert infer_source_kind("rtsp://cam/1") == "rtsp"
    assert infer_source_kind("RTSPS://cam/1") == "rtsp"
    assert infer_source_kind("https://cam/snap.jpg") == "snapshot"
    assert infer_source_kind(str(tmp_path)) == "folder"
    assert infer_source_kind(f"file://{tmp_path}") == "folder"
    assert infer_source_kind(str(tmp_path / "clip.mp4")) == "file"
    assert PresetRecord("p", 0.0, 0.0).resolved_kind is None  # no source: frames arrive as task payloads


def test_records_validate_when_built_in_code() -> None:
    site = CameraSite(44.0, 125.0, 40.0)
    lens = ZoomLens(1280, 720, ((1.0, 60.0),))
    with pytest.raises(RegistryError, match="min_range_m: must be below max_range_m"):
        CameraRecord("c", site, lens, min_range_m=9000.0)
    with pytest.raises(RegistryError, match=r"presets\[0\]\.zoom: outside the lens table"):
        CameraRecord("c", site, lens, presets=(PresetRecord("p", 0.0, 0.0, zoom=2.0),))
    with pytest.raises(RegistryError, match="tilt_deg: must be within"):
        PresetRecord("p", 0.0, -95.0)
