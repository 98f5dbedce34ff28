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

Restore (the service stopped): copy ``strawfire.sqlite3`` to ``<data_dir>/``, ``evidence/`` to the evidence folder
and ``secret_key`` to ``<data_dir>/``, then start; an older backup is migrated forward at start.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from detector.manifest import sha256_file
from service.config import Settings
from service.errors import InputError
from service.evidence.service import evidence_dir

DATABASE_FILE: Final = "strawfire.sqlite3"
MANIFEST_FILE: Final = "manifest.json"
PREFIX: Final = "strawfire-"
PARTIAL: Final = ".partial"
_COUNTED_TABLES: Final = ("incidents", "incident_events", "observations", "alerts", "evidence", "users")


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


def sqlite_path(settings: Settings) -> Path:
    """The embedded database's file.

    Raises:
        InputError: the database is not a SQLite file, or the file is not there.
    """
    url = settings.effective_database_url
    if not url.startswith("sqlite:///") or url.startswith("sqlite:///:memory:"):
        raise InputError(
            "db backup copies the embedded SQLite database; for PostgreSQL use its own tools (pg_dump -Fc, or "
            "continuous archiving) and copy the evidence folder and <data_dir>/secret_key beside the dump"
        )
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file():
        raise InputError(f"{path}: no database here (the service has not started on this data folder yet?)")
    return path


def _copy_database(source: Path, target: Path) -> tuple[str | None, dict[str, int]]:
    """A consistent snapshot of ``source`` in ``target``, checked, as a single file; its revision and row counts."""
    live, copy = sqlite3.connect(source), sqlite3.connect(target)
    try:
        live.execute("PRAGMA busy_timeout=10000")
        live.backup(copy)  # pages=-1: one step, one snapshot
    finally:
        live.close()
        copy.close()
    copy = sqlite3.connect(target)
    try:
        copy.execute("PRAGMA journal_mode=DELETE")
        check = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        if check != ["ok"]:
            raise InputError(f"{source}: the copy fails SQLite's integrity check: {'; '.join(check[:5])}")
        tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = None
        if "alembic_version" in tables:
            found = copy.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = found[0] if found else None
        rows = {}
        for table in (t for t in _COUNTED_TABLES if t in tables):  # names from the constant above, never input
            rows[table] = int(copy.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # noqa: S608
    finally:
        copy.close()
    return revision, rows


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
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial.mkdir(mode=0o700)
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
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if keep > 0:
        for old in complete_backups(root)[:-keep]:
            shutil.rmtree(old)
            summary.removed.append(old)
    return summary
