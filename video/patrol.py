"""The patrol pipeline: frame → detect → sequence verification per (camera, preset) → geolocate → post a sighting.

Why this order and these boundaries:

* **Detection runs on every frame at a low threshold, decisions are made by persistence.** The per-frame threshold
  is half the model's operating threshold (:func:`detector.sequence.frame_threshold_for`): Pyronear's lesson (run
  the detector low, let the temporal rule filter), scaled to each model's own confidence, so a model calibrated
  low still feeds the verifier and one calibrated high does not confirm a scene feature it scores faintly.
* **Boxes in the sun's glare never reach the verifier** when the preset asks (``sun_glare_deg``): the cone
  around the sun at the frame's capture time, through the calibrated pose and lens (:mod:`video.sun`), is one
  more ignore mask for that frame.
* **One verifier per (camera, preset), fed in time order.** The verifier counts frames, so the frame index is
  ``round(captured_at / cadence_s)`` (bumped by one when two frames round to the same step): a missed grab is a
  missing frame, not a shorter window. A frame older than the last one verified for its preset arrives *late*
  (possible only when distributed workers are backlogged) and is reported as such, never fed out of order.
  The state lives in a :class:`VerifierStore` — in memory here, in Redis across workers (:mod:`video.tasks`).
* **A sighting is posted when an event is confirmed and when it ends**, never for single-frame hits: one tower
  sees the same smoke for an hour, and the service wants a handful of observations, not 60 a minute.
* **Geometry is the exact pinhole model** (:func:`video.camera.box_to_wedge`, :func:`video.ground.locate_box`);
  a ground point is given only when the ray lands within the camera's range, otherwise the wedge alone, with the
  reason, as closed-loop.md asks for the flat Songliao plain.
* **Evidence is the frame itself**: the camera's own JPEG bytes when the source delivered JPEG, otherwise
  ``cv2.imencode`` at quality 90; boxes travel in the JSON, so the image is never drawn on.

:class:`FramePipeline` is the one implementation of those steps; the in-process :class:`Patrol` and the Celery
tasks of :mod:`video.tasks` both call it. Drone images (no sequence: each image is a human-directed shot) go
through :func:`drone_sightings` / :func:`post_drone_batch`.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, cast

import numpy as np

from detector.detections import Detections, Detector, ImageArray, MotionDetector, detect_frame
from detector.sequence import (
    DEFAULT_SEQUENCE_CONFIG,
    Event,
    IgnoreMask,
    SequenceConfig,
    SequenceVerifier,
    frame_threshold_for,
)
from detector.tiling import with_tiles
from video.camera import BearingWedge, box_to_wedge, lens_intrinsics
from video.errors import DemError, InputError, MetadataError, NoGroundIntersectionError, VideoError
from video.ground import GroundFix, Terrain, locate_box
from video.health import FrozenFeedWatch
from video.registry import CameraRecord, CameraRegistry, PresetRecord, RegistryError
from video.sighting import (
    BearingInfo,
    CameraSighting,
    CameraSiteInfo,
    DronePoseInfo,
    DroneSighting,
    EventInfo,
    GeoJsonPoint,
    GeoJsonPolygon,
    GroundEstimate,
    GroundStatus,
    ModelRef,
    PoseInfo,
    SightingBox,
    SightingUpload,
    evidence_info,
)
from video.sources import Frame, FrameSource, SourceError, SourceStats, open_source, redact_url
from video.sun import glare_polygon

if TYPE_CHECKING:
    from video.client import SightingClient, SightingRejected
    from video.drone import DroneMetadata

__all__ = [
    "DEFAULT_UTC_OFFSET",
    "ClientSink",
    "DroneImageResult",
    "EventOutcome",
    "ExpiredFrames",
    "FramePipeline",
    "FrameResult",
    "MemoryVerifierStore",
    "Patrol",
    "PatrolReport",
    "PipelineConfig",
    "PostOutcome",
    "PresetState",
    "PresetStats",
    "SightingSink",
    "VerifierStore",
    "default_detector",
    "drone_capture_time",
    "drone_sightings",
    "lens_mismatch",
    "lens_size",
    "load_detector_spec",
    "locate_camera_box",
    "post_drone_batch",
    "preset_key",
    "run_inline",
]

log = logging.getLogger(__name__)

#: China Standard Time: DJI writes EXIF times in the controller's local time without an offset.
DEFAULT_UTC_OFFSET: Final = timedelta(hours=8)
_ASPECT_TOLERANCE: Final = 0.02
_RAY_MISSES: Final = frozenset({"above_horizon", "beyond_max_range", "outside_dem"})


def default_detector(*, threads: int | None = None, fallback_to_rules: bool = True) -> Detector:
    """The deployment's model (``models/manifest.json``: ONNX Runtime on CPU, torch on a GPU) via the detector
    package's loader, else the weights-free rules.

    A configured model that fails to load (missing or corrupted file) still falls back — a camera that patrols with
    the rules beats a camera that does not patrol — but at ERROR level, and every sighting then names backend
    ``rules``. Pass ``fallback_to_rules=False`` to make it fatal.
    """
    from detector.backends import load_detector
    from detector.manifest import ModelError

    try:
        return load_detector("auto", threads=threads)
    except ModelError as exc:
        if not fallback_to_rules:
            raise
        from detector.rules import RulesDetector

        log.error("the configured model cannot be loaded (%s): patrolling with the weights-free rules", exc)
        return RulesDetector()


def load_detector_spec(spec: str = "auto", *, threads: int | None = 1) -> Detector:
    """A detector from its configuration string (``STRAWFIRE_VIDEO__DETECTOR``, ``strawfire patrol --detector``).

    ``auto`` is :func:`default_detector` (the manifest's model, the rules if it cannot load); ``onnx``, ``torch``,
    ``rules`` that backend; ``auto+rules``, ``onnx+rules``, ``torch+rules`` the model with the flame rule's second
    opinion on its fire boxes (``detector.second_opinion``). ``package.module:factory`` imports ``factory`` and
    calls it with no arguments (a class or a function): a deployment-specific detector without changing this
    package.
    """
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        factory: Any = importlib.import_module(module_name)
        for name in attribute.split("."):
            factory = getattr(factory, name)
        detector = factory()
        if not isinstance(detector, Detector):
            raise TypeError(f"{spec} did not return a Detector (got {type(detector).__name__})")
        return detector
    if spec == "auto":
        return default_detector(threads=threads)
    backend, plus, second = spec.partition("+")
    if backend in ("auto", "onnx", "torch", "rules") and (not plus or second == "rules"):
        from detector.backends import Backend, load_detector

        # With the second opinion a model that does not load is fatal: falling back to the rules, as ``auto``
        # does, would silently drop what the deployment asked for.
        return load_detector(cast(Backend, backend), threads=threads, second_opinion=bool(plus))
    raise ValueError(
        f"unknown detector {spec!r}: auto, onnx, torch, rules, auto+rules, onnx+rules, torch+rules "
        "or package.module:factory"
    )


def preset_key(camera_id: str, preset_id: str) -> str:
    """The key of a (camera, preset) in verifier stores and logs."""
    return f"{camera_id}/{preset_id}"


@dataclass(frozen=True)
class PipelineConfig:
    """Knobs of :class:`FramePipeline`.

    Attributes:
        sequence: the persistence rule (window, hits, overlap, end); its ``frame_threshold`` is replaced by the
            model's own (see the module docstring) unless ``frame_threshold`` is given.
        frame_threshold: overrides the per-frame threshold (default: see the module docstring).
        n_sigma: pose uncertainty multiple of wedges and ground regions.
        evidence_quality: JPEG quality when the frame has to be encoded.
        max_boxes: boxes per sighting (the located one plus the strongest others in the frame).
        post_ended: also post a sighting when an event ends.
        motion_max_gap: a motion detector only compares frames at most this many cadences apart.
    """

    sequence: SequenceConfig = DEFAULT_SEQUENCE_CONFIG
    frame_threshold: float | None = None
    n_sigma: float = 2.0
    evidence_quality: int = 90
    max_boxes: int = 10
    post_ended: bool = True
    motion_max_gap: float = 3.0

    def threshold(self, detector: Detector) -> float:
        """The per-frame threshold for ``detector``."""
        if self.frame_threshold is not None:
            return self.frame_threshold
        return frame_threshold_for(detector.info.operating_threshold)


@dataclass
class PresetState:
    """What must survive between frames of one preset: the verifier and the last frame's index and time."""

    verifier: SequenceVerifier
    last_index: int | None = None
    last_captured_at: datetime | None = None

    def advance(
        self, captured_at: datetime, cadence_s: float, detections: Detections
    ) -> tuple[int | None, list[Event]]:
        """Feed one frame; ``(frame index, events changed)``, or ``(None, [])`` when the frame is late.

        The index counts cadence steps of the capture time, so that a gap in the feed is frames without support (it
        can end an event) and hits far apart in time are not taken for consecutive frames. A frame in the same step
        as the last still counts, as the next index; and after such frames have run ahead of the clock, a gap still
        adds its whole cadence steps to the last index.
        """
        if self.last_captured_at is not None and captured_at <= self.last_captured_at:
            return None, []
        index = round(captured_at.timestamp() / cadence_s)
        if self.last_index is not None and self.last_captured_at is not None:
            steps = int((captured_at - self.last_captured_at).total_seconds() // cadence_s)
            index = max(index, self.last_index + 1, self.last_index + steps)
        events = self.verifier.update(index, detections)
        self.last_index, self.last_captured_at = index, captured_at
        return index, events


class VerifierStore(Protocol):
    """Where :class:`PresetState` s live: one read-modify-write per frame, serialised per preset."""

    def previous_image(self, key: str, captured_at: datetime, max_age_s: float) -> ImageArray | None:
        """The last accepted RGB frame of ``key`` if it is at most ``max_age_s`` older than ``captured_at``."""
        ...

    def advance(
        self,
        key: str,
        new_state: Callable[[], PresetState],
        captured_at: datetime,
        cadence_s: float,
        detections: Detections,
        image: ImageArray | None = None,
    ) -> tuple[int | None, list[Event]]:
        """:meth:`PresetState.advance` under the preset's lock; keeps ``image`` as the previous frame if accepted.

        A frame whose events changed is also kept as *pending* (with its index and events), in the same write as the
        state, until :meth:`settle`: a frame given back after its worker died between the two (Celery's
        ``acks_late``) finds its events there, see :meth:`pending`.
        """
        ...

    def pending(self, key: str, captured_at: datetime) -> tuple[int, list[Event]] | None:
        """The index and events of a frame of ``key`` verified earlier whose sightings were not handed over yet."""
        ...

    def settle(self, key: str, captured_at: datetime) -> None:
        """The sightings of that frame were handed over (posted, queued or refused): forget its pending events."""
        ...

    def record_expired(self, key: str, captured_at: datetime, at: datetime) -> None:
        """A frame of ``key`` taken at ``captured_at`` was dropped unlooked-at (``expired``) at ``at``: kept a day
        for :meth:`expired_frames` (the heartbeats carry it to the service's status)."""
        ...

    def expired_frames(self, keys: Sequence[str], *, since: datetime) -> dict[str, ExpiredFrames]:
        """Per key of ``keys``: how many of its frames were dropped at or after ``since``, and when the latest one
        was (within a day)."""
        ...


@dataclass(frozen=True, slots=True)
class ExpiredFrames:
    """A preset's frames that no worker took before their ``expires_at`` (``expired``, dropped unlooked-at)."""

    count: int  # dropped within the window asked for
    last_at: datetime | None  # when the latest was dropped (within a day); None: none


#: Heartbeats count the frames of a preset dropped unlooked-at in this window (distributed patrols).
EXPIRED_WINDOW: Final = timedelta(hours=1)
#: How long a dropped frame is remembered (and its preset's ``last_expired_at`` reported).
_EXPIRED_KEPT: Final = timedelta(days=1)


class MemoryVerifierStore:
    """In-process state (the embedded default): a dict of live states, one lock per preset."""

    def __init__(self) -> None:
        self._states: dict[str, PresetState] = {}
        self._previous: dict[str, tuple[datetime, ImageArray]] = {}
        self._pending: dict[str, tuple[datetime, int, list[Event]]] = {}  # in process: the last such frame only
        self._expired: dict[str, dict[datetime, datetime]] = {}  # key → capture time → when it was dropped
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def state(self, key: str) -> PresetState | None:
        """The state of one preset (for inspection)."""
        return self._states.get(key)

    def previous_image(self, key: str, captured_at: datetime, max_age_s: float) -> ImageArray | None:
        """The last accepted frame, if recent enough."""
        with self._lock(key):
            entry = self._previous.get(key)
        if entry is None or not 0.0 < (captured_at - entry[0]).total_seconds() <= max_age_s:
            return None
        return entry[1]

    def advance(
        self,
        key: str,
        new_state: Callable[[], PresetState],
        captured_at: datetime,
        cadence_s: float,
        detections: Detections,
        image: ImageArray | None = None,
    ) -> tuple[int | None, list[Event]]:
        """Advance the preset's state under its lock."""
        with self._lock(key):
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = new_state()
            index, events = state.advance(captured_at, cadence_s, detections)
            if index is not None and image is not None:
                self._previous[key] = (captured_at, image)
            if index is not None and events:
                self._pending[key] = (captured_at, index, list(events))
            return index, events

    def pending(self, key: str, captured_at: datetime) -> tuple[int, list[Event]] | None:
        """The events of the preset's last frame with events, if it is that frame and they are not settled."""
        with self._lock(key):
            entry = self._pending.get(key)
        if entry is None or entry[0] != captured_at:
            return None
        return entry[1], list(entry[2])

    def settle(self, key: str, captured_at: datetime) -> None:
        """Forget the pending events of that frame."""
        with self._lock(key):
            entry = self._pending.get(key)
            if entry is not None and entry[0] == captured_at:
                del self._pending[key]

    def record_expired(self, key: str, captured_at: datetime, at: datetime) -> None:
        """Remember the dropped frame (by its capture time: a frame dropped twice counts once) for a day."""
        with self._lock(key):
            dropped = self._expired.setdefault(key, {})
            dropped[captured_at] = at
            for old in [c for c, when in dropped.items() if when < at - _EXPIRED_KEPT]:
                del dropped[old]

    def expired_frames(self, keys: Sequence[str], *, since: datetime) -> dict[str, ExpiredFrames]:
        """The frames of each key dropped since ``since``, and the latest."""
        out = {}
        for key in keys:
            with self._lock(key):
                times = list(self._expired.get(key, {}).values())
            out[key] = ExpiredFrames(sum(t >= since for t in times), max(times, default=None))
        return out


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """What happened to one sighting: posted, queued for a later retry, or failed (with the reason)."""

    sighting_key: str
    posted: bool
    status_code: int | None = None
    queued: bool = False
    error: str | None = None


class SightingSink(Protocol):
    """Where sightings go: the HTTP client (in process) or a queue of post tasks (Celery)."""

    def send(self, upload: SightingUpload) -> PostOutcome:
        """Deliver or hand over one sighting; never raises for delivery failures."""
        ...


class ClientSink:
    """Posts through a :class:`~video.client.SightingClient`; failures become outcomes, never exceptions."""

    def __init__(self, client: SightingClient) -> None:
        self.client = client

    def send(self, upload: SightingUpload) -> PostOutcome:
        """Post with the client's retries; a refusal or an unreachable service is logged and reported."""
        from video.client import ServiceUnavailable, SightingRejected

        try:
            response = self.client.post(upload)
        except SightingRejected as exc:
            return self.rejected(upload, exc)
        except ServiceUnavailable as exc:
            return self.unavailable(upload, exc)
        return PostOutcome(upload.key, True, response.status_code)

    def rejected(self, upload: SightingUpload, exc: SightingRejected) -> PostOutcome:
        """What to do when the service refuses the sighting (here: report it; it is not sent again)."""
        log.error("%s", exc)
        return PostOutcome(upload.key, False, exc.status_code, error=str(exc))

    def unavailable(self, upload: SightingUpload, exc: Exception) -> PostOutcome:
        """What to do when the service cannot be reached after the client's retries (here: report it)."""
        log.error("%s", exc)
        return PostOutcome(upload.key, False, error=str(exc))


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """One event state change of a frame and the sighting made of it."""

    state: Literal["confirmed", "ended"]
    class_name: str
    sighting_key: str | None
    ground_status: str | None
    posted: bool
    queued: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (Celery results)."""
        return {
            "state": self.state,
            "class_name": self.class_name,
            "sighting_key": self.sighting_key,
            "ground_status": self.ground_status,
            "posted": self.posted,
            "queued": self.queued,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What the pipeline did with one frame.

    ``status``: ``ok``; ``late`` (older than the last frame verified for the preset: not verified); ``expired``
    (no worker took it before its ``expires_at``: dropped unlooked-at, see :meth:`FramePipeline.expired`);
    ``error`` (an unknown camera/preset: the frame is dropped rather than attributed to anything else).
    """

    camera_id: str
    preset_id: str
    seq: int
    captured_at: datetime
    status: Literal["ok", "late", "expired", "error"]
    frame_index: int | None = None
    candidates: int = 0
    sun_glare: int = 0  # boxes ignored because they lay in the sun's glare (``PresetRecord.sun_glare_deg``)
    events: tuple[EventOutcome, ...] = ()
    model: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (Celery results)."""
        return {
            "camera_id": self.camera_id,
            "preset_id": self.preset_id,
            "seq": self.seq,
            "captured_at": self.captured_at.isoformat().replace("+00:00", "Z"),
            "status": self.status,
            "frame_index": self.frame_index,
            "candidates": self.candidates,
            "sun_glare": self.sun_glare,
            "events": [e.to_json() for e in self.events],
            "model": self.model,
            "error": self.error,
        }


def _lens_scale(lens_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[float, float]:
    """(x, y) factors from frame pixels to the lens's calibrated pixels (a sub-stream has fewer pixels than the
    calibrated main stream); a frame of another aspect ratio is an error, not a stretch."""
    (lw, lh), (iw, ih) = lens_size, image_size
    sx, sy = lw / iw, lh / ih
    if abs(sx - sy) > _ASPECT_TOLERANCE * max(sx, sy):
        raise InputError(
            f"the frame is {iw}×{ih} but the lens is calibrated for {lw}×{lh} (a different aspect ratio): "
            "register the stream's own lens or crop",
            field="lens",
        )
    return sx, sy


def lens_size(camera: CameraRecord, preset: PresetRecord) -> tuple[int, int]:
    """(w, h) of the frames the preset's lens was calibrated for (at the preset's zoom)."""
    intrinsics = lens_intrinsics(camera.lens, preset.zoom)
    return intrinsics.width, intrinsics.height


def lens_mismatch(camera: CameraRecord, preset: PresetRecord, image_size: tuple[int, int]) -> str | None:
    """Why frames of ``image_size`` (w, h) do not fit the preset's calibrated lens (another aspect ratio), or None
    when they do.

    Decision: only the aspect ratio decides (within 2 %). A frame of the same aspect ratio at another resolution
    (the operator moved the stream to 720p, or the patrol reads the sub-stream) shows the same picture with fewer
    or more pixels, and for a pinhole camera, distortion included, scaling the box to the calibrated size is exact:
    such a preset stays healthy and its fires are geolocated. Another aspect ratio means the picture is cropped or
    stretched in a way the registry does not say (or the lens entry is another camera's): no box can be placed.
    """
    try:
        _lens_scale(lens_size(camera, preset), image_size)
    except InputError as exc:
        return str(exc)
    return None


def _scaled_box(
    lens_size: tuple[int, int], image_size: tuple[int, int], box: Sequence[float]
) -> tuple[float, float, float, float]:
    """A box in frame pixels → lens pixels."""
    sx, sy = _lens_scale(lens_size, image_size)
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy


@lru_cache(maxsize=16)
def _dem(path: str) -> Terrain:
    from video.ground import DemTerrain

    return DemTerrain.from_file(path)


def locate_camera_box(
    camera: CameraRecord,
    preset: PresetRecord,
    box: Sequence[float],
    image_size: tuple[int, int],
    *,
    n_sigma: float = 2.0,
) -> tuple[BearingWedge, GroundFix | None]:
    """The bearing wedge and ground fix of a box ``(x1, y1, x2, y2)`` in a frame of ``image_size`` (w, h).

    The box is scaled to the lens's calibrated size first; the ground is the camera's DEM when it has one, else
    flat at the site elevation. The fix is None when the ground cannot be computed (a DEM file missing on this
    host or not covering the camera, a camera not above its ground), logged once per camera and reason: the wedge
    still places the fire, and a confirmed fire must not be dropped for want of a ground point.

    A frame whose aspect ratio is not the lens's (a stream registered with another stream's lens) cannot place a
    box at all: where the box lies in the calibrated picture is unknown. By decision the fire is still posted, with
    the wedge of the preset's whole view (the picture shows this preset, so the fire is somewhere in it: the box's
    bearing extent is the whole field of view, which also widens the bearing's σ in a crossing) and no ground
    point — a ground point from the wrong geometry could put the fire in the wrong township, which is worse than
    none; its sighting says ``ground_status: "lens_mismatch"``. Logged once per camera, preset and frame size.
    :class:`Patrol` reports the preset as ``lens_mismatch`` in its heartbeats (the service's own camera health
    state), so the county sees the misconfiguration before a fire does.
    """
    pose = camera.pose(preset)
    intrinsics = lens_intrinsics(camera.lens, pose.zoom)
    placeable = True
    try:
        scaled = _scaled_box(lens_size(camera, preset), image_size, box)
    except InputError as exc:
        _warn_once(
            preset_key(camera.id, preset.id),
            f"{preset_key(camera.id, preset.id)}: {exc}; its sightings carry the wedge of the whole view and no "
            "ground point",
        )
        scaled, placeable = (0.0, 0.0, float(intrinsics.width), float(intrinsics.height)), False
    wedge = box_to_wedge(
        camera.site,
        camera.lens,
        pose,
        scaled,
        max_range_m=camera.max_range_m,
        min_range_m=camera.min_range_m,
        n_sigma=n_sigma,
    )
    if not placeable:
        return wedge, None
    try:
        terrain = _dem(camera.dem) if camera.dem else None
        fix = locate_box(
            camera.site, camera.lens, pose, scaled, terrain=terrain, n_sigma=n_sigma, max_range_m=camera.max_range_m
        )
    except (DemError, InputError) as exc:
        _warn_once(camera.id, f"camera {camera.id}: no ground point, sightings carry the wedge only: {exc}")
        return wedge, None
    return wedge, fix


_WARNED: set[tuple[str, str]] = set()
_WARNED_LOCK = threading.Lock()


def _warn_once(subject: str, message: str) -> None:
    """Log ``message`` the first time it comes for ``subject`` (a missing DEM would otherwise log every event)."""
    with _WARNED_LOCK:
        if (subject, message) in _WARNED:
            return
        _WARNED.add((subject, message))
    log.warning("%s", message)


def _ground_estimate(fix: GroundFix, terrain: Literal["flat", "dem", "flat_takeoff"]) -> GroundEstimate | None:
    if fix.hit is None:
        return None
    return GroundEstimate(
        point=GeoJsonPoint.at(fix.hit.latitude, fix.hit.longitude),
        uncertainty=GeoJsonPolygon.from_shapely(fix.region),
        horizontal_range_m=fix.hit.horizontal_range_m,
        near_range_m=fix.near_range_m,
        far_range_m=fix.far_range_m,
        far_open=fix.far_open,
        terrain=terrain,
    )


def _model_ref(detector: Detector) -> ModelRef:
    info = detector.info
    return ModelRef(name=info.name, version=info.version, backend=info.backend)


def _encode_jpeg(image: ImageArray, quality: int) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError("OpenCV could not encode the frame as JPEG", field="evidence")
    return bytes(buffer.tobytes())


def _clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Inside the image, ordered, to 0.01 px (float32 noise in the JSON helps nobody)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((round(min(max(x1, 0.0), width), 2), round(min(max(x2, 0.0), width), 2)))
    y1, y2 = sorted((round(min(max(y1, 0.0), height), 2), round(min(max(y2, 0.0), height), 2)))
    return x1, y1, x2, y2


def _confidence(value: float) -> float:
    return round(min(1.0, max(0.0, float(value))), 5)


def _boxes(
    first: tuple[str, float, Sequence[float]],
    detections: Detections,
    threshold: float,
    size: tuple[int, int],
    limit: int,
) -> list[SightingBox]:
    width, height = size
    name, confidence, box = first
    out = [SightingBox(class_name=name, confidence=_confidence(confidence), xyxy=_clip_box(box, width, height))]
    for det in detections:
        if len(out) >= limit:
            break
        if det.confidence < threshold or tuple(det.box) == tuple(box):
            continue
        out.append(
            SightingBox(
                class_name=det.class_name, confidence=_confidence(det.confidence), xyxy=_clip_box(det.box, *size)
            )
        )
    return out


class FramePipeline:
    """detect → verify → geolocate → post, for frames of any camera and preset in ``registry``.

    Thread-safe when the detector is (ONNX Runtime sessions and the rules are): the store serialises each preset.
    """

    def __init__(
        self,
        registry: CameraRegistry,
        detector: Detector,
        sink: SightingSink,
        *,
        store: VerifierStore | None = None,
        config: PipelineConfig = PipelineConfig(),
    ) -> None:
        self.registry = registry
        self.detector = detector
        self.sink = sink
        self.store: VerifierStore = store if store is not None else MemoryVerifierStore()
        self.config = config

    def sequence_config(self) -> SequenceConfig:
        """The verifier's rule with this detector's per-frame threshold."""
        return replace(self.config.sequence, frame_threshold=self.config.threshold(self.detector))

    def new_state(self, preset: PresetRecord) -> PresetState:
        """A fresh state for a preset (its ignore mask applies)."""
        mask = IgnoreMask.from_lists(preset.ignore_mask) if preset.ignore_mask else None
        return PresetState(SequenceVerifier(self.sequence_config(), mask))

    def detect(
        self, frame: Frame, previous: ImageArray | None = None, tiles: tuple[int, int] | None = None
    ) -> Detections:
        """The detector's candidates in ``frame`` (at the per-frame threshold), boxes in frame pixels.

        ``tiles``: (cols, rows) of overlapping tiles also looked at (``detector.tiling.with_tiles``); ``None`` or
        (1, 1) for the whole frame only (a preset's ``tiles`` as the registry stores it).
        """
        return self._detect(frame.rgb(), previous, tiles)

    def _detect(self, rgb: ImageArray, previous: ImageArray | None, tiles: tuple[int, int] | None) -> Detections:
        threshold = self.config.threshold(self.detector)
        # A preset without tiles is the whole frame only (with_tiles' None would mean "auto"); a motion detector
        # is never tiled (with_tiles hands it back as it is) and gets the previous frame.
        return detect_frame(with_tiles(self.detector, tiles or (1, 1)), rgb, previous, conf=threshold)

    def expired(self, camera_id: str, preset_id: str, captured_at: datetime, expires_at: datetime | None) -> bool:
        """Whether a queued frame taken now, past its ``expires_at``, is to be dropped unlooked-at (``expired``).

        Workers behind a backlog drop old frames rather than detect them first: the preset's newer frames are
        already queued, and the verifier would only see the past while they wait (:func:`video.tasks.submit_frame`).
        A frame whose verified events are still pending (its worker died before handing their sightings over) is
        never dropped: those sightings are due.
        """
        if expires_at is None or datetime.now(UTC) <= expires_at:
            return False
        return self.store.pending(preset_key(camera_id, preset_id), captured_at) is None

    def process(self, frame: Frame) -> FrameResult:
        """Run every step for one frame; sightings go to the sink as their events change state."""
        base: dict[str, Any] = {
            "camera_id": frame.camera_id,
            "preset_id": frame.preset_id,
            "seq": frame.seq,
            "captured_at": frame.captured_at,
            "model": self.detector.info.name,
        }
        try:
            camera, preset = self.registry.preset(frame.camera_id, frame.preset_id)
        except RegistryError as exc:
            log.error("dropping frame %d of %s: %s", frame.seq, preset_key(frame.camera_id, frame.preset_id), exc)
            return FrameResult(status="error", error=str(exc), **base)
        key = preset_key(camera.id, preset.id)
        motion = isinstance(self.detector, MotionDetector)
        previous = (
            self.store.previous_image(key, frame.captured_at, self.config.motion_max_gap * preset.cadence_s)
            if motion
            else None
        )
        rgb = frame.rgb()
        found, glare = self._outside_sun_glare(self._detect(rgb, previous, preset.tiles), camera, preset, frame)
        threshold = self.config.threshold(self.detector)
        index, events = self.store.advance(
            key, lambda: self.new_state(preset), frame.captured_at, preset.cadence_s, found, rgb if motion else None
        )
        candidates = int(np.count_nonzero(found.confidence >= threshold))
        if index is None:
            # Not newer than the preset's last frame: late, or this very frame given back after its worker died
            # before its sightings were handed over (the verifier already counted it: only the sightings are due).
            replay = self.store.pending(key, frame.captured_at)
            if replay is None:
                log.warning("%s: frame %d (%s) is late; not verified", key, frame.seq, frame.captured_at.isoformat())
                return FrameResult(status="late", candidates=candidates, sun_glare=glare, **base)
            index, events = replay
            log.warning("%s: frame %d came again before its sightings were handed over; sending them", key, frame.seq)
        outcomes: list[EventOutcome] = []
        evidence: bytes | None = None
        for event in events:
            state: Literal["confirmed", "ended"] = "ended" if event.end_frame is not None else "confirmed"
            if state == "ended" and not self.config.post_ended:
                continue
            try:
                if evidence is None:
                    evidence = self.evidence(frame)
                upload = self.camera_sighting(camera, preset, frame, event, state, found, index, evidence)
            except VideoError as exc:
                log.error("%s: cannot build the sighting of a %s %s event: %s", key, state, event.class_name, exc)
                outcomes.append(EventOutcome(state, event.class_name, None, None, False, error=str(exc)))
                continue
            post = self.sink.send(upload)
            outcomes.append(
                EventOutcome(
                    state,
                    event.class_name,
                    upload.key,
                    upload.sighting.ground_status,
                    post.posted,
                    post.queued,
                    post.error,
                )
            )
        if events:
            self.store.settle(key, frame.captured_at)
        return FrameResult(
            status="ok", frame_index=index, candidates=candidates, sun_glare=glare, events=tuple(outcomes), **base
        )

    @staticmethod
    def _outside_sun_glare(
        found: Detections, camera: CameraRecord, preset: PresetRecord, frame: Frame
    ) -> tuple[Detections, int]:
        """``found`` without the boxes mostly inside the preset's sun-glare cone at the frame's time
        (:mod:`video.sun`), and how many were dropped."""
        if not preset.sun_glare_deg or not len(found):
            return found, 0
        polygon = glare_polygon(camera.site, camera.lens, camera.pose(preset), frame.captured_at, preset.sun_glare_deg)
        if polygon is None:
            return found, 0
        lens = lens_intrinsics(camera.lens, preset.zoom)  # the polygon is in the lens's calibrated pixels
        try:
            sx, sy = _lens_scale((lens.width, lens.height), frame.size)
        except InputError:
            # A frame the lens does not fit (counted as an error by the patrol, see locate_camera_box): the cone
            # cannot be placed in it, and the frame is still looked at rather than dropped.
            return found, 0
        mask = IgnoreMask(((tuple((u / sx, v / sy) for u, v in polygon)),))
        glared = np.array([mask.covers((x1, y1, x2, y2)) for x1, y1, x2, y2 in found.xyxy.tolist()], bool)
        return found.select(~glared), int(glared.sum())

    def evidence(self, frame: Frame) -> bytes:
        """The frame as JPEG: the camera's own bytes when it sent JPEG, else encoded here."""
        if frame.encoded is not None and frame.encoded.startswith(b"\xff\xd8"):
            return frame.encoded
        return _encode_jpeg(frame.image, self.config.evidence_quality)

    def camera_sighting(
        self,
        camera: CameraRecord,
        preset: PresetRecord,
        frame: Frame,
        event: Event,
        state: Literal["confirmed", "ended"],
        detections: Detections,
        frame_index: int,
        evidence: bytes,
    ) -> SightingUpload:
        """The sighting of one event state change, located from the event's box."""
        size = frame.size
        wedge, fix = locate_camera_box(camera, preset, event.box, size, n_sigma=self.config.n_sigma)
        current = next((d.confidence for d in detections if tuple(d.box) == tuple(event.box)), event.max_confidence)
        x1, y1 = event.box[0], event.box[1]
        key = (
            f"camera/{camera.id}/{preset.id}/{event.class_name}/{event.start_frame}-{event.confirm_frame}/"
            f"{x1:.0f},{y1:.0f}/{state}"
        )
        pose = camera.pose(preset)
        site = camera.site
        first_seen = frame.captured_at - timedelta(seconds=(frame_index - event.start_frame) * preset.cadence_s)
        sighting = CameraSighting(
            sighting_key=key,
            camera_id=camera.id,
            preset_id=preset.id,
            captured_at=frame.captured_at,
            frame_seq=frame.seq,
            image_size=size,
            event=EventInfo(
                class_name=event.class_name,
                state=state,
                start_frame=event.start_frame,
                confirm_frame=event.confirm_frame,
                end_frame=event.end_frame,
                frame_index=frame_index,
                cadence_s=preset.cadence_s,
                first_seen_at=first_seen,
                max_confidence=_confidence(event.max_confidence),
            ),
            boxes=_boxes(
                (event.class_name, current, event.box),
                detections,
                self.config.threshold(self.detector),
                size,
                self.config.max_boxes,
            ),
            site=CameraSiteInfo(
                latitude=site.latitude,
                longitude=site.longitude,
                mast_height_m=site.mast_height_m,
                ground_elevation_m=site.ground_elevation_m,
                heading_offset_deg=site.heading_offset_deg,
            ),
            pose=PoseInfo(
                pan_deg=pose.pan_deg,
                tilt_deg=pose.tilt_deg,
                zoom=pose.zoom,
                roll_deg=pose.roll_deg,
                sigma_pan_deg=pose.sigma_pan_deg,
                sigma_tilt_deg=pose.sigma_tilt_deg,
            ),
            bearing=BearingInfo(
                centre_deg=wedge.centre_bearing_deg,
                half_width_deg=wedge.half_width_deg,
                box_half_width_deg=wedge.box_half_width_deg,
                sigma_deg=pose.sigma_pan_deg,
                min_range_m=wedge.min_range_m,
                max_range_m=wedge.max_range_m,
            ),
            wedge=GeoJsonPolygon.from_shapely(wedge.polygon()),
            ground=_ground_estimate(fix, "dem" if camera.dem else "flat") if fix is not None else None,
            ground_status=fix.status.value if fix is not None else self._no_ground_status(camera, preset, size),
            model=_model_ref(self.detector),
            evidence=evidence_info(evidence, *size),
        )
        return SightingUpload(sighting, evidence)

    @staticmethod
    def _no_ground_status(camera: CameraRecord, preset: PresetRecord, size: tuple[int, int]) -> GroundStatus:
        """Why :func:`locate_camera_box` gave no ground fix: the frame does not fit the lens, or the ground could not
        be computed (a DEM missing on this host, a camera not above its ground)."""
        return "lens_mismatch" if lens_mismatch(camera, preset, size) is not None else "ground_error"


# --- In-process patrol ------------------------------------------------------------------------------------------


@dataclass
class PresetStats:
    """Per-preset counters of a patrol run."""

    frames: int = 0
    errors: int = 0
    last_error: str | None = None
    frozen: bool = False  # the feed shows the same picture again and again (:mod:`video.health`)
    frozen_episodes: int = 0
    # The latest frame does not fit the preset's lens (another aspect ratio, :func:`lens_mismatch`): the sizes
    # ((w, h) registered, (w, h) received); None while it fits.
    lens_mismatch: tuple[tuple[int, int], tuple[int, int]] | None = None
    last_frame_at: datetime | None = None  # capture time of the latest frame read
    # Frames the source read but skipped by the preset's cadence (added when the source ends): a folder's images
    # closer in capture time than the cadence, a stream's frames in between.
    throttled: int = 0
    results: list[Any] = field(default_factory=list)
    # The running source's own counters: its failed connections, stalls and corrupt frames are this preset's errors
    # too (added to ``errors`` when the source ends; counted live in the heartbeats meanwhile).
    source: SourceStats | None = field(default=None, repr=False, compare=False)

    def stream_errors(self) -> int:
        """``errors`` plus the running source's failed connections and corrupt frames so far."""
        live = self.source
        return self.errors + (0 if live is None else live.reconnects + live.corrupt)


@dataclass
class PatrolReport:
    """What a patrol run did, per ``camera/preset``."""

    presets: dict[str, PresetStats]

    @property
    def frames(self) -> int:
        """Frames handled over all presets."""
        return sum(s.frames for s in self.presets.values())


SourceFactory = Callable[[CameraRecord, PresetRecord], FrameSource]


class Patrol:
    """Runs presets of a registry: one thread per preset, each frame of its source handed to ``handle``.

    ``handle`` is :meth:`FramePipeline.process` (in process, the embedded default) or
    :func:`video.tasks.submit_frame` (Celery workers); its return values are kept per preset when
    ``keep_results``. A frame that makes ``handle`` raise is logged and counted, and the patrol goes on; a
    source that cannot deliver at all (:class:`~video.sources.SourceError`) ends its preset only.

    Each preset needs a source that shows only that preset (a fixed camera per direction, or a per-preset
    snapshot URL): driving a single PTZ head through its presets needs a PTZ control API, which is not here.
    """

    def __init__(
        self,
        registry: CameraRegistry,
        handle: Callable[[Frame], Any],
        *,
        sources: SourceFactory = open_source,
        presets: Iterable[tuple[str, str]] | None = None,
        keep_results: bool = False,
        heartbeat: Callable[[list[dict[str, Any]]], Any] | None = None,
        heartbeat_every_s: float = 60.0,
        expired_frames: Callable[[list[str]], Mapping[str, ExpiredFrames]] | None = None,
    ) -> None:
        if heartbeat_every_s <= 0:
            raise ValueError("heartbeat_every_s must be > 0")
        self.registry = registry
        self.heartbeat = heartbeat
        self.heartbeat_every_s = heartbeat_every_s
        self.expired_frames = expired_frames
        self.handle = handle
        self._factory = sources
        wanted = list(presets) if presets is not None else [(c.id, p.id) for c, p in registry.presets()]
        self._presets = [registry.preset(camera_id, preset_id) for camera_id, preset_id in wanted]
        self.keep_results = keep_results
        self._stop = threading.Event()
        self._sources: list[FrameSource] = []
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Stop every source (thread-safe); :meth:`run` returns once their threads finish."""
        self._stop.set()
        with self._lock:
            for source in self._sources:
                source.close()

    def _run_preset(self, camera: CameraRecord, preset: PresetRecord, stats: PresetStats) -> None:
        key = preset_key(camera.id, preset.id)
        try:
            source = self._factory(camera, preset)
        except SourceError as exc:
            stats.errors += 1
            stats.last_error = str(exc)
            log.error("%s: %s", key, exc)
            return
        except Exception as exc:  # a source that cannot even open ends this preset only, and says so
            stats.errors += 1
            stats.last_error = redact_url(f"{type(exc).__name__}: {exc}")
            log.error("%s: the source failed: %s", key, stats.last_error)
            return
        with self._lock:
            self._sources.append(source)
            stats.source = getattr(source, "stats", None)
            if self._stop.is_set():
                source.close()
        watch = FrozenFeedWatch()
        lens_fit: dict[tuple[int, int], str | None] = {}  # frame size → why the lens does not fit it (None: it does)
        try:
            for frame in source:
                stats.frames += 1
                stats.last_frame_at = frame.captured_at
                self._watch_feed(key, watch, frame, stats)
                self._check_lens(key, camera, preset, frame, stats, lens_fit)
                try:
                    result = self.handle(frame)
                except Exception as exc:  # one bad frame (or a detector hiccup) must not stop a tower's patrol
                    stats.errors += 1
                    stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("%s: frame %d failed", key, frame.seq)
                    continue
                self._count_unbuilt_sightings(result, stats)
                if self.keep_results:
                    stats.results.append(result)
        except SourceError as exc:
            stats.errors += 1
            stats.last_error = str(exc)
            log.error("%s: %s", key, exc)
        except Exception as exc:  # anything else a source raises (an URL httpx refuses, say) ends this preset only
            stats.errors += 1
            stats.last_error = redact_url(f"{type(exc).__name__}: {exc}")  # messages may quote the stream's URL
            log.error("%s: the source failed: %s", key, stats.last_error)
        finally:
            self._fold_source_errors(stats)

    @staticmethod
    def _check_lens(
        key: str,
        camera: CameraRecord,
        preset: PresetRecord,
        frame: Frame,
        stats: PresetStats,
        lens_fit: dict[tuple[int, int], str | None],
    ) -> None:
        """Note whether the preset's lens fits the frame (:func:`lens_mismatch`), and count a frame it does not fit
        (another aspect ratio) as an error of the preset.

        By decision the preset's heartbeats then say ``lens_mismatch`` (registered and received sizes), which the
        service shows as a camera health state of its own: none of the frame's boxes can be placed (their sightings
        carry the whole view's wedge and no ground point, :func:`locate_camera_box`), so the preset is
        misconfigured for as long as it lasts (the stream's own lens must be registered, or the stream set back to
        the calibrated profile). The state follows the latest frame: it clears once frames fit again. Every such
        frame also counts as an error, so the patrol's own summary names it. Logged once per frame size.
        """
        size = frame.size
        if size not in lens_fit:
            lens_fit[size] = problem = lens_mismatch(camera, preset, size)
            if problem is not None:
                log.error(
                    "%s: %s; every frame of this size counts as an error, the preset's health is lens_mismatch, and "
                    "fires seen in it are posted with the wedge of the whole view and no ground point",
                    key,
                    problem,
                )
        problem = lens_fit[size]
        # One assignment either way: the heartbeat thread reads it meanwhile
        stats.lens_mismatch = None if problem is None else (lens_size(camera, preset), size)
        if problem is not None:
            stats.errors += 1
            stats.last_error = problem

    @staticmethod
    def _count_unbuilt_sightings(result: object, stats: PresetStats) -> None:
        """A verified event whose sighting could not be made (``FramePipeline.process`` logged why) is a fire that
        went nowhere: an error of the preset, not a frame that went well."""
        if not isinstance(result, FrameResult):
            return  # a Celery grabber's handle only queues the frame: the workers report their own
        for outcome in result.events:
            if outcome.sighting_key is None:
                stats.errors += 1
                stats.last_error = f"a {outcome.state} {outcome.class_name} event was not posted: {outcome.error}"

    def _fold_source_errors(self, stats: PresetStats) -> None:
        """Make the ended source's failed connections and corrupt frames part of the preset's errors (a camera that
        refused every connection reported "0 frames, 0 errors"), and its last failure the preset's when it has none."""
        with self._lock:
            counters, stats.source = stats.source, None
            if counters is None:
                return
            stats.throttled += counters.throttled
            failures = counters.reconnects + counters.corrupt
            stats.errors += failures
            if failures and stats.last_error is None and counters.last_error:
                stats.last_error = redact_url(counters.last_error)

    @staticmethod
    def _watch_feed(key: str, watch: FrozenFeedWatch, frame: Frame, stats: PresetStats) -> None:
        try:
            change = watch.update(frame.image)
        except Exception:  # a health check must never stop the patrol
            log.exception("%s: the frozen-feed check failed", key)
            return
        if change == "frozen":
            stats.frozen = True
            stats.frozen_episodes += 1
            log.error(
                "%s: the feed has shown the same picture for %d frames: the camera or its encoder is stuck, and no "
                "fire can be seen here until it recovers",
                key,
                watch.repeats,
            )
        elif change == "recovered":
            stats.frozen = False
            log.warning("%s: the feed moves again", key)

    def heartbeats(self, report: PatrolReport) -> list[dict[str, Any]]:
        """One heartbeat per preset from the run's counters (``POST /api/v1/cameras/health``'s items).

        With ``expired_frames`` (a grabber of Celery workers), each also says how many of the preset's frames the
        workers dropped unlooked-at in the last hour (``expired``) and when the latest was (``last_expired_at``):
        the grabber only queues frames, so workers that do not keep up would otherwise show in their own logs
        only. When those counts cannot be read (their Redis is down) the heartbeats go without them.

        A preset whose latest frame does not fit its lens also says ``lens_mismatch``: ``{"registered": [w, h],
        "received": [w, h]}`` (:meth:`_check_lens`). Only then: a heartbeat without it says the frames fit, and a
        service older than this field still takes the heartbeats of every preset that fits.
        """
        now = datetime.now(UTC)
        keys = [preset_key(camera.id, preset.id) for camera, preset in self._presets]
        expired = self._read_expired(keys)
        out = []
        for (camera, preset), key in zip(self._presets, keys, strict=True):
            stats = report.presets[key]
            with self._lock:  # not while a preset's ended source is being folded into its errors
                errors = stats.stream_errors()
            last = stats.last_frame_at
            beat: dict[str, Any] = {
                "camera_id": camera.id,
                "preset": preset.id,
                "at": now.isoformat(),
                "frames": stats.frames,
                "errors": errors,
                "frozen": stats.frozen,
                # a file's frames may carry times ahead of the clock: never after the heartbeat itself
                "last_frame_at": None if last is None else min(last, now).isoformat(),
            }
            if stats.lens_mismatch is not None:
                registered, received = stats.lens_mismatch
                beat["lens_mismatch"] = {"registered": list(registered), "received": list(received)}
            if expired is not None:
                dropped = expired.get(key) or ExpiredFrames(0, None)
                beat["expired"] = dropped.count
                # a worker's clock may run ahead of this one: never after the heartbeat itself either
                beat["last_expired_at"] = None if dropped.last_at is None else min(dropped.last_at, now).isoformat()
            out.append(beat)
        return out

    def _read_expired(self, keys: list[str]) -> Mapping[str, ExpiredFrames] | None:
        if self.expired_frames is None:
            return None
        try:
            return self.expired_frames(keys)
        except Exception as exc:  # the heartbeats themselves must still go
            log.warning("the workers' expired frames could not be read: %s", redact_url(f"{type(exc).__name__}: {exc}"))
            return None

    def _send_heartbeats(self, report: PatrolReport, done: threading.Event) -> None:
        # Its own thread: a slow or absent service never holds up a frame.
        while not done.wait(self.heartbeat_every_s):
            self._beat(report, "heartbeats not sent")

    def _beat(self, report: PatrolReport, failure: str) -> None:
        # Nothing is kept when a post fails: the next heartbeat replaces a lost one.
        assert self.heartbeat is not None
        try:
            self.heartbeat(self.heartbeats(report))
        except Exception as exc:
            log.warning("%s: %s", failure, redact_url(f"{type(exc).__name__}: {exc}"))

    def run(self, *, timeout_s: float | None = None) -> PatrolReport:
        """Run until every source ends (files, folders) or :meth:`stop` (or ``timeout_s``) ends them (live).

        With ``heartbeat``, every ``heartbeat_every_s`` seconds it is called from a thread of its own with one
        heartbeat per preset (:meth:`heartbeats`), and once more when the run ends.
        """
        report = PatrolReport({preset_key(c.id, p.id): PresetStats() for c, p in self._presets})
        done = threading.Event()
        beating = None
        if self.heartbeat is not None:
            beating = threading.Thread(
                target=self._send_heartbeats, args=(report, done), name="patrol-heartbeats", daemon=True
            )
            beating.start()
        threads = [
            threading.Thread(
                target=self._run_preset,
                args=(camera, preset, report.presets[preset_key(camera.id, preset.id)]),
                name=f"patrol-{preset_key(camera.id, preset.id)}",
                daemon=True,
            )
            for camera, preset in self._presets
        ]
        for thread in threads:
            thread.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():  # the deadline passed with live sources still running
                self.stop()
                thread.join()
        done.set()
        if beating is not None:
            beating.join(timeout=10.0)  # at most one post in flight, with its own short timeout
            # The final counts (a folder's last frame, the error that ended a preset) reach the service even when
            # the run was shorter than one heartbeat interval; from then on the presets age into ``silent`` there.
            self._beat(report, "the last heartbeats were not sent")
        return report


# --- Drone images ---------------------------------------------------------------------------------------------


_EXIF_TIME_FORMATS: Final = ("%Y:%m:%d %H:%M:%S.%f", "%Y:%m:%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


def _parse_time(text: str) -> datetime | None:
    text = text.strip().rstrip("Z").strip()
    for fmt in _EXIF_TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _parse_offset(text: str) -> timedelta | None:
    match = re.fullmatch(r"\s*([+-])(\d{2}):?(\d{2})\s*", text)
    if match is None:
        return None
    sign = 1 if match.group(1) == "+" else -1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


def drone_capture_time(path: str | Path, utc_offset: timedelta = DEFAULT_UTC_OFFSET) -> tuple[datetime, str]:
    """When a drone image was taken, UTC, and where that came from.

    In order: DJI XMP ``UTCAtExposure``; EXIF ``DateTimeOriginal`` with ``OffsetTimeOriginal``; EXIF
    ``DateTimeOriginal`` taken as local time at ``utc_offset`` (default +08:00, China; DJI writes the controller's
    local time without a zone).

    Raises:
        MetadataError: the image has none of them.
    """
    from PIL import ExifTags, Image

    from video.drone import DJI_LEGACY_NS, DJI_NS, parse_xmp, read_xmp_packet

    path = Path(path)
    name = str(path)
    try:
        with path.open("rb") as handle:
            packet = read_xmp_packet(handle)
    except (OSError, InputError):
        packet = None
    if packet:
        for (uri, tag), value in parse_xmp(packet).items():
            if uri in (DJI_NS, DJI_LEGACY_NS) and tag.lower() == "utcatexposure":
                parsed = _parse_time(value)
                if parsed is not None:
                    return parsed.replace(tzinfo=UTC), "xmp:UTCAtExposure"
    try:
        with Image.open(path) as image:
            exif = image.getexif().get_ifd(ExifTags.IFD.Exif)
    except OSError as exc:
        raise MetadataError(f"cannot read EXIF: {exc}", source_name=name) from None
    original = exif.get(0x9003)
    local = _parse_time(str(original)) if original else None
    if local is None:
        raise MetadataError("no capture time", source_name=name, missing=("UTCAtExposure", "DateTimeOriginal"))
    offset_text = exif.get(0x9011)
    offset = _parse_offset(str(offset_text)) if offset_text else None
    if offset is not None:
        return (local - offset).replace(tzinfo=UTC), "exif:DateTimeOriginal+OffsetTimeOriginal"
    hours = utc_offset.total_seconds() / 3600.0
    return (local - utc_offset).replace(tzinfo=UTC), f"exif:DateTimeOriginal (assumed UTC{hours:+g}h)"


@dataclass(frozen=True, slots=True)
class DroneImageResult:
    """One drone image of a batch: how many boxes, the sightings made and their delivery, or why none."""

    image: str
    boxes: int
    outcomes: tuple[PostOutcome, ...] = ()
    error: str | None = None


def _drone_pose(meta: DroneMetadata) -> DronePoseInfo:
    yaw = meta.yaw()
    assert meta.latitude is not None
    assert meta.longitude is not None
    return DronePoseInfo(
        latitude=meta.latitude,
        longitude=meta.longitude,
        absolute_altitude_m=meta.absolute_altitude_m,
        relative_altitude_m=meta.relative_altitude_m,
        gimbal_pitch_deg=meta.gimbal_pitch_deg,
        gimbal_yaw_deg=meta.gimbal_yaw_deg,
        gimbal_roll_deg=meta.gimbal_roll_deg,
        yaw_source=yaw[1] if yaw else None,
        make=meta.make,
        model=meta.model,
    )


def _ground_pixel(class_name: str, box: Sequence[float]) -> tuple[float, float]:
    """Where a box touches the ground: the centre of a flame, the bottom centre of a plume (smoke rises)."""
    u = round((box[0] + box[2]) / 2.0, 2)
    return (u, round(float(box[3]), 2)) if class_name == "smoke" else (u, round((box[1] + box[3]) / 2.0, 2))


def _naming(exc: Exception, path: Path, shown: str) -> str:
    """``exc``'s message with the image named as ``shown`` and not repeated: an upload's file is the service's
    temporary ``/tmp/strawfire-drone-…/6.jpg``, which means nothing to the pilot who sent ``DJI_0042.JPG``."""
    return str(exc).replace(str(path), shown).removeprefix(f"{shown}: ")


def drone_sightings(
    path: str | Path,
    detector: Detector,
    *,
    drone_id: str,
    terrain: Terrain | None = None,
    min_confidence: float | None = None,
    max_boxes: int = 5,
    utc_offset: timedelta = DEFAULT_UTC_OFFSET,
    captured_at: datetime | None = None,
    hfov_deg: float | None = None,
    image_name: str | None = None,
) -> list[SightingUpload]:
    """Detect in one DJI image and locate each box (at most ``max_boxes``, most confident first) on the ground.

    ``image_name``: the name to report (default the file's; an upload's file is written under a name of the
    service's own). Sightings are keyed by the drone, the image's content and the box, not by the name, so the
    same photo sent again under another name (``DJI_0001 (1).JPG``) is the same sighting.

    Each box becomes one :class:`~video.sighting.DroneSighting` with the original file as evidence (its bytes
    untouched, metadata included). A box whose ray does not land, or an image without intrinsics, still gives a
    sighting, with ``ground`` null and the reason. ``min_confidence`` defaults to the model's operating
    threshold; ``hfov_deg`` supplies the field of view for frames whose metadata lacks a focal length.

    Raises:
        InputError, MetadataError: not a readable JPEG, or no drone position in its metadata.
    """
    from detector.evaluate import rescale
    from detector.images import ImageLoadError, load_image
    from video.camera import Intrinsics
    from video.drone import locate, read_drone_metadata

    path = Path(path)
    shown = image_name or path.name
    meta = read_drone_metadata(path)
    if meta.latitude is None or meta.longitude is None:
        raise MetadataError("no drone position", source_name=str(path), missing=("GpsLatitude", "GpsLongitude"))
    when, time_source = (captured_at, "given") if captured_at is not None else drone_capture_time(path, utc_offset)
    try:
        loaded = load_image(path)
    except ImageLoadError as exc:
        raise InputError(str(exc)) from None
    threshold = detector.info.operating_threshold if min_confidence is None else min_confidence
    found = rescale(detector.detect([loaded.pixels], conf=threshold)[0], loaded).above(threshold)
    if not len(found):
        return []
    jpeg = path.read_bytes()
    digest = hashlib.sha256(jpeg).hexdigest()
    size = meta.display_size  # the detector's boxes are in the frame as displayed (EXIF orientation applied)
    intrinsics = Intrinsics.from_hfov(meta.width, meta.height, hfov_deg) if hfov_deg is not None else None
    pose = _drone_pose(meta)
    uploads: list[SightingUpload] = []
    detections = list(found)[:max_boxes]
    for index, det in enumerate(detections):
        pixel = _ground_pixel(det.class_name, _clip_box(det.box, *size))
        status: GroundStatus
        ground: GroundEstimate | None = None
        lrf_check: float | None = None
        try:
            fix = locate(meta, pixel, terrain=terrain, intrinsics=intrinsics)
        except NoGroundIntersectionError as exc:
            status = cast(GroundStatus, exc.reason) if exc.reason in _RAY_MISSES else "no_metadata"
        except MetadataError as exc:
            log.warning("%s: box %d not located: %s", shown, index, _naming(exc, path, shown))
            status = "no_metadata"
        except (DemError, InputError) as exc:  # a DEM not covering the flight, a drone below its ground: still a fire
            log.warning("%s: box %d not located: %s", shown, index, _naming(exc, path, shown))
            status = "ground_error"
        else:
            status = "hit"
            ground = _ground_estimate(fix.ground, "dem" if terrain is not None else "flat_takeoff")
            lrf_check = fix.lrf_check_m
        others = [d for d in detections if d is not det]
        boxes = [
            SightingBox(class_name=d.class_name, confidence=_confidence(d.confidence), xyxy=_clip_box(d.box, *size))
            for d in (det, *others)
        ]
        sighting = DroneSighting(
            sighting_key=f"drone/{drone_id}/{digest[:32]}/{index}",
            drone_id=drone_id,
            image_name=shown,
            captured_at=when,
            time_source=time_source,
            image_size=size,
            boxes=boxes,
            pixel=pixel,
            drone=pose,
            ground=ground,
            ground_status=status,
            lrf_check_m=lrf_check,
            model=_model_ref(detector),
            evidence=evidence_info(jpeg, *size),
        )
        uploads.append(SightingUpload(sighting, jpeg))
    return uploads


def post_drone_batch(
    paths: Iterable[str | Path],
    detector: Detector,
    sink: SightingSink,
    *,
    drone_id: str,
    **options: Any,
) -> list[DroneImageResult]:
    """:func:`drone_sightings` for every image, each sighting handed to ``sink``; per-image errors are reported,
    not raised, so one image without metadata does not stop a flight's upload."""
    results: list[DroneImageResult] = []
    for path in paths:
        name = str(path)
        try:
            uploads = drone_sightings(path, detector, drone_id=drone_id, **options)
        except VideoError as exc:
            log.warning("%s", exc)
            results.append(DroneImageResult(name, 0, error=str(exc)))
            continue
        outcomes = tuple(sink.send(upload) for upload in uploads)
        results.append(DroneImageResult(name, len(uploads), outcomes))
    return results


def run_inline(
    registry: CameraRegistry,
    sink: SightingSink,
    *,
    detector: Detector | None = None,
    config: PipelineConfig = PipelineConfig(),
    sources: SourceFactory = open_source,
    presets: Iterable[tuple[str, str]] | None = None,
    keep_results: bool = True,
    timeout_s: float | None = None,
    heartbeat: Callable[[list[dict[str, Any]]], Any] | None = None,
    heartbeat_every_s: float = 60.0,
) -> PatrolReport:
    """The embedded default: patrol every preset in this process, no broker, no Redis."""
    pipeline = FramePipeline(registry, detector or default_detector(), sink, config=config)
    patrol = Patrol(
        registry,
        pipeline.process,
        sources=sources,
        presets=presets,
        keep_results=keep_results,
        heartbeat=heartbeat,
        heartbeat_every_s=heartbeat_every_s,
    )
    return patrol.run(timeout_s=timeout_s)
