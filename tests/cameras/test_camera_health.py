"""Camera preset heartbeats: devices post them per preset, the latest is kept, supervisors see each preset's state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.cameras.tables import PresetHeartbeat
from service.db import utcnow
from tests.cameras.test_registry_service import login
from tests.video.test_registry import BASE

HEALTH = "/api/v1/cameras/health"


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """The cameras' service (tests/cameras/conftest.py) with the two cameras of BASE registered."""
    registered = client.put("/api/v1/cameras", headers=login(client, "admin", "admin-password"), json=BASE)
    assert registered.status_code == 200
    assert registered.json() == {"cameras": 2}
    return client


def beat(camera_id: str, preset: str, ago_s: float, *, frozen: bool = False, frame_ago_s: float | None = 0.0,
         frames: int = 10) -> dict[str, Any]:  # fmt: skip
    now = utcnow()
    return {
        "camera_id": camera_id,
        "preset": preset,
        "at": (now - timedelta(seconds=ago_s)).isoformat(),
        "frames": frames,
        "errors": 1,
        "frozen": frozen,
        "last_frame_at": None if frame_ago_s is None else (now - timedelta(seconds=frame_ago_s)).isoformat(),
    }


def states(client: TestClient) -> dict[str, str]:
    response = client.get(HEALTH, headers=login(client, "sup", "supervisor-password"))
    assert response.status_code == 200, response.text
    return {f"{p['camera_id']}/{p['preset']}": p["state"] for p in response.json()}


def test_the_latest_heartbeat_per_preset_gives_its_state(client: TestClient) -> None:
    device = login(client, "worker", "device-password")
    assert states(client) == {"nongan-07/p1": "never_seen", "nongan-07/p2": "never_seen", "dehui-02/east": "never_seen"}

    posted = client.post(HEALTH, headers=device, json={"heartbeats": [beat("nongan-07", "p1", 30, frame_ago_s=40)]})
    assert posted.json() == {"stored": 1, "stale": 0, "rejected": []}
    # p2: the patrol last spoke 11+ minutes ago (600 s is the floor; 3 × its 60 s cadence is less)
    client.post(HEALTH, headers=device, json={"heartbeats": [beat("nongan-07", "p2", 700, frame_ago_s=710)]})
    assert states(client) == {"nongan-07/p1": "ok", "nongan-07/p2": "silent", "dehui-02/east": "never_seen"}

    later = client.post(
        HEALTH,
        headers=device,
        json={
            "heartbeats": [
                beat("nongan-07", "p1", 5, frozen=True, frames=20, frame_ago_s=6),
                beat("nongan-07", "p1", 20, frame_ago_s=25),
            ]
        },
    )
    assert later.json() == {"stored": 1, "stale": 1, "rejected": []}  # the older one, sent after, does not win
    # p2's patrol is back but its stream gives no picture: still silent
    client.post(HEALTH, headers=device, json={"heartbeats": [beat("nongan-07", "p2", 1, frame_ago_s=None)]})
    assert states(client) == {"nongan-07/p1": "frozen", "nongan-07/p2": "silent", "dehui-02/east": "never_seen"}

    rows = client.get(HEALTH, headers=login(client, "admin", "admin-password")).json()
    p1 = next(r for r in rows if r["preset"] == "p1")
    assert (p1["frames"], p1["frozen"], p1["silent_after_s"], p1["camera_name"]) == (20, True, 600.0, "农安7号塔")
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(PresetHeartbeat)) == 2  # a row per preset, no log


def test_bad_heartbeats_are_reported_one_by_one_and_the_good_ones_kept(client: TestClient) -> None:
    device = login(client, "worker", "device-password")
    naive = beat("nongan-07", "p2", 10) | {"at": utcnow().replace(tzinfo=None).isoformat()}
    batch = [
        beat("nowhere", "p1", 10),
        beat("nongan-07", "p9", 10),
        naive,
        beat("nongan-07", "p2", 10) | {"frames": -1},
        beat("nongan-07", "p2", 10) | {"frames": "5"},
        beat("nongan-07", "p2", 10) | {"colour": "red"},
        beat("nongan-07", "p2", -3600),  # an hour ahead: a wrong clock
        "p2",
        beat("dehui-02", "east", 10, frame_ago_s=12),
    ]
    response = client.post(HEALTH, headers=device, json={"heartbeats": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] == 1
    errors = {r["index"]: r["error"] for r in body["rejected"]}
    assert sorted(errors) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert "unknown camera 'nowhere'" in errors[0]
    assert "no preset 'p9'" in errors[1]
    assert errors[2].startswith("at:")
    assert "timezone" in errors[2]
    assert errors[3].startswith("frames:")
    assert errors[4].startswith("frames:")
    assert errors[5].startswith("colour:")
    assert "future" in errors[6]
    assert body["rejected"][1]["camera_id"] == "nongan-07"
    assert body["rejected"][1]["preset"] == "p9"
    assert states(client)["dehui-02/east"] == "ok"
    assert states(client)["nongan-07/p2"] == "never_seen"
    assert client.post(HEALTH, headers=device, json=[beat("dehui-02", "east", 1, frame_ago_s=2)]).status_code == 422
    assert client.post(HEALTH, headers=device, json={"beats": []}).status_code == 422


def test_devices_post_and_supervisors_read(client: TestClient) -> None:
    body = {"heartbeats": [beat("dehui-02", "east", 10, frame_ago_s=12)]}
    assert client.post(HEALTH, json=body).status_code == 401
    assert client.post(HEALTH, headers=login(client, "eval", "evaluator-password"), json=body).status_code == 403
    assert client.post(HEALTH, headers=login(client, "sup", "supervisor-password"), json=body).status_code == 403
    assert client.get(HEALTH, headers=login(client, "worker", "device-password")).status_code == 403
    assert client.get(HEALTH, headers=login(client, "eval", "evaluator-password")).status_code == 403
    assert client.get(HEALTH).status_code == 401


def test_frames_the_workers_dropped_show_on_the_preset_and_in_the_status(client: TestClient) -> None:
    """A grabber of Celery workers reports, per preset, the frames its workers dropped unlooked-at (``expired``):
    the preset shows them, and the system status names the presets where it happened lately."""
    device, supervisor = login(client, "worker", "device-password"), login(client, "sup", "supervisor-password")
    now = utcnow()

    def dropped(camera_id: str, preset: str, count: int, last_ago_s: float | None, ago_s: float = 5) -> dict[str, Any]:
        last = None if last_ago_s is None else (now - timedelta(seconds=last_ago_s)).isoformat()
        return beat(camera_id, preset, ago_s, frame_ago_s=ago_s) | {"expired": count, "last_expired_at": last}

    batch = [
        dropped("nongan-07", "p1", 4, 120),
        dropped("nongan-07", "p2", 0, None),
        beat("dehui-02", "east", 5, frame_ago_s=6),
    ]
    posted = client.post(HEALTH, headers=device, json={"heartbeats": batch})
    assert posted.json()["stored"] == 3, posted.text
    presets = {p["preset"]: p for p in client.get(HEALTH, headers=supervisor).json()}
    assert (presets["p1"]["expired"], presets["p1"]["expiring"], presets["p1"]["state"]) == (4, True, "ok")
    assert (presets["p2"]["expired"], presets["p2"]["last_expired_at"], presets["p2"]["expiring"]) == (0, None, False)
    assert (presets["east"]["expired"], presets["east"]["expiring"]) == (None, False)  # an in-process patrol

    def expired_problems() -> list[dict[str, Any]]:
        body = client.get("/api/v1/status", headers=supervisor).json()
        assert "cameras.expired_frames" not in {c["name"] for c in body["components"]}  # the presets', not a part
        return [p for p in body["problems"] if p["code"] == "frames_expired"]

    [problem] = expired_problems()
    assert problem["items"] == ["nongan-07/p1"]
    assert problem["message"].startswith(
        "1 camera preset(s) had frames dropped unlooked-at, not taken by a patrol worker within the frame TTL: "
        "nongan-07/p1 (4 in the last hour); the Celery workers are not keeping up"
    )

    # A heartbeat without the counts (the grabber could not read the workers' Redis) leaves the last report.
    assert (
        client.post(HEALTH, headers=device, json={"heartbeats": [beat("nongan-07", "p1", 3, frame_ago_s=3)]}).json()[
            "stored"
        ]
        == 1
    )
    assert [p["items"] for p in expired_problems()] == [["nongan-07/p1"]]
    # The workers caught up: the last frame dropped 20 min ago is past p1's 10-min horizon.
    caught_up = dropped("nongan-07", "p1", 1, 1200, ago_s=1)
    assert client.post(HEALTH, headers=device, json={"heartbeats": [caught_up]}).json()["stored"] == 1
    assert expired_problems() == []
    p1 = next(p for p in client.get(HEALTH, headers=supervisor).json() if p["preset"] == "p1")
    assert (p1["expired"], p1["expiring"]) == (1, False)

    wrong = [
        dropped("nongan-07", "p2", 1, -60, ago_s=0),  # a worker's clock ahead of the grabber's
        beat("nongan-07", "p2", 0) | {"last_expired_at": now.isoformat()},
        beat("nongan-07", "p2", 0) | {"expired": -1},
    ]
    body = client.post(HEALTH, headers=device, json={"heartbeats": wrong}).json()
    errors = [r["error"] for r in body["rejected"]]
    assert errors[0] == "last_expired_at: after the heartbeat's own time"
    assert errors[1] == "last_expired_at: given without expired"
    assert errors[2].startswith("expired:")
