"""Storing and loading the camera registry (replaced as a whole, atomically, like a region level)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from detector.sequence import IgnoreMask
from service.cameras.tables import Camera
from service.errors import InputError
from service.incidents.fusion import ObservationKind
from service.incidents.states import FalseAlarmReason, IncidentState
from service.incidents.tables import Incident, Observation
from video.errors import VideoError
from video.mask_suggestions import FalseAlarmBox, MaskSuggestion, suggest_masks
from video.registry import CameraRegistry

#: False alarms that a mask could have prevented: a heat source in view (a chimney, a boiler) and nothing found on
#: site (dust, cloud, a reflection). Not permitted burns, duplicates or real non-straw fires: those were fires.
MASKABLE_REASONS: Final = (FalseAlarmReason.INDUSTRIAL_HEAT.value, FalseAlarmReason.NOT_FOUND.value)


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


@dataclass(frozen=True)
class PresetSuggestion:
    """A :class:`~video.mask_suggestions.MaskSuggestion` for one camera preset; ``registered`` is False when the
    registry no longer has that preset."""

    camera_id: str
    preset_id: str
    registered: bool
    suggestion: MaskSuggestion

    def to_json(self) -> dict[str, Any]:
        """The API's and the CLI's form (polygon rounded to 0.1 px)."""
        return {
            "camera_id": self.camera_id,
            "preset_id": self.preset_id,
            "registered": self.registered,
            "status": self.suggestion.status,
            "polygon": [[round(x, 1), round(y, 1)] for x, y in self.suggestion.polygon],
            "incidents": list(self.suggestion.incidents),
            "boxes": self.suggestion.boxes,
            "frame_size": list(self.suggestion.frame_size) if self.suggestion.frame_size else None,
            "frame_fraction": self.suggestion.frame_fraction,
        }


def mask_suggestions(session: Session, *, since: datetime, min_incidents: int) -> list[PresetSuggestion]:
    """Ignore-mask suggestions for every preset whose camera sightings led to incidents found to be false alarms
    (:data:`MASKABLE_REASONS`) since ``since`` and not reopened after (``video.mask_suggestions``), most incidents
    first."""
    rows = session.execute(
        select(Observation.incident_id, Observation.details)
        .join(Incident, Incident.id == Observation.incident_id)
        .where(
            Observation.kind == ObservationKind.CAMERA.value,
            # a false alarm, closed or not, that was not reopened since (a reopened one may have been a fire)
            Incident.state.in_((IncidentState.FALSE_ALARM.value, IncidentState.CLOSED.value)),
            Incident.false_alarm_reason.in_(MASKABLE_REASONS),
            Incident.false_alarm_at >= since,
            or_(Incident.reopened_at.is_(None), Incident.reopened_at < Incident.false_alarm_at),
        )
        .order_by(Observation.id)
    ).all()
    by_preset: dict[tuple[str, str], list[FalseAlarmBox]] = {}
    for incident_id, text in rows:
        assert incident_id is not None  # joined on it
        details = json.loads(text)
        boxes, camera_id, preset_id = details.get("boxes"), details.get("camera_id"), details.get("preset_id")
        if not boxes or not camera_id or not preset_id:
            continue  # not a posted sighting (the demo scenario's observations carry no boxes)
        size = details.get("image_size")  # absent from sightings stored before it was recorded
        box = boxes[0]["xyxy"]  # the box the sighting was located from
        alarm = FalseAlarmBox(int(incident_id), (box[0], box[1], box[2], box[3]), (size[0], size[1]) if size else None)
        by_preset.setdefault((camera_id, preset_id), []).append(alarm)
    registry = load_registry(session)
    out: list[PresetSuggestion] = []
    for (camera_id, preset_id), alarms in by_preset.items():
        try:
            _, preset = registry.preset(camera_id, preset_id)
        except VideoError:
            preset = None
        mask = IgnoreMask.from_lists(preset.ignore_mask) if preset and preset.ignore_mask else None
        out += [
            PresetSuggestion(camera_id, preset_id, preset is not None, suggestion)
            for suggestion in suggest_masks(alarms, mask=mask, min_incidents=min_incidents)
        ]
    out.sort(key=lambda s: (-len(s.suggestion.incidents), s.camera_id, s.preset_id))
    return out
