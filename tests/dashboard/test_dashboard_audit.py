"""An audit of the dashboard in a real headless Chromium against the real service: hostile API text, failures the
user must see (an oversized photo, no network, an expired session) without losing what was typed, times in
Beijing time and labelled as such, a 360 px phone screen, and lists longer than one page of the API.

One module-scoped server and browser of its own (the last test adds a thousand closed incidents to it).
"""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from selenium.webdriver.remote.webelement import WebElement
from sqlalchemy import update

from service.db import transaction, utcnow
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from service.regions.tables import Region
from tests.dashboard.browser import DESKTOP, NARROW, PHONE, Browser, open_incident
from tests.dashboard.live import PASSWORD, LiveServer

pytestmark = pytest.mark.slow

XSS = "<img src=x onerror=\"document.body.dataset.pwned='1'\">"


def pwned(browser: Browser) -> bool:
    return bool(browser.driver.execute_script("return document.body.dataset.pwned === '1'"))


def offline(browser: Browser, on: bool) -> None:
    browser.driver.execute_cdp_cmd("Network.enable", {})
    browser.driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": on, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


def count_posts(browser: Browser) -> None:
    """Record every POST the page makes from now on (in window.__posts)."""
    browser.driver.execute_script(
        """
        window.__posts = [];
        if (!window.__realFetch) window.__realFetch = window.fetch;
        window.fetch = (url, init) => {
          if (init && init.method === 'POST') window.__posts.push(String(url));
          return window.__realFetch(url, init);
        };
        """
    )


def expire_token(browser: Browser) -> None:
    """Make the tab's token one the server refuses (401), as when it runs out."""
    browser.driver.execute_script(
        "const s = JSON.parse(sessionStorage.getItem('strawfire.session'));"
        "s.token = 'expired'; sessionStorage.setItem('strawfire.session', JSON.stringify(s));"
    )


def send_after_the_session_expired(browser: Browser, fire: int, state: str, to: str, note: str) -> WebElement:
    """As 南屯镇's patrol on a phone: open the fire (in `state`), start the move `to` with `note`, lose the session
    (expire_token) and tap submit. Returns the sign-in form's message."""
    browser.use(PHONE)
    browser.login("nantun", PASSWORD)
    open_incident(browser, fire, state)
    browser.click(f'#actions button[data-transition="{to}"]')
    browser.type("#t-note", note)
    expire_token(browser)
    browser.click("#t-submit")
    return browser.find("#login-error")


def test_api_text_is_shown_as_text_never_markup(browser: Browser, live: LiveServer) -> None:
    """Unit names, feedback, notes and photo file names with markup in them stay text."""
    fire = live.incidents["xipo"]
    with transaction(live.app.state.session_factory) as session:
        session.execute(update(Region).where(Region.code == "DEMO04").values(name=f"西坡乡{XSS}"))
        session.execute(update(Incident).where(Incident.id == fire).values(township_name=f"西坡乡{XSS}"))
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    open_incident(browser, fire)
    # A reassignment note with markup, through the API, as a supervisor would type it.
    token = browser.driver.execute_script("return JSON.parse(sessionStorage.getItem('strawfire.session')).token")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{live.url}/api/v1/incidents/{fire}"
    response = httpx.post(f"{url}/assignment", json={"township_code": "DEMO04", "note": XSS}, headers=headers)
    assert response.status_code == 200, response.text
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 90, 30)).save(buffer, format="JPEG")
    response = httpx.post(
        f"{url}/evidence", files={"file": (f"{XSS}.jpg", buffer.getvalue(), "image/jpeg")}, headers=headers
    )
    assert response.status_code == 201, response.text
    browser.go("#/map")
    browser.find(".map")
    open_incident(browser, fire)
    browser.wait(lambda d: XSS in browser.find("#timeline").text, "the note shown as text")
    assert XSS in browser.find(".page-head .place").text
    assert not browser.all("#main img[src='x']")
    thumb = browser.find(".photo img.thumb")
    # The file name is the alt text: the service lists it cleaned (no markup characters survive the upload).
    alt = thumb.get_attribute("alt") or ""
    assert "onerror" in alt, alt
    assert "<" not in alt, alt
    browser.go("#/queue?state=all")
    browser.find(f'#queue-list .row[data-incident-id="{fire}"]')
    browser.go("#/map")
    browser.find(f'.map .marker[data-incident-id="{fire}"]')
    assert not pwned(browser)
    browser.logout()


def test_an_oversized_photo_is_refused_before_a_long_upload(browser: Browser, live: LiveServer, tmp_path: Path) -> None:
    fire = live.incidents["beigang"]
    limit_mb = live.app.state.settings.evidence.max_upload_mb
    big = tmp_path / "huge.jpg"
    with big.open("wb") as out:
        out.write(b"\xff\xd8\xff\xe0")
        out.write(os.urandom(int((limit_mb + 1) * (1 << 20))))
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    open_incident(browser, fire)
    count_posts(browser)
    browser.driver.find_element("css selector", "#evidence-input").send_keys(str(big))
    status = browser.find("#upload-status")
    browser.wait(lambda d: status.text.strip(), "a message")
    assert f"{limit_mb:g} MB" in status.text
    assert "上传" in status.text
    assert browser.driver.execute_script("return window.__posts") == []
    browser.screenshot("photo-too-large")
    browser.logout()


def test_a_move_without_network_says_it_was_not_sent_and_keeps_the_form(browser: Browser, live: LiveServer) -> None:
    fire = live.incidents["beigang"]
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    open_incident(browser, fire)
    browser.click('#actions button[data-transition="acknowledged"]')
    browser.type("#t-note", "已看到，马上出发")
    offline(browser, True)
    try:
        browser.click("#t-submit")
        error = browser.find("#transition-dialog[open] .error")
        # In the user's language: it did not go through, and why (no connection), not a browser's "Failed to fetch".
        assert "未提交" in error.text
        assert "网络" in error.text
        assert "Failed to fetch" not in error.text
        assert browser.find("#t-note").get_attribute("value") == "已看到，马上出发"
        browser.screenshot("move-offline", whole_page=False)
    finally:
        offline(browser, False)
    # Pressing again once the network is back sends it.
    browser.click("#t-submit")
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-state="acknowledged"]')
    browser.logout()


def test_two_taps_on_a_slow_network_send_one_move(browser: Browser, live: LiveServer) -> None:
    fire = live.incidents["beigang"]  # acknowledged by the test above
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    open_incident(browser, fire)
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-state="acknowledged"]')
    browser.click('#actions button[data-transition="en_route"]')
    count_posts(browser)
    browser.driver.execute_cdp_cmd("Network.enable", {})
    browser.driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 1500, "downloadThroughput": 20_000, "uploadThroughput": 20_000},
    )
    try:
        browser.driver.execute_script(
            "const b = document.getElementById('t-submit'); b.click(); b.click(); setTimeout(() => b.click(), 300);"
        )
        browser.find(f'.incident-page[data-incident-id="{fire}"][data-state="en_route"]')
    finally:
        offline(browser, False)
    posts = browser.driver.execute_script("return window.__posts")
    assert [p for p in posts if p.endswith("/transitions")] == [f"{live.url}/api/v1/incidents/{fire}/transitions"]
    browser.logout()


def test_an_expired_session_keeps_the_report_and_says_it_was_not_sent(browser: Browser, live: LiveServer) -> None:
    fire = live.incidents["nantun"]  # 南屯镇's fire, still suspected
    # The token runs out while the team is in the field (the server now answers 401).
    message = send_after_the_session_expired(browser, fire, "suspected", "acknowledged", "两人一车，十分钟到")
    assert "未提交" in message.text
    assert "重新登录" in message.text
    browser.screenshot("session-expired")
    # Signing in again brings the user back to the form, filled in as it was; nothing was sent meanwhile.
    browser.type("#username", "nantun")
    browser.type("#password", PASSWORD)
    browser.click("#login-submit")
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-state="suspected"]')
    browser.find("#transition-dialog[open]")
    assert browser.find("#t-note").get_attribute("value") == "两人一车，十分钟到"
    assert browser.find("#t-submit").text == "签收"
    browser.click("#t-submit")
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-state="acknowledged"]')
    assert "两人一车，十分钟到" in browser.find("#timeline").text
    browser.logout()
    assert browser.driver.execute_script("return sessionStorage.getItem('strawfire.draft')") is None


def test_another_user_signing_in_after_an_expired_session_does_not_inherit_the_draft(
    browser: Browser, live: LiveServer
) -> None:
    """A shared township PC: the token runs out under one user's half-sent report and someone else signs in. The
    draft was only withheld from them: it stayed in the tab's storage (readable there, and handed back to its
    author on the next sign-in, hours later, over whatever the incident had become)."""
    fire = live.incidents["nantun"]  # acknowledged by the test above
    send_after_the_session_expired(browser, fire, "acknowledged", "en_route", "村东头，东风车")
    assert browser.driver.execute_script("return sessionStorage.getItem('strawfire.draft')") is not None
    browser.type("#username", "beigang")
    browser.type("#password", PASSWORD)
    browser.click("#login-submit")
    browser.wait(lambda d: d.execute_script("return document.body.classList.contains('signed-in')"), "sign-in")
    browser.find("#main .page h1")
    assert browser.driver.execute_script("return sessionStorage.getItem('strawfire.draft')") is None
    browser.logout()


def test_times_are_beijing_time_and_say_so_whatever_the_device_zone(browser: Browser, live: LiveServer) -> None:
    fire = live.incidents["donghe"]
    browser.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Europe/London"})
    try:
        browser.use(DESKTOP)
        browser.login("sup", PASSWORD)
        open_incident(browser, fire)
        with live.app.state.session_factory() as session:
            notified = session.get_one(Incident, fire).notified_at
        assert notified is not None
        beijing = (notified + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
        assert beijing in browser.find(".steps").text
        assert "北京时间" in browser.find(".incident-page").text
        browser.go("#/queue")
        browser.find("#queue-list .row")
        assert "北京时间" in browser.find("#queue-status").text
        browser.go("#/map")
        browser.find(".map .marker")
        assert "北京时间" in browser.find("#map-status").text
        browser.logout()
    finally:
        browser.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})


@pytest.mark.parametrize("role", ["beigang", "sup"])
def test_every_page_fits_a_360px_phone(browser: Browser, live: LiveServer, role: str) -> None:
    browser.use(NARROW)
    browser.login(role, PASSWORD)
    routes = ["#/queue", "#/map", f"#/incident/{live.incidents['beigang']}", "#/stats", "#/scores"]
    wide = {}
    for route in routes:
        browser.go(route)
        browser.find("#main .page h1")
        browser.wait(lambda d: not browser.all("#main .loading"), "the page")
        width = browser.driver.execute_script("return document.documentElement.scrollWidth")
        if width > NARROW.width:
            wide[route] = width
            browser.screenshot(f"too-wide-{route.strip('#/').replace('/', '-')}")
    assert wide == {}
    browser.logout()


def test_lists_longer_than_one_api_page_are_not_cut_silently(browser: Browser, live: LiveServer) -> None:
    """A season of closed fires newer than a still-open one: the open one stays on the map."""
    late = live.incidents["donghe"]
    now = utcnow()
    with transaction(live.app.state.session_factory) as session:
        session.add_all(
            Incident(
                state=IncidentState.CLOSED.value,
                latitude=44.3 + i * 1e-4,
                longitude=125.65,
                location_kind="satellite",
                confidence=0.5,
                township_code="DEMO02",
                township_name="东河乡",
                county_code="DEMO00",
                county_name="演示县",
                assignment_status="inside",
                assignment_certainty=1.0,
                first_observed_at=now + timedelta(minutes=1),
                last_observed_at=now + timedelta(minutes=1),
                closed_at=now + timedelta(minutes=2),
            )
            for i in range(1000)
        )
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.go("#/map")
    browser.find("#map-status")
    browser.find(f'.map .marker[data-incident-id="{late}"]')
    # Every incident, newest first: more than one page of the API; the page says when it shows only some.
    browser.go("#/queue?state=all")
    status = browser.find("#queue-status")
    browser.wait(lambda d: status.text.strip(), "the count")
    rows = len(browser.all("#queue-list .row"))
    with live.app.state.session_factory() as session:
        total = session.query(Incident).count()
    assert rows == total  # five pages of the API are read before the page says it shows only the newest
    browser.logout()
