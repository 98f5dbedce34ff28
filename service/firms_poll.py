"""Polling the FIRMS area API and ingesting what it returns (screening, fusion, alerts) in one transaction.

The MAP_KEY stays inside :class:`satellite.poller.FirmsPoller`; nothing here logs URLs. A source that fails is
reported and retried on the next poll; the overlapping day range picks up what it missed.

**Back-fill after an outage.** A poll asks for the last ``firms.day_range`` days, so a service down for longer never
fetched the days in between. Each source's progress is kept with its status row (``firms:<source>``,
:mod:`service.status`): ``detail.resume_from``, the first UTC day not yet known to be fetched completely, written
by each back-filled window and kept by a regular poll while a back-fill is unfinished; without it,
``last_success_at`` minus one day (a near-real-time pass late on the day before a poll is published up to hours
after it). When that day is older than the first day of the regular window, each cycle first fetches the days in
between in dated windows (``/{DAY_RANGE}/{DATE}``, at most 5 days each), oldest first, at most
``firms.backfill_max_days`` back; each window is ingested as usual (what overlaps is a duplicate, stored once) and
its progress recorded in the same transaction, so a crash or a failing window resumes where it stopped. A source
that has never succeeded is not back-filled: a new deployment's past is imported as history (``firms history``).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from satellite.errors import FirmsApiError
from satellite.hotspot import Product
from satellite.poller import MAX_DAY_RANGE, BBox, FirmsPoller, PollResult, SourceResult, TransactionBudget
from service.auth.service import SYSTEM
from service.config import Settings
from service.db import transaction, utcnow
from service.errors import ConfigError
from service.flows import ingest_hotspots
from service.regions.service import RegionIndexCache, list_regions
from service.status.service import error_text, firms_component, record_run
from service.status.tables import ComponentRun

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
    backfill: BackfillReport | None = None


POLL_NOT_SENT_MESSAGE: Final = "FIRMS poll not sent this cycle: the back-fill's error above is about the MAP_KEY itself"
"""Logged (WARNING) instead of a regular poll that a key-wide back-fill error makes pointless."""

LATE_PUBLICATION_MARGIN: Final = timedelta(days=1)
"""How far before a successful poll the next fetch must reach: FIRMS NRT rows appear up to ~3 h after the pass, so
a pass late on the day before a poll can be published after it."""


@dataclass(slots=True)
class BackfillReport:
    """What one cycle's back-fill did, per source: the dated windows fetched (``YYYY-MM-DD+N``: N days from that
    day), the source's error when a window failed (redacted by the poller), the days left undone (``pending``: the
    first day still to fetch; the next cycle starts there), the days beyond ``firms.backfill_max_days`` that were
    given up (first, last), and what the ingests did."""

    windows: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    pending: dict[str, date] = field(default_factory=dict)
    skipped: dict[str, tuple[date, date]] = field(default_factory=dict)
    received: int = 0
    new: int = 0
    duplicates: int = 0
    new_incidents: list[int] = field(default_factory=list)
    key_error: FirmsApiError | None = None
    """An error about the MAP_KEY itself (refused, transaction limit) that stopped the back-fill: the cycle's regular
    poll is not sent either, and reports it for every source."""


def area_of_interest(session: Session, settings: Settings) -> BBox:
    """The configured box, or the bounds of the imported regions (a small margin added).

    With no regions imported a poll is refused before it fetches anything, box or not, unless
    ``screening.coverage_from_regions`` is off: the ingest would refuse every answer (see
    :func:`service.screening.build_screener`), and each cycle would spend FIRMS transactions for nothing.
    """
    rows = list_regions(session)
    if not rows and settings.screening.coverage_from_regions:
        raise ConfigError(
            "no regions imported: satellite fire points are ingested for the imported units only; run "
            "`strawfire regions import` first (or set screening.coverage_from_regions = false to take every "
            "hotspot in firms.bbox)"
        )
    if settings.firms.bbox:
        if len(settings.firms.bbox) != 4:
            raise ConfigError("firms.bbox needs four numbers: west, south, east, north")
        try:
            return BBox(*settings.firms.bbox)
        except ValueError as exc:
            raise ConfigError(f"firms.bbox: {exc}") from None
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
    factory: sessionmaker[Session],
    settings: Settings,
    indexes: RegionIndexCache,
    poller: FirmsPoller,
    *,
    key_error: FirmsApiError | None = None,
) -> PollSummary:
    """One poll of every source, ingested as one transaction. With ``key_error`` (this cycle's back-fill was
    refused for the key itself) nothing is sent: every source reports that error, which was logged once already."""
    result: PollResult
    if key_error is None:
        result = poller.poll_once()
    else:
        at = utcnow()
        result = PollResult(
            at, at, {s: SourceResult(poller.request_for(s), [], [], key_error, 0, 0) for s in poller.sources}
        )
        log.warning(POLL_NOT_SENT_MESSAGE)
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


def _resume_from(row: ComponentRun | None) -> date | None:
    """The first UTC day a source's fetches have not yet covered completely; None when it never succeeded."""
    if row is None or row.last_success_at is None:
        return None
    marked = json.loads(row.detail or "{}").get("resume_from")
    if isinstance(marked, str):
        try:
            return date.fromisoformat(marked)
        except ValueError:
            log.warning("firms status row %s: unreadable resume_from %r; using its last success", row.name, marked)
    return (row.last_success_at.astimezone(UTC) - LATE_PUBLICATION_MARGIN).date()


def backfill(
    factory: sessionmaker[Session],
    settings: Settings,
    indexes: RegionIndexCache,
    poller: FirmsPoller,
    *,
    now: datetime,
) -> BackfillReport:
    """Fetch and ingest the days each source missed before the regular window (module docstring), oldest first.

    A failing window ends that source's back-fill for this cycle (what came before it is kept and recorded); an
    error about the key itself (refused, transaction limit) ends it for every source.
    """
    report = BackfillReport()
    if settings.firms.backfill_max_days == 0:
        return report
    today = now.astimezone(UTC).date()
    regular_first = today - timedelta(days=poller.day_range - 1)
    oldest_allowed = today - timedelta(days=settings.firms.backfill_max_days)
    names = [firms_component(source.value) for source in poller.sources]
    with factory() as session:
        rows = {row.name: row for row in session.scalars(select(ComponentRun).where(ComponentRun.name.in_(names)))}
        session.expunge_all()
    key_refused = False
    for source in poller.sources:
        resume = _resume_from(rows.get(firms_component(source.value)))
        if resume is None or resume >= regular_first:
            continue
        if key_refused:  # the key itself was refused: every request would fail the same way
            report.pending[source.value] = max(resume, oldest_allowed)
            continue
        day = max(resume, oldest_allowed)
        if day > resume:
            report.skipped[source.value] = (resume, day - timedelta(days=1))
            log.warning(
                "FIRMS %s: days %s to %s were missed and are older than firms.backfill_max_days (%d); not fetched "
                "(import a FIRMS archive file for them)",
                source.value,
                resume,
                day - timedelta(days=1),
                settings.firms.backfill_max_days,
            )
        log.info("FIRMS %s: back-filling %s to %s", source.value, day, regular_first - timedelta(days=1))
        while day < regular_first:
            days = min(MAX_DAY_RANGE, (regular_first - day).days)
            result = poller.fetch(poller.request_for(source, day_range=days, start_date=day))
            if result.error is not None:
                report.errors[source.value] = str(result.error)
                report.pending[source.value] = day
                # The poller logged the error itself; saying it again here would log each failure twice.
                log.warning(
                    "FIRMS %s: back-fill stopped at %s (the error above); the next cycle resumes there",
                    source.value,
                    day,
                )
                if isinstance(result.error, FirmsApiError) and result.error.key_wide:
                    key_refused = True
                    report.key_error = result.error
                break
            day += timedelta(days=days)
            with transaction(factory) as session:
                if result.hotspots:
                    ingest = ingest_hotspots(session, result.hotspots, indexes=indexes, settings=settings, actor=SYSTEM)
                    report.new += ingest.new
                    report.duplicates += ingest.duplicates
                    report.new_incidents += ingest.new_incidents
                # In the ingest's transaction: a crash never records a window whose rows are not stored.
                record_run(
                    session,
                    firms_component(source.value),
                    at=utcnow(),
                    ok=True,
                    detail={"hotspots": len(result.hotspots), "resume_from": day.isoformat()},
                )
            report.received += len(result.hotspots)
            report.windows.setdefault(source.value, []).append(f"{result.request.start_date}+{days}")
            for row in result.rejected:
                log.warning("FIRMS row rejected: %s", row)
    return report


def run_poll(
    factory: sessionmaker[Session], settings: Settings, indexes: RegionIndexCache, budget: TransactionBudget
) -> PollSummary:
    """One cycle: make the poller, back-fill what an outage missed (module docstring), poll, ingest, and record
    each source's outcome for the system status (``firms:<source>``, :mod:`service.status`), with the day the next
    back-fill starts from while one is unfinished. A cycle that fails as a whole (no regions, no MAP_KEY, the
    database) is recorded against every configured source and re-raised."""
    now = utcnow()
    try:
        with factory() as session:
            poller = make_poller(session, settings, budget)
        with poller:
            report = backfill(factory, settings, indexes, poller, now=now)
            summary = poll_and_ingest(factory, settings, indexes, poller, key_error=report.key_error)
    except Exception as exc:
        key = settings.firms.map_key.get_secret_value() if settings.firms.map_key else None
        error = error_text(exc, key)
        _record(factory, [(source, False, error, None) for source in settings.firms.sources])
        raise
    summary.backfill = report
    summary.new += report.new
    summary.duplicates += report.duplicates
    summary.new_incidents += report.new_incidents
    # A success says "fetched through now" (resume from the day before it), unless a back-fill is unfinished: then
    # the next one must start where it stopped, and the success must not cover that over.
    outcomes: list[_Outcome] = [
        (source, True, None, {"hotspots": n, **_pending(report, source)})
        for source, n in summary.per_source.items()
        if source not in summary.errors
    ]  # a failed source is in per_source too, with nothing received
    outcomes += [(source, False, error, None) for source, error in summary.errors.items()]  # redacted by the poller
    _record(factory, outcomes)
    return summary


def _pending(report: BackfillReport, source: str) -> dict[str, int | str]:
    return {"resume_from": report.pending[source].isoformat()} if source in report.pending else {}


_Outcome = tuple[str, bool, str | None, dict[str, int | str] | None]  # source, ok, error (redacted), detail


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
                # The sources that failed, not their errors: the poller logged each error once, as it happened.
                log.info(
                    "FIRMS poll: %s new, %s duplicate, failed sources: %s",
                    summary.new,
                    summary.duplicates,
                    ", ".join(summary.errors) or "none",
                )
            except Exception:  # keep polling: the next cycle may succeed
                log.exception("FIRMS poll failed")
            self._stop_event.wait(self._settings.firms.poll_interval_min * 60)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait for it."""
        self._stop_event.set()
        self.join(timeout)
