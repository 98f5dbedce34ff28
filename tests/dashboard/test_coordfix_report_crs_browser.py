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


def test_the_phones_fix_is_sent_as_wgs84_whatever_system_was_chosen(browser: Browser, live: LiveServer) -> None:
    """GCJ-02 chosen for typed numbers makes the fix's numbers typed ones; locating again brings back the fix and
    WGS-84, and the report is sent as the fix (no ``crs``, the phone's accuracy), not converted from GCJ-02."""
    driver = browser.driver
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": live.url, "permissions": ["geolocation"]})
    lat, lon = 44.36, 125.58  # in 北岗镇, 3 km from the other report
    driver.execute_cdp_cmd("Emulation.setGeolocationOverride", {"latitude": lat, "longitude": lon, "accuracy": 8})
    try:
        browser.use(PHONE)
        browser.login("beigang", PASSWORD)
        browser.click("#report-open")
        browser.find('#report-position[data-state="found"]')
        choice = Select(browser.find("#report-crs"))
        choice.select_by_value("gcj02")
        browser.find('#report-position[data-state="manual"]')  # the fix's numbers in GCJ-02 are no fix
        browser.click("#report-locate")
        browser.find('#report-position[data-state="found"]')
        assert choice.first_selected_option.get_attribute("value") == "wgs84"
        browser.click("#report-submit")
        page = browser.find('.incident-page[data-state="on_site"]')
        incident = int(page.get_attribute("data-incident-id") or 0)
        observation = _patrol_observation(live, incident)
        assert "crs" not in observation["details"]
        assert observation["details"]["accuracy_m"] == pytest.approx(8.0)
        assert (observation["latitude"], observation["longitude"]) == (pytest.approx(lat), pytest.approx(lon))
        assert browser.console_errors() == []
        browser.logout()
    finally:
        browser.deny_geolocation()
