"""The hotspot-history table: archive pixels kept only as evidence for the persistence rule (static sources)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow


class HotspotHistory(Base):
    """One past FIRMS pixel from an archive file (``strawfire firms history``).

    Deliberately apart from ``observations``: a row here never opens an incident, sends an alert or counts in
    statistics and scores; ``service.screening.build_screener`` reads it into the persistence map and nothing else
    reads it. One row per pixel (the FIRMS natural key, ``Hotspot.key``), not per cell and day, so the map's cell
    size and neighbourhood can change without importing the archive again, and a re-import adds nothing.
    """

    __tablename__ = "hotspot_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(200), unique=True)
    acq_utc: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # China Standard Time, the day the persistence rule counts (a night and a day pass of one local day fall on
    # two UTC dates); stored for queries by people, the map derives it from acq_utc itself.
    local_date: Mapped[date] = mapped_column(Date)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    satellite: Mapped[str] = mapped_column(String(16))
    instrument: Mapped[str] = mapped_column(String(8))
    daynight: Mapped[str] = mapped_column(String(1))
    source_file: Mapped[str] = mapped_column(String(200))  # the archive it came from (first import wins)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
