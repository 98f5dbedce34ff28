"""The API documentation pages (/docs, /redoc) work offline: every script, style and icon is served by the app."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from tests.dashboard.conftest import CHROMEDRIVER, CHROMIUM, _skip_without_browser
from tests.dashboard.live import bound_socket, serving


class _Links(HTMLParser):
    """Every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _links(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    return parser.urls


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_what_the_app_serves(client: TestClient, page: str) -> None:
    with client:
        response = client.get(page)
        assert response.status_code == 200
        text = response.text
        links = _links(text)
        assert links, text
        # No CDN, no Google fonts: nothing outside this server, not even a protocol-relative URL.
        assert "://" not in text, text
        assert all(url.startswith("/") and not url.startswith("//") for url in links), links
        for url in links:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
        scripts = [url for url in links if url.endswith(".js")]
        assert len(scripts) == 1, links
        served = client.get(scripts[0])
        assert "javascript" in served.headers["content-type"]
        assert len(served.content) > 100_000  # the real bundle, not a stub


def test_swagger_ui_renders_the_api_offline(tmp_path: Path) -> None:
    """In a real browser: /docs renders every operation of the (OpenAPI 3.1) schema, and every resource the page
    fetched came from this server (a Swagger UI older than 5 shows an error for 3.1 instead)."""
    _skip_without_browser()
    from selenium.webdriver.common.by import By

    from tests.dashboard.browser import chromium

    app = create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}))
    with serving(app, bound_socket()) as url, chromium(url, tmp_path, binary=CHROMIUM, driver_path=CHROMEDRIVER) as b:
        b.driver.get(f"{url}/docs")
        b.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"), "the API's operations")
        title = b.find(".swagger-ui .info .title").text
        resources = b.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        errors = b.all(".swagger-ui .errors-wrapper")
    assert title.startswith("strawfire")
    assert errors == []
    assert resources
    assert all(name.startswith(url + "/") for name in resources), resources
