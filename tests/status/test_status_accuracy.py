"""The system status where the first version misreported: alerts given up, a FIRMS poll run apart from the web
process, database errors in stored messages, and the per-kind arrivals on a large observations table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.outbox import deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertStatus, Channel
from service.alerts.worker import AlertWorker
from service.config import AlertSettings, Settings
from service.db import transaction, utcnow
from service.status import service as status
from service.status.tables import ComponentRun
from tests.alerts.test_outbox import factory, setup  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.httpserver import http_receiver


def test_an_alert_given_up_today_is_counted_and_is_a_problem(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """The outbox gives an alert up at its first failed attempt more than 24 h after it was queued: by then its
    ``created_at`` is more than a day old. Counted by ``created_at``, such an alert was never among "the alerts of
    the last 24 h given up", and the ``alerts_failed`` problem could not appear."""
    settings = Settings()
    with http_receiver() as receiver:
        receiver.respond = lambda r: (500, {}, b"broken")
        _, t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)  # a first failure: retried
        with factory() as session:
            assert status.alerts_status(session, settings, now=t0).failed_24h == 0
        given_up = t0 + timedelta(hours=25)  # the bot stayed broken all day
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: given_up)
    assert report.failed == 1  # the township's alert (the county is alerted on escalation)
    with factory() as session:
        # The township could not be reached: the county's escalation is queued (outbox.escalate_unreachable).
        assert {(a.kind, a.status) for a in session.scalars(select(Alert))} == {
            ("new", AlertStatus.FAILED.value),
            ("escalation", AlertStatus.PENDING.value),
        }
        soon = status.system_status(session, settings, now=given_up + timedelta(minutes=5))
        next_day = status.alerts_status(session, settings, now=given_up + timedelta(hours=25))
    assert soon.alerts.failed_24h == 1
    assert "alerts_failed" in [p.code for p in soon.problems]
    assert next_day.failed_24h == 0  # given up more than a day ago


def test_a_firms_poll_run_apart_from_the_web_process_is_judged_once_it_has_run(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The default deployment polls FIRMS with ``strawfire firms poll [--loop]`` (``poll_interval_min`` 0, the
    MAP_KEY in that command's environment only). A revoked key there made every poll fail, and the status of the
    web process, which does not poll, said ``ok``. A source no longer configured is still shown, not judged."""
    web = Settings(firms={"sources": ["VIIRS_SNPP_NRT", "MODIS_NRT"]})
    now = utcnow()
    with factory() as session:
        assert status.components(session, web, now=now) == [
            status.ComponentStatus("alerts.worker", "never_run", True, 120.0)
        ]  # a FIRMS poll that never ran here is not expected: FIRMS may not be used at all
    with transaction(factory) as session:
        for minutes in (20, 10):
            status.record_run(
                session,
                "firms:VIIRS_SNPP_NRT",
                at=now - timedelta(minutes=minutes),
                ok=False,
                error="FirmsApiError: the MAP_KEY was refused",
            )
        status.record_run(session, "firms:MODIS_NRT", at=now - timedelta(minutes=5), ok=True, detail={"hotspots": 3})
        status.record_run(session, "firms:VIIRS_NOAA21_NRT", at=now - timedelta(days=9), ok=True)
        status.record_run(session, "alerts.worker", at=now, ok=True)
    with factory() as session:
        found = status.system_status(session, web, now=now)
    parts = {p.name: (p.state, p.expected) for p in found.components}
    assert parts == {
        "alerts.worker": ("ok", True),
        "firms:VIIRS_SNPP_NRT": ("failing", True),
        "firms:MODIS_NRT": ("ok", True),
        "firms:VIIRS_NOAA21_NRT": ("late", False),  # no longer configured: shown, not judged
    }
    assert [(p.code, p.component) for p in found.problems] == [("component_failing", "firms:VIIRS_SNPP_NRT")]
    assert found.problems[0].message == (
        "the FIRMS poll of VIIRS_SNPP_NRT has never succeeded (2 attempt(s)); last error: FirmsApiError: the MAP_KEY "
        "was refused"
    )


def test_a_database_error_is_stored_without_its_statement_and_parameters(
    factory: sessionmaker[Session],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass that fails in a query is stored (and shown to supervisors) as the database's reason: SQLAlchemy's
    message also quotes the statement and its parameters, here a Feishu bot's address with its token in the path,
    which :func:`~video.sources.redact_url` does not recognise."""
    token = "PATHTOKEN0123456789abcdef"
    with transaction(factory) as session:
        create_recipient(
            session,
            name="北岗镇群",
            unit_code="DEMO01",
            channel=Channel.FEISHU,
            target=f"https://open.feishu.cn/open-apis/bot/v2/hook/{token}",
        )

    def broken_query(session: Session, target: str, now: Any) -> int:  # a query the database refuses
        return int(session.execute(text("SELECT no_such_column FROM recipients WHERE target = :t"), {"t": target}))

    with http_receiver() as receiver:
        setup(factory, receiver, 1)
    monkeypatch.setattr("service.alerts.outbox._sent_recently", broken_query)
    worker = AlertWorker(factory, AlertSettings(poll_interval_s=0.05))
    worker.start()
    deadline = time.monotonic() + 20
    row = None
    while time.monotonic() < deadline:
        with factory() as session:
            row = session.get(ComponentRun, "alerts.worker")
        if row is not None and row.consecutive_failures:
            break
        time.sleep(0.05)
    worker.stop()
    assert row is not None
    assert row.last_error is not None
    assert token not in row.last_error
    assert "[SQL" not in row.last_error
    assert "parameters" not in row.last_error
    assert row.last_error.startswith(("ProgrammingError: ", "OperationalError: "))
    assert "no_such_column" in row.last_error  # the database's own reason


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_the_arrivals_per_kind_are_read_from_indexes(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """``observations`` is the largest table (every hotspot and sighting, kept for years): the status, polled by a
    monitoring timer and the dashboard, must not read all of it. One GROUP BY over the table read every row (a
    sequential scan on PostgreSQL, a full index scan on SQLite); each query on it must be an index search."""
    with http_receiver() as receiver:
        setup(factory, receiver, 3)
    engine = factory.kw["bind"]
    with factory() as session, _statements(engine) as seen:
        feeds = status.observation_feeds(session, now=utcnow())
    assert [(f.kind, f.received_24h) for f in feeds] == [("satellite", 3)]
    on_observations = [(s, p) for s, p in seen if "observations" in s]
    assert on_observations
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")  # what the planner does with a large table
            for statement, parameters in on_observations:
                plan = [row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)]
                scans = [i for i, line in enumerate(plan) if " on observations" in line]
                assert scans, plan
                for i in scans:
                    assert "Seq Scan" not in plan[i], plan
                    assert "Index Cond" in "".join(plan[i + 1 : i + 3]), plan  # a search, not a full index scan
        else:
            for statement, parameters in on_observations:
                plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                steps = [step for step in plan if " observations" in step]
                assert steps, plan
                assert all(step.startswith("SEARCH observations") for step in steps), plan
