"""The latest run of each background component (replaced at every run: a state, not a log)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime


class ComponentRun(Base):
    """The latest run of one background component: the alert worker, one FIRMS source's poll."""

    __tablename__ = "component_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. ``alerts.worker``, ``firms:MODIS_NRT``
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)  # redacted by the caller, cut to ERROR_CHARS
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON: what the last successful run did
