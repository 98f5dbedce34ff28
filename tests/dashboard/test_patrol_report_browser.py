""" "Report a fire here" (巡查发现) on the patrol's phone queue, in a real headless Chromium: with the phone's position
(the DevTools geolocation override, permission granted) the fire is reported in the team's own township and opened
on site; with geolocation denied the team types the coordinates in, and a fire across the boundary goes to the
other township's team. The demo county's townships: 北岗镇 DEMO01 north-west, 西坡乡 DEMO04 south-west.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.browser import PHONE, Browser
from tests.dashboard.live import PASSWORD, LiveServer, api

pytestmark = pytest.mark.slow

IN_BEIGANG = (44.39, 125.62)  # (lat, lon), km from the seeded fires
IN_XIPO = (44.20, 125.56)


def _patrol_observation(live: LiveServer, incident: int) -> dict[str, Any]:
    detail = api(live, "admin", f"/api/v1/incidents/{incident}")
    (observation,) = [o for o in detail["observations"] if o["kind"] == "patrol"]
    return observation  # type: ignore[no-any-return]


def test_report_a_fire_here_with_the_phone_position(browser: Browser, live: LiveServer) -> None:
    driver = browser.driver
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": live.url, "permissions": ["geolocation"]})
    lat, lon = IN_BEIGANG
    driver.execute_cdp_cmd("Emulation.setGeolocationOverride", {"latitude": lat, "longitude": lon, "accuracy": 8})
    try:
        browser.use(PHONE)
        browser.login("beigang", PASSWORD)
        browser.find("#queue-list")
        browser.click("#report-open")
        found = browser.find('#report-position[data-state="found"]')
        assert "8" in found.text
        assert float(browser.find("#report-lat").get_attribute("value") or "nan") == pytest.approx(lat)
        assert float(browser.find("#report-lon").get_attribute("value") or "nan") == pytest.approx(lon)
        browser.type("#report-note", "村东玉米地，正在扑救")
        browser.screenshot("patrol-report-form", whole_page=False)
        browser.click("#report-submit")
        page = browser.find('.incident-page[data-state="on_site"]')  # opened on site, for photos and next steps
        incident = int(page.get_attribute("data-incident-id") or 0)

        observation = _patrol_observation(live, incident)
        assert observation["details"]["reporter_unit"] == "DEMO01"
        assert observation["details"]["accuracy_m"] == pytest.approx(8.0)
        assert observation["details"]["note"] == "村东玉米地，正在扑救"
        assert (observation["latitude"], observation["longitude"]) == (pytest.approx(lat), pytest.approx(lon))
        events = api(live, "beigang", f"/api/v1/incidents/{incident}/events")
        on_site = [e for e in events if e["to_state"] == "on_site"]
        assert on_site[0]["actor"] == "beigang"
        assert on_site[0]["data"]["position"]["far_from_fire"] is False
        browser.find('#timeline li[data-to="on_site"] .position[data-position="near"]')
        browser.screenshot("patrol-report-on-site")
        assert browser.console_errors() == []
        browser.logout()
    finally:
        browser.deny_geolocation()


def test_report_with_coordinates_typed_in_when_geolocation_is_denied(browser: Browser, live: LiveServer) -> None:
    browser.deny_geolocation()  # as a phone whose user tapped "block"
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    browser.click("#report-open")
    browser.find('#report-position[data-state="unavailable"]')
    browser.type("#report-lat", "95")
    browser.type("#report-lon", str(IN_XIPO[1]))
    browser.find('#report-position[data-state="manual"]')
    browser.click("#report-submit")
    assert "纬度" in browser.find("#report-error").text  # refused in the page, nothing sent
    before = {i["id"] for i in api(live, "admin", "/api/v1/incidents")}

    browser.type("#report-lat", str(IN_XIPO[0]))  # across the boundary, in 西坡乡
    browser.click("#report-submit")
    toast = browser.find("#toast")
    assert "西坡乡" in toast.text
    assert browser.all('.page [id="queue-list"]')  # still on the queue: not the team's fire
    (incident,) = {i["id"] for i in api(live, "admin", "/api/v1/incidents")} - before
    observation = _patrol_observation(live, incident)
    assert observation["details"]["reporter_unit"] == "DEMO01"
    assert observation["details"]["accuracy_m"] is None  # typed in: no fix
    detail = api(live, "admin", f"/api/v1/incidents/{incident}")
    assert (detail["township_code"], detail["state"]) == ("DEMO04", "suspected")
    assert browser.console_errors() == []
    browser.logout()
