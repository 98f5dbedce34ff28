"""Satellite screening in the service: build the :class:`satellite.screening.Screener` from the deployment's data.

* **Coverage** is the imported administrative units (the coarsest level loaded), widened by the assignment
  tolerance: a hotspot nobody is responsible for is recorded but opens no incident and alerts no one. With no
  units imported a batch is refused (:func:`build_screener`): there is no coverage to test against.
* **Static heat sources** come from the history of satellite observations in the database, the FIRMS archive
  imported as history (``strawfire firms history``, table ``hotspot_history``) and the earlier days of the batch
  itself (a multi-day file or API window screens like the daily polls it stands for): a persistence map of ~1 km cells
  over the configured window, counting the cell alone or its 3 x 3 block (``screening.static_neighbourhood``);
  plus the industrial-site polygons of ``screening.sites_file``.
* **Zones and permits** (禁烧区/限烧区, 计划烧除 permits) come from ``screening.zones_file`` and
  ``screening.permits_file``, in the CRS named by ``screening.layers_crs`` (GCJ-02 map data is converted).
* **Cropland** (三调 耕地 parcels) comes from ``screening.cropland_file`` (GeoJSON, or a shapefile / zipped
  shapefile read by the region import's reader), in ``screening.cropland_crs`` (default ``layers_crs``): a
  hotspot with less than ``screening.min_cropland_fraction`` of its footprint on cropland is held as
  ``non_crop``. No file, no rule. The converted layer is cached per file version (path, size, modification time):
  a county's parcels are 10⁵ polygons, too many to read again for every batch.

Every decision is stored with its observation (``details.screening``), except for pixels far outside the coverage
(beyond its bounds plus ~5 km), which are counted in the ingest's summary (``held``, ``outside_coverage``) and not
stored (service.flows.ingest_screened says why): nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from satellite.clustering import ClusteringConfig, Detection, PriorFirePoint, cluster_fire_points
from satellite.screening import (
    PersistenceMap,
    Screener,
    ScreeningConfig,
    read_cropland_geojson,
    read_permits_geojson,
    read_sites_geojson,
    read_zones_geojson,
)
from service.config import Settings
from service.errors import ConflictError
from service.history.service import history_between
from service.incidents.tables import Observation
from service.regions.crs import geometry_to_wgs84, parse_crs
from service.regions.loader import iter_features
from service.regions.service import RegionIndexCache, units_coverage


@dataclass(frozen=True, slots=True)
class _PastHotspot:
    """A stored satellite observation, as the persistence map reads it."""

    key: str
    latitude: float
    longitude: float
    acq_utc: datetime
    frp_mw: float | None


def _converter(crs_name: str) -> Callable[[Any], Any]:
    crs = parse_crs(crs_name)
    return lambda geometry: geometry_to_wgs84(crs, geometry)


_CROPLAND_CACHE: dict[tuple[str, int, int, str], tuple[shapely.Polygon | shapely.MultiPolygon, ...]] = {}


def cropland_layer(path: Path, crs_name: str) -> tuple[shapely.Polygon | shapely.MultiPolygon, ...]:
    """The cropland polygons of a GeoJSON or (zipped) shapefile in ``crs_name``, as WGS-84; cached per file version.

    Read by :func:`satellite.screening.read_cropland_geojson` (a shapefile's features are handed to it as a
    FeatureCollection by the region import's reader), converted in one vectorised call; a parcel the conversion
    made invalid (GCJ-02's offset nudging two vertices together) is repaired, its polygonal part kept.
    """
    try:
        stat = path.stat()
        key: tuple[str, int, int, str] | None = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, crs_name)
    except OSError:
        key = None  # the reader below says what is wrong with the path
    if key is not None and key in _CROPLAND_CACHE:
        return _CROPLAND_CACHE[key]
    crs = parse_crs(crs_name)
    source: Any = path
    if path.suffix.lower() in (".shp", ".zip"):
        source = {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": {}, "geometry": geometry}
                for _, _, geometry in iter_features(path)
                if geometry is not None  # a NULL shape: a deleted record
            ],
        }
    read = read_cropland_geojson(source, source_name=path.name, lonlat=crs.geographic)
    polygons = np.empty(len(read), dtype=object)
    polygons[:] = read
    polygons = np.asarray(geometry_to_wgs84(crs, polygons), dtype=object)  # shapely.transform takes arrays
    for i in np.flatnonzero(~shapely.is_valid(polygons)).tolist():
        parts = [
            part
            for part in shapely.get_parts(shapely.make_valid(polygons[i]))
            if isinstance(part, shapely.Polygon | shapely.MultiPolygon) and not part.is_empty
        ]
        polygons[i] = shapely.union_all(parts) if parts else None
    layer = tuple(
        p for p in polygons.tolist() if isinstance(p, shapely.Polygon | shapely.MultiPolygon) and not p.is_empty
    )
    if key is not None:
        _CROPLAND_CACHE.clear()  # one deployment, one layer: keep the latest version only
        _CROPLAND_CACHE[key] = layer
    return layer


def _priors(session: Session, settings: Settings, first: datetime, last: datetime) -> list[PriorFirePoint]:
    """Stored fire points within the repeat window of the batch, before *or after* it (their representatives'
    stored details): the repeat test is symmetric in time, because files arrive out of order."""
    window = timedelta(hours=settings.clustering.repeat_window_h)
    rows = session.execute(
        select(Observation.latitude, Observation.longitude, Observation.observed_at, Observation.details).where(
            Observation.kind == "satellite",
            Observation.observed_at > first - window,
            Observation.observed_at < last + window,
        )
    ).all()
    priors = []
    for latitude, longitude, observed_at, details in rows:
        point = json.loads(details).get("fire_point")
        if point and point.get("representative"):
            priors.append(
                PriorFirePoint(
                    point["key"],
                    latitude,
                    longitude,
                    observed_at,
                    point.get("pass_id"),
                    float(point.get("pixel_km", 0.0)),
                )
            )
    return priors


def fire_points(session: Session, hotspots: Sequence[Detection], settings: Settings) -> dict[str, dict[str, Any]]:
    """Cluster accepted hotspots into fire points; per hotspot key, what it belongs to (stored with it)."""
    if not hotspots:
        return {}
    config = settings.clustering
    result = cluster_fire_points(
        hotspots,
        ClusteringConfig(
            link_km=config.link_km,
            split_km=config.split_km,
            repeat_km=config.repeat_km,
            repeat_window=timedelta(hours=config.repeat_window_h),
        ),
        history=_priors(session, settings, min(h.acq_utc for h in hotspots), max(h.acq_utc for h in hotspots)),
    )
    out: dict[str, dict[str, Any]] = {}
    for point in result.fire_points:
        for member in point.members:
            out[member.key] = {
                "key": point.key,
                "representative": member.key == point.representative.key,
                "members": len(point.members),
                "extent_km": round(point.extent_km, 3),
                "pass_id": point.pass_id,
                "pixel_km": point.pixel_km,
                "repeat_of": point.repeat_of.key if point.repeat_of else None,
            }
    return out


def build_screener(
    session: Session, settings: Settings, hotspots: Sequence[Detection], indexes: RegionIndexCache
) -> Screener:
    """A screener for a batch: stored and archive history before it plus the batch itself (the persistence map
    never counts a hotspot's own local day), layers from the configured files.

    Raises:
        ConflictError: no administrative units are imported (and ``screening.coverage_from_regions`` is on, the
            default). Every satellite source (file, upload, poll, back-fill, Sentinel scan, Himawari) is screened
            here, so this is where they all refuse: with no units the coverage test was skipped, and a global
            FIRMS day (16,017 rows) became 8,673 incidents with no township, which importing the regions later
            did not fix. The request is fine and the deployment is not ready, hence a conflict (HTTP 409);
            ``firms poll`` likewise refuses to poll without regions or ``firms.bbox``. Setting
            ``coverage_from_regions = false`` is the deliberate way to ingest every hotspot, units or not.
    """
    config = settings.screening
    coverage = units_coverage(session, indexes) if config.coverage_from_regions else None
    if config.coverage_from_regions and coverage is None:
        raise ConflictError(
            "no administrative units are imported at township or county level (those fires are assigned to): "
            "satellite fire points are ingested for those units only (without them every hotspot in the data "
            "would become an incident no township is responsible for); run `strawfire regions import` first"
        )
    persistence = PersistenceMap()
    times = [h.acq_utc for h in hotspots]
    if times:
        since = min(times) - timedelta(days=config.static_window_days + 1)
        rows = session.execute(
            select(
                Observation.source_key,
                Observation.latitude,
                Observation.longitude,
                Observation.observed_at,
                Observation.frp_mw,
            ).where(
                Observation.kind == "satellite", Observation.observed_at >= since, Observation.observed_at < max(times)
            )
        ).all()
        persistence.add(_PastHotspot(*row) for row in rows)
        # Archive pixels imported as history (`strawfire firms history`): the same window, the same local days.
        persistence.add(
            _PastHotspot(key, latitude, longitude, acq_utc, None)
            for key, latitude, longitude, acq_utc in history_between(session, since, max(times))
        )
        # And the batch itself: a hotspot's earlier days in the same file or API window are history for it as much
        # as stored ones (the map never counts a hotspot's own day), so one 12-day file is screened like 12 polls.
        persistence.add(hotspots)
    convert = _converter(config.layers_crs)
    # A projected file (a CGCS2000 Gauss-Krüger zone) is in metres: ranges are checked after conversion, not before.
    lonlat = parse_crs(config.layers_crs).geographic
    sites = (
        [replace(x, geometry=convert(x.geometry)) for x in read_sites_geojson(config.sites_file, lonlat=lonlat)]
        if config.sites_file
        else []
    )
    zones = (
        [replace(x, geometry=convert(x.geometry)) for x in read_zones_geojson(config.zones_file, lonlat=lonlat)]
        if config.zones_file
        else []
    )
    permits = (
        [replace(x, geometry=convert(x.geometry)) for x in read_permits_geojson(config.permits_file, lonlat=lonlat)]
        if config.permits_file
        else []
    )
    cropland = (
        cropland_layer(config.cropland_file, config.cropland_crs or config.layers_crs) if config.cropland_file else None
    )
    return Screener(
        ScreeningConfig(
            static_min_days=config.static_min_days,
            static_window_days=config.static_window_days,
            static_neighbourhood=config.static_neighbourhood,
            min_confidence=config.min_confidence,
            min_cropland_fraction=config.min_cropland_fraction,
        ),
        persistence=persistence,
        sites=sites,
        zones=zones,
        permits=permits,
        coverage=coverage,
        cropland=cropland,
    )
