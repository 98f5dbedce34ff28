"""Old rows of a satellite file: rows observed days ago that ingesting would make new fires of.

Ingested satellite rows are new fires whatever their age: they open incidents and queue new-fire alerts to their
townships now (as the FIRMS poll's back-fill of missed days does, on purpose). A file whose rows inside the units
were observed more than :data:`OLD_ROWS_AFTER` ago and are not stored yet is most likely a mistake (an old
download, a sample file) or history (``strawfire firms history`` imports archives without incidents or alerts).
``firms ingest`` and ``himawari ingest`` warn (and on a terminal ask) before writing such a file; the upload API
ingests it and says so in its answer. Both ask this module which rows those are, so they mean the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from satellite.clustering import Detection
    from service.regions.service import RegionIndexCache

__all__ = ["OLD_ROWS_AFTER", "old_new_rows", "old_rows_warning"]

#: Rows observed longer ago than this are "old": FIRMS publishes its near-real-time files for the last 24 and 48
#: hours, and the poll fetches the last ``firms.day_range`` (2) days, so anything older did not come from either.
OLD_ROWS_AFTER: Final = timedelta(days=2)

D = TypeVar("D", bound="Detection")


def old_new_rows(
    session: Session, hotspots: Sequence[D], indexes: RegionIndexCache, now: datetime, *, in_units_only: bool = True
) -> list[D]:
    """The rows that ingesting ``hotspots`` would make fires of and that were observed before ``now -
    OLD_ROWS_AFTER``, in their order: inside the imported units' coverage (as screening's ``outside_coverage``
    decides it) and not stored yet (a file ingested again adds nothing, so it is not warned about again).

    Only reads; call it before the ingest, whose rows are stored afterwards. Rows screened out for another reason
    (a low-confidence pixel, a fixed heat source) still count: they are recorded as observations all the same.
    Without imported units no row is left out for its place (the ingest then refuses the whole file by itself),
    nor with ``in_units_only`` false (``screening.coverage_from_regions = false``: every row is screened, wherever
    it lies, and may become a fire).
    """
    # Imported here: the CLI reads OLD_ROWS_AFTER at start-up and should not load shapely and SQLAlchemy for it.
    from satellite.screening import in_coverage
    from service.incidents.fusion import ObservationKind
    from service.incidents.service import stored_keys
    from service.regions.service import units_coverage

    old = [h for h in hotspots if h.acq_utc < now - OLD_ROWS_AFTER]
    if not old:
        return []
    coverage = units_coverage(session, indexes) if in_units_only else None
    if coverage is not None:
        old = [h for h, covered in zip(old, in_coverage(old, coverage), strict=True) if covered]
    known = stored_keys(session, ObservationKind.SATELLITE, [h.key for h in old])
    return [h for h in old if h.key not in known]


def old_rows_warning(old: Sequence[Detection]) -> str:
    """The warning about ``old`` (:func:`old_new_rows`, not empty) that ``firms ingest`` prints and the upload
    answers with: how many, the oldest, and what ingesting them does."""
    oldest = min(h.acq_utc for h in old).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{len(old)} new row(s) inside the units were observed more than {OLD_ROWS_AFTER.days} days ago (the oldest "
        f"{oldest}); ingested, their fires open incidents and alert their townships now, as new fires."
    )
