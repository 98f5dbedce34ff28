"""A headless Chromium driven by Selenium, with the few helpers the dashboard tests need.

Chromium runs as root here, so it needs ``--no-sandbox``; it must not phone home (component updates, sync, QUIC),
and it gets a fresh profile per run. Phone and desktop sizes are set with the DevTools device-metrics override
rather than the window size, because desktop Chromium will not make a window narrower than about 500 px.
Screenshots are of the whole page (the viewport is stretched to the page height for the capture).
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--lang=zh-CN",
)
TIMEOUT_S = 20


@dataclass(frozen=True)
class Viewport:
    """A device size."""

    name: str
    width: int
    height: int
    mobile: bool


PHONE = Viewport("phone", 390, 844, True)
NARROW = Viewport("narrow", 360, 740, True)  # the narrowest phone the dashboard is checked on
DESKTOP = Viewport("desktop", 1366, 900, False)


class Browser:
    """One Chromium tab pointed at the live server."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, artifacts: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.artifacts = artifacts
        self.viewport = DESKTOP
        self.shots: list[Path] = []

    # Navigation and waiting -------------------------------------------------------------------------------------

    def use(self, viewport: Viewport) -> None:
        """Emulate a device size (and touch for phones)."""
        self.viewport = viewport
        self._metrics(viewport.height)
        self.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": viewport.mobile})

    def _metrics(self, height: int) -> None:
        v = self.viewport
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": v.width, "height": height, "deviceScaleFactor": 1, "mobile": v.mobile},
        )

    def deny_geolocation(self) -> None:
        """Refuse the Geolocation API on every origin (the default here): headless Chromium would otherwise grant it
        and ask Google's network location service, which must not be reached (and logs a console error)."""
        self.driver.execute_cdp_cmd("Emulation.clearGeolocationOverride", {})
        self.driver.execute_cdp_cmd("Browser.resetPermissions", {})
        self.driver.execute_cdp_cmd(
            "Browser.setPermission", {"permission": {"name": "geolocation"}, "setting": "denied"}
        )

    def go(self, route: str) -> None:
        """Open an app route such as ``#/queue`` (loads the page the first time, then only changes the fragment)."""
        self.driver.get(f"{self.base_url}/app/{route}")

    def wait(self, condition: Callable[[webdriver.Chrome], Any], what: str) -> Any:
        """Wait for ``condition`` to be truthy; the failure names what was awaited."""
        try:
            return WebDriverWait(self.driver, TIMEOUT_S, poll_frequency=0.1).until(condition)
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what} (page: {self.driver.current_url})") from None

    def find(self, css: str) -> WebElement:
        """Wait for a visible element and return it."""
        return self.wait(lambda d: _visible(d, css), css)  # type: ignore[no-any-return]

    def all(self, css: str) -> list[WebElement]:
        """The elements matching now (no waiting)."""
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def absent(self, css: str) -> bool:
        return not self.all(css)

    def click(self, css: str) -> None:
        self.find(css).click()

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(text)

    # The app's own steps ----------------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        """Sign in through the login form and wait for the first page to render."""
        # Start signed out whatever an earlier (perhaps failed) test left behind.
        self.go("#/")
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.refresh()
        self.type("#username", username)
        self.type("#password", password)
        self.click("#login-submit")
        self.wait(lambda d: d.execute_script("return document.body.classList.contains('signed-in')"), "sign-in")
        self.find("#main .page h1")

    def logout(self) -> None:
        self.click("#logout")
        self.find("#login-form")
        assert self.driver.execute_script("return sessionStorage.length") == 0

    # Evidence ---------------------------------------------------------------------------------------------------

    def screenshot(self, name: str, *, whole_page: bool = True) -> Path:
        """Save a PNG as ``<artifacts>/<NN>-<name>-<viewport>.png``: the whole page, or what is on screen."""
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        if whole_page:
            self._metrics(max(height, self.viewport.height))
        try:
            data = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
        finally:
            self._metrics(self.viewport.height)
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}-{self.viewport.name}.png"
        path.write_bytes(base64.b64decode(data))
        self.shots.append(path)
        return path

    def console_errors(self, ignore: tuple[str, ...] = ()) -> list[str]:
        """SEVERE browser console entries since the last call (CSP violations, script errors…)."""
        entries = self.driver.get_log("browser")
        return [
            e["message"]
            for e in entries
            if e["level"] == "SEVERE" and not any(pattern in e["message"] for pattern in ignore)
        ]


def open_incident(browser: Browser, incident_id: int, state: str | None = None) -> None:
    """Open the incident's page and wait for it (in ``state`` when given)."""
    browser.go(f"#/incident/{incident_id}")
    browser.find(f'.incident-page[data-incident-id="{incident_id}"]' + (f'[data-state="{state}"]' if state else ""))


def _visible(driver: webdriver.Chrome, css: str) -> WebElement | None:
    for element in driver.find_elements(By.CSS_SELECTOR, css):
        if element.is_displayed():
            return element
    return None


@contextmanager
def chromium(base_url: str, artifacts: Path, *, binary: Path, driver_path: Path) -> Iterator[Browser]:
    """Start Chromium with a fresh profile; quit and delete the profile afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="strawfire-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1366,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(str(driver_path)))
    try:
        browser = Browser(driver, base_url, artifacts)
        browser.deny_geolocation()
        yield browser
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
