"""The phone's position with "on site" (到场), in a real headless Chromium: the page asks the Geolocation API when
the patrol taps the move, sends the fix with it, and the timeline shows the distance and a "far from the fire"
warning; when geolocation is denied the move still goes through, recorded with ``position: null``.

The position is emulated with the DevTools ``Emulation.setGeolocationOverride`` and the permission set with
``Browser.grantPermissions`` (the live server is http://127.0.0.1, a secure context); geolocation is otherwise
denied (``Browser.deny_geolocation``), as for a user who blocked it.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyproj import Geod

from tests.dashboard.browser import PHONE, Browser, open_incident
from tests.dashboard.live import PASSWORD, LiveServer, api

pytestmark = pytest.mark.slow

GEOD = Geod(ellps="WGS84")


def _transition(live: LiveServer, username: str, incident: int, to: str) -> dict[str, Any]:
    events = api(live, username, f"/api/v1/incidents/{incident}/events")
    return [e for e in events if e["kind"] == "transition" and e["to_state"] == to][-1]  # type: ignore[no-any-return]


def _open_on_a_phone(browser: Browser, username: str, incident: int) -> None:
    browser.use(PHONE)
    browser.login(username, PASSWORD)
    open_incident(browser, incident)


def _move(browser: Browser, to: str) -> None:
    browser.click(f'#actions button[data-transition="{to}"]')
    browser.find("#transition-dialog[open]")
    browser.click("#t-submit")
    browser.find(f'.incident-page[data-state="{to}"]')
    assert not browser.all("#transition-dialog[open]")


def test_on_site_sends_the_phone_position_and_the_timeline_warns_when_far(browser: Browser, live: LiveServer) -> None:
    incident = live.incidents["beigang"]
    fire = api(live, "beigang", f"/api/v1/incidents/{incident}")
    # 3 km east of the fire with a 25 m fix: "on site" from somewhere else (虚假到场).
    lon, lat, _ = GEOD.fwd(fire["longitude"], fire["latitude"], 90.0, 3_000.0)
    driver = browser.driver
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": live.url, "permissions": ["geolocation"]})
    driver.execute_cdp_cmd("Emulation.setGeolocationOverride", {"latitude": lat, "longitude": lon, "accuracy": 25})
    try:
        _open_on_a_phone(browser, "beigang", incident)
        _move(browser, "acknowledged")
        _move(browser, "en_route")
        browser.click('#actions button[data-transition="on_site"]')
        browser.find("#transition-dialog[open]")
        browser.find('#t-position[data-state="found"]')  # the fix was asked for when the move was tapped
        browser.screenshot("on-site-position", whole_page=False)
        browser.click("#t-submit")
        browser.find('.incident-page[data-state="on_site"]')

        stored = _transition(live, "beigang", incident, "on_site")["data"]["position"]
        assert stored["latitude"] == pytest.approx(lat, abs=1e-9)
        assert stored["longitude"] == pytest.approx(lon, abs=1e-9)
        assert stored["accuracy_m"] == pytest.approx(25.0)
        assert stored["distance_m"] == pytest.approx(3_000.0, abs=1.0)
        assert stored["far_from_fire"] is True

        entry = browser.find('#timeline li[data-to="on_site"] .position[data-position="far"]')
        assert entry.find_elements("css selector", ".badge.far-from-fire")
        assert "远离火点" in entry.text
        assert "3,000" in entry.text or "3000" in entry.text
        browser.screenshot("on-site-far-timeline")

        # Put out standing at the fire: the distance is shown, without the warning.
        driver.execute_cdp_cmd(
            "Emulation.setGeolocationOverride",
            {"latitude": fire["latitude"], "longitude": fire["longitude"], "accuracy": 10},
        )
        _move(browser, "extinguished")
        near = _transition(live, "beigang", incident, "extinguished")["data"]["position"]
        assert near["far_from_fire"] is False
        assert near["distance_m"] < 1.0
        entry = browser.find('#timeline li[data-to="extinguished"] .position[data-position="near"]')
        assert not entry.find_elements("css selector", ".badge.far-from-fire")
        assert browser.console_errors() == []
        browser.logout()
    finally:
        browser.deny_geolocation()


def test_on_site_goes_through_when_geolocation_is_denied(browser: Browser, live: LiveServer) -> None:
    incident = live.incidents["nantun"]
    browser.deny_geolocation()  # as a phone whose user tapped "block"
    try:
        _open_on_a_phone(browser, "nantun", incident)
        _move(browser, "acknowledged")
        browser.click('#actions button[data-transition="on_site"]')
        browser.find("#transition-dialog[open]")
        browser.find('#t-position[data-state="unavailable"]')
        browser.click("#t-submit")
        browser.find('.incident-page[data-state="on_site"]')

        data = _transition(live, "nantun", incident, "on_site")["data"]
        assert "position" in data
        assert data["position"] is None
        entry = browser.find('#timeline li[data-to="on_site"] .position[data-position="none"]')
        assert "未上报位置" in entry.text
        browser.screenshot("on-site-no-position")
        browser.logout()
    finally:
        browser.deny_geolocation()
