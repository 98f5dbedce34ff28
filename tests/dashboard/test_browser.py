"""The dashboard in a real headless Chromium against the real service (issue #7, item 5).

One module-scoped server and browser; the tests run in order and share the incidents: a patrol team walks its
fire from acknowledged to feedback on a phone, a supervisor verifies and closes it on a desktop, a patrol team
cannot see another township's fire, a supervisor reads the statistics and scores, and a supervisor hands a fire to
another township (which a patrol team cannot do). Screenshots of every step are written to
var/test-artifacts/dashboard/.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.support.ui import Select

from tests.dashboard.browser import DESKTOP, PHONE, Browser
from tests.dashboard.live import PASSWORD, LiveServer

pytestmark = pytest.mark.slow


def allowed(browser: Browser) -> set[str]:
    """The transitions the incident page offers (one button each)."""
    return {b.get_attribute("data-transition") or "" for b in browser.all("#actions button[data-transition]")}


def move(browser: Browser, to: str, fill: dict[str, str] | None = None) -> None:
    """Press a transition button, fill the form it opens, submit, and wait for the new state."""
    browser.click(f'#actions button[data-transition="{to}"]')
    browser.find("#transition-dialog[open]")
    for css, value in (fill or {}).items():
        browser.type(css, value)
    browser.click("#t-submit")
    browser.find(f'.incident-page[data-state="{to}"]')
    assert not browser.all("#transition-dialog[open]")


def photo(tmp_path: Path) -> Path:
    """A small JPEG standing in for a phone camera picture."""
    image = Image.new("RGB", (640, 480), (120, 150, 90))
    draw = ImageDraw.Draw(image)
    draw.rectangle((250, 200, 400, 330), fill=(40, 40, 40))
    draw.ellipse((280, 120, 370, 230), fill=(240, 120, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    path = tmp_path / "site.jpg"
    path.write_bytes(buffer.getvalue())
    return path


def test_patrol_walks_its_fire_to_feedback_and_a_supervisor_closes_it(
    browser: Browser, live: LiveServer, tmp_path: Path
) -> None:
    mine, other = live.incidents["beigang"], live.incidents["nantun"]

    # A patrol team on a phone: the login page comes first, in Chinese.
    browser.use(PHONE)
    browser.go("#/")
    assert browser.find("#login-submit").text == "登录"
    browser.screenshot("login")
    browser.login("beigang", PASSWORD)

    # Its queue: its own township's fire, not 南屯镇's.
    browser.find(f'#queue-list .row[data-incident-id="{mine}"]')
    assert browser.absent(f'#queue-list .row[data-incident-id="{other}"]')
    browser.screenshot("patrol-queue")

    browser.click(f'#queue-list .row[data-incident-id="{mine}"]')
    browser.find(f'.incident-page[data-incident-id="{mine}"][data-state="suspected"]')
    assert allowed(browser) == {"acknowledged"}  # exactly what the server allows a patrol from "suspected"
    # API text is shown as text: the camera name with a <script> tag is displayed, never run.
    assert "塔07 <script>alert(1)</script>" in browser.find(".observations").text
    with pytest.raises(NoAlertPresentException):
        _ = browser.driver.switch_to.alert.text
    browser.screenshot("incident-suspected")

    move(browser, "acknowledged")
    assert allowed(browser) == {"en_route", "on_site", "false_alarm"}
    browser.screenshot("acknowledged")
    # A false alarm needs one of the server's reasons; the form offers exactly those and cannot go without one.
    browser.click('#actions button[data-transition="false_alarm"]')
    reasons = [o.get_attribute("value") for o in browser.all("#t-reason option")]
    assert reasons == [
        "",
        "industrial_heat",
        "non_straw_fire",
        "permitted_burn",
        "duplicate",
        "not_found",
        "out_of_area",
    ]
    browser.click("#t-submit")
    assert browser.driver.execute_script("return document.getElementById('t-reason').validity.valueMissing")
    browser.screenshot("false-alarm-form", whole_page=False)
    browser.click('#transition-dialog button[type="button"]')  # cancel
    assert browser.find('.incident-page[data-state="acknowledged"]')
    move(browser, "en_route")
    move(browser, "on_site")

    # A photo from the phone camera; its thumbnail is fetched with the token and shown from a blob: URL.
    camera = browser.driver.find_element("css selector", "#evidence-input")
    assert (camera.get_attribute("accept"), camera.get_attribute("capture")) == ("image/*", "environment")
    camera.send_keys(str(photo(tmp_path)))
    thumb = browser.find(".photo img.thumb")
    browser.wait(lambda d: d.execute_script("return arguments[0].naturalWidth", thumb) == 640, "the thumbnail")
    assert (thumb.get_attribute("src") or "").startswith("blob:")
    sha256 = browser.find(".photo").get_attribute("data-sha256") or ""
    assert len(sha256) == 64
    browser.screenshot("photo-uploaded")

    # Extinguished, citing the photo (pre-selected because it was just taken).
    browser.click('#actions button[data-transition="extinguished"]')
    assert browser.find("#t-evidence").get_attribute("value") == sha256
    browser.screenshot("extinguished-form", whole_page=False)
    browser.click("#t-submit")
    browser.find('.incident-page[data-state="extinguished"]')

    browser.click('#actions button[data-transition="feedback"]')
    browser.type("#t-cause", "秸秆焚烧")
    browser.type("#t-area", "1500")
    browser.type("#t-party", "村民王某")
    browser.screenshot("feedback-form", whole_page=False)
    browser.click("#t-submit")
    browser.find('.incident-page[data-state="feedback"]')
    # Verifying and closing are the supervisor's: the patrol has nothing left to press.
    assert allowed(browser) == set()
    browser.find("#no-actions")
    assert "村民王某" in browser.find("#timeline").text
    assert sha256[:12] in browser.find('#timeline li[data-to="extinguished"]').text
    browser.screenshot("feedback-sent")
    browser.logout()

    # The county supervisor on a desktop: the map shows the county's fires; a marker opens the incident.
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.find(f'.map .marker[data-incident-id="{other}"]')
    browser.find(f'.map .marker[data-incident-id="{mine}"]')
    # The fire notified 40 minutes ago and never acknowledged is late: pulsing ring and a highlighted row.
    late = live.incidents["donghe"]
    assert browser.all(f'.map .marker.late[data-incident-id="{late}"]')
    browser.screenshot("supervisor-map")
    browser.click('#nav a[data-nav="queue"]')
    browser.wait(lambda d: browser.all("#queue-list .row"), "the queue")
    rows = browser.all("#queue-list .row")
    assert rows[0].get_attribute("data-incident-id") == str(late)
    assert "is-late" in (rows[0].get_attribute("class") or "")
    browser.screenshot("supervisor-queue")

    browser.click('#nav a[data-nav="map"]')
    browser.find(f'.map .marker[data-incident-id="{mine}"]').click()
    browser.find(f'.incident-page[data-incident-id="{mine}"][data-state="feedback"]')
    assert allowed(browser) == {"verified", "reopened"}
    assert len(browser.all(".photo img.thumb")) == 1
    move(browser, "verified", {"#t-note": "现场核查属实"})
    assert allowed(browser) == {"closed", "reopened"}
    move(browser, "closed")
    assert allowed(browser) == {"reopened"}
    steps = [li.get_attribute("data-to") for li in browser.all('#timeline li[data-kind="transition"]')]
    assert steps == ["closed", "verified", "feedback", "extinguished", "on_site", "en_route", "acknowledged"]
    browser.screenshot("supervisor-closed")
    assert browser.console_errors() == []
    browser.logout()


def test_a_patrol_does_not_see_another_townships_fire(browser: Browser, live: LiveServer) -> None:
    other = live.incidents["nantun"]
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    browser.click('#nav a[data-nav="map"]')
    browser.find("#map-status")
    assert browser.absent(f'.map .marker[data-incident-id="{other}"]')
    browser.screenshot("patrol-map")
    # Typing the other incident's address shows "not found or not yours" — the API's 404, by design.
    browser.go(f"#/incident/{other}")
    assert browser.find('.error[data-status="404"]').is_displayed()
    assert browser.absent("#actions")
    browser.screenshot("patrol-other-township-404")
    # The browser logs the refused request itself; nothing else may have gone wrong.
    assert browser.console_errors(ignore=(f"/api/v1/incidents/{other}",)) == []
    browser.logout()


def test_a_supervisor_reads_statistics_and_scores(browser: Browser, live: LiveServer) -> None:
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.click('#nav a[data-nav="stats"]')
    browser.find("#chart-response svg.chart")
    browser.find("#chart-outcomes svg.chart rect")
    # A fortnight of handled fires plus today's four and the one closed above (last 30 days, the default).
    assert browser.find("#tile-fire-points .tile-value").text == "12"
    assert len(browser.all("#chart-response .range-p50:not(.legend-mark)")) == 4  # one per township
    browser.screenshot("statistics")
    browser.click('#nav a[data-nav="scores"]')
    browser.find("#chart-scores svg.chart")
    assert len(browser.all("#table-scores tbody tr")) == 4
    browser.screenshot("scores")

    # English is one switch away, and comes back.
    browser.click('#nav a[data-nav="stats"]')
    browser.find("#chart-response svg.chart")
    browser.driver.execute_script(
        "const s = document.getElementById('lang'); s.value = 'en'; s.dispatchEvent(new Event('change'));"
    )
    browser.wait(lambda d: browser.find("#main h1").text == "Statistics", "the English page")
    assert browser.find('#nav a[data-nav="map"]').text == "Map"
    browser.find("#chart-response svg.chart")
    browser.screenshot("statistics-en")

    browser.use(PHONE)
    browser.go("#/stats")
    browser.find("#chart-outcomes svg.chart rect")
    browser.screenshot("statistics-en")
    browser.driver.execute_script(
        "const s = document.getElementById('lang'); s.value = 'zh-CN'; s.dispatchEvent(new Event('change'));"
    )
    browser.wait(lambda d: browser.find("#main h1").text == "统计分析", "the Chinese page")
    assert browser.console_errors() == []
    browser.logout()


def test_a_supervisor_reassigns_a_fire_and_a_patrol_cannot(browser: Browser, live: LiveServer) -> None:
    fire = live.incidents["nantun"]  # 南屯镇's fire, still suspected (the tests above only looked at it)
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.go(f"#/incident/{fire}")
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-township="DEMO03"]')
    # The current assignment, how sure it is, and the ranked candidates the footprint overlaps.
    assignment = browser.find("#assignment")
    assert "南屯镇" in assignment.text
    assert "辖区内" in assignment.text
    assert browser.all('#candidates li.current[data-code="DEMO03"][data-level="township"]')

    # The form offers the candidates first, then the county's other townships.
    browser.click("#reassign-open")
    browser.find("#transition-dialog[open] #reassign-form")
    townships = [o.get_attribute("value") for o in browser.all("#r-township option")]
    assert townships[:2] == ["", "DEMO03"]
    assert sorted(townships[1:]) == ["DEMO01", "DEMO02", "DEMO03", "DEMO04"]
    Select(browser.find("#r-township")).select_by_value("DEMO01")
    # A reassignment needs a reason: a blank note is refused inline, nothing is sent.
    browser.type("#r-note", "   ")
    browser.click("#r-submit")
    assert browser.find("#r-error").text == "请填写改派原因。"
    assert browser.all("#transition-dialog[open]")
    browser.screenshot("reassign-form", whole_page=False)
    browser.type("#r-note", "火点在两镇交界，北岗镇巡查队距离更近")
    assert browser.absent("#r-error:not([hidden])")  # editing the form clears the complaint
    browser.click("#r-submit")

    # The page reloads with the new township, a manual assignment, and the audit entry in the record.
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-township="DEMO01"]')
    assert not browser.all("#transition-dialog[open]")
    assert "北岗镇" in browser.find(".page-head .place").text
    assignment = browser.find("#assignment").text
    assert "北岗镇" in assignment
    assert "人工指派" in assignment
    assert "100%" in assignment
    event = browser.find('#timeline li[data-kind="reassigned"]')
    assert "改派" in event.text
    assert "DEMO03 → DEMO01" in event.text
    assert "北岗镇巡查队距离更近" in event.text
    browser.screenshot("supervisor-reassigned")
    assert browser.console_errors() == []
    browser.logout()

    # The 北岗镇 team now has the fire in its queue and may act on it, but may not hand it on.
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    browser.click(f'#queue-list .row[data-incident-id="{fire}"]')
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-township="DEMO01"]')
    assert allowed(browser) == {"acknowledged"}
    assert browser.absent("#assignment")
    assert browser.absent("#reassign-open")
    browser.screenshot("patrol-reassigned-fire")
    assert browser.console_errors() == []
    browser.logout()
