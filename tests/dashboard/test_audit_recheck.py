"""A second audit of the dashboard in a real headless Chromium, as each kind of user walks it: a patrol team on a
360 px phone in English, a county supervisor, an evaluator reading statistics and scores. Each test is a defect
that was found walking the app: a top bar wider than the phone, a badge that pushed the page sideways, state
badges too pale to read, a missing-incident message on the statistics page, the server's English sentences in the
Chinese record, raw rule names in the score lines, focus lost on every navigation, the feedback form without the
measures and penalty the API keeps, an input without a label.

One module-scoped server and browser of its own; each test restores what it changed (language, incident fields).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from selenium.webdriver.common.keys import Keys
from sqlalchemy import update

from service.auth.service import SYSTEM
from service.db import transaction
from service.incidents.service import record_event
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from tests.dashboard.browser import DESKTOP, NARROW, PHONE, Browser, open_incident
from tests.dashboard.live import PASSWORD, LiveServer, api, repeat_of

pytestmark = pytest.mark.slow

# How far right anything reaches, and how wide the document is (a page wider than the phone scrolls sideways).
WIDTHS = """
const right = (css) => Math.max(0, ...[...document.querySelectorAll(css)].map((e) => e.getBoundingClientRect().right));
return {
  page: document.documentElement.scrollWidth,
  logout: right('#logout'),
  lang: right('#lang'),
  nav: right('#nav a'),
  navClipped: [...document.querySelectorAll('#nav a')].filter((a) => a.scrollWidth > a.clientWidth + 1).length,
  badges: right('#incident-state .badge'),
};
"""

# Each queue row's badges: how far right they reach against their card, and on how many lines a state's name is.
ROW_BADGES = """
return [...document.querySelectorAll('#queue-list .row .badge')].map((b) => {
  const lineHeight = parseFloat(getComputedStyle(b).lineHeight) || 20;
  return {
    text: b.textContent,
    right: b.getBoundingClientRect().right,
    rowRight: b.closest('.row').getBoundingClientRect().right,
    lines: b.dataset.state ? Math.round(b.getBoundingClientRect().height / lineHeight) : 1,
  };
});
"""

# WCAG 2 contrast of every badge the app draws (text against its own background), computed by the browser.
CONTRAST = """
const done = arguments[arguments.length - 1];
Promise.all([import('./static/page-queue.js'), import('./static/model.js')]).then(([queue, model]) => {
  const box = document.createElement('div');
  box.id = 'contrast-probe';
  document.getElementById('main').append(box);
  const badges = model.STATES.map((s) => queue.stateBadge(s));
  badges.push(queue.lateTag({ kind: 'acknowledge' }));
  badges.push(queue.repeatTag({ repeat_of_incident_id: 1 }));
  const plain = document.createElement('span');
  plain.className = 'badge';
  plain.textContent = 'x';
  badges.push(plain);
  box.append(...badges);
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const out = badges.map((b) => {
    const style = getComputedStyle(b);
    return [b.className, Math.round(ratio(rgb(style.color), rgb(style.backgroundColor)) * 100) / 100];
  });
  box.remove();
  done(out);
}).catch((e) => done(String(e)));
"""


def set_language(browser: Browser, code: str) -> None:
    browser.driver.execute_script(
        "const s = document.getElementById('lang'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        code,
    )
    browser.wait(lambda d: d.execute_script("return document.documentElement.lang") == code, f"language {code}")
    browser.find("#main .page h1")


@contextmanager
def english(browser: Browser) -> Iterator[None]:
    set_language(browser, "en")
    try:
        yield
    finally:
        set_language(browser, "zh-CN")


@pytest.mark.parametrize("user", ["beigang", "sup", "admin"])
def test_the_top_bar_fits_a_360px_phone_in_english(browser: Browser, live: LiveServer, user: str) -> None:
    """ "Straw-burning watch", the language switch and "Sign out" (and a supervisor's status pill) at 360 px: the
    bar pushed "Sign out" past the edge and the whole page scrolled sideways (386–408 px) on every page."""
    browser.use(NARROW)
    browser.login(user, PASSWORD)
    with english(browser):
        for route in ("#/queue", "#/map", "#/stats"):
            browser.go(route)
            browser.find("#main .page h1")
            browser.wait(lambda d: not browser.all("#main .loading"), "the page")
            widths = browser.driver.execute_script(WIDTHS)
            if widths["page"] > NARROW.width:
                browser.screenshot(f"en-top-bar-too-wide-{user}")
            assert widths["page"] <= NARROW.width, (route, widths)
            assert widths["logout"] <= NARROW.width, (route, widths)
            assert widths["lang"] <= NARROW.width, (route, widths)
            assert widths["nav"] <= NARROW.width, (route, widths)
            assert widths["navClipped"] == 0, (route, widths)
        browser.screenshot(f"en-top-bar-{user}")
    browser.logout()


def test_a_long_badge_on_the_incident_page_wraps_on_a_360px_phone(browser: Browser, live: LiveServer) -> None:
    """ "Fire again at the same place (earlier #N)" kept on one line ran 44 px past a 360 px screen."""
    again, earlier = live.incidents["beigang"], live.incidents["nantun"]
    with repeat_of(live, again, earlier):
        browser.use(NARROW)
        browser.login("beigang", PASSWORD)
        with english(browser):
            open_incident(browser, again)
            browser.find("#repeat-at-site")
            widths = browser.driver.execute_script(WIDTHS)
            browser.screenshot("en-repeat-badge")
            assert widths["page"] <= NARROW.width, widths
            assert widths["badges"] <= NARROW.width, widths
            browser.go("#/queue")
            browser.find(f'#queue-list .row[data-incident-id="{again}"] .badge.repeat')
            # Every badge inside its card, and a one-word state ("suspected") never broken over two lines.
            badges = browser.driver.execute_script(ROW_BADGES)
            assert badges, "the queue's badges"
            assert [b for b in badges if b["right"] > b["rowRight"] or b["lines"] > 1] == []
            assert browser.driver.execute_script(WIDTHS)["page"] <= NARROW.width
        browser.logout()


def test_every_badge_is_readable_in_the_sun(browser: Browser) -> None:
    """State badges are 13.6 px bold text: WCAG AA asks 4.5:1. White on 已扑灭's green was 2.3:1, and 已推送,
    已反馈, 已核查, 已销号 were under 4.5:1 too."""
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    ratios = browser.driver.execute_async_script(CONTRAST)
    assert isinstance(ratios, list), ratios
    assert len(ratios) == len(IncidentState) + 3
    low = [(name, ratio) for name, ratio in ratios if ratio < 4.5]
    assert low == []
    browser.logout()


def test_an_unknown_area_or_a_bad_period_is_not_called_a_missing_incident(browser: Browser) -> None:
    """An evaluator types an area code no unit has (404) or a period the API cannot read (422): the page said
    "没有找到这个火点，或它不属于您的辖区" (no such incident) on the statistics and scores pages."""
    browser.use(DESKTOP)
    browser.login("eval", PASSWORD)
    for route in ("#/stats?area=NOPE", "#/scores?area=NOPE"):
        browser.go(route)
        box = browser.find('.error[data-status="404"]')
        assert "火点" not in box.text, (route, box.text)
        assert "区域" in box.text, (route, box.text)
    browser.go("#/stats?preset=custom&period=2025-13")
    box = browser.find('.error[data-status="422"]')
    assert "时段" in box.text, box.text
    browser.screenshot("stats-unknown-area")
    browser.logout()


def test_every_input_has_a_label(browser: Browser, live: LiveServer) -> None:
    """The custom period box had only a placeholder: a screen reader announced an unnamed edit field."""
    unnamed = """
    const fields = '#main input, #main select, #main textarea, dialog input, dialog select, dialog textarea';
    return [...document.querySelectorAll(fields)]
      .filter((el) => el.type !== 'hidden' && el.getClientRects().length)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
      .map((el) => el.outerHTML.slice(0, 120));
    """
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    pages = {}
    for route in ("#/stats?preset=custom&period=2025-11", "#/scores?preset=custom&period=2025-11", "#/queue", "#/map"):
        browser.go(route)
        browser.find("#main .page h1")
        browser.wait(lambda d: not browser.all("#main .loading"), "the page")
        pages[route] = browser.driver.execute_script(unnamed)
    open_incident(browser, live.incidents["xipo"])
    for move in ("false_alarm", "acknowledged"):
        browser.click(f'#actions button[data-transition="{move}"]')
        browser.find("#transition-dialog[open]")
        pages[move] = browser.driver.execute_script(unnamed)
        browser.driver.execute_script("document.getElementById('transition-dialog').close()")
    browser.click("#reassign-open")
    browser.find("#transition-dialog[open] #reassign-form")
    pages["reassign"] = browser.driver.execute_script(unnamed)
    browser.driver.execute_script("document.getElementById('transition-dialog').close()")
    assert {k: v for k, v in pages.items() if v} == {}
    browser.logout()


def _record_system_events(live: LiveServer, incident_id: int) -> None:
    """What the service itself writes on an incident's record, with the notes it writes (English)."""
    with transaction(live.app.state.session_factory) as session:
        incident = session.get_one(Incident, incident_id)
        add = lambda kind, note, data: record_event(session, incident, SYSTEM, kind, note=note, data=data)  # noqa: E731
        add("alert", "new alert delivered to recipient 7", {"alert": 70, "recipient": 7})
        add(
            "alert_withdrawn",
            "reminder alert to recipient 7 not sent: the incident was acknowledged before the reminder went out",
            {"alert": 71, "recipient": 7},
        )
        add(
            "located_other",
            "a drone observation places the fire in DEMO02; kept with the team dealing with it (a supervisor may "
            "reassign)",
            {
                "unit": {"township": "DEMO04", "county": "DEMO00"},
                "placed_in": {"township": "DEMO02", "county": "DEMO00"},
                "source_key": "dji-7",
            },
        )
        add(
            "reassigned",
            "located by a drone observation in another unit",
            {
                "from": {"township": "DEMO02", "county": "DEMO00"},
                "to": {"township": "DEMO04", "county": "DEMO00"},
                "automatic": True,
                "source_key": "dji-6",
            },
        )
        add(
            "repeat_at_site",
            f"fire again at the same place as incident {live.incidents['nantun']}",
            {"repeat_of": live.incidents["nantun"], "distance_m": 412.5, "days_after": 3.2},
        )
        add("merged", "incident 9999 merged in", {"merged": 9999})


GENERATED = ("alert", "alert_withdrawn", "located_other", "reassigned", "repeat_at_site", "merged")


def test_what_the_system_wrote_on_the_record_reads_in_the_users_language(browser: Browser, live: LiveServer) -> None:
    """The record's system entries (alert delivered or withdrawn, observed in another unit, moved by a new fix, fire
    again at the same place, merged) showed the server's English sentence under a Chinese heading: where a new
    observation put the fire (located_other) was only said in English. Each now reads in the user's language,
    with the server's sentence kept underneath as the English original. The observations' details were listed by
    their field names ("aircraft", "altitude_m", "scan_km")."""
    fire = live.incidents["xipo"]
    _record_system_events(live, fire)
    browser.console_errors()  # what earlier tests left in the log (refused requests they made on purpose)
    browser.use(NARROW)
    browser.login("sup", PASSWORD)
    open_incident(browser, fire)
    for kind in GENERATED:
        entry = browser.find(f'#timeline li[data-kind="{kind}"]')
        summary = entry.find_element("css selector", ".event-summary").text
        assert summary, kind
        assert not summary.isascii(), (kind, summary)
        # The English original is marked as such (screen readers switch voice), never the entry's main text; it is
        # shown only where the words do not say all it says (these events lack the codes newer ones carry: the
        # alert's kind, why it was withdrawn, the source's kind), else it is the words' hover title.
        original = entry.find_elements("css selector", '.note[lang="en"]')
        worded = kind in ("repeat_at_site", "merged")
        assert len(original) == (0 if worded else 1), (kind, entry.get_attribute("outerHTML"))
        title = entry.find_element("css selector", ".event-summary").get_attribute("title")
        assert bool(title) is worded, (kind, title)
        assert (title or "").isascii(), (kind, title)
        assert not entry.find_elements("css selector", '.note:not([lang="en"])'), kind
    located = browser.find('#timeline li[data-kind="located_other"] .event-summary').text
    assert "东河乡" in located, located  # the units by name, not only codes
    assert "西坡乡" in located, located
    withdrawn = browser.find('#timeline li[data-kind="alert_withdrawn"] .event-summary').text
    assert "#7" in withdrawn, withdrawn
    assert "未发送" in withdrawn, withdrawn
    repeat = browser.find('#timeline li[data-kind="repeat_at_site"] .event-summary').text
    assert "413" in repeat or "412" in repeat, repeat
    # The drone's details are named in Chinese too ("aircraft" → 机型), the values as the drone sent them.
    observations = browser.find(".observations").text
    assert "机型" in observations, observations
    assert "M30T" in observations, observations
    assert "aircraft" not in observations, observations
    browser.screenshot("system-events-zh")
    with english(browser):
        open_incident(browser, fire)
        located = browser.find('#timeline li[data-kind="located_other"] .event-summary').text
        assert "东河乡" in located, located
        assert "observation" in located.lower(), located
        browser.screenshot("system-events-en")
    assert browser.console_errors() == []
    browser.logout()


def test_score_lines_name_their_rules_in_the_users_language(browser: Browser, live: LiveServer) -> None:
    """The lines behind a score showed the rule's code ("late_acknowledge", "fire_point:satellite", "density");
    and the repeat-at-site and late-feedback counts the API sends had no column."""
    board = api(live, "sup", "/api/v1/scores?period=" + _last_30_days(browser) + "&level=township")
    rules = {item["rule"] for unit in board["units"] for item in unit["items"]}
    assert rules, "the seeded fortnight gives score lines"
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.go("#/scores")
    browser.find("#table-scores")
    headers = [th.text for th in browser.all("#table-scores thead th")]
    assert "再次起火" in headers, headers
    assert "反馈超时" in headers, headers
    for summary in browser.all("#table-scores details summary"):
        summary.click()
    lines = " ".join(li.text for li in browser.all("#table-scores .items li"))
    assert lines
    for rule in rules:
        assert rule.split(":")[0] not in lines, (rule, lines)
    browser.screenshot("score-lines")
    browser.logout()


def _last_30_days(browser: Browser) -> str:
    browser.go("#/")
    script = "return import('./static/page-stats.js').then((m) => m.periodOf('30d'))"
    return str(browser.driver.execute_script(script))


def test_focus_goes_to_the_new_page_after_navigation(browser: Browser, live: LiveServer) -> None:
    """Opening an incident from the queue (or any page from the bar) left the focus on nothing (the link pressed was
    gone): a screen reader said nothing about the new page and the next Tab started again at the top; after a
    move, the button pressed was redrawn away too."""
    fire = live.incidents["nantun"]
    active_in_main = "return document.getElementById('main').contains(document.activeElement)"
    active_is_h1 = "return document.activeElement === document.querySelector('#main h1')"
    browser.use(PHONE)
    browser.login("nantun", PASSWORD)
    row = browser.find(f'#queue-list .row[data-incident-id="{fire}"]')
    row.send_keys(Keys.ENTER)
    open_incident(browser, fire)
    browser.wait(lambda d: d.execute_script(active_is_h1), "the focus on the incident's heading")
    browser.find('#nav a[data-nav="map"]').send_keys(Keys.ENTER)
    browser.find(".map-page")
    browser.wait(lambda d: d.execute_script(active_is_h1), "the focus on the map's heading")
    open_incident(browser, fire)
    state = browser.find(".incident-page").get_attribute("data-state")
    assert state in {"suspected", "acknowledged"}, state
    to = "acknowledged" if state == "suspected" else "en_route"
    browser.find(f'#actions button[data-transition="{to}"]').send_keys(Keys.ENTER)
    browser.find("#transition-dialog[open]")
    browser.find("#t-submit").send_keys(Keys.ENTER)
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-state="{to}"]')
    browser.wait(lambda d: d.execute_script(active_in_main), "the focus kept on the page after the move")
    browser.logout()


def test_feedback_takes_the_measures_and_penalty_the_api_keeps(browser: Browser, live: LiveServer) -> None:
    """反馈 in the field notes is photos, GPS, cause, 责任人 and 处罚: the API keeps measures (处置措施) and penalty
    (处罚), but the form had no field for them and the page did not show them."""
    fire = live.incidents["beigang"]
    detail = api(live, "beigang", f"/api/v1/incidents/{fire}")
    path = ["acknowledged", "en_route", "on_site", "extinguished"]
    for to in path[path.index(detail["state"]) + 1 :] if detail["state"] in path else path:
        api(live, "beigang", f"/api/v1/incidents/{fire}/transitions", {"to": to, "note": ""})
    browser.use(PHONE)
    browser.login("beigang", PASSWORD)
    open_incident(browser, fire, "extinguished")
    browser.click('#actions button[data-transition="feedback"]')
    browser.find("#transition-dialog[open]")
    browser.type("#t-cause", "秸秆焚烧")
    browser.type("#t-measures", "两台风力灭火机扑灭，清理余火")
    browser.type("#t-penalty", "罚款 500 元，训诫")
    browser.click("#t-submit")
    browser.find(f'.incident-page[data-incident-id="{fire}"][data-state="feedback"]')
    stored = api(live, "beigang", f"/api/v1/incidents/{fire}")["feedback"]
    assert stored["measures"] == "两台风力灭火机扑灭，清理余火"
    assert stored["penalty"] == "罚款 500 元，训诫"
    page = browser.find(".incident-page").text
    assert "两台风力灭火机扑灭，清理余火" in page
    assert "罚款 500 元，训诫" in page
    browser.screenshot("feedback-measures-penalty")
    browser.logout()


# Polls every 1.5 s instead of every 15 s for the pages opened after this (the app reads setInterval when a page
# starts its poll).
FAST_POLLS = """
window.__realSetInterval = window.__realSetInterval || window.setInterval;
window.setInterval = (fn, ms, ...rest) => window.__realSetInterval(fn, ms >= 10000 ? 1500 : ms, ...rest);
"""
FOCUSED_INCIDENT = "return document.activeElement && document.activeElement.dataset.incidentId || null"


# A row's text read in one script: the poll that redraws a changed row can replace it between a find and its .text.
ROW_TEXT = "const row = document.querySelector(arguments[0]); return row ? row.innerText : ''"


def test_the_keyboard_focus_survives_the_lists_refresh(browser: Browser, live: LiveServer) -> None:
    """A keyboard (or switch-access) user on a queue row or a map marker lost the focus at every poll, every 15 s:
    the rows and markers were drawn again whether or not anything had changed."""
    mine, other = live.incidents["donghe"], live.incidents["xipo"]
    changed = f'.row[data-incident-id="{other}"]'
    factory = live.app.state.session_factory
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.driver.execute_script(FAST_POLLS)
    for route, css in (("#/queue", "#queue-list .row"), ("#/map", ".map .marker")):
        browser.go(route)
        target = browser.find(f'{css}[data-incident-id="{mine}"]')
        browser.driver.execute_script("arguments[0].focus()", target)
        assert browser.driver.execute_script(FOCUSED_INCIDENT) == str(mine)
        # Nothing changes for two polls, then another incident does (its row and marker are drawn anew).
        browser.driver.execute_script("return new Promise((done) => setTimeout(done, 3500))")
        assert browser.driver.execute_script(FOCUSED_INCIDENT) == str(mine), route
        with transaction(factory) as session:
            session.execute(update(Incident).where(Incident.id == other).values(confidence=0.42))
        browser.wait(lambda d: "42%" in d.execute_script(ROW_TEXT, changed), f"{changed} redrawn with 42%")
        assert browser.driver.execute_script(FOCUSED_INCIDENT) == str(mine), route
        with transaction(factory) as session:
            session.execute(update(Incident).where(Incident.id == other).values(confidence=0.9))
    browser.logout()


def test_a_fire_handed_to_another_township_leaves_the_teams_page(browser: Browser, live: LiveServer) -> None:
    """A supervisor hands the fire a team has open on its phone to another township: the page went on offering the
    team's moves (each refused with a 404 in English) until the user left it; the poll's 404 was swallowed."""
    fire = live.incidents["nantun"]
    browser.use(PHONE)
    browser.login("nantun", PASSWORD)
    browser.driver.execute_script(FAST_POLLS)
    open_incident(browser, fire)
    browser.find("#actions button[data-transition]")
    url = f"/api/v1/incidents/{fire}/assignment"
    api(live, "sup", url, {"township_code": "DEMO02", "note": "东河乡巡查队更近"})
    try:
        box = browser.find('.error[data-status="404"]')
        assert "没有找到这个火点" in box.text
        assert browser.absent("#actions")
        browser.screenshot("handed-away")
    finally:
        api(live, "sup", url, {"township_code": "DEMO03", "note": "改回南屯镇"})
    browser.logout()


def test_every_form_dialog_is_named_by_its_title(browser: Browser, live: LiveServer) -> None:
    """The move and reassignment forms open as modal dialogs without a name: a screen reader announced "dialog"
    and nothing of what it was for ("签收 · 火点 #12")."""
    fire = live.incidents["xipo"]
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    open_incident(browser, fire)
    for opener in ('#actions button[data-transition="acknowledged"]', "#reassign-open"):
        browser.click(opener)
        dialog = browser.find("#transition-dialog[open]")
        title = dialog.find_element("css selector", "h2").text
        assert title
        assert dialog.accessible_name == title, (opener, dialog.accessible_name)
        browser.driver.execute_script("document.getElementById('transition-dialog').close()")
    browser.logout()
