"""The system status in a real headless Chromium: a supervisor sees "N 个问题" in the top bar when the alert worker
fails and an alert is overdue, and the status page lists the problems in Chinese with the server's error shown as
text (never markup); a failed reading says so without breaking the page; once fixed, the bar says 系统正常. Patrol
teams and evaluators, whom the API would refuse, have no indicator and never send the request."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from sqlalchemy import update

from service.alerts.tables import Alert, AlertKind, AlertStatus, Channel, Recipient, RecipientRole
from service.db import transaction, utcnow
from service.status.service import ALERT_WORKER, record_run
from tests.dashboard.browser import DESKTOP, NARROW, Browser
from tests.dashboard.live import PASSWORD, LiveServer

pytestmark = pytest.mark.slow

# A remote server's answer quoted in an error: it must reach the page as text.
EVIL_ERROR = 'RuntimeError: webhook answered <img src=x onerror="window.__pwned=1"> & <b>bold</b>'

# Every request for the status this document has made (Resource Timing lists 4xx answers too).
STATUS_REQUESTS = """
return performance.getEntriesByType("resource")
  .map((e) => e.name)
  .filter((name) => new URL(name).pathname === "/api/v1/status");
"""
# The status request fails as if the network were down; the other requests go through.
BREAK_STATUS = """
window.__realFetch = window.__realFetch || window.fetch;
window.fetch = (resource, init) =>
  new URL(resource, window.location.origin).pathname === "/api/v1/status"
    ? Promise.reject(new TypeError("Failed to fetch"))
    : window.__realFetch(resource, init);
"""
MEND_STATUS = "if (window.__realFetch) window.fetch = window.__realFetch;"


def status_requests(browser: Browser) -> list[str]:
    return browser.driver.execute_script(STATUS_REQUESTS)  # type: ignore[no-any-return]


def seed_problems(live: LiveServer) -> None:
    """The alert worker has failed twice and never succeeded, and an alert to 北岗镇 is half an hour overdue.
    Every township's fires are alerted (a county-wide duty group) and escalated (the county's supervisors): the
    seeded server has no recipients, which would be problems of their own (units nobody is alerted for)."""
    now = utcnow()
    with transaction(live.app.state.session_factory) as session:
        for minutes in (6, 3):
            record_run(session, ALERT_WORKER, at=now - timedelta(minutes=minutes), ok=False, error=EVIL_ERROR)
        for role in RecipientRole:
            session.add(
                Recipient(
                    name=f"演示县{role.value}",
                    unit_code="DEMO00",
                    role=role.value,
                    channel=Channel.WEBHOOK.value,
                    target="https://example.invalid/county",
                )
            )
        recipient = Recipient(
            name="北岗镇值班", unit_code="DEMO01", channel=Channel.WEBHOOK.value, target="https://example.invalid/hook"
        )
        session.add(recipient)
        session.flush()
        session.add(
            Alert(
                incident_id=live.incidents["beigang"],
                recipient_id=recipient.id,
                kind=AlertKind.NEW.value,
                idempotency_key="status-browser-test",
                next_attempt_at=now - timedelta(minutes=30),
            )
        )


def fix_problems(live: LiveServer) -> None:
    """The worker runs again and delivers the alert."""
    now = utcnow()
    with transaction(live.app.state.session_factory) as session:
        record_run(session, ALERT_WORKER, at=now, ok=True)
        session.execute(
            update(Alert)
            .where(Alert.idempotency_key == "status-browser-test")
            .values(status=AlertStatus.SENT.value, sent_at=now, attempts=1)
        )


def at_route(route: str) -> Callable[[WebDriver], bool]:
    def check(driver: WebDriver) -> bool:
        return str(driver.current_url).endswith(route)

    return check


def indicator_says(browser: Browser, state: str) -> str:
    css = f'#system-status[data-state="{state}"]'
    browser.wait(lambda d: d.find_elements("css selector", css), f"the indicator in state {state}")
    return browser.find(css).text


def test_patrol_teams_and_evaluators_never_ask_for_the_status(browser: Browser, live: LiveServer) -> None:
    browser.use(DESKTOP)
    for username, home in (("beigang", "#/queue"), ("eval", "#/map")):
        browser.login(username, PASSWORD)
        for route in ("#/queue", "#/map", "#/stats"):
            browser.go(route)
            browser.find("#main .page h1")
        browser.go("#/status")  # typed by hand: not theirs, so their first page instead of a 403
        browser.wait(at_route(home), f"{username} sent to {home}")
        browser.find("#main .page h1")
        time.sleep(1)  # anything the app was going to ask has been asked
        assert browser.absent("#system-status")
        assert browser.absent('#nav [data-nav="status"]')
        assert status_requests(browser) == []
        assert browser.console_errors() == []
        browser.logout()


def test_a_supervisor_sees_the_problems_in_the_bar_and_on_the_status_page(browser: Browser, live: LiveServer) -> None:
    seed_problems(live)
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    started = time.monotonic()
    assert indicator_says(browser, "degraded") == "2 个问题"
    assert browser.find("#system-status").get_attribute("data-problems") == "2"
    assert len(status_requests(browser)) == 1

    # Moving between pages does not ask again for a reading this fresh.
    for route in ("#/map", "#/stats", "#/queue"):
        browser.go(route)
        browser.find("#main .page h1")
        assert browser.find("#system-status").text == "2 个问题"
    if time.monotonic() - started < 15:
        assert len(status_requests(browser)) == 1

    browser.click("#system-status")
    browser.wait(at_route("#/status"), "the status page")
    assert browser.find("#main h1").text == "系统状态"
    assert browser.find("#system-status").get_attribute("aria-current") == "page"
    problems = browser.find("#status-problems")
    codes = [li.get_attribute("data-code") for li in problems.find_elements("css selector", "li")]
    assert codes == ["alerts_overdue", "component_failing"]
    overdue = browser.find('#status-problems li[data-code="alerts_overdue"] .problem-text').text
    assert overdue.startswith("1 条告警逾期未送达（最早应于 ")
    assert "请检查告警推送程序是否在运行" in overdue
    failing = browser.find('#status-problems li[data-code="component_failing"]')
    assert "告警推送程序从未成功运行（已尝试 2 次）" in failing.find_element("css selector", ".problem-text").text
    detail = failing.find_element("css selector", ".problem-detail").text  # the server's English, as text
    assert "the alert worker has never succeeded (2 attempt(s)); last error: RuntimeError" in detail
    assert '<img src=x onerror="window.__pwned=1"> & <b>bold</b>' in detail

    row = browser.find("#status-components tbody tr")
    assert "告警推送程序" in row.text
    assert "alerts.worker" in row.text
    badge = row.find_element("css selector", ".badge.comp")
    assert (badge.get_attribute("data-state"), badge.text) == ("failing", "失败")
    assert '<img src=x onerror="window.__pwned=1">' in row.find_element("css selector", ".comp-error").text
    assert browser.absent("#main img")  # the error's markup stayed text
    assert browser.absent("#main b")
    assert browser.driver.execute_script("return window.__pwned") is None
    assert "（北京时间）" in browser.find("#status-line").text

    assert browser.find('#status-alerts [data-overdue="1"]').text.startswith("1 （最早应于")
    kinds = [tr.text.split()[0] for tr in browser.all("#status-observations tbody tr")]
    assert kinds == ["摄像头", "无人机", "卫星"]  # the seeded observations, per kind
    assert "没有登记或上报过的摄像头预置位" in browser.find("#status-cameras").text  # none in this county
    assert browser.absent("#status-cameras-link")  # the cameras page is for admins
    browser.screenshot("status-problems")
    browser.use(NARROW)  # on a phone the bar shows the number; the words are there for screen readers
    assert browser.find("#system-status .sys-count").text == "2"
    assert browser.find("#system-status").get_attribute("textContent") == "22 个问题"
    width = browser.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= NARROW.width
    browser.screenshot("status-problems")
    browser.use(DESKTOP)

    # The status cannot be read: the page and the bar say so, and the last reading stays below.
    browser.driver.execute_script(BREAK_STATUS)
    try:
        browser.click("#status-refresh")
        error = browser.find("#status-error")
        assert "无法读取系统状态" in error.text
        assert "网络不通" in error.text
        assert indicator_says(browser, "unknown") == "状态未知"
        assert browser.find("#status-problems li").get_attribute("data-code") == "alerts_overdue"
        browser.go("#/queue")  # other pages are not disturbed
        browser.find("#queue-list .row")
        browser.go("#/status")
        browser.find("#status-error")
    finally:
        browser.driver.execute_script(MEND_STATUS)

    fix_problems(live)
    browser.click("#status-refresh")
    assert indicator_says(browser, "ok") == "系统正常"
    assert browser.find("#status-no-problems").text == "没有发现需要处理的问题。"
    assert browser.absent("#status-error")
    badge = browser.find("#status-components tbody tr .badge.comp")
    assert (badge.get_attribute("data-state"), badge.text) == ("ok", "正常")

    Select(browser.find("#lang")).select_by_value("en")
    assert indicator_says(browser, "ok") == "System OK"
    assert browser.find("#main h1").text == "System status"
    Select(browser.find("#lang")).select_by_value("zh-CN")
    assert indicator_says(browser, "ok") == "系统正常"
    assert browser.console_errors() == []
    browser.logout()
    assert browser.absent("#system-status")


def test_an_admin_goes_from_the_camera_counts_to_the_cameras_page(browser: Browser, live: LiveServer) -> None:
    browser.use(DESKTOP)
    browser.login("admin", PASSWORD)
    browser.find("#system-status")
    browser.go("#/status")
    browser.click("#status-cameras-link")
    browser.wait(at_route("#/cameras"), "the cameras page")
    assert browser.find("#main h1").text == "摄像头与屏蔽区"
    assert browser.console_errors() == []
    browser.logout()
