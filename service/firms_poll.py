"""Polling the FIRMS area API and ingesting what it returns (screening, fusion, alerts) in one transaction.

The MAP_KEY stays inside :class:`satellite.poller.FirmsPoller`; nothing here logs URLs. A source that fails is
reported and retried on the next poll; the overlapping day range picks up what it missed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import shapely
from sqlalchemy.orm import Session, sessionmaker

from satellite.hotspot import Product
from satellite.poller import BBox, FirmsPoller, PollResult, TransactionBudget
from service.auth.service import SYSTEM
from service.config import Settings
from service.db import transaction, utcnow
from service.errors import ConfigError
from service.flows import ingest_hotspots
from service.regions.service import RegionIndexCache, list_regions
from service.status.service import error_text, firms_component, record_run

log = logging.getLogger("strawfire.firms")


@dataclass(slots=True)
class PollSummary:
    """One poll: hotspots received per source, what the ingest did, per-source errors (redacted) and the rows of the
    answers that were skipped as malformed (``request:line: field: reason``, the request with the key masked)."""

    per_source: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    new: int = 0
    duplicates: int = 0
    held: dict[str, int] = field(default_factory=dict)
    new_incidents: list[int] = field(default_factory=list)


def area_of_interest(session: Session, settings: Settings) -> BBox:
    """The configured box, or the bounds of the imported regions (a small margin added)."""
    if settings.firms.bbox:
        if len(settings.firms.bbox) != 4:
            raise ConfigError("firms.bbox needs four numbers: west, south, east, north")
        try:
            return BBox(*settings.firms.bbox)
        except ValueError as exc:
            raise ConfigError(f"firms.bbox: {exc}") from None
    rows = list_regions(session)
    if not rows:
        raise ConfigError("no regions imported and no firms.bbox configured: nothing to poll for")
    west, south, east, north = shapely.total_bounds([shapely.from_wkb(r.geometry_wkb) for r in rows])
    return BBox(max(-180.0, west - 0.1), max(-90.0, south - 0.1), min(180.0, east + 0.1), min(90.0, north + 0.1))


def make_poller(session: Session, settings: Settings, budget: TransactionBudget | None = None) -> FirmsPoller:
    """A poller from settings; a missing MAP_KEY is a configuration error. ``budget``: the key's transaction
    limiter, to share across cycles (a new one each cycle would forget the sliding window, and a "limit
    exceeded" answer from FIRMS, at every poll)."""
    if settings.firms.map_key is None:
        raise ConfigError("firms.map_key is not set (STRAWFIRE_FIRMS__MAP_KEY)")
    try:
        sources = tuple(Product(name) for name in settings.firms.sources)
    except ValueError as exc:
        raise ConfigError(f"firms.sources: {exc}") from None
    bbox = area_of_interest(session, settings)
    try:
        return FirmsPoller(
            settings.firms.map_key,
            base_url=settings.firms.base_url,
            sources=sources,
            bbox=bbox,
            day_range=settings.firms.day_range,
            budget=budget,
        )
    except ValueError as exc:  # the poller's checks of the key and the URL; their messages never hold the key
        setting = "firms.map_key" if "MAP_KEY" in str(exc) else "firms.base_url" if "base_url" in str(exc) else "firms"
        raise ConfigError(f"{setting}: {exc}") from None


def poll_and_ingest(
    factory: sessionmaker[Session], settings: Settings, indexes: RegionIndexCache, poller: FirmsPoller
) -> PollSummary:
    """One poll of every source, ingested as one transaction."""
    result: PollResult = poller.poll_once()
    summary = PollSummary(
        per_source={source.value: len(r.hotspots) for source, r in result.results.items()},
        errors={source.value: str(error) for source, error in result.errors.items()},
        rejected=[str(row) for row in result.rejected],
    )
    for row in summary.rejected:  # skipped, never silently: which row of which answer, and why
        log.warning("FIRMS row rejected: %s", row)
    hotspots = result.all_hotspots()
    if hotspots:
        with transaction(factory) as session:
            ingest = ingest_hotspots(session, hotspots, indexes=indexes, settings=settings, actor=SYSTEM)
        summary.new, summary.duplicates = ingest.new, ingest.duplicates
        summary.held, summary.new_incidents = ingest.held, ingest.new_incidents
    return summary


def run_poll(
    factory: sessionmaker[Session], settings: Settings, indexes: RegionIndexCache, budget: TransactionBudget
) -> PollSummary:
    """One cycle: make the poller, poll, ingest, and record each source's outcome for the system status
    (``firms:<source>``, :mod:`service.status`). A cycle that fails as a whole (no regions, no MAP_KEY, the
    database) is recorded against every configured source and re-raised."""
    try:
        with factory() as session:
            poller = make_poller(session, settings, budget)
        with poller:
            summary = poll_and_ingest(factory, settings, indexes, poller)
    except Exception as exc:
        key = settings.firms.map_key.get_secret_value() if settings.firms.map_key else None
        error = error_text(exc, key)
        _record(factory, [(source, False, error, None) for source in settings.firms.sources])
        raise
    outcomes: list[_Outcome] = [
        (source, True, None, {"hotspots": n})
        for source, n in summary.per_source.items()
        if source not in summary.errors
    ]  # a failed source is in per_source too, with nothing received
    outcomes += [(source, False, error, None) for source, error in summary.errors.items()]  # redacted by the poller
    _record(factory, outcomes)
    return summary


_Outcome = tuple[str, bool, str | None, dict[str, int] | None]  # source, ok, error (redacted), detail


def _record(factory: sessionmaker[Session], outcomes: list[_Outcome]) -> None:
    at = utcnow()
    try:
        with transaction(factory) as session:
            # In name order: two pollers at once on PostgreSQL lock the rows in the same order (no deadlock).
            for source, ok, error, detail in sorted(outcomes, key=lambda outcome: outcome[0]):
                record_run(session, firms_component(source), at=at, ok=ok, error=error, detail=detail)
    except Exception:  # the hotspots are in; a status row that could not be written must not undo that
        log.warning("could not record the FIRMS poll for the system status", exc_info=True)


class FirmsPollWorker(threading.Thread):
    """Polls every ``firms.poll_interval_min`` minutes inside the web process (daemon thread)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, indexes: RegionIndexCache) -> None:
        super().__init__(name="strawfire-firms", daemon=True)
        self._factory, self._settings, self._indexes = factory, settings, indexes
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Poll until stopped; a failing poll is logged (without the key) and retried next time."""
        budget = TransactionBudget()  # one for the key, across cycles
        while not self._stop_event.is_set():
            try:
                summary = run_poll(self._factory, self._settings, self._indexes, budget)
                log.info(
                    "FIRMS poll: %s new, %s duplicate, errors %s",
                    summary.new,
                    summary.duplicates,
                    summary.errors or "none",
                )
            except Exception:  # keep polling: the next cycle may succeed
                log.exception("FIRMS poll failed")
            self._stop_event.wait(self._settings.firms.poll_interval_min * 60)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait for it."""
        self._stop_event.set()
        self.join(timeout)
