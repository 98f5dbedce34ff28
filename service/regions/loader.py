"""Read administrative boundaries from GeoJSON or Shapefile into WGS-84 :class:`RegionUnit` records.

Nothing here touches the database: :func:`read_units` returns every unit of a file or raises one
:class:`~service.errors.InputError` that names the file and the feature (row) to fix, so an import is all or
nothing. Invalid polygons are repaired with ``shapely.make_valid`` and reported, never silently changed.

Attribute names are detected (``code``/``adcode``/``XZQDM``/``行政区划代码``…, ``name``/``XZQMC``/``名称``…,
``parent``/``parent_code``/``上级代码``…) or given explicitly. A shapefile's text is decoded as its ``.cpg`` says
(any case of the extension); without one as UTF-8 when all of it is valid UTF-8 (with a warning), else GBK. GeoJSON
is UTF-8, GBK accepted with a warning. Codes and names longer than the database columns are refused.

The official code list (``streets_2201.csv`` form: ``code,name,<parent>Code…``) can fill missing codes (by unique
name), names (by code) and parent codes.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import struct
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapefile  # pyshp
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import shape

from service.errors import InputError, UnknownCRSError
from service.regions.crs import KNOWN_CRS_NAMES, SourceCRS, geometry_to_wgs84, parse_crs
from service.regions.types import MAX_CODE_CHARS, MAX_NAME_CHARS, RegionLevel, RegionUnit

# Latin names first, then the Chinese column names of GIS exports (a DBF field name holds at most 10 bytes, 5 GBK
# characters, hence the truncated 行政区划代 of 行政区划代码).
CODE_FIELDS = (
    "code",
    "adcode",
    "region_code",
    "xzqdm",
    "xzqh",
    "pac",
    "gb",
    "dm",
    "行政区划代码",
    "行政区划代",
    "行政区代码",
    "区划代码",
    "行政代码",
    "代码",
)
NAME_FIELDS = (
    "name",
    "region_name",
    "xzqmc",
    "mc",
    "zlmc",
    "名称",
    "行政区名称",
    "行政区划名称",
    "行政区名",
    "区划名称",
)
PARENT_FIELDS = ("parent_code", "parent", "parentcode", "sjxzqdm", "上级行政区划代码", "上级代码", "上级区划代码")
CROPLAND_FIELDS = ("cropland_ha", "cropland", "gdmj_ha")
# Parent columns of the official code lists, most specific first.
CODE_LIST_PARENT_FIELDS = ("parent_code", "parentCode", "streetCode", "areaCode", "cityCode", "provinceCode")


@dataclass(frozen=True, slots=True)
class Repair:
    """A polygon that was invalid and was repaired, with shapely's reason."""

    row: int
    code: str
    reason: str


@dataclass(slots=True)
class ReadReport:
    """What :func:`read_units` did besides returning units."""

    source: str
    repairs: list[Repair] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def normalise_code(value: object) -> str:
    """An administrative code as text; the short province/city forms (``22``, ``2201``) padded to 6 digits."""
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():  # codes read as floats from shapefile DBF numbers
        text = text[:-2]
    if text.isdigit() and len(text) in (2, 4):
        text = text.ljust(6, "0")
    return text


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _find(properties: Mapping[str, Any], candidates: Iterable[str]) -> tuple[str, Any] | None:
    """The first candidate attribute (matched case-insensitively) that has a value: its name as the file spells it
    (for errors), and the value."""
    lowered = {k.lower(): k for k in properties}
    for name in candidates:
        key = lowered.get(name)
        if key is not None and not _blank(properties[key]):
            return key, properties[key]
    return None


def _pick(properties: Mapping[str, Any], explicit: str | None, candidates: Iterable[str]) -> Any:
    if explicit:
        return properties.get(explicit)
    found = _find(properties, candidates)
    return None if found is None else found[1]


def _scalar_text(value: Any, *, source: str, row: int, field: str) -> str | None:
    """An attribute as stripped text, None when absent or blank; an object or a list is an error (it was stored as
    its Python repr)."""
    if isinstance(value, Mapping | list | tuple):
        raise InputError(
            f"{json.dumps(value, ensure_ascii=False, default=str)[:80]} is not a text or number",
            source=source,
            location=f"feature {row}",
            field=field,
        )
    return None if _blank(value) else str(value).strip()


def _parent_value(value: Any, *, source: str, row: int) -> str | None:
    if isinstance(value, Mapping):  # DataV: "parent": {"adcode": 220100}
        value = value.get("adcode") or value.get("code")
    text = _scalar_text(value, source=source, row=row, field="parent_code")
    return normalise_code(text) if text is not None else None


def _check_width(value: str | None, limit: int, *, source: str, row: int, field: str) -> None:
    if value is not None and len(value) > limit:
        raise InputError(
            f"{value[:40]!r}… has {len(value)} characters; at most {limit} fit in the database",
            source=source,
            location=f"feature {row}",
            field=field,
        )


def _polygonal(geometry: shapely.Geometry) -> shapely.Polygon | shapely.MultiPolygon | None:
    """Only the polygonal part of a (repaired) geometry; None if there is none."""
    if isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
        return geometry
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, shapely.Polygon | shapely.MultiPolygon)]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if isinstance(merged, shapely.Polygon | shapely.MultiPolygon) else None


def _decode_geojson(raw: bytes, path: Path, notes: list[str]) -> str:
    """GeoJSON text: UTF-8 (RFC 7946), else GBK with a note in the report.

    GeoJSON written by Python on a Chinese Windows (``open()`` defaults to cp936) is GBK; it was refused. GB18030
    (the superset of GBK) is tried strictly, so a file in neither encoding is still an error naming its line.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError:
            line = raw.count(b"\n", 0, utf8_error.start) + 1
            raise InputError(
                f"the text is neither UTF-8 nor GBK (byte {utf8_error.start}): save the file as UTF-8",
                source=str(path),
                location=f"line {line}",
            ) from utf8_error
        notes.append("the file is not UTF-8 as GeoJSON must be: read as GBK (GB18030); check the names")
        return text


# The CRSs whose coordinates are longitude/latitude degrees on WGS-84 or within a metre of it (CGCS2000): a file that
# declares one of them agrees with any of the named systems. GCJ-02 and BD-09 have no code of their own, so their
# files declare WGS-84's (or nothing).
_DEGREES_CRS = (CRS.from_epsg(4326), CRS.from_epsg(4490))


_OFFSET_SYSTEM_LABELS = {"gcj02": "GCJ-02", "bd09": "BD-09"}


def _offset_system_named(declared: str) -> str | None:
    """``gcj02`` or ``bd09`` when a ``crs`` member names one of the offset systems, which have no EPSG code
    (pyproj knows none of them), by a name :func:`~service.regions.crs.parse_crs` takes for it (``GCJ02``,
    ``GCJ-02``, ``bd09ll``, ``urn:…:GCJ02``: after the last colon, letters and digits only), else None."""
    key = "".join(ch for ch in declared.strip().lower().rsplit(":", 1)[-1] if ch.isalnum())
    try:
        name = parse_crs(key).name
    except UnknownCRSError:
        return None
    return name if name in _OFFSET_SYSTEM_LABELS else None


def _crs_member_note(data: Mapping[str, Any], crs: SourceCRS) -> str | None:
    """A note when a GeoJSON's ``crs`` member (GeoJSON 2008; RFC 7946 dropped it) contradicts the CRS the import was
    given, or names a CRS pyproj does not know; None when it agrees or is absent.

    A warning, not a refusal: the import's CRS is what the operator chose and decides how the coordinates are read,
    and tools write stale members (a file of degrees declaring Web Mercator). A wrong choice of projected against
    degrees is refused anyway, as coordinates out of range; the note covers the quiet cases (a GCJ-02 file imported
    as another system's, metres of one projected zone read as another's)."""
    member = data.get("crs")
    properties = member.get("properties") if isinstance(member, Mapping) else None
    declared = properties.get("name") if isinstance(properties, Mapping) else None
    if not isinstance(declared, str) or not declared.strip():
        return None
    read_as = f"the coordinates were read as {crs}, the CRS the import was given; check which is right"
    # GCJ-02 and BD-09 are named by tools that write them (a "GCJ02" member with --crs gcj02 was warned about as a
    # CRS pyproj does not know): they agree with the same --crs and contradict any other.
    offset = _offset_system_named(declared)
    if offset is not None:
        if crs.name == offset:
            return None
        return f"the file's 'crs' member declares {declared} ({_OFFSET_SYSTEM_LABELS[offset]}), not {crs}: {read_as}"
    try:
        named = CRS.from_user_input(declared)
    except CRSError:
        return f"the file's 'crs' member declares {declared!r}, a CRS pyproj does not know: {read_as}"
    if crs.name in KNOWN_CRS_NAMES:
        agrees = any(named.equals(degrees, ignore_axis_order=True) for degrees in _DEGREES_CRS)
    else:
        agrees = named.equals(CRS.from_user_input(crs.name), ignore_axis_order=True)
    return None if agrees else f"the file's 'crs' member declares {declared} ({named.name}), not {crs}: {read_as}"


def _iter_geojson(
    path: Path, notes: list[str], crs: SourceCRS | None = None
) -> Iterator[tuple[int, dict[str, Any], dict[str, Any] | None]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc}", source=str(path)) from exc
    text = _decode_geojson(raw, path, notes)
    if not text.strip():
        raise InputError("the file is empty", source=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}", source=str(path)
        ) from exc
    if not isinstance(data, dict) or "type" not in data:
        raise InputError("not a GeoJSON object (no 'type')", source=str(path))
    crs_note = _crs_member_note(data, crs) if crs is not None else None
    if crs_note is not None:
        notes.append(crs_note)
    if data["type"] == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InputError("FeatureCollection without a 'features' list", source=str(path))
    elif data["type"] == "Feature":
        features = [data]
    else:  # a bare geometry
        features = [{"type": "Feature", "properties": {}, "geometry": data}]
    for row, feature in enumerate(features, start=1):
        if not isinstance(feature, dict):
            raise InputError("feature is not a JSON object", source=str(path), location=f"feature {row}")
        properties = feature.get("properties")
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            raise InputError("'properties' is not a JSON object", source=str(path), location=f"feature {row}")
        yield row, properties, feature.get("geometry")


# What pyshp raises on truncated or foreign files.
_SHAPEFILE_ERRORS = (
    shapefile.ShapefileException,
    OSError,
    zipfile.BadZipFile,
    struct.error,
    ValueError,
    EOFError,
)


def _sibling_cpg(path: Path) -> Path | None:
    """The ``.cpg`` beside ``path`` with the same stem, its extension in any case (ArcGIS on Windows writes
    ``TOWNS.CPG``; looking only for ``.cpg`` assumed GBK and garbled UTF-8 names without a word)."""
    exact = path.with_suffix(".cpg")
    if exact.exists():
        return exact
    try:
        return next(
            (p for p in sorted(path.parent.iterdir()) if p.stem == path.stem and p.suffix.lower() == ".cpg"), None
        )
    except OSError:
        return None


def _declared_encoding(path: Path) -> str | None:
    """The text of the shapefile's ``.cpg`` (beside it, or inside the ``.zip`` it is), None without one."""
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                shapefiles = [n for n in names if n.lower().endswith(".shp")]
                if len(shapefiles) > 1:  # pyshp's refusal quoted Python object reprs
                    raise InputError(
                        f"the zip holds {len(shapefiles)} shapefiles ({', '.join(shapefiles[:5])}): zip one shapefile"
                        " per file",
                        source=str(path),
                    )
                member = next((n for n in names if n.lower().endswith(".cpg")), None)
                if member is not None:
                    return archive.read(member).decode("ascii", errors="replace").strip()
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"cannot read the zip: {exc}", source=str(path)) from exc
    cpg = _sibling_cpg(path)
    return cpg.read_text(errors="replace").strip() if cpg is not None else None


def _codec(declared: str, path: Path) -> str:
    """A Python codec for a ``.cpg``'s text: code page numbers and ArcGIS's ``ANSI 936`` forms included."""
    text = declared.strip()
    number = text.upper().removeprefix("ANSI").strip()
    candidates = [text, f"cp{number}"] if number.isdigit() else [text]
    if number == "65001":
        candidates.insert(0, "utf-8")
    for name in candidates:
        try:
            return codecs.lookup(name).name
        except LookupError:
            continue
    raise InputError(
        f"the .cpg names the encoding {declared!r}, which is unknown: write utf-8 or gbk in it", source=str(path)
    )


def _is_decoding_error(exc: BaseException) -> bool:
    """Whether pyshp failed to decode attribute text: UnicodeDecodeError up to pyshp 2, its own
    ``dbfFileException("Could not decode …")`` from pyshp 3 on."""
    return isinstance(exc, UnicodeDecodeError) or (
        isinstance(exc, shapefile.ShapefileException) and str(exc).startswith("Could not decode")
    )


def _encoding_error(path: Path, encoding: str, exc: BaseException, location: str | None = None) -> InputError:
    fix = (
        f"its .cpg says {encoding}: correct it"
        if _declared_encoding(path)
        else "add a .cpg file naming it (GBK was assumed)"
    )
    reason = exc.reason if isinstance(exc, UnicodeDecodeError) else f"cannot decode it as {encoding}"
    return InputError(
        f"attribute text is not in the expected encoding ({reason}); {fix}", source=str(path), location=location
    )


def _text_without_cpg(path: Path) -> str:
    """How a shapefile without a ``.cpg`` reads as UTF-8: ``ascii`` (no text beyond ASCII, any encoding reads it),
    ``utf-8`` (valid UTF-8 with other characters) or ``other``.

    pyshp and many scripts write UTF-8 without a ``.cpg``; read as GBK it was silently garbled (丙镇 became 涓欓晣: 113
    of Changchun's 246 township names in UTF-8 are also valid GBK bytes). GBK text is practically never valid UTF-8
    (none of those 246 names is), so valid UTF-8 is read as UTF-8. A file pyshp cannot read at all is ``other``: the
    GBK reading reports why.
    """
    try:
        with shapefile.Reader(str(path), encoding="utf-8", encodingErrors="strict") as reader:
            texts = [str(f[0]) for f in reader.fields]
            for record in reader.iterRecords():
                texts.extend(v for v in record if isinstance(v, str))
    except (*_SHAPEFILE_ERRORS, UnicodeDecodeError):
        return "other"
    return "ascii" if all(t.isascii() for t in texts) else "utf-8"


def _shapefile_reader(path: Path, notes: list[str]) -> shapefile.Reader:
    declared = _declared_encoding(path)
    if declared:
        encoding = _codec(declared, path)
    elif _text_without_cpg(path) == "utf-8":
        encoding = "utf-8"
        notes.append("no .cpg names the encoding: the text is valid UTF-8 and was read as UTF-8; add a .cpg to be sure")
    else:
        # Chinese shapefiles without a .cpg are usually GBK; pyshp decodes names with this encoding.
        encoding = "gbk"
    try:
        with warnings.catch_warnings():
            # pyshp compares the .cpg's text with the codec name ("ANSI 936" vs cp936) and warns; read above.
            warnings.filterwarnings("ignore", message="Specified encoding", category=UserWarning)
            return shapefile.Reader(str(path), encoding=encoding, encodingErrors="strict")
    except _SHAPEFILE_ERRORS as exc:
        if _is_decoding_error(exc):  # the field names
            raise _encoding_error(path, encoding, exc) from exc
        raise InputError(f"cannot read shapefile: {exc or type(exc).__name__}", source=str(path)) from exc


def _iter_shapefile(path: Path, notes: list[str]) -> Iterator[tuple[int, dict[str, Any], dict[str, Any] | None]]:
    reader = _shapefile_reader(path, notes)
    with reader:
        if reader.numRecords == 0:
            raise InputError("the shapefile has no features", source=str(path))
        row = 0
        try:
            for row, item in enumerate(reader.iterShapeRecords(), start=1):
                geometry = item.shape.__geo_interface__ if item.shape.shapeType != shapefile.NULL else None
                yield row, item.record.as_dict(), geometry
        except _SHAPEFILE_ERRORS as exc:  # UnicodeDecodeError is a ValueError
            if _is_decoding_error(exc):
                raise _encoding_error(path, reader.encoding, exc, f"record {row + 1}") from exc
            raise InputError(f"cannot read shapefile: {exc or type(exc).__name__}", source=str(path)) from exc


def iter_features(
    path: Path, notes: list[str] | None = None, crs: SourceCRS | None = None
) -> Iterator[tuple[int, dict[str, Any], dict[str, Any] | None]]:
    """Yield (row, properties, GeoJSON geometry) for a GeoJSON, Shapefile or zipped Shapefile; what a reader
    had to guess (the text encoding), and a GeoJSON ``crs`` member that contradicts ``crs`` (the CRS the caller
    reads the coordinates in), are appended to ``notes``."""
    if not path.exists():
        raise InputError("no such file", source=str(path))
    suffix = path.suffix.lower()
    if suffix in (".json", ".geojson"):
        return _iter_geojson(path, notes if notes is not None else [], crs)
    if suffix in (".shp", ".zip"):
        return _iter_shapefile(path, notes if notes is not None else [])
    raise InputError(f"unsupported file type {suffix!r}: use .geojson/.json, .shp or a zipped .shp", source=str(path))


@dataclass(frozen=True, slots=True)
class CodeList:
    """An official code list: code → (name, parent code), and name → codes."""

    names: dict[str, str]
    parents: dict[str, str | None]
    by_name: dict[str, list[str]]

    @classmethod
    def read(cls, path: Path) -> CodeList:
        """Read a ``code,name[,parent columns]`` CSV such as ``streets_2201.csv``."""
        names: dict[str, str] = {}
        parents: dict[str, str | None] = {}
        by_name: dict[str, list[str]] = {}
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle)
                header = reader.fieldnames or []
                missing = [c for c in ("code", "name") if c not in header]
                if missing:
                    raise InputError(
                        f"code list lacks column(s) {', '.join(missing)}", source=str(path), location="line 1"
                    )
                parent_field = next((f for f in CODE_LIST_PARENT_FIELDS if f in header), None)
                for row, record in enumerate(reader, start=2):
                    code = normalise_code(record.get("code") or "")
                    name = (record.get("name") or "").strip()
                    if not code or not name:
                        raise InputError("empty code or name", source=str(path), location=f"line {row}")
                    names[code] = name
                    parent = (record.get(parent_field) or "").strip() if parent_field else ""
                    parents[code] = normalise_code(parent) if parent else None
                    by_name.setdefault(name, []).append(code)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read code list: {exc}", source=str(path)) from exc
        if not names:
            raise InputError("the code list is empty", source=str(path))
        return cls(names, parents, by_name)


def _cropland_ha(properties: Mapping[str, Any], *, source: str, row: int) -> float | None:
    """The unit's cropland area in hectares (the density basis of the scores), or None when the file gives none.

    Refused, naming the attribute as the file spells it: text that is not a number, a true/false value, NaN or
    infinity (JSON files may hold ``NaN``/``Infinity``; a shapefile's ``1e999`` reads as infinity), and a negative
    area. Any of them stored made every density of the unit NaN or infinite, or negative (a score raised by fires).
    Zero is kept: a unit with no cropland (an urban 街道), whose density falls back to its total area.
    """
    found = _find(properties, CROPLAND_FIELDS)
    if found is None:
        return None
    attribute, value = found
    if isinstance(value, bool):
        problem = "is not a number"
    else:
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError, OverflowError):
            problem = "is not a number"
        else:
            if not math.isfinite(number):
                problem = "is not a finite number"
            elif number < 0:
                problem = "is negative"
            else:
                return number
    raise InputError(
        f"cropland area {value!r} {problem} (hectares)", source=source, location=f"feature {row}", field=attribute
    )


def read_units(
    path: Path,
    *,
    level: RegionLevel,
    crs: SourceCRS,
    codes: CodeList | None = None,
    code_field: str | None = None,
    name_field: str | None = None,
    parent_field: str | None = None,
) -> tuple[list[RegionUnit], ReadReport]:
    """Read every unit of ``path`` (all or nothing) converted from ``crs`` to WGS-84."""
    report = ReadReport(source=str(path))
    units: list[RegionUnit] = []
    seen: dict[str, int] = {}
    source = str(path)
    for row, properties, geometry_json in iter_features(path, report.warnings, crs):
        if geometry_json is None:
            raise InputError("feature has no geometry", source=source, location=f"feature {row}")
        try:
            with warnings.catch_warnings():
                # NaN coordinates ("invalid value encountered in linearrings"): refused below, in one line
                warnings.simplefilter("ignore", RuntimeWarning)
                geometry = shape(geometry_json)
        except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException) as exc:
            raise InputError(
                f"unreadable geometry: {exc}", source=source, location=f"feature {row}", field="geometry"
            ) from exc
        if not isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
            raise InputError(
                f"geometry is a {geometry.geom_type}, not a Polygon or MultiPolygon",
                source=source,
                location=f"feature {row}",
                field="geometry",
            )
        if geometry.is_empty:
            raise InputError("geometry is empty", source=source, location=f"feature {row}", field="geometry")
        coords = shapely.get_coordinates(geometry)
        if not np.isfinite(coords).all():
            raise InputError(
                "geometry has non-finite coordinates",
                source=source,
                location=f"feature {row}",
                field="geometry",
            )

        raw_code = _scalar_text(_pick(properties, code_field, CODE_FIELDS), source=source, row=row, field="code")
        name = _scalar_text(_pick(properties, name_field, NAME_FIELDS), source=source, row=row, field="name")
        code = normalise_code(raw_code) if raw_code is not None else None
        parent = _parent_value(_pick(properties, parent_field, PARENT_FIELDS), source=source, row=row)
        if codes is not None:
            if code is None and name is not None:
                matches = codes.by_name.get(name, [])
                if len(matches) == 1:
                    code = matches[0]
                elif len(matches) > 1:
                    raise InputError(
                        f"name {name!r} matches several codes in the code list ({', '.join(matches)}); give the code",
                        source=source,
                        location=f"feature {row}",
                    )
            if code is not None and code in codes.names:
                listed = codes.names[code]
                if name is None:
                    name = listed
                elif name != listed:
                    report.warnings.append(
                        f"feature {row}: name {name!r} differs from the code list's {listed!r} for {code}"
                    )
                if parent is None:
                    parent = codes.parents.get(code)
            elif code is not None:
                report.warnings.append(f"feature {row}: code {code} is not in the code list")
        if code is None:
            raise InputError(
                "no unit code (looked for " + ", ".join([code_field] if code_field else CODE_FIELDS) + ")",
                source=source,
                location=f"feature {row}",
                field="code",
            )
        if name is None:
            name = code
            report.warnings.append(f"feature {row}: unit {code} has no name; using its code")
        _check_width(code, MAX_CODE_CHARS, source=source, row=row, field="code")
        _check_width(name, MAX_NAME_CHARS, source=source, row=row, field="name")
        _check_width(parent, MAX_CODE_CHARS, source=source, row=row, field="parent_code")
        if code in seen:
            raise InputError(
                f"code {code} appears twice (also feature {seen[code]})",
                source=source,
                location=f"feature {row}",
                field="code",
            )
        seen[code] = row

        geometry = geometry_to_wgs84(crs, geometry)
        lon, lat = shapely.get_coordinates(geometry).T
        if lon.min() < -180 or lon.max() > 180 or lat.min() < -90 or lat.max() > 90:
            raise InputError(
                f"coordinates are outside longitude/latitude range after conversion from {crs}:"
                " is the declared CRS right?",
                source=source,
                location=f"feature {row}",
                field="geometry",
            )
        if not geometry.is_valid:
            reason = shapely.is_valid_reason(geometry)
            repaired = _polygonal(shapely.make_valid(geometry))
            if repaired is None or repaired.is_empty:
                raise InputError(
                    f"invalid polygon that cannot be repaired ({reason})",
                    source=source,
                    location=f"feature {row}",
                    field="geometry",
                )
            report.repairs.append(Repair(row, code, reason))
            geometry = repaired
        cropland_ha = _cropland_ha(properties, source=source, row=row)
        units.append(
            RegionUnit(
                code=code,
                name=name,
                level=level,
                geometry=geometry,
                parent_code=parent,
                cropland_ha=cropland_ha,
            )
        )
    if not units:
        raise InputError("the file has no features", source=source)
    return units, report
