"""Fixtures for the dashboard tests: the seeded live server and one headless Chromium per module."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.dashboard.live import LiveServer, live_server

if TYPE_CHECKING:
    from tests.dashboard.browser import Browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _skip_without_browser() -> None:
    missing = []
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        missing.append(
            f"headless Chromium ({CHROMIUM} and {CHROMEDRIVER}: Debian packages chromium and chromium-driver, "
            "which .ci/run installs)"
        )
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (a dev dependency: pip install -e '.[dev]')")
    if missing:
        pytest.skip("browser tests need " + " and ".join(missing))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The seeded server; the current directory is the repository, whose ./rules the scores use."""
    _skip_without_browser()
    from service.dashboard.router import router as dashboard_router
    from service.stats.router import router as stats_router

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        data_dir = tmp_path_factory.mktemp("dashboard") / "var"
        with live_server(data_dir, extra_routers=(stats_router, dashboard_router)) as server:
            yield server


@pytest.fixture(scope="module")
def browser(live: LiveServer) -> Iterator[Browser]:
    """A fresh Chromium on the live server; screenshots go to var/test-artifacts/dashboard/."""
    from tests.dashboard.browser import chromium

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    with chromium(live.url, ARTIFACTS, binary=CHROMIUM, driver_path=CHROMEDRIVER) as b:
        yield b
