"""One township's slow, dead or rate-limiting channel holds up nobody else's alerts (real HTTP servers on 127.0.0.1).

The audit: ten fires of a township whose receiver answered after 15 s held a neighbouring township's new-fire alert
106 s and a county escalation 45 s, each of the ten waiting out its own 10 s timeout one after another; a 429 with
``Retry-After`` stopped only the alert it answered, the pass sending that target five more requests within 0.3 s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.outbox import deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertStatus, Channel, RecipientRole
from service.alerts.worker import AlertWorker, run_once
from service.config import AlertSettings, Settings
from service.db import transaction
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn
from service.regions.service import RegionIndexCache
from tests.alerts.test_outbox import ADMIN, factory, observation  # noqa: F401  (factory: the fixture)
from tests.httpserver import Receiver, Recorded, http_receiver

#: The senders' timeout here: the production 10 s, shortened so that a hanging target costs the test little.
TIMEOUT_S = 1.5


def township_fires(township: str, n: int, first: int = 0) -> list[ObservationIn]:
    """``n`` fires 0.02° apart in 北岗镇 (DEMO01, north-west) or 东河乡 (DEMO02, north-east): separate incidents."""
    lon, lat = {"DEMO01": (125.52, 44.33), "DEMO02": (125.70, 44.30)}[township]
    return [observation(first + i, lon + 0.02 * (i % 4), lat + 0.015 * (i // 4)) for i in range(n)]


def ingest(factory: sessionmaker[Session], fires: list[ObservationIn]) -> list[int]:  # noqa: F811
    with transaction(factory) as session:
        summary = ingest_observations(session, fires, indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN)
    return summary.new_incidents


def add_recipient(
    factory: sessionmaker[Session],  # noqa: F811
    unit: str,
    target: str,
    role: RecipientRole = RecipientRole.TOWNSHIP,
) -> None:
    with transaction(factory) as session:
        create_recipient(session, name=f"{unit} 群", unit_code=unit, channel=Channel.WEBHOOK, target=target, role=role)


@dataclass
class Arrivals:
    """When each request reached a receiver (monotonic seconds), whatever it was answered."""

    at: list[tuple[float, str, str]] = field(default_factory=list)  # (when, path, Idempotency-Key)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(
        self, respond: Callable[[Recorded], tuple[int, dict[str, str], bytes]]
    ) -> Callable[[Recorded], tuple[int, dict[str, str], bytes]]:
        def record_then_respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
            with self.lock:
                self.at.append((time.monotonic(), request.path, request.headers.get("Idempotency-Key", "")))
            return respond(request)

        return record_then_respond

    def keys(self, path: str) -> list[str]:
        with self.lock:
            return [key for _, p, key in self.at if p == path]

    def first(self, path: str) -> float:
        with self.lock:
            return min(at for at, p, _ in self.at if p == path)


@contextmanager
def hanging_receiver(arrivals: Arrivals) -> Iterator[Receiver]:
    """A receiver that takes each request and does not answer (until the block ends): a channel that hangs."""
    released = threading.Event()
    with http_receiver() as receiver:
        receiver.respond = arrivals.answer(lambda r: (200, {}, b"{}") if released.wait(30) else (504, {}, b""))
        try:
            yield receiver
        finally:
            released.set()  # the server's threads end, and the block with them


def sender() -> ChannelSender:
    return ChannelSender(client=httpx.Client(timeout=TIMEOUT_S))


def alerts_of(factory: sessionmaker[Session], incident_ids: list[int]) -> list[Alert]:  # noqa: F811
    with factory() as session:
        return list(session.scalars(select(Alert).where(Alert.incident_id.in_(incident_ids)).order_by(Alert.id)))


def test_a_hanging_township_channel_holds_up_neither_the_neighbour_nor_its_own_other_alerts(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """北岗镇's channel hangs with four fires due; 东河乡 has three. 东河乡's alerts go out at once, in order, not
    after 北岗镇's timeouts; 北岗镇's channel is tried once, and its other three alerts wait with the first."""
    arrivals = Arrivals()
    with hanging_receiver(arrivals) as stuck, http_receiver() as working:
        working.respond = arrivals.answer(lambda r: (200, {}, b"{}"))
        add_recipient(factory, "DEMO01", stuck.url + "/north")
        add_recipient(factory, "DEMO02", working.url + "/east")
        north = ingest(factory, township_fires("DEMO01", 4))
        east = ingest(factory, township_fires("DEMO02", 3, first=100))
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        started = time.monotonic()
        report = deliver_due(factory, sender(), base_url="http://x", now=lambda: t0)
        took = time.monotonic() - started
        # Before the stuck channel's first timeout ran out: nothing waited behind it.
        assert arrivals.first("/east") - started < TIMEOUT_S
        assert arrivals.keys("/east") == [f"{i}:2:new" for i in east]  # in the order queued
        assert arrivals.keys("/north") == [f"{north[0]}:1:new"]  # tried once, not four times
    assert took < 2 * TIMEOUT_S  # one timeout, not four
    assert (report.sent, report.retried, report.failed) == (3, 4, 0)
    held = alerts_of(factory, north)
    assert {a.status for a in held} == {AlertStatus.PENDING.value}
    assert {a.last_error for a in held} == {f"{stuck.url}/…: ReadTimeout"}
    # Due again together, when the one that timed out is (its 5 s backoff); each counts as an undelivered attempt.
    assert {a.next_attempt_at for a in held} == {t0 + timedelta(seconds=5)}
    assert [a.attempts for a in held] == [1, 1, 1, 1]


def test_held_back_alerts_go_out_in_order_once_the_channel_is_back(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    arrivals = Arrivals()
    with http_receiver() as receiver:
        add_recipient(factory, "DEMO01", receiver.url + "/north")
        north = ingest(factory, township_fires("DEMO01", 3))
        receiver.respond = arrivals.answer(lambda r: (503, {"Retry-After": "7"}, b""))  # not a 429: no wait asked
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        first = deliver_due(factory, sender(), base_url="http://x", now=lambda: t0)
        # An HTTP 503 refuses one request, not the target: each alert was tried.
        assert len(arrivals.keys("/north")) == 3
        assert first.retried == 3
        receiver.respond = lambda r: (200, {}, b"{}")
        later = deliver_due(factory, sender(), base_url="http://x", now=lambda: t0 + timedelta(seconds=5))
        got = [r.headers["Idempotency-Key"] for r in receiver.received()]
    assert later.sent == 3
    assert got == [f"{i}:1:new" for i in north]


def test_a_429_with_retry_after_holds_every_alert_of_that_target_for_the_wait(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    arrivals = Arrivals()
    with http_receiver() as receiver, http_receiver() as other:
        receiver.respond = arrivals.answer(lambda r: (429, {"Retry-After": "7"}, b"slow down"))
        other.respond = arrivals.answer(lambda r: (200, {}, b"{}"))
        add_recipient(factory, "DEMO01", receiver.url + "/north")
        add_recipient(factory, "DEMO02", other.url + "/east")
        north = ingest(factory, township_fires("DEMO01", 6))
        east = ingest(factory, township_fires("DEMO02", 2, first=100))
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        report = deliver_due(factory, sender(), base_url="http://x", now=lambda: t0)
        assert len(arrivals.keys("/north")) == 1  # not six requests to a platform that said to wait
        assert len(arrivals.keys("/east")) == 2  # another target is not held by it
        assert (report.sent, report.retried) == (2, 6)
        waiting = alerts_of(factory, north)
        assert {a.next_attempt_at for a in waiting} == {t0 + timedelta(seconds=7)}
        assert {a.last_error for a in waiting} == {f"{receiver.url}/…: HTTP 429"}
        early = deliver_due(factory, sender(), base_url="http://x", now=lambda: t0 + timedelta(seconds=6))
        assert early.claimed == 0
        receiver.respond = lambda r: (200, {}, b"{}")
        after = deliver_due(factory, sender(), base_url="http://x", now=lambda: t0 + timedelta(seconds=7))
        got = [r.headers["Idempotency-Key"] for r in receiver.received()]
    assert after.sent == 6
    assert got == [f"{i}:1:new" for i in north]
    assert {a.status for a in alerts_of(factory, north + east)} == {AlertStatus.SENT.value}


def test_a_refused_connection_holds_back_the_rest_of_that_target_only(
    factory: sessionmaker[Session],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "strawfire.alerts")
    with http_receiver() as gone:
        dead = gone.url  # the port is closed once the block ends: connections are refused
    with http_receiver() as receiver:
        add_recipient(factory, "DEMO01", dead + "/north")
        add_recipient(factory, "DEMO02", receiver.url + "/east")
        north = ingest(factory, township_fires("DEMO01", 3))
        ingest(factory, township_fires("DEMO02", 1, first=100))
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        report = deliver_due(factory, sender(), base_url="http://x", now=lambda: t0)
        assert len(receiver.received()) == 1
    assert (report.sent, report.retried) == (1, 3)
    assert {a.last_error for a in alerts_of(factory, north)} == {f"{dead}/…: ConnectError"}
    # One connection tried; the other two alerts were not sent to a target that refuses connections.
    tried = [r.getMessage() for r in caplog.records if " failed: " in r.getMessage()]
    assert tried == [f"alert [{alerts_of(factory, north)[0].id}] to recipient 1 failed: {dead}/…: ConnectError"]
    held = [r.getMessage() for r in caplog.records if "their target is unavailable" in r.getMessage()]
    assert len(held) == 2


def test_the_county_hears_of_an_escalation_while_a_township_channel_hangs(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The worker's pass: 东河乡's fire was not acknowledged in 30 min and is escalated to the county while 北岗镇's
    channel hangs with four fires due; the county's alert goes out in the same pass, not after the timeouts."""
    arrivals = Arrivals()
    with hanging_receiver(arrivals) as stuck, http_receiver() as working:
        working.respond = arrivals.answer(lambda r: (200, {}, b"{}"))
        add_recipient(factory, "DEMO02", working.url + "/east")
        add_recipient(factory, "DEMO00", working.url + "/county", RecipientRole.COUNTY)
        (east,) = ingest(factory, township_fires("DEMO02", 1, first=100))
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        deliver_due(factory, sender(), base_url="http://x", now=lambda: t0)  # 东河乡 notified at t0
        add_recipient(factory, "DEMO01", stuck.url + "/north")
        ingest(factory, township_fires("DEMO01", 4))
        settings = AlertSettings(public_base_url="http://x")
        started = time.monotonic()
        escalation, delivery = run_once(factory, sender(), settings, now=t0 + timedelta(minutes=31))
        assert escalation.escalated == [east]
        assert arrivals.keys("/county") == [f"{east}:2:escalation:{int(t0.timestamp())}"]
        assert arrivals.first("/county") - started < TIMEOUT_S
    assert (delivery.sent, delivery.retried) == (1, 4)


def test_many_targets_at_once_each_get_their_alerts_exactly_once(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """Ten recipients of 北岗镇 on ten targets, three fires: thirty alerts sent side by side, each once, and every
    delivery recorded (the writes of the sending threads do not lose one another)."""
    with http_receiver() as receiver:
        for i in range(10):
            add_recipient(factory, "DEMO01", f"{receiver.url}/t{i}")
        fires = ingest(factory, township_fires("DEMO01", 3))
        t0 = datetime.now(UTC) + timedelta(seconds=1)
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        again = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=5))
        keys = sorted(r.headers["Idempotency-Key"] for r in receiver.received())
    assert (report.claimed, report.sent, again.claimed) == (30, 30, 0)
    assert keys == sorted(f"{i}:{r}:new" for i in fires for r in range(1, 11))
    assert {a.status for a in alerts_of(factory, fires)} == {AlertStatus.SENT.value}


def test_the_worker_sends_a_neighbours_new_fire_while_a_township_channel_still_hangs(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The looping worker: 北岗镇's channel takes a request and hangs (the sender's timeout is 8 s). A fire in 东河乡
    that comes in meanwhile is sent within a few seconds, not when that request times out; 北岗镇's channel is not
    sent a second request while the first is under way."""
    arrivals = Arrivals()
    with hanging_receiver(arrivals) as stuck, http_receiver() as working:
        working.respond = arrivals.answer(lambda r: (200, {}, b"{}"))
        add_recipient(factory, "DEMO01", stuck.url + "/north")
        add_recipient(factory, "DEMO02", working.url + "/east")
        ingest(factory, township_fires("DEMO01", 3))
        settings = AlertSettings(public_base_url="http://x", poll_interval_s=0.2)
        worker = AlertWorker(factory, settings, ChannelSender(client=httpx.Client(timeout=8.0)))
        worker.start()
        try:
            wait_until(lambda: bool(arrivals.keys("/north")), 10, "the first request to 北岗镇")
            came_in = time.monotonic()
            (east,) = ingest(factory, township_fires("DEMO02", 1, first=100))
            wait_until(lambda: bool(arrivals.keys("/east")), 10, "东河乡's alert")
            assert arrivals.first("/east") - came_in < 3.0  # not after the 8 s timeout
            assert arrivals.keys("/east") == [f"{east}:2:new"]
            assert len(arrivals.keys("/north")) == 1  # one request at a time to a target
        finally:
            worker.stop()
    # The hanging request ended with the block (answered): its sending thread has finished and recorded it.
    wait_until(
        lambda: not any(t.name.startswith("strawfire-alert-send") for t in threading.enumerate()), 15, "the senders"
    )


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
