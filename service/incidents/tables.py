"""Tables of the incidents domain: observations, incidents (one timestamp per state) and the append-only events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow
from service.incidents.fusion import ObservationKind
from service.incidents.states import IncidentState

STATES_SQL = ", ".join(f"'{s.value}'" for s in IncidentState)
KINDS_SQL = ", ".join(f"'{k.value}'" for k in ObservationKind)


class Incident(Base):
    """One fire, whatever saw it: where, whose, how sure, and where it stands in the lifecycle."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=IncidentState.SUSPECTED.value, index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    location_kind: Mapped[str] = mapped_column(String(16))  # which kind of observation gave the location
    confidence: Mapped[float] = mapped_column(Float)
    # Assignment (ranked candidates with shares as JSON; certainty = the primary unit's share of the region).
    township_code: Mapped[str | None] = mapped_column(String(32), index=True)
    township_name: Mapped[str | None] = mapped_column(String(200))
    county_code: Mapped[str | None] = mapped_column(String(32), index=True)
    county_name: Mapped[str | None] = mapped_column(String(200))
    assignment_status: Mapped[str] = mapped_column(String(16), default="outside")
    assignment_certainty: Mapped[float] = mapped_column(Float, default=0.0)
    assignment_candidates: Mapped[str] = mapped_column(Text, default="[]")
    first_observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # One timestamp per state: the latest time the incident entered it.
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    en_route_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_site_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extinguished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    false_alarm_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    false_alarm_reason: Mapped[str | None] = mapped_column(String(32))
    feedback: Mapped[str | None] = mapped_column(Text)  # JSON: cause, burned area, responsible party, photos
    # repeat_at_site (同一地点再次起火): the earlier real fire at the same place this one repeats, set when the
    # incident opens (service.incidents.repeat_site); also recorded in the event log.
    repeat_of_incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    # Bumped on every change: two concurrent writes of one incident cannot both land (optimistic locking). A
    # transition may also name the state its caller saw (TransitionIn.expected_state).
    version: Mapped[int] = mapped_column(default=1)

    __table_args__ = (CheckConstraint(f"state IN ({STATES_SQL})", name="state"),)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012  (SQLAlchemy reads it at class creation)


class Observation(Base):
    """One signal of a fire with its uncertainty region (WKB, WGS-84). Immutable once written."""

    __tablename__ = "observations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(String(200))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    region_wkb: Mapped[bytes] = mapped_column(LargeBinary)
    confidence: Mapped[float] = mapped_column(Float)
    frp_mw: Mapped[float | None] = mapped_column(Float)
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON: source-specific fields, screening decisions
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("kind", "source_key", name="kind_source_key"),
        CheckConstraint(f"kind IN ({KINDS_SQL})", name="kind"),
        Index("ix_observations_lat_lon", "latitude", "longitude"),
        # the system status's latest arrivals and observations per kind (service.status.service.observation_feeds)
        Index("ix_observations_kind_received", "kind", "received_at"),
        Index("ix_observations_kind_observed", "kind", "observed_at"),
    )


class IncidentEvent(Base):
    """An append-only record of everything that happened to an incident (database triggers refuse changes)."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # server time, never the client's
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # created | observation | transition | reassigned | alert
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text, default="{}")
