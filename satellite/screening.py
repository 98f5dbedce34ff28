"""Screening: decide for every hotspot whether it is a candidate straw fire, and record why.

In Jilin a satellite fire point in a county's 禁烧区 costs the county ¥300,000-500,000, and industrial and other fixed
heat sources dominate raw hotspot counts in Chinese farm provinces (reference satellite.md §1, finding 4). So a
hotspot is never silently dropped: every one gets a :class:`ScreeningDecision` with a status, a human-readable
reason, every rule that matched (for audit and appeal), and the burn zone it lies in.

Rules, in order of precedence (the first that matches sets the status; all matches are kept in ``findings``):

1. ``glitch`` — a sensor artefact, not a fire: mid-infrared brightness temperature over FRP above 1000 K/MW while
   the temperature is above 310 K (``tb/power > 1000 and tb > 310`` in activefires-pp's
   ``sanity_check_detections.py``: VIIRS I-4 single-event upsets, frequent over the South Atlantic Anomaly — a
   "hot" pixel with almost no radiative power). Applied to VIIRS only by default (reference S4): on the real
   global MODIS day of 2025-04-23 the rule would flag 11 pixels of 16,017, all high-confidence detections whose FRP
   is published as 0.0, i.e. MODIS's "not retrieved", not upsets. FRP missing → the test does not apply.
2. ``outside_coverage`` — the pixel *footprint* (scan × track, :func:`satellite.hotspot.footprint_polygons`; a
   Himawari hotspot's 0.02° cell) meets no coverage polygon (e.g. the city boundary plus a margin), when coverage
   is configured. The footprint, not the centre: the fire can be anywhere in the pixel (reference §1 finding 6,
   S3/S6), and the service assigns an incident by footprint overlap, falling back to the nearest unit within the
   tolerance *of the footprint*. Tested on the centre, a 1-5 km MODIS pixel whose centre lay just beyond the
   margin but which reached into a township was screened out before the assignment could place it (a missed fire
   on the real MODIS day of 2025-04-24, Aqua 05:55 UTC at 43.99067 N 126.01398 E). Records without pixel size
   are tested at their centre. The service counts these and does not store them (``service.flows``): a global
   daily file is ~99 % outside any county, and a record per row cost gigabytes for rows nobody looks up; its
   readers drop the rows that cannot reach the coverage's box before building records
   (:func:`satellite.hotspot.reaching_box`, the same test as this rule's prefilter).
3. ``industrial_site`` — inside a known industrial-site polygon (steel works, power plants, cement kilns...).
4. ``static_source`` — a fixed heat source by evidence: the product says so (FIRMS standard-processing ``type``
   1 volcano, 2 other static land source, 3 offshore; Himawari ``Volcano`` > 0), or the persistence map has seen
   the same ~1 km cell (0.01°) on at least ``static_min_days`` (10) distinct local days in the
   ``static_window_days`` (365) before the hotspot's own day. The rule and its thresholds are those of the Henan
   two-year VIIRS analysis (reference §8: P95 of cell-days is 3, P99 32; 10 days ⇒ fixed). Days are counted as
   local dates (China Standard Time) because a night and a day pass of one local day fall on two UTC dates.
5. ``non_crop`` — less than ``min_cropland_fraction`` (0.5) of the pixel footprint lies on cropland (reference S4),
   when a cropland layer is configured (the Third National Land Survey 三调 耕地 polygons); **off** without one.
   The footprint is the one coverage uses (scan × track; Himawari's 0.02° cell); a record without pixel size is
   on cropland when its centre is. Areas are measured in a Lambert azimuthal *equal-area* projection centred on
   the batch (ellipsoidal, so the ratio is one of true areas, never of square degrees), summed over the cropland
   polygons the footprint meets: the layer's polygons are taken not to overlap (三调 parcels tile the land; where a
   file's do, the fraction can only come out too high, which alerts rather than holds). Below a static source: a
   chimney in a town is a chimney first; above low confidence and permits: a fire in a town or a forest is not a
   straw fire whatever its confidence, and a burn permit or a 禁烧区 does not make it one.
6. ``low_confidence`` — normalised detection confidence below ``min_confidence``: **off by default** (0.0), 0.30
   holds the *low* class of every product. Off by decision: small straw fires are often detected only in the low
   class (MODIS below 30 %), and a fire screened out here is a fire no township hears of, while a false one costs a
   patrol a trip, which the feedback loop then records. A deployment plagued by glint turns it
   on (``screening.min_confidence = 0.30``). VIIRS ``l`` pixels are "typically daytime pixels in sun-glint areas,
   with a lower relative temperature anomaly (< 15 K)" (reference §3.4): FIRMS data carry no glint or cloud mask of
   their own, and this class is the only glint signal in them; MODIS below 30 % is the C6.1 low class; Himawari
   reliability 1 is what JAXA gives "frequently detected hot spots from economic or human activity" (§6.6). Held, not
   deleted: the pixel is stored with its reason, and a later nominal pass of a real fire alerts on its own.
7. ``permitted`` — inside a burn permit (polygon + UTC window) valid at the detection time: planned burning in a
   限烧区 is not a violation. Permits do not apply inside a 禁烧区 unless ``permits_in_no_burn_zones`` is set — a
   permit there contradicts the zone, and the zone is the stricter rule.
8. ``accepted`` — none of the above: a candidate straw fire, "suspected" (疑似) until verified on the ground.

Zones: the decision also carries the zone (``no_burn`` 禁烧区 beats ``restricted`` 限烧区 where both contain the
point; ``None`` outside all zones), so :attr:`ScreeningDecision.violation` can say ``True`` / ``False`` / ``None``
(unknown: no zone data there).

All polygon lookups use shapely 2 STRtrees, queried once per layer for all hotspots; a point on a polygon's
boundary counts as inside, and holes are honoured (activefires-pp tested exteriors only). Site, zone and permit
tests are on the pixel *centre* (coverage and cropland on the footprint): draw site polygons with a margin of
about half a pixel. Polygons must be WGS-84 longitude/latitude (GeoJSON's CRS): convert GCJ-02 or CGCS2000 data
first (the service's region import does).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Generic, TypeAlias, cast

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely import MultiPolygon, Polygon

from satellite.clustering import D, Detection
from satellite.errors import GeometryInputError
from satellite.hotspot import Box, Hotspot, footprint_polygons, reaching_box

__all__ = [
    "CHINA_STANDARD_TIME",
    "BurnPermit",
    "Detection",
    "Finding",
    "PersistenceMap",
    "Screener",
    "ScreeningConfig",
    "ScreeningDecision",
    "ScreeningStatus",
    "Site",
    "Zone",
    "ZoneKind",
    "cropland_fractions",
    "glitch_reason",
    "in_coverage",
    "low_confidence_reason",
    "may_reach_box",
    "read_coverage_geojson",
    "read_cropland_geojson",
    "read_permits_geojson",
    "read_sites_geojson",
    "read_zones_geojson",
]

CHINA_STANDARD_TIME: Final = timezone(timedelta(hours=8), "CST")
"""UTC+8 all year (no daylight saving since 1991), so a fixed offset needs no time-zone database."""


class ScreeningStatus(StrEnum):
    """What screening concluded (module docstring: the rules, in precedence order)."""

    ACCEPTED = "accepted"
    GLITCH = "glitch"
    OUTSIDE_COVERAGE = "outside_coverage"
    INDUSTRIAL_SITE = "industrial_site"
    STATIC_SOURCE = "static_source"
    NON_CROP = "non_crop"
    LOW_CONFIDENCE = "low_confidence"
    PERMITTED = "permitted"


_PRECEDENCE: Final[tuple[ScreeningStatus, ...]] = (
    ScreeningStatus.GLITCH,
    ScreeningStatus.OUTSIDE_COVERAGE,
    ScreeningStatus.INDUSTRIAL_SITE,
    ScreeningStatus.STATIC_SOURCE,
    ScreeningStatus.NON_CROP,
    ScreeningStatus.LOW_CONFIDENCE,
    ScreeningStatus.PERMITTED,
)


class ZoneKind(StrEnum):
    """Jilin's two burn zones."""

    NO_BURN = "no_burn"
    """禁烧区: no burning at all."""
    RESTRICTED = "restricted"
    """限烧区: planned, permitted burning only (计划烧除)."""

    @classmethod
    def parse(cls, raw: str) -> ZoneKind:
        """Accept the English values and the Chinese names (``禁烧区``/``禁烧``, ``限烧区``/``限烧``)."""
        text = raw.strip().lower().replace("-", "_").replace(" ", "_")
        found = _ZONE_ALIASES.get(text)
        if found is None:
            raise ValueError(f"zone kind must be no_burn/禁烧区 or restricted/限烧区, not {raw.strip()[:20]!r}")
        return found


_ZONE_ALIASES: Final[dict[str, ZoneKind]] = {
    "no_burn": ZoneKind.NO_BURN,
    "noburn": ZoneKind.NO_BURN,
    "禁烧区": ZoneKind.NO_BURN,
    "禁烧": ZoneKind.NO_BURN,
    "restricted": ZoneKind.RESTRICTED,
    "限烧区": ZoneKind.RESTRICTED,
    "限烧": ZoneKind.RESTRICTED,
}

_ZONE_LABEL: Final[dict[ZoneKind, str]] = {
    ZoneKind.NO_BURN: "no-burn zone 禁烧区",
    ZoneKind.RESTRICTED: "restricted zone 限烧区",
}

Polygonal: TypeAlias = Polygon | MultiPolygon


# --- records ------------------------------------------------------------------------------------------------


def _check_polygonal(geometry: object, what: str) -> None:
    if not isinstance(geometry, Polygon | MultiPolygon) or geometry.is_empty:
        raise ValueError(f"{what} must be a non-empty shapely Polygon or MultiPolygon")
    if not geometry.is_valid:
        raise ValueError(f"{what} is not a valid polygon ({shapely.is_valid_reason(geometry)}); repair it first")


@dataclass(frozen=True, slots=True)
class Site:
    """A known industrial heat source (steel works, power plant, cement kiln, ...)."""

    site_id: str
    name: str
    geometry: Polygonal

    def __post_init__(self) -> None:
        _check_polygonal(self.geometry, f"site {self.site_id!r}")


@dataclass(frozen=True, slots=True)
class Zone:
    """A 禁烧区 or 限烧区 polygon."""

    zone_id: str
    kind: ZoneKind
    name: str
    geometry: Polygonal

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ZoneKind(self.kind))
        _check_polygonal(self.geometry, f"zone {self.zone_id!r}")


@dataclass(frozen=True, slots=True)
class BurnPermit:
    """Approved planned burning: a polygon and a UTC window ``[start_utc, end_utc)``."""

    permit_id: str
    geometry: Polygonal
    start_utc: datetime
    end_utc: datetime
    note: str = ""

    def __post_init__(self) -> None:
        _check_polygonal(self.geometry, f"permit {self.permit_id!r}")
        if self.start_utc.utcoffset() is None or self.end_utc.utcoffset() is None:
            raise ValueError(f"permit {self.permit_id!r}: start and end must be tz-aware (a naive time is ambiguous)")
        if not self.start_utc < self.end_utc:
            raise ValueError(f"permit {self.permit_id!r}: start must be before end")

    def valid_at(self, when: datetime) -> bool:
        """Whether the window contains ``when`` (start inclusive, end exclusive)."""
        return self.start_utc <= when < self.end_utc

    def window_text(self) -> str:
        """The window in UTC, for reasons."""
        return f"{self.start_utc.astimezone(UTC):%Y-%m-%d %H:%M} to {self.end_utc.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched a hotspot."""

    status: ScreeningStatus
    reason: str


@dataclass(frozen=True, slots=True)
class ScreeningDecision(Generic[D]):
    """The screening outcome for one hotspot.

    Attributes:
        hotspot: the record screened.
        status: the first matching rule in precedence order, or ``accepted``.
        reason: why, in words (the deciding rule's reason; for ``accepted``, what was checked and the zone).
        zone: ``no_burn`` (禁烧区), ``restricted`` (限烧区) or ``None`` (no zone contains the point).
        zone_ids: every zone containing the point.
        findings: every rule that matched, in precedence order (empty for a plain ``accepted``).
        site_id: the industrial site containing the point, if any.
        permit_id: the permit that made it ``permitted``, if any.
        cropland_fraction: the share of the footprint on cropland (0-1), ``None`` without a cropland layer.
    """

    hotspot: D
    status: ScreeningStatus
    reason: str
    zone: ZoneKind | None
    zone_ids: tuple[str, ...]
    findings: tuple[Finding, ...]
    site_id: str | None = None
    permit_id: str | None = None
    cropland_fraction: float | None = None

    @property
    def key(self) -> str:
        """The hotspot's key."""
        return self.hotspot.key

    @property
    def violation(self) -> bool | None:
        """``True`` for an accepted hotspot in a zone, ``False`` when screened out or permitted, ``None`` when
        accepted but outside every zone (no zone data: unknown)."""
        if self.status is not ScreeningStatus.ACCEPTED:
            return False
        return None if self.zone is None else True


# --- persistence map --------------------------------------------------------------------------------------


class PersistenceMap:
    """On which local days each ~1 km grid cell has had a hotspot: the evidence for fixed heat sources.

    Pure and serialisable: build it from any iterable of past hotspots (a year of FIRMS archive, or the service's
    own store), save it with :meth:`to_json`, load it with :meth:`from_json`. Cells are ``cell_deg`` squares
    (0.01°: 1.1 km north-south, 0.8 km east-west at Changchun, the Henan analysis's grid); days are local dates at
    ``utc_offset`` (China Standard Time by default).

    A fixed source near a cell border splits its days between two cells; ``neighbourhood=1`` in the query counts
    the 3 × 3 block instead, at the price of also adding up neighbouring farmers' fields.
    """

    FORMAT: Final = "strawfire.persistence/1"

    def __init__(self, cell_deg: float = 0.01, utc_offset: timedelta = timedelta(hours=8)) -> None:
        if not (math.isfinite(cell_deg) and 0 < cell_deg <= 1):
            raise ValueError(f"cell_deg must be in (0, 1], not {cell_deg!r}")
        if abs(utc_offset) > timedelta(hours=14):
            raise ValueError(f"utc_offset {utc_offset} is not a real UTC offset")
        self.cell_deg = float(cell_deg)
        self.utc_offset = utc_offset
        self._tz = timezone(utc_offset)
        self._days: dict[tuple[int, int], set[int]] = {}

    @classmethod
    def from_hotspots(
        cls, hotspots: Iterable[Detection], *, cell_deg: float = 0.01, utc_offset: timedelta = timedelta(hours=8)
    ) -> PersistenceMap:
        """A map of the given history."""
        built = cls(cell_deg, utc_offset)
        built.add(hotspots)
        return built

    def __len__(self) -> int:
        return len(self._days)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PersistenceMap):
            return NotImplemented
        return (self.cell_deg, self.utc_offset, self._days) == (other.cell_deg, other.utc_offset, other._days)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"PersistenceMap(cell_deg={self.cell_deg:g}, utc_offset={self.utc_offset}, cells={len(self)})"

    def cell(self, latitude: float, longitude: float) -> tuple[int, int]:
        """The (row, column) of the cell containing a point.

        Rounded to 9 decimals before flooring, so that 43.91 / 0.01 = 4390.999999… lands in cell 4391 as written.
        """
        return math.floor(round(latitude / self.cell_deg, 9)), math.floor(round(longitude / self.cell_deg, 9))

    def local_date(self, when: datetime) -> date:
        """The map's local calendar date of a tz-aware time."""
        if when.utcoffset() is None:
            raise ValueError("times must be tz-aware UTC")
        return when.astimezone(self._tz).date()

    def add(self, hotspots: Iterable[Detection]) -> None:
        """Record each hotspot's cell and local day (adding the same hotspot twice changes nothing)."""
        for hotspot in hotspots:
            day = self.local_date(hotspot.acq_utc).toordinal()
            self._days.setdefault(self.cell(hotspot.latitude, hotspot.longitude), set()).add(day)

    def days_seen(
        self, latitude: float, longitude: float, before: date, *, window_days: int = 365, neighbourhood: int = 0
    ) -> int:
        """Distinct local days with a hotspot in the cell (or the ``2n+1`` square block) in
        ``[before - window_days, before)``: the day in question itself is never counted, so the answer does not
        depend on whether today's hotspots were added to the map yet."""
        row, col = self.cell(latitude, longitude)
        end = before.toordinal()
        start = end - window_days
        days: set[int] = set()
        for dr in range(-neighbourhood, neighbourhood + 1):
            for dc in range(-neighbourhood, neighbourhood + 1):
                days.update(d for d in self._days.get((row + dr, col + dc), ()) if start <= d < end)
        return len(days)

    def to_json(self) -> str:
        """Deterministic JSON: cells ``"row,col"`` → sorted ISO dates."""
        cells = {
            f"{row},{col}": [date.fromordinal(d).isoformat() for d in sorted(days)]
            for (row, col), days in sorted(self._days.items())
        }
        document = {
            "format": self.FORMAT,
            "cell_deg": self.cell_deg,
            "utc_offset_minutes": int(self.utc_offset.total_seconds() // 60),
            "cells": cells,
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> PersistenceMap:
        """Load what :meth:`to_json` wrote; raise ``ValueError`` on anything else."""
        try:
            document = json.loads(text)
            if document.get("format") != cls.FORMAT:
                raise ValueError(f"not a {cls.FORMAT} document (format {document.get('format')!r})")
            loaded = cls(float(document["cell_deg"]), timedelta(minutes=int(document["utc_offset_minutes"])))
            for cell_key, days in document["cells"].items():
                row_text, col_text = cell_key.split(",")
                loaded._days[(int(row_text), int(col_text))] = {date.fromisoformat(d).toordinal() for d in days}
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed persistence map: {exc}") from None
        return loaded


# --- the screener -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreeningConfig:
    """Screening thresholds.

    Attributes:
        glitch_ratio_k_per_mw, glitch_min_k: the glitch rule ``T/FRP > ratio and T > min`` (activefires-pp).
        glitch_instruments: instruments the glitch rule applies to (VIIRS; see the module docstring for MODIS).
        static_min_days, static_window_days, static_neighbourhood: the persistence rule.
        min_confidence: hold hotspots whose normalised confidence is below this (0, the default: the rule is off;
            0.30: the low class of MODIS, VIIRS and Himawari alike).
        permits_in_no_burn_zones: let permits apply inside 禁烧区 too.
        min_cropland_fraction: hold as ``non_crop`` a hotspot with less of its footprint on cropland (applies only
            when the screener has a cropland layer).
    """

    glitch_ratio_k_per_mw: float = 1000.0
    glitch_min_k: float = 310.0
    glitch_instruments: frozenset[str] = frozenset({"VIIRS"})
    static_min_days: int = 10
    static_window_days: int = 365
    static_neighbourhood: int = 0
    min_confidence: float = 0.0
    permits_in_no_burn_zones: bool = False
    min_cropland_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.static_min_days < 1 or self.static_window_days < 1 or not 0 <= self.static_neighbourhood <= 5:
            raise ValueError("static_min_days and static_window_days must be >= 1, static_neighbourhood 0-5")
        if not (self.glitch_ratio_k_per_mw > 0 and math.isfinite(self.glitch_min_k)):
            raise ValueError("glitch thresholds must be positive and finite")
        if not (math.isfinite(self.min_confidence) and 0.0 <= self.min_confidence <= 1.0):
            raise ValueError(f"min_confidence must be in [0, 1], not {self.min_confidence!r}")
        if not (math.isfinite(self.min_cropland_fraction) and 0.0 < self.min_cropland_fraction <= 1.0):
            raise ValueError(f"min_cropland_fraction must be in (0, 1], not {self.min_cropland_fraction!r}")


def glitch_reason(hotspot: Detection, config: ScreeningConfig | None = None) -> str | None:
    """Why a hotspot is a sensor glitch, or ``None`` (module docstring, rule 1)."""
    cfg = config if config is not None else ScreeningConfig()
    instrument = str(getattr(hotspot, "instrument", ""))
    temperature = getattr(hotspot, "bright_mir_k", None)
    frp = hotspot.frp_mw
    if instrument not in cfg.glitch_instruments or temperature is None or frp is None:
        return None
    if temperature <= cfg.glitch_min_k:
        return None
    if frp > 0 and temperature / frp <= cfg.glitch_ratio_k_per_mw:
        return None
    ratio = "infinite (FRP 0)" if frp <= 0 else f"{temperature / frp:.0f} K/MW"
    return (
        f"sensor glitch: mid-IR {temperature:.1f} K over FRP {frp:g} MW is {ratio}, above "
        f"{cfg.glitch_ratio_k_per_mw:g} K/MW with T > {cfg.glitch_min_k:g} K (activefires-pp single-event-upset rule)"
    )


def low_confidence_reason(hotspot: Detection, config: ScreeningConfig | None = None) -> str | None:
    """Why a hotspot's detection confidence is too low to alert on, or ``None`` (module docstring, rule 5).

    Reads the normalised ``confidence`` (and ``confidence_raw`` for the wording); a record without one is never
    held by this rule.
    """
    cfg = config if config is not None else ScreeningConfig()
    confidence = getattr(hotspot, "confidence", None)
    if not isinstance(confidence, int | float) or confidence >= cfg.min_confidence:
        return None
    raw = str(getattr(hotspot, "confidence_raw", "")).strip()
    instrument = str(getattr(hotspot, "instrument", ""))
    if instrument == "VIIRS":
        what = f"VIIRS confidence {raw!r} (low: typically a daytime pixel in a sun-glint area or a weak I-4 anomaly)"
    elif instrument == "MODIS":
        what = f"MODIS confidence {raw} %"
    elif instrument == "AHI":
        what = f"Himawari reliability {raw} (low: JAXA's rating of frequently detected hot spots of human activity)"
    else:
        what = f"confidence {raw or confidence!r}"
    return f"low detection confidence: {what}, normalised {confidence:.2f} < {cfg.min_confidence:.2f}"


_FIRMS_STATIC_TYPES: Final[dict[int, str]] = {
    1: "active volcano",
    2: "other static land source",
    3: "offshore",
}


class _PolygonIndex:
    """An STRtree over polygons answering "which polygons contain each of these points" in one query."""

    def __init__(self, geometries: Sequence[Polygonal]) -> None:
        self.size = len(geometries)
        self.tree = shapely.STRtree(list(geometries)) if geometries else None

    def hits(self, geometries: np.ndarray[Any, Any]) -> list[list[int]]:
        """For each geometry (a point or a footprint), the polygons it intersects, in index order."""
        out: list[list[int]] = [[] for _ in range(len(geometries))]
        if self.tree is None or len(geometries) == 0:
            return out
        found = self.tree.query(geometries, predicate="intersects")
        for point, polygon in zip(found[0].tolist(), found[1].tolist(), strict=True):
            out[point].append(polygon)
        for row in out:
            row.sort()
        return out


class Screener:
    """Applies the screening rules (module docstring) to batches of hotspots. Pure: no I/O, no clock.

    Args:
        config: thresholds.
        persistence: history of hotspots for the persistence rule (skipped when ``None``).
        sites: known industrial sites.
        zones: 禁烧区 / 限烧区 polygons.
        permits: burn permits.
        coverage: the monitored area; ``None`` means no coverage test.
        cropland: cropland polygons (三调 耕地) for the ``non_crop`` rule; ``None`` (the default) turns the rule off.
    """

    def __init__(
        self,
        config: ScreeningConfig | None = None,
        *,
        persistence: PersistenceMap | None = None,
        sites: Iterable[Site] = (),
        zones: Iterable[Zone] = (),
        permits: Iterable[BurnPermit] = (),
        coverage: Iterable[Polygonal] | None = None,
        cropland: Iterable[Polygonal] | None = None,
    ) -> None:
        self.config = config if config is not None else ScreeningConfig()
        self.persistence = persistence
        self.sites = tuple(sites)
        self.zones = tuple(zones)
        self.permits = tuple(permits)
        self.coverage = None if coverage is None else tuple(coverage)
        if self.coverage is not None:
            for number, polygon in enumerate(self.coverage):
                _check_polygonal(polygon, f"coverage polygon {number}")
            if not self.coverage:
                raise ValueError("coverage is configured but empty: every hotspot would be outside it")
        self._sites = _PolygonIndex([s.geometry for s in self.sites])
        self._zones = _PolygonIndex([z.geometry for z in self.zones])
        self._permits = _PolygonIndex([p.geometry for p in self.permits])
        self._coverage = _PolygonIndex(self.coverage or ())
        self.cropland = None if cropland is None else _cropland_array(cropland)
        self._cropland = _PolygonIndex(list(self.cropland) if self.cropland is not None else ())

    def screen(self, hotspots: Iterable[D]) -> list[ScreeningDecision[D]]:
        """One decision per hotspot, in input order."""
        items = list(hotspots)
        for item in items:
            if item.acq_utc.utcoffset() is None:
                raise ValueError(f"hotspot {item.key} has a naive time; times must be tz-aware UTC")
        points = shapely.points(
            np.fromiter((h.longitude for h in items), dtype=np.float64, count=len(items)),
            np.fromiter((h.latitude for h in items), dtype=np.float64, count=len(items)),
        )
        site_hits = self._sites.hits(points)
        zone_hits = self._zones.hits(points)
        permit_hits = self._permits.hits(points)
        shapes = _footprints(items, points) if self.coverage is not None or self.cropland is not None else None
        coverage_hits = self._coverage.hits(shapes) if shapes is not None and self.coverage is not None else None
        fractions = (
            _cropland_fractions(shapes, self._cropland, self.cropland).tolist()
            if shapes is not None and self.cropland is not None
            else None
        )
        return [
            self._decide(
                item,
                site_hits[i],
                zone_hits[i],
                permit_hits[i],
                None if coverage_hits is None else bool(coverage_hits[i]),
                None if fractions is None else fractions[i],
            )
            for i, item in enumerate(items)
        ]

    def _decide(
        self,
        hotspot: D,
        sites: list[int],
        zones: list[int],
        permits: list[int],
        covered: bool | None,
        cropland: float | None = None,
    ) -> ScreeningDecision[D]:
        cfg = self.config
        findings: list[Finding] = []
        glitch = glitch_reason(hotspot, cfg)
        if glitch is not None:
            findings.append(Finding(ScreeningStatus.GLITCH, glitch))
        if covered is False:
            findings.append(Finding(ScreeningStatus.OUTSIDE_COVERAGE, "outside the monitored area (coverage polygons)"))
        site_id = None
        if sites:
            site = self.sites[sites[0]]
            site_id = site.site_id
            named = f" {site.name!r}" if site.name else ""
            findings.append(
                Finding(ScreeningStatus.INDUSTRIAL_SITE, f"inside known industrial site {site.site_id}{named}")
            )
        findings.extend(Finding(ScreeningStatus.STATIC_SOURCE, reason) for reason in self._static_reasons(hotspot))
        if cropland is not None and cropland < cfg.min_cropland_fraction:
            findings.append(Finding(ScreeningStatus.NON_CROP, _non_crop_reason(hotspot, cropland, cfg)))
        low = low_confidence_reason(hotspot, cfg)
        if low is not None:
            findings.append(Finding(ScreeningStatus.LOW_CONFIDENCE, low))

        zone_kinds = {self.zones[z].kind for z in zones}
        zone = ZoneKind.NO_BURN if ZoneKind.NO_BURN in zone_kinds else (ZoneKind.RESTRICTED if zone_kinds else None)
        zone_ids = tuple(sorted(self.zones[z].zone_id for z in zones))
        if zone is None:
            zone_text = "outside every burn zone"
        else:
            ids = ", ".join(self.zones[z].zone_id for z in zones if self.zones[z].kind is zone)
            zone_text = f"in {_ZONE_LABEL[zone]} {ids}"
        permit_id = None
        permit_notes: list[str] = []
        for index in permits:
            permit = self.permits[index]
            if not permit.valid_at(hotspot.acq_utc):
                permit_notes.append(
                    f"permit {permit.permit_id} covers the place but its window {permit.window_text()} does not "
                    f"include {hotspot.acq_utc.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                )
            elif zone is ZoneKind.NO_BURN and not cfg.permits_in_no_burn_zones:
                permit_notes.append(
                    f"permit {permit.permit_id} is valid here and now, but permits do not apply in a "
                    "no-burn zone 禁烧区"
                )
            elif permit_id is None:
                permit_id = permit.permit_id
                findings.append(
                    Finding(
                        ScreeningStatus.PERMITTED,
                        f"planned burning under permit {permit.permit_id} ({permit.window_text()}); {zone_text}",
                    )
                )
        findings.sort(key=lambda f: _PRECEDENCE.index(f.status))
        if findings:
            status, reason = findings[0].status, findings[0].reason
        else:
            status = ScreeningStatus.ACCEPTED
            reason = f"candidate straw fire: no exclusion applies; {zone_text}"
            if zone is not None:
                reason += " without a valid permit"
            if permit_notes:
                reason += "; " + "; ".join(permit_notes)
            if cropland is not None:
                reason += f"; cropland fraction {cropland:.2f}"
        return ScreeningDecision(
            hotspot,
            status,
            reason,
            zone,
            zone_ids,
            tuple(findings),
            site_id,
            permit_id if status is ScreeningStatus.PERMITTED else None,
            cropland,
        )

    def _static_reasons(self, hotspot: Detection) -> list[str]:
        reasons: list[str] = []
        fire_type = getattr(hotspot, "fire_type", None)
        if isinstance(fire_type, int) and fire_type in _FIRMS_STATIC_TYPES:
            reasons.append(f"FIRMS type {fire_type} ({_FIRMS_STATIC_TYPES[fire_type]})")
        volcano = getattr(hotspot, "volcano", None)
        if isinstance(volcano, int) and volcano > 0:
            reasons.append(f"Himawari reports {volcano} volcano(es) within the surrounding 3 x 3 cells")
        if self.persistence is not None:
            cfg = self.config
            today = self.persistence.local_date(hotspot.acq_utc)
            days = self.persistence.days_seen(
                hotspot.latitude,
                hotspot.longitude,
                today,
                window_days=cfg.static_window_days,
                neighbourhood=cfg.static_neighbourhood,
            )
            if days >= cfg.static_min_days:
                area = (
                    "cell"
                    if cfg.static_neighbourhood == 0
                    else f"{2 * cfg.static_neighbourhood + 1}x{2 * cfg.static_neighbourhood + 1} cells"
                )
                reasons.append(
                    f"persistent heat source: hotspots in the same {self.persistence.cell_deg:g}° {area} on {days} "
                    f"distinct local days in the {cfg.static_window_days} days before {today.isoformat()} "
                    f"(threshold {cfg.static_min_days})"
                )
        return reasons


def in_coverage(hotspots: Sequence[Detection], coverage: Iterable[Polygonal]) -> list[bool]:
    """Whether each hotspot's pixel footprint meets a coverage polygon: exactly rule 2's test (``outside_coverage``
    is its negation), for callers that keep only the monitored area, such as a history import."""
    polygons = tuple(coverage)
    for number, polygon in enumerate(polygons):
        _check_polygonal(polygon, f"coverage polygon {number}")
    items = list(hotspots)
    covered = [False] * len(items)
    if not polygons or not items:
        return covered
    # Footprints cost far more than this test: an archive of a province has mostly pixels nowhere near the area.
    near = np.flatnonzero(_may_reach(items, shapely.total_bounds(polygons))).tolist()
    candidates = [items[i] for i in near]
    points = shapely.points(
        np.fromiter((h.longitude for h in candidates), dtype=np.float64, count=len(candidates)),
        np.fromiter((h.latitude for h in candidates), dtype=np.float64, count=len(candidates)),
    )
    for i, hits in zip(near, _PolygonIndex(polygons).hits(_footprints(candidates, points)), strict=True):
        covered[i] = bool(hits)
    return covered


def may_reach_box(hotspots: Sequence[Detection], box: Box) -> list[bool]:
    """Per hotspot, whether its pixel footprint may reach ``box`` (west, south, east, north): the cheap test before
    rule 2's footprints (a whole pixel size around the box: :func:`satellite.hotspot.reaching_box`). A
    hotspot for which it says ``False`` is ``outside_coverage`` for any coverage inside the box."""
    items = list(hotspots)
    if not items:
        return []
    return [bool(v) for v in _may_reach(items, np.asarray(box, dtype=np.float64))]


def _may_reach(items: Sequence[Detection], bounds: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per item, whether its pixel footprint can reach the box ``bounds`` (west, south, east, north): its centre
    lies within a whole pixel size of it (a footprint's half-diagonal is at most 0.71 of that, so nothing that
    reaches is lost: :func:`satellite.hotspot.reaching_box`, the readers' ``within`` test too). Records without a
    pixel size are always tested."""

    def size_km(item: Detection) -> float:
        scan, track = getattr(item, "scan_km", None), getattr(item, "track_km", None)
        if isinstance(scan, float | int) and isinstance(track, float | int):
            return float(max(scan, track))
        return math.inf

    west, south, east, north = (float(v) for v in bounds)
    return reaching_box(
        [h.latitude for h in items],
        [h.longitude for h in items],
        [size_km(h) for h in items],
        (west, south, east, north),
    )


def _footprints(items: Sequence[Detection], points: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each detection's pixel footprint: FIRMS pixels from scan × track in one vectorised call, other records by
    their own ``footprint()`` (Himawari's grid cell), and the centre point for records that have neither."""
    shapes = points.copy()
    firms = [i for i, item in enumerate(items) if isinstance(item, Hotspot)]
    if firms:
        shapes[firms] = footprint_polygons([cast(Hotspot, items[i]) for i in firms])
    for i, item in enumerate(items):
        if not isinstance(item, Hotspot):
            footprint = getattr(item, "footprint", None)
            if callable(footprint):
                shapes[i] = footprint()
    return shapes


def _has_footprint(item: Detection) -> bool:
    """Whether :func:`_footprints` gives the record an area (a pixel size or a ``footprint()``), not its centre."""
    return isinstance(item, Hotspot) or callable(getattr(item, "footprint", None))


def _non_crop_reason(hotspot: Detection, fraction: float, cfg: ScreeningConfig) -> str:
    """Why a hotspot is held as ``non_crop`` (module docstring, rule 5): the fraction, on what, and the threshold."""
    if isinstance(hotspot, Hotspot):
        what = f"{hotspot.scan_km:g} × {hotspot.track_km:g} km pixel footprint"
    elif _has_footprint(hotspot):
        what = "pixel footprint"
    else:
        return (
            f"not cropland: the centre lies on no cropland polygon (no pixel size to weigh: cropland fraction "
            f"{fraction:.2f} < {cfg.min_cropland_fraction:.2f})"
        )
    return (
        f"not cropland: cropland fraction {fraction:.2f} of the {what} ({fraction:.0%} on cropland) is below "
        f"{cfg.min_cropland_fraction:.2f}"
    )


def _cropland_array(cropland: Iterable[Polygonal]) -> np.ndarray[Any, Any]:
    """The cropland polygons as a shapely array, checked in one vectorised pass (a 三调 layer has 10⁵ parcels)."""
    items = list(cropland)
    if not items:
        raise ValueError("cropland is configured but empty: every hotspot would be non_crop")
    polygons = np.empty(len(items), dtype=object)
    polygons[:] = items
    for number, polygon in enumerate(items):
        if not isinstance(polygon, Polygon | MultiPolygon):
            raise ValueError(f"cropland polygon {number} must be a shapely Polygon or MultiPolygon")
    bad = np.flatnonzero(shapely.is_empty(polygons) | ~shapely.is_valid(polygons))
    if bad.size:
        _check_polygonal(items[int(bad[0])], f"cropland polygon {int(bad[0])}")
    return polygons


@functools.lru_cache(maxsize=16)
def _equal_area(lon_0: float, lat_0: float) -> Transformer:
    """WGS-84 lon/lat → a Lambert azimuthal equal-area projection (ellipsoidal, metres) centred at the point."""
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat_0} +lon_0={lon_0} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")
    return Transformer.from_crs("EPSG:4326", laea, always_xy=True)


def _cropland_fractions(
    shapes: np.ndarray[Any, Any], index: _PolygonIndex, polygons: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Per footprint, the share of its area on the cropland polygons (0-1); per point, 1.0 inside one, else 0.0.

    One STRtree query for all footprints, then the intersection areas of the (footprint, parcel) pairs it found
    in one vectorised call, in an equal-area projection centred on the batch; only those footprints and parcels
    are projected. Pieces are summed per footprint (parcels taken not to overlap) and capped at 1.
    """
    count = len(shapes)
    fractions = np.zeros(count, dtype=np.float64)
    if count == 0 or index.tree is None:
        return fractions
    found = index.tree.query(shapes, predicate="intersects")
    src, dst = found[0], found[1]
    point = shapely.get_type_id(shapes) == shapely.GeometryType.POINT
    fractions[src[point[src]]] = 1.0
    keep = ~point[src]
    src, dst = src[keep], dst[keep]
    if src.size == 0:
        return fractions
    footprint_ids, crop_ids = np.unique(src), np.unique(dst)
    west, south, east, north = (float(v) for v in shapely.total_bounds(shapes[footprint_ids]))
    transformer = _equal_area(round((west + east) / 2, 2), round((south + north) / 2, 2))

    def project(coords: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    projected_shapes = np.empty(count, dtype=object)
    projected_shapes[footprint_ids] = shapely.transform(shapes[footprint_ids], project)
    projected_crops = np.empty(len(polygons), dtype=object)
    projected_crops[crop_ids] = shapely.transform(polygons[crop_ids], project)
    try:
        pieces = shapely.intersection(projected_shapes[src], projected_crops[dst])
    except shapely.errors.GEOSException:  # a ring that projection nudged into touching itself
        pieces = shapely.intersection(
            shapely.make_valid(projected_shapes[src]), shapely.make_valid(projected_crops[dst])
        )
    on_crop = np.bincount(src, weights=shapely.area(pieces), minlength=count)
    totals = shapely.area(projected_shapes[footprint_ids])
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(totals > 0, on_crop[footprint_ids] / totals, 1.0)  # a degenerate footprint: it hit
    fractions[footprint_ids] = np.clip(share, 0.0, 1.0)
    return fractions


def cropland_fractions(hotspots: Sequence[Detection], cropland: Iterable[Polygonal]) -> list[float]:
    """The share of each hotspot's pixel footprint on cropland (0-1): exactly rule 5's measure (``non_crop`` is
    ``fraction < min_cropland_fraction``). A record without pixel size gets 1.0 when its centre is on cropland,
    else 0.0."""
    polygons = _cropland_array(cropland)
    items = list(hotspots)
    points = shapely.points(
        np.fromiter((h.longitude for h in items), dtype=np.float64, count=len(items)),
        np.fromiter((h.latitude for h in items), dtype=np.float64, count=len(items)),
    )
    result: list[float] = _cropland_fractions(
        _footprints(items, points), _PolygonIndex(list(polygons)), polygons
    ).tolist()
    return result


# --- GeoJSON loaders --------------------------------------------------------------------------------------


GeoJsonSource = os.PathLike[str] | str | bytes | Mapping[str, Any]
"""A path, GeoJSON text or bytes, or an already parsed GeoJSON object."""


def _features(
    source: GeoJsonSource, source_name: str | None, *, lonlat: bool = True
) -> tuple[str, list[tuple[int, dict[str, Any], Polygonal]]]:
    """Polygonal features of a FeatureCollection, Feature or bare geometry, repaired if invalid. ``lonlat``: the
    coordinates are longitude/latitude (checked against their ranges); False for a projected file the caller
    converts (metres: no range to check here)."""
    name = source_name
    document: Any
    if isinstance(source, os.PathLike):
        name = name if name is not None else Path(source).name
        try:
            document = json.loads(Path(source).read_bytes())
        except (OSError, ValueError) as exc:
            raise GeometryInputError(f"cannot read GeoJSON: {exc}", source_name=name) from None
    elif isinstance(source, str | bytes):
        name = name if name is not None else "<geojson>"
        try:
            document = json.loads(source)
        except ValueError as exc:
            raise GeometryInputError(f"not JSON: {exc}", source_name=name) from None
    else:
        name = name if name is not None else "<geojson>"
        document = source
    if not isinstance(document, Mapping):
        raise GeometryInputError("not a GeoJSON object", source_name=name)
    kind = document.get("type")
    if kind == "FeatureCollection":
        raw_features = document.get("features")
        if not isinstance(raw_features, list):
            raise GeometryInputError("FeatureCollection without a features list", source_name=name)
    elif kind == "Feature":
        raw_features = [document]
    else:
        raw_features = [{"type": "Feature", "properties": {}, "geometry": document}]
    out: list[tuple[int, dict[str, Any], Polygonal]] = []
    for index, feature in enumerate(raw_features):
        if not isinstance(feature, Mapping):
            raise GeometryInputError("not a GeoJSON Feature", source_name=name, feature=index)
        properties = dict(feature.get("properties") or {})
        if "id" in feature and "id" not in properties:
            properties["id"] = feature["id"]
        geometry_json = feature.get("geometry")
        try:
            geometry = shapely.from_geojson(json.dumps(geometry_json))
        except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
            raise GeometryInputError(f"unreadable geometry: {exc}", source_name=name, feature=index) from None
        if not isinstance(geometry, Polygon | MultiPolygon) or geometry.is_empty:
            raise GeometryInputError(
                f"geometry must be a Polygon or MultiPolygon, not {getattr(geometry, 'geom_type', 'nothing')}",
                source_name=name,
                feature=index,
            )
        minx, miny, maxx, maxy = geometry.bounds
        if lonlat and not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
            raise GeometryInputError(
                "coordinates are outside longitude/latitude ranges (GeoJSON must be WGS-84 lon/lat)",
                source_name=name,
                feature=index,
            )
        if not geometry.is_valid:
            geometry = _polygonal_part(shapely.make_valid(geometry))
            if geometry is None:
                raise GeometryInputError(
                    "invalid polygon with no area left after repair", source_name=name, feature=index
                )
        out.append((index, properties, geometry))
    return name, out


def _polygonal_part(geometry: Any) -> Polygonal | None:
    if isinstance(geometry, Polygon | MultiPolygon):
        return geometry if not geometry.is_empty else None
    parts = [g for g in getattr(geometry, "geoms", ()) if isinstance(g, Polygon | MultiPolygon) and not g.is_empty]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if isinstance(merged, Polygon | MultiPolygon) else None


def _text(properties: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = properties.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def read_sites_geojson(source: GeoJsonSource, *, source_name: str | None = None, lonlat: bool = True) -> list[Site]:
    """Industrial sites from GeoJSON polygons; id from ``id``/``site_id``/``code`` (else ``site-N``), name from
    ``name``/``名称``. Invalid polygons are repaired (``shapely.make_valid``, polygonal part kept)."""
    _, features = _features(source, source_name, lonlat=lonlat)
    return [
        Site(_text(p, "site_id", "id", "code") or f"site-{i}", _text(p, "name", "名称") or "", g)
        for i, p, g in features
    ]


def read_zones_geojson(source: GeoJsonSource, *, source_name: str | None = None, lonlat: bool = True) -> list[Zone]:
    """禁烧区 / 限烧区 polygons; each feature needs ``kind`` (or ``zone``/``type``/``类型``): ``no_burn``/``禁烧区`` or
    ``restricted``/``限烧区``."""
    name, features = _features(source, source_name, lonlat=lonlat)
    zones: list[Zone] = []
    for index, properties, geometry in features:
        raw = _text(properties, "kind", "zone", "type", "类型")
        if raw is None:
            raise GeometryInputError(
                "zone without a kind (no_burn/禁烧区 or restricted/限烧区)", source_name=name, feature=index
            )
        try:
            kind = ZoneKind.parse(raw)
        except ValueError as exc:
            raise GeometryInputError(str(exc), source_name=name, feature=index) from None
        zone_id = _text(properties, "zone_id", "id", "code") or f"zone-{index}"
        zones.append(Zone(zone_id, kind, _text(properties, "name", "名称") or "", geometry))
    return zones


def read_permits_geojson(
    source: GeoJsonSource, *, source_name: str | None = None, lonlat: bool = True
) -> list[BurnPermit]:
    """Burn permits: polygons with ``start`` and ``end`` (or ``start_utc``/``end_utc``, ``valid_from``/``valid_to``)
    as ISO 8601 times *with* an offset (``2025-04-23T08:00+08:00``); a time without one is refused rather than
    guessed. ``lonlat``: as for :func:`read_zones_geojson`."""
    name, features = _features(source, source_name, lonlat=lonlat)
    permits: list[BurnPermit] = []
    for index, properties, geometry in features:
        times: list[datetime] = []
        for field, alias in (("start", "valid_from"), ("end", "valid_to")):
            raw = _text(properties, field, f"{field}_utc", alias)
            if raw is None:
                raise GeometryInputError(f"permit without {field}", source_name=name, feature=index)
            try:
                value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise GeometryInputError(
                    f"{field} is not an ISO 8601 time: {raw[:40]!r}", source_name=name, feature=index
                ) from None
            if value.utcoffset() is None:
                raise GeometryInputError(f"{field} {raw!r} has no UTC offset", source_name=name, feature=index)
            times.append(value.astimezone(UTC))
        permit_id = _text(properties, "permit_id", "id", "code") or f"permit-{index}"
        try:
            permits.append(BurnPermit(permit_id, geometry, times[0], times[1], _text(properties, "note", "备注") or ""))
        except ValueError as exc:
            raise GeometryInputError(str(exc), source_name=name, feature=index) from None
    return permits


def read_cropland_geojson(
    source: GeoJsonSource, *, source_name: str | None = None, lonlat: bool = True
) -> list[Polygonal]:
    """Cropland polygons (三调 耕地 parcels) for the ``non_crop`` rule: every feature's polygon, attributes ignored
    (export only the cropland classes). ``lonlat``: as for :func:`read_zones_geojson`."""
    _, features = _features(source, source_name, lonlat=lonlat)
    return [geometry for _, _, geometry in features]


def read_coverage_geojson(source: GeoJsonSource, *, source_name: str | None = None) -> list[Polygonal]:
    """Coverage polygons (the monitored area)."""
    _, features = _features(source, source_name)
    return [geometry for _, _, geometry in features]
