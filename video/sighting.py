"""Camera and drone sightings: what the patrol and drone pipelines send to the service, and its exact JSON form.

A sighting is one located detection — a confirmed (or ended) sequence event of one tower camera preset, or one
box in one drone image — with everything the service needs to fuse, attribute and audit it without calling back:
the boxes, the geometry (bearing wedge, ground estimate or ``null``), the pose it came from, the model that found it,
and the evidence image's digest.

Wire format (``POST /api/v1/observations/camera`` and ``/drone``): ``multipart/form-data`` with two parts,

* ``sighting`` — ``application/json``, a :class:`CameraSighting` or :class:`DroneSighting` (``kind`` tells which);
* ``evidence`` — ``image/jpeg``, file name ``<sha256>.jpg``; its SHA-256 and length are in ``sighting.evidence``
  (check with :func:`check_evidence`).

plus the headers ``Authorization: Bearer <device token>`` and ``Idempotency-Key: <sighting_key>``. The
``sighting_key`` is deterministic (re-sending the same sighting after a timeout yields the same key), so the
service makes a repeat a no-op. The JSON Schema is :func:`sighting_json_schema`; :func:`parse_sighting` validates
a body into the typed record, so the service can import it (``service`` may import ``video``; never the reverse).

Conventions: times are RFC 3339 UTC (``2019-09-25T20:03:22Z``); GeoJSON coordinates are ``[longitude,
latitude]`` WGS-84, rounded to 1e-7° (1 cm); boxes are ``[x1, y1, x2, y2]`` pixels of the evidence image;
bearings are degrees clockwise from true north. ``boxes[0]`` is always the box the geometry was computed from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from video.errors import InputError

if TYPE_CHECKING:
    from shapely import Point, Polygon

__all__ = [
    "CAMERA_PATH",
    "DRONE_PATH",
    "SCHEMA_VERSION",
    "BearingInfo",
    "CameraSighting",
    "CameraSiteInfo",
    "DronePoseInfo",
    "DroneSighting",
    "EventInfo",
    "EvidenceInfo",
    "GeoJsonPoint",
    "GeoJsonPolygon",
    "GroundEstimate",
    "GroundStatus",
    "ModelRef",
    "PoseInfo",
    "Sighting",
    "SightingBox",
    "SightingUpload",
    "check_evidence",
    "evidence_info",
    "parse_sighting",
    "sighting_json_schema",
]

SCHEMA_VERSION: Final = 1
CAMERA_PATH: Final = "/api/v1/observations/camera"
DRONE_PATH: Final = "/api/v1/observations/drone"
_COORD_DIGITS: Final = 7
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_KEY = r"^[A-Za-z0-9._:/,+-]{1,200}$"  # the service's column holds 200 characters

#: Whether the ground fix landed and, if not, why. ``ground_error``: it could not be computed at all (a DEM file
#: missing on the patrol host or not covering the camera, a camera not above the ground): the sighting still goes
#: out, placed by its wedge (cameras) or the drone's position (drones), since a fire must never be dropped for it.
#: ``lens_mismatch`` (cameras): the frame is of another aspect ratio than the preset's registered lens (the stream's
#: profile was changed, or the registry describes another camera), so where the box lies in the calibrated picture
#: is unknown: the ground is withheld and the wedge is the preset's whole view (``video.patrol.locate_camera_box``).
GroundStatus = Literal[
    "hit", "above_horizon", "beyond_max_range", "outside_dem", "no_metadata", "ground_error", "lens_mismatch"
]


class _Wire(BaseModel):
    """Strict, immutable, finite: an unknown field or a NaN is a client bug the service should refuse, not store."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Longitude = Annotated[float, Field(ge=-180.0, le=180.0)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0)]
Position = tuple[Longitude, Latitude]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class GeoJsonPoint(_Wire):
    """A GeoJSON Point, ``[longitude, latitude]``."""

    type: Literal["Point"] = "Point"
    coordinates: Position

    @classmethod
    def at(cls, latitude: float, longitude: float) -> GeoJsonPoint:
        """The point at (lat, lon), rounded to 1e-7°."""
        return cls(coordinates=(round(longitude, _COORD_DIGITS), round(latitude, _COORD_DIGITS)))

    def to_shapely(self) -> Point:
        """As a shapely point (x = longitude)."""
        from shapely import Point

        return Point(self.coordinates)


class GeoJsonPolygon(_Wire):
    """A GeoJSON Polygon: closed rings of at least four positions, the first the exterior."""

    type: Literal["Polygon"] = "Polygon"
    coordinates: Annotated[list[Annotated[list[Position], Field(min_length=4)]], Field(min_length=1)]

    @field_validator("coordinates")
    @classmethod
    def _closed(cls, rings: list[list[Position]]) -> list[list[Position]]:
        for i, ring in enumerate(rings):
            if ring[0] != ring[-1]:
                raise ValueError(f"ring {i} is not closed (first and last positions differ)")
        return rings

    @classmethod
    def from_shapely(cls, polygon: Polygon) -> GeoJsonPolygon:
        """From a shapely polygon (x = longitude), rounded to 1e-7°."""

        def ring(coords: Any) -> list[Position]:
            return [(round(float(x), _COORD_DIGITS), round(float(y), _COORD_DIGITS)) for x, y, *_ in coords]

        return cls(coordinates=[ring(polygon.exterior.coords), *(ring(r.coords) for r in polygon.interiors)])

    def to_shapely(self) -> Polygon:
        """As a shapely polygon."""
        from shapely import Polygon

        return Polygon(self.coordinates[0], self.coordinates[1:])


class SightingBox(_Wire):
    """One detection box in the evidence image."""

    class_name: str = Field(min_length=1, max_length=64)
    confidence: Confidence
    xyxy: tuple[NonNegative, NonNegative, NonNegative, NonNegative]

    @field_validator("xyxy")
    @classmethod
    def _ordered(cls, xyxy: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if xyxy[2] < xyxy[0] or xyxy[3] < xyxy[1]:
            raise ValueError(f"needs x1 <= x2 and y1 <= y2, got {list(xyxy)}")
        return xyxy


class ModelRef(_Wire):
    """The detector that produced the boxes (every alert must say which model raised it)."""

    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)
    backend: str = Field(min_length=1, max_length=32)


class EvidenceInfo(_Wire):
    """What the ``evidence`` part must be: lets the service check it received the right, complete file."""

    content_type: Literal["image/jpeg"] = "image/jpeg"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class GroundEstimate(_Wire):
    """A single-sensor ground fix: the central ray's ground point and the uncertainty region around it.

    ``near_range_m``/``far_range_m`` bound the horizontal range from the sensor; ``far_open`` says some perturbed
    ray never landed, so the far edge is the maximum range (the usual case for a tower at grazing angles).
    """

    point: GeoJsonPoint
    uncertainty: GeoJsonPolygon
    horizontal_range_m: NonNegative
    near_range_m: NonNegative
    far_range_m: NonNegative
    far_open: bool
    terrain: Literal["flat", "dem", "flat_takeoff"]


class CameraSiteInfo(_Wire):
    """The tower, as the registry had it when the frame was processed."""

    latitude: Latitude
    longitude: Longitude
    mast_height_m: NonNegative
    ground_elevation_m: float
    heading_offset_deg: float


class PoseInfo(_Wire):
    """The PTZ reading of the preset and its one-sigma uncertainty."""

    pan_deg: float
    tilt_deg: Annotated[float, Field(ge=-90.0, le=90.0)]
    zoom: float
    roll_deg: float
    sigma_pan_deg: NonNegative
    sigma_tilt_deg: NonNegative


class BearingInfo(_Wire):
    """The bearing wedge in numbers (``wedge`` is the same as a polygon): what triangulation across towers needs.

    ``half_width_deg`` = ``box_half_width_deg`` + n·σ_pan (+ the bearing turn of a tilt error, for a camera looking
    down; at most 180: the whole circle); ``sigma_deg`` is σ_pan.
    """

    centre_deg: Annotated[float, Field(ge=0.0, lt=360.0)]
    half_width_deg: NonNegative
    box_half_width_deg: NonNegative
    sigma_deg: NonNegative
    min_range_m: NonNegative
    max_range_m: Annotated[float, Field(gt=0.0)]


class EventInfo(_Wire):
    """The sequence-verification event behind a camera sighting.

    Frame numbers are the verifier's indices (``round(captured_at / cadence_s)`` for one preset), so differences
    are in cadence steps; ``first_seen_at`` is estimated from them.
    """

    class_name: str = Field(min_length=1, max_length=64)
    state: Literal["confirmed", "ended"]
    start_frame: int
    confirm_frame: int
    end_frame: int | None
    frame_index: int
    cadence_s: Annotated[float, Field(gt=0.0)]
    first_seen_at: AwareDatetime
    max_confidence: Confidence

    _first_utc = field_validator("first_seen_at")(_utc)


class CameraSighting(_Wire):
    """A tower camera's confirmed (or ended) fire/smoke event, located as a bearing wedge and, when the ray lands, a
    ground estimate. One per event and state; the evidence is the frame at which the state changed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["camera"] = "camera"
    sighting_key: str = Field(pattern=_KEY)
    camera_id: str = Field(pattern=_ID)
    preset_id: str = Field(pattern=_ID)
    captured_at: AwareDatetime
    frame_seq: int = Field(ge=0)
    image_size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]
    event: EventInfo
    boxes: list[SightingBox] = Field(min_length=1, max_length=16)
    site: CameraSiteInfo
    pose: PoseInfo
    bearing: BearingInfo
    wedge: GeoJsonPolygon
    ground: GroundEstimate | None
    ground_status: GroundStatus
    model: ModelRef
    evidence: EvidenceInfo

    _captured_utc = field_validator("captured_at")(_utc)

    @model_validator(mode="after")
    def _ground_matches_status(self) -> CameraSighting:
        if (self.ground is None) != (self.ground_status != "hit"):
            raise ValueError("ground must be present exactly when ground_status is 'hit'")
        return self


class DronePoseInfo(_Wire):
    """The drone and gimbal at exposure (from the image's DJI XMP/EXIF)."""

    latitude: Latitude
    longitude: Longitude
    absolute_altitude_m: float | None
    relative_altitude_m: float | None
    gimbal_pitch_deg: float | None
    gimbal_yaw_deg: float | None
    gimbal_roll_deg: float | None
    yaw_source: str | None
    make: str | None
    model: str | None


class DroneSighting(_Wire):
    """One detection box of one drone image, located by ray casting from the drone's pose (``ground``) or, when that
    fails (no intrinsics, a ray above the horizon), with ``ground`` ``null`` and the reason in ``ground_status``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["drone"] = "drone"
    sighting_key: str = Field(pattern=_KEY)
    drone_id: str = Field(pattern=_ID)
    image_name: str = Field(min_length=1, max_length=255)
    captured_at: AwareDatetime
    time_source: str = Field(min_length=1, max_length=128)
    image_size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]
    boxes: list[SightingBox] = Field(min_length=1, max_length=16)
    pixel: tuple[NonNegative, NonNegative]
    drone: DronePoseInfo
    ground: GroundEstimate | None
    ground_status: GroundStatus
    lrf_check_m: NonNegative | None = None
    model: ModelRef
    evidence: EvidenceInfo

    _captured_utc = field_validator("captured_at")(_utc)

    @model_validator(mode="after")
    def _ground_matches_status(self) -> DroneSighting:
        if (self.ground is None) != (self.ground_status != "hit"):
            raise ValueError("ground must be present exactly when ground_status is 'hit'")
        return self


Sighting = CameraSighting | DroneSighting
_ADAPTER: Final[TypeAdapter[CameraSighting | DroneSighting]] = TypeAdapter(
    Annotated[CameraSighting | DroneSighting, Field(discriminator="kind")]
)


def parse_sighting(data: str | bytes | dict[str, Any]) -> Sighting:
    """Validate a ``sighting`` part (JSON text or an already-parsed dict) into its record.

    Raises:
        InputError: one line naming the first invalid field (e.g. ``boxes.0.confidence``; ``sighting`` for a rule
            across fields).
    """
    from pydantic import ValidationError

    try:
        if isinstance(data, dict):
            return _ADAPTER.validate_python(data)
        return _ADAPTER.validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        if loc and loc[0] in ("camera", "drone"):  # the discriminator's tag: the kind is known, say the field
            loc = loc[1:]
        where = ".".join(str(p) for p in loc) or ("kind" if first["type"].startswith("union_tag") else "sighting")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(f"{first['msg']}{more}", field=where) from None


def sighting_json_schema() -> dict[str, Any]:
    """The JSON Schema of the ``sighting`` part (both kinds, discriminated by ``kind``)."""
    return _ADAPTER.json_schema()


def evidence_info(jpeg: bytes, width: int, height: int) -> EvidenceInfo:
    """The :class:`EvidenceInfo` of JPEG bytes whose image is ``width`` × ``height``."""
    return EvidenceInfo(sha256=hashlib.sha256(jpeg).hexdigest(), size_bytes=len(jpeg), width=width, height=height)


def check_evidence(sighting: Sighting, jpeg: bytes) -> None:
    """Check that ``jpeg`` is the evidence the sighting describes (for the service, on receipt).

    Raises:
        InputError: wrong length or digest, or not a JPEG.
    """
    if not jpeg.startswith(b"\xff\xd8"):
        raise InputError("the evidence is not a JPEG", field="evidence")
    if len(jpeg) != sighting.evidence.size_bytes:
        raise InputError(
            f"{len(jpeg)} bytes received, the sighting says {sighting.evidence.size_bytes}", field="evidence"
        )
    if hashlib.sha256(jpeg).hexdigest() != sighting.evidence.sha256:
        raise InputError("SHA-256 does not match sighting.evidence.sha256", field="evidence")


@dataclass(frozen=True, slots=True)
class SightingUpload:
    """A sighting with its evidence bytes: what :class:`video.client.SightingClient` posts."""

    sighting: Sighting
    evidence_jpeg: bytes

    def __post_init__(self) -> None:
        check_evidence(self.sighting, self.evidence_jpeg)

    @property
    def path(self) -> str:
        """The service endpoint for this kind."""
        return CAMERA_PATH if self.sighting.kind == "camera" else DRONE_PATH

    @property
    def key(self) -> str:
        """The idempotency key."""
        return self.sighting.sighting_key

    def json_text(self) -> str:
        """The ``sighting`` part."""
        return self.sighting.model_dump_json()
