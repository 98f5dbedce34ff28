"""Coordinates typed into "Report a fire here" from a phone map say their system, in a real headless Chromium: a
patrol copying Amap's (GCJ-02) numbers chooses GCJ-02, and the fire is placed at its WGS-84 position; the phone's
own fix stays WGS-84 whatever was chosen before."""

from __future__ import annotations

import pytest
from pyproj import Geod
from selenium.webdriver.support.ui import Select

from service.regions.crs import wgs84_to_gcj02
from tests.dashboard.browser import PHONE, Browser
from tests.dashboard.live import PASSWORD, LiveServer, api
from tests.dashboard.test_patrol_report_browser import IN_BEIGANG, _patrol_observation

pytestmark = pytest.mark.slow
GEOD = Geod(ellps="WGS84")


def test_coordinates_typed_from_amap_are_sent_as_gcj02(browser: Browser, live: LiveServer) -> None:
    lat, lon = IN_BEIGANG
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    browser.deny_geolocation()  # typed in, as a team without GPS copying the map's numbers
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    browser.click("#report-open")
    browser.find('#report-position[data-state="unavailable"]')
    browser.type("#report-lat", f"{gcj_lat:.6f}")
    browser.type("#report-lon", f"{gcj_lon:.6f}")
    choice = Select(browser.find("#report-crs"))
    assert [o.get_attribute("value") for o in choice.options] == ["wgs84", "gcj02", "bd09"]
    assert choice.first_selected_option.get_attribute("value") == "wgs84"  # GPS's, unless the team says otherwise
    assert "高德" in choice.options[1].text
    choice.select_by_value("gcj02")
    browser.screenshot("patrol-report-typed-gcj02", whole_page=False)
    before = {i["id"] for i in api(live, "admin", "/api/v1/incidents")}
    browser.click("#report-submit")
    browser.find('.incident-page[data-state="on_site"]')  # the team's own township: on site at once
    (incident,) = {i["id"] for i in api(live, "admin", "/api/v1/incidents")} - before
    observation = _patrol_observation(live, incident)
    assert observation["details"]["crs"] == "gcj02"
    # Placed where the fire is (the GCJ-02 numbers read as WGS-84 were 550 m off).
    assert GEOD.inv(lon, lat, observation["longitude"], observation["latitude"])[2] < 1.0
    assert browser.console_errors() == []
    browser.logout()
