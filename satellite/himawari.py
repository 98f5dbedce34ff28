"""Read the JAXA Himawari-8/9 AHI L2 wildfire product (WLF: 10-minute, 0.02° ≈ 2 km) into typed records.

Format (JAXA ``README_Himawari_L2WLF.txt`` v1.00, summarised in the project reference, satellite.md §6.6):

* file name ``Hnn_YYYYMMDD_hhmm_L2WLFVER_FLDK.xxxxx_yyyyy.csv`` — ``nn`` 08 or 09 (the satellite), the start
  of the 10-minute observation ("timeline"), the product version, pixel and line counts;
* two header lines starting with ``#``: the first gives the acquisition (timeline) and processing times in UTC
  (``# 2025 12  9 19  0 UTC  2025 12  9 19 30 UTC``), the second the short names of the columns;
* one row per fire grid cell: ``ID`` (fire grid), ``Date`` — year, month, day and ``hhmn`` UTC as *four*
  comma-separated values —, ``Lat``/``Lon`` (centre of the 0.02° cell), ``Area`` (km² of the cell),
  ``Volcano`` (volcanoes in the surrounding 3 × 3 cells), ``Level`` (1 cold, 2 smouldering, 3 flaming),
  ``Reliability`` (1 low, 3 normal, 5 high; JAXA rates "frequently detected hot spots from economic or human
  activity" low), ``FRP``, ``QF`` (0 normal, 1 3.9 µm saturated, 2 low confidence) and ``HC`` (the ID of the
  hot centre of the contiguous cluster the cell belongs to).

Published files spell the date columns out (``# ID,Year,Month,Day,Time(UTC),Lat,Lon,Area(km^2),Volcano,Level,
Reliability,FRP(Wm^-2),QF,Hot(ID)``), the README names them ``Date``. The reader is **header-driven**: it maps
either spelling (units in parentheses ignored, ``HC``/``Hot(ID)`` alike) and finds every column by name, so a
reordered or extended header still reads. Rows are checked one by one; a malformed row is reported with its line
and skipped, never fatal.

Record: :class:`HimawariHotspot`, a *sibling* of :class:`satellite.hotspot.Hotspot`, not a ``Hotspot``. AHI gives
no brightness temperatures and no scan/track geometry, and its reliability and fire level have no FIRMS
equivalent; filling ``Hotspot``'s brightness fields with invented values would let a downstream rule (the
glitch filter, for one) act on data that does not exist. The two share what screening, clustering and
assignment read — ``key``, ``latitude``, ``longitude``, ``acq_utc``, ``frp_mw``, ``confidence``,
``confidence_raw``, ``scan_km``/``track_km`` and ``footprint()`` — so those modules take either.

FRP unit: the L2 README and the column header say W m⁻², while the L3 README, whose values are aggregated from
the same retrievals, gives FRP per grid cell in MW; the published magnitudes (0.5-30 for small fires) fit MW per
cell. The value is kept exactly as published in :attr:`HimawariHotspot.frp_mw` and is only used to *rank*
pixels (the brightest pixel locates a fire point); do not add it to FIRMS FRP until JAXA confirms the unit.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, NamedTuple, TypeVar

from satellite.errors import HimawariFormatError
from satellite.firms import RejectedRow, compressed_input
from satellite.hotspot import ACQ_CLOCK_SKEW, VIIRS_CONFIDENCE, Box, ConfidenceClass, parse_acq_time, reaching_box

if TYPE_CHECKING:
    from shapely import Polygon

__all__ = [
    "COLUMNS",
    "GRID_DEG",
    "INSTRUMENT",
    "OBSERVATION_MINUTES",
    "RELIABILITY_CONFIDENCE",
    "FireLevel",
    "HimawariFileName",
    "HimawariHotspot",
    "HimawariReadResult",
    "HimawariSatellite",
    "QualityFlag",
    "Reliability",
    "in_full_disk",
    "parse_himawari_filename",
    "read_himawari_csv",
]

INSTRUMENT: Final = "AHI"
GRID_DEG: Final = 0.02
"""Size of the product's latitude/longitude grid cell."""

OBSERVATION_MINUTES: Final = 10
"""A full-disk observation takes 10 minutes; each row's time lies within the file's 10-minute timeline."""

KM_PER_DEG_LAT: Final = 111.2
"""Mean length of one degree of latitude (the grid-cell size is for clustering radii and footprints, where a
0.5 % ellipsoid correction does not matter)."""

_KEY_SCALE: Final = 1000
"""Lat/lon in the key as integer thousandths of a degree: the product publishes two decimals (0.02° grid)."""


class HimawariSatellite(StrEnum):
    """The geostationary platform (from the file name's ``Hnn``)."""

    HIMAWARI_8 = "Himawari-8"
    HIMAWARI_9 = "Himawari-9"


_SATELLITE_NUMBERS: Final[dict[str, HimawariSatellite]] = {
    "08": HimawariSatellite.HIMAWARI_8,
    "09": HimawariSatellite.HIMAWARI_9,
}


class FireLevel(IntEnum):
    """``Level``: the fire's state as JAXA classifies it."""

    COLD = 1
    SMOULDERING = 2
    FLAMING = 3


class Reliability(IntEnum):
    """``Reliability`` of the detection. Codes are 1/3/5, not 1/2/3."""

    LOW = 1
    NORMAL = 3
    HIGH = 5


class QualityFlag(IntEnum):
    """``QF`` of the FRP retrieval."""

    NORMAL = 0
    SATURATED = 1
    """The 3.9 µm channel saturated: the FRP is a lower bound."""
    LOW_CONFIDENCE = 2


RELIABILITY_CONFIDENCE: Final[dict[Reliability, float]] = {
    Reliability.LOW: VIIRS_CONFIDENCE[ConfidenceClass.LOW],
    Reliability.NORMAL: VIIRS_CONFIDENCE[ConfidenceClass.NOMINAL],
    Reliability.HIGH: VIIRS_CONFIDENCE[ConfidenceClass.HIGH],
}
"""Normalised confidence of each reliability code: the same three values FIRMS's VIIRS classes map to, so one
``confidence >= x`` threshold treats low/normal/high alike across products."""

COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "year",
    "month",
    "day",
    "time",
    "lat",
    "lon",
    "area",
    "volcano",
    "level",
    "reliability",
    "frp",
    "qf",
    "hc",
)
"""Canonical column names, in the published order. ``date`` in a header stands for year, month, day, time."""

_ALIASES: Final[dict[str, str]] = {
    "id": "id",
    "fireid": "id",
    "year": "year",
    "yyyy": "year",
    "month": "month",
    "mm": "month",
    "day": "day",
    "dd": "day",
    "time": "time",
    "hhmn": "time",
    "hhmm": "time",
    "lat": "lat",
    "latitude": "lat",
    "lon": "lon",
    "longitude": "lon",
    "area": "area",
    "volcano": "volcano",
    "level": "level",
    "reliability": "reliability",
    "frp": "frp",
    "qf": "qf",
    "hc": "hc",
    "hot": "hc",
    "hotid": "hc",
    "hotcenter": "hc",
    "hotcentre": "hc",
}

_MAX_TEXT_IN_REPORT: Final = 200

_Code = TypeVar("_Code", bound=IntEnum)

_YEARS: Final = (2015, 2100)
"""Himawari-8 data start in 2015."""
_IDS: Final = (0, 10**9)
_FRP_RANGE: Final = (0.0, 1.0e6)


class _HimawariFields(NamedTuple):
    satellite: HimawariSatellite | None
    acq_utc: datetime
    latitude: float
    longitude: float
    area_km2: float
    volcano: int
    level: FireLevel
    reliability: Reliability
    frp_mw: float
    qf: QualityFlag
    grid_id: int
    hot_centre_id: int
    timeline_utc: datetime | None = None


class HimawariHotspot(_HimawariFields):
    """One AHI fire grid cell of the L2 wildfire product. Immutable and hashable.

    Fields:
        satellite: Himawari-8 or -9, or ``None`` when neither the file name nor the caller said.
        acq_utc: observation time of the row, tz-aware UTC, minute precision.
        latitude, longitude: centre of the 0.02° cell, WGS-84 degrees.
        area_km2: area of the cell.
        volcano: volcanoes within the 3 × 3 cells around it (> 0: a volcano may be the heat source).
        level, reliability, qf: JAXA's classification codes (see the enums).
        frp_mw: FRP as published; see the module docstring for the unit question.
        grid_id: ``ID``, the row's fire-grid number in its file (not stable across files).
        hot_centre_id: ``HC``, the ``grid_id`` of the hot centre of its contiguous cluster in the same file.
        timeline_utc: start of the file's 10-minute observation, when known.
    """

    __slots__ = ()

    def __new__(
        cls,
        satellite: HimawariSatellite | None,
        acq_utc: datetime,
        latitude: float,
        longitude: float,
        area_km2: float,
        volcano: int,
        level: FireLevel,
        reliability: Reliability,
        frp_mw: float,
        qf: QualityFlag,
        grid_id: int,
        hot_centre_id: int,
        timeline_utc: datetime | None = None,
    ) -> HimawariHotspot:
        """Build a record from values, checking what the reader checks for its rows."""
        if acq_utc.utcoffset() is None or (timeline_utc is not None and timeline_utc.utcoffset() is None):
            raise ValueError("times must be tz-aware UTC; a naive time is ambiguous")
        if not in_full_disk(latitude, longitude):
            raise ValueError(f"({latitude}, {longitude}) is outside the Himawari full disk")
        if not (math.isfinite(area_km2) and 0 < area_km2 <= 25):
            raise ValueError(f"area_km2 {area_km2!r} is outside (0, 25]")
        if not (math.isfinite(frp_mw) and frp_mw >= 0):
            raise ValueError(f"frp_mw {frp_mw!r} must be finite and >= 0")
        if not 0 <= volcano <= 9 or grid_id < 0 or hot_centre_id < 0:
            raise ValueError("volcano must be 0-9 and the IDs >= 0")
        return super().__new__(
            cls,
            None if satellite is None else HimawariSatellite(satellite),
            acq_utc.astimezone(UTC),
            float(latitude),
            float(longitude),
            float(area_km2),
            int(volcano),
            FireLevel(level),
            Reliability(reliability),
            float(frp_mw),
            QualityFlag(qf),
            int(grid_id),
            int(hot_centre_id),
            None if timeline_utc is None else timeline_utc.astimezone(UTC),
        )

    @property
    def instrument(self) -> str:
        """``AHI``, the Advanced Himawari Imager."""
        return INSTRUMENT

    @property
    def confidence(self) -> float:
        """Reliability on the project's common [0, 1] scale (:data:`RELIABILITY_CONFIDENCE`)."""
        return RELIABILITY_CONFIDENCE[self.reliability]

    @property
    def confidence_raw(self) -> str:
        """The reliability code as published (``1``/``3``/``5``)."""
        return str(int(self.reliability))

    @property
    def scan_km(self) -> float:
        """East-west size of the 0.02° cell here (named like FIRMS's pixel size so footprint code reads both)."""
        return GRID_DEG * KM_PER_DEG_LAT * math.cos(math.radians(self.latitude))

    @property
    def track_km(self) -> float:
        """North-south size of the 0.02° cell."""
        return GRID_DEG * KM_PER_DEG_LAT

    @property
    def key(self) -> str:
        """Natural unique key: ``AHI|Himawari-9|L2WLF|YYYYMMDDTHHMMZ|lat|lon`` (lat/lon in 0.001°).

        The same cell observed in the same minute by the same satellite is one detection in any file; the
        satellite is part of the key because Himawari-8 and -9 have observed in parallel, and their detections
        are separate observations. Without a known satellite the platform reads ``Himawari``, so pass the file
        name (or ``satellite=``) to the reader for keys that match later reads.
        """
        platform = self.satellite.value if self.satellite is not None else "Himawari"
        return (
            f"{INSTRUMENT}|{platform}|L2WLF|{self.acq_utc:%Y%m%dT%H%MZ}|"
            f"{round(self.latitude * _KEY_SCALE):+d}|{round(self.longitude * _KEY_SCALE):+d}"
        )

    def footprint(self) -> Polygon:
        """The 0.02° grid cell as a WGS-84 lon/lat polygon (exact: the product is on this grid)."""
        import shapely

        half = GRID_DEG / 2
        return shapely.box(self.longitude - half, self.latitude - half, self.longitude + half, self.latitude + half)


_DISK_LAT: Final = 60.0
_DISK_CENTRE_LON: Final = 140.7
"""Himawari-8/9's sub-satellite longitude: a longitude inside the disk, to test a latitude alone."""


def in_full_disk(latitude: float, longitude: float) -> bool:
    """Whether a point lies in the product's coverage: 60° N-60° S, 80° E eastward to 160° W."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return False
    return -_DISK_LAT <= latitude <= _DISK_LAT and (80.0 <= longitude <= 180.0 or -180.0 <= longitude <= -160.0)


@dataclass(frozen=True, slots=True)
class HimawariFileName:
    """What a product file name says (``Hnn_YYYYMMDD_hhmm_L2WLFVER_FLDK.xxxxx_yyyyy.csv``)."""

    satellite: HimawariSatellite
    timeline_utc: datetime
    version: str
    pixels: int
    lines: int


_FILENAME_RE: Final = re.compile(
    r"H(?P<nn>\d\d)_(?P<date>\d{8})_(?P<hhmm>\d{4})_L2WLF(?P<ver>[0-9A-Za-z]+)_FLDK\.(?P<px>\d{5})_(?P<ln>\d{5})\.csv"
)


def parse_himawari_filename(name: str) -> HimawariFileName | None:
    """Parse a product file name (a bare name or a path); ``None`` if it is not one."""
    match = _FILENAME_RE.fullmatch(Path(name).name)
    if match is None:
        return None
    satellite = _SATELLITE_NUMBERS.get(match["nn"])
    if satellite is None:
        return None
    try:
        timeline = datetime.strptime(match["date"] + match["hhmm"], "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None
    return HimawariFileName(satellite, timeline, match["ver"], int(match["px"]), int(match["ln"]))


@dataclass(frozen=True, slots=True)
class HimawariReadResult:
    """What one Himawari L2 wildfire CSV yielded.

    Attributes:
        source_name: the input's name.
        satellite: from the file name or the caller; ``None`` if neither said.
        timeline_utc: start of the 10-minute observation (header line, else file name).
        processed_utc: when JAXA produced the file (header line), if given.
        columns: the header's canonical column names, ``date`` expanded.
        hotspots: valid rows, in file order (with ``within``: those whose cell may reach the box).
        rejected: skipped rows, with line and reason.
        outside: valid rows dropped because their cell cannot reach ``within`` (0 without it).
    """

    source_name: str
    satellite: HimawariSatellite | None
    timeline_utc: datetime | None
    processed_utc: datetime | None
    columns: tuple[str, ...]
    hotspots: list[HimawariHotspot]
    rejected: list[RejectedRow]
    outside: int = 0


HimawariSource = os.PathLike[str] | str | bytes | bytearray | memoryview | IO[str] | IO[bytes]
"""What :func:`read_himawari_csv` accepts. A ``str`` is CSV *text*; to read a file pass a ``pathlib.Path``."""


def read_himawari_csv(
    source: HimawariSource,
    *,
    source_name: str | None = None,
    satellite: HimawariSatellite | str | None = None,
    now: datetime | None = None,
    within: Box | None = None,
) -> HimawariReadResult:
    """Parse a Himawari-8/9 AHI L2 wildfire CSV.

    Args:
        source: a path, CSV text as ``str``, raw ``bytes``, or an open text or binary file (UTF-8; BOM, CRLF and
            a missing final newline are accepted).
        source_name: name used in errors and rejected rows; defaults to the file name. When it is a product
            file name, it also gives the satellite and the timeline.
        satellite: the platform, when the name does not give it; contradicting the file name is an error.
        now: the clock the observation times are checked against (default: the system clock). A row more than
            :data:`~satellite.hotspot.ACQ_CLOCK_SKEW` (10 min) ahead of it is rejected, naming the first of
            ``year``/``month``/``day``/``time`` that is ahead, as FIRMS rows are (a year before 2015, before
            Himawari-8, is refused by the year's range).
        within: keep only the valid rows whose grid cell may reach this box
            (:func:`satellite.hotspot.reaching_box`), counting the others in :attr:`HimawariReadResult.outside`: a
            full-disk file read for one county. ``None``: every row.

    Returns:
        The records and the rejected rows. A header with no rows is a valid, empty result.

    Raises:
        HimawariFormatError: empty or undecodable input, no column header, missing or duplicated columns, or a
            file name, caller and header that contradict one another.
    """
    text, name = _load_text(source, source_name)
    from_name = parse_himawari_filename(name)
    sat = None if satellite is None else HimawariSatellite(satellite)
    if from_name is not None:
        if sat is not None and sat is not from_name.satellite:
            raise HimawariFormatError(
                f"satellite {sat} given, but the file name says {from_name.satellite}", source_name=name
            )
        sat = from_name.satellite

    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header_index, columns = _find_header(lines, name)
    timeline, processed = _header_times(lines[:header_index], name)
    if from_name is not None:
        if timeline is None:
            timeline = from_name.timeline_utc
        elif timeline != from_name.timeline_utc:
            raise HimawariFormatError(
                f"header timeline {timeline:%Y-%m-%d %H:%M} UTC differs from the file name's "
                f"{from_name.timeline_utc:%Y-%m-%d %H:%M} UTC",
                source_name=name,
                line=1,
            )

    rows = _RowReader(columns, name, sat, timeline, now)
    hotspots: list[HimawariHotspot] = []
    rejected: list[RejectedRow] = []
    for index in range(header_index + 1, len(lines)):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        record = rows.read(line, index + 1, rejected)
        if record is not None:
            hotspots.append(record)
    outside = 0
    if within is not None and hotspots:  # a full-disk file is a few thousand rows: the records are cheap here
        sizes = [h.track_km for h in hotspots]  # the cell's larger side (its north-south one)
        reaching = reaching_box([h.latitude for h in hotspots], [h.longitude for h in hotspots], sizes, within)
        outside = len(hotspots) - int(reaching.sum())
        hotspots = [h for h, reaches in zip(hotspots, reaching.tolist(), strict=True) if reaches]
    return HimawariReadResult(name, sat, timeline, processed, columns, hotspots, rejected, outside)


def _load_text(source: HimawariSource, source_name: str | None) -> tuple[str, str]:
    data: bytes
    if isinstance(source, os.PathLike):
        path = Path(source)
        name = source_name if source_name is not None else path.name
        data = path.read_bytes()
    elif isinstance(source, str):
        name = source_name if source_name is not None else "<string>"
        return source.removeprefix("\ufeff"), name
    elif isinstance(source, bytes | bytearray | memoryview):
        name = source_name if source_name is not None else "<bytes>"
        data = bytes(source)
    else:
        name = source_name if source_name is not None else str(getattr(source, "name", "<stream>"))
        content = source.read()
        if isinstance(content, str):
            return content.removeprefix("\ufeff"), name
        data = bytes(content)
    if (compressed := compressed_input(data)) is not None:
        raise HimawariFormatError(compressed, source_name=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise HimawariFormatError(f"not UTF-8 text (byte {exc.start})", source_name=name, line=line) from None
    return text, name


def _canonical(raw: str) -> str:
    """``Time(UTC)`` → ``time``, ``Area(km^2)`` → ``area``, ``Hot(ID)`` → ``hotid``; then the alias table."""
    bare = raw.strip().lstrip("#").strip().lower()
    # Units in parentheses go, except in "Hot(ID)", where the parenthesis holds the name.
    bare = bare.replace("(", "").replace(")", "") if bare.startswith("hot") else re.sub(r"\(.*?\)", "", bare)
    bare = re.sub(r"[^a-z0-9]", "", bare)
    if bare == "date":
        return "date"
    return _ALIASES.get(bare, bare)


def _find_header(lines: list[str], name: str) -> tuple[int, tuple[str, ...]]:
    """The column-name line: the first line (``#`` or not) whose names include latitude and longitude."""
    content = [i for i, line in enumerate(lines) if line.strip()]
    if not content:
        raise HimawariFormatError("empty input: no header and no rows", source_name=name)
    for index in content:
        line = lines[index]
        if "," not in line:
            if line.lstrip().startswith("#"):
                continue
            break
        names = [_canonical(part) for part in line.split(",")]
        if "lat" not in names or "lon" not in names:
            if line.lstrip().startswith("#"):
                continue
            break
        expanded: list[str] = []
        for column in names:
            expanded.extend(("year", "month", "day", "time") if column == "date" else (column,))
        missing = [c for c in COLUMNS if c not in expanded]
        if missing:
            raise HimawariFormatError(
                f"missing required column(s): {', '.join(missing)} (header has {len(expanded)} columns)",
                source_name=name,
                line=index + 1,
            )
        duplicated = sorted({c for c in expanded if c in COLUMNS and expanded.count(c) > 1})
        if duplicated:
            raise HimawariFormatError(
                f"duplicated column(s): {', '.join(duplicated)}", source_name=name, line=index + 1
            )
        return index, tuple(expanded)
    first = content[0]
    raise HimawariFormatError(
        f"no Himawari column header (a line naming Lat and Lon) before the data: {lines[first].strip()[:80]!r}",
        source_name=name,
        line=first + 1,
    )


_TIME_RE: Final = re.compile(r"(\d{4})\s+(\d{1,2})\s+(\d{1,2})\s+(\d{1,2})\s+(\d{1,2})\s*UTC", re.IGNORECASE)


def _header_times(header_lines: list[str], name: str) -> tuple[datetime | None, datetime | None]:
    """Timeline and processing time from the first ``#`` line (``# 2025 12  9 19  0 UTC  2025 12  9 19 30 UTC``)."""
    for number, line in enumerate(header_lines, start=1):
        if not line.lstrip().startswith("#"):
            continue
        found = _TIME_RE.findall(line)
        if not found:
            continue
        try:
            times = [_utc(*map(int, parts)) for parts in found[:2]]
        except ValueError:
            raise HimawariFormatError(
                f"invalid time in header: {line.strip()[:80]!r}", source_name=name, line=number
            ) from None
        return times[0], (times[1] if len(times) > 1 else None)
    return None, None


def _utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class _RowReader:
    """Validates and converts one data line; rejects it with the first offending column in header order."""

    def __init__(
        self,
        columns: tuple[str, ...],
        name: str,
        satellite: HimawariSatellite | None,
        timeline: datetime | None,
        now: datetime | None = None,
    ) -> None:
        self.columns = columns
        self.width = len(columns)
        self.index = {c: columns.index(c) for c in COLUMNS}
        self.name = name
        self.satellite = satellite
        self.timeline = timeline
        self.now = (now if now is not None else datetime.now(UTC)).astimezone(UTC)
        self.latest = self.now + ACQ_CLOCK_SKEW  # the latest observation time that can have been made

    def read(self, line: str, line_no: int, rejected: list[RejectedRow]) -> HimawariHotspot | None:
        fields = line.split(",")
        if len(fields) != self.width:
            self._reject(rejected, line_no, None, f"expected {self.width} fields, found {len(fields)}", line)
            return None
        try:
            record = self._convert(fields)
        except _BadField as bad:
            self._reject(rejected, line_no, bad.field, bad.reason, line)
            return None
        return record

    def _cell(self, fields: list[str], column: str) -> str:
        return fields[self.index[column]].strip()

    def _int(self, fields: list[str], column: str, lo: int, hi: int) -> int:
        text = self._cell(fields, column)
        if not (text.isascii() and text.isdigit()):
            raise _BadField(column, f"not a non-negative integer: {text[:20]!r}")
        value = int(text)
        if not lo <= value <= hi:
            raise _BadField(column, f"{value} is outside [{lo}, {hi}]")
        return value

    def _float(self, fields: list[str], column: str, lo: float, hi: float) -> float:
        text = self._cell(fields, column)
        try:
            value = float(text)
        except ValueError:
            raise _BadField(column, f"not a number: {text[:20]!r}" if text else "empty") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise _BadField(column, f"{text[:20]} is outside [{lo:g}, {hi:g}]")
        return value

    def _code(self, fields: list[str], column: str, kind: type[_Code]) -> _Code:
        text = self._cell(fields, column)
        allowed = "/".join(str(int(m)) for m in kind)
        if not (text.isascii() and text.isdigit()):
            raise _BadField(column, f"must be one of {allowed}, not {text[:20]!r}")
        try:
            return kind(int(text))
        except ValueError:
            raise _BadField(column, f"must be one of {allowed}, not {text}") from None

    def _convert(self, fields: list[str]) -> HimawariHotspot:
        # First every column in header order, so that the reported problem is the leftmost one; then the typed
        # conversion, which can no longer fail on a single cell.
        for column in self.columns:
            self._check(fields, column)
        year = self._int(fields, "year", *_YEARS)
        month = self._int(fields, "month", 1, 12)
        day = self._int(fields, "day", 1, 31)
        hour, minute = self._time(fields)
        try:
            acq = datetime(year, month, day, hour, minute, tzinfo=UTC)
        except ValueError:
            raise _BadField("day", f"{year}-{month}-{day} is not a calendar date") from None
        if acq > self.latest:
            self._ahead_of_the_clock(acq)
        if self.timeline is not None:
            end = self.timeline + timedelta(minutes=OBSERVATION_MINUTES)
            if not self.timeline <= acq <= end:
                raise _BadField(
                    "time",
                    f"{acq:%Y-%m-%d %H:%M} is outside this file's observation "
                    f"{self.timeline:%Y-%m-%d %H:%M}-{end:%H:%M} UTC",
                )
        latitude = self._latitude(fields)
        longitude = self._longitude(fields)
        values = (
            self.satellite,
            acq,
            latitude,
            longitude,
            self._area(fields),
            self._int(fields, "volcano", 0, 9),
            self._code(fields, "level", FireLevel),
            self._code(fields, "reliability", Reliability),
            self._float(fields, "frp", *_FRP_RANGE),
            self._code(fields, "qf", QualityFlag),
            self._int(fields, "id", *_IDS),
            self._int(fields, "hc", *_IDS),
            self.timeline,
        )
        # Every field was validated above; the C constructor skips HimawariHotspot.__new__'s repeat checks.
        record: HimawariHotspot = tuple.__new__(HimawariHotspot, values)
        return record

    def _ahead_of_the_clock(self, acq: datetime) -> None:
        """Refuse an observation time that cannot have been observed yet, naming the first field ahead."""
        latest = self.latest
        field = next(
            (
                name
                for name, parts in (("year", 1), ("month", 2), ("day", 3))
                if (acq.year, acq.month, acq.day)[:parts] > (latest.year, latest.month, latest.day)[:parts]
            ),
            "time",
        )
        allowed = int(ACQ_CLOCK_SKEW.total_seconds() // 60)
        raise _BadField(
            field,
            f"{acq:%Y-%m-%d %H:%M} UTC is more than {allowed} minutes ahead of the clock "
            f"({self.now:%Y-%m-%d %H:%M} UTC)",
        )

    def _time(self, fields: list[str]) -> tuple[int, int]:
        try:
            return parse_acq_time(self._cell(fields, "time"))
        except ValueError as exc:
            raise _BadField("time", str(exc)) from None

    def _latitude(self, fields: list[str]) -> float:
        value = self._float(fields, "lat", -90.0, 90.0)
        # Each coordinate is checked against its own side of the disk, so the report names the wrong one.
        if not in_full_disk(value, _DISK_CENTRE_LON):
            raise _BadField("lat", f"{value:g} is outside the Himawari full disk ({_DISK_LAT:g}° N-S)")
        return value

    def _longitude(self, fields: list[str]) -> float:
        value = self._float(fields, "lon", -180.0, 180.0)
        if not in_full_disk(0.0, value):
            raise _BadField("lon", f"{value:g} is outside the Himawari full disk (80° E to 160° W)")
        return value

    def _area(self, fields: list[str]) -> float:
        value = self._float(fields, "area", 0.0, 25.0)
        if value == 0:
            raise _BadField("area", "0 is not a grid-cell area")
        return value

    def _check(self, fields: list[str], column: str) -> None:
        checks: dict[str, Callable[[], object]] = {
            "id": lambda: self._int(fields, "id", *_IDS),
            "hc": lambda: self._int(fields, "hc", *_IDS),
            "year": lambda: self._int(fields, "year", *_YEARS),
            "month": lambda: self._int(fields, "month", 1, 12),
            "day": lambda: self._int(fields, "day", 1, 31),
            "time": lambda: self._time(fields),
            "lat": lambda: self._latitude(fields),
            "lon": lambda: self._longitude(fields),
            "area": lambda: self._area(fields),
            "volcano": lambda: self._int(fields, "volcano", 0, 9),
            "level": lambda: self._code(fields, "level", FireLevel),
            "reliability": lambda: self._code(fields, "reliability", Reliability),
            "qf": lambda: self._code(fields, "qf", QualityFlag),
            "frp": lambda: self._float(fields, "frp", *_FRP_RANGE),
        }
        check = checks.get(column)
        if check is not None:  # columns the product does not define are ignored
            check()

    def _reject(self, rejected: list[RejectedRow], line_no: int, field: str | None, reason: str, text: str) -> None:
        rejected.append(RejectedRow(self.name, line_no, field, reason, text[:_MAX_TEXT_IN_REPORT]))


class _BadField(Exception):  # noqa: N818 - internal control flow, never escapes the reader
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
