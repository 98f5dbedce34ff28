"""``POST /api/v1/auth/token``: the OAuth2 password flow."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from service.auth.security import create_token, password_stamp
from service.auth.service import PublicPasswordError, authenticate
from service.auth.throttle import LoginAttempt, LoginThrottle
from service.deps import SecretDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = logging.getLogger("strawfire.auth")
#: How much of a typed username a log line quotes (a username has at most 64 characters; the form takes any text).
_LOGGED_NAME_CHARS = 80


class Token(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    role: str
    unit_code: str | None


@router.post(
    "/token",
    responses={
        401: {"description": "Wrong username or password, or the public DEMO password outside demo mode"},
        429: {"description": "Too many failed logins for this username or from this address: see Retry-After"},
    },
)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    secret: SecretDep,
    settings: SettingsDep,
) -> Token:
    """Exchange username and password for a bearer token.

    Every failure is logged with the username as typed and the client's address (never the password); too many
    failures answer 429 before the password is checked (:mod:`service.auth.throttle`)."""
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client is not None else "unknown"
    name = form.username[:_LOGGED_NAME_CHARS]  # quoted with %r below: a newline in it cannot forge a log line
    attempt = throttle.attempt(form.username, client)
    if not isinstance(attempt, LoginAttempt):
        log.warning("login as %r from %s refused: too many failed logins (retry in %d s)", name, client, attempt)
        minutes = max(1, round(attempt / 60))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins: try again in {minutes} minute{'s' if minutes != 1 else ''}",
            headers={"Retry-After": str(attempt)},
        )
    try:
        user = authenticate(session, form.username, form.password, demo=settings.demo)
    except PublicPasswordError as exc:
        log.warning("failed login as %r from %s: the public DEMO password outside demo mode", name, client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    if user is None:
        log.warning("failed login as %r from %s: wrong username or password", name, client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    throttle.succeeded(attempt)
    log.info("login as %r (%s) from %s", user.username, user.role, client)
    token = create_token(secret, user.username, user.role, stamp=password_stamp(user.password_hash))
    return Token(access_token=token, role=user.role, unit_code=user.unit_code)
