"""An uploaded photo is listed and downloaded under a safe name (an audit's finding:
``../../../etc/<script>alert(1)</script>.html`` was stored as ``script>.html`` and sent back in Content-Disposition)."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from service.config import Settings
from service.evidence.service import display_name
from tests.incidents.test_evidence import FIRE, photo, setup, token  # noqa: F401  (setup: a fixture)

HOSTILE = "../../../etc/<script>alert(1)</script>.html"


def test_a_hostile_file_name_is_neither_stored_nor_served(setup: tuple[TestClient, int, Settings]) -> None:  # noqa: F811
    client, incident, _ = setup
    me = token(client, "beigang")
    url = f"/api/v1/incidents/{incident}/evidence"
    data = photo(FIRE[1], FIRE[0])
    uploaded = client.post(url, headers=me, files={"file": (HOSTILE, data, "text/html")})
    assert uploaded.status_code == 201, uploaded.text
    listed = uploaded.json()["filename"]
    assert listed == "script.jpg"  # its last part, no markup, the real type's extension
    download = client.get(f"{url}/{hashlib.sha256(data).hexdigest()}", headers=me)
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/jpeg"
    digest = hashlib.sha256(data).hexdigest()
    assert download.headers["content-disposition"] == f'attachment; filename="{digest}.jpg"'
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=me).json()
    assert [e["note"] for e in events if e["kind"] == "evidence"] == ["script.jpg"]


def test_display_names_keep_what_a_phone_writes() -> None:
    assert display_name("IMG_0001.jpg", "image/jpeg") == "IMG_0001.jpg"
    assert display_name("DJI_0042.JPG", "image/jpeg") == "DJI_0042.JPG"
    assert display_name("IMG_2034.HEIC", "image/heif") == "IMG_2034.HEIC"
    assert display_name("现场照片 (2).jpeg", "image/jpeg") == "现场照片 (2).jpeg"
    assert display_name("C:\\Users\\wang\\fire.png", "image/png") == "fire.png"
    assert display_name("fire.png", "image/jpeg") == "fire.jpg"  # named for what it is
    assert display_name("=HYPERLINK(x).jpg", "image/jpeg") == "HYPERLINK(x).jpg"  # no formula in a spreadsheet
    assert display_name("\u202egpj.exe", "image/webp") == "gpj.webp"  # no right-to-left override
    assert display_name(".jpg", "image/jpeg") == "photo.jpg"
    assert len(display_name("x" * 500 + ".jpg", "image/jpeg")) == 120
