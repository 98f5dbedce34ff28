"""DJI drone frames: read the ``drone-dji`` XMP and EXIF metadata, project any pixel to the ground.

Why parse XMP by hand: Pillow's ``getxmp`` needs ``defusedxml`` (not a dependency), and a general XML parser is
the wrong tool anyway — the packet is small, flat (``rdf:Description`` attributes, occasionally simple elements)
and sometimes not even well-formed: the XT S firmware declares ``xmlns:DJI`` twice, which every conforming
parser rejects. So the packet is taken from the JPEG's APP1 ``http://ns.adobe.com/xap/1.0/`` segment (walking the
segment chain up to the first scan, never searching the image data) and read with regular expressions that
resolve prefixes through the packet's own ``xmlns`` declarations. No entity is ever expanded.

Where each value comes from (the first available wins; :attr:`DroneMetadata.sources` records the choice):

* **Position**: XMP ``GpsLatitude``/``GpsLongitude`` (older firmware misspells ``GpsLongtitude``; both are read),
  else EXIF ``GPSLatitude``/``GPSLongitude`` with their N/S/E/W references. A fix of exactly (0, 0), XMP or EXIF,
  is a receiver without a fix and counts as missing.
* **Altitude**: XMP ``AbsoluteAltitude`` (else EXIF ``GPSAltitude`` with its below-sea-level flag) and
  ``RelativeAltitude`` (height above the take-off point; no EXIF equivalent).
* **Attitude**: ``GimbalYawDegree``/``GimbalPitchDegree``/``GimbalRollDegree``. Yaw falls back to
  ``FlightYawDegree`` when the gimbal yaw is missing, or is exactly 0 while the flight yaw is not (a known
  firmware fault, closed-loop.md § 1.5); pitch has no fallback (the airframe's pitch is not the camera's).
  Yaw is taken as a true bearing; DJI's compass is the largest error source (σ 2° by default).
* **Intrinsics** (needed only for pixels off the optical axis): XMP ``CalibratedFocalLength`` +
  ``CalibratedOpticalCenterX/Y`` (pixels), else EXIF ``FocalLength`` × ``FocalPlaneXResolution`` (pixels per
  unit of ``FocalPlaneResolutionUnit``), else EXIF ``FocalLengthIn35mmFilm``, which DJI defines on the
  diagonal (H20T: 13.5 mm, 7.68 × 6.14 mm sensor → 58; M30T: 9.1 mm → 40), so
  ``f_px = f35 · diagonal_px / 43.27``. ``DewarpData`` is not used: frames are treated as pinhole.
* **XMP namespace**: ``http://www.dji.com/drone-dji/1.0/``; the XT S writes the same tags under the legacy
  ``http://www.dji.com`` namespace, read as a fallback.
* **Pixels** are given in the frame as displayed — the EXIF ``Orientation`` applied, as viewers and the detector
  (``detector.images``) show it — and mapped back to the stored sensor frame, which the intrinsics and the gimbal
  attitude describe (:meth:`DroneMetadata.sensor_pixel`).
* **Laser rangefinder**: ``LRFTargetLat``/``LRFTargetLon``/``LRFTargetAbsAlt``/``LRFTargetDistance`` (and
  ``LRFStatus`` — a status other than ``Normal`` discards the target).

Projection follows closed-loop.md § 1.5: the ray through the pixel (gimbal yaw/pitch/roll, the camera
conventions of :mod:`video.camera`) is intersected with flat ground at the take-off elevation
(``AbsoluteAltitude − RelativeAltitude``, right on the flat plain where drones take off from the field edge) or
with a DEM (then ``AbsoluteAltitude`` must be in the DEM's vertical datum — both are usually EGM96). The LRF
target is never copied into a ray result; it is reported as a check (``lrf_check_m``) or used only on request.
"""

from __future__ import annotations

import io
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

from video.camera import GEOD, Intrinsics, Ray, angles_from_directions, normalise_bearing, rotation_matrix
from video.errors import InputError, MetadataError, NoGroundIntersectionError
from video.ground import FlatTerrain, GroundFix, Terrain, ground_fix

__all__ = [
    "DEFAULT_SIGMA_PITCH_DEG",
    "DEFAULT_SIGMA_YAW_DEG",
    "DJI_LEGACY_NS",
    "DJI_NS",
    "XMP_APP1_HEADER",
    "DroneFix",
    "DroneMetadata",
    "LrfTarget",
    "drone_intrinsics",
    "extract_xmp_packet",
    "locate",
    "lrf_fix",
    "parse_xmp",
    "read_drone_metadata",
    "read_xmp_packet",
]

DJI_NS: Final = "http://www.dji.com/drone-dji/1.0/"
DJI_LEGACY_NS: Final = "http://www.dji.com"
XMP_APP1_HEADER: Final = b"http://ns.adobe.com/xap/1.0/\x00"
# Diagonal of a 36 × 24 mm frame: the reference of "35 mm equivalent" focal lengths.
FULL_FRAME_DIAGONAL_MM: Final = math.hypot(36.0, 24.0)
# From the error budget of closed-loop.md § 1.5 (1° pitch, 2° yaw): gimbal pitch is good, the compass is not.
DEFAULT_SIGMA_PITCH_DEG: Final = 1.0
DEFAULT_SIGMA_YAW_DEG: Final = 2.0
_FOCAL_PLANE_UNIT_MM: Final = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
# EXIF orientation → ``(swap, flip_x, flip_y)``: a displayed pixel ``(u, v)`` is the sensor pixel ``(v, u)`` when
# ``swap`` (shown rotated by 90°: width and height swap on screen), else ``(u, v)``, then mirrored across the
# sensor's width when ``flip_x`` and its height when ``flip_y``. Anything else is upright.
_UPRIGHT: Final = (False, False, False)
_ORIENTATION_TRANSFORMS: Final[dict[int, tuple[bool, bool, bool]]] = {
    1: _UPRIGHT,
    2: (False, True, False),
    3: (False, True, True),
    4: (False, False, True),
    5: (True, False, False),
    6: (True, False, True),
    7: (True, True, True),
    8: (True, True, False),
}

_XMLNS = re.compile(rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ATTRIBUTE = re.compile(rb"""(?<![\w.:-])([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ELEMENT = re.compile(rb"<([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)>([^<]*)</\1:\2>")
_ENTITIES = {b"&lt;": b"<", b"&gt;": b">", b"&quot;": b'"', b"&apos;": b"'", b"&amp;": b"&"}


def read_xmp_packet(stream: BinaryIO) -> bytes | None:
    """The XMP packet of a JPEG stream, from its APP1 segments before the first scan; ``None`` when it has none.

    Only segment headers and the XMP segment itself are read; other segments (FLIR's ~600 KiB of APP1/APP3
    radiometry, thumbnails) are skipped with ``seek``.

    Raises:
        InputError: the stream is not a JPEG.
    """
    if stream.read(2) != b"\xff\xd8":
        raise InputError("not a JPEG file (no SOI marker)")
    while True:
        head = stream.read(2)
        if len(head) < 2 or head[0] != 0xFF:
            return None  # truncated or corrupt chain: no trustworthy metadata past this point
        marker = head[1]
        while marker == 0xFF:  # fill bytes before the marker
            nxt = stream.read(1)
            if not nxt:
                return None
            marker = nxt[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: metadata is over
            return None
        size = stream.read(2)
        if len(size) < 2:
            return None
        (length,) = struct.unpack(">H", size)
        if length < 2:
            return None
        if marker == 0xE1:
            payload = stream.read(length - 2)
            if payload.startswith(XMP_APP1_HEADER):
                return payload[len(XMP_APP1_HEADER) :]
        else:
            stream.seek(length - 2, io.SEEK_CUR)


def extract_xmp_packet(data: bytes) -> bytes | None:
    """:func:`read_xmp_packet` on bytes already in memory."""
    return read_xmp_packet(io.BytesIO(data))


def _unescape(raw: bytes) -> str:
    for entity, char in _ENTITIES.items():
        raw = raw.replace(entity, char)
    return raw.decode("utf-8", errors="replace").strip()


def parse_xmp(packet: bytes) -> dict[tuple[str, str], str]:
    """``{(namespace URI, local name): value}`` for every simple property (attribute or text element).

    Prefixes are resolved through the packet's own ``xmlns`` declarations; a property whose prefix is never
    declared is kept under the URI ``"prefix:<name>"`` so that nothing is silently dropped.
    """
    namespaces: dict[bytes, str] = {}
    for match in _XMLNS.finditer(packet):
        uri = match.group(2) if match.group(2) is not None else match.group(3)
        namespaces.setdefault(match.group(1), uri.decode("utf-8", errors="replace"))
    properties: dict[tuple[str, str], str] = {}
    for match in _ATTRIBUTE.finditer(packet):
        prefix, name = match.group(1), match.group(2)
        if prefix == b"xmlns":
            continue
        value = match.group(3) if match.group(3) is not None else match.group(4)
        uri = namespaces.get(prefix, "prefix:" + prefix.decode("ascii", errors="replace"))
        properties.setdefault((uri, name.decode("ascii")), _unescape(value))
    for match in _ELEMENT.finditer(packet):
        prefix, name = match.group(1), match.group(2)
        uri = namespaces.get(prefix, "prefix:" + prefix.decode("ascii", errors="replace"))
        properties.setdefault((uri, name.decode("ascii")), _unescape(match.group(3)))
    return properties


@dataclass(frozen=True, slots=True)
class LrfTarget:
    """The laser rangefinder's measured point under the optical axis (DJI H20T/M30T/M4E firmware)."""

    latitude: float
    longitude: float
    abs_altitude_m: float | None
    distance_m: float | None


@dataclass(frozen=True, slots=True)
class DroneMetadata:
    """What strawfire needs from a drone frame; ``None`` where the file does not say.

    Heights in metres, angles in degrees, focal lengths and optical centre in pixels of this image.
    ``sources`` maps each filled field to where it came from (``"xmp"``, ``"xmp-legacy"`` or ``"exif"``).
    """

    source_name: str
    make: str | None
    model: str | None
    width: int
    height: int
    latitude: float | None = None
    longitude: float | None = None
    absolute_altitude_m: float | None = None
    relative_altitude_m: float | None = None
    gimbal_pitch_deg: float | None = None
    gimbal_yaw_deg: float | None = None
    gimbal_roll_deg: float | None = None
    flight_yaw_deg: float | None = None
    flight_pitch_deg: float | None = None
    flight_roll_deg: float | None = None
    calibrated_focal_length_px: float | None = None
    calibrated_optical_center_x_px: float | None = None
    calibrated_optical_center_y_px: float | None = None
    focal_length_mm: float | None = None
    focal_length_35mm: float | None = None
    focal_plane_x_resolution_per_mm: float | None = None
    focal_plane_y_resolution_per_mm: float | None = None
    lrf: LrfTarget | None = None
    lrf_status: str | None = None
    xmp_namespace: str | None = None
    orientation: int = 1
    sources: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def display_size(self) -> tuple[int, int]:
        """``(width, height)`` of the frame as viewers and the detector show it: after the EXIF orientation."""
        return (
            (self.height, self.width)
            if _ORIENTATION_TRANSFORMS.get(self.orientation, _UPRIGHT)[0]
            else (self.width, self.height)
        )

    def sensor_pixel(self, u: float, v: float) -> tuple[float, float]:
        """A point of the displayed frame → the same point of the stored (sensor) frame, which the intrinsics and
        the gimbal attitude describe. Pixel coordinates are continuous, from the top-left corner."""
        swap, flip_x, flip_y = _ORIENTATION_TRANSFORMS.get(self.orientation, _UPRIGHT)
        x, y = (v, u) if swap else (u, v)
        return (self.width - x if flip_x else x), (self.height - y if flip_y else y)

    def display_pixel(self, u: float, v: float) -> tuple[float, float]:
        """The inverse of :meth:`sensor_pixel`: a point of the stored frame → where it is shown."""
        swap, flip_x, flip_y = _ORIENTATION_TRANSFORMS.get(self.orientation, _UPRIGHT)
        x, y = (self.width - u if flip_x else u), (self.height - v if flip_y else v)
        return (y, x) if swap else (x, y)

    @property
    def takeoff_elevation_m(self) -> float | None:
        """``AbsoluteAltitude − RelativeAltitude``: the ground the drone took off from."""
        if self.absolute_altitude_m is None or self.relative_altitude_m is None:
            return None
        return self.absolute_altitude_m - self.relative_altitude_m

    def yaw(self) -> tuple[float, str] | None:
        """The camera's true bearing and the field it came from (see the module docstring for the fallback)."""
        flight = self.flight_yaw_deg
        if self.gimbal_yaw_deg is not None and not (self.gimbal_yaw_deg == 0.0 and flight not in (None, 0.0)):
            return self.gimbal_yaw_deg, "GimbalYawDegree"
        if flight is not None:
            reason = "GimbalYawDegree missing" if self.gimbal_yaw_deg is None else "GimbalYawDegree was 0"
            return flight, f"FlightYawDegree ({reason})"
        return None


def _number(source_name: str, name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise MetadataError(f"malformed {name} value {raw!r}", source_name=source_name) from None
    if not math.isfinite(value):
        raise MetadataError(f"non-finite {name} value {raw!r}", source_name=source_name)
    return value


def _rational(value: Any) -> float:
    if isinstance(value, tuple):  # old-style (numerator, denominator)
        return float(value[0]) / float(value[1])
    return float(value)


def _exif_degrees(dms: Any, ref: Any, negative_ref: str) -> float | None:
    try:
        d, m, s = (_rational(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60.0 + s / 3600.0
    if not math.isfinite(value):
        return None
    ref_text = ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref or "")
    return -value if ref_text.strip().upper().startswith(negative_ref) else value


def _exif_fields(image: Any) -> dict[str, Any]:
    from PIL import ExifTags

    exif = image.getexif()
    out: dict[str, Any] = {"Make": exif.get(0x010F), "Model": exif.get(0x0110), "Orientation": exif.get(0x0112)}
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    for tag, name in (
        (0x920A, "FocalLength"),
        (0xA405, "FocalLengthIn35mmFilm"),
        (0xA20E, "FocalPlaneXResolution"),
        (0xA20F, "FocalPlaneYResolution"),
        (0xA210, "FocalPlaneResolutionUnit"),
    ):
        if tag in sub:
            out[name] = sub[tag]
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if gps:
        lat = _exif_degrees(gps.get(2), gps.get(1), "S") if 2 in gps else None
        lon = _exif_degrees(gps.get(4), gps.get(3), "W") if 4 in gps else None
        if lat is not None and lon is not None and not (lat == 0.0 and lon == 0.0):
            out["GPSLatitude"], out["GPSLongitude"] = lat, lon
        if 6 in gps:
            try:
                altitude = _rational(gps[6])
            except (TypeError, ValueError, ZeroDivisionError):
                altitude = math.nan
            below = gps.get(5) in (1, b"\x01")
            if math.isfinite(altitude):
                out["GPSAltitude"] = -altitude if below else altitude
    return out


def _orientation(value: Any) -> int:
    """The EXIF orientation 1–8; anything else (absent, malformed) is the upright 1."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 8 else 1


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.strip("\x00 ").strip() or None


def read_drone_metadata(path: str | Path) -> DroneMetadata:
    """Read a drone JPEG's metadata (header only; the image data is not decoded).

    Raises:
        InputError: the file is missing or not a JPEG.
        MetadataError: a metadata value is malformed.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    try:
        with path.open("rb") as fh:
            packet = read_xmp_packet(fh)
    except InputError:
        raise InputError(f"{name}: not a JPEG file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc}") from None
    try:
        with Image.open(path) as image:
            width, height = image.size
            exif = _exif_fields(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{name}: cannot read the image header: {exc}") from None
    except Exception as exc:  # Pillow raises assorted errors on a corrupt EXIF block; refuse in one line
        raise MetadataError(f"unreadable EXIF ({type(exc).__name__}: {exc})", source_name=name) from None

    props = parse_xmp(packet) if packet else {}
    namespace = None
    for candidate in (DJI_NS, DJI_LEGACY_NS):
        if any(uri == candidate for uri, _ in props):
            namespace = candidate
            break
    dji = {local: value for (uri, local), value in props.items() if uri == namespace}
    dji_lower = {local.lower(): value for local, value in dji.items()}
    tag = "xmp" if namespace == DJI_NS else "xmp-legacy"
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(attr: str, *names: str) -> None:
        for xmp_name in names:
            raw = dji_lower.get(xmp_name.lower())
            if raw:
                values[attr] = _number(name, xmp_name, raw)
                sources[attr] = tag
                return

    take("latitude", "GpsLatitude")
    take("longitude", "GpsLongitude", "GpsLongtitude")
    take("absolute_altitude_m", "AbsoluteAltitude")
    take("relative_altitude_m", "RelativeAltitude")
    take("gimbal_pitch_deg", "GimbalPitchDegree")
    take("gimbal_yaw_deg", "GimbalYawDegree")
    take("gimbal_roll_deg", "GimbalRollDegree")
    take("flight_yaw_deg", "FlightYawDegree")
    take("flight_pitch_deg", "FlightPitchDegree")
    take("flight_roll_deg", "FlightRollDegree")
    take("calibrated_focal_length_px", "CalibratedFocalLength")
    take("calibrated_optical_center_x_px", "CalibratedOpticalCenterX")
    take("calibrated_optical_center_y_px", "CalibratedOpticalCenterY")

    if values.get("latitude") == 0.0 and values.get("longitude") == 0.0:  # no GPS lock: DJI writes 0/0, as in EXIF
        for attr in ("latitude", "longitude"):
            del values[attr], sources[attr]
    if ("latitude" not in values or "longitude" not in values) and "GPSLatitude" in exif:
        values["latitude"], values["longitude"] = exif["GPSLatitude"], exif["GPSLongitude"]
        sources["latitude"] = sources["longitude"] = "exif"
    if "absolute_altitude_m" not in values and "GPSAltitude" in exif:
        values["absolute_altitude_m"] = exif["GPSAltitude"]
        sources["absolute_altitude_m"] = "exif"
    for attr, key in (("focal_length_mm", "FocalLength"), ("focal_length_35mm", "FocalLengthIn35mmFilm")):
        try:
            number = _rational(exif[key]) if key in exif else math.nan
        except (TypeError, ValueError, ZeroDivisionError):
            number = math.nan
        if math.isfinite(number) and number > 0.0:
            values[attr] = number
            sources[attr] = "exif"
    unit_mm = _FOCAL_PLANE_UNIT_MM.get(int(exif.get("FocalPlaneResolutionUnit") or 0))
    for attr, key in (
        ("focal_plane_x_resolution_per_mm", "FocalPlaneXResolution"),
        ("focal_plane_y_resolution_per_mm", "FocalPlaneYResolution"),
    ):
        if unit_mm is not None and key in exif:
            try:
                per_unit = _rational(exif[key])
            except (TypeError, ValueError, ZeroDivisionError):
                continue
            if math.isfinite(per_unit) and per_unit > 0.0:
                values[attr] = per_unit / unit_mm
                sources[attr] = "exif"

    lrf = None
    lrf_status = dji_lower.get("lrfstatus")
    lrf_lat = dji_lower.get("lrftargetlat")
    lrf_lon = dji_lower.get("lrftargetlon") or dji_lower.get("lrftargetlng")
    if lrf_lat and lrf_lon and (lrf_status is None or lrf_status.strip().lower() == "normal"):
        lat = _number(name, "LRFTargetLat", lrf_lat)
        lon = _number(name, "LRFTargetLon", lrf_lon)
        alt_raw = dji_lower.get("lrftargetabsalt")
        dist_raw = dji_lower.get("lrftargetdistance")
        distance = _number(name, "LRFTargetDistance", dist_raw) if dist_raw else None
        if not (lat == 0.0 and lon == 0.0) and (distance is None or distance > 0.0):
            lrf = LrfTarget(lat, lon, _number(name, "LRFTargetAbsAlt", alt_raw) if alt_raw else None, distance)
            sources["lrf"] = tag

    for attr, low, high in (("latitude", -90.0, 90.0), ("longitude", -180.0, 180.0)):
        if attr in values and not low <= values[attr] <= high:
            raise MetadataError(f"{attr} {values[attr]} is out of range", source_name=name)

    return DroneMetadata(
        source_name=name,
        make=_text(exif.get("Make")),
        model=_text(exif.get("Model")),
        width=int(width),
        height=int(height),
        lrf=lrf,
        lrf_status=lrf_status,
        xmp_namespace=namespace,
        orientation=_orientation(exif.get("Orientation")),
        sources=sources,
        **values,
    )


def drone_intrinsics(meta: DroneMetadata) -> tuple[Intrinsics, str] | None:
    """The pinhole of the frame and which metadata gave it, or ``None`` when nothing gives a focal length."""
    w, h = meta.width, meta.height
    if meta.calibrated_focal_length_px:
        f = meta.calibrated_focal_length_px
        cx = meta.calibrated_optical_center_x_px if meta.calibrated_optical_center_x_px is not None else w / 2.0
        cy = meta.calibrated_optical_center_y_px if meta.calibrated_optical_center_y_px is not None else h / 2.0
        return Intrinsics(w, h, f, f, cx, cy), "CalibratedFocalLength"
    if meta.focal_length_mm and meta.focal_plane_x_resolution_per_mm:
        fx = meta.focal_length_mm * meta.focal_plane_x_resolution_per_mm
        fy = meta.focal_length_mm * (meta.focal_plane_y_resolution_per_mm or meta.focal_plane_x_resolution_per_mm)
        return Intrinsics(w, h, fx, fy, w / 2.0, h / 2.0), "FocalLength × FocalPlaneXResolution"
    if meta.focal_length_35mm:
        f = meta.focal_length_35mm * math.hypot(w, h) / FULL_FRAME_DIAGONAL_MM
        return Intrinsics(w, h, f, f, w / 2.0, h / 2.0), "FocalLengthIn35mmFilm (diagonal)"
    return None


@dataclass(frozen=True, slots=True)
class DroneFix:
    """A pixel of a drone frame located on the ground.

    ``ground`` carries the point, the uncertainty region from ``σ_pitch``/``σ_yaw`` and the near/far ranges;
    ``lrf_check_m`` is the horizontal distance from the ray result to the frame's LRF target, when it has one
    (the check is only meaningful for the optical-axis pixel, which is what the LRF measures).
    """

    latitude: float
    longitude: float
    altitude_m: float
    pixel: tuple[float, float]
    terrain: str
    yaw_source: str
    intrinsics_source: str | None
    ground: GroundFix
    lrf_check_m: float | None


def _position_missing(meta: DroneMetadata) -> list[str]:
    missing = []
    if meta.latitude is None:
        missing.append("GpsLatitude")
    if meta.longitude is None:
        missing.append("GpsLongitude")
    return missing


def locate(
    meta: DroneMetadata,
    pixel: tuple[float, float] | None = None,
    *,
    terrain: Terrain | None = None,
    intrinsics: Intrinsics | None = None,
    sigma_pitch_deg: float = DEFAULT_SIGMA_PITCH_DEG,
    sigma_yaw_deg: float = DEFAULT_SIGMA_YAW_DEG,
    n_sigma: float = 2.0,
    max_range_m: float = 5000.0,
) -> DroneFix:
    """Project ``pixel`` (default: the optical axis) to the ground by ray casting.

    ``terrain`` ``None`` means flat ground at the take-off elevation; pass a :class:`video.ground.DemTerrain`
    otherwise. ``intrinsics`` overrides what the metadata gives (needed for frames, like the FLIR XT2, whose EXIF
    lacks a usable focal length).

    Raises:
        MetadataError: required fields are missing; the message names them.
        NoGroundIntersectionError: the ray does not meet the ground within ``max_range_m``.
        InputError: the pixel lies outside the image; the drone is not above its ground (the message names the
            file and the field, ``RelativeAltitude`` or ``AbsoluteAltitude``, and ``field`` is that field).
    """
    missing = _position_missing(meta)
    if terrain is None:
        if meta.absolute_altitude_m is None:
            missing.append("AbsoluteAltitude")
        if meta.relative_altitude_m is None:
            missing.append("RelativeAltitude")
    elif meta.absolute_altitude_m is None:
        missing.append("AbsoluteAltitude")
    if meta.gimbal_pitch_deg is None:
        missing.append("GimbalPitchDegree")
    yaw = meta.yaw()
    if yaw is None:
        missing.append("GimbalYawDegree")
    lens_source: str | None = None
    lens = intrinsics
    if intrinsics is not None:
        lens_source = "given"
    elif pixel is not None:
        found = drone_intrinsics(meta)
        if found is None:
            missing.append("CalibratedFocalLength or FocalLengthIn35mmFilm or FocalPlaneXResolution")
        else:
            lens, lens_source = found
    if missing:
        no_xmp = "" if meta.xmp_namespace else "; the file has no DJI XMP packet"
        raise MetadataError(
            f"cannot locate the frame on the ground{no_xmp}", source_name=meta.source_name, missing=missing
        )
    assert meta.latitude is not None
    assert meta.longitude is not None
    assert meta.absolute_altitude_m is not None
    assert meta.gimbal_pitch_deg is not None
    assert yaw is not None

    if pixel is None:
        # The optical axis: what the LRF measures, and the image centre unless a calibration says otherwise.
        if lens is not None:
            sensor_u, sensor_v = lens.cx, lens.cy
        else:
            sensor_u = meta.calibrated_optical_center_x_px or meta.width / 2.0
            sensor_v = meta.calibrated_optical_center_y_px or meta.height / 2.0
        u, v = meta.display_pixel(sensor_u, sensor_v)
        camera_dir = None
    else:
        # ``pixel`` is in the frame as displayed (EXIF orientation applied, as viewers and the detector show it);
        # the lens and the gimbal attitude describe the stored sensor frame.
        u, v = pixel
        display_w, display_h = meta.display_size
        if not (math.isfinite(u) and math.isfinite(v) and 0.0 <= u <= display_w and 0.0 <= v <= display_h):
            raise InputError(f"{meta.source_name}: pixel ({u:g}, {v:g}) is outside the {display_w}×{display_h} image")
        assert lens is not None
        camera_dir = lens.normalise(*meta.sensor_pixel(u, v))[0]

    rot = rotation_matrix(yaw[0], meta.gimbal_pitch_deg, meta.gimbal_roll_deg or 0.0)
    direction = rot[:, 2] if camera_dir is None else rot @ [camera_dir[0], camera_dir[1], 1.0]
    bearing, elevation = angles_from_directions(direction)
    ray = Ray(normalise_bearing(float(bearing[0])), float(elevation[0]))

    if terrain is None:
        takeoff = meta.takeoff_elevation_m
        assert takeoff is not None
        ground_terrain: Terrain = FlatTerrain(takeoff)
        terrain_name = "flat_takeoff"
    else:
        ground_terrain = terrain
        terrain_name = "dem"
    try:
        fix = ground_fix(
            meta.latitude,
            meta.longitude,
            meta.absolute_altitude_m,
            ray,
            ground_terrain,
            sigma_bearing_deg=sigma_yaw_deg,
            sigma_elevation_deg=sigma_pitch_deg,
            n_sigma=n_sigma,
            max_range_m=max_range_m,
        )
    except InputError as exc:
        if exc.field is not None:  # an argument out of range (sigma, n_sigma): not the frame's metadata
            raise
        raise _below_ground(meta, terrain_name, exc) from None
    if fix.hit is None:
        raise NoGroundIntersectionError(
            f"{meta.source_name}: the ray at pitch {ray.elevation_deg:+.2f}° does not meet the ground within "
            f"{max_range_m:.0f} m ({fix.status.value.replace('_', ' ')})",
            reason=fix.status.value,
        )
    check = None
    if meta.lrf is not None:
        _, _, check = GEOD.inv(fix.hit.longitude, fix.hit.latitude, meta.lrf.longitude, meta.lrf.latitude)
    return DroneFix(
        latitude=fix.hit.latitude,
        longitude=fix.hit.longitude,
        altitude_m=fix.hit.ground_altitude_m,
        pixel=(float(u), float(v)),
        terrain=terrain_name,
        yaw_source=yaw[1],
        intrinsics_source=lens_source,
        ground=fix,
        lrf_check_m=None if check is None else float(check),
    )


def _below_ground(meta: DroneMetadata, terrain_name: str, exc: InputError) -> InputError:
    """The drone is not above its ground: say which file, and which field put it there.

    On flat ground at the take-off point the height is ``RelativeAltitude`` itself (a barometer that drifted, a
    take-off from a roof); over a DEM it is ``AbsoluteAltitude`` against the DEM's ground.
    """
    if terrain_name == "flat_takeoff":
        field = "RelativeAltitude"
        why = f"RelativeAltitude {meta.relative_altitude_m:+g} m puts the drone at or below its take-off point"
    else:
        field = "AbsoluteAltitude"
        why = f"AbsoluteAltitude {meta.absolute_altitude_m:g} m puts the drone at or below the DEM's ground"
    error = InputError(f"{meta.source_name}: {why}: {exc}")
    error.field = field
    return error


def lrf_fix(meta: DroneMetadata) -> LrfTarget:
    """The LRF target, for callers that asked for it explicitly.

    Raises:
        MetadataError: the frame carries no (usable) LRF target.
    """
    if meta.lrf is None:
        status = f" (LRFStatus {meta.lrf_status!r})" if meta.lrf_status else ""
        raise MetadataError(
            f"no laser-rangefinder target in the frame{status}",
            source_name=meta.source_name,
            missing=("LRFTargetLat", "LRFTargetLon"),
        )
    return meta.lrf
