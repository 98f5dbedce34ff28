"""A savepoint on the embedded SQLite is part of its transaction: an outer rollback undoes it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from service.db import make_engine


def test_a_released_savepoint_is_rolled_back_with_its_transaction(tmp_path: Path) -> None:
    """pysqlite began no transaction before a write, so a savepoint opened first began it and its RELEASE
    committed: a drone image's sightings stayed although the request that stored them failed later."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.commit()
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        savepoint = connection.begin_nested()
        connection.execute(text("INSERT INTO t VALUES (1)"))
        savepoint.commit()
        connection.rollback()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()
