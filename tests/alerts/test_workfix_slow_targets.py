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
from service.alerts.outbox import RETRY_HORIZON, SendingLanes, deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertStatus, Channel, RecipientRole
from service.alerts.worker import AlertWorker, run_once
from service.config import AlertSettings, Settings
from service.db import transaction
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from tests.alerts.conftest import escalation_events
from tests.alerts.test_outbox import ADMIN, factory, observation  # noqa: F401  (factory: the fixture)
from tests.httpserver import Receiver, Recorded, http_receiver

#: The senders' timeout here: the production 10 s, shortened so that a hanging target costs the test little, yet
#: long enough that the other targets' deliveries, which the tests require to end before it, do so on a loaded
#: machine too (they take ~0.1 s; at 1.5 s a slow run's last one could arrive after the hanging one timed out).
TIMEOUT_S = 5.0


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

    def last(self, path: str) -> float:
        with self.lock:
            return max(at for at, p, _ in self.at if p == path)


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


class Ended(httpx.HTTPTransport):
    """The real transport, noting when each path's first request ended (answered, timed out or failed): the tests
    order events by it instead of timing them."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        finally:
            self.at.setdefault(request.url.path, time.monotonic())


def sender(ended: Ended | None = None, timeout_s: float = TIMEOUT_S) -> ChannelSender:
    return ChannelSender(client=httpx.Client(timeout=timeout_s, transport=ended or Ended()))


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
        ended = Ended()
        report = deliver_due(factory, sender(ended), base_url="http://x", now=lambda: t0)
        # Every one of 东河乡's alerts arrived while 北岗镇's request still hung: nothing waited behind it.
        assert arrivals.last("/east") < ended.at["/north"]
        assert arrivals.keys("/east") == [f"{i}:2:new" for i in east]  # in the order queued
        assert arrivals.keys("/north") == [f"{north[0]}:1:new"]  # tried once (one timeout), not four times
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
        ended = Ended()
        escalation, delivery = run_once(factory, sender(ended), settings, now=t0 + timedelta(minutes=31))
        assert escalation.escalated == [east]
        assert arrivals.keys("/county") == [f"{east}:2:escalation:{int(t0.timestamp())}"]
        assert arrivals.first("/county") < ended.at["/north"]  # while 北岗镇's request still hung
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
        ended = Ended()
        worker = AlertWorker(factory, settings, sender(ended, timeout_s=8.0))
        worker.start()
        try:
            wait_until(lambda: bool(arrivals.keys("/north")), 10, "the first request to 北岗镇")
            (east,) = ingest(factory, township_fires("DEMO02", 1, first=100))
            wait_until(lambda: bool(arrivals.keys("/east")), 10, "东河乡's alert")
            assert arrivals.first("/east") < ended.at.get("/north", float("inf"))  # not after its 8 s timeout
            assert arrivals.keys("/east") == [f"{east}:2:new"]
            assert len(arrivals.keys("/north")) == 1  # one request at a time to a target
        finally:
            worker.stop(timeout=1.0)  # not the hanging request's 8 s: the block's end answers it
    # The hanging request ended with the block (answered): its sending thread has finished and recorded it.
    wait_until(
        lambda: not any(t.name.startswith("strawfire-alert-send") for t in threading.enumerate()), 15, "the senders"
    )


def test_alerts_held_back_for_24_hours_are_given_up_and_their_townships_escalated(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """北岗镇's channel refuses connections for a day: its first alert is tried and fails, the other two are held
    back behind it each pass. Past the retry horizon all three are given up together, and each fire's county is
    told the township could not be reached (held back counts as an undelivered attempt)."""
    with http_receiver() as gone:
        dead = gone.url
    add_recipient(factory, "DEMO01", dead + "/north")
    north = ingest(factory, township_fires("DEMO01", 3))
    t0 = datetime.now(UTC) + timedelta(seconds=1)
    for at in (t0, t0 + timedelta(hours=1), t0 + RETRY_HORIZON + timedelta(minutes=1)):
        deliver_due(factory, sender(), base_url="http://x", now=lambda at=at: at)
    held = alerts_of(factory, north)
    assert [(a.status, a.attempts) for a in held] == [(AlertStatus.FAILED.value, 3)] * 3
    with factory() as session:
        assert {session.get_one(Incident, i).state for i in north} == {IncidentState.ESCALATED.value}
    for incident_id in north:
        (event,) = escalation_events(factory, incident_id)
        assert event.note.startswith("the township could not be reached: the new-fire alert to DEMO01 failed")


def test_a_stopping_worker_starts_no_more_sends(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """Stopping the worker (Ctrl-C, the service's shutdown) while a slow channel's alerts go out one by one: the
    request under way ends, stop() returns once it has (the service closes the channels' HTTP client next), and no
    further request starts. The six alerts' sending had gone on for seconds after stop() returned, into a closed
    client. The rest stay pending, under the lease they were claimed with, and are sent when it has run out."""
    arrivals = Arrivals()

    def slowly(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.0)  # six alerts take 6 s one by one: stop() comes long before the last
        return 200, {}, b"{}"

    with http_receiver() as slow:
        slow.respond = arrivals.answer(slowly)
        add_recipient(factory, "DEMO01", slow.url + "/north")
        north = ingest(factory, township_fires("DEMO01", 6))
        settings = AlertSettings(public_base_url="http://x", poll_interval_s=0.2)
        worker = AlertWorker(factory, settings, sender())
        worker.start()
        wait_until(lambda: bool(arrivals.keys("/north")), 10, "the first request")
        worker.stop()
        when_stopped = len(arrivals.keys("/north"))
        time.sleep(1.5)
        assert len(arrivals.keys("/north")) == when_stopped
    assert when_stopped < 6  # the rest were never started
    statuses = [a.status for a in alerts_of(factory, north)]
    assert statuses.count(AlertStatus.SENT.value) == when_stopped
    assert statuses.count(AlertStatus.PENDING.value) == 6 - when_stopped


def test_a_sending_threads_error_fails_the_workers_pass(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """An error a sending thread did not expect (here the channels' HTTP client closed under it) was logged while
    the pass went on as a success, and the system status said the alert worker was well. The worker's pass raises
    it, as a pass that sends on its own threads does, and the worker records the failure."""
    closed = httpx.Client()
    closed.close()
    add_recipient(factory, "DEMO01", "http://127.0.0.1:9/north")
    ingest(factory, township_fires("DEMO01", 1))
    lanes = SendingLanes()
    try:
        with pytest.raises(RuntimeError, match="client has been closed"):
            deliver_due(
                factory,
                ChannelSender(client=closed),
                base_url="http://x",
                now=lambda: datetime.now(UTC) + timedelta(seconds=1),
                lanes=lanes,
            )
    finally:
        lanes.close()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
