"""The normalised satellite hotspot record, and the vocabulary that normalises FIRMS values into it.

FIRMS publishes the same physical quantities under different names and encodings depending on the instrument,
the product and the endpoint (``brightness`` vs ``bright_ti4``, confidence ``0-100`` vs ``l/n/h``, satellite
``1`` vs ``N20``, ``acq_time`` ``5`` meaning 00:05). Everything downstream — static-source screening,
clustering, township assignment, penalty statistics — must see one shape, so the translation lives here, once.

Why :class:`Hotspot` is a ``NamedTuple`` and not a frozen dataclass: a FIRMS global day is ~16,000 MODIS or
hundreds of thousands of VIIRS rows, and a frozen slotted dataclass spends ~1.8 µs per instance in its
generated ``__init__`` (one ``object.__setattr__`` per field) — over three times what ``pandas.read_csv`` needs for
a whole row. A tuple subclass is as immutable and typed, and the reader builds it with the C-level
``tuple.__new__`` (~0.3 µs). Constructing a ``Hotspot`` by hand goes through :meth:`Hotspot.__new__`, which
validates every field; the reader checks the same rules column-wise and skips the per-instance check.
``_make`` and ``_replace``, inherited from ``NamedTuple``, skip it too: do not use them on untrusted values.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from pyproj import Geod
    from shapely import Polygon

__all__ = [
    "ACQ_CLOCK_SKEW",
    "BRIGHTNESS_RANGE_K",
    "CONFIDENCE_CLASS_LOWER_BOUNDS",
    "EARLIEST_ACQ_DATE",
    "FRP_RANGE_MW",
    "KEY_DECIMALS",
    "SCAN_TRACK_RANGE_KM",
    "VIIRS_CONFIDENCE",
    "Box",
    "ConfidenceClass",
    "DayNight",
    "FireType",
    "Hotspot",
    "Instrument",
    "Product",
    "Satellite",
    "acq_datetime",
    "confidence_class",
    "footprint_polygons",
    "is_nrt_version",
    "normalise_confidence",
    "parse_acq_date",
    "parse_acq_time",
    "reaching_box",
]


class Instrument(StrEnum):
    """The sensor that made the detection."""

    MODIS = "MODIS"
    VIIRS = "VIIRS"


class Satellite(StrEnum):
    """The platform, under one canonical name whatever code the file used (see :meth:`parse`)."""

    TERRA = "Terra"
    AQUA = "Aqua"
    SNPP = "S-NPP"
    NOAA20 = "NOAA-20"
    NOAA21 = "NOAA-21"

    @property
    def instrument(self) -> Instrument:
        """The fire-detecting instrument FIRMS reports for this platform."""
        return _SATELLITE_INSTRUMENT[self]

    @classmethod
    def parse(cls, raw: str) -> Satellite:
        """Map any published spelling of a platform to its member; raise ``ValueError`` for anything else.

        FIRMS is inconsistent across endpoints and years: MODIS uses ``T``/``A`` or ``Terra``/``Aqua``; S-NPP
        is ``N`` (older tools write ``NPP`` or ``Suomi NPP``); NOAA-20 is ``N20`` in the area API and ``1`` in
        other outputs (it was launched as JPSS-1, ``J1``); NOAA-21 is ``N21`` and possibly ``2`` (JPSS-2).
        Matching ignores case and treats spaces, hyphens and underscores alike.
        """
        norm = raw.strip().upper().replace("_", "-").replace(" ", "-")
        try:
            return _SATELLITE_ALIASES[norm]
        except KeyError:
            raise ValueError(f"unknown satellite code {raw.strip()[:20]!r}") from None


_SATELLITE_INSTRUMENT: Final[dict[Satellite, Instrument]] = {
    Satellite.TERRA: Instrument.MODIS,
    Satellite.AQUA: Instrument.MODIS,
    Satellite.SNPP: Instrument.VIIRS,
    Satellite.NOAA20: Instrument.VIIRS,
    Satellite.NOAA21: Instrument.VIIRS,
}

_SATELLITE_ALIASES: Final[dict[str, Satellite]] = {
    **dict.fromkeys(("T", "TERRA"), Satellite.TERRA),
    **dict.fromkeys(("A", "AQUA"), Satellite.AQUA),
    **dict.fromkeys(("N", "NPP", "SNPP", "S-NPP", "SUOMI-NPP", "SUOMINPP"), Satellite.SNPP),
    **dict.fromkeys(("1", "N20", "NOAA-20", "NOAA20", "J1", "JPSS-1", "JPSS1"), Satellite.NOAA20),
    **dict.fromkeys(("2", "N21", "NOAA-21", "NOAA21", "J2", "JPSS-2", "JPSS2"), Satellite.NOAA21),
}


class Product(StrEnum):
    """A FIRMS product, spelled as the API's ``SOURCE`` path element.

    ``NRT`` products are the near-real-time feeds (LANCE, <= 3 h); ``SP`` ("standard processing") products
    replace them weeks to months later and carry the ``type`` column. ``VIIRS_NOAA21_SP`` is not among the API
    sources listed in the project reference; it exists here so that a standard-processing NOAA-21 file can be
    labelled, and a fetcher must not request it before that source is confirmed.
    """

    MODIS_NRT = "MODIS_NRT"
    MODIS_SP = "MODIS_SP"
    VIIRS_SNPP_NRT = "VIIRS_SNPP_NRT"
    VIIRS_SNPP_SP = "VIIRS_SNPP_SP"
    VIIRS_NOAA20_NRT = "VIIRS_NOAA20_NRT"
    VIIRS_NOAA20_SP = "VIIRS_NOAA20_SP"
    VIIRS_NOAA21_NRT = "VIIRS_NOAA21_NRT"
    VIIRS_NOAA21_SP = "VIIRS_NOAA21_SP"

    @property
    def instrument(self) -> Instrument:
        """MODIS or VIIRS."""
        return Instrument.MODIS if self.value.startswith("MODIS") else Instrument.VIIRS

    @property
    def is_nrt(self) -> bool:
        """True for the near-real-time feeds, False for standard processing."""
        return self.value.endswith("_NRT")

    @property
    def satellites(self) -> frozenset[Satellite]:
        """Platforms whose detections this product contains (MODIS products mix Terra and Aqua)."""
        return _PRODUCT_SATELLITES[self]

    @classmethod
    def for_detection(cls, satellite: Satellite, *, nrt: bool) -> Product:
        """The product a detection from ``satellite`` at this processing level belongs to."""
        return _DETECTION_PRODUCT[(satellite, nrt)]


_PRODUCT_SATELLITES: Final[dict[Product, frozenset[Satellite]]] = {
    Product.MODIS_NRT: frozenset({Satellite.TERRA, Satellite.AQUA}),
    Product.MODIS_SP: frozenset({Satellite.TERRA, Satellite.AQUA}),
    Product.VIIRS_SNPP_NRT: frozenset({Satellite.SNPP}),
    Product.VIIRS_SNPP_SP: frozenset({Satellite.SNPP}),
    Product.VIIRS_NOAA20_NRT: frozenset({Satellite.NOAA20}),
    Product.VIIRS_NOAA20_SP: frozenset({Satellite.NOAA20}),
    Product.VIIRS_NOAA21_NRT: frozenset({Satellite.NOAA21}),
    Product.VIIRS_NOAA21_SP: frozenset({Satellite.NOAA21}),
}

_DETECTION_PRODUCT: Final[dict[tuple[Satellite, bool], Product]] = {
    (sat, product.is_nrt): product for product, sats in _PRODUCT_SATELLITES.items() for sat in sats
}


class DayNight(StrEnum):
    """FIRMS ``daynight``: whether the detection was made in daylight."""

    DAY = "D"
    NIGHT = "N"


class ConfidenceClass(StrEnum):
    """The three detection-confidence classes FIRMS uses for VIIRS and defines for MODIS percentages."""

    LOW = "low"
    NOMINAL = "nominal"
    HIGH = "high"


class FireType(IntEnum):
    """Standard-processing ``type`` codes (the reference marks them unverified against the primary source).

    :attr:`Hotspot.fire_type` keeps the integer as published, so an undocumented code survives ingestion
    instead of being dropped; compare it with these members.
    """

    PRESUMED_VEGETATION = 0
    ACTIVE_VOLCANO = 1
    OTHER_STATIC_LAND = 2
    OFFSHORE = 3


CONFIDENCE_CLASS_LOWER_BOUNDS: Final[tuple[tuple[float, ConfidenceClass], ...]] = (
    (0.80, ConfidenceClass.HIGH),
    (0.30, ConfidenceClass.NOMINAL),
    (0.0, ConfidenceClass.LOW),
)
"""MODIS C6.1 class boundaries 0-29 / 30-79 / 80-100 % as fractions (reference §3.4, unverified there)."""

VIIRS_CONFIDENCE: Final[dict[ConfidenceClass, float]] = {
    ConfidenceClass.LOW: 0.15,
    ConfidenceClass.NOMINAL: 0.55,
    ConfidenceClass.HIGH: 0.90,
}
"""Normalised confidence of each VIIRS class: the midpoint of the matching MODIS class band.

Midpoints rather than round numbers such as 0.3/0.6/0.9 because one threshold must mean the same thing for
both instruments: with low = 0.3 a filter ``confidence >= 0.3`` ("drop MODIS low", whose band ends at 29 %)
would keep VIIRS *low* pixels, which are the sun-glint, weak-anomaly ones the reference says to distrust.
With midpoints, :func:`confidence_class` of the normalised value gives back the original VIIRS class.
"""

_VIIRS_CONFIDENCE_CODES: Final[dict[str, ConfidenceClass]] = {
    "L": ConfidenceClass.LOW,
    "LOW": ConfidenceClass.LOW,
    "N": ConfidenceClass.NOMINAL,
    "NOMINAL": ConfidenceClass.NOMINAL,
    "H": ConfidenceClass.HIGH,
    "HIGH": ConfidenceClass.HIGH,
}

KEY_DECIMALS: Final[dict[Instrument, int]] = {Instrument.MODIS: 5, Instrument.VIIRS: 5}
"""Decimal places of latitude/longitude in the natural key: what current FIRMS CSVs publish for each
instrument. Older MODIS files with 3-4 decimals still map to one key per detection."""


def confidence_class(value: float) -> ConfidenceClass:
    """Class of a normalised confidence in [0, 1], using the MODIS class boundaries."""
    for bound, cls in CONFIDENCE_CLASS_LOWER_BOUNDS:
        if value >= bound:
            return cls
    raise ValueError(f"confidence {value!r} is below 0")


def normalise_confidence(raw: str, instrument: Instrument) -> float:
    """Map a FIRMS confidence string to [0, 1]; raise ``ValueError`` if it is not valid for ``instrument``.

    MODIS publishes an integer percentage; VIIRS publishes ``l``/``n``/``h`` (API) or ``low``/``nominal``/
    ``high`` (7-day text files), mapped through :data:`VIIRS_CONFIDENCE`.
    """
    text = raw.strip()
    if instrument is Instrument.VIIRS:
        cls = _VIIRS_CONFIDENCE_CODES.get(text.upper())
        if cls is None:
            raise ValueError(f"VIIRS confidence must be l/n/h or low/nominal/high, not {text[:20]!r}")
        return VIIRS_CONFIDENCE[cls]
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"MODIS confidence must be an integer percentage, not {text[:20]!r}")
    pct = int(text)
    if pct > 100:
        raise ValueError(f"MODIS confidence {pct} is above 100")
    return pct / 100.0


def is_nrt_version(version: str) -> bool:
    """True when a FIRMS ``version`` marks near-real-time data (``6.1NRT``, ``2.0NRT``, US ``URT``/``RT``).

    Standard-processing versions are bare collection numbers (``6.1``, ``6.03``, ``2``, ``1``). URT and RT
    detections are superseded by NRT for the same pass, so they share the NRT level rather than forming a
    third.
    """
    return version.strip().upper().endswith("RT")


def parse_acq_date(text: str) -> date:
    """Read a strict ``YYYY-MM-DD`` calendar date; raise ``ValueError`` otherwise.

    Strict on purpose: ``date.fromisoformat`` also accepts ``20250423`` and week dates, which are not FIRMS
    forms and would hide a shifted column.
    """
    t = text.strip()
    y, m, d = t[:4], t[5:7], t[8:]
    if len(t) != 10 or t[4] != "-" or t[7] != "-" or not (t.isascii() and (y + m + d).isdigit()):
        raise ValueError(f"acq_date must be YYYY-MM-DD, not {t[:20]!r}")
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise ValueError(f"acq_date {t!r} is not a calendar date") from None


def parse_acq_time(text: str) -> tuple[int, int]:
    """Read FIRMS ``acq_time`` (UTC ``HHMM`` *without* zero padding) as (hour, minute).

    ``5`` is 00:05, ``45`` is 00:45, ``123`` is 01:23, ``0009`` and ``9`` are both 00:09. Anything that is not
    1-4 ASCII digits, or gives an hour above 23 or a minute above 59, raises ``ValueError``.
    """
    t = text.strip()
    if not (0 < len(t) <= 4 and t.isascii() and t.isdigit()):
        raise ValueError(f"acq_time must be 1-4 digits HHMM, not {t[:20]!r}")
    hhmm = int(t)
    hour, minute = divmod(hhmm, 100)
    if hour > 23 or minute > 59:
        raise ValueError(f"acq_time {t!r} is not a valid HHMM time")
    return hour, minute


def acq_datetime(acq_date: str, acq_time: str) -> datetime:
    """Combine FIRMS ``acq_date`` and ``acq_time`` into a tz-aware UTC datetime (both are UTC in FIRMS)."""
    day = parse_acq_date(acq_date)
    hour, minute = parse_acq_time(acq_time)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


EARLIEST_ACQ_DATE: Final = date(2000, 1, 1)
"""No FIRMS row can be older: MODIS on Terra, the first instrument FIRMS carries, began observing in 2000 (the
MODIS archive starts on 2000-11-01). An earlier ``acq_date`` (1970-01-01 from a zeroed clock, 1900-01-00 from a
spreadsheet) is a broken row, not an old fire."""

ACQ_CLOCK_SKEW: Final = timedelta(minutes=10)
"""How far ahead of the reader's clock an acquisition time may be: the 10 minutes the service allows a phone's
clock on photos and patrol reports. A later row cannot have been observed yet (a wrong date, a clock error where
the file was made) and is refused; a fire of 2099 would be counted and escalated like one of today."""

SCAN_TRACK_RANGE_KM: Final[tuple[float, float]] = (0.1, 20.0)
"""Plausible pixel sizes: VIIRS I-band is 0.375 km at nadir, MODIS ~4.8 km along-scan at the swath edge."""

BRIGHTNESS_RANGE_K: Final[tuple[float, float]] = (100.0, 1000.0)
"""Loose physical bounds that reject Celsius values, zeros and fill values without judging fires."""

FRP_RANGE_MW: Final[tuple[float, float]] = (0.0, 1.0e6)


class _HotspotFields(NamedTuple):
    product: Product
    satellite: Satellite
    instrument: Instrument
    acq_utc: datetime
    latitude: float
    longitude: float
    scan_km: float
    track_km: float
    bright_mir_k: float
    bright_tir_k: float
    frp_mw: float | None
    confidence: float
    confidence_raw: str
    daynight: DayNight
    version: str
    fire_type: int | None = None
    country_id: str | None = None


class Hotspot(_HotspotFields):
    """One satellite fire detection (a pixel), normalised across FIRMS products. Immutable and hashable.

    Fields:
        product: the FIRMS product (``SOURCE``) the detection belongs to.
        satellite, instrument: platform and sensor.
        acq_utc: acquisition time, tz-aware UTC, minute precision (all FIRMS gives).
        latitude, longitude: centre of the fire *pixel*, WGS-84 degrees; not the position of the fire.
        scan_km, track_km: pixel size along scan (across-track) and along track; grows toward the swath edge.
        bright_mir_k: mid-infrared brightness temperature, K (MODIS ``brightness``, channel 21/22; VIIRS
            ``bright_ti4``, band I-4).
        bright_tir_k: thermal-infrared brightness temperature, K (MODIS ``bright_t31``; VIIRS ``bright_ti5``).
        frp_mw: fire radiative power, MW; ``None`` when FIRMS left it empty (absent is not zero).
        confidence: normalised to [0, 1] (see :func:`normalise_confidence`); ``confidence_raw`` keeps the
            published string so the mapping can be revisited without re-downloading.
        daynight: day or night detection.
        version: FIRMS collection/processing version as published (``6.1NRT``, ``2.0NRT``, ``2``...).
        fire_type: standard-processing ``type`` code (see :class:`FireType`); ``None`` in NRT files.
        country_id: ISO-3 code from the country API's leading column; ``None`` from other endpoints.
    """

    __slots__ = ()

    def __new__(
        cls,
        product: Product,
        satellite: Satellite,
        instrument: Instrument,
        acq_utc: datetime,
        latitude: float,
        longitude: float,
        scan_km: float,
        track_km: float,
        bright_mir_k: float,
        bright_tir_k: float,
        frp_mw: float | None,
        confidence: float,
        confidence_raw: str,
        daynight: DayNight,
        version: str,
        fire_type: int | None = None,
        country_id: str | None = None,
    ) -> Hotspot:
        """Build a record from values, checking the invariants the reader guarantees for its rows."""
        product, satellite = Product(product), Satellite(satellite)
        instrument, daynight = Instrument(instrument), DayNight(daynight)
        if satellite.instrument is not instrument:
            raise ValueError(f"{satellite} carries {satellite.instrument}, not {instrument}")
        if satellite not in product.satellites:
            raise ValueError(f"{product} does not contain {satellite} detections")
        if product.is_nrt != is_nrt_version(version):
            raise ValueError(f"version {version!r} does not match the processing level of {product}")
        if acq_utc.utcoffset() is None:
            raise ValueError("acq_utc must be tz-aware (FIRMS times are UTC); a naive time is ambiguous")
        _check_range("latitude", latitude, -90.0, 90.0)
        _check_range("longitude", longitude, -180.0, 180.0)
        _check_range("scan_km", scan_km, *SCAN_TRACK_RANGE_KM)
        _check_range("track_km", track_km, *SCAN_TRACK_RANGE_KM)
        _check_range("bright_mir_k", bright_mir_k, *BRIGHTNESS_RANGE_K)
        _check_range("bright_tir_k", bright_tir_k, *BRIGHTNESS_RANGE_K)
        if frp_mw is not None:
            _check_range("frp_mw", frp_mw, *FRP_RANGE_MW)
        _check_range("confidence", confidence, 0.0, 1.0)
        if fire_type is not None and fire_type < 0:
            raise ValueError(f"fire_type must be >= 0, not {fire_type}")
        return super().__new__(
            cls,
            product,
            satellite,
            instrument,
            acq_utc.astimezone(UTC),
            float(latitude),
            float(longitude),
            float(scan_km),
            float(track_km),
            float(bright_mir_k),
            float(bright_tir_k),
            None if frp_mw is None else float(frp_mw),
            float(confidence),
            confidence_raw,
            daynight,
            version,
            fire_type,
            country_id,
        )

    @property
    def is_nrt(self) -> bool:
        """True for a near-real-time detection (it may later be superseded by a standard-processing one)."""
        return self.product.is_nrt

    @property
    def confidence_class(self) -> ConfidenceClass:
        """Low / nominal / high, on the same boundaries for both instruments."""
        return confidence_class(self.confidence)

    @property
    def key(self) -> str:
        """Natural unique key: the same detection gives the same key in every file and API window.

        ``instrument|satellite|level|YYYYMMDDTHHMMZ|lat|lon`` with lat/lon as signed integers in units of
        10^-:data:`KEY_DECIMALS` degrees, e.g. ``MODIS|Terra|NRT|20250423T0050Z|+4784414|+13132410``.
        Integers, not formatted floats, so ``-0.0`` and binary rounding cannot split one detection into two
        keys.

        The level (``NRT``/``SP``) is part of the key on purpose: a standard-processing row must not silently
        overwrite the NRT row it supersedes, because counts already used for penalties must stay reproducible
        (reference §3.5). The version is *not* part of the key, so ``2.0NRT`` → ``2.1NRT`` or URT → NRT of the
        same pass is one detection.
        """
        scale = 10 ** KEY_DECIMALS[self.instrument]
        level = "NRT" if self.product.is_nrt else "SP"
        return (
            f"{self.instrument.value}|{self.satellite.value}|{level}|{self.acq_utc:%Y%m%dT%H%MZ}|"
            f"{round(self.latitude * scale):+d}|{round(self.longitude * scale):+d}"
        )

    def footprint(self, geod: Geod | None = None) -> Polygon:
        """The pixel footprint as a WGS-84 lon/lat polygon (geometry: :func:`footprint_polygons`)."""
        return footprint_polygons([self], geod)[0]


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name} {value!r} is outside [{lo:g}, {hi:g}]")


def footprint_polygons(hotspots: Sequence[Hotspot], geod: Geod | None = None) -> list[Polygon]:
    """Pixel footprints: ``scan_km`` (across-track) by ``track_km`` (along-track) quadrilaterals.

    Orientation assumption: the scan (across-track) side runs east-west and the track side north-south. FIRMS
    CSVs carry neither the scan angle nor the orbit heading, and the sun-synchronous polar orbits of Terra,
    Aqua, S-NPP and NOAA-20/21 (inclination ~98°) fly within roughly 10-15° of north-south at Changchun's
    latitude (~44° N), so the real footprint is this rectangle rotated by about that much. The true pixel is
    also not a sharp rectangle (bow-tie, triangular response), so use the polygon for overlap *fractions* and
    ambiguity, not as an exact boundary.

    Corners are placed on the ellipsoid with ``pyproj.Geod`` (WGS-84) at the geodesic distance and azimuth of
    each corner in the local east/north plane, which is exact to well under a metre at pixel scale. Longitudes
    are kept continuous across the antimeridian (a footprint there may extend beyond ±180°) rather than
    wrapped, so the polygon stays valid. Vectorised: one ``Geod.fwd`` call for all corners.
    """
    import numpy as np
    import shapely
    from pyproj import Geod

    count = len(hotspots)
    if count == 0:
        return []
    g = geod if geod is not None else Geod(ellps="WGS84")
    lon = np.fromiter((h.longitude for h in hotspots), dtype=np.float64, count=count)
    lat = np.fromiter((h.latitude for h in hotspots), dtype=np.float64, count=count)
    half_east = np.fromiter((h.scan_km for h in hotspots), dtype=np.float64, count=count) * 500.0
    half_north = np.fromiter((h.track_km for h in hotspots), dtype=np.float64, count=count) * 500.0
    # Counter-clockwise from the south-west corner, as shapely orients exteriors.
    east_sign = np.array([-1.0, 1.0, 1.0, -1.0])
    north_sign = np.array([-1.0, -1.0, 1.0, 1.0])
    dx = half_east[:, None] * east_sign
    dy = half_north[:, None] * north_sign
    azimuth = np.degrees(np.arctan2(dx, dy))
    distance = np.hypot(dx, dy)
    lon4 = np.repeat(lon, 4)
    lat4 = np.repeat(lat, 4)
    clon, clat, _ = g.fwd(lon4, lat4, azimuth.ravel(), distance.ravel())
    clon = np.asarray(clon, dtype=np.float64)
    clat = np.asarray(clat, dtype=np.float64)
    clon = lon4 + ((clon - lon4 + 180.0) % 360.0 - 180.0)
    coords = np.stack([clon.reshape(count, 4), np.asarray(clat).reshape(count, 4)], axis=-1)
    polygons: list[Polygon] = list(shapely.polygons(coords))
    return polygons


Box = tuple[float, float, float, float]
"""``(west, south, east, north)`` in WGS-84 degrees: an area rows are kept for (the readers' ``within``)."""


def reaching_box(
    latitude: Sequence[float], longitude: Sequence[float], size_km: Sequence[float], box: Box
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per pixel, whether a pixel of ``size_km`` (its larger side; ``inf`` when unknown) centred there may reach
    ``box``: its centre lies within a whole pixel size of it. A footprint's half-diagonal is at most 0.71 of that,
    so a pixel whose footprint meets the box is never refused; near a pole (where a degree of longitude is under
    ~1 km) every longitude passes, and a pixel of unknown size always does.

    The one test behind the readers' ``within`` (:func:`satellite.firms.read_firms_csv`,
    :func:`satellite.himawari.read_himawari_csv`) and screening's prefilter of footprints
    (:func:`satellite.screening.may_reach_box`): a row a reader drops is one screening finds ``outside_coverage``.
    """
    import numpy as np

    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    size = np.asarray(size_km, dtype=np.float64)
    west, south, east, north = (float(v) for v in box)
    margin_lat = size / 110.0  # a degree of latitude is 110.6-111.7 km: the lower bound errs on the wide side
    # A degree of longitude is 111.3 km × cos(latitude); near a pole there is no useful bound (cos clipped).
    cos_lat = np.cos(np.radians(np.minimum(np.abs(lat) + margin_lat, 90.0)))
    margin_lon = np.where(cos_lat < 0.01, math.inf, size / (111.0 * np.maximum(cos_lat, 0.01)))
    with np.errstate(invalid="ignore"):  # inf - inf for pixels without a size: NaN compares False, kept below
        inside = (
            (lat >= south - margin_lat)
            & (lat <= north + margin_lat)
            & (lon >= west - margin_lon)
            & (lon <= east + margin_lon)
        )
    reaching: np.ndarray[Any, np.dtype[np.bool_]] = inside | np.isinf(size)
    return reaching
