"""Migration 0013 on SQLite and PostgreSQL: the observation kind ``patrol`` is allowed after it, refused before it,
and a downgrade keeps patrol reports as the nearest older kind (drone) with their details."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import shapely
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import alembic_config
from service.incidents.tables import Incident, Observation

AT = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)


def _insert(engine: Engine, kind: str, key: str) -> int:
    """An incident located by one observation of ``kind`` (plain SQL: the models know the newest schema only)."""
    with Session(engine) as session, session.begin():
        incident = Incident(
            latitude=44.05,
            longitude=125.05,
            location_kind=kind,
            confidence=0.99,
            first_observed_at=AT,
            last_observed_at=AT,
        )
        session.add(incident)
        session.flush()
        session.execute(
            text(
                "INSERT INTO observations (kind, source_key, observed_at, latitude, longitude, region_wkb, confidence,"
                " details, incident_id, received_at) VALUES (:kind, :key, :at, 44.05, 125.05, :wkb, 0.99, :details,"
                " :incident, :at)"
            ),
            {
                "kind": kind,
                "key": key,
                "at": AT,
                "wkb": shapely.to_wkb(shapely.Point(125.05, 44.05).buffer(0.0004)),
                "details": json.dumps({"reporter_unit": "229901001"}),
                "incident": incident.id,
            },
        )
        return incident.id


def test_patrol_kind_goes_down_and_up(engine: Engine) -> None:
    config = alembic_config(engine)
    incident = _insert(engine, "patrol", "patrol:east:r-1")

    command.downgrade(config, "0012")
    with Session(engine) as session:
        row = session.execute(
            select(Observation.kind, Observation.details).where(Observation.source_key == "patrol:east:r-1")
        ).one()
        assert row.kind == "drone"
        assert json.loads(row.details) == {"reporter_unit": "229901001"}  # the self-found credit stands
        assert session.scalar(select(Incident.location_kind).where(Incident.id == incident)) == "drone"
    with pytest.raises(IntegrityError):
        _insert(engine, "patrol", "patrol:east:r-2")

    command.upgrade(config, "head")
    _insert(engine, "patrol", "patrol:east:r-3")
    with pytest.raises(IntegrityError):
        _insert(engine, "bogus", "b-1")  # the constraint is still there, with one more kind
