"""The dashboard's system status without a browser: it asks only the roles the API answers, and it has words in
both languages for every problem code, component state and camera state the API can send."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from service.alerts.coverage import Uncovered, UncoveredUnit
from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from service.status import service as status
from tests.dashboard.test_assets import PASSWORD, code_of, dictionaries, js, js_list

NOW = datetime(2026, 4, 20, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("status") / "var", alerts={"run_worker": False}))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            for role in Role:
                if role is not Role.SYSTEM:
                    create_user(session, role.value, PASSWORD, role, "DEMO01")
        yield test_client


def every_problem() -> list[status.Problem]:
    """A situation in which every kind of problem occurs at once."""

    def part(name: str, state: status.ComponentState, **kwargs: object) -> status.ComponentStatus:
        return status.ComponentStatus(name, state, True, 900.0, **kwargs)  # type: ignore[arg-type]

    parts = [
        part("alerts.worker", "never_run"),
        part("firms:MODIS_NRT", "failing", consecutive_failures=2, last_error="HTTP 500"),
        part("firms:VIIRS_SNPP_NRT", "late", last_success_at=NOW - timedelta(hours=5)),
    ]
    alerts = status.AlertsStatus(3, 2, NOW - timedelta(minutes=30), 1, 0, None)
    cameras: list[dict[str, Any]] = [
        {"camera_id": "c1", "preset": "a", "state": "frozen"},
        {"camera_id": "c1", "preset": "b", "state": "silent"},
        {"camera_id": "c2", "preset": "a", "state": "ok", "expiring": True, "expired": 4},
        {"camera_id": "c3", "preset": "a", "state": "lens_mismatch", "lens_mismatch": {"registered": [1280, 854],
         "received": [1280, 720]}},
    ]  # fmt: skip
    unit = UncoveredUnit("DEMO02", "东河乡", 1)
    problems = status.problems_of(alerts, parts, cameras, Uncovered(townships=[unit], counties=[unit]), [12, 15])
    links = status.alert_links_problem(Settings(), 2)  # the default loopback address, with real recipients
    assert links is not None
    return [*problems, links]


def test_the_dashboard_asks_for_the_status_only_with_roles_the_api_answers(client: TestClient) -> None:
    roles = js_list(js("status.js"), "STATUS_ROLES")
    answered = []
    for role in Role:
        if role is Role.SYSTEM:
            continue
        login = client.post("/api/v1/auth/token", data={"username": role.value, "password": PASSWORD})
        token = login.json()["access_token"]
        response = client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 403), response.text
        if response.status_code == 200:
            answered.append(role.value)
    assert sorted(roles) == sorted(answered) == ["admin", "supervisor"]
    # The route is kept from other roles too (they are sent to their first page instead of a 403).
    assert re.search(r'\[/\^\\/status\$/, statusPage, "status", STATUS_ROLES\]', js("app.js"))


def test_every_problem_code_and_state_has_words_in_both_languages() -> None:
    codes = {p.code for p in every_problem()}
    assert codes == {
        "alerts_overdue", "component_never_run", "component_failing", "component_late", "alerts_failed",
        "cameras_frozen", "cameras_silent", "cameras_lens_mismatch", "frames_expired", "units_without_recipients",
        "counties_without_supervisors", "fires_left_untold", "alert_links_unreachable",
    }  # fmt: skip
    page = code_of(js("page-status.js"))
    zh, en = dictionaries()["zh"], dictionaries()["en"]
    for code in codes:
        key = f"status.problem.{code}"
        assert key in zh, key
        assert key in en, key
        assert f'case "{code}":' in page, code  # translated, not shown as the server's English
    for state in get_args(status.ComponentState):
        assert f"status.state.{state}" in zh, state
        assert f'{state}: "status.state.{state}"' in page, state
    camera_states = js_list(page, "CAMERA_STATES")
    assert camera_states == ["ok", "frozen", "silent", "lens_mismatch", "never_seen"]
    for state in camera_states:
        assert f"cameras.health.{state}" in zh


PROBLEM_TEXT = """
const i18n = await import(`${STATIC_URL}/i18n.js`);
const page = await import(`${STATIC_URL}/page-status.js`);
const out = {};
for (const code of ["zh-CN", "en"]) {
  i18n.setLang(code);
  out[code] = INPUT.problems.map((problem) => page.problemText(problem, INPUT));
}
console.log(JSON.stringify(out));
"""


def test_every_problem_is_worded_with_what_it_names(in_node: Callable[[str, object], Any]) -> None:
    """The page's own problemText, run on every problem the service makes: each in the reader's language, not the
    server's English, and naming the presets, units or fires the server named."""
    problems = [asdict(problem) for problem in every_problem()]
    reading = {"problems": problems, "components": [], "alerts": {"overdue_since": None}}
    rendered: dict[str, list[str]] = in_node(PROBLEM_TEXT, reading)
    for language in ("zh-CN", "en"):
        for problem, text in zip(problems, rendered[language], strict=True):
            assert text != problem["message"], (language, text)  # not the server's English
            assert "{" not in text, (language, text)  # every placeholder filled
            assert all(item in text for item in problem["items"]), (language, text)
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in rendered["zh-CN"])


def test_the_page_reads_the_fields_the_api_sends(client: TestClient) -> None:
    token = client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}).json()["access_token"]
    body = client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"}).json()
    assert {f.name for f in fields(status.SystemStatus)} == set(body)
    assert set(body["cameras"]) == set(js_list(js("page-status.js"), "CAMERA_STATES"))
    page = code_of(js("page-status.js"))
    # Every field of each part is read by the page under the name the API gives it.
    for cls, variable in (
        (status.AlertsStatus, "alerts"),
        (status.ComponentStatus, "part"),
        (status.ObservationFeed, "feed"),
        (status.Problem, "p(?:roblem)?"),
    ):
        for field in fields(cls):
            assert re.search(rf"(?<![\w.]){variable}\.{field.name}\b", page), (cls.__name__, field.name)
