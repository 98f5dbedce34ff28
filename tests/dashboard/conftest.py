"""Fixtures for the dashboard tests: the seeded live server, one headless Chromium per module, and Node to run the
dashboard's own modules without a browser."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.dashboard.live import LiveServer, live_server
from tests.dashboard.test_assets import STATIC

if TYPE_CHECKING:
    from tests.dashboard.browser import Browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Run before a script under Node: the browser objects the modules touch at load (localStorage, document) stubbed,
# STATIC_URL the folder to import them from, INPUT the script's input.
NODE_PRELUDE = """
const store = {};
globalThis.localStorage = {
  getItem: (key) => (key in store ? store[key] : null),
  setItem: (key, value) => { store[key] = String(value); },
};
globalThis.document = { documentElement: { lang: "" } };
const STATIC_URL = process.argv[2];
const INPUT = JSON.parse(process.argv[3]);
"""


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


@pytest.fixture(scope="session")
def in_node(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, object], Any]:
    """Runs a script (an ES module, after :data:`NODE_PRELUDE`) under Node on a copy of the dashboard's modules, with
    ``argument`` as its INPUT, and gives back what it prints, as JSON. Node has the same ECMAScript Intl the browser
    has. Tests using it are skipped where Node is not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    folder = tmp_path_factory.mktemp("node")
    static = folder / "static"
    shutil.copytree(STATIC, static)
    (static / "package.json").write_text('{"type": "module"}', encoding="utf-8")  # ES modules, as to the browser

    def run(script: str, argument: object) -> Any:
        runner = folder / "runner.mjs"
        runner.write_text(NODE_PRELUDE + script, encoding="utf-8")
        result = subprocess.run(
            [node, str(runner), static.as_uri(), json.dumps(argument)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run
