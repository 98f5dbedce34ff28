"""Fusing observations of the same fire into one incident (pure: no database, no I/O).

Every signal — a screened satellite hotspot, a camera sighting, a drone sighting — is an :class:`ObservationIn`
with an uncertainty region: the satellite pixel footprint, a camera's bearing wedge or triangulated ellipse, a
drone point with its pose error. Two observations are of the same fire when their regions overlap and their times
are within the window for their pair of kinds (defaults: 2 h camera–camera, as Pyronear's sequence relaxation;
6 h whenever a satellite is involved, as SMHI's activefires-pp). Linking is transitive: an observation that links
to several incidents links them all.

The incident's location is its most precise observation's: drone > triangulated > satellite pixel > single
camera (a wedge is kilometres long); ties go to the higher confidence, then — for satellites — the higher FRP
(the pixel nearest the fire's core, as activefires-pp picks), then the earlier time. Its confidence is the
noisy-OR of independent sources, ``1 − Π(1 − pᵢ)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import shapely


class ObservationKind(StrEnum):
    """What saw the fire; the order of :data:`PRECISION_RANK` says how well it located it."""

    DRONE = "drone"
    TRIANGULATED = "triangulated"
    SATELLITE = "satellite"
    CAMERA = "camera"


PRECISION_RANK: dict[ObservationKind, int] = {
    ObservationKind.DRONE: 0,
    ObservationKind.TRIANGULATED: 1,
    ObservationKind.SATELLITE: 2,
    ObservationKind.CAMERA: 3,
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

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at must be timezone-aware (UTC)")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError("confidence must be within 0..1")


@dataclass(frozen=True, slots=True)
class FusionWindows:
    """Time windows for linking two observations, by whether a satellite is involved."""

    ground: timedelta = timedelta(hours=2)  # camera, drone, triangulated among themselves
    satellite: timedelta = timedelta(hours=6)  # any pair with a satellite observation
    # Regions are buffered by this much (metres) before the overlap test: 0 means "uncertainty regions overlap".
    buffer_m: float = 0.0

    def window(self, a: ObservationKind, b: ObservationKind) -> timedelta:
        """The window for a pair of kinds."""
        if ObservationKind.SATELLITE in (a, b):
            return self.satellite
        return self.ground


@dataclass(frozen=True, slots=True)
class Located:
    """An observation already in an incident, as fusion needs to see it."""

    incident_id: int
    kind: ObservationKind
    observed_at: datetime
    region: shapely.Geometry


def _buffered(geometry: shapely.Geometry, buffer_m: float, latitude: float) -> shapely.Geometry:
    if buffer_m <= 0:
        return geometry
    # Degrees per metre at this latitude; the buffer is a gate, not a measurement, so this is precise enough.
    deg = buffer_m / (111_320.0 * max(0.1, math.cos(math.radians(latitude))))
    return shapely.buffer(geometry, deg)


def linked_incidents(new: ObservationIn, existing: Iterable[Located], windows: FusionWindows) -> list[int]:
    """Ids of the incidents ``new`` belongs to (sorted; empty when it starts a new incident)."""
    region = _buffered(new.region, windows.buffer_m, new.latitude)
    shapely.prepare(region)
    linked: set[int] = set()
    for other in existing:
        if other.incident_id in linked:
            continue
        if abs(other.observed_at - new.observed_at) > windows.window(new.kind, other.kind):
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


def best_location(observations: Sequence[ObservationIn]) -> ObservationIn:
    """The observation that locates the fire best (see the module docstring for the order)."""
    if not observations:
        raise ValueError("an incident has at least one observation")
    return min(
        observations,
        key=lambda o: (PRECISION_RANK[o.kind], -o.confidence, -(o.frp_mw or 0.0), o.observed_at, o.source_key),
    )
