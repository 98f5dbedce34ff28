"""The one place where domain errors become HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm.exc import StaleDataError

from service.errors import ConfigError, ConflictError, InputError, NotFoundError, StrawfireError

_STATUS: list[tuple[type[StrawfireError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (InputError, 422),
    (ConfigError, 503),  # the deployment, not the request, must change
]


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _stale(request: Request, exc: Exception) -> JSONResponse:
    # Two people changed the same incident at once; the second must reload and decide again.
    return JSONResponse({"detail": "the incident was changed by someone else; reload it"}, status_code=409)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(StrawfireError, _handle)
    app.add_exception_handler(StaleDataError, _stale)
