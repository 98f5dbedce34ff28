"""Storing and loading the camera registry (replaced as a whole, atomically, like a region level)."""

from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.cameras.tables import Camera
from service.errors import InputError
from video.errors import VideoError
from video.registry import CameraRegistry


def parse(data: object) -> CameraRegistry:
    """Validate a registry dict; errors name the camera, preset and field."""
    try:
        return CameraRegistry.from_dict(data)
    except VideoError as exc:
        raise InputError(str(exc), source="camera registry") from None


def replace_registry(session: Session, registry: CameraRegistry) -> int:
    """Replace every camera with ``registry``'s (inside the caller's transaction); returns the count."""
    session.execute(delete(Camera))
    session.add_all(
        Camera(camera_id=camera.id, record=json.dumps(camera.to_dict(), ensure_ascii=False), position=i)
        for i, camera in enumerate(registry.cameras)
    )
    session.flush()
    return len(registry.cameras)


def load_registry(session: Session) -> CameraRegistry:
    """The stored registry (empty when none)."""
    rows = session.scalars(select(Camera).order_by(Camera.position)).all()
    return parse({"cameras": [json.loads(row.record) for row in rows]})
