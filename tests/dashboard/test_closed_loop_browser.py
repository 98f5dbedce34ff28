"""The closed loop's timing as the county sees it in a real headless Chromium: a fire moved to another township is
not late there for the time lost at the first one, and an escalation because the township could not be reached
says so on the incident's record, in Chinese and in English.

One module-scoped server and browser of its own; the fires here are this module's own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.alerts.outbox import TownshipAlerts, escalate_as_unreachable
from service.auth.service import SYSTEM
from service.db import transaction
from service.flows import reassign_incident
from service.incidents.service import transition
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from tests.dashboard.browser import DESKTOP, Browser, open_incident
from tests.dashboard.live import PASSWORD, SUPERVISOR, LiveServer, new_fire
from tests.dashboard.test_audit_recheck import english

pytestmark = pytest.mark.slow


def test_a_fire_moved_to_another_township_is_not_late_there_at_once(browser: Browser, live: LiveServer) -> None:
    """北岗镇 was alerted 28 minutes ago; the supervisor moves the fire to 南屯镇 now. The queue and the incident page
    marked it 28 minutes late (counted from 北岗镇's alert) though 南屯镇 has its full 15 minutes from the move."""
    number = new_fire(live, "moved-fire", 125.64, 44.385, township="DEMO01")
    with transaction(live.app.state.session_factory) as session:
        incident = session.get_one(Incident, number)
        transition(session, incident, IncidentState.NOTIFIED, SYSTEM, at=datetime.now(UTC) - timedelta(minutes=28))
        reassign_incident(session, incident, SUPERVISOR, township_code="DEMO03", county_code=None, note="属南屯镇")
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.go("#/queue")
    moved = browser.find(f'#queue-list .row[data-incident-id="{number}"]')
    late = browser.find(f'#queue-list .row[data-incident-id="{live.incidents["donghe"]}"]')
    assert "is-late" not in (moved.get_attribute("class") or ""), moved.get_attribute("outerHTML")
    assert not moved.find_elements("css selector", ".badge.late")
    assert "is-late" in (late.get_attribute("class") or "")  # 东河乡's fire, notified 40 minutes ago, still is
    open_incident(browser, number, "notified")
    assert browser.absent(".incident-page .badge.late")
    browser.logout()
    # 南屯镇's own team sees its new fire on time as well.
    browser.login("nantun", PASSWORD)
    browser.go("#/queue")
    row = browser.find(f'#queue-list .row[data-incident-id="{number}"]')
    assert "is-late" not in (row.get_attribute("class") or "")
    browser.logout()


def test_the_record_says_the_township_could_not_be_reached(browser: Browser, live: LiveServer) -> None:
    """The escalation's entry read "a deadline passed" for a township whose alert never reached it: the
    supervisor has to phone the township, not chase a team that never heard of the fire."""
    number = new_fire(live, "unreached-fire", 125.51, 44.29, township="DEMO01")
    unreached = TownshipAlerts(
        unit="DEMO01",
        delivered=False,
        trying=True,
        attempted=True,
        recipients=[1],
        error="http://127.0.0.1:9/…: ConnectError",
        first_queued=None,
    )
    with transaction(live.app.state.session_factory) as session:
        incident = session.get_one(Incident, number)
        escalate_as_unreachable(session, incident, unreached, "not delivered within 0:30:00", datetime.now(UTC))
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    open_incident(browser, number, "escalated")
    summary = browser.find('#timeline li[data-to="escalated"] .event-summary').text
    assert summary.startswith("乡镇告警无法送达"), summary
    assert "北岗镇" in summary
    assert "超过处置时限" not in summary
    with english(browser):
        open_incident(browser, number, "escalated")
        summary = browser.find('#timeline li[data-to="escalated"] .event-summary').text
        assert summary.startswith("The township could not be reached"), summary
        assert "phone the township" in summary
    browser.screenshot("escalated-unreachable")
    browser.logout()


@pytest.mark.parametrize(
    ("unit", "zh", "en"),
    [
        ("DEMO00", ("区县告警无法送达", "请电话通知区县"), ("The county could not be reached", "phone the county")),
        (
            "X-GONE",
            ("责任单位告警无法送达", "请电话通知责任单位"),
            ("The responsible unit could not be reached", "phone the responsible unit"),
        ),
    ],
    ids=["county", "unit-not-loaded"],
)
def test_an_unreached_county_level_unit_is_not_called_a_township(
    browser: Browser, live: LiveServer, unit: str, zh: tuple[str, str], en: tuple[str, str]
) -> None:
    """Counties loaded without townships: a fire with no township is its county's (a district's) to act on, and its
    unreached alert read "乡镇告警无法送达 … 请电话通知乡镇". The entry words the unit by its level (区县), or neutrally
    (责任单位) for a unit the dashboard does not know the level of."""
    lon = 125.53 if unit == "DEMO00" else 125.57  # apart: two fires, not one
    number = new_fire(live, f"unreached-{unit}", lon, 44.31, township="DEMO01")
    unreached = TownshipAlerts(unit, False, True, True, [1], "http://127.0.0.1:9/…: ConnectError", None)
    with transaction(live.app.state.session_factory) as session:
        incident = session.get_one(Incident, number)
        incident.township_code, incident.township_name = None, None  # the county's own fire
        escalate_as_unreachable(session, incident, unreached, "not delivered within 0:30:00", datetime.now(UTC))
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    open_incident(browser, number, "escalated")
    summary = browser.find('#timeline li[data-to="escalated"] .event-summary').text
    assert summary.startswith(zh[0]), summary
    assert zh[1] in summary
    assert "乡镇" not in summary
    with english(browser):
        open_incident(browser, number, "escalated")
        summary = browser.find('#timeline li[data-to="escalated"] .event-summary').text
        assert summary.startswith(en[0]), summary
        assert en[1] in summary
        assert "township" not in summary
    browser.logout()
