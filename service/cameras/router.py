"""HTTP API of the camera registry: admins replace it; people and patrol workers (devices) read it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from service.cameras import health, service
from service.db import utcnow
from service.deps import Admin, CurrentPrincipal, ObservationPoster, SessionDep, Supervisor
from service.errors import InputError
from service.incidents.states import Role
from video.sources import redact_url

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])


def _without_credentials(url: str) -> str:
    """The URL without its user part and password-like parameters (:func:`video.sources.redact_url`)."""
    return redact_url(url, keep_user=False)


@router.get("")
def get_registry(principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    """The registry in its JSON form (``video.registry``): cameras, lenses, presets and their sources.

    Stream URLs often carry the camera's password: only admins and devices (patrol workers) get them whole.
    """
    registry = service.load_registry(session).to_dict()
    if principal.role not in (Role.ADMIN, Role.DEVICE):
        for camera in registry["cameras"]:
            for preset in camera.get("presets", []):
                preset["source"] = _without_credentials(str(preset.get("source", "")))
    return registry


@router.put("")
def put_registry(
    principal: Admin,
    session: SessionDep,
    body: Annotated[dict[str, Any], Body(description="A camera registry (video.registry JSON form)")],
) -> dict[str, Any]:
    """Replace the whole registry (admins)."""
    registry = service.parse(body)
    count = service.replace_registry(session, registry)
    session.commit()
    return {"cameras": count}


class MaskSuggestionOut(BaseModel):
    """A place in a preset's frame that false alarms keep coming from (``video.mask_suggestions``)."""

    camera_id: str
    preset_id: str
    registered: bool  # False: the registry no longer has this preset
    status: Literal["suggested", "masked", "too_large"]
    polygon: list[tuple[float, float]]  # pixels of frames of frame_size; add it to the preset's ignore_mask
    incidents: list[int]
    boxes: int
    frame_size: tuple[int, int] | None  # (w, h); None when no sighting recorded it
    frame_fraction: float | None


@router.get("/mask-suggestions")
def get_mask_suggestions(
    principal: Admin,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=3660, description="Look at false alarms closed in the last N days.")] = 90,
    min_incidents: Annotated[int, Query(ge=1, le=1000, description="Incidents from one place to suggest it.")] = 3,
) -> list[MaskSuggestionOut]:
    """Ignore-mask suggestions from the camera sightings of incidents closed as false alarms (a heat source in view,
    nothing found on site) that keep coming from the same place of one preset's frame (admins). Nothing is masked
    until an admin adds a polygon to the registry."""
    found = service.mask_suggestions(session, since=utcnow() - timedelta(days=days), min_incidents=min_incidents)
    return [MaskSuggestionOut.model_validate(s.to_json()) for s in found]


class HeartbeatRejectedOut(BaseModel):
    index: int  # position in the posted batch
    camera_id: str | None
    preset: str | None
    error: str


class HeartbeatBatchOut(BaseModel):
    stored: int
    stale: int  # older than the heartbeat already kept for the preset: ignored
    rejected: list[HeartbeatRejectedOut]


class LensMismatchOut(BaseModel):
    """The frames of a preset's stream do not fit its registered lens (another aspect ratio)."""

    registered: tuple[int, int]  # (w, h) the lens was calibrated for
    received: tuple[int, int]  # (w, h) of the stream's latest frames


class PresetHealthOut(BaseModel):
    camera_id: str
    camera_name: str
    preset: str
    preset_name: str
    cadence_s: float
    silent_after_s: float  # max(3 × cadence_s, 600 s)
    state: health.HealthState
    at: datetime | None  # the latest heartbeat
    frames: int | None
    errors: int | None
    frozen: bool | None
    last_frame_at: datetime | None
    expired: int | None  # distributed patrols: frames the workers dropped unlooked-at in the last hour reported
    last_expired_at: datetime | None  # the latest such drop (within a day)
    expiring: bool  # frames dropped within silent_after_s: the workers do not keep up
    lens_mismatch: LensMismatchOut | None  # the latest heartbeat's; None: the frames fit the lens


@router.post("/health")
def post_health(
    principal: ObservationPoster,
    session: SessionDep,
    body: Annotated[
        dict[str, list[Any]],
        Body(
            description='{"heartbeats": [{camera_id, preset, at, frames, errors, frozen, last_frame_at}, …]}; a '
            "grabber of Celery workers adds expired (frames the workers dropped unlooked-at in the last hour) and "
            'last_expired_at; a preset whose latest frame does not fit its lens adds lens_mismatch: {"registered": '
            '[w, h], "received": [w, h]}'
        ),
    ],
) -> HeartbeatBatchOut:
    """Per-preset heartbeats from a patrol (devices). Each is checked on its own: one naming an unknown camera or
    preset, or malformed, is reported by its index and the others are kept. Only the latest per preset is kept."""
    if set(body) != {"heartbeats"}:
        raise InputError('the body must be {"heartbeats": [...]}', source="camera health")
    items = body["heartbeats"]
    if len(items) > health.MAX_BATCH:
        raise InputError(f"at most {health.MAX_BATCH} heartbeats per post", source="camera health")
    result = health.store_heartbeats(session, items, now=utcnow())
    session.commit()
    return HeartbeatBatchOut.model_validate(result, from_attributes=True)


@router.get("/health")
def get_health(principal: Supervisor, session: SessionDep) -> list[PresetHealthOut]:
    """Each registered preset with its state: ``ok``, ``frozen``, ``silent`` (no heartbeat or no frame for
    ``max(3 × cadence_s, 600 s)``), ``lens_mismatch`` (its stream's frames are of another aspect ratio than its
    registered lens: its fires are posted without a ground point; ``lens_mismatch`` gives both sizes) or
    ``never_seen``, and ``expiring`` when workers dropped some of its frames unlooked-at within that time
    (supervisors, admins)."""
    return [PresetHealthOut.model_validate(p) for p in health.preset_health(session, now=utcnow())]
