"""A JPEG that lacks only its end-of-image marker (the Zenmuse XT frame DJI_XTS.jpg) is accepted as evidence; one
whose picture data is cut short is refused, saying so."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.evidence.exif import ImageCheckError, inspect_photo
from tests.conftest import shared_path
from tests.incidents.test_dronefix_unlocated_drone import client  # noqa: F401  (the upload app, a unit round the H20T)

CUT_SHORT = "truncated: the file ends without a JPEG end-of-image marker, before the end of its picture data"


def _jpeg(**options: object) -> bytes:
    """A 320×256 frame with detail everywhere (noise): every MCU has its own bytes."""
    pixels = np.random.default_rng(7).integers(0, 256, (256, 320, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90, **options)
    data = out.getvalue()
    assert data.endswith(b"\xff\xd9")
    return data


def test_the_xt_frame_is_cut_short_and_refused_saying_how_much_is_missing() -> None:
    """Measured: its 15 restart markers are all there, but its last interval's data stops inside its 15th of 20
    MCUs, and the last 5 decode flat grey. Pillow said "image file is truncated" and the upload answered "not a
    readable image (OSError)"; now it says what is wrong."""
    data = shared_path("drone", "DJI_XTS.jpg").read_bytes()
    assert not data.endswith(b"\xff\xd9")
    with pytest.raises(ImageCheckError) as refused:
        inspect_photo(data)
    assert str(refused.value) == (
        f"{CUT_SHORT}: its last 6 of 1280 blocks (16×16 pixels, 0.5 % of the picture) have no data; send the whole file"
    )


def test_a_jpeg_missing_only_its_end_marker_is_accepted() -> None:
    data = _jpeg()
    assert inspect_photo(data[:-2]).width == 320
    restarts = _jpeg(restart_marker_blocks=8)
    assert inspect_photo(restarts[:-2]).height == 256


@pytest.mark.parametrize("kept", [0.5, 0.9, 0.999])
def test_picture_data_cut_short_is_refused_saying_so(kept: float) -> None:
    data = _jpeg()
    with pytest.raises(ImageCheckError, match=CUT_SHORT):
        inspect_photo(data[: int(len(data) * kept)])


def test_a_cut_at_a_restart_marker_is_refused() -> None:
    """Cut just before a restart marker: the intervals present decode whole, and the missing ones would be skipped
    over as junk; the count of restart markers says they are missing."""
    data = _jpeg(restart_marker_blocks=8)
    scan = data.index(b"\xff\xda")
    third = [i for i in range(scan, len(data) - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7][2]
    with pytest.raises(ImageCheckError, match=CUT_SHORT):
        inspect_photo(data[:third])


def test_a_progressive_jpeg_without_its_end_marker_is_refused() -> None:
    """A progressive file is a series of scans whose number it does not declare: one that ends between two scans
    decodes to a coarser picture, and nothing tells it from a whole one. Refused (no drone writes progressive)."""
    data = _jpeg(progressive=True)
    with pytest.raises(ImageCheckError, match="truncated: the file ends without a JPEG end-of-image marker"):
        inspect_photo(data[:-2])


def test_the_upload_names_what_is_missing_of_a_cut_frame(client: TestClient) -> None:  # noqa: F811
    token = client.post("/api/v1/auth/token", data={"username": "uav", "password": "device-password"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    unterminated = shared_path("drone", "DJI_H20T.jpg").read_bytes()[:-2]
    cut = shared_path("drone", "DJI_XTS.jpg").read_bytes()
    files = [("images", ("h20t.jpg", unterminated, "image/jpeg")), ("images", ("DJI_XTS.jpg", cut, "image/jpeg"))]
    response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "m2"}, files=files)
    assert response.status_code == 200, response.text
    whole, refused = response.json()
    assert (whole["sightings"], whole["error"]) == (1, None)
    assert refused["error"].startswith(f"DJI_XTS.jpg: {CUT_SHORT}: its last 6 of 1280 blocks")
