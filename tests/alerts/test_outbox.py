"""The outbox on SQLite and PostgreSQL: exactly-once per recipient, backoff, digests, escalation deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.escalation import Deadlines, escalate_due
from service.alerts.outbox import backoff, deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertStatus, Channel, RecipientRole
from service.auth.service import Principal
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.flows import ingest_observations
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from tests.httpserver import Receiver, http_receiver

OBSERVED = datetime(2025, 10, 20, 3, 0, tzinfo=UTC)
ADMIN = Principal("admin", Role.ADMIN)
PATROL = Principal("p", Role.PATROL, "DEMO01")


def observation(i: int, lon: float, lat: float, minutes: int = 0) -> ObservationIn:
    pixel = shapely.box(lon - 0.003, lat - 0.003, lon + 0.003, lat + 0.003)
    return ObservationIn(
        ObservationKind.SATELLITE, f"sat-{i}", OBSERVED + timedelta(minutes=minutes), lat, lon, pixel, 0.8
    )


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    return factory


def setup(
    factory: sessionmaker[Session], receiver: Receiver, n_fires: int, rate: int | None = None
) -> tuple[list[int], datetime]:
    """Recipients and fires; returns the new incident ids and a clock start just after their alerts were queued."""
    with transaction(factory) as session:
        create_recipient(
            session,
            name="北岗镇群",
            unit_code="DEMO01",
            channel=Channel.WEBHOOK,
            target=receiver.url + "/town",
            secret="k",
            rate_per_min=rate,
        )
        create_recipient(
            session,
            name="县督导",
            unit_code="DEMO00",
            channel=Channel.WEBHOOK,
            target=receiver.url + "/county",
            role=RecipientRole.COUNTY,
        )
        # Fires 0.02° apart inside 北岗镇 (DEMO01): separate incidents.
        obs = [observation(i, 125.52 + 0.02 * (i % 5), 44.33 + 0.015 * (i // 5)) for i in range(n_fires)]
        summary = ingest_observations(session, obs, indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN)
    # Alerts are queued at the real time of ingest; the tests drive the clock forward from just after it.
    return summary.new_incidents, datetime.now(UTC) + timedelta(seconds=1)


def test_one_alert_per_incident_and_recipient_exactly_once(factory: sessionmaker[Session]) -> None:
    with http_receiver() as receiver:
        ids, t0 = setup(factory, receiver, 3)
        assert len(ids) == 3
        with transaction(factory) as session:  # re-ingesting the same observations queues nothing new
            ingest_observations(
                session,
                [observation(0, 125.52, 44.33)],
                indexes=RegionIndexCache(500),
                settings=Settings(),
                actor=ADMIN,
            )
        first = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        second = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=1))
        got = receiver.received()
    assert (first.sent, second.claimed) == (3, 0)
    assert sorted(r.headers["Idempotency-Key"] for r in got) == sorted(f"{i}:1:new" for i in ids)
    assert all(r.path == "/town" for r in got)
    with factory() as session:
        states = {i.state for i in session.scalars(select(Incident))}
    assert states == {IncidentState.NOTIFIED.value}


def test_a_failing_webhook_is_retried_with_backoff_and_delivered_after_recovery(
    factory: sessionmaker[Session],
) -> None:
    with http_receiver() as receiver:
        receiver.respond = lambda r: (500, {}, b"broken")
        _, t0 = setup(factory, receiver, 1)
        clock = t0
        attempts = []
        for _ in range(5):  # the receiver is down for these passes
            report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda clock=clock: clock)
            with factory() as session:
                alert = session.scalars(select(Alert)).one()
            attempts.append((report.retried, alert.attempts, alert.next_attempt_at - clock))
            clock = alert.next_attempt_at
        assert [a[1] for a in attempts] == [1, 2, 3, 4, 5]
        assert [a[2] for a in attempts] == [backoff(n) for n in range(1, 6)]  # 5 s, 10 s, 20 s …
        assert receiver.received() == []
        receiver.respond = lambda r: (200, {}, b"{}")
        early = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: clock - timedelta(seconds=1))
        assert early.claimed == 0  # not before its time
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: clock)
        assert report.sent == 1
        assert len(receiver.received()) == 1
    with factory() as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.status, alert.attempts, alert.last_error) == (
            "sent",
            6,
            f"http://127.0.0.1:{receiver.url.rsplit(':', 1)[1]}/…: HTTP 500",
        )


def test_rate_limit_turns_the_excess_into_one_township_digest(factory: sessionmaker[Session]) -> None:
    with http_receiver() as receiver:
        _, t0 = setup(factory, receiver, 6, rate=3)
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        got = receiver.received()
    assert report.sent == 6
    assert report.digests == 1
    assert len(got) == 1  # six due, three allowed: everything as one digest
    assert len(got[0].json()["digest"]) == 6


def test_escalation_reminds_then_escalates_to_the_county(factory: sessionmaker[Session]) -> None:
    with http_receiver() as receiver:
        (incident_id,), t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)  # notified at t0
        deadlines = Deadlines(acknowledge=timedelta(minutes=15), on_site=timedelta(minutes=30))
        for minutes, expected_state in ((10, "notified"), (16, "notified"), (31, "escalated")):
            at = t0 + timedelta(minutes=minutes)
            with transaction(factory) as session:
                escalate_due(session, at, default=deadlines)
            deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda at=at: at)
            with factory() as session:
                assert session.get_one(Incident, incident_id).state == expected_state
        paths = [(r.path, r.json()["kind"]) for r in receiver.received()]
    assert paths == [("/town", "new"), ("/town", "reminder"), ("/county", "escalation")]
    # The team acknowledges late; not on site 30 min later → escalated again, once.
    with transaction(factory) as session:
        incident = session.get_one(Incident, incident_id)
        incidents.transition(session, incident, IncidentState.ACKNOWLEDGED, PATROL, at=t0 + timedelta(minutes=40))
    for minutes in (80, 90):
        with transaction(factory) as session:
            report = escalate_due(session, t0 + timedelta(minutes=minutes), default=deadlines)
        assert report.escalated == ([incident_id] if minutes == 80 else [])
    with factory() as session:
        statuses = {a.status for a in session.scalars(select(Alert))}
    assert statuses <= {AlertStatus.SENT.value, AlertStatus.PENDING.value}


def test_every_missed_deadline_reaches_the_county_and_a_reopening_the_township(
    factory: sessionmaker[Session],
) -> None:
    """One alert per missed deadline: the second escalation (on site too late after acknowledging late) and the
    reminder after a reopening used to share the first one's key and reach nobody; a reopening itself alerted no
    one."""
    from service.flows import transition_incident

    deadlines = Deadlines(acknowledge=timedelta(minutes=15), on_site=timedelta(minutes=30))

    def tick(at: datetime) -> None:
        with transaction(factory) as session:
            escalate_due(session, at, default=deadlines)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: at)

    with http_receiver() as receiver:
        (incident_id,), t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)  # notified at t0
        tick(t0 + timedelta(minutes=31))  # not acknowledged in 30 min: escalated
        with transaction(factory) as session:
            incident = session.get_one(Incident, incident_id)
            incidents.transition(session, incident, IncidentState.ACKNOWLEDGED, PATROL, at=t0 + timedelta(minutes=35))
        tick(t0 + timedelta(minutes=70))  # not on site 30 min after acknowledging: escalated again
        with transaction(factory) as session:
            incident = session.get_one(Incident, incident_id)
            for minutes, target in ((75, IncidentState.ON_SITE), (80, IncidentState.EXTINGUISHED)):
                incidents.transition(session, incident, target, PATROL, at=t0 + timedelta(minutes=minutes))
            incidents.transition(
                session, incident, IncidentState.FEEDBACK, PATROL, feedback={"cause": "straw"},
                at=t0 + timedelta(minutes=85),
            )  # fmt: skip
            transition_incident(
                session, incident, IncidentState.REOPENED, ADMIN, note="still smoking", at=t0 + timedelta(minutes=90)
            )
            reopened_at = incident.reopened_at
        assert reopened_at is not None
        tick(reopened_at)  # the reopening's own alert
        tick(reopened_at + timedelta(minutes=16))  # not acknowledged again: a reminder
        paths = [(r.path, r.json()["kind"]) for r in receiver.received()]
    assert paths == [
        ("/town", "new"),
        ("/county", "escalation"),  # 31 min: not acknowledged
        ("/county", "escalation"),  # 70 min: not on site 30 min after acknowledging at 35
        ("/town", "new"),  # 90 min: reopened, back to the township at once
        ("/town", "reminder"),  # 106 min: the reopening not acknowledged
    ]


def test_per_county_deadlines(factory: sessionmaker[Session]) -> None:
    with http_receiver() as receiver:
        (incident_id,), t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        strict = {"DEMO00": Deadlines(acknowledge=timedelta(minutes=2))}
        with transaction(factory) as session:
            report = escalate_due(session, t0 + timedelta(minutes=5), per_county=strict)
    assert report.escalated == [incident_id]


def test_a_slow_batch_never_sends_an_alert_another_worker_took_over(factory: sessionmaker[Session]) -> None:
    """Worker A's batch outlives the lease it took on its second alert (slow channels, 10 s timeouts each);
    worker B claims that alert meanwhile and sends it. A must then skip it, not send it a second time."""
    calls: list[datetime] = []

    def a_clock() -> datetime:
        """A's clock: its batch starts at t0 (the claim, leases till t0+60); its first send starts at t0+50 (slow
        sends before it), its second at t0+75."""
        at = t0 if not calls else t0 + timedelta(seconds=50 if len(calls) == 1 else 75)
        calls.append(at)
        return at

    class SlowFirstSend(ChannelSender):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def send(self, destination: Any, messages: Any) -> None:
            self.calls += 1
            if self.calls == 1:  # while A's first send hangs, B runs at t0+70: alert 2's lease has run out
                deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(seconds=70))
            super().send(destination, messages)

    with http_receiver() as receiver:
        ids, t0 = setup(factory, receiver, 2)
        report = deliver_due(factory, SlowFirstSend(), base_url="http://x", now=a_clock)
        received = [r.json()["incident_id"] for r in receiver.received()]
    assert sorted(received) == sorted(ids)  # each alert once: B sent the second, A skipped it
    assert report.sent == 1
