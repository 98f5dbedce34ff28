"""Typed records the statistics work on: a fire point with its sightings and transitions, and a unit.

They are plain frozen dataclasses so that every computation over them is a pure function that tests feed with
hand-made values; :mod:`service.stats.queries` builds them from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import shapely

from service.incidents.fusion import ObservationKind
from service.incidents.states import IncidentState
from service.regions.types import AssignStatus, RegionLevel


class Source(StrEnum):
    """What kind of sensor saw a fire, as supervisors count them (卫星 / 视频 / 无人机 / 巡查).

    A triangulated observation is two or more tower cameras agreeing, so it counts as ``camera``. A township
    patrol's own report from the field (``patrol``, :mod:`service.incidents.patrol_reports`) is its own source: the
    published rules weigh a township patrol's find (−3) apart from a city camera's (−5), and a report listing it as
    视频 would tell the county a camera found a fire that people on the ground did.
    """

    SATELLITE = "satellite"
    CAMERA = "camera"
    DRONE = "drone"
    PATROL = "patrol"


#: The order sources are listed in (tables, columns, charts) and break ties between equal weights in.
SOURCE_ORDER = (Source.SATELLITE, Source.CAMERA, Source.DRONE, Source.PATROL)


def source_of(kind: ObservationKind) -> Source:
    """The source an observation kind counts as."""
    if kind is ObservationKind.SATELLITE:
        return Source.SATELLITE
    if kind is ObservationKind.DRONE:
        return Source.DRONE
    if kind is ObservationKind.PATROL:
        return Source.PATROL
    return Source.CAMERA


@dataclass(frozen=True, slots=True)
class Sighting:
    """One observation of the fire: when, by what, and (when a patrol app says so) which unit reported it."""

    kind: ObservationKind
    observed_at: datetime
    reporter_unit: str | None = None

    @property
    def source(self) -> Source:
        """The source this sighting counts as."""
        return source_of(self.kind)


@dataclass(frozen=True, slots=True)
class Transition:
    """One lifecycle step from the append-only event record (server time)."""

    at: datetime
    to_state: IncidentState
    from_state: IncidentState | None = None
    reason: str | None = None  # the false-alarm reason, for transitions to false_alarm
    actor_role: str | None = None  # who made the move (patrol, supervisor, admin, system)
    # The phone position sent with the move, judged against the fire (``far_from_fire``): "near", "far",
    # "imprecise" (accuracy coarser than the distance rule), "stale" (a fix too old to tell), "missing" (recorded
    # ``null``: none was sent), or None when the event says nothing (a move that records no position, or one
    # recorded before positions were).
    position: str | None = None
    # Whether the actor answers for the unit the fire is assigned to (their user's unit is the fire's township, or
    # its county where the fire has no township): False for a supervisor of the county or a patrol of another
    # township (one that acted before the fire was reassigned); None when the record cannot tell (the service
    # itself, records older than roles, an actor who is not a user).
    actor_in_unit: bool | None = None
    # For an escalation: its record says the fire's responsible unit could not be reached (the new-fire alert never
    # got through, or no recipient covers the unit; ``{"unreachable": {"unit": …}}`` naming that unit).
    unreachable: bool = False


@dataclass(frozen=True, slots=True)
class FirePoint:
    """An incident as the statistics see it. ``transitions`` are in time order; ``sightings`` in the order the
    service received them (who told it first: :mod:`service.stats.queries`).

    ``assignment`` is how its location was given to its unit (``Incident.assignment_status``, the finest loaded
    level's): ``inside``; ``nearest``, an **edge** fire point (:attr:`edge`), its location (a point, or a satellite
    footprint's centre) outside every unit but within the tolerance of one, or its footprint overlapping one
    (:mod:`service.regions.index`); ``manual``, a supervisor's reassignment; ``outside``, no unit. An edge fire point
    counts for the unit it was assigned and alerted to like any other, scores included: the mark is for review (an
    evaluator checks or contests it), it changes no count or score (:mod:`service.stats.scoring`).

    ``unit_share`` is the unit's share (0–1) of the location's footprint when the footprint is not wholly the
    unit's (a satellite pixel across a border: the incident's ``assignment_certainty``), for an ``inside`` or
    ``nearest`` assignment; None when the footprint lies wholly in the unit, has no area (a point outside the unit:
    the record keeps no share for it) or the assignment is manual or outside. ``edge_distance_m`` is how far an edge
    fire point's location lies outside the imported units (geodesic metres; None for other fire points and for
    incidents assigned before the distance was stored)."""

    id: int
    latitude: float
    longitude: float
    township_code: str | None
    township_name: str | None
    county_code: str | None
    county_name: str | None
    first_observed_at: datetime
    state: IncidentState
    sightings: tuple[Sighting, ...]
    transitions: tuple[Transition, ...]
    burned_area_m2: float | None = None
    # repeat_at_site (同一地点再次起火): the earlier real fire at this place, when the incident was flagged so.
    repeat_of: int | None = None
    # When the fire moved to another unit (``reassigned`` events that changed its unit: a more precise fix across
    # the border, or a supervisor's reassignment), in time order: the township's clocks restart at a move
    # (:func:`service.stats.lifecycle.clock_start`).
    moves: tuple[datetime, ...] = ()
    assignment: str = AssignStatus.INSIDE.value
    unit_share: float | None = None
    edge_distance_m: float | None = None

    @property
    def edge(self) -> bool:
        """Whether the fire point is an edge one: assigned to the nearest unit, its location outside every unit."""
        return self.assignment == AssignStatus.NEAREST.value

    @property
    def sources(self) -> frozenset[Source]:
        """Every source that saw the fire."""
        return frozenset(s.source for s in self.sightings)

    @property
    def first_sighting(self) -> Sighting | None:
        """The observation the service received first: who found the fire (a satellite pass published after a
        township's report did not find the fire before it, whenever it was observed)."""
        return self.sightings[0] if self.sightings else None

    def unit_code(self, level: RegionLevel) -> str | None:
        """The township or county the fire was assigned to."""
        return self.county_code if level is RegionLevel.COUNTY else self.township_code

    def unit_name(self, level: RegionLevel) -> str | None:
        """The name of :meth:`unit_code`."""
        return self.county_name if level is RegionLevel.COUNTY else self.township_name


@dataclass(frozen=True, slots=True)
class Unit:
    """An administrative unit with the areas density is measured against (geometry only when a map needs it)."""

    code: str
    name: str
    level: RegionLevel
    parent_code: str | None
    area_ha: float
    cropland_ha: float | None = None
    geometry: shapely.Geometry | None = None
