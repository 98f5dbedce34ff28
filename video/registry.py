"""The camera registry: every tower camera's site, lens and patrol presets, as typed records with JSON/TOML forms.

Why a registry of its own (and not rows the service owns): the patrol workers need the geometry of a camera to turn
a box into a bearing wedge, and they must never import ``service``. So the records live here, are pure (no I/O
except :func:`load_registry`/:func:`save_registry`), and round-trip through a plain dict
(:meth:`CameraRegistry.to_dict` / :meth:`CameraRegistry.from_dict`) that the service can persist as it likes and
hand back to the workers.

Geometry reuses :mod:`video.camera` (:class:`~video.camera.CameraSite`, :class:`~video.camera.ZoomLens`,
:class:`~video.camera.Intrinsics`, :class:`~video.camera.PtzPose`), so the conventions are the same: pan is the
camera's own reading (made a true bearing by the site's ``heading_offset_deg``), tilt is positive up.

Every validation error is a :class:`RegistryError` naming the exact place, e.g.
``cameras[0].presets[2].cadence_s: must be within [0.01, 86400], got 0`` (and the file, when read from one), so an
operator can fix a hand-edited TOML file without guessing.

The dict form (JSON; TOML has the same tables)::

    {"schema_version": 1,
     "cameras": [{"id": "nongan-07", "name": "农安7号塔",
                  "site": {"latitude": 44.43, "longitude": 125.17, "mast_height_m": 40.0,
                           "ground_elevation_m": 190.0, "heading_offset_deg": 0.0, "tilt_offset_deg": 0.0},
                  "lens": {"type": "zoom", "width": 1920, "height": 1080,
                           "hfov_table": [[1.0, 58.0], [4.0, 15.2]], "distortion": []},
                  "sigma_pan_deg": 0.2, "sigma_tilt_deg": 0.1, "max_range_m": 8000.0, "min_range_m": 0.0,
                  "dem": null,
                  "presets": [{"id": "p1", "name": "", "pan_deg": 30.0, "tilt_deg": -0.8, "zoom": 1.0,
                               "roll_deg": 0.0, "source": "rtsp://cam/ch1", "source_kind": "rtsp",
                               "http_auth": "basic", "cadence_s": 60.0, "ignore_mask": [[[0, 0], [10, 0], [10, 5]]]}]}]}

``lens`` may instead be ``{"type": "intrinsics", "width", "height", "fx", "fy", "cx", "cy", "distortion"}``.
``dem`` (a DEM GeoTIFF path) and ``source_kind`` are omitted in TOML when unset (TOML has no null).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from video.camera import CameraSite, Intrinsics, Lens, PtzPose, ZoomLens, lens_intrinsics
from video.errors import InputError
from video.sources import redact_url, url_userinfo

__all__ = [
    "ID_PATTERN",
    "SCHEMA_VERSION",
    "CameraRecord",
    "CameraRegistry",
    "HttpAuth",
    "PresetRecord",
    "RegistryError",
    "SourceKind",
    "infer_source_kind",
    "load_registry",
    "parse_registry",
    "save_registry",
]

SCHEMA_VERSION: Final = 1
#: Camera and preset ids end up in Redis keys, sighting keys and URLs: keep them to a safe, readable alphabet.
ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SourceKind = Literal["rtsp", "mjpeg", "snapshot", "file", "folder"]
HttpAuth = Literal["basic", "digest"]
_SOURCE_KINDS: Final[tuple[str, ...]] = get_args(SourceKind)
_HTTP_AUTHS: Final[tuple[str, ...]] = get_args(HttpAuth)
_MIN_CADENCE_S: Final = 0.01
_MAX_CADENCE_S: Final = 86_400.0
#: More tiles than this per side would cost more network passes per frame than a patrol cadence allows.
_MAX_TILES: Final = 6
_MAX_SUN_GLARE_DEG: Final = 30.0  # wider hides most of a tower camera's view whenever the sun is in it
#: Heights a site can have (the DEM rule of ``video.ground``: the Dead Sea shore to above Everest).
_SITE_ELEVATION_M: Final = (-1000.0, 9000.0)
#: Pan readings and heading offsets beyond a full turn either way are typos or another unit (400 gon is 360°), and
#: are refused rather than wrapped: a wrapped typo would put every wedge of the camera in a wrong direction.
_MAX_ANGLE_DEG: Final = 360.0


class RegistryError(InputError):
    """The registry (or a file holding it) is malformed; the message names the file, the record and the field."""


def infer_source_kind(source: str) -> SourceKind:
    """The frame-source kind a URL or path implies when the preset does not say.

    ``rtsp://``/``rtsps://`` → ``rtsp``; ``http(s)://`` → ``snapshot`` (a PTZ patrol grabs one still per cadence;
    an MJPEG stream must be declared ``mjpeg``, since nothing in its URL says so); an existing folder → ``folder``;
    anything else → ``file``.
    """
    lowered = source.lower()
    if lowered.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if lowered.startswith(("http://", "https://")):
        return "snapshot"
    if lowered.startswith("file://"):
        source = source[len("file://") :]
    return "folder" if Path(source).is_dir() else "file"


def _check_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise RegistryError(
            f"must be 1–64 characters of A–Z a–z 0–9 . _ - (starting with a letter or digit), got {value!r}",
            field=where,
        )
    return value


def _number(value: object, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RegistryError(f"must be a finite number, got {value!r}", field=where)
    if not low <= value <= high:
        raise RegistryError(f"must be within [{low:g}, {high:g}], got {value:g}", field=where)
    return float(value)


def _rewrap(exc: InputError, where: str) -> RegistryError:
    """An error raised inside a record (or a geometry type), re-rooted at the place the record came from."""
    message = str(exc)
    if exc.field is None:
        return RegistryError(message, field=where)
    return RegistryError(message.removeprefix(f"{exc.field}: "), field=f"{where}.{exc.field}")


@dataclass(frozen=True, slots=True)
class PresetRecord:
    """One patrol position of a camera, with the frame source that shows exactly that position.

    Attributes:
        id: unique within the camera.
        pan_deg, tilt_deg, zoom, roll_deg: the PTZ reading at this preset (camera conventions of
            :mod:`video.camera`; tilt positive up).
        source: the URL or path frames come from (credentials may be in the URL; see
            :func:`video.sources.redact_url` before logging it); empty when frames arrive some other way.
        source_kind: how to read ``source``; ``None`` means :func:`infer_source_kind`.
        http_auth: how credentials in an HTTP URL are sent (Hikvision ISAPI snapshots want ``digest``).
        cadence_s: seconds between frames analysed at this preset (Pyronear: ~30 s per pose; 蓝天卫士 towers
            sweep 360° in 1–3 min).
        ignore_mask: polygons in frame pixels where detections never count (a chimney, a dusty road).
        name: free text for operators.
        tiles: (cols, rows) of overlapping tiles the detector also runs on (``detector.tiling``), for wide
            long-range views where an early plume is a few dozen pixels; 3×2 costs seven network passes per
            frame instead of one, and finds more false smoke on look-alikes (docs/detector.md). ``None`` (the
            default) runs on the whole frame only.
        sun_glare_deg: detections mostly inside this many degrees of the sun (computed for each frame's capture
            time, :mod:`video.sun`) are ignored, as in a drawn mask; 0 (the default) turns it off. Needs a
            calibrated heading; 3–5° covers the disc's glare and the flare around it.
    """

    id: str
    pan_deg: float
    tilt_deg: float
    zoom: float = 1.0
    roll_deg: float = 0.0
    source: str = ""
    source_kind: SourceKind | None = None
    http_auth: HttpAuth = "basic"
    cadence_s: float = 60.0
    ignore_mask: tuple[tuple[tuple[float, float], ...], ...] = ()
    name: str = ""
    tiles: tuple[int, int] | None = None
    sun_glare_deg: float = 0.0

    def __post_init__(self) -> None:
        _check_id(self.id, "id")
        _number(self.pan_deg, "pan_deg", -_MAX_ANGLE_DEG, _MAX_ANGLE_DEG)
        _number(self.tilt_deg, "tilt_deg", -90.0, 90.0)
        _number(self.zoom, "zoom")
        _number(self.roll_deg, "roll_deg", -180.0, 180.0)
        _number(self.cadence_s, "cadence_s", _MIN_CADENCE_S, _MAX_CADENCE_S)
        _number(self.sun_glare_deg, "sun_glare_deg", 0.0, _MAX_SUN_GLARE_DEG)
        if not isinstance(self.source, str):
            raise RegistryError(f"must be a string, got {self.source!r}", field="source")
        if self.source_kind is not None and self.source_kind not in _SOURCE_KINDS:
            raise RegistryError(
                f"must be one of {', '.join(_SOURCE_KINDS)}, got {self.source_kind!r}", field="source_kind"
            )
        if self.http_auth not in _HTTP_AUTHS:
            raise RegistryError(f"must be one of {', '.join(_HTTP_AUTHS)}, got {self.http_auth!r}", field="http_auth")
        kind = self.resolved_kind
        lowered = self.source.lower()
        if kind is not None and not self.source:
            raise RegistryError(f"a {kind} source needs a URL or path", field="source")
        shown = redact_url(self.source)  # errors are logged and returned: never with the stream's password
        if kind in ("mjpeg", "snapshot") and not lowered.startswith(("http://", "https://")):
            raise RegistryError(f"a {kind} source needs an http:// or https:// URL, got {shown!r}", field="source")
        if kind == "rtsp" and not lowered.startswith(("rtsp://", "rtsps://")):
            raise RegistryError(f"an rtsp source needs an rtsp:// URL, got {shown!r}", field="source")
        if (span := url_userinfo(self.source)) is not None and any(c in self.source[span[0] : span[1]] for c in "#?/"):
            raise RegistryError(
                "the user part holds #, ? or /: percent-encode them (%23, %3F, %2F), or the URL is read wrongly "
                f"(got {shown!r})",
                field="source",
            )
        for i, polygon in enumerate(self.ignore_mask):
            if len(polygon) < 3:
                raise RegistryError(f"a polygon needs at least 3 points, got {len(polygon)}", field=f"ignore_mask[{i}]")
            for j, point in enumerate(polygon):
                if len(point) != 2:
                    raise RegistryError("a point is [x, y]", field=f"ignore_mask[{i}][{j}]")
                for k, value in enumerate(point):
                    _number(value, f"ignore_mask[{i}][{j}][{k}]")
        if self.tiles is not None and (
            len(self.tiles) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= _MAX_TILES for n in self.tiles)
        ):
            raise RegistryError(f"must be [cols, rows], each 1..{_MAX_TILES}, got {self.tiles!r}", field="tiles")

    @property
    def resolved_kind(self) -> SourceKind | None:
        """``source_kind``, or what the source URL/path implies; ``None`` when the preset has no source (its frames
        then arrive some other way, e.g. as Celery payloads from a grabber elsewhere)."""
        if self.source_kind is not None:
            return self.source_kind
        return infer_source_kind(self.source) if self.source else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``source_kind`` omitted when unset)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "pan_deg": self.pan_deg,
            "tilt_deg": self.tilt_deg,
            "zoom": self.zoom,
            "roll_deg": self.roll_deg,
            "source": self.source,
            "http_auth": self.http_auth,
            "cadence_s": self.cadence_s,
            "ignore_mask": [[list(p) for p in polygon] for polygon in self.ignore_mask],
        }
        if self.source_kind is not None:
            out["source_kind"] = self.source_kind
        if self.tiles is not None:
            out["tiles"] = list(self.tiles)
        if self.sun_glare_deg:
            out["sun_glare_deg"] = self.sun_glare_deg
        return out


@dataclass(frozen=True, slots=True)
class CameraRecord:
    """One tower camera: where it is, its lens, its pose uncertainty and its patrol presets (in patrol order).

    ``sigma_pan_deg``/``sigma_tilt_deg`` are the whole pose uncertainty of the mount (see
    :class:`video.camera.PtzPose`); ``max_range_m``/``min_range_m`` bound its wedges; ``dem`` is an optional DEM
    GeoTIFF for ground fixes (flat ground at the site elevation otherwise).
    """

    id: str
    site: CameraSite
    lens: Lens
    presets: tuple[PresetRecord, ...] = ()
    name: str = ""
    sigma_pan_deg: float = 0.2
    sigma_tilt_deg: float = 0.1
    max_range_m: float = 8000.0
    min_range_m: float = 0.0
    dem: str | None = None
    _by_id: dict[str, PresetRecord] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_id(self.id, "id")
        _number(self.site.ground_elevation_m, "site.ground_elevation_m", *_SITE_ELEVATION_M)
        _number(self.site.heading_offset_deg, "site.heading_offset_deg", -_MAX_ANGLE_DEG, _MAX_ANGLE_DEG)
        _number(self.sigma_pan_deg, "sigma_pan_deg", 0.0, 90.0)
        _number(self.sigma_tilt_deg, "sigma_tilt_deg", 0.0, 90.0)
        _number(self.max_range_m, "max_range_m", 1.0, 1e6)
        _number(self.min_range_m, "min_range_m", 0.0, 1e6)
        if self.min_range_m >= self.max_range_m:
            raise RegistryError(
                f"must be below max_range_m ({self.max_range_m:g}), got {self.min_range_m:g}", field="min_range_m"
            )
        by_id: dict[str, PresetRecord] = {}
        for i, preset in enumerate(self.presets):
            if preset.id in by_id:
                raise RegistryError(f"duplicate preset id {preset.id!r}", field=f"presets[{i}].id")
            try:
                lens_intrinsics(self.lens, preset.zoom)
            except InputError as exc:
                raise _rewrap(exc, f"presets[{i}]") from None
            by_id[preset.id] = preset
        object.__setattr__(self, "_by_id", by_id)

    def preset(self, preset_id: str) -> PresetRecord:
        """The preset called ``preset_id``.

        Raises:
            RegistryError: the camera has no such preset.
        """
        try:
            return self._by_id[preset_id]
        except KeyError:
            known = ", ".join(self._by_id) or "none"
            raise RegistryError(f"camera {self.id!r} has no preset {preset_id!r} (known: {known})") from None

    def pose(self, preset: PresetRecord | str) -> PtzPose:
        """The :class:`~video.camera.PtzPose` of a preset, with this camera's pose uncertainty."""
        record = self.preset(preset) if isinstance(preset, str) else preset
        return PtzPose(
            pan_deg=record.pan_deg,
            tilt_deg=record.tilt_deg,
            zoom=record.zoom,
            roll_deg=record.roll_deg,
            sigma_pan_deg=self.sigma_pan_deg,
            sigma_tilt_deg=self.sigma_tilt_deg,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``dem`` omitted when unset)."""
        site = self.site
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "site": {
                "latitude": site.latitude,
                "longitude": site.longitude,
                "mast_height_m": site.mast_height_m,
                "ground_elevation_m": site.ground_elevation_m,
                "heading_offset_deg": site.heading_offset_deg,
                "tilt_offset_deg": site.tilt_offset_deg,
            },
            "lens": _lens_to_dict(self.lens),
            "sigma_pan_deg": self.sigma_pan_deg,
            "sigma_tilt_deg": self.sigma_tilt_deg,
            "max_range_m": self.max_range_m,
            "min_range_m": self.min_range_m,
            "presets": [p.to_dict() for p in self.presets],
        }
        if self.dem is not None:
            out["dem"] = self.dem
        return out


def _lens_to_dict(lens: Lens) -> dict[str, Any]:
    if isinstance(lens, ZoomLens):
        return {
            "type": "zoom",
            "width": lens.width,
            "height": lens.height,
            "hfov_table": [[z, h] for z, h in lens.hfov_table],
            "distortion": list(lens.distortion),
        }
    return {
        "type": "intrinsics",
        "width": lens.width,
        "height": lens.height,
        "fx": lens.fx,
        "fy": lens.fy,
        "cx": lens.cx,
        "cy": lens.cy,
        "distortion": list(lens.distortion),
    }


@dataclass(frozen=True, slots=True)
class CameraRegistry:
    """All cameras of a deployment. Camera ids are unique."""

    cameras: tuple[CameraRecord, ...] = ()
    _by_id: dict[str, CameraRecord] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_id: dict[str, CameraRecord] = {}
        for i, camera in enumerate(self.cameras):
            if camera.id in by_id:
                raise RegistryError(f"duplicate camera id {camera.id!r}", field=f"cameras[{i}].id")
            by_id[camera.id] = camera
        object.__setattr__(self, "_by_id", by_id)

    def camera(self, camera_id: str) -> CameraRecord:
        """The camera called ``camera_id``.

        Raises:
            RegistryError: no such camera.
        """
        try:
            return self._by_id[camera_id]
        except KeyError:
            raise RegistryError(f"no camera {camera_id!r} in the registry") from None

    def preset(self, camera_id: str, preset_id: str) -> tuple[CameraRecord, PresetRecord]:
        """A camera and one of its presets."""
        camera = self.camera(camera_id)
        return camera, camera.preset(preset_id)

    def presets(self) -> Iterable[tuple[CameraRecord, PresetRecord]]:
        """Every (camera, preset) pair, cameras in registry order, presets in patrol order."""
        for camera in self.cameras:
            for preset in camera.presets:
                yield camera, preset

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {"schema_version": SCHEMA_VERSION, "cameras": [c.to_dict() for c in self.cameras]}

    def to_json(self) -> str:
        """Pretty JSON, UTF-8 text (Chinese names kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    def to_toml(self) -> str:
        """The same content as TOML (``[[cameras]]`` tables, ``[[cameras.presets]]`` in patrol order)."""
        return _toml_document(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> CameraRegistry:
        """Validate and build a registry from its dict form.

        Raises:
            RegistryError: naming the record and field, e.g. ``cameras[1].lens.hfov_table: …``.
        """
        root = _mapping(data, "registry")
        _check_keys(root, "registry", required=("cameras",), optional=("schema_version",))
        version = root.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise RegistryError(f"unsupported schema_version {version!r} (this code reads {SCHEMA_VERSION})")
        cameras = _sequence(root["cameras"], "cameras")
        return cls(tuple(_camera_from_dict(item, f"cameras[{i}]") for i, item in enumerate(cameras)))


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RegistryError(f"must be a table/object, got {type(value).__name__}", field=where)
    return cast(Mapping[str, Any], value)


def _sequence(value: object, where: str) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise RegistryError(f"must be a list, got {type(value).__name__}", field=where)
    return value


def _check_keys(data: Mapping[str, Any], where: str, *, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    required = tuple(required)
    for key in required:
        if key not in data:
            raise RegistryError(f"missing field {key!r}", field=where)
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise RegistryError(f"unknown field {unknown[0]!r}", field=where)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise RegistryError(f"must be a string, got {value!r}", field=where)
    return value


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RegistryError(f"must be an integer, got {value!r}", field=where)
    return value


def _numbers(value: object, where: str) -> tuple[float, ...]:
    return tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(_sequence(value, where)))


def _lens_from_dict(value: object, where: str) -> Lens:
    data = _mapping(value, where)
    kind = data.get("type")
    try:
        if kind == "zoom":
            _check_keys(data, where, required=("type", "width", "height", "hfov_table"), optional=("distortion",))
            rows = []
            for i, row in enumerate(_sequence(data["hfov_table"], f"{where}.hfov_table")):
                pair = _numbers(row, f"{where}.hfov_table[{i}]")
                if len(pair) != 2:
                    raise RegistryError("a row is [zoom, hfov_deg]", field=f"{where}.hfov_table[{i}]")
                rows.append((pair[0], pair[1]))
            return ZoomLens(
                _int(data["width"], f"{where}.width"),
                _int(data["height"], f"{where}.height"),
                tuple(rows),
                _numbers(data.get("distortion", []), f"{where}.distortion"),
            )
        if kind == "intrinsics":
            keys = ("type", "width", "height", "fx", "fy", "cx", "cy")
            _check_keys(data, where, required=keys, optional=("distortion",))
            return Intrinsics(
                _int(data["width"], f"{where}.width"),
                _int(data["height"], f"{where}.height"),
                fx=_number(data["fx"], f"{where}.fx"),
                fy=_number(data["fy"], f"{where}.fy"),
                cx=_number(data["cx"], f"{where}.cx"),
                cy=_number(data["cy"], f"{where}.cy"),
                distortion=_numbers(data.get("distortion", []), f"{where}.distortion"),
            )
    except RegistryError:
        raise
    except InputError as exc:
        raise _rewrap(exc, where) from None
    raise RegistryError(f"type must be 'zoom' or 'intrinsics', got {kind!r}", field=f"{where}.type")


def _preset_from_dict(value: object, where: str) -> PresetRecord:
    data = _mapping(value, where)
    optional = (
        "name", "zoom", "roll_deg", "source", "source_kind", "http_auth", "cadence_s", "ignore_mask", "tiles",
        "sun_glare_deg",
    )  # fmt: skip
    _check_keys(data, where, required=("id", "pan_deg", "tilt_deg"), optional=optional)
    mask = []
    for i, polygon in enumerate(_sequence(data.get("ignore_mask", []), f"{where}.ignore_mask")):
        points = []
        for j, point in enumerate(_sequence(polygon, f"{where}.ignore_mask[{i}]")):
            xy = _numbers(point, f"{where}.ignore_mask[{i}][{j}]")
            if len(xy) != 2:
                raise RegistryError("a point is [x, y]", field=f"{where}.ignore_mask[{i}][{j}]")
            points.append((xy[0], xy[1]))
        mask.append(tuple(points))
    kind = data.get("source_kind")
    auth = data.get("http_auth", "basic")
    tiles = None if data.get("tiles") is None else tuple(_sequence(data["tiles"], f"{where}.tiles"))
    try:
        return PresetRecord(
            id=_string(data["id"], f"{where}.id"),
            pan_deg=_number(data["pan_deg"], f"{where}.pan_deg"),
            tilt_deg=_number(data["tilt_deg"], f"{where}.tilt_deg"),
            zoom=_number(data.get("zoom", 1.0), f"{where}.zoom"),
            roll_deg=_number(data.get("roll_deg", 0.0), f"{where}.roll_deg"),
            source=_string(data.get("source", ""), f"{where}.source"),
            source_kind=None if kind is None else cast(SourceKind, _string(kind, f"{where}.source_kind")),
            http_auth=cast(HttpAuth, _string(auth, f"{where}.http_auth")),
            cadence_s=_number(data.get("cadence_s", 60.0), f"{where}.cadence_s"),
            ignore_mask=tuple(mask),
            name=_string(data.get("name", ""), f"{where}.name"),
            tiles=tiles,  # its length and values are checked by PresetRecord
            sun_glare_deg=_number(data.get("sun_glare_deg", 0.0), f"{where}.sun_glare_deg"),
        )
    except RegistryError as exc:
        if exc.field is not None and not exc.field.startswith(where):
            raise _rewrap(exc, where) from None
        raise


def _camera_from_dict(value: object, where: str) -> CameraRecord:
    data = _mapping(value, where)
    optional = ("name", "sigma_pan_deg", "sigma_tilt_deg", "max_range_m", "min_range_m", "dem", "presets")
    _check_keys(data, where, required=("id", "site", "lens"), optional=optional)
    site_data = _mapping(data["site"], f"{where}.site")
    site_keys = ("latitude", "longitude", "mast_height_m")
    site_optional = ("ground_elevation_m", "heading_offset_deg", "tilt_offset_deg")
    _check_keys(site_data, f"{where}.site", required=site_keys, optional=site_optional)
    try:
        site = CameraSite(
            **{k: _number(site_data[k], f"{where}.site.{k}") for k in (*site_keys, *site_optional) if k in site_data}
        )
    except RegistryError:
        raise
    except InputError as exc:
        raise _rewrap(exc, f"{where}.site") from None
    lens = _lens_from_dict(data["lens"], f"{where}.lens")
    presets = tuple(
        _preset_from_dict(item, f"{where}.presets[{i}]")
        for i, item in enumerate(_sequence(data.get("presets", []), f"{where}.presets"))
    )
    if not presets:
        # By decision a registry (a file imported, the service's copy) holds no camera without a preset: such a
        # camera is never patrolled, and the health view, which lists presets, would not show it at all.
        raise RegistryError(
            "a camera needs at least one preset (its patrol positions and their sources): without one it is never "
            "patrolled, and the health view does not list it",
            field=f"{where}.presets",
        )
    dem = data.get("dem")
    try:
        return CameraRecord(
            id=_string(data["id"], f"{where}.id"),
            site=site,
            lens=lens,
            presets=presets,
            name=_string(data.get("name", ""), f"{where}.name"),
            sigma_pan_deg=_number(data.get("sigma_pan_deg", 0.2), f"{where}.sigma_pan_deg"),
            sigma_tilt_deg=_number(data.get("sigma_tilt_deg", 0.1), f"{where}.sigma_tilt_deg"),
            max_range_m=_number(data.get("max_range_m", 8000.0), f"{where}.max_range_m"),
            min_range_m=_number(data.get("min_range_m", 0.0), f"{where}.min_range_m"),
            dem=None if dem is None else _string(dem, f"{where}.dem"),
        )
    except RegistryError as exc:
        if exc.field is not None and not exc.field.startswith(where):
            raise _rewrap(exc, where) from None
        raise


def parse_registry(text: str, fmt: Literal["json", "toml"], *, source_name: str = "<registry>") -> CameraRegistry:
    """Parse registry text; every error message starts with ``source_name``.

    Raises:
        RegistryError: malformed JSON/TOML (with line and column) or an invalid record.
    """
    try:
        data: object = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(
            f"{source_name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{source_name}: malformed TOML: {exc}") from None
    try:
        return CameraRegistry.from_dict(data)
    except RegistryError as exc:
        raise RegistryError(f"{source_name}: {exc}") from None


def _format_of(path: Path) -> Literal["json", "toml"]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".toml":
        return "toml"
    raise RegistryError(f"{path}: a registry file is .json or .toml, got {path.suffix or 'no suffix'!r}")


def load_registry(path: str | Path) -> CameraRegistry:
    """Read a registry file (``.json`` or ``.toml``).

    Raises:
        RegistryError: unreadable file, malformed content or an invalid record; the message starts with the path.
    """
    path = Path(path)
    fmt = _format_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{path}: no such registry file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read: {exc}") from None
    return parse_registry(text, fmt, source_name=str(path))


def save_registry(registry: CameraRegistry, path: str | Path) -> Path:
    """Write the registry as JSON or TOML (by suffix), atomically: a reader never sees half a file."""
    path = Path(path)
    text = registry.to_json() if _format_of(path) == "json" else registry.to_toml()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- TOML writing ---------------------------------------------------------------------------------------------
# Python reads TOML (tomllib) but cannot write it, and the registry's shape is small and fixed: tables, arrays of
# tables, and arrays of numbers/strings. Writing that subset here avoids a dependency for ~40 lines.

_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RegistryError(f"TOML cannot hold {value!r}")
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (same escapes; \uXXXX for control characters).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise RegistryError(f"TOML cannot hold a {type(value).__name__} value inline")


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _toml_table(data: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    for key, value in data.items():
        if value is None:
            continue
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        name = ".".join(_toml_key(p) for p in (*path, key))
        if isinstance(value, dict):
            lines.extend(("", f"[{name}]"))
            _toml_table(value, (*path, key), lines)
        elif _is_table_array(value):
            for item in value:
                lines.extend(("", f"[[{name}]]"))
                _toml_table(item, (*path, key), lines)


def _toml_document(data: Mapping[str, Any]) -> str:
    lines: list[str] = []
    _toml_table(data, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"
