"""Fire again at the same place (同一地点再次起火, ``repeat_at_site``): which earlier fire a new incident repeats.

Pure: no database, no I/O.

Changchun's plan asks for "quantitative accountability for areas where burning recurs". Fusion keeps one incident
per fire while it is not yet closed (:mod:`service.incidents.fusion`); a fire at the same spot after that — the
earlier incident closed (销号), or seen more than the repass window before — opens a new incident. That new
incident is a *repeat* of an earlier one when:

* the earlier incident was a real fire: fed back as a violation, or still open (not a false alarm, a permitted
  burn or a merged duplicate — those say nothing about the township letting a field burn again);
* it was first seen before the new one, and last seen at most ``window`` (default 30 days: one burning season)
  before the new one was first seen;
* their sites are within ``distance_m`` (default 800 m, the fusion gate of SMHI's activefires-pp) of each other:
  the distance between their location regions (0 when they overlap), so a satellite pixel's footprint counts
  and a drone's 10 m point is precise. A single camera's wedge is kilometres long, so an incident located by one
  camera only stands for its location point, or every fire along the wedge would be a "repeat".

Of several such earlier fires the new incident repeats the latest one (then the nearest, then the lowest id), so
a field that burns three times reads as a chain A ← B ← C.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import shapely
from pyproj import CRS, Transformer

from service.incidents.fusion import ObservationKind
from service.incidents.states import IncidentState


@dataclass(frozen=True, slots=True)
class RepeatSiteRule:
    """How near in space and time an earlier real fire must be for a new incident to repeat it."""

    distance_m: float = 800.0
    window: timedelta = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SiteFire:
    """An incident as the repeat test sees it: where (its location region, WGS-84 lon/lat), when, and whether it
    was a real fire."""

    incident_id: int
    first_observed_at: datetime
    last_observed_at: datetime
    latitude: float
    longitude: float
    location_kind: ObservationKind
    region: shapely.Geometry
    real_fire: bool = True


@dataclass(frozen=True, slots=True)
class RepeatMatch:
    """A new incident that repeats an earlier one: how far apart their sites, and how long after."""

    incident_id: int
    repeat_of: int
    distance_m: float
    days_after: float


def is_real_fire(state: IncidentState, *, fed_back_at: datetime | None, false_alarm_at: datetime | None) -> bool:
    """Whether an incident counts as a real fire for the repeat test, from its state and the latest time it was fed
    back and declared a false alarm: every state but ``false_alarm`` and ``closed`` is still open (a real fire
    until someone decides otherwise); a closed incident is real when it was fed back (反馈) and not declared a false
    alarm since."""
    if state is IncidentState.FALSE_ALARM:
        return False
    if state is IncidentState.CLOSED:
        return fed_back_at is not None and (false_alarm_at is None or false_alarm_at < fed_back_at)
    return True


def _site(fire: SiteFire) -> shapely.Geometry:
    """The geometry the distance is measured from: the location region, or the point for a camera wedge."""
    if fire.location_kind is ObservationKind.CAMERA:
        return shapely.Point(fire.longitude, fire.latitude)
    return fire.region


def _in_metres(latitude: float, longitude: float) -> Callable[[shapely.Geometry], shapely.Geometry]:
    """Lon/lat geometries → metres in an azimuthal equidistant projection centred at (``latitude``,
    ``longitude``) (pyproj): distances from the centre are exact, and over the few kilometres of a repeat test
    the distance between any two nearby geometries is within a fraction of a metre."""
    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={latitude} +lon_0={longitude} +datum=WGS84 +units=m")
    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def project(geometry: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))

    return project


def site_distance_m(a: SiteFire, b: SiteFire) -> float:
    """Metres between two incidents' sites (0 when they overlap), in a projection centred between them."""
    project = _in_metres((a.latitude + b.latitude) / 2.0, (a.longitude + b.longitude) / 2.0)
    return float(shapely.distance(project(_site(a)), project(_site(b))))


def find_repeats(new: Sequence[SiteFire], earlier: Sequence[SiteFire], rule: RepeatSiteRule) -> list[RepeatMatch]:
    """Which of the ``new`` incidents repeat one of ``earlier`` (which may include the new ones themselves: a
    multi-day file opens several incidents at one spot), by the rules of the module docstring; ordered by id."""
    real = [fire for fire in earlier if fire.real_fire]
    if not new or not real:
        return []
    # Candidates come from one STRtree in a projection centred on the batch; away from its centre its distances
    # are off by a few per cent (a province spans a few degrees), so the search reaches a quarter further than the
    # gate, and the gate itself is measured in a projection centred between each pair (site_distance_m).
    every = [*new, *real]
    project = _in_metres(sum(f.latitude for f in every) / len(every), sum(f.longitude for f in every) / len(every))
    tree = shapely.STRtree([project(_site(fire)) for fire in real])
    reach_m = rule.distance_m * 1.25 + 100.0
    matches: list[RepeatMatch] = []
    for fire in new:
        best: tuple[datetime, float, int] | None = None  # the largest wins: latest, then nearest, then lowest id
        chosen: RepeatMatch | None = None
        for index in tree.query(project(_site(fire)), predicate="dwithin", distance=reach_m):
            other = real[int(index)]
            if other.incident_id == fire.incident_id or other.first_observed_at >= fire.first_observed_at:
                continue  # itself, or not earlier: a fire seen at the same time or later is not what this repeats
            gap = fire.first_observed_at - other.last_observed_at
            if gap > rule.window:
                continue
            distance = site_distance_m(fire, other)
            if distance > rule.distance_m:
                continue
            key = (other.last_observed_at, -distance, -other.incident_id)
            if best is None or key > best:
                best = key
                chosen = RepeatMatch(
                    fire.incident_id,
                    other.incident_id,
                    round(distance, 1),
                    round(max(gap, timedelta(0)).total_seconds() / 86_400.0, 3),
                )
        if chosen is not None:
            matches.append(chosen)
    return sorted(matches, key=lambda m: m.incident_id)
