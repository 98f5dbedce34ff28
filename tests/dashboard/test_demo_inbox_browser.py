"""The DEMO inbox page in a real headless Chromium, on a server started as `make run` starts it (the DEMO scenario
loaded, `--demo`, the built-in alert worker delivering to the server's own inbox): the county supervisor and the
admin see the demo's alerts arrive, in Chinese and English, with the top bar saying 系统正常; a patrol team sees only
its township's; without demo mode the page is not offered and its route leads home.

One module-scoped demo server (overriding the dashboard's seeded ``live`` one) and browser of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from service.config import Settings
from service.db import make_session_factory, open_database, transaction
from service.demo import DEMO_PASSWORD, load_demo, load_demo_scenario
from service.incidents.tables import Incident
from service.main import create_app
from service.regions.service import RegionIndexCache
from tests.dashboard.browser import DESKTOP, PHONE, Browser
from tests.dashboard.conftest import REPO, _skip_without_browser
from tests.dashboard.live import LiveServer, bound_socket, new_fire, serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`strawfire demo load`, then the app served with demo mode on the port it was told, its alert worker on."""
    _skip_without_browser()
    data_dir: Path = tmp_path_factory.mktemp("demo-inbox") / "var"
    data_dir.mkdir(parents=True)
    engine = open_database(f"sqlite:///{data_dir / 'strawfire.sqlite3'}")
    with transaction(make_session_factory(engine)) as session:
        load_demo(session)
        load_demo_scenario(session, Settings(), RegionIndexCache(500))
        # The fires waiting for their township: the worker's first pass sends each its new-fire alert.
        waiting = session.scalars(
            select(Incident.id).where(Incident.state == "suspected", Incident.township_code.is_not(None))
        ).all()
    engine.dispose()
    sock = bound_socket()
    settings = Settings(data_dir=data_dir, demo=True, port=sock.getsockname()[1], alerts={"poll_interval_s": 0.5})
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        app = create_app(settings)
        with serving(app, sock) as url:
            yield LiveServer(url, app, {"waiting": len(waiting)})


def _rows(browser: Browser) -> list[list[str]]:
    try:
        return [
            [cell.text for cell in row.find_elements("css selector", "td")]
            for row in browser.all("#inbox-messages tbody tr")
        ]
    except StaleElementReferenceException:  # the list was redrawn while being read (its 5-second refresh)
        return []


def test_the_supervisor_sees_the_demo_alerts_arrive(browser: Browser, live: LiveServer) -> None:
    browser.use(DESKTOP)
    browser.login("demo-supervisor", DEMO_PASSWORD)
    browser.click('#nav a[data-nav="inbox"]')
    browser.find(".inbox-page h1")
    assert browser.find(".inbox-page h1").text == "演示收件箱（DEMO）"
    # The worker's first pass delivers every waiting fire's alert (and escalates the overdue notified one).
    waiting = live.incidents["waiting"]
    assert waiting >= 5
    new = "新火点告警"
    browser.wait(lambda d: [r[2] for r in _rows(browser)].count(new) == waiting, "every new-fire alert in the inbox")
    rows = _rows(browser)
    assert {row[2] for row in rows} <= {new, "未签收提醒", "升级告警"}
    assert all(row[1].startswith("DEMO0") for row in rows)
    assert any(row[3] == "秸秆焚烧火点预警" for row in rows)
    assert all(row[4].startswith("#") for row in rows)
    assert browser.find("#inbox-status").text.startswith(f"共收到 {len(rows)} 条告警")
    browser.screenshot("demo-inbox-zh")
    # No recipient problems (nor any other): the status page and the top bar say all is well.
    browser.click("#system-status")
    browser.find("#status-no-problems")
    browser.wait(lambda d: browser.find("#system-status").text == "系统正常", "系统正常 in the top bar")
    browser.click('#nav a[data-nav="inbox"]')
    Select(browser.find("#lang")).select_by_value("en")
    browser.wait(lambda d: browser.find(".inbox-page h1").text == "Demo inbox (DEMO)", "the English heading")
    browser.wait(lambda d: len(_rows(browser)) == len(rows), "the rows again")
    assert browser.find('#nav a[data-nav="inbox"]').text == "Demo inbox"
    assert browser.find("#inbox-status").text.startswith(f"{len(rows)} alerts received")
    assert [r[2] for r in _rows(browser)].count("new-fire alert") == waiting
    browser.screenshot("demo-inbox-en")
    # An incident link opens the fire.
    browser.all("#inbox-messages tbody tr a.inbox-incident")[0].click()
    browser.find(".incident-page")
    Select(browser.find("#lang")).select_by_value("zh-CN")
    assert browser.console_errors() == []


def test_a_patrol_team_sees_only_its_townships_alerts(browser: Browser, live: LiveServer) -> None:
    # The demo's waiting fires are all in other townships (their alerts are what the filter must hide); a fire in
    # 北岗镇 gives the team one of its own, so the view is checked on both kinds, whatever ran before.
    assert live.incidents["waiting"] > 0
    new_fire(live, "inbox-beigang", 125.53, 44.38, township="DEMO01")
    browser.use(PHONE)
    browser.login("demo-patrol", DEMO_PASSWORD)
    browser.go("#/inbox")
    browser.find("#inbox-status")
    rows = browser.wait(lambda _: _rows(browser), "the team's own alert in its inbox (the page refreshes every 5 s)")
    assert {row[1] for row in rows} == {"DEMO01"}
    browser.screenshot("demo-inbox-patrol")
    assert browser.console_errors() == []


def test_without_demo_mode_the_inbox_is_not_offered(browser: Browser, live: LiveServer) -> None:
    demo_settings = live.app.state.settings
    browser.use(DESKTOP)
    # Signed in while in demo mode: outside it the public DEMO password opens no account.
    browser.login("demo-admin", DEMO_PASSWORD)
    live.app.state.settings = demo_settings.model_copy(update={"demo": False})  # what config.json says
    try:
        browser.driver.refresh()  # the dashboard reads config.json afresh
        browser.find("#main .page h1")
        assert browser.absent('#nav a[data-nav="inbox"]')
        browser.go("#/inbox")
        browser.wait(lambda d: d.current_url.endswith("#/map"), "the way home")
        assert browser.absent(".inbox-page")
    finally:
        live.app.state.settings = demo_settings
