"""HTTP API for alert recipients and the outbox (admins manage; supervisors see their county's)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from service.alerts import service
from service.alerts.channels import safe_url
from service.alerts.tables import AlertStatus, Channel, Recipient, RecipientRole
from service.deps import Admin, SessionDep, Supervisor
from service.errors import InputError
from service.incidents.states import Role

router = APIRouter(prefix="/api/v1", tags=["alerts"])
# Bounded as the incidents' ids are: a larger one overflows the database's integer (a 500 on SQLite), not a 404.
RecipientId = Annotated[int, Path(ge=1, le=2**62)]


class RecipientIn(BaseModel):
    """A new recipient. ``secret`` signs requests (webhook HMAC, DingTalk/Feishu) and is never returned."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    unit_code: str = Field(min_length=1, max_length=32)
    channel: Channel
    target: str = Field(min_length=3, max_length=500)
    secret: str | None = Field(None, max_length=200)
    role: RecipientRole = RecipientRole.TOWNSHIP
    rate_per_min: int | None = None


class RecipientPatch(BaseModel):
    """A change to a recipient (admins): ``active`` false disables it (its pending alerts withdrawn), true enables
    it; ``target`` re-points it (validated for its channel); ``secret`` replaces its signing secret, ``null`` or an
    empty string removes it (absent: kept). The answer never carries the secret."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    target: str | None = Field(None, min_length=3, max_length=500)
    secret: str | None = Field(None, max_length=200)


class RecipientRead(BaseModel):
    """A recipient without its secret (and without the query string of its URL, which may hold a bot key)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    unit_code: str
    channel: Channel
    role: RecipientRole
    target_host: str
    has_secret: bool
    rate_per_min: int | None
    active: bool


class AlertRead(BaseModel):
    """An outbox row."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    incident_id: int
    recipient_id: int
    kind: str
    status: AlertStatus
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    digest_size: int


def _read(row: Recipient) -> RecipientRead:
    return RecipientRead(
        id=row.id,
        name=row.name,
        unit_code=row.unit_code,
        channel=Channel(row.channel),
        role=RecipientRole(row.role),
        # An e-mail address is where the alerts go, nothing secret in it; any other target is a URL whose path,
        # query and user part may hold a key (scheme and host only).
        target_host=row.target if Channel(row.channel) is Channel.EMAIL else safe_url(row.target.partition("#")[0]),
        has_secret=bool(row.secret),
        rate_per_min=row.rate_per_min,
        active=row.active,
    )


@router.post("/recipients", status_code=201)
def add_recipient(body: RecipientIn, principal: Admin, session: SessionDep) -> RecipientRead:
    """Add an alert recipient (admins)."""
    row = service.create_recipient(
        session,
        name=body.name,
        unit_code=body.unit_code,
        channel=body.channel,
        target=body.target,
        secret=body.secret,
        role=body.role,
        rate_per_min=body.rate_per_min,
    )
    session.commit()
    return _read(row)


@router.patch("/recipients/{recipient_id}")
def patch_recipient(
    recipient_id: RecipientId, body: RecipientPatch, principal: Admin, session: SessionDep
) -> RecipientRead:
    """Disable or enable a recipient, or change its target or secret (admins). Recipients are never deleted (their
    alerts and the incidents' records refer to them): disabling one removes it from every alert from then on."""
    given = body.model_fields_set
    if not given or ("active" in given and body.active is None):
        raise InputError("give active (true/false), target and/or secret", field="active" if given else None)
    row = service.get_recipient(session, recipient_id)
    if "target" in given or "secret" in given:
        if "target" in given and body.target is None:
            raise InputError("a recipient needs a target", field="target")
        service.change_recipient_target(
            session, recipient_id, target=body.target, secret=body.secret, change_secret="secret" in given
        )
    if body.active is not None:
        service.set_recipient_active(session, recipient_id, body.active)
    session.commit()
    return _read(row)


@router.get("/recipients")
def get_recipients(principal: Supervisor, session: SessionDep) -> list[RecipientRead]:
    """Recipients: all for admins, the supervisor's own unit for supervisors."""
    units = None if principal.role is Role.ADMIN else [principal.unit_code or ""]
    return [_read(r) for r in service.list_recipients(session, units)]


@router.get("/alerts")
def get_alerts(
    principal: Admin,
    session: SessionDep,
    status: AlertStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertRead]:
    """The outbox, newest first (admins): failed alerts are what needs a look."""
    return [AlertRead.model_validate(a) for a in service.list_alerts(session, status, limit)]
