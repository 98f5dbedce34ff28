"""Recipients: validated creation and listing."""

from __future__ import annotations

import re
import urllib.parse

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.alerts.tables import Alert, AlertStatus, Channel, Recipient, RecipientRole
from service.errors import InputError
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


def list_recipients(session: Session, unit_codes: list[str] | None = None) -> list[Recipient]:
    """Recipients, optionally of some units."""
    query = select(Recipient).order_by(Recipient.unit_code, Recipient.id)
    if unit_codes is not None:
        query = query.where(Recipient.unit_code.in_(unit_codes))
    return list(session.scalars(query))


def list_alerts(session: Session, status: AlertStatus | None = None, limit: int = 200) -> list[Alert]:
    """Recent alerts, newest first."""
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Alert.status == status.value)
    return list(session.scalars(query))
