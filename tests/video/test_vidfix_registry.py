"""Audit fixes, the registry: a site elevation of 1e6 m, a heading offset of 400°, a pan of 720° and a camera with
no presets were accepted; each is now refused, naming the camera, the field and the bounds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.video.test_registry import data
from video.camera import CameraSite, ZoomLens
from video.registry import CameraRecord, CameraRegistry, PresetRecord, RegistryError


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["cameras"][0]["site"].update(ground_elevation_m=1e6),
            "cameras[0].site.ground_elevation_m: must be within [-1000, 9000], got 1e+06",
        ),
        (
            lambda d: d["cameras"][1]["site"].update(ground_elevation_m=-1500),
            "cameras[1].site.ground_elevation_m: must be within [-1000, 9000], got -1500",
        ),
        (
            lambda d: d["cameras"][0]["site"].update(heading_offset_deg=400),
            "cameras[0].site.heading_offset_deg: must be within [-360, 360], got 400",
        ),
        (
            lambda d: d["cameras"][0]["presets"][1].update(pan_deg=720),
            "cameras[0].presets[1].pan_deg: must be within [-360, 360], got 720",
        ),
        (lambda d: d["cameras"][1].update(presets=[]), "cameras[1].presets: a camera needs at least one preset"),
        (lambda d: d["cameras"][1].pop("presets"), "cameras[1].presets: a camera needs at least one preset"),
    ],
)
def test_out_of_bounds_sites_angles_and_cameras_without_presets_are_refused(edit: Any, message: str) -> None:
    broken = data()
    edit(broken)
    with pytest.raises(RegistryError) as info:
        CameraRegistry.from_dict(broken)
    assert message in str(info.value)


def test_bounds_themselves_and_negative_angles_are_accepted() -> None:
    fine = data()
    fine["cameras"][0]["site"].update(ground_elevation_m=-1000.0, heading_offset_deg=-360.0)
    fine["cameras"][0]["presets"][0].update(pan_deg=-359.5)
    fine["cameras"][1]["site"].update(ground_elevation_m=9000.0, heading_offset_deg=360.0)
    fine["cameras"][1]["presets"][0].update(pan_deg=360.0)
    registry = CameraRegistry.from_dict(fine)
    assert registry.camera("nongan-07").site.heading_offset_deg == -360.0  # kept as given, not wrapped
    assert registry.camera("dehui-02").preset("east").pan_deg == 360.0


def test_records_built_in_code_are_bounded_too() -> None:
    lens = ZoomLens(1280, 720, ((1.0, 60.0),))
    with pytest.raises(RegistryError, match=r"site\.ground_elevation_m: must be within \[-1000, 9000\]"):
        CameraRecord("c", CameraSite(44.0, 125.0, 40.0, ground_elevation_m=1e6), lens)
    with pytest.raises(RegistryError, match=r"site\.heading_offset_deg: must be within \[-360, 360\]"):
        CameraRecord("c", CameraSite(44.0, 125.0, 40.0, heading_offset_deg=400.0), lens)
    with pytest.raises(RegistryError, match=r"pan_deg: must be within \[-360, 360\], got 720"):
        PresetRecord("p", 720.0, 0.0)
