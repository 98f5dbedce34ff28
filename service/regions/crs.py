"""Coordinate reference systems used for Chinese boundary data, and conversion to WGS-84.

Everything strawfire stores is WGS-84 longitude/latitude. Boundary files arrive in one of:

* ``wgs84`` — EPSG:4326, GPS and satellite products (FIRMS).
* ``cgcs2000`` — EPSG:4490, the national geodetic datum of official GIS data. pyproj's transformation is
  applied, but PROJ knows only a "ballpark" (identity) one, so in effect CGCS2000 is taken as WGS-84. The two
  agreed to centimetres at epoch 2000.0; CGCS2000 is tied to that epoch and WGS-84 follows the plates, so they
  now differ by well under a metre (~3 cm a year around Changchun) — far below boundary-data accuracy.
* ``gcj02`` — the offset system every map sold in China must use (Amap/Gaode, Tencent, Aliyun DataV,
  Google Maps China). Around Changchun it is 300–600 m off WGS-84, which is enough to assign a fire near a
  county border to the wrong county. Converted with ``prcoords`` (the iterative "bored" inverse, ~0.1 mm).
* ``bd09`` — Baidu's further offset of GCJ-02. Converted with ``prcoords`` as well.
* ``epsg:NNNN`` — any other CRS pyproj knows, for example the CGCS2000 Gauss–Krüger zones
  (EPSG:4513–4554) that official shapefiles often use.

GCJ-02 and BD-09 are only defined inside China; outside prcoords' China box the coordinates are taken as they
are (the same convention as the map providers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import prcoords
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from service.errors import UnknownCRSError

FloatArray = NDArray[np.float64]

KNOWN_CRS_NAMES = ("wgs84", "cgcs2000", "gcj02", "bd09")
_ALIASES = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "4326": "wgs84",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "4490": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "gcj": "gcj02",
    "gcj02ll": "gcj02",  # Baidu's APIs' name (coordtype) for GCJ-02 longitude/latitude
    "amap": "gcj02",
    "gaode": "gcj02",
    "mars": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
    "bd09ll": "bd09",
    "baidu": "bd09",
}


@dataclass(frozen=True, slots=True)
class SourceCRS:
    """A parsed CRS declaration: ``name`` is one of :data:`KNOWN_CRS_NAMES` or ``epsg:NNNN``."""

    name: str

    def __str__(self) -> str:
        return self.name

    @property
    def geographic(self) -> bool:
        """Whether coordinates are longitude/latitude degrees (the named systems; an EPSG code as pyproj says)
        rather than projected metres (a CGCS2000 Gauss-Krüger zone, UTM)."""
        return self.name in KNOWN_CRS_NAMES or bool(CRS.from_user_input(self.name).is_geographic)


def parse_crs(name: str) -> SourceCRS:
    """Parse a user's CRS name (case-insensitive; ``GCJ-02``, ``epsg:4527``…); unknown names raise."""
    key = name.strip().lower().replace("_", "-")
    if key in _ALIASES:
        return SourceCRS(_ALIASES[key])
    if key.startswith("epsg:") and key[5:].isdigit():
        try:
            crs = CRS.from_user_input(key)
        except CRSError as exc:
            raise UnknownCRSError(f"unknown CRS {name!r}: pyproj does not know it ({exc})") from exc
        if not (crs.is_geographic or crs.is_projected):
            # A vertical or geocentric CRS converted x/y into nonsense that failed later as a bad polygon.
            raise UnknownCRSError(
                f"{name} ({crs.name}) is not a longitude/latitude or projected CRS: boundaries need a horizontal one"
            )
        return SourceCRS(key)
    raise UnknownCRSError(f"unknown CRS {name!r}; use one of {', '.join(KNOWN_CRS_NAMES)} or epsg:NNNN")


@lru_cache(maxsize=32)
def _transformer_to_wgs84(epsg: str) -> Transformer:
    return Transformer.from_crs(epsg, "EPSG:4326", always_xy=True)


def _prcoords_vectorised(
    convert: Callable[..., prcoords.Coords], lon: FloatArray, lat: FloatArray
) -> tuple[FloatArray, FloatArray]:
    out_lon = lon.copy()
    out_lat = lat.copy()
    for i in range(lon.size):
        point = prcoords.Coords(float(lat[i]), float(lon[i]))
        # Outside China the offset systems are the identity; checking here avoids prcoords' warning.
        if prcoords.sanity_in_china_p(point):
            converted = convert(point, False)
            out_lat[i], out_lon[i] = converted.lat, converted.lon
    return out_lon, out_lat


def to_wgs84_xy(crs: SourceCRS, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Convert coordinate arrays (x = lon/easting, y = lat/northing) in ``crs`` to WGS-84 lon, lat."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if crs.name == "wgs84":
        return x, y
    if crs.name == "gcj02":
        return _prcoords_vectorised(prcoords.gcj_wgs_bored, x, y)
    if crs.name == "bd09":
        return _prcoords_vectorised(prcoords.bd_wgs_bored, x, y)
    epsg = "EPSG:4490" if crs.name == "cgcs2000" else crs.name.upper()
    lon, lat = _transformer_to_wgs84(epsg).transform(x, y)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def geometry_to_wgs84(crs: SourceCRS, geometry: shapely.Geometry) -> shapely.Geometry:
    """Return ``geometry`` with every vertex converted from ``crs`` to WGS-84 (holes and parts kept)."""
    if crs.name == "wgs84":
        return geometry

    def convert(coords: FloatArray) -> FloatArray:
        lon, lat = to_wgs84_xy(crs, coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geometry, convert)


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """WGS-84 → GCJ-02 (the form phone maps in China expect), as (lon, lat)."""
    point = prcoords.Coords(lat, lon)
    if not prcoords.sanity_in_china_p(point):
        return lon, lat
    converted = prcoords.wgs_gcj(point, False)
    return converted.lon, converted.lat
