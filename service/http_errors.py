"""The one place where domain errors become HTTP status codes."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm.exc import StaleDataError

from service.errors import ConfigError, ConflictError, InputError, NotFoundError, StorageError, StrawfireError

_STATUS: list[tuple[type[StrawfireError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (InputError, 422),
    (ConfigError, 503),  # the deployment, not the request, must change
    (StorageError, 507),  # Insufficient Storage: a full disk or a read-only mount; send it again once fixed
]
_ECHO_CHARS = 200  # of an invalid input, in the 422 that refuses it


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    # The message may quote the input (a file name, a code): made encodable like the validation errors' echo.
    return JSONResponse({"detail": _json_safe(str(exc))}, status_code=status)


async def _stale(request: Request, exc: Exception) -> JSONResponse:
    # Two people changed the same incident at once; the second must reload and decide again.
    return JSONResponse({"detail": "the incident was changed by someone else; reload it"}, status_code=409)


def _json_safe(value: Any) -> Any:
    """``value`` with what the answer could not encode made text: NaN and infinities (JSON has no such numbers), and
    lone UTF-16 surrogates (a JSON ``"\\ud83d"`` parses to one, and UTF-8 cannot encode it), which are written as
    their escape (``\\ud83d``), in keys as in values. Either failed the answer itself with a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own 422 answer, except that it echoes the input: a NaN sent as a number, or a lone surrogate in a
    # string (the JSON parser takes both; the string is refused as ``string_unicode``), made the answer itself fail
    # with a 500.
    errors = jsonable_encoder(exc.errors() if isinstance(exc, RequestValidationError) else [])
    for error in errors:
        # A long input is not echoed whole: an image sent as a form field (a multipart part without a file name)
        # came back in full, up to 1 MB of mangled bytes, in the answer that refused it.
        echoed = error.get("input") if isinstance(error, dict) else None
        if isinstance(echoed, str) and len(echoed) > _ECHO_CHARS:
            error["input"] = f"{echoed[:_ECHO_CHARS]}… ({len(echoed):,} characters)"
    return JSONResponse({"detail": _json_safe(errors)}, status_code=422)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(StrawfireError, _handle)
    app.add_exception_handler(StaleDataError, _stale)
    app.add_exception_handler(RequestValidationError, _invalid)
