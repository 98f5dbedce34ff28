"""Fusing observations of the same fire into one incident (pure: no database, no I/O).

Every signal — a screened satellite hotspot, a camera sighting, a drone sighting, a patrol's report — is an
:class:`ObservationIn` with an uncertainty region: the satellite pixel footprint, a camera's bearing wedge or
triangulated ellipse, a drone point with its pose error, a circle of the patrol phone's GPS accuracy. Two
observations are of the same fire when their regions overlap and their times are within the window for their pair
of kinds (defaults: 2 h among ground observations, as Pyronear's sequence relaxation; 6 h whenever a satellite is
involved, as SMHI's activefires-pp). A satellite observation also joins a fire that another *precise* observation
(satellite, drone, triangulated, patrol) placed at the same spot up to 24 h apart — the next
overpasses over a fire that is still burning (closed-loop reference §2.4 step 3). That link is only offered to
incidents whose fire is still being dealt with (:attr:`Located.takes_repass`: not yet reported put out). A pass
6–24 h after a fire was put out, fed back or verified is the field burning again: it opens a new incident, which
alerts the township and is flagged ``repeat_at_site`` (:mod:`service.incidents.repeat_site`), where joining the
handled incident would have told no one. A camera wedge never links beyond the 6 h window: it is kilometres long,
so 24 h later it is no evidence of "the same spot".

Linking is transitive: an observation that links to several incidents links them all, except through a single
camera's wedge, which never bridges two fires (:func:`plan_batch`).

The incident's location is its most precise observation's: patrol (a phone at the fire) > drone > triangulated >
satellite pixel > single camera (a wedge is kilometres long); ties go to the higher confidence, then — for
satellites — the higher FRP (the pixel nearest the fire's core, as activefires-pp picks), then the earlier time.
Its confidence is the noisy-OR of independent sources, ``1 − Π(1 − pᵢ)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import shapely


class ObservationKind(StrEnum):
    """What saw the fire; the order of :data:`PRECISION_RANK` says how well it located it."""

    DRONE = "drone"
    TRIANGULATED = "triangulated"
    SATELLITE = "satellite"
    CAMERA = "camera"
    # A township patrol's own report from the field (巡查发现): the phone's GPS fix where the team stands at the
    # fire (:mod:`service.incidents.patrol_reports`).
    PATROL = "patrol"


#: Lower is more precise. A patrol's phone fix is first: the team stands at the fire, metres from it, where a
#: drone's point is a projection from its pose (closed-loop reference §2.4 step 5: "patrol/drone point > …").
PRECISION_RANK: dict[ObservationKind, int] = {
    ObservationKind.PATROL: 0,
    ObservationKind.DRONE: 1,
    ObservationKind.TRIANGULATED: 2,
    ObservationKind.SATELLITE: 3,
    ObservationKind.CAMERA: 4,
}


@dataclass(frozen=True, slots=True)
class ObservationIn:
    """One observation as it enters fusion. ``region`` is WGS-84 lon/lat (a Point is allowed for drones)."""

    kind: ObservationKind
    source_key: str  # natural key: re-sending the same observation is a no-op
    observed_at: datetime
    latitude: float
    longitude: float
    region: shapely.Geometry
    confidence: float
    frp_mw: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: Source keys of earlier observations of the same fire by another judgement than overlap: a satellite pixel
    #: of a fire point the clustering calls a repeat of an earlier one (``satellite.clustering``: the same fire in
    #: the next pass, 50 min later and a few hundred metres off, whose 375 m footprints need not touch).
    same_fire_as: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at must be timezone-aware (UTC)")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError("confidence must be within 0..1")


@dataclass(frozen=True, slots=True)
class FusionWindows:
    """Time windows for linking two observations, by whether a satellite is involved."""

    ground: timedelta = timedelta(hours=2)  # camera, drone, triangulated, patrol among themselves
    satellite: timedelta = timedelta(hours=6)  # any pair with a satellite observation
    # Regions are buffered by this much (metres) before the overlap test: 0 means "uncertainty regions overlap".
    buffer_m: float = 0.0
    # A later (or earlier: files arrive out of order) satellite pass at the spot a precise observation placed the
    # fire joins it up to this far apart, while the incident is not yet closed (§2.4 step 3: "6–24 h later").
    satellite_repass: timedelta = timedelta(hours=24)

    def window(self, a: ObservationKind, b: ObservationKind, *, repass: bool = True) -> timedelta:
        """The window for a pair of kinds: the repass window for a satellite and another precise observation
        (never shorter than the satellite window; not with ``repass=False``), the satellite window for a satellite
        and a camera, else the ground window."""
        if ObservationKind.SATELLITE in (a, b):
            if ObservationKind.CAMERA in (a, b) or not repass:
                return self.satellite
            return max(self.satellite, self.satellite_repass)
        return self.ground

    @property
    def reach(self) -> timedelta:
        """The longest window: how far in time the candidates for a batch are loaded."""
        return max(self.ground, self.satellite, self.satellite_repass)


@dataclass(frozen=True, slots=True)
class Located:
    """An observation already in an incident, as fusion needs to see it."""

    incident_id: int
    kind: ObservationKind
    observed_at: datetime
    region: shapely.Geometry
    #: Whether the incident still takes a satellite repass (6–24 h): its fire is not yet reported put out.
    takes_repass: bool = True
    source_key: str = ""


# The WGS-84 ellipsoid: semi-major axis (m) and first eccentricity squared.
_WGS84_A = 6_378_137.0
_WGS84_E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563)


def metres_per_degree(latitude: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``latitude`` on the WGS-84 ellipsoid (the radii of
    curvature in the prime vertical and the meridian; a degree of longitude is taken no shorter than 1 % of one of
    latitude, so that a region at a pole still buffers)."""
    phi = math.radians(latitude)
    w = 1.0 - _WGS84_E2 * math.sin(phi) ** 2
    per_lat = math.radians(1.0) * _WGS84_A * (1.0 - _WGS84_E2) / w**1.5
    per_lon = math.radians(1.0) * _WGS84_A * math.cos(phi) / math.sqrt(w)
    return max(per_lon, 0.01 * per_lat), per_lat


def _buffered(geometry: shapely.Geometry, buffer_m: float, latitude: float) -> shapely.Geometry:
    """``geometry`` widened by ``buffer_m`` metres in every direction (``incidents.link_buffer_m``).

    Buffered in a local metric frame (x and y scaled by the metres per degree of longitude and of latitude at
    ``latitude``), then scaled back: a buffer in degrees of longitude, as it was, reached 694 m north and south for
    500 m at 44° N, and linked observations that far apart. Over the few kilometres a region spans the scale varies
    by well under 0.1 %."""
    if buffer_m <= 0:
        return geometry
    per_lon, per_lat = metres_per_degree(latitude)
    to_metres = np.array([per_lon, per_lat])
    in_metres = shapely.transform(geometry, lambda coords: coords * to_metres)
    return shapely.transform(shapely.buffer(in_metres, buffer_m), lambda coords: coords / to_metres)


def linked_incidents(new: ObservationIn, existing: Iterable[Located], windows: FusionWindows) -> list[int]:
    """Ids of the incidents ``new`` belongs to (sorted; empty when it starts a new incident)."""
    region = _buffered(new.region, windows.buffer_m, new.latitude)
    shapely.prepare(region)
    linked: set[int] = set()
    for other in existing:
        if other.incident_id in linked:
            continue
        if abs(other.observed_at - new.observed_at) > windows.window(new.kind, other.kind, repass=other.takes_repass):
            continue
        if region.intersects(_buffered(other.region, windows.buffer_m, new.latitude)):
            linked.add(other.incident_id)
    return sorted(linked)


def combined_confidence(confidences: Iterable[float]) -> float:
    """Noisy-OR of independent sources: 1 − Π(1 − pᵢ)."""
    miss = 1.0
    for p in confidences:
        miss *= 1.0 - min(1.0, max(0.0, p))
    return 1.0 - miss


def location_rank(observation: ObservationIn) -> int:
    """:data:`PRECISION_RANK` of the observation's kind, except that a drone sighting whose ray found no ground
    (``ground_status`` other than "hit": a bearing wedge kilometres long, or a disc round the drone) locates the
    fire no better than a tower camera's wedge, and ranks with it."""
    if observation.kind is ObservationKind.DRONE and observation.details.get("ground_status", "hit") != "hit":
        return PRECISION_RANK[ObservationKind.CAMERA]
    return PRECISION_RANK[observation.kind]


def best_location(observations: Sequence[ObservationIn]) -> ObservationIn:
    """The observation that locates the fire best (see the module docstring for the order)."""
    if not observations:
        raise ValueError("an incident has at least one observation")
    return min(
        observations,
        key=lambda o: (location_rank(o), -o.confidence, -(o.frp_mw or 0.0), o.observed_at, o.source_key),
    )


@dataclass(frozen=True, slots=True)
class FusionGroup:
    """New observations (indices into the batch) that belong together, and the existing incidents they join."""

    observations: tuple[int, ...]
    incidents: tuple[int, ...]


class _DisjointSet:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


_CELL_DEG = 0.05  # grid for candidate search: ~5 km; a region is filed under every cell its bounds touch


def _cells(geometry: shapely.Geometry) -> list[tuple[int, int]]:
    x0, y0, x1, y1 = geometry.bounds
    return [
        (i, j)
        for i in range(math.floor(x0 / _CELL_DEG), math.floor(x1 / _CELL_DEG) + 1)
        for j in range(math.floor(y0 / _CELL_DEG), math.floor(y1 / _CELL_DEG) + 1)
    ]


def plan_batch(
    new: Sequence[ObservationIn],
    existing: Sequence[Located],
    windows: FusionWindows,
    *,
    placed_before: Iterable[int] = (),
) -> list[FusionGroup]:
    """Link a batch of new observations among themselves and to existing incidents, by the pairwise rule of
    :func:`linked_incidents`, transitively, with a grid so a 16,000-row FIRMS file is linked in seconds, except
    that a single camera's wedge never bridges two fires:

    * a camera observation joins at most one fire among those it overlaps: the one nearest its point (its ground
      fix, or the wedge's middle), then the closest in time. A wedge is kilometres long; two pixels of different
      fires in it are two fires, and linking them through it had merged them and closed one as a duplicate;
    * any other observation links to every fire whose *precise* observations (satellite, drone, triangulated,
      patrol) overlap it; only when there is none does it join a fire through a camera wedge, then one only, and
      only a fire no precise observation has placed yet (one that has is somewhere else along the wedge).

    ``placed_before``: existing incidents a precise observation has placed, also one older than ``existing`` holds (the
    caller loads observations within the time windows only). Groups come back ordered by their first observation
    in the batch.

    An observation also joins what holds the observations it names in ``same_fire_as`` (in the batch, or of an
    active incident in ``existing``) within the pair's time window: the clustering's repeat judgement, so that one
    fire seen by three VIIRS passes is one incident and one alert, not three.
    """
    n = len(new)
    incident_ids = sorted({e.incident_id for e in existing})
    node_of_incident = {incident_id: n + k for k, incident_id in enumerate(incident_ids)}
    sets = _DisjointSet(n + len(incident_ids))
    placed: set[int] = set()  # roots of fires a precise observation has placed (kept up to date on union)
    grid: dict[tuple[int, int], list[tuple[int, int, ObservationKind, datetime, shapely.Geometry, bool]]] = {}
    serial = 0

    def file(node: int, kind: ObservationKind, at: datetime, region: shapely.Geometry, repass: bool = True) -> None:
        nonlocal serial
        entry = (serial, node, kind, at, region, repass)
        serial += 1
        for cell in _cells(region):
            grid.setdefault(cell, []).append(entry)
        if kind is not ObservationKind.CAMERA:
            placed.add(sets.find(node))

    def join(a: int, b: int) -> None:
        was_placed = sets.find(a) in placed or sets.find(b) in placed
        sets.union(a, b)
        if was_placed:
            placed.add(sets.find(a))

    placed.update(node_of_incident[i] for i in placed_before if i in node_of_incident)
    node_of_key: dict[str, tuple[int, ObservationKind, datetime, bool]] = {
        e.source_key: (node_of_incident[e.incident_id], e.kind, e.observed_at, e.takes_repass)
        for e in existing
        if e.source_key
    }
    node_of_key.update((o.source_key, (k, o.kind, o.observed_at, True)) for k, o in enumerate(new))
    for e in existing:
        file(
            node_of_incident[e.incident_id],
            e.kind,
            e.observed_at,
            _buffered(e.region, windows.buffer_m, e.region.centroid.y),
            e.takes_repass,
        )
    for i in sorted(range(n), key=lambda k: (new[k].observed_at, new[k].source_key)):
        obs = new[i]
        region = _buffered(obs.region, windows.buffer_m, obs.latitude)
        shapely.prepare(region)
        seen: set[int] = set()
        precise: list[int] = []
        through_wedge: list[tuple[float, timedelta, int]] = []  # (distance to the point, time apart, node)
        point = shapely.Point(obs.longitude, obs.latitude)
        for cell in _cells(region):
            for entry_no, node, kind, at, other, repass in grid.get(cell, ()):
                if entry_no in seen:
                    continue
                seen.add(entry_no)
                apart = abs(at - obs.observed_at)
                if apart > windows.window(obs.kind, kind, repass=repass) or not region.intersects(other):
                    continue
                if obs.kind is ObservationKind.CAMERA or kind is ObservationKind.CAMERA:
                    through_wedge.append((float(point.distance(other)), apart, node))
                else:
                    precise.append(node)
        if obs.kind is ObservationKind.CAMERA:
            if through_wedge:
                join(i, min(through_wedge)[2])
        elif precise:
            for node in precise:
                join(i, node)
        else:
            unplaced = [c for c in through_wedge if sets.find(c[2]) not in placed]
            if unplaced:
                join(i, min(unplaced)[2])
        for key in obs.same_fire_as:
            found = node_of_key.get(key)
            if found is not None:
                node, kind, at, repass = found
                if abs(at - obs.observed_at) <= windows.window(obs.kind, kind, repass=repass):
                    join(i, node)
        file(i, obs.kind, obs.observed_at, region)

    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(sets.find(i), []).append(i)
    joined: dict[int, list[int]] = {}
    for incident_id, node in node_of_incident.items():
        joined.setdefault(sets.find(node), []).append(incident_id)
    groups = [FusionGroup(tuple(sorted(idx)), tuple(sorted(joined.get(root, [])))) for root, idx in members.items()]
    return sorted(groups, key=lambda g: min((new[i].observed_at, new[i].source_key) for i in g.observations))
