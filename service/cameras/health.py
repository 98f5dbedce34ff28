"""Camera preset health: the latest heartbeat of each preset from its patrol, and the state the county sees.

A heartbeat replaces the preset's previous one (a row per preset, not a log). States, for each registered preset:

* ``never_seen`` — no heartbeat was ever received for it;
* ``silent`` — the latest heartbeat, or the latest frame it reports, is older than :func:`silent_after_s`
  (``max(3 × cadence_s, 600 s)``): the patrol is down, or it runs but the stream gives no picture;
* ``frozen`` — the patrol reports the feed showing the same picture again and again (``video.health``);
* ``lens_mismatch`` — the patrol reports that the preset's latest frames are of another aspect ratio than its
  registered lens (``video.patrol.lens_mismatch``: the operator changed the stream's profile, or the registry entry
  describes another camera); ``lens_mismatch`` in the preset's health gives the registered and received sizes;
* ``ok`` — otherwise.

The order is that of severity: a silent or frozen preset sees no fire at all; a ``lens_mismatch`` preset still
sees and posts fires, but cannot place them: by decision (``video.patrol.locate_camera_box``) their sightings carry
the wedge of the preset's whole view and no ground point (``ground_status: "lens_mismatch"``), since a ground point
from the wrong geometry can put a fire in the wrong township. A stream of the same aspect ratio at another
resolution (a sub-stream, 720p instead of 1080p) is exact to scale for a pinhole camera: it stays ``ok`` and its
fires are geolocated. The state follows the latest heartbeat: the patrol reports the mismatch while its latest
frame does not fit, and a heartbeat without it clears it (a patrol reads the registry when it starts: after
registering the stream's own lens, restart the patrol).

Apart from its state, a preset is ``expiring`` when the Celery workers of a distributed patrol dropped some of its
frames unlooked-at lately (``expired``: no worker took them within the grabber's ``--frame-ttl-s``): the camera
sends pictures, but nobody looks at all of them. The grabber's heartbeats carry the workers' counts (``expired`` in
the last hour, ``last_expired_at``; an in-process patrol sends neither), and "lately" is the preset's silence
horizon, :func:`silent_after_s`. Those counts are kept in one ``component_runs`` row, :data:`EXPIRED_FRAMES`, a
JSON map by preset where each newer report replaces the preset's last — for want of columns on
``camera_heartbeats`` (adding ``expired`` and ``last_expired_at`` there would take a migration). A report carries
the preset's current counts, not an increment, so one lost to two posts at once is made good by the next. The
presets whose lens does not fit their stream are kept the same way, in :data:`LENS_MISMATCH` (written only when
that set changes: a fleet whose lenses fit writes nothing more per heartbeat).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.cameras.service import load_registry
from service.cameras.tables import PresetHeartbeat
from service.status.tables import ComponentRun
from video.errors import VideoError
from video.registry import CameraRegistry

#: A preset is silent after 3 of its cadences without news, and never sooner than this (a heartbeat a minute
#: may be lost now and then; a 10-s cadence must not flap).
MIN_SILENT_S: Final = 600.0
SILENT_CADENCES: Final = 3
#: A heartbeat stamped further ahead than this is refused (a wrong clock would keep a dead preset "ok").
MAX_CLOCK_AHEAD: Final = timedelta(minutes=5)
MAX_BATCH: Final = 1000
#: The ``component_runs`` row holding each preset's latest report of frames its workers dropped (see above).
EXPIRED_FRAMES: Final = "cameras.expired_frames"
#: The ``component_runs`` row holding, by preset, the sizes of its latest lens/stream mismatch report (see above).
LENS_MISMATCH: Final = "cameras.lens_mismatch"
#: Rows of ``component_runs`` that are the presets' (shown with them), not components of their own.
PRESET_ROWS: Final = frozenset({EXPIRED_FRAMES, LENS_MISMATCH})
#: A frame side no camera sends (a frame size beyond it in a heartbeat is a patrol bug, not a 50k-pixel camera).
MAX_FRAME_SIDE: Final = 65535

HealthState = Literal["ok", "frozen", "silent", "never_seen", "lens_mismatch"]

FrameSide = Annotated[int, Field(gt=0, le=MAX_FRAME_SIDE)]


class LensMismatchIn(BaseModel):
    """The preset's registered lens size and the size of the frames its stream sends, (w, h) each."""

    model_config = ConfigDict(extra="forbid", strict=True)

    registered: tuple[FrameSide, FrameSide]
    received: tuple[FrameSide, FrameSide]


class HeartbeatIn(BaseModel):
    """One preset's heartbeat as posted by a patrol."""

    model_config = ConfigDict(extra="forbid", strict=True)

    camera_id: str = Field(min_length=1, max_length=64)
    preset: str = Field(min_length=1, max_length=64)
    at: AwareDatetime
    frames: int = Field(ge=0)
    errors: int = Field(ge=0)
    frozen: bool
    last_frame_at: AwareDatetime | None
    # Distributed patrols only: frames the workers dropped unlooked-at in the last hour, and the latest such drop.
    expired: int | None = Field(default=None, ge=0)
    last_expired_at: AwareDatetime | None = None
    # Only when the preset's latest frame does not fit its registered lens (another aspect ratio).
    lens_mismatch: LensMismatchIn | None = None


@dataclass(frozen=True)
class Rejected:
    """A heartbeat of the batch that was not stored, and why."""

    index: int
    error: str
    camera_id: str | None = None
    preset: str | None = None


@dataclass(frozen=True)
class BatchResult:
    stored: int
    stale: int  # older than the one already kept for the preset: ignored
    rejected: list[Rejected]


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def _parse_item(index: int, item: object, registry: CameraRegistry, now: datetime) -> HeartbeatIn | Rejected:
    if not isinstance(item, dict):
        return Rejected(index, "a heartbeat must be a JSON object")
    camera_id = item.get("camera_id") if isinstance(item.get("camera_id"), str) else None
    preset = item.get("preset") if isinstance(item.get("preset"), str) else None
    try:
        # JSON mode: timestamps arrive as ISO 8601 strings even under strict validation
        beat = HeartbeatIn.model_validate_json(json.dumps(item))
    except ValidationError as exc:
        return Rejected(index, _validation_message(exc), camera_id, preset)
    try:
        camera = registry.camera(beat.camera_id)
    except VideoError:
        return Rejected(index, f"unknown camera {beat.camera_id!r}", camera_id, preset)
    if beat.preset not in {p.id for p in camera.presets}:
        return Rejected(index, f"camera {beat.camera_id!r} has no preset {beat.preset!r}", camera_id, preset)
    if beat.at > now + MAX_CLOCK_AHEAD:
        return Rejected(
            index, f"at: {beat.at.isoformat()} is in the future (check the patrol's clock)", camera_id, preset
        )
    if beat.last_frame_at is not None and beat.last_frame_at > beat.at:
        return Rejected(index, "last_frame_at: after the heartbeat's own time", camera_id, preset)
    if beat.last_expired_at is not None and beat.last_expired_at > beat.at:
        return Rejected(index, "last_expired_at: after the heartbeat's own time", camera_id, preset)
    if beat.last_expired_at is not None and beat.expired is None:
        return Rejected(index, "last_expired_at: given without expired", camera_id, preset)
    if beat.lens_mismatch is not None and beat.lens_mismatch.registered == beat.lens_mismatch.received:
        return Rejected(index, "lens_mismatch: registered and received are the same size", camera_id, preset)
    return beat


def store_heartbeats(session: Session, items: list[object], *, now: datetime) -> BatchResult:
    """Validate each heartbeat on its own and keep the latest per preset (inside the caller's transaction)."""
    registry = load_registry(session)
    # One read for the batch (a row per preset): a patrol posts every preset's heartbeat at once.
    rows = {(r.camera_id, r.preset_id): r for r in session.scalars(select(PresetHeartbeat))}
    rejected: list[Rejected] = []
    stored = stale = 0
    expiries: dict[str, dict[str, Any]] = {}  # camera/preset → its report of frames the workers dropped
    lenses: dict[str, dict[str, list[int]] | None] = {}  # camera/preset → its lens mismatch, None: the lens fits
    for index, item in enumerate(items):
        beat = _parse_item(index, item, registry, now)
        if isinstance(beat, Rejected):
            rejected.append(beat)
            continue
        row = rows.get((beat.camera_id, beat.preset))
        if row is None:
            row = rows[beat.camera_id, beat.preset] = PresetHeartbeat(camera_id=beat.camera_id, preset_id=beat.preset)
            session.add(row)
        elif row.at >= beat.at:
            stale += 1
            continue
        row.at, row.frames, row.errors, row.frozen = beat.at, beat.frames, beat.errors, beat.frozen
        row.last_frame_at, row.received_at = beat.last_frame_at, now
        stored += 1
        mismatch = beat.lens_mismatch
        lenses[f"{beat.camera_id}/{beat.preset}"] = (
            None if mismatch is None else {"registered": list(mismatch.registered), "received": list(mismatch.received)}
        )
        if beat.expired is not None:
            last = beat.last_expired_at
            expiries[f"{beat.camera_id}/{beat.preset}"] = {
                "expired": beat.expired,
                "last_expired_at": None if last is None else last.isoformat(),
            }
    if expiries:
        _store_expiries(session, expiries, now=now)
    _store_lens_mismatches(session, lenses, now=now)
    return BatchResult(stored, stale, rejected)


def _store_expiries(session: Session, expiries: dict[str, dict[str, Any]], *, now: datetime) -> None:
    """Merge the presets' reports into the :data:`EXPIRED_FRAMES` row (locked on PostgreSQL while merging)."""
    from service.status.service import record_run  # service.status reads camera health: imported here, not above

    presets = _expiries(session, lock=True) | expiries
    record_run(session, EXPIRED_FRAMES, at=now, ok=True, detail={"presets": presets})


def _expiries(session: Session, *, lock: bool = False) -> dict[str, Any]:
    """The :data:`EXPIRED_FRAMES` row's reports by ``camera/preset``."""
    return _preset_reports(session, EXPIRED_FRAMES, lock=lock)


def _preset_reports(session: Session, name: str, *, lock: bool = False) -> dict[str, Any]:
    """The reports by ``camera/preset`` kept in the ``component_runs`` row ``name`` (read again when locking: an
    earlier read in this session must not stand in for the locked one)."""
    row = session.get(ComponentRun, name, with_for_update=lock, populate_existing=lock)
    presets = json.loads(row.detail or "{}").get("presets", {}) if row is not None else {}
    return presets if isinstance(presets, dict) else {}


def _store_lens_mismatches(session: Session, lenses: dict[str, dict[str, list[int]] | None], *, now: datetime) -> None:
    """Set (or, for None, clear) the presets' lens mismatches in the :data:`LENS_MISMATCH` row, written only when
    that changes it (locked on PostgreSQL while merging)."""

    def merged(current: dict[str, Any]) -> dict[str, Any]:
        out = {key: value for key, value in current.items() if lenses.get(key, value) is not None}
        return out | {key: value for key, value in lenses.items() if value is not None}

    if not lenses:
        return
    current = _preset_reports(session, LENS_MISMATCH)
    if merged(current) == current:
        return
    from service.status.service import record_run  # service.status reads camera health: imported here, not above

    presets = merged(_preset_reports(session, LENS_MISMATCH, lock=True))
    record_run(session, LENS_MISMATCH, at=now, ok=True, detail={"presets": presets})


def silent_after_s(cadence_s: float) -> float:
    """Seconds without a heartbeat (or a frame) after which a preset of this cadence is ``silent``."""
    return max(SILENT_CADENCES * cadence_s, MIN_SILENT_S)


def preset_health(session: Session, *, now: datetime) -> list[dict[str, Any]]:
    """Every registered preset, in registry order, with its state and latest heartbeat."""
    rows = {(r.camera_id, r.preset_id): r for r in session.scalars(select(PresetHeartbeat))}
    expiries = _expiries(session)
    lenses = _preset_reports(session, LENS_MISMATCH)
    out: list[dict[str, Any]] = []
    for camera, preset in load_registry(session).presets():
        limit = silent_after_s(preset.cadence_s)
        row = rows.get((camera.id, preset.id))
        report = expiries.get(f"{camera.id}/{preset.id}")
        raw_last = report.get("last_expired_at") if isinstance(report, dict) else None
        mismatch = lenses.get(f"{camera.id}/{preset.id}") if row is not None else None
        last_expired_at = datetime.fromisoformat(raw_last).astimezone(UTC) if isinstance(raw_last, str) else None
        state: HealthState
        if row is None:
            state = "never_seen"
        elif (now - row.at).total_seconds() > limit or (
            row.last_frame_at is None or (now - row.last_frame_at).total_seconds() > limit
        ):
            state = "silent"
        elif row.frozen:
            state = "frozen"
        elif mismatch is not None:
            state = "lens_mismatch"
        else:
            state = "ok"
        out.append(
            {
                "camera_id": camera.id,
                "camera_name": camera.name,
                "preset": preset.id,
                "preset_name": preset.name,
                "cadence_s": preset.cadence_s,
                "silent_after_s": limit,
                "state": state,
                "at": row.at if row else None,
                "frames": row.frames if row else None,
                "errors": row.errors if row else None,
                "frozen": row.frozen if row else None,
                "last_frame_at": row.last_frame_at if row else None,
                # None: never reported (an in-process patrol looks at every frame it reads)
                "expired": report.get("expired") if isinstance(report, dict) else None,
                "last_expired_at": last_expired_at,
                "expiring": last_expired_at is not None and (now - last_expired_at).total_seconds() <= limit,
                # the latest heartbeat's: {"registered": [w, h], "received": [w, h]}; None: the frames fit the lens
                "lens_mismatch": mismatch,
            }
        )
    return out
