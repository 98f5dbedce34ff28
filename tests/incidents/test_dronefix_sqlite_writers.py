"""Drone batches ingested on the embedded SQLite while other writers hold the write lock: they wait, they do not 500.

Real concurrent writers on a real SQLite file: a second connection of the service's own engine writes (the alert
worker's component record, as its pass does) and holds the write lock while the upload runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import service.db
from service.config import Settings
from service.db import transaction, utcnow
from service.incidents.tables import Observation
from service.status.service import ALERT_WORKER, record_run
from tests.conftest import shared_path
from tests.incidents.drone_app import drone_upload_client


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    yield from drone_upload_client(Settings(data_dir=tmp_path / "var"), monkeypatch)


def _headers(client: TestClient) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", data={"username": "uav", "password": "device-password"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _frames(count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    """``count`` different uploads of the located H20T frame (sightings are keyed by content: a byte after the
    image's end makes each its own)."""
    frame = shared_path("drone", "DJI_H20T.jpg").read_bytes()
    return [("images", (f"f{n}.jpg", frame + bytes([n]), "image/jpeg")) for n in range(count)]


class LockHolder(threading.Thread):
    """Another writer of the service: records the alert worker's pass, then keeps its transaction (and SQLite's
    write lock) open for ``hold_s`` seconds, or until :attr:`release` is set, before committing."""

    def __init__(self, factory: sessionmaker[Session], hold_s: float) -> None:
        super().__init__(daemon=True)
        self.factory, self.hold_s = factory, hold_s
        self.locked, self.release = threading.Event(), threading.Event()

    def run(self) -> None:
        with transaction(self.factory) as session:
            record_run(session, ALERT_WORKER, at=utcnow(), ok=True)  # pysqlite's implicit BEGIN: the lock is held
            self.locked.set()
            self.release.wait(self.hold_s)


def _observations(client: TestClient) -> int:
    factory: sessionmaker[Session] = client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Observation)) or 0)


def test_upload_waits_for_another_writers_lock_instead_of_failing(client: TestClient) -> None:
    """The savepoint began a deferred transaction whose reads pinned a snapshot; its first INSERT then failed at
    once with "database is locked" (a 500, part of the batch stored) while another writer held the lock."""
    headers = _headers(client)
    holder = LockHolder(client.app.state.session_factory, hold_s=1.0)  # type: ignore[attr-defined]
    holder.start()
    assert holder.locked.wait(60)
    started = time.monotonic()
    response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "m2"}, files=_frames(2))
    holder.join()
    assert response.status_code == 200, response.text
    assert [(r["sightings"], r["error"]) for r in response.json()] == [(1, None), (1, None)]
    assert time.monotonic() - started >= 0.5  # it waited for the lock (the busy timeout), well within 10 s
    assert _observations(client) == 2


def test_batches_and_a_busy_writer_all_land(client: TestClient) -> None:
    """Several batches while another writer commits short transactions all the time (the escalation loop of the
    audit): every request answers 200 and every image is stored. Each batch starts only after the writer has
    committed again, so the writer is busy around every batch however fast or slow the machine is (ordered by
    events, not by counting passes in a time span)."""
    headers = _headers(client)
    factory: sessionmaker[Session] = client.app.state.session_factory  # type: ignore[attr-defined]
    stop = threading.Event()
    committed = threading.Condition()
    passes = 0

    def writer() -> None:
        nonlocal passes
        while not stop.is_set():
            with transaction(factory) as session:
                record_run(session, ALERT_WORKER, at=utcnow(), ok=True)
                time.sleep(0.02)  # a pass's work, with the lock held
            with committed:
                passes += 1
                committed.notify_all()
            time.sleep(0.02)  # not a writer that never lets go: SQLite's lock is not fair, a waiter polls

    def another_pass() -> None:
        with committed:
            seen = passes
            assert committed.wait_for(lambda: passes > seen, timeout=60), "the other writer stopped committing"

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        frames = _frames(12)
        codes = []
        for batch in range(3):
            another_pass()
            files = frames[batch * 4 : batch * 4 + 4]
            response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "m2"}, files=files)
            codes.append(response.status_code)
            assert all(r["error"] is None for r in response.json()), response.text
        another_pass()  # still writing after the last batch: it was never shut out
    finally:
        stop.set()
        thread.join()
    assert codes == [200, 200, 200]
    assert _observations(client) == 12


def test_a_lock_not_had_in_time_is_answered_per_image_with_nothing_half_stored(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that keeps the lock past the busy timeout: the image that waited and those after it are named "not
    stored, send again" (they would only wait as long again), and nothing of them is written. Sent again, they
    land."""
    headers = _headers(client)
    monkeypatch.setattr(service.db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    client.app.state.engine.dispose()  # type: ignore[attr-defined]  # new connections take the short timeout
    frames = _frames(2)
    # Held until the answer is in (60 s only bounds a hang): past the 0.2 s busy timeout however slowly the request
    # reaches its first write, where a fixed hold could end before a slow machine's request even got there.
    holder = LockHolder(client.app.state.session_factory, hold_s=60)  # type: ignore[attr-defined]
    holder.start()
    assert holder.locked.wait(60)
    try:
        response = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "m2"}, files=frames)
    finally:
        holder.release.set()
        holder.join()
    assert response.status_code == 503, response.text  # a client reading only the status sends the batch again
    assert response.headers["Retry-After"] == "10"
    busy, after = response.json()
    assert (busy["sightings"], busy["incidents"]) == (0, [])
    assert busy["error"] == (
        "f0.jpg: not stored: the database stayed locked by another writer for 0.2 s; send this image again"
    )
    assert after["error"] == "f1.jpg: not stored: the database was busy with another writer; send this image again"
    assert _observations(client) == 0
    again = client.post("/api/v1/drone/images", headers=headers, data={"drone_id": "m2"}, files=frames)
    assert again.status_code == 200, again.text
    assert [(r["sightings"], r["error"]) for r in again.json()] == [(1, None), (1, None)]
    assert _observations(client) == 2
