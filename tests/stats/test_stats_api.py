"""The statistics API on the recorded scenario: scopes per role, hand-computed values, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from service.stats.router import router as stats_router
from tests.stats import scenario
from tests.stats.scenario import CITY, COUNTY_A, COUNTY_B, EAST, SOUTH, WEST

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
USERS = {
    "admin": (Role.ADMIN, None),
    "eval": (Role.EVALUATOR, None),
    "east": (Role.PATROL, EAST),
    "sup_a": (Role.SUPERVISOR, COUNTY_A),
    "cam": (Role.DEVICE, None),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # the default rules folder is ./rules
        app = create_app(Settings(data_dir=tmp_path_factory.mktemp("api") / "var", **scenario.SETTINGS_OVERRIDES))
        app.include_router(stats_router)
        with TestClient(app) as test_client:
            factory = app.state.session_factory
            scenario.build(factory)
            with transaction(factory) as session:
                for name, (role, unit) in USERS.items():
                    create_user(session, name, PASSWORD, role, unit)
            yield test_client


_TOKENS: dict[tuple[int, str], str] = {}


def login(client: TestClient, name: str) -> dict[str, str]:
    """A bearer header for the user (one real login each: password hashing is slow on purpose)."""
    key = (id(client), name)
    if key not in _TOKENS:
        response = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        _TOKENS[key] = response.json()["access_token"]
    return {"Authorization": f"Bearer {_TOKENS[key]}"}


def get(client: TestClient, user: str, path: str, **params: str) -> dict[str, Any]:
    response = client.get(path, params={"period": "2025-11", **params}, headers=login(client, user))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def status(client: TestClient, user: str, path: str, **params: str) -> int:
    return client.get(path, params={"period": "2025-11", **params}, headers=login(client, user)).status_code


def test_a_patrol_sees_only_its_own_score(client: TestClient) -> None:
    board = get(client, "east", "/api/v1/scores")
    assert [u["code"] for u in board["units"]] == [EAST]
    east = board["units"][0]
    # 东镇 scored 0 (floored), ranked among 甲县's two townships: 西镇 (99.5) is first.
    assert (east["score"], east["rank"], east["deductions"], east["credits"]) == (0.0, 2, 109.5, 2.0)
    assert board["rules"]["version"] == "example-v2"
    assert board["level"] == "township"
    for other in (WEST, COUNTY_A, CITY, SOUTH):
        assert status(client, "east", "/api/v1/scores", area=other) == 403
    assert status(client, "east", "/api/v1/scores", area=EAST) == 200
    times = get(client, "east", "/api/v1/stats/response-times")
    assert [g["key"] for g in times["groups"]] == [EAST]
    assert times["total"]["incidents"] == 3
    assert status(client, "east", "/api/v1/stats/outcomes", area=WEST) == 403


def test_a_supervisor_sees_its_county(client: TestClient) -> None:
    board = get(client, "sup_a", "/api/v1/scores")
    assert [(u["code"], u["rank"], u["score"]) for u in board["units"]] == [(WEST, 1, 99.5), (EAST, 2, 0.0)]
    assert status(client, "sup_a", "/api/v1/scores", area=COUNTY_B) == 403
    assert status(client, "sup_a", "/api/v1/scores", area=CITY) == 403
    by_county = get(client, "sup_a", "/api/v1/stats/response-times", group_by="county")
    assert [g["key"] for g in by_county["groups"]] == [COUNTY_A]
    only_west = get(client, "sup_a", "/api/v1/stats/outcomes", area=WEST, group_by="township")
    assert only_west["total"] | {"false_alarm_reasons": None} == {
        "key": None,
        "name": None,
        "fire_points": 3,
        "violations": 0,
        "false_alarms": 1,
        "permitted_burns": 1,
        "open": 1,
        "duplicates": 0,
        "false_alarm_reasons": None,
        "repeat_at_site": 0,
        "edge": 0,
    }


def test_an_evaluator_reads_every_area(client: TestClient) -> None:
    board = get(client, "eval", "/api/v1/scores", area=CITY)
    assert [(u["code"], u["rank"]) for u in board["units"]] == [(WEST, 1), (SOUTH, 2), (EAST, 3)]
    south = board["units"][1]
    assert south["density_basis"] == "area"
    assert (south["unreported"], south["concealed"], south["late_acknowledge"]) == (1, 1, 1)
    assert {i["rule"] for i in south["items"]} == {
        "fire_point:satellite",
        "unreported",
        "concealed",
        "late_acknowledge",
        "density",
    }
    times = get(client, "eval", "/api/v1/stats/response-times", area=CITY, group_by="township")
    east = next(g for g in times["groups"] if g["key"] == EAST)
    assert east["intervals"]["acknowledge"] == {"n": 3, "p50_min": 10.0, "p90_min": 20.0, "max_min": 20.0}
    assert east["acknowledge"]["rate"] == pytest.approx(2 / 3)
    south_times = next(g for g in times["groups"] if g["key"] == SOUTH)
    assert south_times["acknowledge"] == {"met": 0, "missed": 1, "pending": 0, "rate": 0.0}  # 乙县: 5 minutes
    assert times["period"]["start"] == "2025-10-31T16:00:00Z"
    outcomes = get(client, "eval", "/api/v1/stats/outcomes")  # by source, everywhere
    assert [g["key"] for g in outcomes["groups"]] == ["satellite", "camera", "drone"]
    assert outcomes["total"]["violations"] == 4
    august = get(client, "eval", "/api/v1/scores", period="2025-08")
    assert august["rules"]["version"] == "example-v1"
    assert all(u["score"] == 100.0 for u in august["units"])


def test_errors(client: TestClient) -> None:
    assert client.get("/api/v1/scores", params={"period": "2025-11"}).status_code == 401
    assert status(client, "cam", "/api/v1/scores") == 403
    response = client.get("/api/v1/scores", params={"period": "November"}, headers=login(client, "eval"))
    assert response.status_code == 422
    assert "field 'period'" in response.json()["detail"]
    assert status(client, "eval", "/api/v1/scores", area="999999") == 404
    for period in ("0000", "0001", "9999"):  # were 500s: years Python's dates cannot hold in UTC
        assert status(client, "eval", "/api/v1/stats/outcomes", period=period) == 422
    assert status(client, "eval", "/api/v1/stats/response-times", group_by="village") == 422
    assert client.post("/api/v1/scores", headers=login(client, "eval")).status_code == 405


def test_reports_download_for_those_who_file_them(client: TestClient) -> None:
    """An evaluator without a shell gets the report `strawfire report` writes; a supervisor its own county's only;
    patrol users and devices none."""
    import io

    from openpyxl import load_workbook

    pdf = client.get("/api/v1/reports/pdf", params={"period": "2025-11", "area": CITY}, headers=login(client, "eval"))
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="strawfire-2025-11-{CITY}.pdf"'
    assert pdf.content.startswith(b"%PDF")
    own = client.get("/api/v1/reports/xlsx", params={"period": "2025-11"}, headers=login(client, "sup_a"))
    assert own.status_code == 200, own.text
    assert own.headers["content-disposition"].endswith(f'-{COUNTY_A}.xlsx"')  # the supervisor's own county
    assert "Rules" in load_workbook(io.BytesIO(own.content)).sheetnames
    csv = client.get("/api/v1/reports/csv", params={"period": "2025-11"}, headers=login(client, "admin"))
    assert csv.status_code == 200, csv.text
    assert csv.content.startswith("\ufeff序号".encode())
    other = client.get(
        "/api/v1/reports/pdf", params={"period": "2025-11", "area": COUNTY_B}, headers=login(client, "sup_a")
    )
    assert other.status_code == 403
    for name in ("east", "cam"):
        assert (
            client.get("/api/v1/reports/csv", params={"period": "2025-11"}, headers=login(client, name)).status_code
            == 403
        )
    assert (
        client.get("/api/v1/reports/doc", params={"period": "2025-11"}, headers=login(client, "eval")).status_code
        == 422
    )
    bad = client.get("/api/v1/reports/csv", params={"period": "2025-13"}, headers=login(client, "eval"))
    assert bad.status_code == 422
