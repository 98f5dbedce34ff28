"""Every answer carries nosniff and no-framing headers, and the API docs pages fetch nothing from outside (an
audit's findings: only /app/* had the headers; /redoc loaded Redocly's logo from cdn.redoc.ly)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from service.config import Settings
from service.dashboard.router import CSP
from service.main import DOCS_ASSETS_PATH, create_app
from tests.dashboard.conftest import CHROMEDRIVER, CHROMIUM, _skip_without_browser
from tests.dashboard.live import bound_socket, serving

MB = 1 << 20


def test_every_answer_says_nosniff_and_no_framing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    with TestClient(create_app(settings)) as client:
        answers = {
            "home": client.get("/"),
            "docs": client.get("/docs"),
            "redoc": client.get("/redoc"),
            "docs asset": client.get(f"{DOCS_ASSETS_PATH}/swagger-ui.css"),
            "schema": client.get("/openapi.json"),
            "health": client.get("/healthz"),
            "json 401": client.get("/api/v1/incidents"),
            "json 404": client.get("/api/v1/no-such-route"),
            "login 401": client.post("/api/v1/auth/token", data={"username": "x", "password": "wrong-password"}),
            "body limit 413": client.post(
                "/api/v1/incidents/1/evidence", headers={"Content-Length": str(30 * MB)}, content=b""
            ),
            "upload 401": client.post("/api/v1/drone/images", files={"images": ("a.jpg", b"x", "image/jpeg")}),
        }
        for name, answer in answers.items():
            assert answer.headers.get("x-content-type-options") == "nosniff", name
            assert answer.headers.get("x-frame-options") == "DENY", name
            assert answer.headers.get("content-security-policy") == "frame-ancestors 'none'", name
        assert answers["docs"].status_code == answers["redoc"].status_code == 200
        assert answers["body limit 413"].status_code == 413
        dashboard = client.get("/app/")
        assert dashboard.headers.get_list("content-security-policy") == [CSP]  # its own, kept and not doubled
        assert dashboard.headers.get_list("x-frame-options") == ["DENY"]


#: An address the page would fetch by itself: an element's src, a fetch() or a CSS url() (links, only followed when
#: clicked, and a converted schema's "converter.url" note are not fetched). The packaged bundle has one, the logo.
_FETCHED_URL = re.compile(rb"""(?:\bsrc\s*[:=]|\bfetch\(|\burl\()\s*["'`]?https?://[^"'`)\s]*""")


def test_redoc_fetches_nothing_from_outside(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    with TestClient(create_app(settings)) as client:
        script = client.get(f"{DOCS_ASSETS_PATH}/redoc.standalone.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert len(script.content) > 1_000_000  # the real bundle
        assert b"cdn.redoc.ly" not in script.content
        assert _FETCHED_URL.findall(script.content) == []
        # Swagger UI's online validator badge, which sends the schema's address to validator.swagger.io from any
        # host but localhost, is off.
        assert '"validatorUrl": null' in client.get("/docs").text


def test_redoc_still_renders_the_api_in_a_browser(tmp_path: Path) -> None:
    """The rewritten bundle still works (and, with the nosniff and framing headers, /redoc renders), and every
    resource the page fetched came from this server."""
    _skip_without_browser()
    from selenium.webdriver.common.by import By

    from tests.dashboard.browser import chromium

    app = create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}))
    with serving(app, bound_socket()) as url, chromium(url, tmp_path, binary=CHROMIUM, driver_path=CHROMEDRIVER) as b:
        b.driver.get(f"{url}/redoc")
        b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "h1"), "the API's title")
        b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id^='tag/']"), "the API's sections")
        title = b.find("h1").text
        resources = b.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        images = b.driver.execute_script("return Array.from(document.images).map(i => i.getAttribute('src'))")
    assert title.startswith("strawfire")
    assert resources
    assert all(name.startswith(url + "/") for name in resources), resources
    assert not any(src and "://" in src for src in images), images
