"""A township patrol's own report of a fire from the field (巡查发现): ``POST /api/v1/observations/patrol``.

Patrol teams find fires themselves; the accountability rules credit a township for a fire it found, put out and
reported itself (自查自报, ``rules/*.toml`` ``[reporting]``), and the statistics recognise such a fire by its
earliest observation carrying ``details.reporter_unit`` equal to the unit's code (:mod:`service.stats.scoring`).
This module is the only writer of that field.

Decisions (what township teams, county supervisors and evaluators expect of it):

* **Who may report.** A patrol user, for the unit of their account: ``reporter_unit`` is stamped from the
  authenticated user, never taken from the body, so a township cannot claim another's find. An admin may post a
  report too (a test, or one phoned in): it goes through the same path but carries no ``reporter_unit`` and earns
  no unit anything, because only the team's own account and phone make a find provable. Supervisors, evaluators
  and devices are refused (403): a county inspection team's find is another source in the published rules (county
  patrol points), which the scoring does not model, and crediting it as the township's own would be wrong.
* **Where and when.** WGS-84 latitude/longitude as the browser's Geolocation API gives them, with its accuracy in
  metres (95 % radius). The observation's uncertainty is a circle of that radius, at least :data:`MIN_RADIUS_M`
  (the team stands beside the fire, not in it); without an accuracy (coordinates typed in by hand) it is
  :data:`DEFAULT_ACCURACY_M`. An accuracy worse than :data:`MAX_ACCURACY_M` is refused: it cannot tell which field,
  or even which township, burns. ``observed_at`` (default: when the report arrives) may be up to
  :data:`~service.evidence.service.CLOCK_SKEW` ahead of the server clock (a fast phone clock; stored as the server
  time) and at most :data:`MAX_AGE` old.
* **Coordinates from a phone map.** Coordinates typed in say their system (``crs``): ``wgs84`` (the default) and
  ``cgcs2000`` are GPS's, ``gcj02`` is what Amap, WeChat and Tencent show, ``bd09`` Baidu's. They are converted to
  WGS-84 (:mod:`service.regions.crs`) before anything else, and the details keep the system and the coordinates as
  sent (``crs``, ``position_as_sent``): Amap's numbers taken as WGS-84 land 550–600 m off around Changchun, often in
  the neighbouring township or county.
* **Reporting first is what counts.** A report that joins an incident already known from another source (a camera
  alerted the township ten minutes before) is stored no earlier than that incident's earliest observation, whatever
  time the phone claims: the credit is for finding *and reporting* a fire before anyone else did, and a claimed
  time must not move a team ahead of a camera or satellite that reported first. The claimed time stays in the
  details (``observed_at_claimed``).
* **Same path as every observation.** It is fused like the others (:func:`service.incidents.service.ingest`): it
  joins an active incident its circle overlaps within the ground window (the satellite window with satellite
  observations), and being the most precise kind it becomes the incident's location, so the township is assigned
  by the reported position (an unacted incident follows it into the right township).
* **The team is already there.** When the incident is the reporter's own unit's — the unit that answers for it,
  as the statistics judge (:func:`service.stats.queries.responsible_unit`: its township, or its county where it
  has none) — the report is the team's answer:
  the incident is moved, by the reporter, to ``acknowledged`` and ``on_site`` (from whichever earlier state it is
  in; never backwards), the ``on_site`` move carrying the phone's position (``null`` for typed-in coordinates, which
  prove nobody's presence). No "new fire" alert is queued for it: the township's alert would only tell the team
  what it just reported. A new incident found this way was never notified, so the statistics count it
  ``not_notified``, with no response deadlines to miss, and once fed back as a straw fire it is a self-found
  violation (no source deduction, ``self_found_credit``).
* **Another township's fire.** A patrol standing across the boundary reports a fire in the neighbouring township:
  the incident is that township's, alerted to its team as any new fire, and not moved by the reporter (who cannot
  see or act on another unit's incidents). Its ``reporter_unit`` is the reporter's, so the burning township gets no
  self-found credit, and the reporter's own score is untouched (the fire point is not theirs).
* **A county's patrol account** (a patrol user whose unit is the county) sees its townships' fires, but a fire in
  one of them is still that township's to answer: the statistics judge the township's own team by its
  acknowledgement and arrival. Its report is treated as another township's: the township is alerted and the
  incident is not moved by the reporter; taking it on would have left the township untold and charged with a missed
  acknowledgement. Only a fire with no township, which the county answers itself, is taken on by it.
* **Outside every unit.** A position (the point itself, not its uncertainty circle: a 500 m circle had stretched
  the 500 m tolerance to a kilometre) in no imported township or county, nor within the assignment tolerance of
  one, is refused (422 naming ``latitude/longitude``; nothing stored): the incident would belong to no unit, the
  reporter could not see it, and no township would be alerted. It is a wrong fix or mistyped coordinates (0, 0;
  latitude and longitude swapped) far more often than a fire the service should keep; a fire beyond the imported
  area is not this service's to follow. With no townships or counties imported at all, every report is refused
  the same way. Admins' reports too.
* **Re-sending.** ``report_id`` (a random id the phone draws once per report) makes a retry after a lost answer a
  no-op that answers with the same incident; without it every request is a new report. A resend that arrives
  while the first request is still being written (both pass the stored-key check, the later insert breaks the
  unique key) is answered the same way: the endpoint rolls back and runs the report again, which finds it stored
  (``service.incidents.router.post_patrol_report``).
* **Photos.** The existing evidence upload (``POST /api/v1/incidents/{id}/evidence``) attaches photos to the
  incident the answer names, for the reporting team as for any incident of its unit.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import shapely
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from shapely import affinity
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.alerts.outbox import enqueue_many
from service.alerts.tables import AlertKind
from service.auth.service import Principal
from service.config import Settings
from service.db import utcnow
from service.errors import InputError
from service.evidence.service import CLOCK_SKEW, position_record
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.sources import fusion_windows, repeat_site_rule
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident, Observation
from service.regions.crs import SourceCRS, to_wgs84_xy
from service.regions.service import RegionIndexCache
from service.stats.queries import responsible_unit

#: Uncertainty (m) of coordinates sent without an accuracy: typed in by hand from a map, or a phone that gave none.
DEFAULT_ACCURACY_M = 50.0
#: The smallest uncertainty (m): the team stands beside the burning field, not at its centre.
MIN_RADIUS_M = 30.0
#: The roughest accepted fix (m): coarser cannot place the fire in a field, or always in the right township.
MAX_ACCURACY_M = 500.0
#: The oldest accepted time of observation: a report is made from the fire; two hours (the fusion's default ground
#: window) is long enough for a phone without signal in the fields, and an older one could no longer be matched to
#: other ground sightings of the same burning.
MAX_AGE = timedelta(hours=2)
#: A team on site has seen the fire (closed-loop reference §2.4 step 6: a drone/patrol confirmation is 0.99).
CONFIDENCE = 0.99

_TO_ON_SITE: dict[IncidentState, tuple[IncidentState, ...]] = {
    IncidentState.SUSPECTED: (IncidentState.ACKNOWLEDGED, IncidentState.ON_SITE),
    IncidentState.NOTIFIED: (IncidentState.ACKNOWLEDGED, IncidentState.ON_SITE),
    IncidentState.REOPENED: (IncidentState.ACKNOWLEDGED, IncidentState.ON_SITE),
    IncidentState.ACKNOWLEDGED: (IncidentState.ON_SITE,),
    IncidentState.EN_ROUTE: (IncidentState.ON_SITE,),
    IncidentState.ESCALATED: (IncidentState.ON_SITE,),
}
"""The moves that bring an incident to ``on_site`` from each earlier state (all a patrol's own, per the lifecycle);
a state not listed is ``on_site`` or later, or ended, and is left as it is."""


class PatrolReportIn(BaseModel):
    """A fire the team found: where (the phone's fix, WGS-84), how precisely, when, and a note."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Numbers only (strict: "44.3" or true is refused, not converted), finite.
    latitude: float = Field(ge=-90, le=90, strict=True)
    longitude: float = Field(ge=-180, le=180, strict=True)
    # The system the coordinates are in: GPS's (wgs84, cgcs2000, the same within a metre) or a phone map's typed
    # from it (gcj02: Amap, WeChat, Tencent; bd09: Baidu); converted to WGS-84 on arrival.
    crs: Literal["wgs84", "cgcs2000", "gcj02", "bd09"] = "wgs84"
    # The Geolocation API's accuracy (m, 95 % radius); absent for coordinates typed in by hand.
    accuracy_m: float | None = Field(None, ge=0, le=MAX_ACCURACY_M, strict=True)
    # When the team saw the fire (the fix's time); default: when the report arrives.
    observed_at: AwareDatetime | None = None
    note: str = Field("", max_length=2000)
    # Drawn once per report by the phone: a retry of the same report is answered with the same incident.
    report_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

    def wgs84(self) -> tuple[float, float]:
        """The position as WGS-84 ``(latitude, longitude)``: the coordinates sent, converted from :attr:`crs`."""
        lon, lat = to_wgs84_xy(SourceCRS(self.crs), np.array([self.longitude]), np.array([self.latitude]))
        return float(lat[0]), float(lon[0])


@dataclass(frozen=True, slots=True)
class PatrolReportResult:
    """What a report did: its incident, whether it was a re-send, whether the reporter's team took the incident on
    (moved to ``on_site``), and whether the incident's township was alerted."""

    duplicate: bool
    incident: Incident | None
    taken_on: bool
    alerted: bool


def observation_time(claimed: datetime | None, now: datetime) -> datetime:
    """The time a report is stored with: the claimed one within bounds (see the module docstring)."""
    if claimed is None:
        return now
    if claimed > now + CLOCK_SKEW:
        raise InputError(
            f"{claimed.isoformat()} is more than {CLOCK_SKEW.seconds // 60} minutes ahead of the server clock",
            field="observed_at",
        )
    if claimed < now - MAX_AGE:
        raise InputError(
            f"{claimed.isoformat()} is more than {MAX_AGE.seconds // 3600} hours ago: report a fire while at it",
            field="observed_at",
        )
    return min(claimed, now)


def uncertainty_circle(latitude: float, longitude: float, radius_m: float) -> shapely.Geometry:
    """A circle of ``radius_m`` around the point, in lon/lat degrees (wider in longitude away from the equator), cut
    to the valid longitudes and latitudes (a point on the antimeridian or a pole is a valid report, and the region
    index refuses vertices beyond them)."""
    degrees = radius_m / 111_320.0
    circle = shapely.Point(longitude, latitude).buffer(degrees, quad_segs=8)
    scaled = affinity.scale(circle, xfact=1.0 / max(0.01, math.cos(math.radians(latitude))), yfact=1.0)
    return shapely.clip_by_rect(scaled, -180.0, -90.0, 180.0, 90.0)


def patrol_observation(
    report: PatrolReportIn, reporter: Principal, *, observed_at: datetime, received_at: datetime
) -> ObservationIn:
    """The observation a report becomes; ``reporter_unit`` only from a patrol user's own account."""
    accuracy = report.accuracy_m
    radius = max(accuracy if accuracy is not None else DEFAULT_ACCURACY_M, MIN_RADIUS_M)
    latitude, longitude = report.wgs84()
    details: dict[str, Any] = {
        "reporter": reporter.username,
        "accuracy_m": accuracy,
        "radius_m": radius,
        "reported_at": received_at.isoformat(),
    }
    if reporter.role is Role.PATROL and reporter.unit_code:
        details["reporter_unit"] = reporter.unit_code
    if report.crs != "wgs84":  # the system the team typed in, and what it typed, beside the converted position
        details["crs"] = report.crs
        details["position_as_sent"] = f"{report.latitude}, {report.longitude}"
    if report.note.strip():
        details["note"] = report.note.strip()
    report_id = report.report_id or uuid.uuid4().hex
    return ObservationIn(
        kind=ObservationKind.PATROL,
        source_key=f"patrol:{reporter.username}:{report_id}",
        observed_at=observed_at,
        latitude=latitude,
        longitude=longitude,
        region=uncertainty_circle(latitude, longitude, radius),
        confidence=CONFIDENCE,
        details=details,
    )


def require_a_unit(session: Session, observation: ObservationIn, indexes: RegionIndexCache) -> None:
    """Refuse a report whose position no township or county takes, inside or within the assignment tolerance (see
    the module docstring), before anything is stored.

    The point, not the uncertainty circle: "within 500 m of a unit" is the rule the README states for a position,
    and a circle of up to 500 m reaching a unit had let a position almost a kilometre outside through."""
    levels = list(incidents.region_indexes(session, indexes).values())
    if any(index.assign_point(observation.longitude, observation.latitude).code is not None for index in levels):
        return
    where = f"nor within {levels[0].tolerance_m:g} m of one" if levels else "none are imported"
    raise InputError(
        f"{observation.latitude:g}, {observation.longitude:g} is in no imported township or county ({where}): check "
        "the phone's position, or the coordinates typed in (latitude first)",
        field="latitude/longitude",
    )


def _not_ahead_of_earlier_reports(session: Session, row: Observation, incident: Incident) -> None:
    """A report joining a known incident is stored no earlier than that incident's earliest other observation (the
    earlier source reported first; ties go to the earlier row, as the statistics order them)."""
    earliest = session.scalar(
        select(func.min(Observation.observed_at)).where(
            Observation.incident_id == incident.id, Observation.id != row.id
        )
    )
    if earliest is None or row.observed_at >= earliest:
        return
    details = json.loads(row.details)
    details["observed_at_claimed"] = row.observed_at.isoformat()
    row.details = json.dumps(details, ensure_ascii=False)
    row.observed_at = earliest
    incident.first_observed_at = earliest


def _take_on(
    session: Session,
    incident: Incident,
    reporter: Principal,
    report: PatrolReportIn,
    observation: ObservationIn,
    settings: Settings,
) -> bool:
    """Move the reporter's own incident to ``on_site`` (see the module docstring); whether it is there now. The
    position recorded is the ``observation``'s (the report's, in WGS-84), at its time."""
    # The unit that answers for the fire, not any unit that sees it: a county's patrol account sees its townships'.
    if reporter.role is not Role.PATROL or not reporter.unit_code or reporter.unit_code != responsible_unit(incident):
        return False
    moves = _TO_ON_SITE.get(IncidentState(incident.state))
    if moves is None:
        return IncidentState(incident.state) is IncidentState.ON_SITE
    position = None
    if report.accuracy_m is not None:  # a phone's fix; typed-in coordinates prove nobody's presence
        position = position_record(
            incident,
            latitude=observation.latitude,
            longitude=observation.longitude,
            accuracy_m=report.accuracy_m,
            at=observation.observed_at,
            settings=settings,
        )
    for target in moves:
        incidents.transition(
            session,
            incident,
            target,
            reporter,
            note="reported by the team from the fire (巡查发现)",
            position=position if target is IncidentState.ON_SITE else None,
        )
    return True


def report_fire(
    session: Session,
    report: PatrolReportIn,
    reporter: Principal,
    *,
    indexes: RegionIndexCache,
    settings: Settings,
) -> PatrolReportResult:
    """Store and fuse a patrol's report, let the reporter's team take its own incident on, and alert the townships
    of the others (same transaction; see the module docstring for every decision)."""
    now = utcnow()
    observed_at = observation_time(report.observed_at, now)
    observation = patrol_observation(report, reporter, observed_at=observed_at, received_at=now)
    require_a_unit(session, observation, indexes)
    summary = incidents.ingest(
        session,
        [observation],
        indexes=indexes,
        windows=fusion_windows(settings.incidents),
        actor=reporter,
        repeat_rule=repeat_site_rule(settings.incidents),
    )
    row = incidents.stored_observation(session, observation)
    incident = session.get(Incident, row.incident_id) if row is not None and row.incident_id else None
    if summary.duplicates or row is None or incident is None:
        return PatrolReportResult(True, incident, False, False)
    if incident.id not in summary.new_incidents:
        _not_ahead_of_earlier_reports(session, row, incident)
    taken_on = _take_on(session, incident, reporter, report, observation, settings)
    # As service.flows.ingest_observations: new incidents, and unacted ones this report moved into another unit,
    # alert their township, except the one the reporter's own team has just taken on.
    taken = {incident.id} if taken_on else set()
    alerted_ids = [i for i in (*summary.new_incidents, *summary.reassigned_incidents) if i not in taken]
    alerted = False
    if alerted_ids:
        rows = session.scalars(select(Incident).where(Incident.id.in_(alerted_ids))).all()
        alerted = any(a.incident_id == incident.id for a in enqueue_many(session, rows, AlertKind.NEW))
    session.flush()
    return PatrolReportResult(False, incident, taken_on, alerted)
