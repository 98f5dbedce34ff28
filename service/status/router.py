"""HTTP API of the system status (supervisors and admins) and the readiness probe (anyone, no details)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.db import utcnow
from service.deps import SessionDep, SettingsDep, Supervisor
from service.status import service

router = APIRouter(tags=["status"])


@router.get("/api/v1/status")
def get_status(principal: Supervisor, session: SessionDep, settings: SettingsDep) -> service.SystemStatus:
    """Whether the closed loop works: the alert outbox (overdue, failed), the alert worker's and each FIRMS
    source's latest run, camera presets by health, and what came in per observation kind. ``problems`` lists
    what people must act on, most urgent first; ``status`` is ``degraded`` when there is any."""
    return service.system_status(session, settings, now=utcnow())


@router.get("/readyz", include_in_schema=True)
def readyz(request: Request) -> JSONResponse:
    """Readiness for a load balancer or systemd: 200 when the database answers, 503 otherwise (no details: the
    probe is unauthenticated, and database errors can name hosts). ``/healthz`` only says the process is up."""
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})
