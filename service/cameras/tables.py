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
