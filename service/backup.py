"""Backups of the embedded deployment: the SQLite database, the evidence files and the token key, while it serves.

Decisions:

* **SQLite's online backup API**, in one step: it copies a consistent snapshot of the database while the service
  keeps writing (WAL readers do not block writers), which a file copy of ``strawfire.sqlite3`` cannot promise (the
  ``-wal`` file holds the latest transactions). The copy is checked with ``PRAGMA integrity_check`` and switched
  to a single file (``journal_mode=DELETE``).
* **Evidence files are verified as they are copied**: each is named by its sha256, so a file whose bytes no longer
  match its name (a bad disk) is reported by name and the command fails, while the rest of the backup is kept:
  the database is what matters most, and a second backup would hit the same file.
* **The token key goes too** (``<data_dir>/secret_key``): restored without it, every device token stops working.
  A backup therefore holds secrets (recipients' signing secrets are in the database as well): its folder is
  readable by its owner only.
* **Complete or absent**: a backup is written to ``<name>.partial`` and renamed when done, so a backup interrupted
  half-way never looks like one; ``--keep N`` removes complete backups beyond the newest N, never a partial one
  being written by another run.
* **PostgreSQL is refused**, with what to use instead (``pg_dump``): its own tools do it better.

* **Ordinary failures are one line naming the file** (exit 2 from the command): a destination that is a file or
  on a read-only disk, a data file that is not a database, a data folder SQLite cannot open; exit 1 stays what it
  is documented as, a damaged evidence file.

Restore (:func:`restore`, ``strawfire db restore BACKUP_DIR``) puts a backup back, the service stopped:

* **Checked before anything is touched**: the folder must be a complete backup (its ``manifest.json``), the
  database's sha256 must match the manifest's, it must pass ``PRAGMA integrity_check`` and stand at a revision
  this release knows.
* **Nothing may have the database open**: an existing database is locked the way SQLite locks it (POSIX locks on
  its lock-byte range, which every open connection of a WAL database holds a shared lock in), without reading it,
  so a damaged database can be replaced too; a running ``serve``, alert worker or poller makes it refuse. The lock
  is held until the new file is in place: a service started meanwhile finds the database locked.
* **An existing database is replaced only with ``--yes``** (it is what restoring means, but it must be asked for).
* **Its ``-wal``, ``-shm`` (and ``-journal``) files are removed** before the backup's file takes its place:
  left behind by a crash (``kill -9``, power loss), SQLite would replay that old log onto the restored file at the
  next start ("database disk image is malformed"). Copying the file by hand without deleting them did exactly that.
* **The database goes in last, atomically** (copied beside it, checked, renamed over it): evidence files are
  merged first (they are named by their sha256, so a file already there with the right bytes is kept and one
  the backup does not have is left alone: never deleted), the token key after the database. A damaged evidence
  file in the backup is restored all the same and named (exit 1), as ``db backup`` does.
* **No migration**: the restored database stays at the backup's revision, so a backup made by an older release
  can be served by that release; ``strawfire serve`` of this release migrates it forward at start.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from detector.manifest import sha256_file
from service.config import Settings
from service.db import make_data_dir, refuse_unknown_revisions
from service.errors import InputError
from service.evidence.service import evidence_dir

DATABASE_FILE: Final = "strawfire.sqlite3"
MANIFEST_FILE: Final = "manifest.json"
PREFIX: Final = "strawfire-"
PARTIAL: Final = ".partial"
_COUNTED_TABLES: Final = ("incidents", "incident_events", "observations", "alerts", "evidence", "users")
#: Files SQLite keeps beside a database; a stale one would be replayed onto a restored database.
_SIDE_FILES: Final = ("-wal", "-shm", "-journal")
#: SQLite's lock bytes in a database file (the pending byte, the reserved byte and 510 shared bytes): its unix VFS
#: takes POSIX locks there, and every open connection to a WAL database holds a shared one (file format, 1.3).
_LOCK_BYTES_START: Final = 0x40000000
_LOCK_BYTES_LENGTH: Final = 512


@dataclass
class BackupSummary:
    """What one backup holds."""

    folder: Path
    revision: str | None
    database_bytes: int
    rows: dict[str, int]
    evidence_files: int = 0
    evidence_bytes: int = 0
    damaged: list[str] = field(default_factory=list)  # evidence files whose bytes do not match their name
    removed: list[Path] = field(default_factory=list)  # older backups removed by ``keep``


@dataclass
class RestoreSummary:
    """What one restore put back."""

    database: Path
    revision: str | None
    rows: dict[str, int]
    replaced: bool  # a database was there before
    evidence_files: int = 0  # copied from the backup
    evidence_kept: int = 0  # already there with the right bytes
    damaged: list[str] = field(default_factory=list)  # evidence files whose bytes do not match their name
    secret_key: bool = False  # the token key was restored
    removed: list[Path] = field(default_factory=list)  # stale -wal/-shm/-journal files removed


def embedded_database(settings: Settings) -> Path | None:
    """The embedded SQLite database's file, there or not; ``None`` when the database is not a SQLite file."""
    url = settings.effective_database_url
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///"))


def refuse_missing_database(path: Path) -> None:
    """Commands that read the embedded database must not create an empty one where the service's is not.

    Raises:
        InputError: no file there.
    """
    if not path.is_file():
        raise InputError(f"{path}: no database here (the service has not started on this data folder yet?)")


def sqlite_path(settings: Settings) -> Path:
    """The embedded database's file.

    Raises:
        InputError: the database is not a SQLite file, or the file is not there.
    """
    path = embedded_database(settings)
    if path is None:
        raise InputError(
            "db backup copies the embedded SQLite database; for PostgreSQL use its own tools (pg_dump -Fc, or "
            "continuous archiving) and copy the evidence folder and <data_dir>/secret_key beside the dump"
        )
    refuse_missing_database(path)
    return path


def _os_failure(exc: OSError, doing: str) -> InputError:
    """An OS error as one line naming the file it happened to."""
    where = exc.filename if exc.filename is not None else "?"
    return InputError(f"{where}: {doing}: {exc.strerror or exc}")


def _describe(copy: sqlite3.Connection, name: Path) -> tuple[str | None, dict[str, int]]:
    """``PRAGMA integrity_check`` on a database, then its revision and row counts.

    Raises:
        InputError: the check fails (naming ``name``).
    """
    check = [row[0] for row in copy.execute("PRAGMA integrity_check")]
    if check != ["ok"]:
        raise InputError(f"{name}: the copy fails SQLite's integrity check: {'; '.join(check[:5])}")
    tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    revision = None
    if "alembic_version" in tables:
        found = copy.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = found[0] if found else None
    rows = {}
    for table in (t for t in _COUNTED_TABLES if t in tables):  # names from the constant above, never input
        rows[table] = int(copy.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # noqa: S608
    return revision, rows


def _copy_database(source: Path, target: Path) -> tuple[str | None, dict[str, int]]:
    """A consistent snapshot of ``source`` in ``target``, checked, as a single file; its revision and row counts."""
    live, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        live.execute("PRAGMA busy_timeout=10000")
        live.backup(copy)  # pages=-1: one step, one snapshot
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
            raise InputError(f"{target}: cannot write the copy: {exc}") from None
        hint = ""
        if not os.access(source.parent, os.W_OK):  # a WAL database is opened with its -wal and -shm, made beside it
            hint = " (SQLite makes its -wal and -shm files beside it: this user must be able to write there)"
        raise InputError(f"{source}: cannot back up this database: {exc}{hint}") from None
    finally:
        live.close()
        copy.close()
    copy = sqlite3.connect(target)
    try:
        copy.execute("PRAGMA journal_mode=DELETE")
        return _describe(copy, source)
    except sqlite3.Error as exc:
        raise InputError(f"{target}: cannot check the copy: {exc}") from None
    finally:
        copy.close()


def _copy_evidence(source: Path, target: Path, summary: BackupSummary, on_file: Callable[[int], None] | None) -> None:
    if not source.is_dir():
        return
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        size = destination.stat().st_size
        if len(path.name) == 64 and sha256_file(destination) != path.name:  # evidence files are named by their hash
            summary.damaged.append(str(relative))
        summary.evidence_files += 1
        summary.evidence_bytes += size
        if on_file is not None:
            on_file(size)


def evidence_bytes(settings: Settings) -> int:
    """The size of the evidence folder (for a progress bar)."""
    folder = evidence_dir(settings)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def complete_backups(root: Path) -> list[Path]:
    """The complete backups under ``root``, oldest first (their names sort by time)."""
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / MANIFEST_FILE).is_file()
    )


def backup(
    settings: Settings,
    root: Path,
    *,
    now: datetime,
    keep: int = 0,
    on_evidence: Callable[[int], None] | None = None,
) -> BackupSummary:
    """Back up the embedded deployment into ``root/strawfire-<UTC time>/`` (see the module docstring).

    Raises:
        InputError: not SQLite, no database, a backup of that second already there, or a copy that fails its check.
    """
    database = sqlite_path(settings)
    final = root / f"{PREFIX}{now:%Y%m%dT%H%M%SZ}"
    partial = final.with_name(final.name + PARTIAL)
    if final.exists() or partial.exists():
        raise InputError(f"{final}: a backup of this second is already there")
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: not a folder (backups go in a folder)")
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial.mkdir(mode=0o700)
    except OSError as exc:
        raise _os_failure(exc, "cannot write a backup here") from None
    try:
        revision, rows = _copy_database(database, partial / DATABASE_FILE)
        (partial / DATABASE_FILE).chmod(0o600)
        summary = BackupSummary(final, revision, (partial / DATABASE_FILE).stat().st_size, rows)
        _copy_evidence(evidence_dir(settings), partial / "evidence", summary, on_evidence)
        key = settings.data_dir / "secret_key"
        if key.is_file():
            shutil.copy2(key, partial / "secret_key")
            (partial / "secret_key").chmod(0o600)
        manifest = {
            "created_at": now.isoformat(),
            "revision": revision,
            "database": {
                "file": DATABASE_FILE,
                "bytes": summary.database_bytes,
                "sha256": sha256_file(partial / DATABASE_FILE),
            },
            "rows": rows,
            "evidence": {"files": summary.evidence_files, "bytes": summary.evidence_bytes, "damaged": summary.damaged},
            "secret_key": key.is_file(),
        }
        (partial / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        partial.rename(final)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, an unreadable evidence file: one line, not a traceback
            raise _os_failure(exc, "backup failed") from None
        raise
    if keep > 0:
        for old in complete_backups(root)[:-keep]:
            try:
                shutil.rmtree(old)
            except OSError as exc:
                done = f"the backup {final.name} is complete, but removing an older one failed"
                raise _os_failure(exc, done) from None
            summary.removed.append(old)
    return summary


def _read_backup(folder: Path) -> tuple[str | None, dict[str, int]]:
    """A complete backup's database's revision and row counts, the backup checked (see the module
    docstring); nothing is written.

    Raises:
        InputError: naming the file that is missing, unreadable, damaged, or from a newer release.
    """
    if not folder.is_dir():
        raise InputError(f"{folder}: no backup folder here")
    manifest_file, database = folder / MANIFEST_FILE, folder / DATABASE_FILE
    if not manifest_file.is_file():
        raise InputError(
            f"{manifest_file}: missing: not a complete backup made by strawfire db backup "
            "(a .partial one was interrupted; backups are in its strawfire-<UTC time> folders)"
        )
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{manifest_file}: unreadable: {exc}") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{manifest_file}: not a strawfire backup manifest")
    if not database.is_file():
        raise InputError(f"{database}: missing from the backup")
    recorded = manifest.get("database", {}).get("sha256") if isinstance(manifest.get("database"), dict) else None
    try:
        if recorded is not None and sha256_file(database) != recorded:
            raise InputError(f"{database}: its sha256 does not match the manifest's: the backup is damaged")
        # read-only, immutable: checking a backup must not write beside it (it may sit on a read-only disk)
        copy = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except OSError as exc:
        raise _os_failure(exc, "cannot read the backup") from None
    try:
        revision, rows = _describe(copy, database)
    except sqlite3.Error as exc:
        raise InputError(f"{database}: not a usable database: {exc}") from None
    finally:
        copy.close()
    if revision is not None:
        refuse_unknown_revisions(str(database), [revision])
    return revision, rows


@contextmanager
def _not_in_use(database: Path) -> Iterator[None]:
    """Hold SQLite's lock bytes of an existing ``database`` exclusively (see the module docstring) until the block
    ends; a missing file needs no lock.

    Raises:
        InputError: another process has the database open, or it cannot be opened for writing.
    """
    import fcntl  # POSIX, as SQLite's own locks; imported here so that db backup still runs without it

    try:
        fd = os.open(database, os.O_RDWR)
    except FileNotFoundError:
        yield
        return
    except OSError as exc:
        raise _os_failure(exc, "cannot replace the database") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _LOCK_BYTES_LENGTH, _LOCK_BYTES_START)
        except OSError:
            raise InputError(
                f"{database}: the database is in use (strawfire serve, an alert worker or a poller has it open): "
                "stop them, then restore"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _copy_checked(source: Path, target: Path) -> None:
    """Copy ``source`` beside ``target`` and rename it over ``target``: a failure half-way leaves ``target`` as it
    was, and no half file."""
    temporary = target.with_name(f".{target.name}.restoring")
    try:
        shutil.copyfile(source, temporary)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _restore_evidence(source: Path, target: Path, summary: RestoreSummary) -> None:
    if not source.is_dir():
        return
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        destination = target / relative
        hashed = len(path.name) == 64  # evidence files are named by their hash
        if destination.is_file() and (not hashed or sha256_file(destination) == path.name):
            summary.evidence_kept += 1
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        _copy_checked(path, destination)
        if hashed and sha256_file(destination) != path.name:
            summary.damaged.append(str(relative))
        summary.evidence_files += 1


def restore(settings: Settings, folder: Path, *, replace: bool = False) -> RestoreSummary:
    """Put the backup in ``folder`` (a ``strawfire-<UTC time>`` folder written by :func:`backup`) back as the
    embedded deployment's database, evidence files and token key (see the module docstring).

    Raises:
        InputError: not SQLite; the backup is incomplete, damaged or from a newer release; a database is there and
            ``replace`` is off; the database is in use; a file cannot be written (each naming the file).
    """
    database = embedded_database(settings)
    if database is None:
        raise InputError(
            "db restore puts back a backup of the embedded SQLite database; for PostgreSQL use pg_restore, and "
            "copy the evidence folder and <data_dir>/secret_key back beside it"
        )
    source = folder / DATABASE_FILE
    revision, rows = _read_backup(folder)
    replaced = database.exists()
    if replaced and not replace:
        raise InputError(
            f"{database}: a database is already here; restoring replaces it (and its -wal and -shm files): "
            "stop the service, then run again with --yes"
        )
    make_data_dir(database.parent)
    make_data_dir(settings.data_dir)  # the token key's folder (the database may be elsewhere: database_url)
    summary = RestoreSummary(database, revision, rows, replaced)
    with _not_in_use(database):
        try:
            _restore_evidence(folder / "evidence", evidence_dir(settings), summary)
            for suffix in _SIDE_FILES:  # before the new file is there: SQLite would replay them onto it
                side = database.with_name(database.name + suffix)
                if side.exists():
                    side.unlink()
                    summary.removed.append(side)
            _copy_checked(source, database)
            database.chmod(0o600)  # it holds password hashes and signing secrets
            key = folder / "secret_key"
            if key.is_file():
                _copy_checked(key, settings.data_dir / "secret_key")
                (settings.data_dir / "secret_key").chmod(0o600)
                summary.secret_key = True
        except OSError as exc:
            raise _os_failure(exc, "restore failed") from None
    check = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        found = [row[0] for row in check.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        found = [str(exc)]
    finally:
        check.close()
    if found != ["ok"]:
        raise InputError(f"{database}: the restored database fails SQLite's integrity check: {'; '.join(found[:5])}")
    return summary
