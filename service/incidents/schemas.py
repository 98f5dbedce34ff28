"""API shapes of the incidents domain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import shapely
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, computed_field, field_validator
from shapely.geometry import mapping
from sqlalchemy.orm import Session

from service.alerts.escalation import CLOCKED, deadline_start, moved_at
from service.auth.service import Principal
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.crs import wgs84_to_gcj02


class IncidentRead(BaseModel):
    """An incident as listed."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    state: IncidentState
    latitude: float
    longitude: float
    location_kind: str
    confidence: float
    township_code: str | None
    township_name: str | None
    county_code: str | None
    county_name: str | None
    assignment_status: str
    assignment_certainty: float
    first_observed_at: datetime
    last_observed_at: datetime
    created_at: datetime
    notified_at: datetime | None
    acknowledged_at: datetime | None
    en_route_at: datetime | None
    on_site_at: datetime | None
    extinguished_at: datetime | None
    feedback_at: datetime | None
    verified_at: datetime | None
    closed_at: datetime | None
    false_alarm_at: datetime | None
    reopened_at: datetime | None
    escalated_at: datetime | None
    false_alarm_reason: str | None
    # repeat_at_site (同一地点再次起火): the earlier real fire at this place that this incident repeats, or None.
    repeat_of_incident_id: int | None = None
    version: int
    # When the deadline running now started, as the escalation timer counts it: notified (or reopened) for the
    # acknowledge deadline, acknowledged for the on-site one, each restarted by a later move of the fire to another
    # unit (service.alerts.escalation.deadline_start); None when no township deadline runs (suspected, escalated,
    # on site and later). The dashboard measures lateness from it.
    clock_from: datetime | None = None

    @classmethod
    def of_rows(cls, session: Session, rows: Sequence[Incident]) -> list[IncidentRead]:
        """The rows as read, each with its ``clock_from`` (one query for the moves of up to 500 incidents, none when
        no deadline runs for any of them)."""
        moves = moved_at(session, [row.id for row in rows if IncidentState(row.state) in CLOCKED])
        return [cls.of_row(row, moves.get(row.id)) for row in rows]

    @classmethod
    def of_row(cls, incident: Incident, moved: datetime | None) -> IncidentRead:
        """One row as read; ``moved``: when it last moved to another unit (:func:`moved_at`), if ever."""
        read = cls.model_validate(incident)
        read.clock_from = deadline_start(IncidentState(incident.state), incident, moved)
        return read

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gcj02_latitude(self) -> float:
        """Latitude in GCJ-02, the system phone maps in China use."""
        return round(wgs84_to_gcj02(self.longitude, self.latitude)[1], 6)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gcj02_longitude(self) -> float:
        """Longitude in GCJ-02."""
        return round(wgs84_to_gcj02(self.longitude, self.latitude)[0], 6)


class ObservationRead(BaseModel):
    """One observation with its uncertainty region as GeoJSON."""

    id: int
    kind: str
    source_key: str
    observed_at: datetime
    latitude: float
    longitude: float
    confidence: float
    frp_mw: float | None
    region: dict[str, Any]
    details: dict[str, Any]

    @classmethod
    def of(cls, row: Observation) -> ObservationRead:
        """Build from a row."""
        return cls(
            id=row.id,
            kind=row.kind,
            source_key=row.source_key,
            observed_at=row.observed_at,
            latitude=row.latitude,
            longitude=row.longitude,
            confidence=row.confidence,
            frp_mw=row.frp_mw,
            region=dict(mapping(shapely.from_wkb(row.region_wkb))),
            details=json.loads(row.details),
        )


class IncidentDetail(IncidentRead):
    """An incident with its observations, assignment candidates, feedback and the moves the caller may make."""

    assignment_candidates: list[dict[str, Any]]
    feedback: dict[str, Any] | None
    observations: list[ObservationRead]
    allowed_transitions: list[IncidentState]

    @classmethod
    def of(
        cls,
        incident: Incident,
        observations: list[Observation],
        allowed: list[IncidentState],
        moved: datetime | None = None,
    ) -> IncidentDetail:
        """Build from rows; ``moved``: when the incident last moved to another unit (for ``clock_from``)."""
        base = IncidentRead.of_row(incident, moved).model_dump()
        return cls(
            **base,
            assignment_candidates=json.loads(incident.assignment_candidates),
            feedback=json.loads(incident.feedback) if incident.feedback else None,
            observations=[ObservationRead.of(o) for o in observations],
            allowed_transitions=allowed,
        )


class EventRead(BaseModel):
    """One entry of the append-only record."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    actor_role: str
    kind: str
    from_state: str | None
    to_state: str | None
    note: str
    evidence_sha256: str | None
    data: dict[str, Any]

    @field_validator("data", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @classmethod
    def of(cls, row: IncidentEvent, viewer: Principal) -> EventRead:
        """Build from a row, as ``viewer`` may read it.

        A phone position is personal data (where a patrol member was): its coordinates are shown only to the
        member who sent it, to supervisors and to admins (:data:`POSITION_READERS`); everyone else (evaluators,
        other patrol members, another township after a reassignment) reads the distance and flags without them."""
        event = cls.model_validate(row)
        position = event.data.get("position")
        if isinstance(position, dict) and viewer.role not in POSITION_READERS and viewer.username != event.actor:
            hidden = {k: v for k, v in position.items() if k not in ("latitude", "longitude")}
            event.data = {**event.data, "position": hidden}
        return event


#: Roles that read the coordinates of a position sent with a move (besides the member who sent it).
POSITION_READERS: frozenset[Role] = frozenset({Role.SUPERVISOR, Role.ADMIN})


class PositionIn(BaseModel):
    """Where the actor's phone says it is at the move (the browser's Geolocation API), as tamper evidence.

    WGS-84, as browsers and phone GPS report it (not GCJ-02). ``at`` is the phone's own time of the fix, with its
    UTC offset; a time more than 10 minutes ahead of the server clock is refused, as for photos.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Numbers only (strict: "44.3" or true is refused, not converted); finite (the JSON parser takes NaN too).
    latitude: float = Field(ge=-90, le=90, strict=True)
    longitude: float = Field(ge=-180, le=180, strict=True)
    # Metres (the Geolocation API's 95 % radius); up to half the Earth's circumference.
    accuracy_m: float = Field(ge=0, le=20_000_000, strict=True)
    at: AwareDatetime


def _unicode_text(value: Any) -> Any:
    """``value`` when every text in it (keys too) is Unicode that UTF-8 can store; a ``ValueError`` otherwise.

    A JSON ``"\\ud83d"`` (half an emoji) parses to a lone surrogate: typed ``str`` fields refuse it, but a free-form
    object's values are not checked as text, and storing one failed the request with a 500."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text with a lone UTF-16 surrogate (half a character, such as \\ud83d)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _unicode_text(key)
            _unicode_text(item)
    elif isinstance(value, list):
        for item in value:
            _unicode_text(item)
    return value


class TransitionIn(BaseModel):
    """A requested move in the lifecycle."""

    model_config = ConfigDict(extra="forbid")

    to: IncidentState
    note: str = Field("", max_length=4000)
    reason: FalseAlarmReason | None = None
    # Free-form here (service.incidents.service.check_feedback names what is wrong in it), but text only as Unicode.
    feedback: Annotated[dict[str, Any] | None, AfterValidator(_unicode_text)] = None
    evidence_sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")
    # The state the caller saw: refused with 409 when the incident has moved since (two phones acting blindly).
    expected_state: IncidentState | None = None
    # The phone's position at the move; stored in the event with the server's distance to the fire. An ``on_site``
    # without one is accepted (no GPS, or a browser refusing geolocation off HTTPS) and recorded as ``null``.
    position: PositionIn | None = None


class ReassignIn(BaseModel):
    """A supervisor's manual assignment."""

    model_config = ConfigDict(extra="forbid")

    township_code: str | None = None
    county_code: str | None = None
    note: str = Field(min_length=1, max_length=4000)


class RejectedRowOut(BaseModel):
    """A row of an upload that was skipped, and why."""

    line: int
    field: str | None
    reason: str


class OldRowsOut(BaseModel):
    """An upload's new rows inside the units (not stored before) observed more than ``older_than_days`` before it
    (service.incidents.freshness): ingested all the same, as new fires that open incidents and alert their
    townships now. Most likely an old download, a sample file or history (``strawfire firms history``)."""

    count: int
    oldest: datetime  # UTC, the earliest acquisition among them
    older_than_days: float


class IngestOut(BaseModel):
    """What an upload did. ``warnings`` says in words what the client should look at (old rows, ``old_rows``)."""

    source: str
    rows: int
    new: int
    duplicates: int
    rejected: list[RejectedRowOut]
    new_incidents: list[int]
    updated_incidents: list[int]
    merged_incidents: list[int]
    held: dict[str, int]  # screened out (recorded, no incident): status → count
    fire_points: int  # new satellite fire points (clusters of pixels of one pass)
    repeats: int  # fire points repeating one seen within the repeat window
    repeat_at_site: list[int] = []  # new incidents at the place of an earlier real fire (同一地点再次起火)
    old_rows: OldRowsOut | None = None  # None: no old row became a fire
    warnings: list[str] = []
