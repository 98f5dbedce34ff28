"""The ``strawfire`` command: one Typer app with a sub-command group per area.

Errors strawfire raises on purpose are printed as one line on stderr (exit status 2); they name the file,
line and field, and never contain secrets.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from detector.cli import app as detector_app
from satellite.cli import app as satellite_app
from service.config import get_settings
from service.errors import InputError, StrawfireError
from service.incidents.freshness import OLD_ROWS_AFTER, old_new_rows, old_rows_warning
from service.regions.types import RegionLevel
from service.reports.cli import report
from video.cli import camera_app, drone_app

if TYPE_CHECKING:
    import socket

    import uvicorn
    from sqlalchemy.orm import Session, sessionmaker

    from service.config import Settings
    from service.firms_poll import BackfillReport
    from video.patrol import PatrolReport
    from video.registry import CameraRegistry

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="strawfire: find straw burning and drive the response to it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # help from docstrings: lines joined, ``code`` shown; rich markup would eat [brackets]
)
db_app = typer.Typer(help="Database migrations and backups.", no_args_is_help=True)
regions_app = typer.Typer(help="Administrative units: import, list, assign places to them.", no_args_is_help=True)
demo_app = typer.Typer(help="The generated DEMO region and scenario.", no_args_is_help=True)
users_app = typer.Typer(help="Users, roles and device tokens.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alert recipients and the delivery worker.", no_args_is_help=True)
firms_app = typer.Typer(help="NASA FIRMS hotspots: ingest files, import archives as history.", no_args_is_help=True)
training_app = typer.Typer(help="Training data from the field: judged sighting frames.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(regions_app, name="regions")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(detector_app, name="detector")
app.add_typer(drone_app, name="drone")
app.add_typer(camera_app, name="camera")
app.add_typer(satellite_app, name="satellite")
app.add_typer(alerts_app, name="alerts")
app.add_typer(firms_app, name="firms")
app.add_typer(training_app, name="training")
app.command("report")(report)

# markup off: messages quote files, rows and names from outside ("[/bold]" in a CSV cell is text, not a style)
err = Console(stderr=True, markup=False)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn strawfire's own errors into a one-line message and exit status 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except StrawfireError as exc:
            err.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


#: One log line: local time, level, logger name, message (uvicorn's lines too).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: strawfire's own loggers, whose level ``log_level`` (STRAWFIRE_LOG_LEVEL) sets: the service's ("strawfire.*")
#: and the sensing packages' (named by module).
OWN_LOGGERS = ("strawfire", "service", "satellite", "video", "detector")


class _StderrLogHandler(logging.Handler):
    """Writes each record to ``sys.stderr`` as it is when the record comes (not when the handler was made)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _configure_logging(level: str) -> None:
    """Log to stderr, one :data:`LOG_FORMAT` line per record, for ``strawfire serve`` and the long-running
    commands (``alerts worker``, ``firms poll --loop``, ``patrol``).

    ``level`` (the ``log_level`` setting) is that of strawfire's own loggers (:data:`OWN_LOGGERS`); other
    libraries' records show from WARNING up (or from ``level`` when it is higher): at INFO, httpx would log every
    request's URL. Filters that redact secrets sit on the loggers that make the records (httpx's, sentinelhub's,
    satellite.sentinel's), so they apply to every line whatever the level. Calling it again replaces the handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrLogHandler)]:
        root.removeHandler(old)
    handler = _StderrLogHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    numeric = logging.getLevelName(level)
    root.setLevel(max(logging.WARNING, numeric))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(numeric)


def _session_factory() -> sessionmaker[Session]:
    from service.db import make_session_factory, open_database

    return make_session_factory(open_database(get_settings().effective_database_url))


@app.command()
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings: 127.0.0.1).")] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port (default from settings: 8000); 0: a free one the system picks."),
    ] = None,
    demo: Annotated[
        bool | None, typer.Option("--demo/--no-demo", help="Load the DEMO region when no real one exists.")
    ] = None,
    port_file: Annotated[
        Path | None,
        typer.Option(help="Write the port it listens on to this file (one line) once bound; removed when it stops."),
    ] = None,
) -> None:
    """Start the service on the configured database (migrations are applied at start).

    The address is taken first: on one another process holds (a server already running there), the command exits
    with status 3 before anything is read or written, instead of running the app's start-up (which points the DEMO
    inbox's recipients at its own, new secret) and only then failing to listen. With `--port 0` the system picks a
    free port: the log's `listening on http://HOST:PORT` line and `--port-file` say which.

    SIGTERM (`systemctl stop`, `docker stop`) or Ctrl+C stops it gracefully: requests under way finish, the alert
    worker finishes its sends, then it exits with status 0. Status 1 when that shutdown did not complete (a second
    Ctrl+C cuts it short, or the app's shutdown failed), 2 for bad input, 3 when it cannot start serving."""
    import contextlib

    import uvicorn

    from service.db import make_data_dir, make_session_factory, open_database
    from service.main import create_app, refuse_public_demo_passwords, token_secret

    settings = get_settings()
    # The app knows where it listens: the DEMO inbox's recipients deliver to this address (service.demo_inbox).
    settings = settings.model_copy(
        update={
            "demo": settings.demo if demo is None else demo,
            "host": host or settings.host,
            "port": settings.port if port is None else port,
        }
    )
    _configure_logging(settings.log_level)
    sock = _bind_listening_socket(settings.host, settings.port)
    # --port 0: the port the system picked, where the app (the DEMO inbox's recipients) and the log say it listens.
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    # From here on a stop is a stop, not a kill: SIGTERM while the database is opened (migrations may take a while)
    # used to end the process with status -15 and leave the port file behind.
    with _StopSignals() as stop, contextlib.ExitStack() as cleanup:
        cleanup.callback(sock.close)
        if port_file is not None:
            _write_port_file(port_file, settings.port)
            cleanup.callback(_remove_port_file, port_file, settings.port)
        # What the start needs, checked here: a failure inside uvicorn's start-up would be a traceback.
        make_data_dir(settings.data_dir)
        token_secret(settings)
        engine = open_database(settings.effective_database_url)
        try:
            if not settings.demo:
                refuse_public_demo_passwords(make_session_factory(engine))
            _warn_of_unreachable_alert_links(make_session_factory(engine), settings)
        finally:
            engine.dispose()
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's loggers write through _configure_logging's handler: one format
        )
        server = uvicorn.Server(config)
        # uvicorn does not say where it listens when given a socket (it expects whoever bound it to, as its own
        # multi-worker start does): the address the README's first steps open.
        shown = f"[{settings.host}]" if ":" in settings.host else settings.host
        if stop.requested:  # before the server ran: nothing to shut down
            logging.getLogger("strawfire").info("stopped before serving")
            return
        logging.getLogger("strawfire").info("listening on http://%s:%d (press Ctrl+C to quit)", shown, settings.port)
        stop.server = server
        _run_until_stopped(server, sock)


def _warn_of_unreachable_alert_links(factory: sessionmaker[Session], settings: Settings) -> None:
    """Log a warning at the start of ``strawfire serve`` when real recipients get alerts whose links no phone can
    open (``alerts.public_base_url`` left at its loopback default, or on another port than this server's): the
    status's ``alert_links_unreachable`` problem, said where the person who starts the server looks. A warning, not
    a refusal: the alerts themselves still go out, and a server on one's own machine is a fair way to try it."""
    from service.status.service import alert_links_problem, real_recipients

    with factory() as session:
        problem = alert_links_problem(settings, real_recipients(session))
    if problem is not None:
        logging.getLogger("strawfire").warning("%s", problem.message)


#: `strawfire serve`'s exit status when it cannot start serving: uvicorn's own (its STARTUP_FAILURE).
_STARTUP_FAILURE = 3


class _StopSignals:
    """SIGINT and SIGTERM, while ``strawfire serve`` runs, note a stop (:attr:`requested`) and tell :attr:`server`,
    once there is one, to exit gracefully; the handlers found before are put back at the end. Outside the main
    thread (a test calling the command from another one) nothing is installed: signals go to the main thread."""

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.server is not None:  # a signal before uvicorn takes the handlers over still stops it
            self.server.should_exit = True

    def __enter__(self) -> _StopSignals:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._note) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self._previous.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back from it
                signal.signal(sig, handler)


def _run_until_stopped(server: uvicorn.Server, sock: socket.socket) -> None:
    """Run ``server`` on ``sock`` until SIGTERM or SIGINT stops it, and return once its graceful shutdown is over
    (``strawfire serve``'s exit status 0); exit status 1 when that shutdown did not complete (a second Ctrl+C, which
    uvicorn takes as "quit now", or the app's shutdown failed), 3 when the app's start-up failed.

    uvicorn ends a run a signal stopped by raising that signal again against the handlers it found: with Python's
    defaults SIGTERM then kills the process (status -15, which docker reports as 143 and a supervisor may count as a
    failure) and SIGINT raises KeyboardInterrupt. The handlers it finds are :class:`_StopSignals`', which only note
    the stop: a requested stop that went well ends with status 0."""
    server.run(sockets=[sock])  # the app's start-up failing raises SystemExit(3) here (uvicorn logged why)
    if not server.started:  # the app's start-up failed without uvicorn exiting: uvicorn.run's status
        raise typer.Exit(_STARTUP_FAILURE)
    if server.force_exit or getattr(server.lifespan, "shutdown_failed", False):
        logging.getLogger("strawfire").error("stopped before the shutdown was complete")
        raise typer.Exit(1)


def _write_port_file(path: Path, port: int) -> None:
    """``serve --port-file``: ``port`` and a newline, written whole (a reader waiting for the file never finds it
    half written); exit status 2 naming the file when it cannot be written."""
    import contextlib

    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(f"{port}\n", encoding="ascii")
        partial.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise InputError(f"--port-file {path}: cannot write it: {exc.strerror or exc}") from None


def _remove_port_file(path: Path, port: int) -> None:
    """Remove ``serve --port-file`` when the server stops, unless another server has written its port there since."""
    import contextlib

    with contextlib.suppress(OSError):
        if path.read_text(encoding="ascii") == f"{port}\n":
            path.unlink()


def _bind_listening_socket(host: str, port: int) -> socket.socket:
    """The socket ``strawfire serve`` listens on, bound to ``host:port`` (as uvicorn binds it: IPv6 for a host
    with a colon, SO_REUSEADDR); exit status 3 with one line when the address is taken or cannot be used."""
    import errno
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        in_use = exc.errno == errno.EADDRINUSE
        hint = " (another server runs there: stop it, or serve on another --port)" if in_use else ""
        err.print(
            Text.assemble(("error:", "red"), f" cannot listen on {host}:{port}: {reason}{hint}"),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(_STARTUP_FAILURE) from None
    # Listening now, not when uvicorn starts: a client that read --port-file (or the log) is queued, not refused.
    sock.listen(2048)  # uvicorn's default backlog
    sock.set_inheritable(True)
    return sock


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations, saying from which revision to which: ``database at head (0013): upgraded from
    base, 13 migrations applied``, or ``database at head (0013): no migration to apply``. Upgrading a database
    that had a schema lists each migration applied (its revision and title) on stderr, as ``db downgrade`` lists
    what it undoes; on a new database the count says it all."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from service.config import redact_url
    from service.db import alembic_config, database_engine, database_errors, upgrade

    url = get_settings().effective_database_url
    shown = redact_url(url)  # hides a ?password= parameter too
    engine = database_engine(url)
    try:

        def current() -> str | None:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()

        with database_errors(url):
            before = current()
            upgrade(engine, revision)
            after = current()
        at = f"head ({after})" if revision == "head" else str(after or "base")
        if before == after:
            typer.echo(f"database at {at}: no migration to apply ({shown})")
            return
        script = ScriptDirectory.from_config(alembic_config(engine))
        applied = list(reversed(list(script.iterate_revisions(after, before))))  # oldest first
        if before is not None:
            for step in applied:
                title = " ".join((step.doc or "").replace("``", "").split())  # the docstring's first paragraph
                down = step.down_revision if isinstance(step.down_revision, str) else "base"
                err.print(f"{down} → {step.revision} ({title})", soft_wrap=True)
        count = f"{len(applied)} migration{'' if len(applied) == 1 else 's'} applied"
        typer.echo(f"database at {at}: upgraded from {before or 'base'}, {count} ({shown})")
    finally:
        engine.dispose()


@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})  # "-1" is a revision, not an option
@friendly_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision: an id such as 0012, -1 for one step, or base.")],
    yes: Annotated[bool, typer.Option("--yes", help="Go ahead although steps drop or change rows.")] = False,
) -> None:
    """Undo database migrations down to REVISION, to go back to an older strawfire release. **Back up first**
    (`strawfire db backup DIR`; PostgreSQL: pg_dump) and stop the service: it needs the newest schema, and
    `strawfire serve` of this release upgrades the database again at start. Every step to undo is listed with
    what it drops or changes in this database; when one would lose rows, nothing is done without `--yes`
    (exit 2)."""
    from service.config import redact_url
    from service.db import database_engine, database_errors, downgrade, downgrade_plan

    url = get_settings().effective_database_url
    engine = database_engine(url)
    try:
        with database_errors(url, "downgrade"):
            current, steps = downgrade_plan(engine, revision)
            if not steps:
                typer.echo(f"database already at {current} ({redact_url(url)})")
                return
            losing = False
            for step in steps:
                lost = ", ".join(f"{count} {loss.what}" for loss, count in step.losses)
                losing = losing or bool(lost)
                err.print(f"{step.revision} → {step.down_to} ({step.title}): {lost or 'no rows lost'}", soft_wrap=True)
            if losing and not yes:
                raise InputError(
                    "these steps drop or change rows: back up first (strawfire db backup DIR; PostgreSQL: pg_dump), "
                    "then run again with --yes"
                )
            downgrade(engine, steps[-1].down_to)  # "-1" resolved from the database's revision, as listed
        typer.echo(f"database at {steps[-1].down_to} ({redact_url(url)})")
    finally:
        engine.dispose()


@db_app.command("backup")
@friendly_errors
def db_backup(
    destination: Annotated[Path, typer.Argument(help="Folder the backup goes in (a strawfire-<UTC time> folder).")],
    keep: Annotated[int, typer.Option(min=0, help="Keep only the newest N complete backups there (0: all).")] = 0,
) -> None:
    """Back up the embedded deployment while it serves: a checked snapshot of the SQLite database, the evidence
    files (each verified against its sha256 name) and the token key. Exit 1 if an evidence file is damaged (the
    rest of the backup is kept). PostgreSQL: use pg_dump."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from service.backup import backup, evidence_bytes
    from service.db import utcnow

    settings = get_settings()
    with Progress(TextColumn("evidence"), BarColumn(), DownloadColumn(), transient=True, console=err) as progress:
        task = progress.add_task("evidence", total=evidence_bytes(settings) or None)
        summary = backup(
            settings, destination, now=utcnow(), keep=keep, on_evidence=lambda n: progress.advance(task, n)
        )
    rows = ", ".join(f"{n} {table}" for table, n in summary.rows.items())
    typer.echo(
        f"backed up to {summary.folder}: database at revision {summary.revision} "
        f"({summary.database_bytes / 1e6:.1f} MB; {rows}), {summary.evidence_files} evidence files "
        f"({summary.evidence_bytes / 1e6:.1f} MB)"
    )
    for old in summary.removed:
        typer.echo(f"removed the older backup {old}")
    if summary.damaged:
        for name in summary.damaged:
            err.print(Text(f"damaged evidence file (its bytes do not match its sha256 name): {name}"), soft_wrap=True)
        raise typer.Exit(1)


@db_app.command("restore")
@friendly_errors
def db_restore(
    backup_dir: Annotated[Path, typer.Argument(help="A strawfire-<UTC time> folder written by db backup.")],
    yes: Annotated[bool, typer.Option("--yes", help="Replace the database that is there.")] = False,
) -> None:
    """Put a backup made by `strawfire db backup` back, **the service stopped**: the database (its sha256 and
    `PRAGMA integrity_check` verified first), the evidence files (merged: none is deleted) and the token key.
    The database's `-wal` and `-shm` files are removed (a crash leaves them, and SQLite would replay them onto the
    restored file). Refused while anything has the database open, and without `--yes` when there is one. Exit 1 if
    an evidence file in the backup is damaged (the rest is restored). The database stays at the backup's revision:
    `strawfire serve` migrates it forward. PostgreSQL: use pg_restore."""
    from service.backup import restore

    summary = restore(get_settings(), backup_dir, replace=yes)
    rows = ", ".join(f"{n} {table}" for table, n in summary.rows.items())
    typer.echo(
        f"restored {backup_dir} into {summary.database}: database at revision {summary.revision} ({rows}), "
        f"{summary.evidence_files} evidence files copied ({summary.evidence_kept} already there), token key "
        + ("restored" if summary.secret_key else "not in the backup (left as it is here)")
    )
    for side in summary.removed:
        typer.echo(f"removed {side} (left by the replaced database)")
    if summary.damaged:
        for name in summary.damaged:
            err.print(Text(f"damaged evidence file (its bytes do not match its sha256 name): {name}"), soft_wrap=True)
        raise typer.Exit(1)


@regions_app.command("import")
@friendly_errors
def regions_import(
    path: Annotated[Path, typer.Argument(help="GeoJSON, Shapefile (.shp) or zipped Shapefile.")],
    level: Annotated[str, typer.Option(help="county, township, village, grid, city or province.")],
    crs: Annotated[str, typer.Option(help="wgs84, cgcs2000, gcj02, bd09 or epsg:NNNN.")],
    codes: Annotated[Path | None, typer.Option(help="Official code list CSV to fill codes/names.")] = None,
    code_field: Annotated[str | None, typer.Option(help="Attribute holding the unit code.")] = None,
    name_field: Annotated[str | None, typer.Option(help="Attribute holding the unit name.")] = None,
    parent_field: Annotated[str | None, typer.Option(help="Attribute holding the parent code.")] = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Replace units although open incidents, users or alert recipients still use them."),
    ] = False,
) -> None:
    """Import (or atomically replace) every unit of one level. A re-import that leaves out units still in use (open
    incidents, users, alert recipients on them) is refused, listing them per unit, unless `--yes`: then it goes
    ahead and warns what it orphaned (reassign those incidents, re-create those users and recipients). Parent codes
    that name no imported unit are warned about: escalations climb the parents to find supervisors."""
    from service.db import transaction
    from service.regions.crs import parse_crs
    from service.regions.loader import CodeList, read_units
    from service.regions.service import import_units

    region_level = _parse_level(level)
    source_crs = parse_crs(crs)
    code_list = CodeList.read(codes) if codes else None
    units, report = read_units(
        path,
        level=region_level,
        crs=source_crs,
        codes=code_list,
        code_field=code_field,
        name_field=name_field,
        parent_field=parent_field,
    )
    with transaction(_session_factory()) as session:
        summary = import_units(session, units, level=region_level, crs=source_crs, report=report, replace_in_use=yes)
    for repair in report.repairs:
        err.print(f"repaired feature {repair.row} ({repair.code}): {repair.reason}", highlight=False)
    for warning in summary.warnings:  # the reader's, then the import's (units in use, unknown parents)
        err.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    typer.echo(
        f"imported {summary.unit_count} {RegionLevel(region_level).value} units from {path} "
        f"(replaced {summary.replaced}, repaired {summary.repaired})"
    )


def _parse_level(level: str) -> RegionLevel:
    try:
        return RegionLevel(level.strip().lower())
    except ValueError:
        raise InputError(f"unknown level {level!r}; use one of " + ", ".join(v.value for v in RegionLevel)) from None


@regions_app.command("list")
@friendly_errors
def regions_list(level: Annotated[str | None, typer.Option(help="Only this level.")] = None) -> None:
    """List imported units."""
    from service.regions.service import list_regions

    with _session_factory()() as session:
        rows = list_regions(session, _parse_level(level) if level else None)
    table = Table("level", "code", "name", "parent", "area ha")
    for r in rows:
        table.add_row(r.level, r.code, r.name, r.parent_code or "", f"{r.area_ha:,.0f}")
    Console(markup=False).print(table)


@regions_app.command("assign")
@friendly_errors
def regions_assign(
    points: Annotated[Path, typer.Argument(help="CSV with latitude and longitude columns (WGS-84).")],
    regions: Annotated[Path | None, typer.Option(help="Boundary file; without it, the database's units.")] = None,
    regions_crs: Annotated[str, typer.Option(help="CRS of --regions.")] = "wgs84",
    level: Annotated[str, typer.Option(help="Level of the units.")] = "county",
    tolerance_m: Annotated[float | None, typer.Option(help="Nearest-unit tolerance (default 500 m).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list (one object per row).")] = False,
) -> None:
    """Assign each point to a unit: inside, nearest within the tolerance, or outside."""
    from service.regions.crs import parse_crs
    from service.regions.index import RegionIndex
    from service.regions.loader import read_units
    from service.regions.points import read_points_csv
    from service.regions.service import load_units

    region_level = _parse_level(level)
    if tolerance_m is not None and not 0.0 <= tolerance_m <= 50_000.0:  # NaN fails both, as it must
        raise InputError(f"--tolerance-m must be 0–50000 metres, got {tolerance_m}", field="--tolerance-m")
    tolerance = tolerance_m if tolerance_m is not None else get_settings().regions.tolerance_m
    if regions is not None:
        units, _ = read_units(regions, level=region_level, crs=parse_crs(regions_crs))
    else:
        with _session_factory()() as session:
            units = load_units(session, region_level)
        if not units:
            from service.errors import NotFoundError

            raise NotFoundError(f"no {region_level.value} units in the database; give --regions")
    lon, lat = read_points_csv(points)
    index = RegionIndex(units, tolerance_m=tolerance)
    result = index.assign_points(lon, lat, measure_outside=True)
    out = []
    for i in range(len(result)):
        a = index.describe(result, i)
        out.append(
            {
                "latitude": float(lat[i]),
                "longitude": float(lon[i]),
                "region_code": a.code,
                "region_name": a.name,
                "status": a.status.value,
                "distance_m": None if a.distance_m is None else round(a.distance_m, 1),
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    table = Table("latitude", "longitude", "code", "name", "status", "distance m")
    for row in out:
        table.add_row(
            f"{row['latitude']:.5f}",
            f"{row['longitude']:.5f}",
            str(row["region_code"] or ""),
            str(row["region_name"] or ""),
            str(row["status"]),
            str(row["distance_m"]),
        )
    Console(markup=False).print(table)


@demo_app.command("load")
@friendly_errors
def demo_load() -> None:
    """Load the generated DEMO region, scenario and users (each skipped when real data is present)."""
    from service.db import transaction
    from service.demo import DEMO_PASSWORD, load_demo, load_demo_scenario
    from service.regions.service import RegionIndexCache

    settings = get_settings()
    with transaction(_session_factory()) as session:
        loaded = load_demo(session)
        incidents, users = (
            load_demo_scenario(session, settings, RegionIndexCache(settings.regions.tolerance_m)) if loaded else (0, [])
        )
    typer.echo("DEMO region loaded" if loaded else "real regions present: DEMO region not loaded")
    if incidents:
        typer.echo(f"DEMO scenario: {incidents} incidents")
    if users:
        typer.echo(f"DEMO users {', '.join(users)} — password {DEMO_PASSWORD!r} (DEMO only: change or remove them)")


@users_app.command("add")
@friendly_errors
def users_add(
    name: Annotated[str, typer.Argument(help="Username.")],
    role: Annotated[str, typer.Option(help="patrol, supervisor, evaluator, admin or device.")],
    unit: Annotated[str | None, typer.Option(help="Township or county code the user answers for.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a user. The password is read from stdin (--password-stdin) or prompted for, never an argument. A patrol
    or supervisor user's --unit must be an imported township or county; other roles take no --unit."""
    from service.auth.service import check_user_unit, create_user
    from service.db import transaction
    from service.incidents.states import Role

    try:
        user_role = Role(role.strip().lower())
    except ValueError:
        raise InputError(f"unknown role {role!r}; use patrol, supervisor, evaluator, admin or device") from None
    factory = _session_factory()
    with factory() as session:  # before the password is asked for: a typo'd --unit made an account that sees nothing
        check_user_unit(session, user_role, unit)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with transaction(factory) as session:
        user = create_user(session, name, password, user_role, unit)
    typer.echo(f"user {user.username} ({user.role}{', unit ' + user.unit_code if user.unit_code else ''}) created")


@users_app.command("list")
@friendly_errors
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """The user accounts, disabled ones included, by name: role, unit (township or county code; none for
    evaluators, admins and devices), whether active, and when created. Never a password or its hash. When a
    password was last changed is not stored (``users passwd`` revokes the earlier tokens through the hash itself),
    so it is not shown. ``--json``: one object per user with ``username``, ``role``, ``unit_code``, ``active`` and
    ``created_at`` (ISO 8601, UTC)."""
    from sqlalchemy import select

    from service.auth.tables import User

    with _session_factory()() as session:
        users = list(session.scalars(select(User).order_by(User.username)))
    rows = [
        {
            "username": user.username,
            "role": user.role,
            "unit_code": user.unit_code,
            "active": user.active,
            "created_at": user.created_at.isoformat(timespec="seconds"),
        }
        for user in users
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("name", "role", "unit", "active", "created (UTC)")
    for row in rows:
        created = str(row["created_at"])[:16].replace("T", " ")  # to the minute
        cells = (row["username"], row["role"], row["unit_code"] or "–", "yes" if row["active"] else "no", created)
        table.add_row(*(Text(str(cell), overflow="fold") for cell in cells))  # names from outside: not markup
    Console(markup=False).print(table)


@users_app.command("token")
@friendly_errors
def users_token(
    name: Annotated[str, typer.Argument(help="An existing user, usually a device (camera, drone station).")],
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity in days.")] = 365,
) -> None:
    """Print a long-lived bearer token for a device (cameras post observations with it)."""
    from datetime import timedelta

    from sqlalchemy import select

    from service.auth.security import create_token, password_stamp
    from service.auth.tables import User
    from service.errors import NotFoundError
    from service.main import token_secret

    settings = get_settings()
    with _session_factory()() as session:
        user = session.scalar(select(User).where(User.username == name, User.active.is_(True)))
    if user is None:
        raise NotFoundError(f"no active user {name!r}")
    secret = token_secret(settings)
    stamp = password_stamp(user.password_hash)  # a new password (users passwd) revokes the token
    typer.echo(create_token(secret, user.username, user.role, timedelta(days=days), stamp=stamp))


@users_app.command("passwd")
@friendly_errors
def users_passwd(
    name: Annotated[str, typer.Argument(help="An existing user.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Set a user's password; every token issued under the old one (phones, devices) stops working."""
    from service.auth.service import set_password
    from service.db import transaction

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    with transaction(_session_factory()) as session:
        user = set_password(session, name, password)
    typer.echo(f"password of {user.username} changed: their earlier tokens no longer work")


@users_app.command("disable")
@friendly_errors
def users_disable(name: Annotated[str, typer.Argument(help="An existing user.")]) -> None:
    """Refuse a user's logins and tokens from now on (their record and actions stay)."""
    _set_active(name, False)


@users_app.command("enable")
@friendly_errors
def users_enable(name: Annotated[str, typer.Argument(help="An existing user.")]) -> None:
    """Let a disabled user log in again (tokens issued since their last password change work again)."""
    _set_active(name, True)


def _set_active(name: str, active: bool) -> None:
    from service.auth.service import set_active
    from service.db import transaction

    with transaction(_session_factory()) as session:
        user = set_active(session, name, active)
    typer.echo(f"user {user.username} {'enabled' if active else 'disabled'}")


@camera_app.command("import")
@friendly_errors
def camera_import(
    path: Annotated[Path, typer.Argument(help="Camera registry file (.toml or .json, video.registry form).")],
) -> None:
    """Replace the camera registry in the database with the file's (all or nothing)."""
    from service.cameras.service import replace_registry
    from service.db import transaction
    from video.errors import VideoError
    from video.registry import load_registry

    try:
        registry = load_registry(path)
    except VideoError as exc:
        raise InputError(str(exc), source=str(path)) from None
    with transaction(_session_factory()) as session:
        count = replace_registry(session, registry)
    presets = sum(len(c.presets) for c in registry.cameras)
    typer.echo(f"imported {count} cameras with {presets} presets from {path}")


@camera_app.command("suggest-masks")
@friendly_errors
def camera_suggest_masks(
    days: Annotated[int, typer.Option(min=1, max=3660, help="Look at false alarms closed in the last N days.")] = 90,
    min_incidents: Annotated[int, typer.Option(min=1, help="Incidents from one place to suggest it.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Ignore-mask polygons for the places of a preset's frame that false alarms keep coming from (a heat source
    in view, nothing found on site). Nothing changes: add a polygon to the preset's ignore_mask to use it."""
    from datetime import UTC, datetime, timedelta

    from service.cameras.service import mask_suggestions

    with _session_factory()() as session:
        found = mask_suggestions(session, since=datetime.now(UTC) - timedelta(days=days), min_incidents=min_incidents)
    rows = [s.to_json() for s in found]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo(f"no place with {min_incidents} or more false alarms in the last {days} days")
        return
    table = Table("camera/preset", "status", "incidents", "polygon (pixels of frame size)", "frame size", "of frame")
    for row in rows:
        share = "?" if row["frame_fraction"] is None else f"{row['frame_fraction']:.1%}"
        camera = f"{row['camera_id']}/{row['preset_id']}" + ("" if row["registered"] else " (not registered)")
        incidents = ", ".join(map(str, row["incidents"]))
        size = "?" if row["frame_size"] is None else "×".join(map(str, row["frame_size"]))
        table.add_row(camera, str(row["status"]), incidents, json.dumps(row["polygon"]), size, share)
    Console(markup=False).print(table)


@training_app.command("export-frames")
@friendly_errors
def training_export_frames(
    out: Annotated[Path, typer.Argument(help="New or empty folder to write the YOLO folder and frames.csv into.")],
    days: Annotated[int, typer.Option(min=1, max=3660, help="Sightings of the last N days.")] = 365,
    licence: Annotated[
        str, typer.Option(help="Licence recorded for the frames (goes on the model card of weights trained on them).")
    ] = "own frames of this deployment",
    attribution: Annotated[str | None, typer.Option(help="Attribution (default: the export's date).")] = None,
) -> None:
    """Copy the evidence frames of camera and drone sightings whose incident has been judged into one YOLO folder
    (images/, labels/): where something was seen, the detector's own boxes as draft labels to check; where
    nothing was found on site, empty labels. With frames.csv (which labels are drafts) and extra_sets.toml for
    `strawfire detector dataset build --extra-sets`. Incidents not judged yet are left out."""
    from datetime import UTC, datetime, timedelta

    from service.evidence.service import path_of
    from service.training.service import export_frames, judged_frames

    settings = get_settings()
    now = datetime.now(UTC)
    with _session_factory()() as session:
        frames = judged_frames(session, since=now - timedelta(days=days))
    try:
        summary = export_frames(
            frames,
            out,
            evidence_path=lambda sha256: path_of(settings, sha256),
            licence=licence,
            attribution=attribution or f"sighting frames judged in the field, exported {now:%Y-%m-%d}",
            exported_on=now.date(),
        )
    except FileExistsError as exc:
        raise InputError(str(exc)) from None
    for problem in summary.problems:
        err.print(f"left out: {problem}", markup=False, highlight=False)
    if summary.extra_sets is None:
        typer.echo(f"no judged camera or drone frames in the last {days} days: nothing written")
        return
    typer.echo(
        f"{summary.written['seen']} frames with fire or smoke seen (draft labels: check them, see frames.csv), "
        f"{summary.written['nothing']} with nothing found on site, in {out}; "
        f"then: strawfire detector dataset build --extra-sets {summary.extra_sets}"
    )


@camera_app.command("list")
@friendly_errors
def camera_list() -> None:
    """The registered cameras and their presets."""
    from service.cameras.service import load_registry

    with _session_factory()() as session:
        registry = load_registry(session)
    table = Table("camera", "position (lat, lon)", "mast m", "preset", "pan/tilt/zoom", "source")
    for camera, preset in registry.presets():
        table.add_row(
            camera.id,
            f"{camera.site.latitude:.5f}, {camera.site.longitude:.5f}",
            f"{camera.site.mast_height_m:g}",
            preset.id,
            f"{preset.pan_deg:g}/{preset.tilt_deg:g}/{preset.zoom:g}",
            preset.resolved_kind or "–",  # inferred from the URL when the registry does not say (was blank)
        )
    Console(markup=False).print(table)


@app.command()
@friendly_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON (as GET /api/v1/status).")] = False,
) -> None:
    """Whether the closed loop works, read from the configured database: overdue and failed alerts, the alert
    worker's and each FIRMS source's latest run, camera presets, what came in. Exit 1 when there is a problem
    (for a monitoring timer), 0 when there is none. Where the embedded database is not there (the data folder is
    wrong, or the service never started on it) it says so (exit 2) instead of making an empty one to report on."""
    from pydantic import TypeAdapter

    from service.backup import embedded_database, refuse_missing_database
    from service.db import utcnow
    from service.status.service import SystemStatus, system_status

    settings = get_settings()
    database = embedded_database(settings)
    if database is not None:  # PostgreSQL: a server that is not there is open_database's one-line error
        refuse_missing_database(database)
    with _session_factory()() as session:
        found = system_status(session, settings, now=utcnow())
    if as_json:
        typer.echo(TypeAdapter(SystemStatus).dump_json(found, indent=2).decode())
    else:
        table = Table("component", "state", "last success", "failures", "last error")
        for part in found.components:
            last = part.last_success_at.isoformat(timespec="minutes") if part.last_success_at else "–"
            # Text, not markup: names and errors come from outside (a "[" in an error message is not a style)
            cells = (part.name, part.state, last, str(part.consecutive_failures), part.last_error or "")
            table.add_row(*(Text(cell) for cell in cells))
        Console(markup=False).print(table)
        alerts = found.alerts
        typer.echo(
            f"alerts: {alerts.pending} pending, {alerts.overdue} overdue, {alerts.failed_24h} failed and "
            f"{alerts.sent_24h} sent in 24 h; cameras: "
            + ", ".join(f"{n} {state}" for state, n in found.cameras.items())
        )
        for feed in found.observations:
            last = feed.last_received_at.isoformat(timespec="minutes") if feed.last_received_at else "–"
            typer.echo(f"{feed.kind}: {feed.received_24h} in 24 h, last received {last}")
        for problem in found.problems:
            err.print(Text.assemble(("problem: ", "red"), problem.message), highlight=False, soft_wrap=True)
        typer.echo(f"status: {found.status}")
    if found.problems:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def patrol(
    service_url: Annotated[str, typer.Option(help="The strawfire service sightings are posted to.")],
    registry: Annotated[Path | None, typer.Option(help="Registry file; default: fetched from the service.")] = None,
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="Read the device token from stdin.")] = True,
    timeout_s: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: run on).")] = None,
    detector: Annotated[
        str,
        typer.Option(
            envvar="STRAWFIRE_VIDEO__DETECTOR",
            help="auto, onnx, torch, rules; auto+rules, onnx+rules, torch+rules for the flame rule's second "
            "opinion on fire boxes; or package.module:factory (as the Celery workers take it).",
        ),
    ] = "auto",
    heartbeat_s: Annotated[
        float,
        typer.Option(
            envvar="STRAWFIRE_VIDEO__HEARTBEAT_S",
            min=0.0,
            help="Seconds between the presets' heartbeats to the service (frames, errors, frozen feed); 0: none.",
        ),
    ] = 60.0,
    broker: Annotated[
        str | None,
        typer.Option(
            envvar="STRAWFIRE_VIDEO__BROKER_URL",
            help="Redis URL of a Celery broker: this process only reads the cameras and queues their frames for "
            "`celery -A video.tasks worker` processes, which detect, verify and post (default: all in this process).",
        ),
    ] = None,
    queue: Annotated[
        str | None, typer.Option(envvar="STRAWFIRE_VIDEO__QUEUE", help="With --broker: the workers' queue.")
    ] = None,
    frame_ttl_s: Annotated[
        float,
        typer.Option(
            envvar="STRAWFIRE_VIDEO__FRAME_TTL_S",
            min=1.0,
            help="With --broker: a frame no worker has taken within this many seconds is dropped (workers behind a "
            "backlog catch up on the present).",
        ),
    ] = 300.0,
) -> None:
    """Patrol every camera preset: frames → detector → sequence verification → geolocation → sightings posted to
    the service, all in this process (the embedded default), or with --broker as the grabber of Celery workers
    that run the same pipeline. Heartbeats come from this process either way: it is what reads the cameras."""
    import httpx

    from detector.manifest import ModelError
    from video.client import SightingClient
    from video.errors import VideoError
    from video.patrol import load_detector_spec, run_inline
    from video.registry import CameraRegistry, load_registry
    from video.spool import SpoolSink

    _configure_logging(get_settings().log_level)
    token = sys.stdin.readline().strip() if token_stdin else ""
    if not token:
        raise InputError("a device token is needed on stdin (strawfire users token NAME)")
    frame_detector = None
    if not broker:  # the workers load their own detector (STRAWFIRE_VIDEO__DETECTOR in their environment)
        try:
            frame_detector = load_detector_spec(detector, threads=None)
        except (ValueError, TypeError, ImportError, AttributeError, ModelError) as exc:
            raise InputError(str(exc), field="--detector") from None
    try:
        if registry is not None:
            cameras = load_registry(registry)
        else:
            response = httpx.get(
                service_url.rstrip("/") + "/api/v1/cameras", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            if response.status_code != 200:
                raise InputError(f"the service answered {response.status_code} for the camera registry")
            cameras = CameraRegistry.from_dict(response.json())
        client = SightingClient(service_url, token)
        # Heartbeats go straight to the service, never to the spool: a lost one is replaced by the next.
        heartbeat = client.post_heartbeats if heartbeat_s > 0 else None
        report: PatrolReport
        if broker:
            report = _grab_for_workers(cameras, broker, queue, frame_ttl_s, timeout_s, heartbeat, heartbeat_s or 60.0)
        else:
            # Sightings the service cannot take now wait on disk and are sent again (a restart sends them too).
            spool = os.environ.get("STRAWFIRE_VIDEO__SPOOL_DIR") or get_settings().data_dir / "sighting-spool"
            sink = SpoolSink(client, Path(spool))
            try:
                report = run_inline(
                    cameras,
                    sink,
                    detector=frame_detector,
                    timeout_s=timeout_s,
                    keep_results=False,
                    heartbeat=heartbeat,
                    heartbeat_every_s=heartbeat_s or 60.0,
                )
            finally:
                sink.close()
    except VideoError as exc:
        raise InputError(str(exc)) from None
    for key, stats in report.presets.items():
        line = f"{key}: {stats.frames} frames{' queued' if broker else ''}, {stats.errors} errors"
        typer.echo(line + (f" (last: {stats.last_error})" if stats.last_error else ""))


def _grab_for_workers(
    cameras: CameraRegistry,
    broker: str,
    queue: str | None,
    frame_ttl_s: float,
    timeout_s: float | None,
    heartbeat: Callable[[list[dict[str, Any]]], Any] | None,
    heartbeat_every_s: float,
) -> PatrolReport:
    """``patrol --broker``: the grabber of the Celery workers (:func:`video.tasks.run_grabber`), once the broker
    answers: a patrol that cannot queue a single frame says so at the start, not as one error per frame."""
    from kombu.exceptions import OperationalError

    from video.sources import redact_url
    from video.tasks import grabber_celery, run_grabber

    celery = grabber_celery(broker, queue=queue)
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=2, interval_start=0.5, interval_step=0.5)
    except (OperationalError, OSError) as exc:
        raise InputError(
            f"the broker {redact_url(broker)} does not answer: {redact_url(str(exc))}", field="--broker"
        ) from None
    try:
        return run_grabber(
            cameras,
            celery,
            frame_ttl_s=frame_ttl_s,
            timeout_s=timeout_s,
            heartbeat=heartbeat,
            heartbeat_every_s=heartbeat_every_s,
        )
    finally:
        celery.close()


@alerts_app.command("add-recipient")
@friendly_errors
def alerts_add_recipient(
    name: Annotated[str, typer.Argument(help="A name people recognise (e.g. 北岗镇巡查群).")],
    unit: Annotated[str, typer.Option(help="Township or county code whose incidents it receives.")],
    channel: Annotated[str, typer.Option(help="webhook, wecom, dingtalk, feishu, email or sms.")],
    target: Annotated[str, typer.Option(help="URL, e-mail address, or GATEWAY_URL#PHONE for sms.")],
    role: Annotated[str, typer.Option(help="township (acts on alerts) or county (escalations).")] = "township",
    rate_per_min: Annotated[int | None, typer.Option(help="Messages per minute (default per channel).")] = None,
    secret_stdin: Annotated[bool, typer.Option("--secret-stdin", help="Read the signing secret from stdin.")] = False,
) -> None:
    """Add an alert recipient. A signing secret is read from stdin, never from the command line."""
    from service.alerts.service import create_recipient
    from service.alerts.tables import Channel, RecipientRole
    from service.db import transaction

    try:
        chosen_channel, chosen_role = Channel(channel.strip().lower()), RecipientRole(role.strip().lower())
    except ValueError:
        raise InputError(f"unknown channel {channel!r} or role {role!r}") from None
    secret = sys.stdin.readline().rstrip("\r\n") if secret_stdin else None
    with transaction(_session_factory()) as session:
        recipient = create_recipient(
            session,
            name=name,
            unit_code=unit,
            channel=chosen_channel,
            target=target,
            secret=secret,
            role=chosen_role,
            rate_per_min=rate_per_min,
        )
    typer.echo(f"recipient {recipient.id} ({recipient.channel}) added for unit {recipient.unit_code}")


@alerts_app.command("list-recipients")
@friendly_errors
def alerts_list_recipients(
    unit: Annotated[str | None, typer.Option(help="Only the recipients of this unit code.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list (targets as in the table).")] = False,
) -> None:
    """The alert recipients, disabled ones included: id, name, unit, role, channel, the target (a URL's scheme and
    host only: a bot key in its path or query is not shown; an e-mail address, and an SMS target's phone number,
    in full), whether it has a signing secret (never the secret), whether it is active, and the alerts pending
    for it.

    The table gives each recipient one line where the terminal is wide enough for every cell in full; where it is
    not (80 columns, or piped without ``COLUMNS``), two lines (name over target, unit over role, channel over
    whether it has a secret), wrapping what does not fit instead of cutting it.
    ``--json``: one object per recipient with ``id``, ``name``, ``unit_code``, ``role``, ``channel``, ``target``
    (as in the table), ``has_secret``, ``rate_per_min``, ``active`` and ``pending``."""
    from rich import box

    from service.alerts.channels import safe_url
    from service.alerts.service import list_recipients, pending_by_recipient
    from service.alerts.tables import Channel

    with _session_factory()() as session:
        recipients = list_recipients(session, [unit] if unit else None)
        pending = pending_by_recipient(session)
    rows = []
    for r in recipients:
        # An SMS target's phone number is the recipient (GATEWAY_URL#PHONE): shown, unlike the gateway's URL.
        url, _, phone = r.target.partition("#")
        target = r.target if r.channel == Channel.EMAIL.value else safe_url(url) + (f"#{phone}" if phone else "")
        rows.append(
            {
                "id": r.id,
                "name": r.name,
                "unit_code": r.unit_code,
                "role": r.role,
                "channel": r.channel,
                "target": target,
                "has_secret": bool(r.secret),
                "rate_per_min": r.rate_per_min,
                "active": r.active,
                "pending": pending.get(r.id, 0),
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    console = Console(markup=False)
    # Text, not markup: names come from outside (a "[" in a group's name is not a style)
    wide = Table("id", "name", "unit", "role", "channel", "target", "secret", "active", "pending")
    for row in rows:
        cells = (row["id"], row["name"], row["unit_code"], row["role"], row["channel"], row["target"])
        flags = ("yes" if row["has_secret"] else "no", "yes" if row["active"] else "no", str(row["pending"]))
        wide.add_row(*(Text(str(cell)) for cell in cells), *(Text(flag) for flag in flags))
    unbounded = console.options.update_width(100_000)  # the width the table wants (measure clamps to the console's)
    if console.measure(wide, options=unbounded).maximum <= console.width:  # one line a recipient, nothing cut
        console.print(wide)
        return
    # Narrower (80 columns, piped): nine columns cut names, roles, channels and targets to "…"; six columns of two
    # lines a recipient, the name and target wrapping where they must.
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    table.add_column("id", no_wrap=True, justify="right")
    table.add_column("name\ntarget", overflow="fold", min_width=12)  # the column that gives way
    table.add_column("unit\nrole", overflow="fold")
    table.add_column("channel\nsecret", no_wrap=True)
    table.add_column("active", no_wrap=True)
    table.add_column("pending", no_wrap=True, justify="right")
    for row in rows:
        table.add_row(
            Text(str(row["id"])),
            Text.assemble(str(row["name"]), "\n", (str(row["target"]), "dim")),
            Text(f"{row['unit_code']}\n{row['role']}"),
            Text(f"{row['channel']}\n{'secret' if row['has_secret'] else 'no secret'}"),
            Text("yes" if row["active"] else "no"),
            Text(str(row["pending"])),
        )
    console.print(table)


@alerts_app.command("disable-recipient")
@friendly_errors
def alerts_disable_recipient(
    recipient_id: Annotated[int, typer.Argument(min=1, max=2**62, help="The recipient's id.")],
) -> None:
    """Stop alerting a recipient: its pending alerts are withdrawn (recorded on their incidents) and nothing is
    queued for it from then on. This is how a recipient is removed: its record stays, for the alerts sent to it."""
    from service.alerts.service import set_recipient_active
    from service.db import transaction

    with transaction(_session_factory()) as session:
        change = set_recipient_active(session, recipient_id, False)
        name = change.recipient.name
    typer.echo(f"recipient {recipient_id} ({name}) disabled; {change.withdrawn} pending alert(s) withdrawn")


@alerts_app.command("enable-recipient")
@friendly_errors
def alerts_enable_recipient(
    recipient_id: Annotated[int, typer.Argument(min=1, max=2**62, help="The recipient's id.")],
) -> None:
    """Alert a disabled recipient again, from the alerts queued from now on (those withdrawn stay withdrawn)."""
    from service.alerts.service import set_recipient_active
    from service.db import transaction

    with transaction(_session_factory()) as session:
        name = set_recipient_active(session, recipient_id, True).recipient.name
    typer.echo(f"recipient {recipient_id} ({name}) enabled")


@alerts_app.command("set-target")
@friendly_errors
def alerts_set_target(
    recipient_id: Annotated[int, typer.Argument(min=1, max=2**62, help="The recipient's id.")],
    target: Annotated[str | None, typer.Option(help="New URL, e-mail address, or GATEWAY_URL#PHONE for sms.")] = None,
    secret_stdin: Annotated[bool, typer.Option("--secret-stdin", help="Read a new signing secret from stdin.")] = False,
    clear_secret: Annotated[bool, typer.Option("--clear-secret", help="Remove the signing secret.")] = False,
) -> None:
    """Re-point a recipient (a group's new bot URL, a new address or phone) and/or replace its signing secret, read
    from stdin, never from the command line. Its pending alerts go to the new target at the worker's next pass."""
    from service.alerts.service import change_recipient_target
    from service.db import transaction

    if secret_stdin and clear_secret:
        raise InputError("--secret-stdin and --clear-secret exclude each other")
    secret = sys.stdin.readline().rstrip("\r\n") if secret_stdin else None
    if secret_stdin and not secret:
        raise InputError("no secret on stdin (--clear-secret removes the secret)")
    with transaction(_session_factory()) as session:
        name = change_recipient_target(
            session, recipient_id, target=target, secret=secret, change_secret=secret_stdin or clear_secret
        ).recipient.name
    changed = [what for what, given in (("target", target), ("secret", secret_stdin or clear_secret)) if given]
    typer.echo(f"recipient {recipient_id} ({name}): {' and '.join(changed)} changed")


@alerts_app.command("worker")
@friendly_errors
def alerts_worker(once: Annotated[bool, typer.Option(help="Run one pass and exit.")] = False) -> None:
    """Deliver alerts and apply deadlines (for deployments that run workers apart from the web process).

    Looping, it stops on SIGTERM (systemd, docker) or SIGINT (Ctrl-C) as the web process stops its own: no new send
    starts, the requests under way finish and are recorded, and it exits with status 0."""
    from service.alerts.worker import AlertWorker, record_pass, run_once, run_until_signalled, sender_from
    from service.status.service import error_text

    settings = get_settings()
    factory = _session_factory()
    if once:
        try:
            escalation, delivery = run_once(factory, sender_from(settings.alerts), settings.alerts)
        except Exception as exc:  # a timer's failing pass shows in the system status like a looping worker's
            record_pass(factory, ok=False, error=error_text(exc))
            raise
        record_pass(factory, ok=True)  # a worker run by a timer shows in the system status like one that loops
        typer.echo(
            f"reminders {escalation.reminders}, escalated {len(escalation.escalated)}, "
            f"sent {delivery.sent}, retried {delivery.retried}, failed {delivery.failed}, "
            f"withdrawn {delivery.withdrawn}"
        )
        return
    _configure_logging(settings.log_level)
    run_until_signalled(AlertWorker(factory, settings.alerts))


himawari_app = typer.Typer(help="Himawari-8/9 AHI wildfire product: ingest files.", no_args_is_help=True)
app.add_typer(himawari_app, name="himawari")


class _FileBytes:
    """The ``on_bytes`` callback of one file's reader: advances a progress task by the bytes read, and at
    :meth:`finish` by the rest of the file's size (what a reader did not report, or left unread on an error)."""

    def __init__(self, progress: Any, task: Any, size: int) -> None:
        self._progress, self._task, self._size, self._done = progress, task, size, 0

    def __call__(self, count: int) -> None:
        self._done += count
        self._progress.advance(self._task, count)

    def finish(self) -> None:
        self._progress.advance(self._task, max(self._size - self._done, 0))
        self._done = self._size


def _ingest_files(
    files: list[Path],
    read: Callable[[Path, Any, Callable[[int], None]], tuple[list[Any], list[Any], int]],
    *,
    yes: bool,
    history_hint: Callable[[Path], str],
) -> None:
    """Read, screen and ingest each file as one transaction, with a progress bar and a summary line.

    Exit status 2 when a file failed: unreadable (not a FIRMS/Himawari CSV, compressed, missing), or with rows of
    which none was accepted (every row rejected: a wrong layout, a clock off by years), so that a cron job notices;
    the other files are ingested all the same. A file with a header and no rows is fine: no fires. When no file
    could be read at all, only the errors are printed: a summary of zeros read as "ingested, nothing new".

    **Old rows.** Ingested fires are new fires: they open incidents and queue new-fire alerts to their townships
    now, whatever their age (as the poll's back-fill of missed days does, on purpose). A file's rows observed more
    than :data:`OLD_ROWS_AFTER` (2 days) ago that would become fires (inside the units, not stored yet) are most
    likely a mistake (an old download, a sample file) or history; so before the file is written a warning names
    how many there are and the oldest, and ``history_hint(path)`` says what to do instead (``strawfire firms
    history`` imports FIRMS archives as history only: no incidents, no alerts). On a terminal (stdin and stdout)
    the command then asks whether to ingest that file all the same (default no: the file is skipped, which is not
    a failure); ``--yes`` does not ask. Elsewhere (cron, scripts) nobody can answer: the warning is printed and
    the file ingested, as before.

    **Outside the units.** ``read(path, box, on_bytes)`` keeps the rows whose pixel may reach ``box`` (the
    imported units' coverage, :func:`service.flows.coverage_box`) and returns ``(hotspots, rejected, outside)``,
    the dropped rows counted as screened out (``outside_coverage``): a global file costs memory for the units'
    rows only. It reports the bytes it has read to ``on_bytes``: the progress bar follows a large file.
    Rejected rows are printed with the path as given, line and field.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from satellite.errors import SatelliteError
    from service.auth.service import Principal
    from service.db import transaction, utcnow
    from service.flows import coverage_box, ingest_hotspots
    from service.incidents.states import Role
    from service.regions.service import RegionIndexCache

    settings = get_settings()
    factory = _session_factory()
    indexes = RegionIndexCache(settings.regions.tolerance_m)
    actor = Principal("cli", Role.ADMIN)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    totals = {"rows": 0, "new": 0, "duplicates": 0, "rejected": 0, "incidents": 0, "fire_points": 0, "repeats": 0}
    held: dict[str, int] = {}
    failed_files = read_files = 0
    # Refused before any file is read when no units are imported (the ingest would refuse every batch).
    with factory() as session:
        box = coverage_box(session, settings, indexes)
    sizes = {path: path.stat().st_size if path.is_file() else 0 for path in files}
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    # No progress line off a terminal: there it drew nothing but left an empty line after the errors.
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("ingesting", total=sum(sizes[path] for path in files))  # a file given twice: twice
        for path in files:
            progress.update(task, description=f"reading {path.name}")
            advance = _FileBytes(progress, task, sizes[path])
            try:
                hotspots, rejected, outside = read(path, box, advance)
            except (SatelliteError, OSError) as exc:
                # "[Errno 2] No such file or directory: 'x.csv'" named the file last, unlike every other error
                message = f"{path}: {exc.strerror}" if isinstance(exc, OSError) and exc.strerror else str(exc)
                err.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False, soft_wrap=True)
                failed_files += 1
                advance.finish()
                continue
            advance.finish()  # what the reader did not report (Himawari: all)
            progress.update(task, description=f"ingesting {path.name}")
            with factory() as session:  # the rows it would make fires of, observed more than 2 days ago
                in_units_only = settings.screening.coverage_from_regions
                old = old_new_rows(session, hotspots, indexes, utcnow(), in_units_only=in_units_only)
            if old:
                message = f" {path}: {old_rows_warning(old)} {history_hint(path)}"
                err.print(Text.assemble(("warning:", "yellow"), message), highlight=False, soft_wrap=True)
                if interactive and not yes:
                    progress.stop()  # the live progress line would redraw over the question
                    go_on = typer.confirm(f"ingest {path.name} all the same?", default=False)
                    progress.start()
                    if not go_on:
                        err.print(f"{path}: not ingested", highlight=False, soft_wrap=True)
                        continue
            read_files += 1
            with transaction(factory) as session:
                summary = ingest_hotspots(
                    session, hotspots, indexes=indexes, settings=settings, actor=actor, outside_coverage=outside
                )
            for row in rejected:
                # One line each, however long (a full path), never cut or wrapped: file, line, field and reason.
                err.print(f"rejected {row}", markup=False, highlight=False, soft_wrap=True)
            if rejected and not hotspots and not outside:
                message = f" {path}: none of its {len(rejected)} rows was accepted"
                err.print(Text.assemble(("error:", "red"), message), highlight=False, soft_wrap=True)
                failed_files += 1
            totals["rows"] += len(hotspots) + len(rejected) + outside
            totals["new"] += summary.new
            totals["duplicates"] += summary.duplicates
            totals["rejected"] += len(rejected)
            totals["incidents"] += len(summary.new_incidents)
            totals["fire_points"] += summary.fire_points
            totals["repeats"] += summary.repeats
            for status, count in summary.held.items():
                held[status] = held.get(status, 0) + count
    screened = ", ".join(f"{k} {v}" for k, v in sorted(held.items()))
    if read_files:
        typer.echo(
            f"rows read {totals['rows']}, new {totals['new']}, duplicate {totals['duplicates']}, "
            f"rejected {totals['rejected']}, fire points {totals['fire_points']} (repeats {totals['repeats']}), "
            f"new incidents {totals['incidents']}"
            + (f", screened out {sum(held.values())} ({screened})" if held else "")
        )
    if failed_files:
        raise typer.Exit(2)


#: ``--yes`` of ``firms ingest`` and ``himawari ingest``.
YesToOldRows = Annotated[
    bool,
    typer.Option(
        "--yes",
        help=f"Do not ask before ingesting rows older than {OLD_ROWS_AFTER.days} days (asked on a terminal only).",
    ),
]


@firms_app.command("ingest")
@friendly_errors
def firms_ingest(
    files: Annotated[list[Path], typer.Argument(help="FIRMS CSV files (MODIS or VIIRS, any published layout).")],
    yes: YesToOldRows = False,
) -> None:
    """Ingest FIRMS files: each file is one transaction; bad rows are reported with their line and skipped.

    Their fires open incidents and alert their townships now. A file with rows observed more than 2 days ago that
    would become fires is named with a warning before it is written (on a terminal the command asks first; --yes
    does not): for an archive, ``strawfire firms history`` imports it as history only (no incidents, no alerts)."""
    from satellite.firms import read_firms_csv_chunks

    def read(path: Path, box: Any, on_bytes: Callable[[int], None]) -> tuple[list[Any], list[Any], int]:
        # In batches, line by line: a 200 MB global file never sits in memory whole, its rows outside the units
        # are dropped batch by batch, and the progress bar moves as it is read.
        hotspots: list[Any] = []
        rejected: list[Any] = []
        outside = 0
        for batch in read_firms_csv_chunks(
            path, source_name=str(path), within=box, on_bytes=on_bytes, chunk_lines=16_384
        ):
            hotspots.extend(batch.hotspots)
            rejected.extend(batch.rejected)
            outside += batch.outside
        return hotspots, rejected, outside

    def hint(path: Path) -> str:
        return f"For history only (fixed heat sources; no incidents, no alerts): strawfire firms history {path}"

    _ingest_files(files, read, yes=yes, history_hint=hint)


@firms_app.command("history")
@friendly_errors
def firms_history(
    files: Annotated[
        list[Path], typer.Argument(help="FIRMS archive CSV files (MODIS or VIIRS, any published layout).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: per file and totals.")] = False,
) -> None:
    """Import FIRMS archives (e.g. a year of MODIS/VIIRS for the area) as **history only**: the hotspots inside the
    imported units' coverage feed the persistence rule (fixed heat sources) and nothing else: no incidents, no
    alerts, no statistics. Each file is one transaction; bad rows are reported with their line and skipped; a
    re-import adds nothing."""
    import dataclasses

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from satellite.errors import SatelliteError
    from service.db import transaction
    from service.history.service import HistoryFileSummary, history_coverage, import_firms_history
    from service.regions.service import RegionIndexCache

    settings = get_settings()
    factory = _session_factory()
    indexes = RegionIndexCache(settings.regions.tolerance_m)
    with factory() as session:
        coverage = history_coverage(session, indexes)
    summaries: list[HistoryFileSummary] = []
    failures: dict[str, str] = {}
    sizes = {path: path.stat().st_size if path.is_file() else 0 for path in files}
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("importing history", total=sum(sizes.values()))
        for path in files:
            progress.update(task, description=f"history {path.name}")
            advance = _FileBytes(progress, task, sizes[path])
            try:
                with transaction(factory) as session:
                    summary = import_firms_history(session, path, coverage, on_bytes=advance)
            except (SatelliteError, OSError) as exc:
                # The file's transaction was rolled back: nothing of it is stored.
                failures[str(path)] = str(exc)
                if not as_json:
                    err.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False, soft_wrap=True)
                advance.finish()
                continue
            summaries.append(summary)
            if not as_json:
                for row in summary.rejected:
                    # The path as given (the import names the file alone), on one line however long.
                    where = dataclasses.replace(row, source_name=str(path))
                    err.print(f"rejected {where}", markup=False, highlight=False, soft_wrap=True)
    totals = {
        "files": len(summaries),
        "failed_files": len(failures),
        "read": sum(s.read for s in summaries),
        "in_coverage": sum(s.in_coverage for s in summaries),
        "stored": sum(s.stored for s in summaries),
        "already_known": sum(s.already_known for s in summaries),
        "rejected": sum(len(s.rejected) for s in summaries),
    }
    if as_json:
        document = {
            "files": [
                {
                    "file": s.source_name,
                    "read": s.read,
                    "in_coverage": s.in_coverage,
                    "stored": s.stored,
                    "already_known": s.already_known,
                    "rejected": [
                        {"file": r.source_name, "line": r.line, "field": r.field, "reason": r.reason}
                        for r in s.rejected
                    ],
                }
                for s in summaries
            ],
            "failed": [{"file": name, "error": message} for name, message in failures.items()],
            "totals": totals,
        }
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    else:
        typer.echo(
            f"history: rows read {totals['read']}, in coverage {totals['in_coverage']}, "
            f"stored {totals['stored']}, already known {totals['already_known']}, rejected {totals['rejected']}"
            + (f"; {len(failures)} file(s) failed" if failures else "")
        )
    if failures:
        raise typer.Exit(2)


@himawari_app.command("ingest")
@friendly_errors
def himawari_ingest(
    files: Annotated[list[Path], typer.Argument(help="JAXA AHI L2 wildfire CSV files (10-minute, 2 km).")],
    yes: YesToOldRows = False,
) -> None:
    """Ingest Himawari wildfire files like FIRMS files (screened, fused, alerted). A file with rows observed more
    than 2 days ago that would become fires is named with a warning before it is written (on a terminal the
    command asks first; --yes does not)."""
    from satellite.himawari import read_himawari_csv

    def read(path: Path, box: Any, on_bytes: Callable[[int], None]) -> tuple[list[Any], list[Any], int]:
        # A 10-minute file is small (its rows of one scan): read at once, the bar moved when it is read.
        parsed = read_himawari_csv(path, source_name=str(path), within=box)
        return list(parsed.hotspots), list(parsed.rejected), parsed.outside

    def hint(path: Path) -> str:
        return "Himawari files have no history import: ingest only the files of the last days."

    _ingest_files(files, read, yes=yes, history_hint=hint)


@firms_app.command("poll")
@friendly_errors
def firms_poll(
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="Keep polling every firms.poll_interval_min minutes, and at most once a minute (below 1, 0 "
            "included: every minute).",
        ),
    ] = False,
) -> None:
    """Poll the FIRMS area API once (or in a loop) and ingest the hotspots; the MAP_KEY is never printed.

    Each cycle prints one line: what each source returned, then new, duplicate, new incidents and what screening
    held back (so the counts add up to what was received), and each failure once, naming the sources it stopped
    (a refused key stops them all with one error). Retries are printed as they happen.

    ``--loop`` waits ``firms.poll_interval_min`` minutes between polls, and at least 1 minute (FIRMS publishes a
    pass hours after it, and each poll costs each source a transaction of the MAP_KEY's budget). It logs the
    interval it polls at when it starts, and a warning when the setting is above 0 and below 1 minute (0, the
    default, means "the web process does not poll": no warning)."""
    import dataclasses
    import logging
    import time

    from satellite.poller import TransactionBudget
    from service.firms_poll import run_poll
    from service.regions.service import RegionIndexCache

    settings = get_settings()
    interval_s = max(POLL_LOOP_FLOOR_S, settings.firms.poll_interval_min * 60)
    if loop:  # one poll prints its summary; a loop runs on as a service does, and logs as one
        _configure_logging(settings.log_level)
        log = logging.getLogger("strawfire.firms")
        if 0 < settings.firms.poll_interval_min * 60 < POLL_LOOP_FLOOR_S:
            log.warning(
                "firms.poll_interval_min is %g: firms poll --loop polls at most once a minute, so every minute",
                settings.firms.poll_interval_min,
            )
        log.info("polling FIRMS every %g min", interval_s / 60)
    factory = _session_factory()
    indexes = RegionIndexCache(settings.regions.tolerance_m)
    budget = TransactionBudget()  # one for the key, across the loop's cycles
    summarised = _SummarisedPollRecords()
    loggers = [logging.getLogger(name) for name in _SummarisedPollRecords.LOGGERS]
    for logger in loggers:
        logger.addFilter(summarised)
    try:
        while True:
            summary = run_poll(factory, settings, indexes, budget)
            received = ", ".join(f"{k} {v}" for k, v in summary.per_source.items())
            held = ", ".join(f"{k} {v}" for k, v in sorted(summary.held.items()))
            typer.echo(
                f"received {received}; new {summary.new}, duplicate {summary.duplicates}, "
                f"new incidents {len(summary.new_incidents)}"
                + (f", screened out {sum(summary.held.values())} ({held})" if summary.held else "")
            )
            by_error: dict[str, list[str]] = {}
            for source, error in summary.errors.items():
                by_error.setdefault(error, []).append(source)
            for error, sources in by_error.items():
                err.print(
                    Text.assemble((f"{', '.join(sources)}:", "yellow"), f" {error}"), highlight=False, soft_wrap=True
                )
            report = summary.backfill
            if report is not None and any(error in by_error for error in report.errors.values()):
                # A refused MAP_KEY stops the back-fill and the poll with one error, printed just above: once.
                errors = {s: "the error above" if e in by_error else e for s, e in report.errors.items()}
                report = dataclasses.replace(report, errors=errors)
            _print_backfill(report)
            if not loop:
                # Every source failed (a revoked MAP_KEY fails them all): a failed poll. Some failed: reported on
                # stderr, what came in is ingested, and the status stays 0.
                if summary.errors and len(summary.errors) == len(summary.per_source):
                    raise typer.Exit(1)
                return
            time.sleep(interval_s)
    finally:
        for logger in loggers:
            logger.removeFilter(summarised)


#: The shortest wait of ``firms poll --loop`` between two polls, whatever ``firms.poll_interval_min`` says.
POLL_LOOP_FLOOR_S = 60.0


class _SummarisedPollRecords:
    """A logging filter for `firms poll`: drops the log records that the command's summary prints anyway, so that
    each failure is printed once. The poller logs a source's final failure (ERROR) and the poll cycle a back-fill
    that stopped or days given up: for the web process's log, where nothing else says so. Retries (WARNING) and
    rejected rows are not in the summary, and are kept. The lines that point at "the error above" (the sources a
    refused MAP_KEY skipped, the poll it made pointless) are dropped too: here the summary names those sources."""

    LOGGERS = ("satellite.poller", "strawfire.firms")
    #: The poll cycle's messages that the summary's back-fill lines repeat (service.firms_poll.backfill).
    BACKFILL_MESSAGES = ("FIRMS %s: back-fill stopped at", "FIRMS %s: days %s to %s were missed")

    def filter(self, record: Any) -> bool:
        import logging

        from satellite.errors import SatelliteError
        from satellite.poller import KEY_WIDE_SKIP_MESSAGE
        from service.firms_poll import POLL_NOT_SENT_MESSAGE

        if record.name == "satellite.poller":
            # A source's final failure (ERROR), or an error logged as it is (a full transaction budget): the
            # summary prints it with the source.
            args = record.args if isinstance(record.args, tuple) else ()
            bare_error = record.msg == "%s" and len(args) == 1 and isinstance(args[0], SatelliteError)
            return not (bare_error or record.levelno >= logging.ERROR or record.msg == KEY_WIDE_SKIP_MESSAGE)
        return not (str(record.msg).startswith(self.BACKFILL_MESSAGES) or record.msg == POLL_NOT_SENT_MESSAGE)


sentinel_app = typer.Typer(
    help="Sentinel-2, Landsat 8/9 and SLSTR scenes through Sentinel Hub or Copernicus Data Space: scan and ingest.",
    no_args_is_help=True,
)
app.add_typer(sentinel_app, name="sentinel")


@sentinel_app.command("scan")
@friendly_errors
def sentinel_scan(
    collection: Annotated[
        str,
        typer.Option(help="sentinel-2-l2a (s2l2a), sentinel-2-l1c (s2l1c), landsat-ot-l1 (landsat) or slstr."),
    ] = "sentinel-2-l2a",
    days: Annotated[float, typer.Option(min=0.01, max=31, help="Scan the scenes of the last DAYS days.")] = 2.0,
) -> None:
    """Scan the scenes of the last days over the regions (or ``sentinelhub.bbox``) with the active-fire rules on
    Sentinel Hub, and ingest their fire points like FIRMS hotspots (screened, fused, alerted). Credentials and
    endpoints: the ``sentinelhub.*`` settings (``STRAWFIRE_SENTINELHUB__CLIENT_ID``, ``__CLIENT_SECRET``,
    ``__BASE_URL``...); the secret is never printed. A scene scanned again adds nothing."""
    from satellite.errors import SatelliteError
    from service.auth.service import Principal
    from service.db import utcnow
    from service.incidents.states import Role
    from service.regions.service import RegionIndexCache
    from service.sentinel_scan import default_period, scan_and_ingest

    settings = get_settings()
    start, end = default_period(days, utcnow())
    try:
        summary = scan_and_ingest(
            _session_factory(),
            settings,
            RegionIndexCache(settings.regions.tolerance_m),
            collection=collection,
            start=start,
            end=end,
            actor=Principal("cli", Role.ADMIN),
        )
    except SatelliteError as exc:  # scrubbed of the client secret and tokens by satellite.sentinel
        err.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    held = ", ".join(f"{k} {v}" for k, v in sorted(summary.held.items()))
    typer.echo(
        f"scenes {len(summary.scenes)}, fire points {summary.fire_points}, new {summary.new}, "
        f"duplicate {summary.duplicates}, new incidents {len(summary.new_incidents)}"
        + (f", screened out {sum(summary.held.values())} ({held})" if held else "")
    )


def _print_backfill(report: BackfillReport | None) -> None:
    """What a poll fetched of the days an outage missed (stdout), and what it could not (stderr)."""
    if report is None:
        return
    for source, windows in report.windows.items():
        typer.echo(f"back-filled {source}: {', '.join(windows)}")
    for source, (first, last) in report.skipped.items():
        err.print(
            Text.assemble(
                (f"{source}:", "yellow"),
                f" missed {first} to {last}, older than firms.backfill_max_days: not fetched (ingest an archive file)",
            ),
            highlight=False,
            soft_wrap=True,
        )
    for source, error in report.errors.items():
        err.print(
            Text.assemble((f"{source}:", "yellow"), f" back-fill stopped at {report.pending[source]}: {error}"),
            highlight=False,
            soft_wrap=True,
        )


if __name__ == "__main__":
    app()
