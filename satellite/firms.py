"""Read NASA FIRMS active-fire CSV into :class:`~satellite.hotspot.Hotspot` records.

One reader for every FIRMS CSV layout the project meets: MODIS C6.1 and VIIRS 375 m (S-NPP, NOAA-20, NOAA-21),
near-real-time and standard-processing/archive files (with ``type``), the 7-day text files (no ``instrument``)
and the country API (leading ``country_id``). Columns are found **by header name, never by position**, because
the layouts differ by product and endpoint and FIRMS has added columns before; unknown columns are ignored.

Pure: the reader does no I/O beyond reading the text, bytes, file object or path it is given, and it never
touches the network. Errors that make the whole input unusable raise
:class:`~satellite.errors.FirmsFormatError`; a malformed *row* is reported in :attr:`FirmsReadResult.rejected`
with its line number and skipped, so one corrupt line never hides the rest of a pass.

Speed: validation and normalisation run per *column* (``map(float, column)``, then a range check with ``min``/
``max``/``sum``; categorical columns such as ``satellite`` or ``confidence`` are converted once per distinct
value) and records are built with the C-level ``tuple.__new__`` while the cyclic collector is paused. Only a
column that fails the fast check is re-walked value by value to find and describe the bad rows. Returning one
Python record per row has a floor that a columnar C reader does not pay, so this is several times slower than
``pandas.read_csv`` (measured by ``bench/bench_firms_parse.py``) while doing far more; it still reads a global
MODIS day in tens of milliseconds.

Area: given ``within`` (a box, :data:`Box`), the readers keep only the rows whose pixel can reach it and count the
others (:attr:`FirmsReadResult.outside`), so that a global daily file read for one county costs memory for the
county's rows, not for the world's: the rows are validated first (a bad row is reported wherever it lies) and
dropped before a record is built for them.
"""

from __future__ import annotations

import csv
import gc
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import repeat
from pathlib import Path
from typing import IO, Any, Final, cast

from satellite.errors import FirmsEmptyError, FirmsFormatError
from satellite.hotspot import (
    ACQ_CLOCK_SKEW,
    BRIGHTNESS_RANGE_K,
    EARLIEST_ACQ_DATE,
    FRP_RANGE_MW,
    SCAN_TRACK_RANGE_KM,
    Box,
    DayNight,
    Hotspot,
    Instrument,
    Product,
    Satellite,
    is_nrt_version,
    normalise_confidence,
    parse_acq_date,
    parse_acq_time,
    reaching_box,
)

__all__ = [
    "BRIGHTNESS_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "FirmsReadResult",
    "FirmsSource",
    "RejectedRow",
    "compressed_input",
    "read_firms_csv",
    "read_firms_csv_chunks",
]

FirmsSource = os.PathLike[str] | str | bytes | bytearray | memoryview | IO[str] | IO[bytes]
"""What :func:`read_firms_csv` accepts. A ``str`` is CSV *text*; to read a file pass a ``pathlib.Path``."""

REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "latitude",
    "longitude",
    "scan",
    "track",
    "acq_date",
    "acq_time",
    "satellite",
    "confidence",
    "version",
    "frp",
    "daynight",
)
"""Columns every FIRMS layout has, besides the instrument's two brightness columns."""

BRIGHTNESS_COLUMNS: Final[dict[Instrument, tuple[str, str]]] = {
    Instrument.MODIS: ("brightness", "bright_t31"),
    Instrument.VIIRS: ("bright_ti4", "bright_ti5"),
}
"""(mid-infrared, thermal-infrared) brightness-temperature columns; which pair is present identifies the
instrument."""

OPTIONAL_COLUMNS: Final[tuple[str, ...]] = ("instrument", "type", "country_id")
"""``instrument`` is absent from 7-day text files, ``type`` from NRT files, ``country_id`` outside the country
API."""

_CHUNK_LINES: Final = 65_536
"""Rows converted per batch: bounds the intermediate per-field strings of a large archive file."""

_MAX_TEXT_IN_REPORT: Final = 200


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A data row the reader skipped, and why.

    Attributes:
        source_name: the input's name, as given to the reader.
        line: 1-based physical line number in the input (the header is usually line 1).
        field: the first offending column in header order, or ``None`` when the row as a whole is wrong
            (wrong number of fields).
        reason: what is wrong, in words.
        text: the raw line, cut to 200 characters.
    """

    source_name: str
    line: int
    field: str | None
    reason: str
    text: str

    def __str__(self) -> str:
        where = f"{self.source_name}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FirmsReadResult:
    """What one FIRMS CSV yielded.

    Attributes:
        source_name: the input's name.
        instrument: MODIS or VIIRS, from the header's brightness columns.
        product: the product the caller asserted, or ``None`` when each row's product was derived from its
            satellite and version.
        columns: the header as read (lower-cased, stripped), including columns the reader ignores.
        hotspots: valid rows, in file order (with ``within``: those whose pixel may reach the box).
        rejected: skipped rows, in file order.
        outside: valid rows dropped because their pixel cannot reach ``within`` (0 without it).
    """

    source_name: str
    instrument: Instrument
    product: Product | None
    columns: tuple[str, ...]
    hotspots: list[Hotspot]
    rejected: list[RejectedRow]
    outside: int = 0


def read_firms_csv(
    source: FirmsSource,
    *,
    source_name: str | None = None,
    product: Product | str | None = None,
    now: datetime | None = None,
    within: Box | None = None,
) -> FirmsReadResult:
    """Parse a FIRMS active-fire CSV.

    Args:
        source: a path (``pathlib.Path`` or other ``os.PathLike``), CSV text as ``str``, raw ``bytes``, or an
            open text or binary file. Bytes are decoded as UTF-8; a byte-order mark, CRLF or CR line ends,
            blank lines and a missing final newline are all accepted.
        source_name: name used in errors and rejected rows; defaults to the file name (not the directory), or
            ``<string>``/``<bytes>``/the stream's ``name``. It appears in messages and logs, so **never pass a
            URL that contains the FIRMS MAP_KEY** — pass it through :func:`satellite.errors.redact` first.
        product: the FIRMS product the input is known to be (e.g. the ``SOURCE`` an API call asked for).
            When given, a header of the other instrument is an error, and rows whose satellite or processing
            level contradict it are rejected. When ``None``, each row's product is derived from its satellite
            and ``version``.
        now: the clock the acquisition times are checked against (default: the system clock, UTC). A row more
            than :data:`~satellite.hotspot.ACQ_CLOCK_SKEW` (10 min) ahead of it is rejected (field ``acq_date``
            when its day is still to come, else ``acq_time``), and so is a row dated before
            :data:`~satellite.hotspot.EARLIEST_ACQ_DATE` (2000-01-01, before MODIS; field ``acq_date``): neither
            can be a real observation, and the service would count and escalate either as a fire of today.
        within: keep only the valid rows whose pixel may reach this box
            (:func:`satellite.hotspot.reaching_box`), counting the others in :attr:`FirmsReadResult.outside`: the
            service passes the box of the imported units' coverage, so that a global file costs memory for the
            rows it can use. ``None``: every row.

    Returns:
        The hotspots and the rejected rows. A header with no rows is a valid, empty result (FIRMS answers
        that way when there are no fires in the area).

    Raises:
        FirmsEmptyError: the input is empty or blank.
        FirmsFormatError: undecodable bytes, no FIRMS header, required columns missing (named in the message
            and in ``.missing``), duplicated columns, or a header of the wrong instrument for ``product``.
        ValueError: ``product`` is not a FIRMS product name.
    """
    want = None if product is None else Product(product)
    text, name = _load_text(source, source_name)
    with _gc_paused():
        return _parse(text, name, want, now, within)


def read_firms_csv_chunks(
    path: os.PathLike[str],
    *,
    source_name: str | None = None,
    product: Product | str | None = None,
    chunk_lines: int = _CHUNK_LINES,
    on_bytes: Callable[[int], None] | None = None,
    now: datetime | None = None,
    within: Box | None = None,
) -> Iterator[FirmsReadResult]:
    """Read a large FIRMS file in batches of ``chunk_lines`` lines: one :class:`FirmsReadResult` per batch.

    The same header checks and row rules as :func:`read_firms_csv` (the same column reader runs on each batch), and
    rejected rows carry their physical line in the file; but the file is read line by line, so a year of VIIRS
    archive (tens of MB, hundreds of thousands of rows) never sits in memory as one text, one list of lines and
    one list of records at once. A file with no header yields nothing and raises :class:`FirmsEmptyError`; a
    header with no rows yields one empty result.

    Args:
        path: the file.
        source_name, product, now, within: as for :func:`read_firms_csv` (each batch counts its own ``outside``
            rows).
        chunk_lines: data lines per batch.
        on_bytes: called after each batch with the bytes consumed since the previous call (progress bars).

    Raises:
        FirmsEmptyError, FirmsFormatError: as :func:`read_firms_csv`; an undecodable line raises when it is
            reached, after the batches before it were yielded.
    """
    if chunk_lines < 1:
        raise ValueError(f"chunk_lines must be >= 1, not {chunk_lines!r}")
    want = None if product is None else Product(product)
    file_path = Path(path)
    name = source_name if source_name is not None else file_path.name
    with file_path.open("rb") as handle:
        offset = 0  # bytes before the current line
        reported = 0  # bytes passed to on_bytes so far

        def report() -> None:
            nonlocal reported
            if on_bytes is not None and offset > reported:
                on_bytes(offset - reported)
            reported = offset

        line_no = 0
        header: str | None = None
        for raw in handle:
            line_no += 1
            text = _decode_line(raw, name, line_no, offset, first=line_no == 1)
            offset += len(raw)
            if text.strip():
                header = text
                break
        if header is None:
            raise FirmsEmptyError("empty input: no header and no rows", source_name=name)
        if "\r" in header.rstrip("\r\n"):
            # Old-Mac CR line ends: the file is one physical "line"; the whole-text reader splits it (rare and
            # small in practice, so reading it at once costs nothing).
            offset = file_path.stat().st_size
            yield read_firms_csv(file_path, source_name=name, product=want, now=now, within=within)
            report()
            return
        header_line = _strip_line_end(header)
        columns = tuple(col.strip().lower() for col in _split_line(header_line, '"' in header_line))
        instrument = _check_header(columns, name, line_no, header_line, want)
        reader = _ColumnReader(columns, instrument, want, name, now, within)
        batch: list[str] = []
        first_line_no = line_no + 1
        last_raw = header.encode()
        yielded = False
        for raw in handle:
            if len(batch) == chunk_lines:
                # A full batch is read once the next line exists: only the file's last line may be cut off.
                yield _read_batch(reader, batch, first_line_no, cut_last=False)
                yielded = True
                report()
                first_line_no, batch = line_no + 1, []
            line_no += 1
            batch.append(_strip_line_end(_decode_line(raw, name, line_no, offset, first=False)))
            offset += len(raw)
            last_raw = raw
        if batch or not yielded:
            yield _read_batch(reader, batch, first_line_no, cut_last=not last_raw.endswith(b"\n"))
        report()


#: How compressed files begin (their magic numbers), and what to do with each.
_COMPRESSED: Final[tuple[tuple[bytes, str], ...]] = (
    (b"PK\x03\x04", "a ZIP archive, not CSV text: extract the CSV file(s) in it first and give those"),
    (b"PK\x05\x06", "an empty ZIP archive, not CSV text"),
    (b"\x1f\x8b", "gzip-compressed, not CSV text: decompress it first (gunzip)"),
    (b"BZh", "bzip2-compressed, not CSV text: decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed, not CSV text: decompress it first (unxz)"),
)


def compressed_input(head: bytes) -> str | None:
    """What is wrong with an input that begins with ``head`` if it is a compressed file, else ``None``.

    Not read through: FIRMS archive downloads are ZIPs that may hold an archive (standard processing) *and* a
    near-real-time CSV, and which of them to ingest, or import as history, is the user's choice. Without this the
    file failed as "not UTF-8 text (byte 10)", which says nothing of what to do.
    """
    return next((message for magic, message in _COMPRESSED if head.startswith(magic)), None)


def _decode_line(raw: bytes, name: str, line_no: int, offset: int, *, first: bool) -> str:
    if first and (compressed := compressed_input(raw)) is not None:
        raise FirmsFormatError(compressed, source_name=name)
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as exc:
        raise FirmsFormatError(f"not UTF-8 text (byte {offset + exc.start})", source_name=name, line=line_no) from None


def _strip_line_end(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def _read_batch(reader: _ColumnReader, lines: list[str], first_line_no: int, *, cut_last: bool) -> FirmsReadResult:
    hotspots: list[Hotspot] = []
    rejected: list[RejectedRow] = []
    outside_before = reader.outside
    with _gc_paused():
        reader.read_chunk(lines, first_line_no, any('"' in line for line in lines), cut_last, hotspots, rejected)
    rejected.sort(key=lambda row: row.line)
    return FirmsReadResult(
        source_name=reader.name,
        instrument=reader.instrument,
        product=reader.product,
        columns=reader.columns,
        hotspots=hotspots,
        rejected=rejected,
        outside=reader.outside - outside_before,
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the records are built.

    The reader allocates one tuple per row. CPython runs a young-generation collection every 700 container
    allocations and, every so often, an older-generation one that walks the records already built; on the
    16,000-row MODIS day that was about a fifth of the parse time. The records hold only enums, datetimes,
    floats and strings, so they cannot form cycles and there is nothing for the collector to find. The previous
    state is restored even on error, and a collector that the application disabled stays disabled.
    """
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_text(source: FirmsSource, source_name: str | None) -> tuple[str, str]:
    data: bytes
    if isinstance(source, os.PathLike):
        path = Path(source)
        name = source_name if source_name is not None else path.name
        data = path.read_bytes()
    elif isinstance(source, str):
        name = source_name if source_name is not None else "<string>"
        if source.strip() and "\n" not in source and "," not in source:
            raise FirmsFormatError(
                "a str is read as CSV text, and this one has no header; pass a pathlib.Path to read a file",
                source_name=name,
            )
        return source.removeprefix("\ufeff"), name
    elif isinstance(source, bytes | bytearray | memoryview):
        name = source_name if source_name is not None else "<bytes>"
        data = bytes(source)
    else:
        name = source_name if source_name is not None else str(getattr(source, "name", "<stream>"))
        content: Any = source.read()
        if isinstance(content, str):
            return content.removeprefix("\ufeff"), name
        if not isinstance(content, bytes | bytearray):
            raise TypeError(f"{name}: read() returned {type(content).__name__}, not str or bytes")
        data = bytes(content)
    if (compressed := compressed_input(data)) is not None:
        raise FirmsFormatError(compressed, source_name=name)
    try:
        return data.decode("utf-8-sig"), name
    except UnicodeDecodeError as exc:
        raise FirmsFormatError(
            f"not UTF-8 text (byte {exc.start})",
            source_name=name,
            line=data.count(b"\n", 0, exc.start) + 1,
        ) from None


def _split_line(line: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([line]), [])
    return line.split(",")


def _parse(
    text: str, name: str, product: Product | None, now: datetime | None, within: Box | None = None
) -> FirmsReadResult:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise FirmsEmptyError("empty input: no header and no rows", source_name=name)
    # FIRMS never quotes; a quote anywhere switches to the csv module for exact CSV semantics.
    quoted = '"' in text
    header_line = lines[header_index]
    columns = tuple(col.strip().lower() for col in _split_line(header_line, quoted))
    instrument = _check_header(columns, name, header_index + 1, header_line, product)

    body = lines[header_index + 1 :]
    first_line_no = header_index + 2
    # The final newline leaves an empty last element; only a missing one makes a cut last row likely.
    ends_with_newline = text.endswith("\n")
    last_content = len(body) - 1
    while last_content >= 0 and not body[last_content].strip():
        last_content -= 1

    hotspots: list[Hotspot] = []
    rejected: list[RejectedRow] = []
    reader = _ColumnReader(columns, instrument, product, name, now, within)
    for start in range(0, last_content + 1, _CHUNK_LINES):
        chunk = body[start : min(start + _CHUNK_LINES, last_content + 1)]
        cut_last = not ends_with_newline and start + len(chunk) == last_content + 1
        reader.read_chunk(chunk, first_line_no + start, quoted, cut_last, hotspots, rejected)
    rejected.sort(key=lambda row: row.line)
    return FirmsReadResult(
        source_name=name,
        instrument=instrument,
        product=product,
        columns=columns,
        hotspots=hotspots,
        rejected=rejected,
        outside=reader.outside,
    )


def _check_header(
    columns: tuple[str, ...], name: str, line: int, header_line: str, product: Product | None
) -> Instrument:
    present = set(columns)
    modis = present.intersection(BRIGHTNESS_COLUMNS[Instrument.MODIS])
    viirs = present.intersection(BRIGHTNESS_COLUMNS[Instrument.VIIRS])
    if modis and viirs:
        raise FirmsFormatError(
            f"header mixes MODIS ({', '.join(sorted(modis))}) and VIIRS ({', '.join(sorted(viirs))}) columns",
            source_name=name,
            line=line,
        )
    instrument = Instrument.MODIS if modis else Instrument.VIIRS if viirs else None
    if product is not None and instrument is not None and instrument is not product.instrument:
        raise FirmsFormatError(
            f"header is a {instrument} layout but product {product} was given",
            source_name=name,
            line=line,
        )
    if instrument is None and product is not None:
        instrument = product.instrument
    required = [c for c in REQUIRED_COLUMNS if c not in present]
    if instrument is None:
        required += [
            f"{' + '.join(BRIGHTNESS_COLUMNS[Instrument.MODIS])} (MODIS) "
            f"or {' + '.join(BRIGHTNESS_COLUMNS[Instrument.VIIRS])} (VIIRS)"
        ]
    else:
        required += [c for c in BRIGHTNESS_COLUMNS[instrument] if c not in present]
    if required:
        looks_like_header = len(columns) >= 3
        found = (
            f"header has {len(columns)} columns"
            if looks_like_header
            else f"first line is not a FIRMS header: {header_line.strip()[:80]!r}"
        )
        raise FirmsFormatError(
            f"missing required FIRMS column(s): {', '.join(required)} ({found})",
            source_name=name,
            line=line,
            missing=required,
        )
    wanted = set(REQUIRED_COLUMNS).union(OPTIONAL_COLUMNS, *BRIGHTNESS_COLUMNS.values())
    duplicated = sorted({c for c in columns if c in wanted and columns.count(c) > 1})
    if duplicated:
        raise FirmsFormatError(
            f"duplicated column(s): {', '.join(duplicated)}", source_name=name, line=line, field=duplicated[0]
        )
    assert instrument is not None
    return instrument


class _RowErrors:
    """First error per row: columns are converted in header order, so the first recorded one wins."""

    __slots__ = ("by_row",)

    def __init__(self) -> None:
        self.by_row: dict[int, tuple[str, str]] = {}

    def add(self, row: int, field: str, reason: str) -> None:
        self.by_row.setdefault(row, (field, reason))


class _ColumnReader:
    """Converts batches of data lines to hotspots, column by column."""

    def __init__(
        self,
        columns: tuple[str, ...],
        instrument: Instrument,
        product: Product | None,
        name: str,
        now: datetime | None = None,
        within: Box | None = None,
    ):
        self.columns = columns
        self.within = within
        self.outside = 0  # valid rows dropped so far: their pixel cannot reach ``within``
        self.width = len(columns)
        self.instrument = instrument
        self.product = product
        self.name = name
        self.mir, self.tir = BRIGHTNESS_COLUMNS[instrument]
        self.now = (now if now is not None else datetime.now(UTC)).astimezone(UTC)
        self.latest = self.now + ACQ_CLOCK_SKEW  # the latest acquisition time that can have been observed
        # column -> (lowest, highest, may be empty)
        self.numeric: dict[str, tuple[float, float, bool]] = {
            "latitude": (-90.0, 90.0, False),
            "longitude": (-180.0, 180.0, False),
            "scan": (*SCAN_TRACK_RANGE_KM, False),
            "track": (*SCAN_TRACK_RANGE_KM, False),
            self.mir: (*BRIGHTNESS_RANGE_K, False),
            self.tir: (*BRIGHTNESS_RANGE_K, False),
            "frp": (*FRP_RANGE_MW, True),
        }
        # Low-cardinality columns: converted once per distinct value.
        self.categorical: dict[str, Callable[[str], Any]] = {
            "acq_date": self._acq_date,
            "acq_time": parse_acq_time,
            "satellite": self._satellite,
            "instrument": self._instrument,
            "confidence": self._confidence,
            "version": self._version,
            "daynight": _daynight,
            "type": _fire_type,
            "country_id": _country_id,
        }

    def _acq_date(self, raw: str) -> date:
        day = parse_acq_date(raw)
        if day < EARLIEST_ACQ_DATE:
            raise ValueError(
                f"{day} is before {EARLIEST_ACQ_DATE}: no FIRMS instrument observed then (MODIS began in 2000)"
            )
        if day > self.latest.date():
            raise ValueError(f"{day} is in the future (the clock says {self.now:%Y-%m-%d %H:%M} UTC)")
        return day

    def _ahead_of_the_clock(
        self, cells: dict[str, Sequence[str]], converted: dict[str, dict[str, Any]], errors: _RowErrors
    ) -> None:
        """Reject the rows of the clock's last day whose time is more than the allowed skew ahead of it (a later
        day was refused by :meth:`_acq_date` already)."""
        last_day = self.latest.date()
        days, hhmm_of = converted["acq_date"], converted["acq_time"]
        on_last_day = {raw for raw, day in days.items() if day == last_day}
        if not on_last_day:
            return
        allowed = int(ACQ_CLOCK_SKEW.total_seconds() // 60)
        for row, (raw_day, raw_time) in enumerate(zip(cells["acq_date"], cells["acq_time"], strict=True)):
            if raw_day not in on_last_day or raw_time not in hhmm_of:
                continue
            hour, minute = hhmm_of[raw_time]
            stamp = datetime(last_day.year, last_day.month, last_day.day, hour, minute, tzinfo=UTC)
            if stamp > self.latest:
                errors.add(
                    row,
                    "acq_time",
                    f"{stamp:%Y-%m-%d %H:%M} UTC is more than {allowed} minutes ahead of the clock "
                    f"({self.now:%Y-%m-%d %H:%M} UTC)",
                )

    def _satellite(self, raw: str) -> Satellite:
        sat = Satellite.parse(raw)
        if sat.instrument is not self.instrument:
            raise ValueError(f"{sat} carries {sat.instrument}, but this is a {self.instrument} file")
        if self.product is not None and sat not in self.product.satellites:
            raise ValueError(f"{sat} detection in a {self.product} file")
        return sat

    def _instrument(self, raw: str) -> Instrument:
        if raw.strip().upper() != self.instrument.value:
            raise ValueError(f"instrument {raw.strip()[:20]!r} in a {self.instrument} layout")
        return self.instrument

    def _confidence(self, raw: str) -> tuple[float, str]:
        text = raw.strip()
        return normalise_confidence(text, self.instrument), text

    def _version(self, raw: str) -> tuple[str, bool]:
        text = raw.strip()
        if not text:
            raise ValueError("empty")
        nrt = is_nrt_version(text)
        if self.product is not None and self.product.is_nrt != nrt:
            level = "near-real-time" if nrt else "standard processing"
            raise ValueError(f"version {text!r} is {level}, but this is a {self.product} file")
        return text, nrt

    def read_chunk(
        self,
        lines: list[str],
        first_line_no: int,
        quoted: bool,
        cut_last: bool,
        hotspots: list[Hotspot],
        rejected: list[RejectedRow],
    ) -> None:
        """Append the valid rows of ``lines`` to ``hotspots`` and the others to ``rejected``."""
        width = self.width
        split: list[list[str]] = []
        if quoted:
            split = [_split_line(line, True) for line in lines]
            counts = [len(fields) - 1 for fields in split]
        else:
            counts = list(map(str.count, lines, repeat(",")))
        # row_lines[r] is the index in ``lines`` of row r.
        row_lines: list[int] | range = range(len(lines))
        if counts.count(width - 1) != len(counts):
            row_lines = []
            for i, count in enumerate(counts):
                if count == width - 1:
                    row_lines.append(i)
                elif lines[i].strip():
                    reason = f"expected {width} fields, found {count + 1}"
                    if cut_last and i == len(lines) - 1 and count + 1 < width:
                        reason += "; the input ends without a newline, so this last line was probably cut off"
                    rejected.append(self._reject(first_line_no + i, None, reason, lines[i]))
        if not row_lines:
            return
        table: list[Sequence[str]]
        if quoted:
            table = list(zip(*(split[i] for i in row_lines), strict=True))
        else:
            kept = lines if isinstance(row_lines, range) else [lines[i] for i in row_lines]
            flat = ",".join(kept).split(",")
            table = [flat[j::width] for j in range(width)]

        errors = _RowErrors()
        numbers: dict[str, list[float | None]] = {}
        cells: dict[str, Sequence[str]] = {}
        converted: dict[str, dict[str, Any]] = {}
        for column, column_cells in zip(self.columns, table, strict=True):
            if column in self.numeric:
                lo, hi, optional = self.numeric[column]
                numbers[column] = _floats(column_cells, column, lo, hi, errors, optional=optional)
            elif column in self.categorical:
                cells[column] = column_cells
                converted[column] = _distinct(column_cells, column, self.categorical[column], errors)
                if column in ("acq_date", "acq_time") and "acq_date" in converted and "acq_time" in converted:
                    self._ahead_of_the_clock(cells, converted, errors)  # in header order, as every other check
        keep: list[int] | None = None  # the rows to build, when not all
        if errors.by_row:
            for row, (field, reason) in errors.by_row.items():
                i = row_lines[row]
                rejected.append(self._reject(first_line_no + i, field, reason, lines[i]))
            keep = [r for r in range(len(row_lines)) if r not in errors.by_row]
        if self.within is not None:
            # Valid rows only: a bad row is reported wherever it lies.
            rows = keep if keep is not None else range(len(row_lines))
            reaching = self._reaching(numbers, rows, self.within)
            self.outside += len(rows) - len(reaching)
            if keep is not None or len(reaching) < len(rows):
                keep = reaching
        if keep is not None:
            if not keep:
                return
            numbers = {c: [v[r] for r in keep] for c, v in numbers.items()}
            cells = {c: [v[r] for r in keep] for c, v in cells.items()}
        self._build(numbers, cells, converted, hotspots)

    @staticmethod
    def _reaching(numbers: dict[str, list[float | None]], rows: Sequence[int], box: Box) -> list[int]:
        """The rows whose pixel may reach ``box`` (:func:`satellite.hotspot.reaching_box`)."""
        # Required columns: a row with an empty or bad value was rejected, so ``rows`` hold numbers only.
        latitude, longitude, scan, track = (
            [cast(float, numbers[c][r]) for r in rows] for c in ("latitude", "longitude", "scan", "track")
        )
        size = [max(s, t) for s, t in zip(scan, track, strict=True)]
        reaching = reaching_box(latitude, longitude, size, box)
        return [r for r, reaches in zip(rows, reaching.tolist(), strict=True) if reaches]

    def _build(
        self,
        numbers: dict[str, list[float | None]],
        cells: dict[str, Sequence[str]],
        converted: dict[str, dict[str, Any]],
        hotspots: list[Hotspot],
    ) -> None:
        """Assemble records; categorical values are looked up lazily, so no per-column list is built."""

        def looked_up(column: str, table: dict[str, Any] | None = None) -> Iterator[Any]:
            if column not in cells:
                return repeat(None)
            return map((table if table is not None else converted[column]).__getitem__, cells[column])

        dates, times = cells["acq_date"], cells["acq_time"]
        day_of, hhmm_of = converted["acq_date"], converted["acq_time"]
        stamp_of = {}
        for d, t in set(zip(dates, times, strict=True)):
            day, (hour, minute) = day_of[d], hhmm_of[t]
            stamp_of[(d, t)] = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        sats, versions = cells["satellite"], cells["version"]
        sat_of, version_of = converted["satellite"], converted["version"]
        product_of = {
            (s, v): Product.for_detection(sat_of[s], nrt=version_of[v][1])
            for s, v in set(zip(sats, versions, strict=True))
        }
        confidence_of = converted["confidence"]
        records = zip(
            map(product_of.__getitem__, zip(sats, versions, strict=True)),
            looked_up("satellite"),
            repeat(self.instrument),
            map(stamp_of.__getitem__, zip(dates, times, strict=True)),
            numbers["latitude"],
            numbers["longitude"],
            numbers["scan"],
            numbers["track"],
            numbers[self.mir],
            numbers[self.tir],
            numbers["frp"],
            looked_up("confidence", {raw: vt[0] for raw, vt in confidence_of.items()}),
            looked_up("confidence", {raw: vt[1] for raw, vt in confidence_of.items()}),
            looked_up("daynight"),
            looked_up("version", {raw: vt[0] for raw, vt in version_of.items()}),
            looked_up("type"),
            looked_up("country_id"),
        )
        # Every field was validated column-wise above, so the C constructor may skip Hotspot.__new__'s checks.
        new: Callable[[type[Hotspot], Iterable[Any]], Hotspot] = tuple.__new__
        hotspots.extend(map(new, repeat(Hotspot, len(dates)), records))

    def _reject(self, line_no: int, field: str | None, reason: str, text: str) -> RejectedRow:
        return RejectedRow(self.name, line_no, field, reason, text[:_MAX_TEXT_IN_REPORT])


def _floats(
    column: Sequence[str],
    field: str,
    lo: float,
    hi: float,
    errors: _RowErrors,
    *,
    optional: bool = False,
) -> list[float | None]:
    """Convert a numeric column, rejecting non-numbers, NaN/inf and values outside [lo, hi].

    The fast path converts the whole column in C and checks the bounds with min/max; ``sum`` catches NaN and
    infinities, which min/max silently step over. Only if that fails is the column walked value by value.
    """
    joined = "".join(column)
    # float() also takes Python's own forms ("4_3.9", non-ASCII digits), which no CSV writer means: those go the
    # slow way and are refused there.
    plain = joined.isascii() and "_" not in joined
    try:
        values: list[float] = list(map(float, column)) if plain else []
    except ValueError:
        values = []
    if values and math.isfinite(sum(values)) and min(values) >= lo and max(values) <= hi:
        return values  # type: ignore[return-value]  # list is invariant; no None on this path
    out: list[float | None] = []
    append = out.append
    for row, raw in enumerate(column):
        text = raw.strip()
        if not text:
            if not optional:
                errors.add(row, field, "empty")
            append(None)
            continue
        try:
            if not text.isascii() or "_" in text:
                raise ValueError(text)
            value = float(text)
        except ValueError:
            errors.add(row, field, f"not a number: {text[:20]!r}")
            append(None)
            continue
        if not (math.isfinite(value) and lo <= value <= hi):
            errors.add(row, field, f"{text[:20]} is outside [{lo:g}, {hi:g}]")
        append(value)
    return out


def _distinct(column: Sequence[str], field: str, convert: Callable[[str], Any], errors: _RowErrors) -> dict[str, Any]:
    """Convert each distinct value of a low-cardinality column once; record the rows holding bad values."""
    converted: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for raw in set(column):
        try:
            converted[raw] = convert(raw)
        except ValueError as exc:
            failures[raw] = str(exc)
    if failures:
        for row, raw in enumerate(column):
            reason = failures.get(raw)
            if reason is not None:
                errors.add(row, field, reason)
    return converted


def _daynight(raw: str) -> DayNight:
    text = raw.strip().upper()
    if text == "D":
        return DayNight.DAY
    if text == "N":
        return DayNight.NIGHT
    raise ValueError(f"daynight must be D or N, not {raw.strip()[:20]!r}")


def _fire_type(raw: str) -> int | None:
    text = raw.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"type must be a non-negative integer, not {text[:20]!r}")
    return int(text)


def _country_id(raw: str) -> str | None:
    return raw.strip() or None
