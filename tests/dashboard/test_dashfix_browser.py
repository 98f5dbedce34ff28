"""Gaps an audit of the dashboard found on a 375 px phone, in a real headless Chromium against the real service:
the patrol's own report kept across an expired sign-in, a language switch and a reload; a FIRMS source key that
made every incident page wider than the phone; photo warnings and the screening decision in the reader's language;
a page whose first load failed coming back by itself; the cameras page only for admins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import shapely
from selenium.webdriver.support.ui import Select, WebDriverWait

from service.config import Settings
from service.db import transaction
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from tests.dashboard.browser import Browser, Viewport, open_incident
from tests.dashboard.live import ADMIN, PASSWORD, LiveServer, api
from tests.dashboard.test_dashboard_audit import expire_token, offline
from tests.incidents.test_evidence import _png, photo

pytestmark = pytest.mark.slow

PHONE_375 = Viewport("phone375", 375, 812, True)  # the audit's phone
IN_BEIGANG = (44.39, 125.62)  # (lat, lon): 北岗镇 (DEMO01), km from the seeded fires
# A FIRMS pixel's key as the service stores it: one token of 50 characters, no place to break.
FIRMS_KEY = "MODIS|Terra|NRT|20261201T0123Z|+4436000|+12554000"
SCREENING = {
    "status": "accepted",
    "reason": "candidate straw fire: no exclusion applies; no_burn zone Z-0042",
    "zone": "no_burn",
    "zone_ids": ["Z-0042"],
    "findings": [],
    "site_id": None,
    "permit_id": None,
}
FIRE_POINT = {
    "key": f"FP|{FIRMS_KEY}",
    "representative": True,
    "members": 1,
    "extent_km": 1.0,
    "pass_id": "MODIS|Terra|20261201T0123Z",
    "pixel_km": 1.0,
    "repeat_of": None,
}


def firms_fire(live: LiveServer) -> int:
    """A FIRMS pixel in 北岗镇 with its screening decision and fire point, ingested the production way."""
    lon, lat = 125.54, 44.36
    pixel = shapely.box(lon - 0.005, lat - 0.005, lon + 0.005, lat + 0.005)
    details = {"instrument": "MODIS", "satellite": "Terra", "screening": SCREENING, "fire_point": FIRE_POINT}
    observation = ObservationIn(
        ObservationKind.SATELLITE, FIRMS_KEY, datetime.now(UTC), lat, lon, pixel, 0.8, details=details
    )
    with transaction(live.app.state.session_factory) as session:
        (number,) = ingest_observations(
            session, [observation], indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
        ).new_incidents
        assert session.get_one(Incident, number).township_code == "DEMO01"
    return number


def upload(live: LiveServer, incident: int, name: str, data: bytes) -> dict[str, object]:
    token = httpx.post(f"{live.url}/api/v1/auth/token", data={"username": "beigang", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    url = f"{live.url}/api/v1/incidents/{incident}/evidence"
    response = httpx.post(url, files={"file": (name, data, "image/jpeg")}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def page_width(browser: Browser) -> tuple[int, int]:
    width = browser.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    return int(width[0]), int(width[1])


def switch_language(browser: Browser, code: str) -> None:
    Select(browser.find("#lang")).select_by_value(code)
    browser.wait(lambda d: d.execute_script("return document.documentElement.lang") == code, f"language {code}")


def test_the_patrol_report_survives_an_expired_sign_in(browser: Browser, live: LiveServer) -> None:
    """README: a report that could not be sent (an expired sign-in) keeps what was entered, and after signing in
    again the form comes back filled in. It was lost: the queue's report form saved no draft."""
    lat, lon = IN_BEIGANG
    browser.use(PHONE_375)
    browser.login("beigang", PASSWORD)
    browser.click("#report-open")
    browser.find('#report-position[data-state="unavailable"]')  # geolocation denied: typed in
    browser.type("#report-lat", str(lat))
    browser.type("#report-lon", str(lon))
    browser.type("#report-note", "村北玉米地，烟很大")
    expire_token(browser)
    browser.click("#report-submit")
    message = browser.find("#login-error")
    assert "未提交" in message.text or "保留" in message.text  # login.expired_draft: what was typed is kept
    browser.type("#username", "beigang")
    browser.type("#password", PASSWORD)
    browser.click("#login-submit")
    browser.find("#report-form")
    assert browser.find("#report-lat").get_attribute("value") == str(lat)
    assert browser.find("#report-lon").get_attribute("value") == str(lon)
    assert browser.find("#report-note").get_attribute("value") == "村北玉米地，烟很大"
    assert browser.find('#report-position[data-state="manual"]')
    browser.screenshot("dashfix-report-restored", whole_page=False)
    browser.click("#report-submit")
    page = browser.find('.incident-page[data-state="on_site"]')
    incident = int(page.get_attribute("data-incident-id") or 0)
    detail = api(live, "admin", f"/api/v1/incidents/{incident}")
    (report,) = [o for o in detail["observations"] if o["kind"] == "patrol"]
    assert report["details"]["note"] == "村北玉米地，烟很大"
    assert browser.driver.execute_script("return sessionStorage.getItem('strawfire.draft')") is None
    browser.logout()


def test_a_language_switch_or_a_reload_keeps_the_open_form(browser: Browser, live: LiveServer) -> None:
    """Switching language drew the page again from scratch: an open report form or move dialog, and what was
    typed in it, were gone; so were they after a reload."""
    browser.use(PHONE_375)
    browser.login("beigang", PASSWORD)
    try:
        browser.click("#report-open")
        browser.find('#report-position[data-state="unavailable"]')
        browser.type("#report-lat", "44.38")
        browser.type("#report-note", "语言切换前输入")
        switch_language(browser, "en")
        assert browser.find("#report-submit").text == "Report the fire"
        assert browser.find("#report-note").get_attribute("value") == "语言切换前输入"
        assert browser.find("#report-lat").get_attribute("value") == "44.38"
        browser.driver.refresh()
        assert browser.find("#report-note").get_attribute("value") == "语言切换前输入"

        fire = live.incidents["beigang"]
        open_incident(browser, fire)
        to = browser.find("#actions button.primary").get_attribute("data-transition")
        browser.click(f'#actions button[data-transition="{to}"]')
        browser.type("#t-note", "两人一车")
        switch_language(browser, "zh-CN")
        browser.find("#transition-dialog[open]")
        assert browser.find("#t-note").get_attribute("value") == "两人一车"
        assert browser.find("#t-submit").text == browser.driver.execute_script(
            "return document.querySelector(`#actions button[data-transition='${arguments[0]}']`).textContent", to
        )
    finally:
        browser.driver.execute_script("localStorage.setItem('strawfire.lang', 'zh-CN')")
    browser.driver.execute_script("document.querySelector('#transition-dialog').close()")
    browser.logout()


def test_a_firms_incident_fits_a_phone_and_speaks_chinese(browser: Browser, live: LiveServer, tmp_path: Path) -> None:
    """The source key made the page 430 px wide on a 375 px phone (the bottom bar and dialogs' buttons off the
    screen); the screening decision was raw JSON, photo warnings and a refused upload English."""
    fire = firms_fire(live)
    browser.use(PHONE_375)
    browser.login("beigang", PASSWORD)
    open_incident(browser, fire)
    assert FIRMS_KEY in browser.find(".observations").text
    # A mobile browser zooms a too-wide page out: the window grows with it (430 px), so the phone's own width counts.
    assert page_width(browser) == (PHONE_375.width, PHONE_375.width)
    nav = browser.find("#nav").rect
    assert nav["y"] + nav["height"] <= PHONE_375.height + 1  # the bottom bar is on the screen

    observations = browser.find(".observations").text
    assert "通过筛查" in observations
    assert "禁烧区" in observations
    assert '{"' not in observations

    far = upload(live, fire, "far.jpg", photo(44.60, 125.90))  # tens of km away
    upload(live, fire, "screen.png", _png())  # no GPS position
    assert far["flag_notes"][0]["code"] == "far_from_incident"  # type: ignore[index]
    browser.go("#/queue")
    open_incident(browser, fire)
    photos = browser.find("#photos").text
    assert "拍摄地点距火点" in photos
    assert "照片中没有 GPS 位置" in photos
    assert "taken" not in photos
    assert "no GPS" not in photos
    timeline = browser.find("#timeline").text
    assert "拍摄地点距火点" in timeline
    assert "taken" not in timeline

    not_a_photo = tmp_path / "scan.jpg"
    not_a_photo.write_bytes(b"this is not an image" * 10)
    browser.driver.find_element("css selector", "#evidence-input").send_keys(str(not_a_photo))
    status = browser.find("#upload-status")
    browser.wait(lambda d: "照片" in status.text and "上传失败" in status.text, "the refusal")
    assert "Error" not in status.text
    assert "readable" not in status.text

    to = browser.find("#actions button.primary").get_attribute("data-transition")
    browser.click(f'#actions button[data-transition="{to}"]')
    submit = browser.find("#t-submit").rect
    assert submit["x"] + submit["width"] <= PHONE_375.width
    assert page_width(browser) == (PHONE_375.width, PHONE_375.width)
    browser.screenshot("dashfix-firms-375", whole_page=False)
    browser.driver.execute_script("document.querySelector('#transition-dialog').close()")
    browser.logout()


def test_a_page_that_failed_to_load_comes_back(browser: Browser, live: LiveServer) -> None:
    """A first load that failed (no network) stayed an error box for ever, with the browser's "Failed to fetch":
    it now says why in the reader's language, offers to try again, and loads by itself once the server answers."""
    browser.use(PHONE_375)
    browser.login("sup", PASSWORD)
    fire = live.incidents["donghe"]
    offline(browser, True)
    try:
        browser.go(f"#/incident/{fire}")
        failed = browser.find("#load-failed .error")
        assert "网络不通" in failed.text
        assert "Failed to fetch" not in failed.text
        assert browser.find("#retry")
    finally:
        offline(browser, False)
    # Polled again on the page's interval (15 s): no tap needed.
    WebDriverWait(browser.driver, 40, poll_frequency=0.2).until(
        lambda d: d.find_elements("css selector", f'.incident-page[data-incident-id="{fire}"]')
    )
    offline(browser, True)
    try:
        browser.go("#/queue")
        browser.find("#load-failed #retry")
    finally:
        offline(browser, False)
    browser.click("#retry")
    browser.find("#queue-list")

    browser.go("#/cameras")  # admins' page: a supervisor is sent to the first page, not shown an error
    browser.wait(lambda d: d.current_url.endswith("#/map"), "the supervisor's first page")
    assert browser.absent("#main .error")
    browser.logout()
