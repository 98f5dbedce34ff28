"""Evidence photos: content-addressed storage, EXIF checks, limits, scope, and citation by transitions."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.orm import Session

from service.auth.service import SYSTEM, create_user
from service.config import Settings
from service.db import transaction
from service.demo import load_demo
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import Role
from service.main import create_app
from service.regions.service import RegionIndexCache
from tests.conftest import without_alert_worker

PASSWORD = "evidence-password"
FIRE = (125.55, 44.33)  # in 北岗镇 (DEMO01)


def satellite_fire(session: Session, settings: Settings, key: str = "s1", lon: float = FIRE[0]) -> int:
    """A new incident from one satellite pixel (about 650 m x 330 m) centred on FIRE (or ``lon`` at its latitude),
    2025-10-20 13:30 local time."""
    pixel = shapely.box(lon - 0.004, FIRE[1] - 0.003, lon + 0.004, FIRE[1] + 0.003)
    obs = ObservationIn(
        ObservationKind.SATELLITE, key, datetime(2025, 10, 20, 5, 30, tzinfo=UTC), FIRE[1], lon, pixel, 0.9
    )
    summary = ingest_observations(session, [obs], indexes=RegionIndexCache(500), settings=settings, actor=SYSTEM)
    assert len(summary.new_incidents) == 1
    return summary.new_incidents[0]


@contextmanager
def demo_service(
    settings: Settings, users: Mapping[str, tuple[Role, str | None]], fires: Sequence[float] = (FIRE[0],)
) -> Iterator[tuple[TestClient, list[int]]]:
    """The service on the demo county with ``users`` (name: role, unit; all with PASSWORD) and a
    :func:`satellite_fire` at each of ``fires`` (longitudes; keys s1, s2, ...): the client and the incidents."""
    app = create_app(without_alert_worker(settings))
    with TestClient(app) as client:
        with transaction(app.state.session_factory) as session:
            load_demo(session)
            for name, (role, unit) in users.items():
                create_user(session, name, PASSWORD, role, unit)
            incidents = [satellite_fire(session, settings, f"s{n}", lon) for n, lon in enumerate(fires, start=1)]
        yield client, incidents


def photo(lat: float | None, lon: float | None, when: str = "2025:10:20 13:45:00", size: int = 64) -> bytes:
    image = Image.new("RGB", (size, size), (200, 90, 30))
    exif = Image.Exif()
    exif[0x0132] = when
    if lat is not None and lon is not None:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[3] = "N", "E"
        for tag, value in ((2, lat), (4, lon)):
            d = int(value)
            m = int((value - d) * 60)
            s = (value - d - m / 60) * 3600
            gps[tag] = (float(d), float(m), round(s, 4))
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, int, Settings]]:
    settings = Settings(data_dir=tmp_path / "var", evidence={"max_upload_mb": 0.05})
    users = {"beigang": (Role.PATROL, "DEMO01"), "donghe": (Role.PATROL, "DEMO02")}
    with demo_service(settings, users) as (client, [incident]):
        yield client, incident, settings


def token(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_upload_check_download_and_cite(setup: tuple[TestClient, int, Settings]) -> None:
    client, incident, settings = setup
    me = token(client, "beigang")
    url = f"/api/v1/incidents/{incident}/evidence"
    near = photo(FIRE[1] + 0.001, FIRE[0])
    response = client.post(url, headers=me, files={"file": ("IMG_0001.jpg", near, "image/jpeg")})
    assert response.status_code == 201, response.text
    body = response.json()
    digest = hashlib.sha256(near).hexdigest()
    assert body["sha256"] == digest
    assert body["flags"] == ""
    assert 100 < body["distance_m"] < 130
    assert body["taken_at"] == "2025-10-20T05:45:00Z"  # phone time is China time, stored as UTC
    assert (settings.data_dir / "evidence" / digest[:2] / digest).read_bytes() == near
    far = client.post(url, headers=me, files={"file": ("far.jpg", photo(44.40, 125.70), "image/jpeg")}).json()
    assert "m from the incident" in far["flags"]
    old = client.post(
        url, headers=me, files={"file": ("old.jpg", photo(FIRE[1], FIRE[0], "2024:01:01 10:00:00"), "image/jpeg")}
    ).json()
    assert "before the fire" in old["flags"]
    nogps = client.post(url, headers=me, files={"file": ("x.png", _png(), "image/png")}).json()
    assert nogps["flags"] == "no GPS position in the photo"
    again = client.post(url, headers=me, files={"file": ("copy.jpg", near, "image/jpeg")})
    assert again.json()["sha256"] == digest  # idempotent
    assert len(client.get(url, headers=me).json()) == 4
    download = client.get(f"{url}/{digest}", headers=me)
    assert download.content == near
    assert download.headers["content-type"] == "image/jpeg"

    move = f"/api/v1/incidents/{incident}/transitions"
    assert client.post(move, headers=me, json={"to": "acknowledged", "evidence_sha256": "0" * 64}).status_code == 422
    assert client.post(move, headers=me, json={"to": "acknowledged", "evidence_sha256": digest}).status_code == 200
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=me).json()
    assert [e["evidence_sha256"] for e in events if e["kind"] == "transition"] == [digest]
    assert sum(e["kind"] == "evidence" for e in events) == 4


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (32, 32), 128).save(out, format="PNG")
    return out.getvalue()


def test_bad_uploads_and_scope(setup: tuple[TestClient, int, Settings]) -> None:
    client, incident, _ = setup
    me = token(client, "beigang")
    url = f"/api/v1/incidents/{incident}/evidence"
    good = photo(FIRE[1], FIRE[0])
    for name, data in (
        ("cut.jpg", good[: len(good) // 2]),
        ("empty.jpg", b""),
        ("notes.txt", b"not an image"),
        ("huge.jpg", photo(FIRE[1], FIRE[0], size=2000) + b"\0" * 60_000),
    ):
        response = client.post(url, headers=me, files={"file": (name, data, "image/jpeg")})
        assert response.status_code == 422, name
        assert name in response.json()["detail"] or "limit" in response.json()["detail"]
    other = token(client, "donghe")
    assert client.post(url, headers=other, files={"file": ("a.jpg", good, "image/jpeg")}).status_code == 404
    assert client.get(url, headers=other).status_code == 404


def test_photo_facts_heif_offsets_and_damaged_pngs() -> None:
    """HEIC photos (iPhones' default) were refused though the README listed HEIF; a photo's own time zone was
    ignored (every time taken as China time); a PNG cut short before an unknown chunk answered 500."""
    import struct
    import zlib
    from datetime import UTC, datetime

    from service.evidence.exif import ImageCheckError, inspect_photo

    heif = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 90, 30)).save(heif, format="HEIF")
    assert inspect_photo(heif.getvalue()).content_type == "image/heif"

    def taken(when: str, offset: str | None) -> datetime | None:
        image = Image.new("RGB", (16, 16))
        exif = Image.Exif()
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = when
        if offset is not None:
            ifd[0x9011] = offset
        out = io.BytesIO()
        image.save(out, format="JPEG", exif=exif)
        return inspect_photo(out.getvalue()).taken_at

    assert taken("2025:10:20 12:00:00", "-04:00") == datetime(2025, 10, 20, 16, 0, tzinfo=UTC)
    assert taken("2025:10:20 12:00:00", None) == datetime(2025, 10, 20, 4, 0, tzinfo=UTC)  # China time by default
    assert taken("2025:10:20 12:00:00", "garbage") == datetime(2025, 10, 20, 4, 0, tzinfo=UTC)

    png = _png()
    chunk = b"abCd"
    extra = struct.pack(">I", 0) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    damaged = png[: png.index(b"IDAT") + 12] + extra  # image data cut short, then an unknown chunk
    with pytest.raises(ImageCheckError, match="not a readable image"):
        inspect_photo(damaged)


def test_a_photo_from_the_future_is_flagged(setup: tuple[TestClient, int, Settings]) -> None:
    """The flag compared with the incident's creation plus a year, not with now (and its 10-minute skew): a photo
    stamped two days ahead passed unflagged."""
    from datetime import UTC, datetime, timedelta

    client, incident, _ = setup
    me = token(client, "beigang")
    url = f"/api/v1/incidents/{incident}/evidence"
    ahead = (datetime.now(UTC) + timedelta(days=2, hours=8)).strftime("%Y:%m:%d %H:%M:%S")  # China local time
    future = photo(FIRE[1], FIRE[0], when=ahead)
    flags = client.post(url, headers=me, files={"file": ("f.jpg", future, "image/jpeg")}).json()["flags"]
    assert "taken in the future" in flags


def test_a_photo_the_disk_cannot_take_is_a_507_and_nothing_is_recorded(setup: tuple[TestClient, int, Settings]) -> None:
    """A full disk or a read-only evidence folder was a 500 with a traceback: now 507 saying the service cannot
    store photos (the request was fine; send it again once fixed), with no photo recorded. Here the photo's folder
    is taken by a file (what root's permissions cannot stand in for)."""
    client, incident, settings = setup
    me = token(client, "beigang")
    url = f"/api/v1/incidents/{incident}/evidence"
    near = photo(FIRE[1] + 0.001, FIRE[0])
    digest = hashlib.sha256(near).hexdigest()
    (settings.data_dir / "evidence").mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "evidence" / digest[:2]).write_bytes(b"not a folder")
    refused = client.post(url, headers=me, files={"file": ("IMG_0002.jpg", near, "image/jpeg")})
    assert refused.status_code == 507, refused.text
    assert "cannot store photos now" in refused.json()["detail"]
    assert str(settings.data_dir) not in refused.json()["detail"]  # the folder goes to the log, not to the phone
    assert client.get(url, headers=me).json() == []
    (settings.data_dir / "evidence" / digest[:2]).unlink()
    assert client.post(url, headers=me, files={"file": ("IMG_0002.jpg", near, "image/jpeg")}).status_code == 201
