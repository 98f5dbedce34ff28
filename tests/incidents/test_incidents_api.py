"""End to end on the embedded default: real FIRMS upload → incidents per county → a patrol walks one to closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from service.regions.crs import parse_crs
from service.regions.loader import read_units
from service.regions.service import import_units
from service.regions.types import RegionLevel
from tests.conftest import shared_path, without_alert_worker

PASSWORD = "correct horse battery"
MODIS_HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n"
)
USERS = {
    "admin": (Role.ADMIN, None),
    "cam01": (Role.DEVICE, None),
    "eval": (Role.EVALUATOR, None),
    "shuangyang": (Role.PATROL, "220112"),  # 双阳区
    "nanguan": (Role.PATROL, "220102"),  # 南关区
    "sup_shuangyang": (Role.SUPERVISOR, "220112"),
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    boundary = shared_path("boundaries", "220100_full.json")
    app = create_app(without_alert_worker(Settings(data_dir=tmp_path / "var")))
    with TestClient(app) as test_client:
        units, report = read_units(boundary, level=RegionLevel.COUNTY, crs=parse_crs("gcj02"))
        with transaction(app.state.session_factory) as session:
            import_units(session, units, level=RegionLevel.COUNTY, crs=parse_crs("gcj02"), report=report)
            for name, (role, unit) in USERS.items():
                create_user(session, name, PASSWORD, role, unit)
        yield test_client


def login(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def upload(client: TestClient, headers: dict[str, str], path: Path) -> dict:
    with path.open("rb") as handle:
        response = client.post(
            "/api/v1/observations/satellite", headers=headers, files={"file": (path.name, handle, "text/csv")}
        )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.shared_data
def test_real_firms_upload_to_closed_with_scopes(client: TestClient) -> None:
    firms = shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")
    device = login(client, "cam01")
    first = upload(client, device, firms)
    # Ten pixels reach Changchun: nine centred in it, and one 1.15 km Aqua pixel centred 558 m outside whose
    # footprint overlaps 九台区 (coverage is tested on the footprint, as the assignment is). The other 474 (Inner
    # Mongolia, Russia, Korea…) are held as outside coverage and open no incident; the 11 of them within ~5 km of
    # Changchun's bounds are stored with that decision (for the fixed-heat-source rule), the rest only counted.
    assert (first["rows"], first["new"], first["duplicates"], first["rejected"]) == (484, 10, 0, [])
    assert first["held"] == {"outside_coverage": 474}
    # The ten pixels are eight fire points (adjacent pixels of one pass cluster), each one incident.
    assert (first["fire_points"], first["repeats"], len(first["new_incidents"])) == (8, 0, 8)
    again = upload(client, device, firms)
    # The 21 stored pixels are duplicates; the 463 far outside, never stored, are counted as outside coverage again.
    assert (again["new"], again["duplicates"], again["new_incidents"]) == (0, 21, [])
    assert again["held"] == {"outside_coverage": 463}

    admin = login(client, "admin")
    everything = client.get("/api/v1/incidents", params={"limit": 1000}, headers=admin).json()
    in_changchun = [i for i in everything if i["county_code"]]
    # Nine real hotspots fell in Changchun that day; neighbouring pixels of one fire fuse into one incident.
    counties = sorted({i["county_code"] for i in in_changchun})
    assert counties == ["220102", "220112", "220113"]
    assert len(in_changchun) < 9
    shuangyang_ids = {i["id"] for i in in_changchun if i["county_code"] == "220112"}

    patrol = login(client, "shuangyang")
    mine = client.get("/api/v1/incidents", headers=patrol).json()
    assert {i["id"] for i in mine} == shuangyang_ids
    incident = mine[0]["id"]
    detail = client.get(f"/api/v1/incidents/{incident}", headers=patrol).json()
    assert detail["observations"][0]["kind"] == "satellite"
    assert detail["observations"][0]["region"]["type"] == "Polygon"
    assert "acknowledged" in detail["allowed_transitions"]

    def move(headers: dict[str, str], to: str, **extra: object) -> int:
        return client.post(
            f"/api/v1/incidents/{incident}/transitions", headers=headers, json={"to": to, "note": f"to {to}", **extra}
        ).status_code

    assert move(patrol, "closed") == 409
    # A phone that still shows "on site" while another has moved the fire on is refused, not acting blindly.
    assert move(patrol, "acknowledged", expected_state="suspected") == 200
    stale = client.post(
        f"/api/v1/incidents/{incident}/transitions",
        headers=patrol,
        json={"to": "on_site", "expected_state": "suspected"},  # legal from "acknowledged", but not what it saw
    )
    assert stale.status_code == 409
    assert "acknowledged now, not suspected" in stale.json()["detail"]
    for step in ("en_route", "on_site", "extinguished"):
        assert move(patrol, step) == 200, step
    assert move(patrol, "feedback") == 422  # feedback needs a cause
    assert (
        move(patrol, "feedback", feedback={"cause": "straw", "burned_area_m2": 300, "responsible_party": "村民 张某"})
        == 200
    )
    assert move(patrol, "verified") == 409  # verification is the supervisor's
    supervisor = login(client, "sup_shuangyang")
    assert move(supervisor, "verified") == 200
    assert move(supervisor, "closed") == 200
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=patrol).json()
    assert [e["to_state"] for e in events if e["kind"] == "transition"] == [
        "acknowledged",
        "en_route",
        "on_site",
        "extinguished",
        "feedback",
        "verified",
        "closed",
    ]
    assert all(e["actor"] in ("shuangyang", "sup_shuangyang") for e in events if e["kind"] == "transition")
    final = client.get(f"/api/v1/incidents/{incident}", headers=patrol).json()
    assert final["state"] == "closed"
    assert final["closed_at"] is not None
    assert final["feedback"]["cause"] == "straw"
    # The queue's "open" filter is the server's: the closed fire leaves it, the others stay, however many there are.
    still_open = client.get("/api/v1/incidents", params={"open": "true", "limit": 1}, headers=patrol).json()
    assert [i["id"] for i in still_open] == [i["id"] for i in mine if i["id"] != incident][:1]
    assert {i["id"] for i in client.get("/api/v1/incidents", params={"open": "true"}, headers=patrol).json()} == (
        shuangyang_ids - {incident}
    )

    # Another unit's patrol can neither read nor change it, on every endpoint.
    other = login(client, "nanguan")
    assert incident not in {i["id"] for i in client.get("/api/v1/incidents", headers=other).json()}
    assert client.get(f"/api/v1/incidents/{incident}", headers=other).status_code == 404
    assert client.get(f"/api/v1/incidents/{incident}/events", headers=other).status_code == 404
    assert client.post(
        f"/api/v1/incidents/{incident}/transitions", headers=other, json={"to": "reopened"}
    ).status_code in (403, 404)
    assert client.get("/api/v1/incidents", params={"county": "220112"}, headers=other).json() == []
    # Evaluators read everything and change nothing; devices only post observations.
    evaluator = login(client, "eval")
    assert client.get(f"/api/v1/incidents/{incident}", headers=evaluator).status_code == 200
    assert (
        client.post(f"/api/v1/incidents/{incident}/transitions", headers=evaluator, json={"to": "reopened"}).status_code
        == 403
    )
    assert client.get("/api/v1/incidents", headers=device).status_code == 403
    with firms.open("rb") as handle:
        assert (
            client.post("/api/v1/observations/satellite", headers=patrol, files={"file": ("x.csv", handle)}).status_code
            == 403
        )


def test_auth_errors(client: TestClient) -> None:
    assert client.post("/api/v1/auth/token", data={"username": "admin", "password": "wrong"}).status_code == 401
    assert client.post("/api/v1/auth/token", data={"username": "ghost", "password": PASSWORD}).status_code == 401
    assert client.get("/api/v1/incidents").status_code == 401
    assert client.get("/api/v1/incidents", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_bad_uploads_are_reported_and_nothing_half_lands(client: TestClient, tmp_path: Path) -> None:
    admin = login(client, "admin")
    header = MODIS_HEADER
    good = "43.63326,125.84355,320.1,1.0,1.0,2025-04-23,245,T,80,6.1NRT,290.0,12.5,D\n"
    bad = "43.6,not-a-number,320.1,1.0,1.0,2025-04-23,245,T,80,6.1NRT,290.0,12.5,D\n"
    path = tmp_path / "mixed.csv"
    path.write_text(header + good + bad, encoding="utf-8")
    result = upload(client, admin, path)
    assert result["new"] == 1
    assert result["rejected"][0]["line"] == 3
    assert result["rejected"][0]["field"] == "longitude"
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with empty.open("rb") as handle:
        response = client.post("/api/v1/observations/satellite", headers=admin, files={"file": ("empty.csv", handle)})
    assert response.status_code == 422
    assert "empty.csv" in response.json()["detail"]


def test_events_are_append_only_in_the_database(client: TestClient, tmp_path: Path) -> None:
    admin = login(client, "admin")
    header = MODIS_HEADER
    path = tmp_path / "one.csv"
    path.write_text(header + "43.63326,125.84355,320.1,1.0,1.0,2025-04-23,245,T,80,6.1NRT,290.0,12.5,D\n")
    upload(client, admin, path)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    for statement in ("UPDATE incident_events SET note = 'edited'", "DELETE FROM incident_events"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))


def test_an_upload_being_ingested_holds_up_no_other_request(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Screening a large FIRMS file takes seconds (the global daily file froze every request for 6 s, a 50,000-row
    one for 21 s): the ingest runs in a worker thread, so a health check answers while it is under way."""
    import threading

    from service import flows

    started, released = threading.Event(), threading.Event()
    waited_out: list[bool] = []
    ingest_hotspots = flows.ingest_hotspots

    def slow_ingest(*args: object, **kwargs: object) -> object:
        started.set()
        waited_out.append(not released.wait(10))  # still blocked after 10 s: nothing else got through meanwhile
        return ingest_hotspots(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flows, "ingest_hotspots", slow_ingest)
    path = tmp_path / "one.csv"
    path.write_text(MODIS_HEADER + "43.63326,125.84355,320.1,1.0,1.0,2025-04-23,245,T,80,6.1NRT,290.0,12.5,D\n")
    admin = login(client, "admin")
    answers: list[dict] = []
    uploading = threading.Thread(target=lambda: answers.append(upload(client, admin, path)))
    uploading.start()
    assert started.wait(10)
    assert client.get("/healthz").status_code == 200
    released.set()
    uploading.join(20)
    assert waited_out == [False]
    assert answers[0]["new"] == 1
