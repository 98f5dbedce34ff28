"""Import FIRMS archives as hotspot history, and read it back for the persistence map.

A new deployment has no history of its own, so for its first year every chimney FIRMS sees would alert a
township. A year of archive (MODIS/VIIRS CSV from FIRMS) fills the persistence map instead, without opening
incidents, sending alerts or touching statistics: rows go to ``hotspot_history`` only.

Only hotspots the service could act on are kept: those whose pixel footprint meets the imported units' coverage
(widened by the assignment tolerance), the very test screening applies (``outside_coverage``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import shapely
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from satellite.firms import RejectedRow, read_firms_csv_chunks
from satellite.hotspot import Hotspot
from satellite.screening import CHINA_STANDARD_TIME, in_coverage
from service.errors import InputError
from service.history.tables import HotspotHistory
from service.regions.service import RegionIndexCache, units_coverage

# Keys per "IN (...)" query: well below SQLite's bound-parameter limit.
_KEYS_PER_QUERY = 500

Coverage = list[shapely.Polygon | shapely.MultiPolygon]


@dataclass(slots=True)
class HistoryFileSummary:
    """What importing one archive file did.

    Attributes:
        source_name: the file's name.
        read: data rows read, valid or not.
        in_coverage: valid rows whose pixel meets the coverage.
        stored: of those, rows new to the history.
        already_known: of those, rows stored before (an earlier import, or the same row twice in the file).
        rejected: bad rows, skipped (file, line, field, reason).
    """

    source_name: str
    read: int = 0
    in_coverage: int = 0
    stored: int = 0
    already_known: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


def history_coverage(session: Session, indexes: RegionIndexCache) -> Coverage:
    """The imported township and county units' area widened by the tolerance (as screening uses).

    Raises:
        InputError: no units are imported: without them every hotspot of the archive would be kept.
    """
    coverage = units_coverage(session, indexes)
    if coverage is None:
        raise InputError(
            "no administrative units are imported at township or county level: history is kept for the covered "
            "area only; "
            "run `strawfire regions import` first"
        )
    return coverage


def store_history(
    session: Session, hotspots: Sequence[Hotspot], coverage: Coverage, source_file: str
) -> tuple[int, int]:
    """Store the hotspots inside the coverage that are not stored yet; ``(in coverage, stored)``."""
    if not hotspots:
        return 0, 0
    kept = [h for h, covered in zip(hotspots, in_coverage(hotspots, coverage), strict=True) if covered]
    unique = {h.key: h for h in kept}
    known = _stored_keys(session, list(unique))
    rows = [
        {
            "source_key": key,
            "acq_utc": h.acq_utc,
            "local_date": h.acq_utc.astimezone(CHINA_STANDARD_TIME).date(),
            "latitude": h.latitude,
            "longitude": h.longitude,
            "satellite": h.satellite.value,
            "instrument": h.instrument.value,
            "daynight": h.daynight.value,
            "source_file": source_file[-200:],
        }
        for key, h in unique.items()
        if key not in known
    ]
    if rows:
        session.execute(_insert_ignoring_known(session), rows)
    return len(kept), len(rows)


def _stored_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        batch = keys[start : start + _KEYS_PER_QUERY]
        found.update(session.scalars(select(HotspotHistory.source_key).where(HotspotHistory.source_key.in_(batch))))
    return found


def _insert_ignoring_known(session: Session) -> Any:
    """An INSERT that skips keys stored meanwhile: two imports of one archive at once must not fail a file (the
    counts were taken before; the race only makes them approximate)."""
    table = cast(Table, HotspotHistory.__table__)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["source_key"])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=["source_key"])


def import_firms_history(
    session: Session,
    path: Path,
    coverage: Coverage,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> HistoryFileSummary:
    """Read a FIRMS CSV in batches (the ``firms ingest`` reader) and store its covered hotspots as history, in
    the caller's transaction (one per file: all of it or none of it).

    Raises:
        FirmsFormatError, OSError: the file cannot be read (no header, undecodable, missing).
    """
    summary = HistoryFileSummary(path.name)
    for batch in read_firms_csv_chunks(path, on_bytes=on_bytes):
        covered, stored = store_history(session, batch.hotspots, coverage, path.name)
        summary.read += len(batch.hotspots) + len(batch.rejected)
        summary.in_coverage += covered
        summary.stored += stored
        summary.already_known += covered - stored
        summary.rejected.extend(batch.rejected)
    return summary


def history_between(session: Session, since: datetime, until: datetime) -> Iterable[tuple[str, float, float, datetime]]:
    """``(key, latitude, longitude, acq_utc)`` of history hotspots with ``since <= acq_utc < until``."""
    return session.execute(
        select(
            HotspotHistory.source_key, HotspotHistory.latitude, HotspotHistory.longitude, HotspotHistory.acq_utc
        ).where(HotspotHistory.acq_utc >= since, HotspotHistory.acq_utc < until)
    )
