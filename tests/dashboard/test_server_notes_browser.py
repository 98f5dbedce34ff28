"""What the service writes on an incident's record reads in the user's language in a real headless Chromium, from
the codes the events now carry: the escalation's deadline, what it counted from and whom it alerted, a unit with no
alert recipients, the alert delivered and the one withdrawn; the server's English sentence is then only the hover
title. An event written before those codes keeps its sentence shown, marked English.

The entries are written by the real alert worker's steps (deliver_due to a 127.0.0.1 webhook stand-in, then the
escalation pass). One module-scoped server and browser of its own.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.alerts.channels import ChannelSender
from service.alerts.escalation import escalate_due
from service.alerts.outbox import deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Channel, RecipientRole
from service.auth.service import SYSTEM
from service.db import transaction, utcnow
from service.flows import reassign_incident
from service.incidents.service import transition
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from tests.dashboard.browser import DESKTOP, Browser, open_incident
from tests.dashboard.live import PASSWORD, SUPERVISOR, LiveServer, new_fire
from tests.dashboard.test_audit_recheck import english
from tests.httpserver import http_receiver

pytestmark = pytest.mark.slow


def _entry(browser: Browser, css: str) -> tuple[str, str, int]:
    """An entry's words, their hover title, and how many server sentences it shows."""
    entry = browser.find(f"#timeline li{css}")
    summary = entry.find_element("css selector", ".event-summary")
    shown = entry.find_elements("css selector", ".server-note")
    return summary.text, summary.get_attribute("title") or "", len(shown)


def test_the_services_entries_read_in_chinese_and_english(browser: Browser, live: LiveServer) -> None:
    factory = live.app.state.session_factory
    with http_receiver() as receiver:
        with transaction(factory) as session:
            town = create_recipient(
                session, name="北岗镇群", unit_code="DEMO01", channel=Channel.WEBHOOK, target=receiver.url + "/town"
            ).id
            county = RecipientRole.COUNTY
            create_recipient(
                session, name="县督导", unit_code="DEMO00", channel=Channel.WEBHOOK, target=receiver.url, role=county
            )
        unanswered = new_fire(live, "notes-unanswered", 125.53, 44.38, township="DEMO01")  # 北岗镇: told, never answers
        # 北岗镇's too, moved to 南屯镇 (no recipient) before its alert
        moved = new_fire(live, "notes-moved", 125.62, 44.30, township="DEMO01")
        with transaction(factory) as session:
            incident = session.get_one(Incident, moved)
            reassign_incident(session, incident, SUPERVISOR, township_code="DEMO03", county_code=None, note="属南屯镇")
            # Escalated the way the service wrote it before its events carried codes: the sentence alone.
            old = session.get_one(Incident, live.incidents["donghe"])
            transition(session, old, IncidentState.ESCALATED, SYSTEM, note="not acknowledged within 0:30:00")
        deliver_due(factory, ChannelSender(), base_url="http://x")
        with transaction(factory) as session:
            escalate_due(session, utcnow() + timedelta(minutes=31))
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)

    open_incident(browser, unanswered, "escalated")
    text, title, shown = _entry(browser, '[data-to="escalated"]')
    assert text == "推送后 30 分钟内未签收，已自动升级。已通知 演示县 (DEMO) (DEMO00) 的督导。", text
    assert (title, shown) == ("not acknowledged within 0:30:00", 0)
    text, title, shown = _entry(browser, '[data-kind="alert"]')
    assert (text, title, shown) == (f"新火点告警已送达接收人 #{town}。", f"new alert delivered to recipient {town}", 0)

    open_incident(browser, moved, "escalated")
    text, title, shown = _entry(browser, '[data-to="escalated"]')
    assert text == (
        "南屯镇 (DEMO) (DEMO03) 未配置告警接收人，乡镇不知道此火点：已自动升级，请电话通知乡镇，并为其添加接收人。"
        "已通知 演示县 (DEMO) (DEMO00) 的督导。"
    ), text
    assert title.startswith("the township could not be reached: the new-fire alert to DEMO03 could not be queued")
    assert shown == 0
    text, _, shown = _entry(browser, '[data-kind="alert_withdrawn"]')
    assert (text, shown) == (f"发给接收人 #{town} 的新火点告警已撤回，未发送：发送前火点已改派到其他单位。", 0)

    open_incident(browser, live.incidents["donghe"], "escalated")
    text, title, shown = _entry(browser, '[data-to="escalated"]')
    assert (text, title, shown) == ("超过处置时限，已自动升级并通知县级。", "", 1)  # the old sentence stays shown
    note = browser.find('#timeline li[data-to="escalated"] .server-note')
    assert (note.text, note.get_attribute("lang")) == ("not acknowledged within 0:30:00", "en")
    browser.screenshot("server-notes-zh")

    with english(browser):
        open_incident(browser, unanswered, "escalated")
        text, _, _ = _entry(browser, '[data-to="escalated"]')
        assert text == (
            "Not acknowledged within 30 min of the alert: escalated automatically. "
            "The supervisors of 演示县 (DEMO) (DEMO00) were alerted."
        ), text
        open_incident(browser, moved, "escalated")
        text, _, _ = _entry(browser, '[data-to="escalated"]')
        assert text.startswith(
            "No alert recipients are configured for 南屯镇 (DEMO) (DEMO03), so the township does not"
        ), text
        text, _, _ = _entry(browser, '[data-kind="alert_withdrawn"]')
        assert text == (
            f"The new-fire alert to recipient #{town} was withdrawn, not sent: the fire was moved to another unit "
            "before it went out."
        ), text
        browser.screenshot("server-notes-en")
    assert browser.console_errors() == []
    browser.logout()
