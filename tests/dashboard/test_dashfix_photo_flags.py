"""A photo's warnings as codes with their figures (``flag_notes``), for the dashboard to word in Chinese: the API
gave only English sentences ("taken 10,266,853 m from the incident"), shown as they were in the Chinese UI. The
English ``flags`` stay for older clients; photos stored before the codes existed get them from those sentences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.config import Settings
from service.db import transaction
from service.evidence.service import flag_notes
from service.evidence.tables import Evidence
from service.incidents.states import Role
from tests.incidents.test_evidence import FIRE, _png, demo_service, photo, token


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, int, Settings]]:
    """The demo county's service with 北岗镇's patrol team and one satellite fire in 北岗镇."""
    settings = Settings(data_dir=tmp_path / "var")
    with demo_service(settings, {"beigang": (Role.PATROL, "DEMO01")}) as (client, [incident]):
        yield client, incident, settings


def test_photo_flags_come_with_codes_and_figures(setup: tuple[TestClient, int, Settings]) -> None:
    client, incident, _ = setup
    me = token(client, "beigang")
    url = f"/api/v1/incidents/{incident}/evidence"
    old_and_far = photo(44.40, 125.70, "2024:01:01 10:00:00")
    body = client.post(url, headers=me, files={"file": ("far.jpg", old_and_far, "image/jpeg")}).json()
    far, early = body["flag_notes"]
    assert far["code"] == "far_from_incident"
    assert far["params"] == {"distance_m": round(body["distance_m"])}
    assert far["text"] == f"taken {round(body['distance_m']):,} m from the incident"
    assert early == {
        "code": "before_detection",
        "params": {},
        "text": "taken more than a day before the fire was detected",
    }
    assert body["flags"] == f"{far['text']}; {early['text']}"  # kept for older clients
    nogps = client.post(url, headers=me, files={"file": ("x.png", _png(), "image/png")}).json()
    assert nogps["flag_notes"] == [{"code": "no_gps", "params": {}, "text": "no GPS position in the photo"}]
    near = client.post(url, headers=me, files={"file": ("n.jpg", photo(FIRE[1], FIRE[0]), "image/jpeg")}).json()
    assert near["flag_notes"] == []
    assert near["flags"] == ""

    # The upload's event carries the same codes, for the record's entry.
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=me).json()
    uploads = [e["data"] for e in events if e["kind"] == "evidence"]
    assert [n["code"] for n in uploads[0]["flag_notes"]] == ["far_from_incident", "before_detection"]
    assert uploads[1]["flag_notes"][0]["code"] == "no_gps"
    listed = client.get(url, headers=me).json()
    assert [p["flag_notes"] for p in listed] == [body["flag_notes"], nogps["flag_notes"], []]


def test_photos_stored_before_the_codes_get_them_from_their_sentences(setup: tuple[TestClient, int, Settings]) -> None:
    client, incident, _ = setup
    me = token(client, "beigang")
    url = f"/api/v1/incidents/{incident}/evidence"
    sha = client.post(url, headers=me, files={"file": ("x.png", _png(), "image/png")}).json()["sha256"]
    stored = "taken 10,266,853 m from the incident; taken in the future; a check of a later version"
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(update(Evidence).where(Evidence.sha256 == sha).values(flags=stored, distance_m=None))
    (listed,) = client.get(url, headers=me).json()
    assert listed["flags"] == stored
    assert listed["flag_notes"] == [
        {
            "code": "far_from_incident",
            "params": {"distance_m": 10266853},
            "text": "taken 10,266,853 m from the incident",
        },
        {"code": "in_future", "params": {}, "text": "taken in the future"},
        {"code": "other", "params": {}, "text": "a check of a later version"},
    ]
    assert flag_notes("", None) == []
