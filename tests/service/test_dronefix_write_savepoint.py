"""``write_savepoint``: a unit of writes that lands together; on SQLite it waits for another writer's lock."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.db import make_session_factory, transaction, utcnow, write_savepoint
from service.status.service import ALERT_WORKER, record_run
from service.status.tables import ComponentRun


def _runs(engine: Engine) -> int:
    with make_session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(ComponentRun)) or 0)


def _broken_unit(session: Session) -> None:
    with write_savepoint(session):
        record_run(session, "failed.unit", at=utcnow(), ok=True)
        raise RuntimeError("the image's second box broke")


def test_a_failed_unit_leaves_nothing_and_a_good_one_lands(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        with pytest.raises(RuntimeError):
            _broken_unit(session)
        with write_savepoint(session):
            record_run(session, ALERT_WORKER, at=utcnow(), ok=True)
        # On SQLite the unit is committed on its own, on PostgreSQL with the caller's transaction.
        assert _runs(engine) == (1 if engine.dialect.name == "sqlite" else 0)
    assert _runs(engine) == 1


def test_sqlite_unit_waits_for_the_lock_after_reading(engine: Engine) -> None:
    """A read inside the unit before its write: with the savepoint as a deferred transaction the write failed at
    once ("database is locked") while another connection held the lock; now the unit takes the lock first."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's lock upgrade; PostgreSQL locks rows")
    factory = make_session_factory(engine)
    locked = threading.Event()

    def hold() -> None:
        with transaction(factory) as other:
            record_run(other, "other.writer", at=utcnow(), ok=True)
            locked.set()
            time.sleep(0.8)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(5)
    with transaction(factory) as session, write_savepoint(session):
        session.scalar(select(func.count()).select_from(ComponentRun))
        record_run(session, ALERT_WORKER, at=utcnow(), ok=True)
    holder.join()
    assert _runs(engine) == 2
