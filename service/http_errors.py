"""The one place where domain errors become HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.errors import ConflictError, InputError, NotFoundError, StrawfireError

_STATUS: list[tuple[type[StrawfireError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (InputError, 422),
]


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(StrawfireError, _handle)
