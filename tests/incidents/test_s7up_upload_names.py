"""Odd file names and parts in the uploads a township team's phone app or a drone team sends: the flight (or the
photo) is taken and each image answered under a name it can show, never lost whole for one odd part."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import service.drone_uploads as drone_uploads
from service.auth.service import create_user
from service.body_limit import MAX_NAME_CHARS
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from tests.conftest import shared_path
from tests.dashboard.live import bound_socket, serving
from tests.incidents.test_evidence import FIRE, demo_service, photo, token
from tests.service.test_s7up_multipart_names import BOUNDARY, Part, body
from tests.video.test_patrol import CentreFireDetector

MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY.decode()}"}
DRONE_ID = ([b'Content-Disposition: form-data; name="drone_id"'], b"h20t-01")


def image(disposition: bytes, content: bytes, content_type: bytes = b"image/jpeg") -> Part:
    """A part of field ``images`` with ``disposition`` after its name (``; filename="…"``)."""
    return ([b'Content-Disposition: form-data; name="images"' + disposition, b"Content-Type: " + content_type], content)


def named(name: str | bytes) -> bytes:
    return b'; filename="' + (name.encode() if isinstance(name, str) else name) + b'"'


@pytest.fixture
def drone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The service with a device account (its headers); a stand-in detector finds a fire in every frame."""
    monkeypatch.setattr(drone_uploads, "_detectors", {False: CentreFireDetector()})
    app = create_app(Settings(data_dir=tmp_path / "var"))
    with TestClient(app) as client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "uav", "device-password", Role.DEVICE, None)
        reply = client.post("/api/v1/auth/token", data={"username": "uav", "password": "device-password"})
        yield client, {"Authorization": f"Bearer {reply.json()['access_token']}"} | MULTIPART


def test_a_flight_with_a_5000_character_file_name_is_taken_whole(drone: tuple[TestClient, dict[str, str]]) -> None:
    """The name went over the multipart parser's 4 KB header line: the whole flight was answered 400 "Invalid
    multipart data."; a name of 256 to 4,000 characters failed it with a 500. Each is taken, under its start and
    extension."""
    client, headers = drone
    frame = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    other = shared_path("drone", "M30T_DJI_0001_R.JPG").read_bytes()
    for length in (5000, 1000):
        long_name = "航" * length + ".JPG"
        content = body(DRONE_ID, image(named(long_name), frame), image(named("M30T_DJI_0001_R.JPG"), other))
        response = client.post("/api/v1/drone/images", headers=headers, content=content)
        assert response.status_code == 200, response.text
        long, kept = response.json()
        assert long["image"] == "航" * (MAX_NAME_CHARS - 5) + "….JPG"
        assert (long["sightings"], long["error"]) == (1, None)
        assert kept["image"] == "M30T_DJI_0001_R.JPG"


def test_odd_names_empty_files_and_nameless_parts_each_get_their_own_answer(
    drone: tuple[TestClient, dict[str, str]],
) -> None:
    """A name with a NUL, an escape or Windows folders is answered by its last part, control characters as
    ``_``; an empty name, or none (httpx leaves it out when empty: the image was a form field, and the flight a
    400 "Part exceeded maximum size of 1024KB."), as image.jpg; an empty file says it is empty."""
    client, headers = drone
    frame = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    content = body(
        DRONE_ID,
        image(named(b"fire\x00\x1b.jpg"), frame),
        image(named(b"C:\\\\DJI\\\\100MEDIA\\\\DJI_0001.JPG"), frame),
        image(named(b"flight/2/DJI_0002.JPG"), frame),
        image(named(b""), frame),
        image(b"", frame),
        image(b"; filename*=UTF-8''%E8%88%AA%E6%8B%8D.jpg", frame, b"application/octet-stream"),
        image(named("empty.jpg"), b""),
    )
    response = client.post("/api/v1/drone/images", headers=headers, content=content)
    assert response.status_code == 200, response.text
    answers = [(a["image"], a["error"]) for a in response.json()]
    assert answers == [
        ("fire__.jpg", None),
        ("DJI_0001.JPG", None),
        ("DJI_0002.JPG", None),
        ("image.jpg", None),
        ("image.jpg", None),
        ("image.jpg", None),
        ("empty.jpg", "empty.jpg: not a readable image: an empty file (0 bytes)"),
    ]


def test_a_thousand_tiny_parts_are_refused_saying_why(drone: tuple[TestClient, dict[str, str]]) -> None:
    """Over the route's 50 images, or over starlette's 1,000 files or fields: refused saying so, not a 500."""
    client, headers = drone
    url = "/api/v1/drone/images"
    files = [image(named(f"{n}.jpg"), b"x") for n in range(1000)]
    response = client.post(url, headers=headers, content=body(DRONE_ID, *files))
    assert response.status_code == 422
    assert response.json()["detail"] == "field 'images': 1000 images in one request; send at most 50"
    response = client.post(url, headers=headers, content=body(DRONE_ID, *files, image(named("x.jpg"), b"x")))
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Too many files. Maximum number of files is 1000."},
    )
    fields = [([f'Content-Disposition: form-data; name="note{n}"'.encode()], b"x") for n in range(1001)]
    response = client.post(url, headers=headers, content=body(DRONE_ID, *fields))
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Too many fields. Maximum number of fields is 1000."},
    )


def test_a_part_sent_as_a_field_is_refused_without_echoing_its_bytes(
    drone: tuple[TestClient, dict[str, str]],
) -> None:
    """A part without a name nor a file type is a form field: refused as such (422), its content cut in the
    answer (it came back whole, up to 1 MB)."""
    client, headers = drone
    field = ([b'Content-Disposition: form-data; name="images"'], b"\xff\xd8" + b"j" * 5000)
    response = client.post("/api/v1/drone/images", headers=headers, content=body(DRONE_ID, field))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "images", 0]
    assert error["input"].endswith("… (5,002 characters)")
    assert len(error["input"]) < 300


def test_a_patrol_photo_with_a_5000_character_name_or_none_is_attached(tmp_path: Path) -> None:
    """The patrol's photo upload (the evidence route) read the same parser: a 400 for the name, a 422 for a photo
    without one. Listed under the cleaned name (at most 120 characters), downloaded by its sha256 as before."""
    settings = Settings(data_dir=tmp_path / "var")
    with demo_service(settings, {"beigang": (Role.PATROL, "DEMO01")}) as (client, [incident]):
        url = f"/api/v1/incidents/{incident}/evidence"
        headers = token(client, "beigang") | MULTIPART
        disposition = b'Content-Disposition: form-data; name="file"'
        cases = [
            (named("现场" * 2500 + ".jpg"), photo(FIRE[1], FIRE[0], size=64), 201),
            (b"", photo(FIRE[1], FIRE[0], size=65), 201),
            (named("empty.jpg"), b"", 422),
        ]
        answers = []
        for extra, data, status in cases:
            part = ([disposition + extra, b"Content-Type: image/jpeg"], data)
            response = client.post(url, headers=headers, content=body(part))
            assert response.status_code == status, response.text
            answers.append(response.json())
        assert answers[0]["filename"] == "现场" * 58 + ".jpg"
        assert answers[1]["filename"] == "photo.jpg"
        assert answers[2] == {"detail": "empty.jpg: not a readable image: an empty file (0 bytes)"}


def test_a_long_name_sent_in_small_pieces_to_a_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through uvicorn, as ``strawfire serve`` runs it: the body arrives in the pieces the phone sends, a header
    split between them."""
    monkeypatch.setattr(drone_uploads, "_detectors", {False: CentreFireDetector()})
    app = create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}))
    frame = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    content = body(DRONE_ID, image(named("a" * 5000 + ".jpg"), frame), image(named("ok.jpg"), frame))

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(content), 1500):
            yield content[start : start + 1500]
            if start < 12000:
                time.sleep(0.002)  # the headers arrive over several reads

    with serving(app, bound_socket()) as url:
        with transaction(app.state.session_factory) as session:
            create_user(session, "uav", "device-password", Role.DEVICE, None)
        reply = httpx.post(f"{url}/api/v1/auth/token", data={"username": "uav", "password": "device-password"})
        headers = {"Authorization": f"Bearer {reply.json()['access_token']}", "Content-Length": str(len(content))}
        response = httpx.post(f"{url}/api/v1/drone/images", headers=headers | MULTIPART, content=pieces(), timeout=60)
    assert response.status_code == 200, response.text
    assert [(a["image"], a["error"]) for a in response.json()] == [("a" * 250 + "….jpg", None), ("ok.jpg", None)]
