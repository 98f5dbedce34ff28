"""Recipients: validated creation, listing, disabling and re-pointing.

Recipients are never deleted: their alerts, and the incidents' records of what was sent to whom, refer to them.
Disabling one (:func:`set_recipient_active`) is how a group, an address or a phone is removed: it receives
nothing from then on, and the record stays.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.alerts.outbox import withdraw_pending
from service.alerts.tables import Alert, AlertStatus, Channel, Recipient, RecipientRole
from service.db import utcnow
from service.errors import ConflictError, InputError, NotFoundError
from service.regions.service import unit_levels

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?\d{6,15}$")


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("the target must be an http(s) URL", field="target")


def validate_target(channel: Channel, target: str) -> None:
    """Refuse a target that cannot work for its channel (before any alert is queued for it)."""
    if channel is Channel.EMAIL:
        if not _EMAIL.match(target):
            raise InputError(f"{target!r} is not an e-mail address", field="target")
    elif channel is Channel.SMS:
        url, _, phone = target.partition("#")
        _check_url(url)
        if not _PHONE.match(phone):
            raise InputError("an SMS target is GATEWAY_URL#PHONE with a phone number of 6–15 digits", field="target")
    else:
        _check_url(target)


def create_recipient(
    session: Session,
    *,
    name: str,
    unit_code: str,
    channel: Channel,
    target: str,
    secret: str | None = None,
    role: RecipientRole = RecipientRole.TOWNSHIP,
    rate_per_min: int | None = None,
) -> Recipient:
    """Add an alert recipient for a unit.

    The unit must be imported (:func:`~service.regions.service.unit_levels`, field ``unit_code``): a recipient on a
    typo'd code was never alerted, and its unit's fires went to nobody. Any level is accepted, and a code that
    imported units name as their parent: a county-role recipient of a city or a province receives the escalations
    of the counties below it (:func:`~service.alerts.coverage.supervisors_unit`), whether or not the city's own
    boundary was imported."""
    if not name.strip() or not unit_code.strip():
        raise InputError("a recipient needs a name and a unit code", field="name")
    unit_levels(session, unit_code.strip(), field="unit_code", as_parent=True)
    validate_target(channel, target)
    if rate_per_min is not None and not 1 <= rate_per_min <= 10_000:
        raise InputError("rate_per_min must be within 1..10000", field="rate_per_min")
    refuse_duplicate(session, unit_code.strip(), role, channel, target)
    recipient = Recipient(
        name=name.strip(),
        unit_code=unit_code.strip(),
        role=role.value,
        channel=channel.value,
        target=target,
        secret=secret or None,
        rate_per_min=rate_per_min,
    )
    session.add(recipient)
    session.flush()
    return recipient


def refuse_duplicate(
    session: Session,
    unit_code: str,
    role: RecipientRole,
    channel: Channel,
    target: str,
    *,
    other_than: int | None = None,
    active_only: bool = False,
) -> None:
    """Refuse a recipient that another already is: the same unit, role, channel and target (:class:`ConflictError`,
    naming it). Why: every alert of the unit went to that group, address or phone twice.

    The role counts: a county's own patrol team (township role) and its supervisors (county role) may share one
    group, which then gets the new-fire alerts and the escalations, each once. A disabled duplicate counts too (its
    record stays; enable it instead), except where ``active_only`` (enabling a recipient: only an active twin would
    double the alerts)."""
    query = select(Recipient).where(
        Recipient.unit_code == unit_code,
        Recipient.role == role.value,
        Recipient.channel == channel.value,
        Recipient.target == target,
    )
    if other_than is not None:
        query = query.where(Recipient.id != other_than)
    if active_only:
        query = query.where(Recipient.active.is_(True))
    twin = session.scalars(query.order_by(Recipient.id).limit(1)).first()
    if twin is not None:
        state = "" if twin.active else f", disabled: strawfire alerts enable-recipient {twin.id}"
        raise ConflictError(
            f"recipient {twin.id} ({twin.name}{state}) already delivers {role.value} alerts of {unit_code} by "
            f"{channel.value} to that target: every alert would go there twice"
        )


def get_recipient(session: Session, recipient_id: int) -> Recipient:
    """The recipient with this id (:class:`NotFoundError` when there is none)."""
    recipient = session.get(Recipient, recipient_id)
    if recipient is None:
        raise NotFoundError(f"no recipient {recipient_id} (strawfire alerts list-recipients lists them)")
    return recipient


@dataclass(frozen=True, slots=True)
class RecipientChange:
    """A recipient as changed, and how many of its pending alerts disabling it withdrew."""

    recipient: Recipient
    withdrawn: int = 0


def set_recipient_active(
    session: Session, recipient_id: int, active: bool, *, at: datetime | None = None
) -> RecipientChange:
    """Disable a recipient, or enable it again (inside the caller's transaction).

    Disabling withdraws its pending alerts, each with an ``alert_withdrawn`` event on its incident (``why``:
    ``retired``, as a DEMO inbox recipient retired at a start without the demo), and queues nothing for it from
    then on; the alert worker withdraws any alert it still finds for an inactive recipient, however that was
    deactivated (``service.alerts.outbox.deliver_due``). A fire that no other active recipient of its township was
    told of is then caught by the escalation pass as told nobody: queued to another recipient of the unit, else
    escalated to the county at its next pass (``service.alerts.escalation``).

    Enabling sends it what is queued from then on; its withdrawn alerts stay withdrawn (a reminder or escalation of
    that time is moot), except a new fire's that the escalation pass queues again for a fire still untold within
    its catch-up time. An active recipient with the same unit, role, channel and target refuses it
    (:func:`refuse_duplicate`)."""
    recipient = get_recipient(session, recipient_id)
    withdrawn = 0
    if active and not recipient.active:
        refuse_duplicate(
            session,
            recipient.unit_code,
            RecipientRole(recipient.role),
            Channel(recipient.channel),
            recipient.target,
            other_than=recipient.id,
            active_only=True,
        )
    recipient.active = active
    if not active:
        withdrawn = withdraw_pending(session, [recipient.id], at or utcnow())
    session.flush()
    return RecipientChange(recipient, withdrawn)


def change_recipient_target(
    session: Session,
    recipient_id: int,
    *,
    target: str | None = None,
    secret: str | None = None,
    change_secret: bool = False,
    at: datetime | None = None,
) -> RecipientChange:
    """Point a recipient at a new target (a group's new bot URL, a new address or phone) and/or give it a new
    signing secret (``change_secret``; ``secret`` None or empty removes it), inside the caller's transaction.

    The target is validated for the recipient's channel and refused when another recipient already is the same
    (:func:`refuse_duplicate`). Its alerts still pending go to the new target, signed with the new secret, at the
    worker's next pass rather than after their backoff: the change is usually the fix of what made them fail. Alerts
    already ``failed`` (given up after 24 h) stay failed."""
    recipient = get_recipient(session, recipient_id)
    if target is None and not change_secret:
        raise InputError("nothing to change: give a new target and/or a secret", field="target")
    if target is not None:
        validate_target(Channel(recipient.channel), target)
        refuse_duplicate(
            session,
            recipient.unit_code,
            RecipientRole(recipient.role),
            Channel(recipient.channel),
            target,
            other_than=recipient.id,
        )
        recipient.target = target
    if change_secret:
        recipient.secret = secret or None
    now = at or utcnow()
    for alert in session.scalars(
        select(Alert).where(
            Alert.recipient_id == recipient.id,
            Alert.status == AlertStatus.PENDING.value,
            Alert.next_attempt_at > now,
        )
    ):
        alert.next_attempt_at = now
    session.flush()
    return RecipientChange(recipient)


def list_recipients(session: Session, unit_codes: list[str] | None = None) -> list[Recipient]:
    """Recipients, optionally of some units."""
    query = select(Recipient).order_by(Recipient.unit_code, Recipient.id)
    if unit_codes is not None:
        query = query.where(Recipient.unit_code.in_(unit_codes))
    return list(session.scalars(query))


def pending_by_recipient(session: Session) -> dict[int, int]:
    """How many alerts are pending for each recipient, by id (absent: none)."""
    rows = session.execute(
        select(Alert.recipient_id, func.count())
        .where(Alert.status == AlertStatus.PENDING.value)
        .group_by(Alert.recipient_id)
    )
    return {recipient_id: int(count) for recipient_id, count in rows}


def list_alerts(session: Session, status: AlertStatus | None = None, limit: int = 200) -> list[Alert]:
    """Recent alerts, newest first."""
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Alert.status == status.value)
    return list(session.scalars(query))
