"""Two targets' deliveries recorded side by side over the same incidents do not deadlock on PostgreSQL: the outbox
writes (and locks) the incidents it moves in id order, whatever the order of the alerts (``lock_incidents``).

北岗镇 has two recipients (two targets, sent to side by side by the worker); each is told of the same two new fires
in one digest. The second recipient's alerts were queued in the opposite order of the fires (as a reopening, a move
or a re-armed alert leaves them), so recording its delivery moved the fires to ``notified`` in the opposite order of
the first's. Ordered by events, not by time: the first delivery holds its first fire's row until the second has
either written its own first fire (the alerts' order: each then waits for the other, and PostgreSQL's deadlock
detector rolls one back) or is seen waiting for a lock (the incidents' order: it waits for the first, then records
after it, from the fresh state).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.outbox import RETRY_HORIZON, _delivered, _failed, _queue
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertKind, AlertStatus, Channel, Recipient
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.flows import ingest_observations
from service.incidents.states import IncidentState
from service.incidents.tables import Incident, IncidentEvent
from service.regions.service import RegionIndexCache
from tests.alerts.test_outbox import ADMIN, observation

#: A safety net for each wait: every one ends on an event long before.
PATIENCE_S = 60.0


#: PostgreSQL only (the ``engine`` fixture's): SQLite has one writer at a time, and no row locks to take in an order.
ON_POSTGRES = pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def _two_fires_queued_in_opposite_orders(factory: sessionmaker[Session]) -> tuple[list[int], list[int], list[int]]:
    """Two new fires of 北岗镇; recipient 1's alerts queued fire by fire, recipient 2's in the opposite order. The
    fires' ids, and each recipient's alert ids in the order queued."""
    with transaction(factory) as session:
        load_demo(session)
        first = create_recipient(
            session, name="北岗镇群", unit_code="DEMO01", channel=Channel.WEBHOOK, target="http://127.0.0.1:9/a"
        )
        fires = ingest_observations(
            session,
            [observation(0, 125.52, 44.33), observation(1, 125.56, 44.33)],
            indexes=RegionIndexCache(500),
            settings=Settings(),
            actor=ADMIN,
        ).new_incidents
        second = create_recipient(
            session, name="北岗镇短信", unit_code="DEMO01", channel=Channel.WEBHOOK, target="http://127.0.0.1:9/b"
        )
        incidents = [session.get_one(Incident, number) for number in reversed(fires)]
        recipient = session.get_one(Recipient, second.id)
        _queue(session, [(incident, recipient) for incident in incidents], AlertKind.NEW, round_no=0, now=None)
    with factory() as session:
        alerts = session.scalars(select(Alert).order_by(Alert.id)).all()
        by_recipient = {r: [a.id for a in alerts if a.recipient_id == r] for r in (first.id, second.id)}
        # The premise: the two recipients' alerts name the fires in opposite orders.
        order = {a.id: a.incident_id for a in alerts}
        assert [order[i] for i in by_recipient[first.id]] == sorted(fires)
        assert [order[i] for i in by_recipient[second.id]] == sorted(fires, reverse=True)
    return sorted(fires), by_recipient[first.id], by_recipient[second.id]


@ON_POSTGRES
def test_deliveries_over_the_same_incidents_in_opposite_orders_do_not_deadlock(engine: Engine) -> None:
    factory = make_session_factory(engine)
    fires, first_alerts, second_alerts = _two_fires_queued_in_opposite_orders(factory)
    first_wrote = threading.Event()  # the first delivery has written its first incident row
    second_wrote = threading.Event()  # the second delivery has written an incident row
    failures: dict[str, BaseException] = {}

    def second_is_waiting_for_a_lock() -> bool:
        with engine.connect() as connection:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
            ).scalar_one()
        return bool(waiting)

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith("UPDATE INCIDENTS"):
            return
        name = threading.current_thread().name
        if name == "second":
            second_wrote.set()
        elif name == "first" and not first_wrote.is_set():
            first_wrote.set()
            # Hold this row until the second delivery wrote one of its own, or waits for a lock.
            deadline = time.monotonic() + PATIENCE_S
            while not (second_wrote.is_set() or second_is_waiting_for_a_lock()):
                assert time.monotonic() < deadline, "the second delivery neither wrote nor waited"
                time.sleep(0.01)

    at = datetime.now(UTC)

    def deliver(name: str, alert_ids: list[int], after: threading.Event | None) -> None:
        try:
            if after is not None:
                assert after.wait(PATIENCE_S), "the first delivery never wrote an incident"
            _delivered(factory, alert_ids, at, digest=True)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures[name] = exc

    event.listen(engine, "after_cursor_execute", on_statement)
    try:
        threads = [
            threading.Thread(target=deliver, args=("first", first_alerts, None), name="first"),
            threading.Thread(target=deliver, args=("second", second_alerts, first_wrote), name="second"),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE_S)
    finally:
        event.remove(engine, "after_cursor_execute", on_statement)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == {}, failures  # without the order: psycopg.errors.DeadlockDetected in one of them
    with factory() as session:
        statuses = set(session.scalars(select(Alert.status)))
        states = [session.get_one(Incident, number).state for number in fires]
        notified = session.scalars(
            select(IncidentEvent.incident_id)
            .where(IncidentEvent.to_state == IncidentState.NOTIFIED.value)
            .order_by(IncidentEvent.incident_id)
        ).all()
    assert statuses == {AlertStatus.SENT.value}
    assert states == [IncidentState.NOTIFIED.value] * 2
    assert notified == fires  # each fire notified once, by whichever delivery came first


@ON_POSTGRES
def test_a_delivery_writes_its_incidents_in_id_order(engine: Engine) -> None:
    """The second recipient's digest names the later fire first: the fires' rows are written in id order all the
    same."""
    factory = make_session_factory(engine)
    fires, _, second_alerts = _two_fires_queued_in_opposite_orders(factory)
    written: list[int] = []

    def on_statement(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE INCIDENTS"):
            rows = parameters if isinstance(parameters, list) else [parameters]
            written.extend(int(row["incidents_id"]) for row in rows)

    event.listen(engine, "after_cursor_execute", on_statement)
    try:
        _delivered(factory, second_alerts, datetime.now(UTC), digest=True)
    finally:
        event.remove(engine, "after_cursor_execute", on_statement)
    assert written == fires  # the alerts' order was fires[1], fires[0]


@ON_POSTGRES
def test_alerts_given_up_lock_their_incidents_in_id_order_without_waiting_for_new_events(engine: Engine) -> None:
    """Alerts given up (past the retry horizon) lock their incidents, to escalate an unreached township once: in id
    order, and ``FOR NO KEY UPDATE``, which an event or alert added to the incident (a key-share lock) does not wait
    for, nor it for them."""
    factory = make_session_factory(engine)
    _, _, second_alerts = _two_fires_queued_in_opposite_orders(factory)
    locks: list[str] = []

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        flat = " ".join(statement.split()).upper()
        if "FROM INCIDENTS" in flat and " FOR " in flat:
            locks.append(flat)

    event.listen(engine, "after_cursor_execute", on_statement)
    try:
        outcome = _failed(factory, second_alerts, "HTTP 500", None, datetime.now(UTC) + RETRY_HORIZON + timedelta(1))
    finally:
        event.remove(engine, "after_cursor_execute", on_statement)
    assert outcome == "failed"
    (lock,) = locks
    assert lock.endswith("ORDER BY INCIDENTS.ID FOR NO KEY UPDATE"), lock
