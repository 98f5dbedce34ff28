"""HTTP API of the camera registry: admins replace it; people and patrol workers (devices) read it."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from service.cameras import service
from service.db import utcnow
from service.deps import Admin, CurrentPrincipal, SessionDep
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
