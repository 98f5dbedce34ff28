"""The dashboard's ``fetchAll`` (api.js: the queue and the map) in a real headless Chromium, with a fire closed
between two of its page requests: every incident open when it began comes back once (offset paging skipped one)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service.db import transaction
from service.incidents.states import OPEN_STATES
from service.incidents.tables import Incident
from tests.dashboard.browser import Browser
from tests.dashboard.live import PASSWORD, LiveServer

pytestmark = pytest.mark.slow

# Reads the open incidents two at a time with the app's own fetchAll; after the first page, the first incident on
# it is closed as a false alarm through the API (a patrol team on another phone), which shifts every later offset.
WALK = """
const done = arguments[arguments.length - 1];
(async () => {
  const { api, fetchAll } = await import("/app/static/api.js");
  const realFetch = window.fetch;
  const requests = [];
  let closed = null;
  window.fetch = async (resource, init) => {
    const url = new URL(resource, window.location.origin);
    const response = await realFetch(resource, init);
    if (url.pathname !== "/api/v1/incidents") return response;
    requests.push(url.search);
    if (requests.length === 1) {
      const page = await response.clone().json();
      closed = page[0].id;
      await api(`/api/v1/incidents/${closed}/transitions`, { json: { to: "false_alarm", reason: "not_found" } });
    }
    return response;
  };
  try {
    const { items, truncated } = await fetchAll("/api/v1/incidents", { open: "true" }, { pageSize: 2, maxPages: 20 });
    done({ ids: items.map((i) => i.id), truncated, closed, requests });
  } catch (error) {
    done({ error: String(error), requests });
  } finally {
    window.fetch = realFetch;
  }
})();
"""


def open_incidents(live: LiveServer) -> list[int]:
    with transaction(live.app.state.session_factory) as session:
        query = select(Incident.id).where(Incident.state.in_([s.value for s in OPEN_STATES]))
        return sorted(session.scalars(query), reverse=True)


def test_fetch_all_follows_the_cursor_and_misses_nothing_when_a_fire_closes_between_pages(
    browser: Browser, live: LiveServer
) -> None:
    before = open_incidents(live)
    assert len(before) >= 3, "the walk needs a second page after the closed fire's"
    browser.login("admin", PASSWORD)
    result = browser.driver.execute_async_script(WALK)
    assert "error" not in result, result
    assert result["closed"] == before[0]
    assert result["closed"] not in open_incidents(live)  # it did close between the first and second request
    assert len(result["ids"]) == len(set(result["ids"])), result
    assert sorted(result["ids"], reverse=True) == before, result  # the closed one was read before it closed
    assert result["truncated"] is False
    # The first page by position, every later one by the cursor the page before it gave.
    first, *later = result["requests"]
    assert "offset=0" in first
    assert later
    assert all("cursor=" in r and "offset=" not in r for r in later), result["requests"]
