"""Tables of the alerts domain: who is alerted (recipients) and the outbox of alerts to deliver."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow


class Channel(StrEnum):
    """How a recipient is reached."""

    WEBHOOK = "webhook"  # generic JSON, HMAC-SHA256 signed
    WECOM = "wecom"  # 企业微信 group bot
    DINGTALK = "dingtalk"  # 钉钉 custom robot, HMAC-SHA256 signed URL
    FEISHU = "feishu"  # 飞书 custom bot, signed body
    EMAIL = "email"  # SMTP
    SMS = "sms"  # an HTTP SMS gateway


class RecipientRole(StrEnum):
    """Whether a recipient acts on alerts (the township team) or is escalated to (the county supervisor)."""

    TOWNSHIP = "township"
    COUNTY = "county"


class AlertKind(StrEnum):
    """Why an alert is sent."""

    NEW = "new"  # a new incident in the recipient's unit
    REMINDER = "reminder"  # not acknowledged in time: sent again
    ESCALATION = "escalation"  # a deadline passed: to the county supervisor


class AlertStatus(StrEnum):
    """Where an alert stands in the outbox."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the retry horizon; visible to supervisors
    # Not sent: the incident moved on before it could go out (acknowledged before its reminder, closed or merged,
    # moved to another unit), see service.alerts.outbox.lapsed_reason; the reason is in last_error.
    WITHDRAWN = "withdrawn"


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in enum)


class Recipient(Base):
    """A township team's or supervisor's alert address. ``secret`` signs requests and is never shown."""

    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    unit_code: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(16), default=RecipientRole.TOWNSHIP.value)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(500))  # URL, e-mail address or phone number
    secret: Mapped[str | None] = mapped_column(String(200))
    # Messages per minute; None = the channel's default (WeCom/DingTalk bots: 20).
    rate_per_min: Mapped[int | None]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(f"channel IN ({_values(Channel)})", name="channel"),
        CheckConstraint(f"role IN ({_values(RecipientRole)})", name="role"),
    )


class Alert(Base):
    """One message to one recipient about one incident. Written in the transaction that changed the incident."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    kind: Mapped[str] = mapped_column(String(16))
    # (incident, recipient, kind[, round]): the database refuses a second alert with the same key.
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A worker that claimed the alert holds it until this time; after a crash another worker takes it over.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    digest_size: Mapped[int] = mapped_column(default=1)  # >1 when it went out inside a township digest

    __table_args__ = (
        CheckConstraint(f"kind IN ({_values(AlertKind)})", name="kind"),
        CheckConstraint(f"status IN ({_values(AlertStatus)})", name="status"),
        Index("ix_alerts_due", "status", "next_attempt_at"),
    )
