"""Database engine, sessions and the declarative base (SQLAlchemy 2, sync).

SQLite is the embedded default (WAL journal so readers never block the writer, foreign keys on, a busy timeout
so concurrent writers wait instead of failing). PostgreSQL is selected by URL. The schema is owned by Alembic
(:func:`upgrade`); nothing calls ``create_all`` outside tests of the migrations themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, StatementError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import DateTime, TypeDecorator

from satellite.errors import redact
from service.config import redact_url, url_secrets
from service.errors import ConfigError, InputError, StrawfireError

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


#: How long a SQLite connection waits for another writer's lock before "database is locked" (PRAGMA busy_timeout).
SQLITE_BUSY_TIMEOUT_MS = 10_000


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
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
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


class DatabaseBusyError(StrawfireError):
    """SQLite's write lock stayed with another writer for the whole busy timeout; nothing of this unit was written
    and the same request can be sent again."""


def is_database_locked(exc: DBAPIError) -> bool:
    """Whether the driver said SQLITE_BUSY ("database is locked"): another connection holds the write lock."""
    return isinstance(exc.orig, sqlite3.OperationalError) and exc.orig.sqlite_errorcode == sqlite3.SQLITE_BUSY


@contextmanager
def write_savepoint(session: Session) -> Iterator[None]:
    """A savepoint for writes that must land together, which on SQLite waits for the write lock instead of failing.

    Why: outside a transaction, SQLite's ``SAVEPOINT`` begins a *deferred* transaction; its first read pins a
    snapshot, and its first write then has to upgrade that read to the write lock. While another connection holds
    the lock (or has committed since the snapshot) the upgrade fails at once with "database is locked": SQLite does
    not apply the busy timeout there, since waiting could not help a stale snapshot. The escalation pass writing
    while a drone batch was ingested made 3 of 8 uploads answer 500 well within the 10 s timeout. So on SQLite,
    when no transaction is open on the connection, this begins one with ``BEGIN IMMEDIATE`` (the write lock is
    taken first, waiting up to :data:`SQLITE_BUSY_TIMEOUT_MS`), nests the savepoint in it and commits it when the
    block ends: the unit is committed on its own, as the bare savepoint committed when released, and the lock is
    held for the block only (not for the detection of the next image). A lock not had within the timeout is a
    :class:`DatabaseBusyError` before anything is written. Inside an open transaction (pysqlite opens one at the
    first ``INSERT``/``UPDATE``/``DELETE``, which takes the write lock waiting as it should) and on PostgreSQL it is
    a plain savepoint, committed with the caller's transaction.

    The other writers (the alert worker's escalation and delivery passes, the API's writes, the pollers) begin
    with pysqlite's implicit transaction at their first write, which waits for the lock; they use no savepoints
    and are not affected. A global ``BEGIN IMMEDIATE`` on every transaction (SQLAlchemy's pysqlite recipe) would
    make every read (the dashboard, the paged lists) queue behind the writers too, so it is not used.
    """
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name != "sqlite" or driver.in_transaction:
        with session.begin_nested():
            yield
        return
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except DBAPIError as exc:
        if is_database_locked(exc):
            seconds = SQLITE_BUSY_TIMEOUT_MS / 1000
            raise DatabaseBusyError(f"the database stayed locked by another writer for {seconds:g} s") from None
        raise
    try:
        with session.begin_nested():
            yield
    except BaseException:
        if driver.in_transaction:
            connection.exec_driver_sql("ROLLBACK")
        raise
    connection.exec_driver_sql("COMMIT")


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs the packaged migrations on ``engine`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


class NewerDatabaseError(ConfigError):
    """The database's revision is not one of this release's migrations: a newer strawfire migrated it."""


def refuse_unknown_revisions(shown: str, revisions: Collection[str]) -> None:
    """Stop when a database stands at a revision this release does not know, saying what to do about it (Alembic's
    own words, "Can't locate revision identified by '0014'", read as a bug in strawfire). ``shown`` names the
    database (a path, or a URL with its password hidden).

    Raises:
        NewerDatabaseError: naming the database, its revision and this release's newest one.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = [revision for revision in revisions if revision not in known]
    if unknown:
        raise NewerDatabaseError(
            f"{shown}: this database was migrated by a newer strawfire (revision {', '.join(unknown)}; this release "
            f"knows up to {script.get_current_head()}): upgrade strawfire, or restore a backup made by this release"
        )


def _shown(engine: Engine) -> str:
    """The engine's database, fit to print (password hidden)."""
    return redact_url(engine.url.render_as_string(hide_password=False))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``. Every command that opens the database (``serve``, ``status``,
    ``db upgrade``, the reports) comes through here, so a database migrated by a newer release is refused first
    (:func:`refuse_unknown_revisions`); one without strawfire's schema yet passes."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    refuse_unknown_revisions(_shown(engine), current)
    command.upgrade(alembic_config(engine), revision)


@contextmanager
def sqlite_migration_mode(connection: Connection) -> Iterator[None]:
    """Run migrations on a SQLite ``connection`` with foreign keys off and each step in one real transaction.

    Batch mode recreates a table (copy, drop the old one, rename the copy), and with ``PRAGMA foreign_keys=ON``
    dropping a table that other tables' rows reference fails (0006's downgrade on any database with observations).
    The pragma is a no-op inside a transaction, so it is set on the driver connection before Alembic begins one;
    :func:`refuse_dangling_foreign_keys` then checks each step's result. Python's sqlite3 opens no transaction
    before DDL, so a failed step used to leave its half (an ``_alembic_tmp_*`` table that blocked the next try):
    here the driver is in autocommit mode and every SQLAlchemy transaction starts with ``BEGIN``, so a step is all
    or nothing. Deferred, not ``IMMEDIATE``: every command opens the database through here, and reading the
    revision must not wait for (or fail on) another process's long write when there is nothing to migrate. The
    connection goes back to the pool as it came: foreign keys on, the driver's own transaction handling.
    """
    if connection.in_transaction():
        connection.commit()  # Alembic must see no transaction of ours, or it never commits its own
    driver: Any = connection.connection.driver_connection
    saved_isolation_level = driver.isolation_level
    driver.isolation_level = None
    driver.execute("PRAGMA foreign_keys=OFF")

    def begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    event.listen(connection, "begin", begin)
    try:
        yield
    finally:
        event.remove(connection, "begin", begin)
        if connection.in_transaction():
            connection.rollback()
        driver.execute("PRAGMA foreign_keys=ON")
        driver.isolation_level = saved_isolation_level


class DanglingForeignKeysError(ConfigError):
    """A migration step on SQLite left rows whose foreign keys point at no row; the step was rolled back."""


def refuse_dangling_foreign_keys(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """Alembic ``on_version_apply`` hook for SQLite: ``PRAGMA foreign_key_check`` after each step, inside its
    transaction, so a step that breaks a reference (possible with foreign keys off) is rolled back instead of
    committed. Rows that were already dangling before (written with foreign keys off, e.g. by the ``sqlite3``
    shell) stop the migration too: the message names them so they can be fixed first."""
    assert ctx.connection is not None
    rows = ctx.connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if not rows:
        return
    by_reference: dict[tuple[str, str], list[int]] = {}
    for table, rowid, parent, _fkid in rows:
        by_reference.setdefault((str(table), str(parent)), []).append(int(rowid))
    found = "; ".join(
        f"{len(ids)} {table} row(s) referencing missing {parent} rows (rowid {', '.join(map(str, ids[:5]))}"
        + (", …)" if len(ids) > 5 else ")")
        for (table, parent), ids in sorted(by_reference.items())
    )
    lower, upper = "/".join(step.down_revision_ids) or "base", "/".join(step.up_revision_ids) or "base"
    moved = f"{lower} → {upper}" if step.is_upgrade else f"{upper} → {lower}"
    raise DanglingForeignKeysError(
        f"migration step {moved} rolled back: PRAGMA foreign_key_check finds {found}; "
        "fix or delete those rows (sqlite3 shell: PRAGMA foreign_key_check) and run it again"
    )


@dataclass(frozen=True)
class DowngradeLoss:
    """Something undoing one revision drops or changes, and the query counting it at that revision."""

    what: str
    count_sql: str


def _dropped(what: str, table: str, note: str = "") -> DowngradeLoss:
    """A table the step drops, with every row in it."""
    count_sql = f"SELECT count(*) FROM {table}"  # noqa: S608  (table names from the constant below only)
    return DowngradeLoss(f"{what} dropped" + (f" ({note})" if note else ""), count_sql)


#: What undoing each revision loses (``()``: nothing but schema). Every revision must have an entry (a test checks
#: it), so a new migration has to say what going below it costs. Counts are read before anything is changed.
DOWNGRADE_LOSSES: dict[str, tuple[DowngradeLoss, ...]] = {
    "0013": (
        DowngradeLoss(
            "patrol reports become drone observations (details kept)",
            "SELECT count(*) FROM observations WHERE kind = 'patrol'",
        ),
    ),
    "0012": (
        DowngradeLoss("withdrawn alerts become failed ones", "SELECT count(*) FROM alerts WHERE status = 'withdrawn'"),
    ),
    "0011": (),
    "0010": (),
    "0009": (_dropped("component status rows", "component_runs", "rebuilt by the next runs"),),
    "0008": (_dropped("camera heartbeats", "camera_heartbeats"),),
    "0007": (_dropped("FIRMS history pixels", "hotspot_history"),),
    "0006": (
        DowngradeLoss(
            "repeat-at-site links between incidents dropped",
            "SELECT count(*) FROM incidents WHERE repeat_of_incident_id IS NOT NULL",
        ),
    ),
    "0005": (_dropped("registered cameras", "cameras"),),
    "0004": (_dropped("evidence photo records", "evidence", "their files stay in the data folder"),),
    "0003": (_dropped("alerts", "alerts"), _dropped("alert recipients", "recipients")),
    "0002": (
        _dropped("incidents", "incidents"),
        _dropped("observations", "observations"),
        _dropped("incident events", "incident_events"),
        _dropped("users", "users"),
    ),
    "0001": (_dropped("region units", "regions"), _dropped("region imports", "region_imports")),
}


@dataclass(frozen=True)
class DowngradeStep:
    """One revision a downgrade undoes, with what it would lose in this database (counts above 0 only)."""

    revision: str
    down_to: str  # the revision below it, or "base"
    title: str  # the first paragraph of the migration's docstring
    losses: tuple[tuple[DowngradeLoss, int], ...]


def downgrade_plan(engine: Engine, target: str) -> tuple[str, list[DowngradeStep]]:
    """The database's revision and the steps (newest first) a downgrade to ``target`` would undo, with the rows
    each one drops or changes. ``target`` is a revision, ``base`` or relative (``-1``); a target that is not below
    the database's revision, or that this release does not know, is an :class:`InputError`."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current is None:
            raise InputError("the database has no strawfire schema yet: nothing to downgrade")
        refuse_unknown_revisions(_shown(engine), [current])
        try:
            revisions = list(script.iterate_revisions(current, _below(script, current, target)))
        except RevisionError as exc:
            raise InputError(f"cannot downgrade from {current} to {target!r}: {exc}") from None
        steps = []
        for revision in revisions:
            losses = []
            for loss in DOWNGRADE_LOSSES[revision.revision]:
                count = int(connection.execute(text(loss.count_sql)).scalar_one())
                if count:
                    losses.append((loss, count))
            title = " ".join((revision.doc or "").replace("``", "").split())  # the docstring's first paragraph
            down_to = revision.down_revision if isinstance(revision.down_revision, str) else "base"
            steps.append(DowngradeStep(revision.revision, down_to, title, tuple(losses)))
    return current, steps


def _below(script: ScriptDirectory, current: str, target: str) -> str:
    """``target`` with ``-N`` counted down from the database's revision (Alembic's revision map counts relative
    revisions from the newest script, which is not where a database that is already below it stands)."""
    steps = target.strip()
    if not (steps.startswith("-") and steps[1:].isdigit()):
        return target
    revision: str | None = current
    for done in range(int(steps[1:])):
        if revision is None:
            raise InputError(f"cannot go {steps[1:]} steps down from {current}: it is {done} steps above base")
        down = script.get_revision(revision).down_revision
        revision = down if isinstance(down, str) else None
    return revision or "base"


def downgrade(engine: Engine, target: str) -> None:
    """Undo migrations down to ``target`` (:func:`downgrade_plan` says what that loses)."""
    command.downgrade(alembic_config(engine), target)


def driver_message(exc: StatementError) -> str:
    """The first line of what the database driver said: SQLAlchemy's own message goes on to quote the statement
    and its parameters, which may hold secrets (a webhook token, a password hash) and say nothing to a user."""
    cause: BaseException = exc.orig if exc.orig is not None else exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def database_engine(url: str) -> Engine:
    """:func:`make_engine`, with a malformed URL (an unknown dialect, a port that is not a number) as a
    :class:`ConfigError` naming the database with its password hidden."""
    try:
        return make_engine(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"database_url {redact_url(url)} cannot be used: {exc}") from None


@contextmanager
def database_errors(url: str, doing: str = "open") -> Iterator[None]:
    """Alembic's and the driver's usual failures (a server that is not there, a file that is not a database, an
    unknown revision) as one :class:`ConfigError` naming the database with its password hidden."""
    shown = redact_url(url)
    try:
        yield
    except CommandError as exc:
        raise ConfigError(f"database {shown}: {exc}") from None
    except DBAPIError as exc:
        reason = redact(driver_message(exc), *url_secrets(url), mask="***")
        raise ConfigError(f"cannot {doing} the database {shown}: {reason}") from None


def open_database(url: str, revision: str = "head") -> Engine:
    """:func:`database_engine` and :func:`upgrade`, failures as :func:`database_errors` gives them."""
    engine = database_engine(url)
    try:
        with database_errors(url):
            upgrade(engine, revision)
    except ConfigError:
        engine.dispose()
        raise
    return engine
