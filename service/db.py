"""Database engine, sessions and the declarative base (SQLAlchemy 2, sync).

SQLite is the embedded default (WAL journal so readers never block the writer, foreign keys on, a busy timeout
so concurrent writers wait instead of failing). PostgreSQL is selected by URL. The schema is owned by Alembic
(:func:`upgrade`); nothing calls ``create_all`` outside tests of the migrations themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, StatementError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import DateTime, TypeDecorator

from satellite.errors import redact
from service.config import redact_url, url_secrets
from service.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable names for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: give a timezone (UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Server time, UTC, timezone-aware."""
    return datetime.now(UTC)


def make_data_dir(path: Path) -> None:
    """Create a data folder readable by its owner only (the SQLite file holds alert recipients' signing secrets and
    password hashes); an existing folder is left as it is."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the data folder {path}: {exc.strerror or exc}") from None


def make_engine(url: str) -> Engine:
    """Create an engine; for SQLite make sure the folder exists and set the pragmas."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        make_data_dir(Path(url.removeprefix("sqlite:///")).parent)
    # hide_parameters: a failed statement's message (logged, stored as a component's error) must not quote its
    # values, which may be a recipient's webhook token, a phone number or a password hash.
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"), hide_parameters=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the API serialises after committing)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs the packaged migrations on ``engine`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def driver_message(exc: StatementError) -> str:
    """The first line of what the database driver said: SQLAlchemy's own message goes on to quote the statement
    and its parameters, which may hold secrets (a webhook token, a password hash) and say nothing to a user."""
    cause: BaseException = exc.orig if exc.orig is not None else exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def open_database(url: str, revision: str = "head") -> Engine:
    """:func:`make_engine` and :func:`upgrade`, with the usual failures (a malformed URL, a server that is not
    there, a file that is not a database, an unknown revision) as one :class:`ConfigError` naming the database
    with its password hidden."""
    shown = redact_url(url)
    try:
        engine = make_engine(url)
    except (ArgumentError, ValueError) as exc:  # an unknown dialect, a port that is not a number
        raise ConfigError(f"database_url {shown} cannot be used: {exc}") from None
    try:
        upgrade(engine, revision)
    except CommandError as exc:
        engine.dispose()
        raise ConfigError(f"database {shown}: {exc}") from None
    except DBAPIError as exc:
        engine.dispose()
        reason = redact(driver_message(exc), *url_secrets(url), mask="***")
        raise ConfigError(f"cannot open the database {shown}: {reason}") from None
    return engine
