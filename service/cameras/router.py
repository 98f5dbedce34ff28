"""HTTP API of the camera registry: admins replace it; people and patrol workers (devices) read it."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Body

from service.cameras import service
from service.deps import Admin, CurrentPrincipal, SessionDep
from service.incidents.states import Role

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


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
