"""Fire again at the same place (同一地点再次起火) in a real headless Chromium: the queue marks the incident, and its
page links to the earlier fire, which opens on a tap."""

from __future__ import annotations

import pytest

from tests.dashboard.browser import DESKTOP, PHONE, Browser
from tests.dashboard.live import PASSWORD, LiveServer, repeat_of

pytestmark = pytest.mark.slow


def test_a_fire_again_at_the_same_place_is_marked_in_the_queue_and_links_to_the_earlier_one(
    browser: Browser, live: LiveServer
) -> None:
    again, earlier = live.incidents["beigang"], live.incidents["nantun"]
    with repeat_of(live, again, earlier):
        browser.use(PHONE)
        browser.login("sup", PASSWORD)
        browser.go("#/queue")
        row = browser.find(f'#queue-list .row[data-incident-id="{again}"]')
        assert row.find_elements("css selector", ".badge.repeat"), row.get_attribute("outerHTML")
        assert "再次起火" in row.text
        other = browser.find(f'#queue-list .row[data-incident-id="{earlier}"]')
        assert not other.find_elements("css selector", ".badge.repeat")

        browser.use(DESKTOP)
        browser.go(f"#/incident/{again}")
        link = browser.find("#repeat-at-site")
        assert f"#{earlier}" in link.text
        assert link.text == f"同一地点再次起火（前次 #{earlier}）"  # the label the app's i18n gives it, filled in
        assert (link.get_attribute("href") or "").endswith(f"#/incident/{earlier}")
        link.click()
        browser.find(f'.incident-page[data-incident-id="{earlier}"]')
        browser.logout()
