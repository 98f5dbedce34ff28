"""The dashboard's files and routes without a browser: headers, caching, scoping, the string dictionaries, and
rules the JavaScript must keep (no HTML from strings, nothing loaded from outside, the same states as the server).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args, get_type_hints

import pytest
from fastapi.testclient import TestClient

from service.auth.service import create_user
from service.config import Settings
from service.dashboard.router import CSP
from service.dashboard.router import router as dashboard_router
from service.db import transaction
from service.incidents.fusion import ObservationKind
from service.incidents.states import OPEN_STATES, TRANSITIONS, FalseAlarmReason, IncidentState, Role
from service.main import create_app
from service.regions.types import AssignStatus
from service.stats.response import GroupBy, Interval
from video.mask_suggestions import MaskSuggestion

STATIC = Path(__file__).resolve().parents[2] / "service" / "dashboard" / "static"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("assets") / "var", alerts={"run_worker": False}))
    if not any(getattr(r, "path", None) == "/app/" for r in app.routes):
        app.include_router(dashboard_router)
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "eval", PASSWORD, Role.EVALUATOR, None)
        yield test_client


def js(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def all_js() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(STATIC.glob("*.js"))}


def test_the_page_is_served_with_a_strict_content_security_policy(client: TestClient) -> None:
    response = client.get("/app/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP
    assert "unsafe-inline" not in CSP
    assert "unsafe-eval" not in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert '<script type="module" src="static/app.js"></script>' in response.text
    assert client.head("/app/").status_code == 200
    redirect = client.get("/app", follow_redirects=False)
    assert (redirect.status_code, redirect.headers["location"]) == (308, "/app/")


@pytest.mark.parametrize("path", sorted(p.name for p in STATIC.iterdir()))
def test_every_asset_is_served_with_its_type_and_revalidates(client: TestClient, path: str) -> None:
    response = client.get(f"/app/static/{path}")
    assert response.status_code == 200
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
    assert response.headers["content-type"].startswith(expected[Path(path).suffix])
    assert response.headers["cache-control"] == "no-cache"
    again = client.get(f"/app/static/{path}", headers={"If-None-Match": response.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


@pytest.mark.parametrize(
    "name", ["router.py", "__init__.py", "app.js.bak", "APP.JS", ".hidden.js", "nope.js", "a b.js"]
)
def test_only_packaged_assets_are_served(client: TestClient, name: str) -> None:
    assert client.get(f"/app/static/{name}").status_code == 404


def test_traversal_out_of_the_static_folder_is_impossible(client: TestClient) -> None:
    for path in ("/app/static/..%2Frouter.py", "/app/static/%2e%2e/router.py", "/app/static/../router.py"):
        response = client.get(path)
        assert response.status_code == 404
        assert b"APIRouter" not in response.content


def test_the_config_needs_a_signed_in_reader(client: TestClient) -> None:
    assert client.get("/app/config.json").status_code == 401
    token = client.post("/api/v1/auth/token", data={"username": "eval", "password": PASSWORD}).json()["access_token"]
    response = client.get("/app/config.json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {
        "poll_interval_s": 15,
        "deadlines": {"acknowledge_min": 15.0, "on_site_min": 30.0},
        "county_deadlines": {},
        "max_upload_mb": 25.0,  # the evidence limit: the app refuses a larger photo before uploading it
        "demo": False,  # served without --demo: no DEMO inbox page
    }
    assert response.headers["cache-control"] == "no-store"


def test_the_pages_are_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/app")]


def test_every_module_and_asset_reference_resolves_and_nothing_is_orphaned() -> None:
    names = {p.name for p in STATIC.iterdir()}
    referenced = set(re.findall(r'(?:src|href)="static/([^"]+)"', js("index.html")))
    for text in all_js().values():
        referenced |= set(re.findall(r'from "\./([^"]+)"', text))
    assert referenced - names == set()
    assert names - referenced == {"index.html"}


def code_of(text: str) -> str:
    """JavaScript without its comments (which may well name what the code avoids)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)


def test_no_html_is_built_from_strings_and_nothing_is_loaded_from_outside() -> None:
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(\"on"
    )
    for name, text in all_js().items():
        assert not forbidden.search(code_of(text)), name
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
        # The SVG namespace is a name, not a download; the Amap link is a navigation aid the user taps.
        allowed = {"http://www.w3.org/2000/svg", "https://uri.amap.com/marker?"}
        assert {u.split("$")[0] for u in urls} <= allowed, (path.name, urls)
        assert "@import" not in text
        assert "url(http" not in text


def dictionaries() -> dict[str, set[str]]:
    text = js("i18n.js")
    out = {}
    for lang in ("zh", "en"):
        body = text.split(f"const {lang} = {{", 1)[1].split("\n};", 1)[0]
        out[lang] = set(re.findall(r'^\s*"([\w.]+)":', body, flags=re.MULTILINE))
    return out


def test_both_languages_have_every_string() -> None:
    d = dictionaries()
    assert d["zh"] == d["en"]
    used = set()
    for text in all_js().values():
        used |= set(re.findall(r'\bt\("([\w.]+)"', text))
    assert used - d["zh"] == set()


def test_every_value_the_api_can_send_has_a_label() -> None:
    keys = dictionaries()["zh"]
    families = {
        "state": [s.value for s in IncidentState],
        "action": sorted({target.value for moves in TRANSITIONS.values() for target in moves}),
        "role": [r.value for r in Role],
        "reason": [r.value for r in FalseAlarmReason],
        "kind": [k.value for k in ObservationKind],
        "assign": [*(a.value for a in AssignStatus), "manual"],
        "group": [g.value for g in GroupBy],
        "interval": [i.value for i in Interval],
        "interval_help": [i.value for i in Interval],
        "queue.title": [f"_{r.value}" for r in (Role.PATROL, Role.SUPERVISOR, Role.EVALUATOR, Role.ADMIN)],
        "cameras.status": list(get_args(get_type_hints(MaskSuggestion)["status"])),
    }
    missing = [
        f"{family}{'' if value.startswith('_') else '.'}{value}"
        for family, values in families.items()
        for value in values
        if f"{family}{'' if value.startswith('_') else '.'}{value}" not in keys
    ]
    assert missing == []


def js_list(text: str, name: str) -> list[str]:
    body = re.search(rf"{name} = (?:new Set\()?\[(.*?)\]", text, flags=re.DOTALL)
    assert body is not None, name
    return re.findall(r'"(\w+)"', body.group(1))


def test_the_app_knows_the_same_states_as_the_server() -> None:
    model = js("model.js")
    assert sorted(js_list(model, "STATES")) == sorted(s.value for s in IncidentState)
    assert js_list(model, "FALSE_ALARM_REASONS") == [r.value for r in FalseAlarmReason]
    done = set(js_list(model, "DONE"))
    assert done == {s.value for s in IncidentState} - {s.value for s in OPEN_STATES}
    css = js("app.css")
    for state in IncidentState:
        assert f"--state-{state.value}:" in css
        assert f".dot.state-{state.value} " in css
        assert f".badge.state-{state.value}," in css


def test_the_incident_page_shows_a_fire_again_at_the_same_place_with_a_link_to_the_earlier_one() -> None:
    """repeat_at_site (同一地点再次起火): the API's field is shown as a badge linking to the earlier incident, and the
    event the server records has a label in both languages."""
    from service.incidents.schemas import IncidentRead

    assert "repeat_of_incident_id" in IncidentRead.model_fields
    page = code_of(js("page-incident.js"))
    assert "detail.repeat_of_incident_id" in page
    assert "href: `#/incident/${earlier}`" in page
    assert "repeat_at_site" in js_list(js("model.js"), "EVENT_KINDS")
    text = js("i18n.js")
    assert '"incident.repeat_at_site": "同一地点再次起火' in text
    assert '"incident.repeat_at_site": "Fire again at the same place' in text
    assert {"event.repeat_at_site", "incident.repeat_at_site"} <= dictionaries()["en"]


def test_every_reason_an_alert_is_withdrawn_is_worded_in_both_languages() -> None:
    """The codes an ``alert_withdrawn`` event's data gives as its ``why`` (service.alerts.outbox.LAPSED, a retired
    DEMO inbox recipient's included): the incident page words each in Chinese and English, where a code it does not
    know would show the server's English note."""
    from service.alerts.outbox import LAPSED

    assert js_list(js("page-incident.js"), "LAPSED") == list(LAPSED)
    words = dictionaries()
    for code in LAPSED:
        assert f"event_text.lapsed.{code}" in words["zh"], code
        assert f"event_text.lapsed.{code}" in words["en"], code
