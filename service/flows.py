"""Flows that span domains: what happens, in one transaction, when observations arrive or an incident moves."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import shapely
from pyproj import Geod
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from satellite.clustering import Detection
from satellite.himawari import HimawariHotspot
from satellite.hotspot import Box, Hotspot
from satellite.screening import ScreeningDecision, ScreeningStatus, may_reach_box
from service.alerts.outbox import enqueue, enqueue_many, new_fire_round
from service.alerts.tables import AlertKind
from service.auth.service import Principal
from service.config import Settings
from service.errors import ConflictError
from service.evidence.service import store_evidence
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind, combined_confidence
from service.incidents.sources import fusion_windows, hotspot_observation, repeat_site_rule, sighting_observation
from service.incidents.states import OPEN_STATES, IncidentState
from service.incidents.tables import Incident, Observation
from service.regions.service import RegionIndexCache, units_coverage
from service.screening import build_screener, fire_points
from video.errors import VideoError
from video.sighting import CameraSighting, DroneSighting
from video.triangulate import BearingObservation, triangulate

_Pixel = TypeVar("_Pixel", bound=Detection)


def ingest_observations(
    session: Session,
    observations: Sequence[ObservationIn],
    *,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
) -> incidents.IngestSummary:
    """Fuse observations into incidents and queue the township alerts for new incidents (same transaction)."""
    summary = incidents.ingest(
        session,
        observations,
        indexes=indexes,
        windows=fusion_windows(settings.incidents),
        actor=actor,
        repeat_rule=repeat_site_rule(settings.incidents),
    )
    # New incidents, and incidents nobody has acted on yet that a new observation placed in another unit (open, as
    # only those move): that unit's team is alerted (one alert per incident and recipient, so the first unit's team
    # is not alerted again).
    alerted = [*summary.new_incidents, *summary.reassigned_incidents]
    if alerted:
        rows = session.scalars(select(Incident).where(Incident.id.in_(alerted))).all()
        enqueue_many(session, rows, AlertKind.NEW)
    return summary


#: How far beyond the coverage's bounds :func:`coverage_box` reaches, in degrees (~5 km): rows just outside the
#: coverage still go through screening and are stored as held ``outside_coverage``, for the persistence rule of this
#: and later batches (a 3 x 3 block of 0.01° cells around a pixel at the edge) and the SP rows' NRT twins.
COVERAGE_BOX_MARGIN_DEG = 0.05


def coverage_box(session: Session, settings: Settings, indexes: RegionIndexCache) -> Box | None:
    """The box a satellite file's reader may drop rows outside of (``within`` of
    :func:`satellite.firms.read_firms_csv` and :func:`satellite.himawari.read_himawari_csv`): the imported units'
    coverage (widened by the assignment tolerance, as screening tests it) plus :data:`COVERAGE_BOX_MARGIN_DEG`.
    Pass the count of dropped rows to :func:`ingest_hotspots` (``outside_coverage``).

    Why: a global daily file is ~99 % outside any county; parsed in full, every row became a record and a stored
    observation, ~8 KB per row: a 20 MB VIIRS day took
    1.9 GB for 45 rows in the county, a 200 MB file was killed at 15 GB.

    ``None`` when every hotspot is screened (``screening.coverage_from_regions = false``).

    Raises:
        ConflictError: no units are imported (as the ingest itself would refuse the batch, but before a file is
            read).
    """
    if not settings.screening.coverage_from_regions:
        return None
    coverage = units_coverage(session, indexes)
    if coverage is None:
        raise ConflictError(
            "no administrative units are imported at township or county level (those fires are assigned to): "
            "satellite fire points are ingested for those units only; run `strawfire regions import` first"
        )
    west, south, east, north = (float(v) for v in shapely.total_bounds(coverage))
    margin = COVERAGE_BOX_MARGIN_DEG
    return (west - margin, south - margin, east + margin, north + margin)


def ingest_hotspots(
    session: Session,
    hotspots: Sequence[Hotspot | HimawariHotspot],
    *,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
    outside_coverage: int = 0,
) -> incidents.IngestSummary:
    """FIRMS and Himawari hotspots through :func:`ingest_screened`; a standard-processing (SP) row whose
    near-real-time twin is stored already is recorded as held (superseded), not screened. ``outside_coverage``:
    rows the reader dropped outside :func:`coverage_box`, counted as received and held ``outside_coverage``."""
    # Before the twins are looked for: an SP archive of the world has its twins' geodesics to measure otherwise.
    # (ingest_screened counts these as received and outside the coverage, and its own box test keeps them all.)
    hotspots, dropped = _reaching_coverage_box(session, settings, indexes, hotspots)
    science = [h for h in _first_of_each_key(hotspots) if isinstance(h, Hotspot) and not h.product.is_nrt]
    return ingest_screened(
        session,
        hotspots,
        hotspot_observation,
        indexes=indexes,
        settings=settings,
        actor=actor,
        superseded=lambda current: _nrt_twins(current, science),
        outside_coverage=outside_coverage + dropped,
    )


#: How a satellite source turns one pixel, its screening decision and its fire point into an observation.
PixelObservation = Callable[[Any, ScreeningDecision[Any], dict[str, Any] | None], ObservationIn]


def ingest_screened(
    session: Session,
    pixels: Sequence[Detection],
    observe: PixelObservation,
    *,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
    superseded: Callable[[Session], dict[str, ObservationIn]] | None = None,
    outside_coverage: int = 0,
) -> incidents.IngestSummary:
    """Screen satellite fire pixels of any source, cluster the accepted ones into fire points and fuse them; the
    others are recorded with their decision, as are those ``superseded`` finds in the database (by key, each as the
    observation to record instead: not screened).

    **Far outside the coverage**: pixels that cannot reach :func:`coverage_box` (the coverage's bounds plus ~5 km)
    are counted as held ``outside_coverage`` and not stored, and so are the rows a reader dropped before
    (``outside_coverage``; counted as received too). They are counted before anything else is done with them (no
    footprint, no decision, no key looked up; a row repeated there counts each time), so that an upload of a
    global file costs memory and time for the rows near the units only. Why: a global daily file is ~99 % outside
    any county; an observation per row (footprint, decision, JSON) cost ~8 KB of memory and a database row, 256 MB
    of database for a 20 MB VIIRS day of which 45 rows were in the county, and nobody looks them up. The pixels
    inside the box that screening finds ``outside_coverage`` are stored with that decision, as every other held
    one: the persistence rule of later batches counts them (a chimney just across the border whose pixels
    sometimes reach in is a fixed heat source, not a new fire), and an SP row finds its NRT twin among them.

    A pixel repeated within the batch (a file with a line twice, overlapping API windows, a scene scanned twice)
    counts as a duplicate and is ingested once; it used to abort the whole file. Fire points are counted among the
    pixels not stored before, so ingesting the same batch again reports none.

    Two ingests of overlapping data at once (the in-service poller and a manual ``firms ingest``, or an upload)
    behave as if one had come after the other: the writes are made under :func:`lock_satellite_writes`, which
    makes the stored keys read under it final, so the other's pixels count as duplicates here, and a batch some of
    whose pixels were stored since it was screened is screened again under the lock. The loser used to fail with
    an IntegrityError (UNIQUE observations.kind, source_key), its whole file rolled back. So is one for which
    ``superseded`` finds other pixels once the lock is held: an NRT file stored while its SP file was being
    screened made the SP rows new fires again.
    """
    received = len(pixels) + outside_coverage  # the rows a reader dropped were received too
    pixels, dropped = _reaching_coverage_box(session, settings, indexes, pixels)
    outside_coverage += dropped
    unique = _first_of_each_key(pixels)
    repeated = len(pixels) - len(unique)
    keys = [pixel.key for pixel in unique]
    kept = set(keys)

    def superseded_now() -> dict[str, ObservationIn]:
        # Of the pixels kept: an SP row outside the coverage is counted there, whatever its twin.
        return {key: obs for key, obs in superseded(session).items() if key in kept} if superseded else {}

    stored, twins = incidents.stored_keys(session, ObservationKind.SATELLITE, keys), superseded_now()
    while True:
        screened = [pixel for pixel in unique if pixel.key not in twins]
        decisions = build_screener(session, settings, screened, indexes).screen(screened)
        passed = [d for d in decisions if d.status is ScreeningStatus.ACCEPTED]
        points = fire_points(session, [d.hotspot for d in passed], settings)
        # Screening and clustering read without a lock (a big file takes seconds); the writes below are made
        # under one. If another ingest stored some of these pixels, or their twins, in between, screen again
        # under the lock.
        lock_satellite_writes(session)
        stored_now, twins_now = incidents.stored_keys(session, ObservationKind.SATELLITE, keys), superseded_now()
        if stored_now == stored and twins_now.keys() == twins.keys():
            break
        # The loop ends next time: nobody else can store satellite pixels while we hold the lock.
        stored, twins = stored_now, twins_now
    accepted = [observe(d.hotspot, d, points.get(d.hotspot.key)) for d in passed]
    held = [observe(d.hotspot, d, None) for d in decisions if d.status is not ScreeningStatus.ACCEPTED]
    summary = ingest_observations(session, accepted, indexes=indexes, settings=settings, actor=actor)
    incidents.record_held(session, [*held, *twins.values()], summary)
    incidents.count_held(summary, ScreeningStatus.OUTSIDE_COVERAGE.value, outside_coverage)
    summary.received = received
    summary.duplicates += repeated
    new_points = [p for key, p in points.items() if p["representative"] and key not in stored]
    summary.fire_points = sum(1 for p in new_points if not p["repeat_of"])
    summary.repeats = sum(1 for p in new_points if p["repeat_of"])
    return summary


def _reaching_coverage_box(
    session: Session, settings: Settings, indexes: RegionIndexCache, pixels: Sequence[_Pixel]
) -> tuple[list[_Pixel], int]:
    """The pixels that may reach :func:`coverage_box` (all of them without one), and how many did not."""
    box = coverage_box(session, settings, indexes)
    if box is None:
        return list(pixels), 0
    reaching = may_reach_box(pixels, box)
    return [pixel for pixel, reaches in zip(pixels, reaching, strict=True) if reaches], reaching.count(False)


#: The PostgreSQL advisory-lock key of satellite ingests (any fixed 64-bit number no other lock uses).
SATELLITE_INGEST_LOCK = 0x5354_5257_4649_5245  # "STRWFIRE"


def lock_satellite_writes(session: Session) -> None:
    """Make this transaction the only one writing satellite observations until it ends, waiting for the current
    one; from then on the stored keys it reads stay true until it commits.

    SQLite: the database's write lock, taken now (``BEGIN IMMEDIATE``, waiting up to the busy timeout as any
    writer's first write does) unless the transaction holds it already (pysqlite begins one at the first write);
    reads never wait for it (WAL). PostgreSQL: a transaction-level advisory lock, released at commit or rollback,
    so that each statement after it sees the other ingest's rows (READ COMMITTED). Only satellite ingests take it;
    other writers are not slowed down.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SATELLITE_INGEST_LOCK})
    elif connection.dialect.name == "sqlite":
        driver: Any = connection.connection.driver_connection
        if not driver.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _first_of_each_key(pixels: Sequence[_Pixel]) -> list[_Pixel]:
    """The pixels with the first of each key, in order."""
    return list({pixel.key: pixel for pixel in reversed(pixels)}.values())[::-1]


_GEOD = Geod(ellps="WGS84")
#: How far a standard-processing (SP) pixel may lie from the near-real-time (NRT) pixel of the same pass it
#: reprocesses, in pixel sizes: reprocessing refines the geolocation by a fraction of a pixel.
_TWIN_PIXELS = 1.0


def _nrt_twins(session: Session, science: Sequence[Hotspot]) -> dict[str, ObservationIn]:
    """The standard-processing hotspots whose near-real-time detection is stored already, each as the observation
    to record (held: ``superseded``, naming the NRT row) instead of a new fire.

    Why: SP files arrive weeks after the NRT data the townships acted on; keyed apart on purpose (penalty counts
    must stay reproducible), an SP row of a fire handled long ago opened a second incident and alerted again.
    Its twin is the stored NRT pixel of the same instrument, satellite and minute within a pixel's size.
    """
    if not science:
        return {}
    start = min(h.acq_utc for h in science) - timedelta(minutes=1)
    end = max(h.acq_utc for h in science) + timedelta(minutes=1)
    by_pass: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
    rows = session.execute(
        select(Observation.source_key, Observation.latitude, Observation.longitude).where(
            Observation.kind == ObservationKind.SATELLITE.value,
            Observation.observed_at >= start,
            Observation.observed_at <= end,
        )
    )
    for key, latitude, longitude in rows:
        parts = key.split("|")  # instrument|satellite|level|minute|lat|lon (Himawari keys differ: not twins)
        if len(parts) == 6 and parts[2] == "NRT":
            by_pass.setdefault((f"{parts[0]}|{parts[1]}", parts[3]), []).append((key, latitude, longitude))
    twins: dict[str, ObservationIn] = {}
    for hotspot in science:
        platform = f"{hotspot.instrument.value}|{hotspot.satellite.value}"
        candidates = by_pass.get((platform, f"{hotspot.acq_utc:%Y%m%dT%H%MZ}"))
        if not candidates:
            continue
        reach_m = _TWIN_PIXELS * max(hotspot.scan_km, hotspot.track_km) * 1000.0
        distance_m, twin = min(
            (float(_GEOD.inv(hotspot.longitude, hotspot.latitude, lon, lat)[2]), key) for key, lat, lon in candidates
        )
        if distance_m <= reach_m:
            observation = hotspot_observation(hotspot)
            observation.details["screening"] = {
                "status": "superseded",
                "reason": f"standard processing of the near-real-time detection {twin}, already ingested",
                "superseded": twin,
            }
            twins[hotspot.key] = observation
    return twins


@dataclass(frozen=True, slots=True)
class SightingResult:
    """What posting one sighting did."""

    duplicate: bool
    incident_id: int | None
    triangulated: bool


def ingest_sighting(
    session: Session,
    sighting: CameraSighting | DroneSighting,
    evidence_jpeg: bytes,
    *,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
) -> SightingResult:
    """A camera or drone sighting: fuse it, keep its frame as evidence, and cross bearings with other towers."""
    observation = sighting_observation(sighting)
    summary = ingest_observations(session, [observation], indexes=indexes, settings=settings, actor=actor)
    row = incidents.stored_observation(session, observation)
    incident = session.get(Incident, row.incident_id) if row and row.incident_id else None
    if summary.duplicates or incident is None:
        return SightingResult(True, incident.id if incident else None, False)
    store_evidence(
        session,
        incident,
        evidence_jpeg,
        filename=f"{sighting.evidence.sha256}.jpg",
        actor=actor,
        settings=settings,
        from_device=True,
    )
    crossed = False
    if isinstance(sighting, CameraSighting):
        crossed = _triangulate(session, incident, indexes=indexes, settings=settings, actor=actor)
    return SightingResult(False, incident.id, crossed)


def triangulated_key(sighting_keys: Sequence[str]) -> str:
    """The natural key of a crossing of these sightings: the same set, in any order, gives the same key. A digest,
    not the keys joined: three sightings' keys joined ran past the 200 characters the column holds (the keys
    themselves are in the observation's details)."""
    joined = "+".join(sorted(sighting_keys))
    return "tri:" + hashlib.sha256(joined.encode()).hexdigest()


def crossing_sigma_deg(bearing: dict[str, Any]) -> float:
    """The one-sigma bearing error a sighting's box centre carries into a crossing: the pose error (σ_pan) and
    where in its box the fire is (uniform over ±``box_half_width_deg``: σ = half-width/√3), at least 0.05°.

    Why: with σ_pan alone a 1.5° plume box was taken as a 0.1° bearing; Monte-Carlo over three towers, the 95 %
    ellipse held the fire 37.5 % of the time and chi-square refused 28 % of consistent crossings (96.5 % and 0.5 %
    with the box counted).
    """
    box = float(bearing.get("box_half_width_deg") or 0.0)
    return max(math.hypot(float(bearing["sigma_deg"]), box / math.sqrt(3.0)), 0.05)


def _triangulate(
    session: Session, incident: Incident, *, indexes: RegionIndexCache, settings: Settings, actor: Principal
) -> bool:
    """Cross the latest bearing of each tower that sees this incident (within the ground window).

    An accepted crossing (consistent by chi-square, crossing angle ≥ 15°) becomes a ``triangulated`` observation,
    which out-ranks single-camera wedges as the incident's location.
    """
    window = fusion_windows(settings.incidents).ground
    rows = session.scalars(
        select(Observation)
        .where(Observation.incident_id == incident.id, Observation.kind == ObservationKind.CAMERA.value)
        .order_by(Observation.observed_at.desc())
    ).all()
    if not rows:
        return False
    newest = rows[0].observed_at
    latest: dict[str, Observation] = {}
    for row in rows:
        camera = json.loads(row.details).get("camera_id")
        if camera and camera not in latest and newest - row.observed_at <= window:
            latest[camera] = row
    if len(latest) < 2:
        return False
    bearings = []
    for row in latest.values():
        details = json.loads(row.details)
        site, bearing = details["site"], details["bearing"]
        bearings.append(
            BearingObservation(
                latitude=site["latitude"],
                longitude=site["longitude"],
                bearing_deg=bearing["centre_deg"],
                bearing_sigma_deg=crossing_sigma_deg(bearing),
                height_m=site["mast_height_m"],
            )
        )
    try:
        crossing = triangulate(
            bearings, max_range_m=max(json.loads(r.details)["bearing"]["max_range_m"] for r in latest.values())
        )
    except VideoError:
        return False
    if not crossing.accepted:
        return False
    keys = sorted(r.source_key for r in latest.values())
    observation = ObservationIn(
        kind=ObservationKind.TRIANGULATED,
        source_key=triangulated_key(keys),
        observed_at=newest,
        latitude=crossing.latitude,
        longitude=crossing.longitude,
        region=crossing.ellipse(),
        confidence=combined_confidence(r.confidence for r in latest.values()),
        details={
            "cameras": sorted(latest),
            "sightings": keys,
            "crossing_angle_deg": crossing.crossing_angle_deg,
            "sigma_major_m": crossing.sigma_major_m,
            "sigma_minor_m": crossing.sigma_minor_m,
            "p_value": crossing.p_value,
        },
    )
    summary = ingest_observations(session, [observation], indexes=indexes, settings=settings, actor=actor)
    return summary.new == 1


def transition_incident(
    session: Session,
    incident: Incident,
    target: IncidentState,
    actor: Principal,
    **details: Any,
) -> Incident:
    """Move the incident (``incidents.transition``, ``details`` its note, reason, feedback and evidence); a reopened
    incident goes back to its township team at once, as a new alert for this reopening."""
    incidents.transition(session, incident, target, actor, **details)
    if target is IncidentState.REOPENED and incident.reopened_at is not None:
        enqueue(session, incident, AlertKind.NEW, round_no=new_fire_round(incident))
    return incident


def reassign_incident(
    session: Session,
    incident: Incident,
    actor: Principal,
    *,
    township_code: str | None,
    county_code: str | None,
    note: str,
) -> Incident:
    """A supervisor's reassignment; the new unit's team is alerted while the incident is open (a correction of a
    closed, false-alarm or verified incident's unit changes the record, but is no fire to go to: it used to send
    the new township a fire alert all the same)."""
    incidents.reassign(session, incident, actor, township_code=township_code, county_code=county_code, note=note)
    if IncidentState(incident.state) in OPEN_STATES:
        enqueue(session, incident, AlertKind.NEW)
    return incident
