"""The users table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow
from service.incidents.states import Role

ROLES_SQL = ", ".join(f"'{r.value}'" for r in Role if r is not Role.SYSTEM)


class User(Base):
    """A person (patrol, supervisor, evaluator, admin) or a device (camera, drone) that calls the API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    # The township or county this user answers for (patrol, supervisor); None for evaluators and admins.
    unit_code: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(f"role IN ({ROLES_SQL})", name="role"),)
