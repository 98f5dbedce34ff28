"""The cameras table: one row per camera, its registry record as JSON (validated by ``video.registry``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow


class Camera(Base):
    """A registered camera (tower PTZ or fixed) with its presets."""

    __tablename__ = "cameras"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record: Mapped[str] = mapped_column(Text)  # video.registry.CameraRecord.to_dict() as JSON
    position: Mapped[int]  # order in the registry (patrol order)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PresetHeartbeat(Base):
    """The latest heartbeat of one camera preset from its patrol (replaced, never appended: not a log)."""

    __tablename__ = "camera_heartbeats"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    preset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the patrol took this reading
    frames: Mapped[int]  # frames read since the patrol started
    errors: Mapped[int]  # stream errors and reconnects since the patrol started
    frozen: Mapped[bool]  # the feed shows the same picture again and again (video.health)
    last_frame_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: no frame yet
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
