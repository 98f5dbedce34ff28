"""Reading /api/v1/incidents page by page while incidents are created, observed again and closed in between.

Offset paging on an order that moves (the list was ordered by ``last_observed_at``) returned an incident twice and
skipped another when an observation joined an unread incident or a read one left the "open" filter between two
requests: a supervisor's queue could miss a fire. The cursor (``X-Next-Cursor``) walks an order that never changes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from service.auth.service import Principal, create_user
from service.config import Settings
from service.db import transaction
from service.demo import load_demo
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import Role
from service.main import create_app
from service.regions.service import RegionIndexCache

PASSWORD = "correct horse battery"
ADMIN = Principal("admin", Role.ADMIN)
T0 = datetime(2025, 10, 20, 3, 0, tzinfo=UTC)
PAGE = 3


def spot(n: int) -> tuple[float, float]:
    """The n-th of 24 places ~2.4 km apart in the demo county (125.50–125.80 E, 44.15–44.40 N): never one fire."""
    return 125.52 + 0.03 * (n % 8), 44.19 + 0.06 * (n // 8)


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> Iterator[tuple[FastAPI, TestClient]]:
    """The service on the test database (SQLite, or PostgreSQL when configured), with the demo county."""
    url = engine.url.render_as_string(hide_password=False)
    application = create_app(Settings(data_dir=tmp_path / "var", database_url=url, alerts={"run_worker": False}))
    with TestClient(application) as client:
        with transaction(application.state.session_factory) as session:
            load_demo(session)
            create_user(session, "admin", PASSWORD, Role.ADMIN, None)
        token = client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield application, client


def observe(application: FastAPI, *spots: tuple[int, int]) -> list[int]:
    """A satellite pixel at each (place, minutes after T0), ingested the production way in one transaction; the
    incidents it opened."""
    observations = []
    for place, minutes in spots:
        lon, lat = spot(place)
        box = shapely.box(lon - 0.0035, lat - 0.0035, lon + 0.0035, lat + 0.0035)
        at = T0 + timedelta(minutes=minutes)
        observations.append(ObservationIn(ObservationKind.SATELLITE, f"px-{place}-{minutes}", at, lat, lon, box, 0.8))
    with transaction(application.state.session_factory) as session:
        summary = ingest_observations(
            session, observations, indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
        )
    return summary.new_incidents


def fires(application: FastAPI, count: int) -> list[int]:
    """``count`` fires, one a minute (one transaction each): their incidents, oldest first."""
    return [incident for n in range(count) for incident in observe(application, (n, n))]


def close(client: TestClient, incident: int) -> None:
    moved = client.post(f"/api/v1/incidents/{incident}/transitions", json={"to": "false_alarm", "reason": "not_found"})
    assert moved.status_code == 200, moved.text


def walk(client: TestClient, params: dict[str, Any], between: dict[int, Any]) -> list[list[int]]:
    """Every page by cursor; ``between[n]()`` runs after page n (from 1) was read."""
    pages: list[list[int]] = []
    cursor = None
    while True:
        query = {**params, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/incidents", params=query)
        assert response.status_code == 200, response.text
        pages.append([i["id"] for i in response.json()])
        cursor = response.headers.get("X-Next-Cursor")
        if len(pages[-1]) == PAGE:
            assert cursor, "a full page comes with the cursor of the next"
            assert f"cursor={cursor}" in response.headers["Link"]
            assert response.headers["Link"].endswith('>; rel="next"')
        if not cursor:
            assert len(pages[-1]) < PAGE, "only a short page is the last"
            return pages
        if len(pages) in between:
            between[len(pages)]()
        assert len(pages) < 20, "the walk does not end"


def test_a_cursor_walk_returns_every_open_incident_once_while_others_arrive_change_and_close(
    app: tuple[FastAPI, TestClient],
) -> None:
    application, client = app
    seeded = fires(application, 8)
    assert len(seeded) == 8
    oldest, newest = seeded[0], seeded[-1]
    created: list[int] = []

    def after_first_page() -> None:
        # A new pass over the oldest fire (not read yet) joins it and makes it the most recently observed; two new
        # fires open; the newest fire, already read, is found to be no fire and leaves the "open" list.
        created.extend(observe(application, (0, 60), (20, 61), (21, 62)))
        close(client, newest)

    def after_second_page() -> None:
        created.extend(observe(application, (22, 63)))
        close(client, seeded[1])  # not read yet: it is no longer open, and no longer due in this walk

    pages = walk(client, {"open": "true"}, {1: after_first_page, 2: after_second_page})
    read = [i for page in pages for i in page]
    assert len(created) == 3  # the pass over the oldest fire joined it
    assert len(read) == len(set(read)), f"an incident came twice: {pages}"
    # Every incident open when the walk began and still open is there, the one observed again included.
    assert oldest in read
    assert set(read) == set(seeded) - {seeded[1]}
    assert read == sorted(read, reverse=True)  # newest (by creation) first
    # What opened during the walk is in the next one; the closed ones are not.
    again = [i for page in walk(client, {"open": "true"}, {}) for i in page]
    assert again == sorted(set(seeded + created) - {newest, seeded[1]}, reverse=True)


def test_the_cursor_keeps_the_filters_scope_and_the_last_page_has_none(app: tuple[FastAPI, TestClient]) -> None:
    application, client = app
    seeded = fires(application, 7)
    everything = client.get("/api/v1/incidents", params={"limit": 1000})
    assert "X-Next-Cursor" not in everything.headers  # not a full page: nothing after it
    assert [i["id"] for i in everything.json()] == sorted(seeded, reverse=True)
    # Exactly full: a cursor, and an empty last page without one.
    full = client.get("/api/v1/incidents", params={"limit": 7})
    last = client.get("/api/v1/incidents", params={"limit": 7, "cursor": full.headers["X-Next-Cursor"]})
    assert (last.status_code, last.json(), last.headers.get("X-Next-Cursor")) == (200, [], None)
    # A filter applies to every page of the walk.
    close(client, seeded[3])
    pages = walk(client, {"state": "suspected"}, {})
    assert [i for page in pages for i in page] == sorted(set(seeded) - {seeded[3]}, reverse=True)
    assert [i for page in walk(client, {"state": "false_alarm"}, {}) for i in page] == [seeded[3]]


def test_offset_still_pages_the_same_order(app: tuple[FastAPI, TestClient]) -> None:
    application, client = app
    seeded = fires(application, 7)
    by_offset = [
        i["id"]
        for offset in range(0, 9, PAGE)
        for i in client.get("/api/v1/incidents", params={"limit": PAGE, "offset": offset}).json()
    ]
    assert by_offset == sorted(seeded, reverse=True) == [i for page in walk(client, {}, {}) for i in page]
    # The cursor of an offset page goes on after it, as the next offset would.
    second = client.get("/api/v1/incidents", params={"limit": PAGE, "offset": PAGE})
    after = client.get("/api/v1/incidents", params={"limit": PAGE, "cursor": second.headers["X-Next-Cursor"]})
    assert [i["id"] for i in after.json()] == by_offset[2 * PAGE :]
    # A new pass over a fire not read yet no longer moves it ahead of the offset (the list was ordered by the
    # latest observation: the oldest fire jumped to the front and was never returned).
    first = client.get("/api/v1/incidents", params={"limit": PAGE}).json()
    assert observe(application, (0, 60)) == []  # joined the oldest fire
    rest = client.get("/api/v1/incidents", params={"limit": 100, "offset": PAGE}).json()
    assert [i["id"] for i in first + rest] == by_offset


def forged(text: str) -> str:
    """A cursor in the server's encoding that it never gave out."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage"},
        {"cursor": ""},
        {"cursor": forged("incidents:id<0")},
        {"cursor": forged(f"incidents:id<{2**62 + 1}")},  # past any id (and PostgreSQL's bigint)
        {"cursor": forged("incidents:id<12 OR 1=1")},
        {"cursor": "x" * 201},
    ],
)
def test_a_cursor_the_server_did_not_give_is_refused(app: tuple[FastAPI, TestClient], params: dict[str, str]) -> None:
    _, client = app
    response = client.get("/api/v1/incidents", params=params)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("offset", [2**62 + 1, 2**63, 10**30, -1])
def test_an_offset_past_any_row_count_is_refused_naming_it(app: tuple[FastAPI, TestClient], offset: int) -> None:
    """2**63 and more overflowed SQLite's and PostgreSQL's 64-bit integers (a 500); 2**62 is past any table."""
    _, client = app
    response = client.get("/api/v1/incidents", params={"offset": offset})
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", "offset"]]
    assert client.get("/api/v1/incidents", params={"limit": 1000, "offset": 2**62}).json() == []


def test_cursor_and_offset_together_are_refused(app: tuple[FastAPI, TestClient]) -> None:
    application, client = app
    fires(application, 3)
    cursor = client.get("/api/v1/incidents", params={"limit": 1}).headers["X-Next-Cursor"]
    response = client.get("/api/v1/incidents", params={"limit": 1, "cursor": cursor, "offset": 1})
    assert response.status_code == 422
    assert "either cursor or offset" in response.json()["detail"]
