"""Scale-out: the patrol's detection work as Celery tasks over a Redis broker, so worker machines can be added.

Two modes, same task functions:

* **Embedded (default)** — ``STRAWFIRE_VIDEO__BROKER_URL`` unset: the app runs with ``task_always_eager``, so
  ``process_frame_task.delay(...)`` executes in the calling process, and verifier state is kept in memory. Nothing
  else to run. (The in-process :class:`video.patrol.Patrol` skips even the payload round trip:
  :func:`video.patrol.run_inline`.)
* **Distributed** — ``STRAWFIRE_VIDEO__BROKER_URL=redis://host:6379/0``: one grabber, ``strawfire patrol --broker
  URL`` (:func:`run_grabber`), reads the cameras and queues each frame (:func:`submit_frame`); workers run ``celery
  -A video.tasks worker`` (one process per core: ``--pool=prefork --concurrency=N`` or one ``--pool=solo`` worker
  per core; every process loads its own detector with one thread) and detect, verify and post. The grabber sends
  the cameras' heartbeats. A frame no worker has taken within ``--frame-ttl-s`` (default 300 s) is dropped by the
  worker that finally takes it (``expired``, before decoding): workers behind a backlog catch up on the present
  instead of verifying the past. Each worker records such frames per preset in its state Redis, the grabber's
  heartbeats carry the counts (``expired`` in the last hour, ``last_expired_at``), and the system status
  (``GET /api/v1/status``, ``strawfire status``) names the presets whose frames expired lately: add workers then.

Sequence-verification state across workers — decision: **the state lives in Redis, one lock per (camera,
preset)**, rather than routing each camera to a fixed worker. Routing needs a queue per worker and re-balancing
whenever a worker is added or dies (the very moment a tower's history would be lost); shared state costs one
small GET/SET under a lock per frame and lets any worker take any frame. Detection (the expensive part) runs
before the lock, in parallel; only the verifier update is serialised per preset. A preset's frames come one per
cadence (30–60 s), so the lock is practically never contended; a frame that reaches the verifier after a newer
one of its preset (a backlog) is reported ``late`` and not verified, never fed out of order. The state is JSON
(:func:`state_to_json`), not pickle: whoever can write to Redis must not be able to run code in the workers.
Keys expire after a day without frames.

A frame whose events changed leaves them *pending* in Redis, in the same transaction as the state, until its
sightings are handed over: a frame given back by Celery after its worker died in between (``acks_late``) is not
verified again (that would count it twice) but finds its events there and sends their sightings (the service's
natural key makes a repeat a no-op); any other redelivery is ``late``.

Posting is decoupled from verification: a frame's task never re-runs after the verifier has seen it (it would be
``late``), so when the service is unreachable the sighting is handed to :func:`post_sighting_task`, which retries
with backoff for about an hour on its own. In embedded mode there is no broker to hold that task (an eager task's
retry just raises), so the sighting waits on disk instead (:class:`video.spool.SpoolSink`) and is sent again until
the service takes it.

Environment (read when a worker, or :func:`runtime_from_env`, starts):

=====================================  ==========================================================================
``STRAWFIRE_VIDEO__BROKER_URL``        Redis URL of the broker; unset → embedded (eager) mode
``STRAWFIRE_VIDEO__RESULT_BACKEND``    result backend (default: the broker URL)
``STRAWFIRE_VIDEO__STATE_URL``         Redis URL of the verifier state (default: the broker URL; memory if none)
``STRAWFIRE_VIDEO__REGISTRY``          the camera registry file (JSON or TOML); required by workers
``STRAWFIRE_VIDEO__SERVICE_URL``       where sightings are posted (e.g. ``http://127.0.0.1:8000``)
``STRAWFIRE_VIDEO__DEVICE_TOKEN``      the bearer token of this device
``STRAWFIRE_VIDEO__DETECTOR``          ``auto`` (default: the manifest's model, rules if none), ``onnx``,
                                       ``torch``, ``rules``, or ``package.module:factory``; ``auto+rules``,
                                       ``onnx+rules``, ``torch+rules``: the model with the flame rule's second
                                       opinion on its fire boxes (``detector.second_opinion``)
``STRAWFIRE_VIDEO__DETECTOR_THREADS``  inference threads per worker process (default 1)
``STRAWFIRE_VIDEO__QUEUE``             the queue name (default ``strawfire-video``)
``STRAWFIRE_VIDEO__POST_RETRY_S``      delay before a failed post is retried by a task (default 30)
``STRAWFIRE_VIDEO__FRAME_TTL_S``       the grabber (``strawfire patrol --broker``): seconds a queued frame stays
                                       worth detecting (default 300)
``STRAWFIRE_VIDEO__SPOOL_DIR``         embedded mode: where undeliverable sightings wait for the service
                                       (default ``$STRAWFIRE_DATA_DIR/sighting-spool``, ``var/…`` without it)
=====================================  ==========================================================================
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import numpy as np
from celery import Celery, signals

from detector.detections import Detections, ImageArray
from detector.sequence import Event, IgnoreMask, SequenceConfig, SequenceVerifier
from video.client import ServiceUnavailable, SightingClient, SightingRejected
from video.errors import VideoError
from video.patrol import (
    EXPIRED_WINDOW,
    ClientSink,
    ExpiredFrames,
    FramePipeline,
    FrameResult,
    MemoryVerifierStore,
    Patrol,
    PatrolReport,
    PostOutcome,
    PresetState,
    SightingSink,
    SourceFactory,
    VerifierStore,
    drone_sightings,
    load_detector_spec,
    preset_key,
)
from video.registry import CameraRegistry, load_registry
from video.sighting import SightingUpload, parse_sighting
from video.sources import Frame, decode_jpeg, open_source

if TYPE_CHECKING:
    import redis
    from celery.result import AsyncResult

__all__ = [
    "ENV_PREFIX",
    "STATE_TTL_S",
    "QueueingSink",
    "RedisVerifierStore",
    "Runtime",
    "app",
    "configure_runtime",
    "frame_from_payload",
    "frame_payload",
    "get_runtime",
    "grabber_celery",
    "load_detector_spec",
    "make_celery",
    "post_sighting",
    "post_sighting_task",
    "process_drone_image",
    "process_drone_image_task",
    "process_frame",
    "process_frame_task",
    "run_grabber",
    "runtime_from_env",
    "state_from_json",
    "state_to_json",
    "submit_frame",
]

log = logging.getLogger(__name__)

ENV_PREFIX: Final = "STRAWFIRE_VIDEO__"
DEFAULT_QUEUE: Final = "strawfire-video"
#: A preset silent for a day starts over: its tracks are long expired anyway (window × cadence ≪ a day).
STATE_TTL_S: Final = 86_400
#: Longer than any single verifier update takes; a worker that dies holding the lock frees it by expiry.
LOCK_TIMEOUT_S: Final = 30.0
_STATE_FORMAT: Final = 1
_STATE_PREFIX: Final = "strawfire:video:verifier:"
_LOCK_PREFIX: Final = "strawfire:video:lock:"
_PREVIOUS_PREFIX: Final = "strawfire:video:previous:"
_PENDING_PREFIX: Final = "strawfire:video:pending:"
_EXPIRED_PREFIX: Final = "strawfire:video:expired:"


def _env(name: str, env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(ENV_PREFIX + name, "").strip()
    return value or None


def make_celery(
    broker_url: str | None = None, *, result_backend: str | None = None, queue: str | None = None
) -> Celery:
    """A Celery app for these tasks: distributed when ``broker_url`` is given, eager (in process) otherwise.

    Distributed settings favour not losing frames over throughput: JSON only, late acknowledgement (a worker
    killed mid-task gives the frame back), one prefetched task per process (a slow detector does not hoard
    frames other workers could take).
    """
    celery = Celery("strawfire.video")
    common: dict[str, Any] = {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": queue or DEFAULT_QUEUE,
        "enable_utc": True,
        "timezone": "UTC",
        "worker_hijack_root_logger": False,
    }
    if broker_url is None:
        celery.conf.update(
            broker_url="memory://localhost/",
            result_backend="cache+memory://",
            task_always_eager=True,
            task_eager_propagates=True,
            **common,
        )
    else:
        celery.conf.update(
            broker_url=broker_url,
            result_backend=result_backend or broker_url,
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            result_expires=3600,
            broker_connection_retry_on_startup=True,
            broker_transport_options={"visibility_timeout": 3600},
            **common,
        )
    return celery


def grabber_celery(broker_url: str, *, queue: str | None = None) -> Celery:
    """The client app of :func:`run_grabber` (``strawfire patrol --broker``): it sends frames and never reads
    their results, so it has no result backend (the workers still store theirs).

    With one, every frame sent also subscribed to its result in Redis; while the broker was down, that
    subscription retried for about 20 s per frame before failing ("The Celery application must be restarted"),
    holding up the preset's frames, where a send alone fails in under a second and counts as the preset's error.
    """
    return make_celery(broker_url, result_backend="disabled://", queue=queue)


app: Final = make_celery(_env("BROKER_URL"), result_backend=_env("RESULT_BACKEND"), queue=_env("QUEUE"))


def _refuse_to_start_without_a_runtime(sender: Any = None, **_: Any) -> None:
    """A worker of these tasks (``celery -A video.tasks worker``) refuses to start when its environment cannot make
    the runtime (:func:`check_worker_env`): it exits with status 1 and the one-line reason, before it connects to
    the broker or says "ready". Why: started without ``STRAWFIRE_VIDEO__REGISTRY`` it said "ready", took frames
    and failed each one's task, and every frame it took was lost. ``worker_init`` runs in the worker's main
    process before the pool starts, for every pool; Celery logs and swallows an ``Exception`` a signal handler
    raises, so the refusal is a ``SystemExit``. Workers of other apps in the same process are not this one's."""
    if getattr(sender, "app", None) is not app:
        return
    try:
        check_worker_env()
    except VideoError as exc:
        raise SystemExit(f"strawfire video worker: {exc}") from None


# Connected by a call rather than as a decorator, which Celery leaves untyped.
signals.worker_init.connect(_refuse_to_start_without_a_runtime)


# --- Verifier state as JSON ---------------------------------------------------------------------------------------
# test_tasks.py checks that a verifier rebuilt from its snapshot after every frame behaves exactly like one that
# never stopped.


def state_to_json(state: PresetState) -> dict[str, Any]:
    """The state of one preset as JSON (the verifier's own snapshot plus the preset's frame bookkeeping)."""
    return {
        "format": _STATE_FORMAT,
        "last_index": state.last_index,
        "last_captured_at": None if state.last_captured_at is None else state.last_captured_at.isoformat(),
        **state.verifier.snapshot(),
    }


def state_from_json(data: Mapping[str, Any], config: SequenceConfig, mask: IgnoreMask | None = None) -> PresetState:
    """Rebuild a :class:`~video.patrol.PresetState` (with the current config and mask of the preset).

    Raises:
        ValueError: a state of another format.
    """
    if data.get("format") != _STATE_FORMAT:
        raise ValueError(f"unknown verifier state format {data.get('format')!r}")
    verifier = SequenceVerifier.restore(data, config, mask)
    last = data["last_captured_at"]
    return PresetState(
        verifier,
        None if data["last_index"] is None else int(data["last_index"]),
        None if last is None else datetime.fromisoformat(last).astimezone(UTC),
    )


class RedisVerifierStore:
    """Verifier state shared by every worker: JSON in Redis, read-modify-write under a Redis lock per preset."""

    def __init__(
        self, client: redis.Redis, *, ttl_s: int = STATE_TTL_S, lock_timeout_s: float = LOCK_TIMEOUT_S
    ) -> None:
        self.redis = client
        self.ttl_s = ttl_s
        self.lock_timeout_s = lock_timeout_s

    @classmethod
    def from_url(cls, url: str) -> RedisVerifierStore:
        """A store on the Redis server at ``url``."""
        import redis

        return cls(redis.Redis.from_url(url))

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        from redis.exceptions import LockError

        lock = self.redis.lock(_LOCK_PREFIX + key, timeout=self.lock_timeout_s, blocking_timeout=self.lock_timeout_s)
        if not lock.acquire():
            raise TimeoutError(f"verifier state of {key} stayed locked for {self.lock_timeout_s:g} s")
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:  # expired while held (a stall longer than the timeout): the next writer owns it
                log.warning("verifier lock of %s expired before release", key)

    def previous_image(self, key: str, captured_at: datetime, max_age_s: float) -> ImageArray | None:
        """The last accepted frame of ``key`` (stored as JPEG), if recent enough."""
        raw = cast(list[bytes | None], self.redis.hmget(_PREVIOUS_PREFIX + key, ["at", "jpeg"]))
        if raw[0] is None or raw[1] is None:
            return None
        at = datetime.fromisoformat(raw[0].decode()).astimezone(UTC)
        if not 0.0 < (captured_at - at).total_seconds() <= max_age_s:
            return None
        image = decode_jpeg(raw[1])
        return None if image is None else np.ascontiguousarray(image[:, :, ::-1])

    def advance(
        self,
        key: str,
        new_state: Callable[[], PresetState],
        captured_at: datetime,
        cadence_s: float,
        detections: Detections,
        image: ImageArray | None = None,
    ) -> tuple[int | None, list[Event]]:
        """Load, advance and save the preset's state under its lock."""
        import json

        with self._locked(key):
            fresh = new_state()
            raw = cast(bytes | None, self.redis.get(_STATE_PREFIX + key))
            state = (
                fresh if raw is None else state_from_json(json.loads(raw), fresh.verifier.config, fresh.verifier.mask)
            )
            index, events = state.advance(captured_at, cadence_s, detections)
            if index is None:
                return None, []
            pipe = self.redis.pipeline()  # MULTI/EXEC: the state and the frame's pending events, or neither
            pipe.set(_STATE_PREFIX + key, json.dumps(state_to_json(state)), ex=self.ttl_s)
            if events:
                pending = {"index": index, "events": [_event_to_json(e) for e in events]}
                pipe.hset(_PENDING_PREFIX + key, captured_at.isoformat(), json.dumps(pending))
                pipe.expire(_PENDING_PREFIX + key, self.ttl_s)
            if image is not None:
                import cv2

                ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
                if ok:
                    pipe.hset(_PREVIOUS_PREFIX + key, mapping={"at": captured_at.isoformat(), "jpeg": jpeg.tobytes()})
                    pipe.expire(_PREVIOUS_PREFIX + key, self.ttl_s)
            pipe.execute()
            return index, events

    def pending(self, key: str, captured_at: datetime) -> tuple[int, list[Event]] | None:
        """The index and events of a frame verified earlier whose sightings were not handed over (its worker died):
        Celery gives such a frame back, late by then, and its sightings are sent from these."""
        import json

        raw = cast(bytes | None, self.redis.hget(_PENDING_PREFIX + key, captured_at.isoformat()))
        if raw is None:
            return None
        data = json.loads(raw)
        return int(data["index"]), [_event_from_json(e) for e in data["events"]]

    def settle(self, key: str, captured_at: datetime) -> None:
        """The frame's sightings were handed over: forget its pending events."""
        self.redis.hdel(_PENDING_PREFIX + key, captured_at.isoformat())

    def record_expired(self, key: str, captured_at: datetime, at: datetime) -> None:
        """Add the dropped frame to the preset's sorted set (member: its capture time, so a frame dropped twice
        counts once; score: when it was dropped), pruned to the last :data:`STATE_TTL_S`."""
        name = _EXPIRED_PREFIX + key
        pipe = self.redis.pipeline()
        pipe.zadd(name, {captured_at.isoformat(): at.timestamp()})
        pipe.zremrangebyscore(name, "-inf", f"({at.timestamp() - self.ttl_s}")
        pipe.expire(name, self.ttl_s)
        pipe.execute()

    def expired_frames(self, keys: Sequence[str], *, since: datetime) -> dict[str, ExpiredFrames]:
        """The frames of each key dropped since ``since`` and the latest, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zcount(_EXPIRED_PREFIX + key, since.timestamp(), "+inf")
            pipe.zrange(_EXPIRED_PREFIX + key, -1, -1, withscores=True)
        replies = pipe.execute()
        out = {}
        for i, key in enumerate(keys):
            count, latest = int(replies[2 * i]), cast(list[tuple[bytes, float]], replies[2 * i + 1])
            last_at = datetime.fromtimestamp(latest[0][1], UTC) if latest else None
            out[key] = ExpiredFrames(count, last_at)
        return out


def _event_to_json(event: Event) -> dict[str, Any]:
    return {
        "class_name": event.class_name,
        "start_frame": event.start_frame,
        "confirm_frame": event.confirm_frame,
        "end_frame": event.end_frame,
        "box": [float(v) for v in event.box],
        "max_confidence": float(event.max_confidence),
    }


def _event_from_json(data: Mapping[str, Any]) -> Event:
    x1, y1, x2, y2 = (float(v) for v in data["box"])
    end = data["end_frame"]
    return Event(
        class_name=str(data["class_name"]),
        start_frame=int(data["start_frame"]),
        confirm_frame=int(data["confirm_frame"]),
        end_frame=None if end is None else int(end),
        box=(x1, y1, x2, y2),
        max_confidence=float(data["max_confidence"]),
    )


# --- Worker runtime -----------------------------------------------------------------------------------------------


@dataclass
class Runtime:
    """What a worker process holds: the pipeline (registry, detector, state store, sink) and the HTTP client."""

    pipeline: FramePipeline
    client: SightingClient | None

    @property
    def registry(self) -> CameraRegistry:
        """The camera registry."""
        return self.pipeline.registry


_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True)
class _WorkerSettings:
    """What a worker's runtime is made of, read and checked from ``STRAWFIRE_VIDEO__*``, before anything is loaded."""

    registry: CameraRegistry
    detector: str
    threads: int
    post_retry_s: float


def _worker_settings(env: Mapping[str, str] | None = None) -> _WorkerSettings:
    """Read and check the worker's settings (see :func:`runtime_from_env`), loading nothing but the registry file.

    Raises:
        VideoError: no registry configured, it is invalid, or a number is not one.
    """
    registry_path = _env("REGISTRY", env)
    if registry_path is None:
        raise VideoError(f"{ENV_PREFIX}REGISTRY is not set: workers need the camera registry file")
    return _WorkerSettings(
        registry=load_registry(registry_path),
        detector=_env("DETECTOR", env) or "auto",
        threads=_env_number("DETECTOR_THREADS", int, "1", env),
        post_retry_s=_env_number("POST_RETRY_S", float, "30", env),
    )


def _env_number(name: str, parse: Callable[[str], _Number], default: str, env: Mapping[str, str] | None) -> _Number:
    """``STRAWFIRE_VIDEO__{name}`` (or ``default``) read by ``parse``; a :class:`VideoError` naming it when it is not
    a number."""
    value = _env(name, env) or default
    try:
        return parse(value)
    except ValueError:
        raise VideoError(f"{ENV_PREFIX}{name} is not a number: {value!r}") from None


def check_worker_env(env: Mapping[str, str] | None = None) -> None:
    """Check that a worker can build its runtime from the environment, as a worker does when it starts.

    Why: a worker started without its camera registry (``celery -A video.tasks worker`` with
    ``STRAWFIRE_VIDEO__REGISTRY`` unset) said "ready", then failed every frame's task, and every frame it took
    was lost. The check loads the registry (the file must exist and be valid) and reads the numbers; it does not
    load the detector's model: in a prefork pool the parent checks and the children load it, since a model
    loaded before the fork (ONNX Runtime's, PyTorch's thread pools) is not safe to use in a forked child.

    Raises:
        VideoError: what :func:`runtime_from_env` would raise about the settings.
    """
    _worker_settings(env)


def runtime_from_env(env: Mapping[str, str] | None = None) -> Runtime:
    """Build the runtime from ``STRAWFIRE_VIDEO__*`` (see the module docstring).

    Raises:
        VideoError: no registry configured, or it is invalid.
    """
    settings = _worker_settings(env)
    detector = load_detector_spec(settings.detector, threads=settings.threads)
    state_url = _env("STATE_URL", env) or _env("BROKER_URL", env)
    store: VerifierStore = RedisVerifierStore.from_url(state_url) if state_url else MemoryVerifierStore()
    service_url = _env("SERVICE_URL", env)
    client = SightingClient(service_url, _env("DEVICE_TOKEN", env), retries=1) if service_url else None
    retry_after = settings.post_retry_s
    sink: SightingSink
    if client is None:
        sink = _NoServiceSink()
    elif _env("BROKER_URL", env):
        sink = QueueingSink(client, retry_after_s=retry_after)
    else:  # embedded: no broker to hold a retrying task, so undeliverable sightings wait on disk
        from video.spool import SpoolSink

        data_dir = Path((env if env is not None else os.environ).get("STRAWFIRE_DATA_DIR") or "var")
        sink = SpoolSink(client, Path(_env("SPOOL_DIR", env) or data_dir / "sighting-spool"), retry_every_s=retry_after)
    return Runtime(FramePipeline(settings.registry, detector, sink, store=store), client)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def configure_runtime(runtime: Runtime | None) -> None:
    """Use ``runtime`` for the tasks in this process (``None``: rebuild from the environment on next use)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def get_runtime() -> Runtime:
    """The process's runtime, built from the environment on first use (once per worker process)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = runtime_from_env()
        return _runtime


class _NoServiceSink:
    def send(self, upload: SightingUpload) -> PostOutcome:
        log.warning("sighting %s not posted: %sSERVICE_URL is not set", upload.key, ENV_PREFIX)
        return PostOutcome(upload.key, False, error=f"{ENV_PREFIX}SERVICE_URL is not set")


class QueueingSink(ClientSink):
    """Post at once (one quick retry); if the service is unreachable, queue :func:`post_sighting_task` to retry.

    Rejections (4xx) are final and reported; they are not queued.
    """

    def __init__(self, client: SightingClient, *, retry_after_s: float = 30.0) -> None:
        super().__init__(client)
        self.retry_after_s = retry_after_s

    def unavailable(self, upload: SightingUpload, exc: Exception) -> PostOutcome:
        """Queue the sighting as its own retrying task instead of dropping it."""
        post_sighting_task.apply_async(args=[_upload_payload(upload)], countdown=self.retry_after_s)
        log.warning("%s; queued for a later retry", exc)
        return PostOutcome(upload.key, False, queued=True, error=str(exc))


# --- Payloads ----------------------------------------------------------------------------------------------------


def frame_payload(frame: Frame, *, quality: int = 95, expires_at: datetime | None = None) -> dict[str, Any]:
    """A frame as a JSON task argument: the camera's own JPEG when it sent one, else encoded at ``quality``.

    ``expires_at``: a worker that takes the frame later drops it (:meth:`~video.patrol.FramePipeline.expired`).
    """
    jpeg = frame.encoded
    if jpeg is None or not jpeg.startswith(b"\xff\xd8"):
        import cv2

        ok, buffer = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise VideoError("OpenCV could not encode the frame")
        jpeg = buffer.tobytes()
    payload = {
        "camera_id": frame.camera_id,
        "preset_id": frame.preset_id,
        "captured_at": frame.captured_at.isoformat(),
        "seq": frame.seq,
        "jpeg_b64": base64.b64encode(jpeg).decode("ascii"),
    }
    if expires_at is not None:
        payload["expires_at"] = expires_at.astimezone(UTC).isoformat()
    return payload


def _aware(payload: Mapping[str, Any], name: str) -> datetime | None:
    """The payload's time ``name`` (``None`` when absent); one without a zone is malformed."""
    raw = payload.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except (TypeError, ValueError) as exc:
        raise VideoError(f"malformed frame payload: {name}: {type(exc).__name__}: {exc}") from None
    if value.tzinfo is None:  # a frame's time must say its zone: cadence, sun glare and expiry depend on it
        raise VideoError(f"malformed frame payload: {name} {raw!r} has no time zone")
    return value


def _frame_header(payload: Mapping[str, Any]) -> tuple[str, str, int, datetime]:
    """The payload's camera, preset, sequence number and capture time, without decoding its JPEG."""
    try:
        camera_id, preset_id, seq = str(payload["camera_id"]), str(payload["preset_id"]), int(payload["seq"])
        captured_at = _aware(payload, "captured_at")
    except (KeyError, TypeError, ValueError) as exc:
        raise VideoError(f"malformed frame payload: {type(exc).__name__}: {exc}") from None
    if captured_at is None:
        raise VideoError("malformed frame payload: KeyError: 'captured_at'")
    return camera_id, preset_id, seq, captured_at


def frame_from_payload(payload: Mapping[str, Any]) -> Frame:
    """Decode a :func:`frame_payload` back into a frame (the "decode" step of a worker).

    Raises:
        VideoError: the payload is incomplete or its JPEG does not decode.
    """
    return _decoded(payload, *_frame_header(payload))


def _decoded(payload: Mapping[str, Any], camera_id: str, preset_id: str, seq: int, captured_at: datetime) -> Frame:
    """The frame of a payload whose :func:`_frame_header` has been read."""
    try:
        jpeg = base64.b64decode(payload["jpeg_b64"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise VideoError(f"malformed frame payload: {type(exc).__name__}: {exc}") from None
    image = decode_jpeg(jpeg)
    if image is None:
        raise VideoError(f"frame {seq} of {camera_id}/{preset_id}: the JPEG does not decode")
    return Frame(image, captured_at, camera_id, preset_id, seq, jpeg)


def _upload_payload(upload: SightingUpload) -> dict[str, Any]:
    return {"sighting": upload.json_text(), "evidence_b64": base64.b64encode(upload.evidence_jpeg).decode("ascii")}


# --- Tasks -------------------------------------------------------------------------------------------------------
# The task bodies are plain typed functions (a multiprocessing pool or a test can call them directly); Celery
# registers them by name below.


def process_frame(payload: dict[str, Any], worker: str = "inline") -> dict[str, Any]:
    """decode → detect → verify (shared state) → geolocate → post, for one frame; returns the frame's result."""
    started = time.perf_counter()
    pipeline = get_runtime().pipeline
    header = _frame_header(payload)  # read once: the JPEG is decoded from it below unless the frame expired
    camera_id, preset_id, seq, captured_at = header
    if pipeline.expired(camera_id, preset_id, captured_at, _aware(payload, "expires_at")):
        # Checked before the JPEG is decoded: a worker catching up on a backlog drops each old frame for little.
        log.warning(
            "%s/%s: frame %d was not taken before %s; dropped", camera_id, preset_id, seq, payload["expires_at"]
        )
        try:  # for the grabber's heartbeats: the system status says when workers do not keep up
            pipeline.store.record_expired(preset_key(camera_id, preset_id), captured_at, datetime.now(UTC))
        except Exception as exc:  # a report about the frame must not turn its drop into a failed task
            log.warning("%s/%s: the expired frame was not recorded: %s", camera_id, preset_id, exc)
        expired = FrameResult(
            camera_id, preset_id, seq, captured_at, status="expired", model=pipeline.detector.info.name
        )
        result = expired.to_json()
    else:
        result = pipeline.process(_decoded(payload, *header)).to_json()
    result["worker"] = worker
    result["seconds"] = round(time.perf_counter() - started, 4)
    return result


def post_sighting(payload: dict[str, Any]) -> dict[str, Any]:
    """Post one queued sighting (``sighting`` JSON text, ``evidence_b64``); a 4xx is final, unreachable raises.

    Raises:
        ServiceUnavailable: still unreachable (Celery retries the task with backoff).
    """
    runtime = get_runtime()
    if runtime.client is None:
        raise VideoError(f"{ENV_PREFIX}SERVICE_URL is not set")
    upload = SightingUpload(parse_sighting(payload["sighting"]), base64.b64decode(payload["evidence_b64"]))
    try:
        response = runtime.client.post(upload)
    except SightingRejected as exc:
        return {"sighting_key": upload.key, "posted": False, "status_code": exc.status_code, "error": str(exc)}
    return {"sighting_key": upload.key, "posted": True, "status_code": response.status_code}


def process_drone_image(payload: dict[str, Any]) -> dict[str, Any]:
    """Detect and locate the boxes of one drone image and post a sighting per box.

    ``payload``: ``drone_id``, ``image_name``, ``jpeg_b64`` and optionally ``utc_offset_h`` (the zone of the
    image's EXIF time when it has none; default 8).
    """
    runtime = get_runtime()
    name = Path(str(payload["image_name"])).name or "image.jpg"
    data = base64.b64decode(payload["jpeg_b64"], validate=True)
    offset = timedelta(hours=float(payload.get("utc_offset_h", 8.0)))
    drone_id = str(payload["drone_id"])
    with tempfile.TemporaryDirectory(prefix="strawfire-drone-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            uploads = drone_sightings(path, runtime.pipeline.detector, drone_id=drone_id, utc_offset=offset)
        except VideoError as exc:
            return {"image": name, "boxes": 0, "outcomes": [], "error": str(exc)}
    outcomes = [runtime.pipeline.sink.send(upload) for upload in uploads]
    return {
        "image": name,
        "boxes": len(uploads),
        "outcomes": [
            {"sighting_key": o.sighting_key, "posted": o.posted, "queued": o.queued, "error": o.error} for o in outcomes
        ],
        "error": None,
    }


def _process_frame_bound(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
    request = self.request
    return process_frame(payload, worker="eager" if request.is_eager else str(request.hostname))


#: Celery's decorator is untyped; the registered tasks are therefore ``Any`` (call ``.delay``/``.apply_async``).
process_frame_task: Any = app.task(name="strawfire.video.process_frame", bind=True)(_process_frame_bound)
post_sighting_task: Any = app.task(
    name="strawfire.video.post_sighting",
    autoretry_for=(ServiceUnavailable,),
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=12,
)(post_sighting)
process_drone_image_task: Any = app.task(name="strawfire.video.process_drone_image")(process_drone_image)


def submit_frame(frame: Frame, *, celery: Celery | None = None, ttl_s: float | None = None) -> AsyncResult[Any]:
    """Queue one frame for the workers (or run it now in embedded mode); the handle for :class:`~video.patrol.Patrol`.

    ``celery``: a client app other than this module's (e.g. one made by :func:`make_celery` for another broker);
    tasks are sent by name, so the client needs no task code. ``ttl_s``: a worker that takes the frame more than
    this many seconds after now drops it (``expired``; :meth:`~video.patrol.FramePipeline.expired`). Not Celery's
    own ``expires``: that would also drop a frame given back after its worker died, whose sightings are still due.
    """
    expires_at = None if ttl_s is None else datetime.now(UTC) + timedelta(seconds=ttl_s)
    payload = frame_payload(frame, expires_at=expires_at)
    if celery is None:
        return cast("AsyncResult[Any]", process_frame_task.apply_async(args=[payload], task_id=str(uuid.uuid4())))
    return celery.send_task("strawfire.video.process_frame", args=[payload])


def run_grabber(
    registry: CameraRegistry,
    celery: Celery,
    *,
    frame_ttl_s: float | None = None,
    sources: SourceFactory = open_source,
    presets: Iterable[tuple[str, str]] | None = None,
    timeout_s: float | None = None,
    heartbeat: Callable[[list[dict[str, Any]]], Any] | None = None,
    heartbeat_every_s: float = 60.0,
    state_url: str | None = None,
) -> PatrolReport:
    """The distributed patrol's grabber: read every preset's frames and queue them for the workers.

    The workers (``celery -A video.tasks worker``) detect, verify and post; this process only reads the cameras,
    so it needs no detector. Heartbeats (frames read, stream errors, frozen feed) are the grabber's to send: it is
    what sees the cameras. They also carry the frames the workers dropped unlooked-at (``expired``), read from the
    workers' state Redis: ``state_url``, else ``STRAWFIRE_VIDEO__STATE_URL``, else the broker's URL when it is a
    Redis one (the workers' own default). A frame the broker does not take is counted as an error of its preset (in
    the heartbeat) and the patrol goes on with the next. ``celery``: a client app for the workers' broker, made by
    :func:`grabber_celery` (one with a result backend holds up every frame for ~20 s while the broker is down).
    """
    expired_frames: Callable[[list[str]], Mapping[str, ExpiredFrames]] | None = None
    url = state_url or _env("STATE_URL") or str(celery.conf.broker_url or "")
    if heartbeat is not None and url.startswith(("redis://", "rediss://", "unix://")):
        store = RedisVerifierStore.from_url(url)

        def expired_frames(keys: list[str]) -> dict[str, ExpiredFrames]:
            return store.expired_frames(keys, since=datetime.now(UTC) - EXPIRED_WINDOW)

    patrol = Patrol(
        registry,
        lambda frame: submit_frame(frame, celery=celery, ttl_s=frame_ttl_s),
        sources=sources,
        presets=presets,
        heartbeat=heartbeat,
        heartbeat_every_s=heartbeat_every_s,
        expired_frames=expired_frames,
    )
    return patrol.run(timeout_s=timeout_s)
