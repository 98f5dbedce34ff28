"""FastAPI dependency aliases: routes ask for ``SessionDep``, ``SettingsDep``, ``CurrentPrincipal``…"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from service.auth.security import decode_token
from service.auth.service import Principal, principal_of, user_of_token
from service.config import Settings
from service.incidents.states import Role, a_role
from service.regions.service import RegionIndexCache

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _session(request: Request) -> Iterator[Session]:
    # One session per request, shared by the dependencies; handlers commit explicitly and anything left
    # uncommitted (an error on the way) is rolled back when the session closes.
    with request.app.state.session_factory() as session:
        yield session


def _region_indexes(request: Request) -> RegionIndexCache:
    cache: RegionIndexCache = request.app.state.region_indexes
    return cache


def _secret(request: Request) -> str:
    secret: str = request.app.state.token_secret
    return secret


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
RegionIndexesDep = Annotated[RegionIndexCache, Depends(_region_indexes)]
SecretDep = Annotated[str, Depends(_secret)]


def _principal(token: Annotated[str, Depends(_bearer)], secret: SecretDep, session: SessionDep) -> Principal:
    claims = decode_token(secret, token)
    user = None if claims is None else user_of_token(session, claims)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal_of(user)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets only ``roles`` through (403 for everyone else)."""

    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"{a_role(principal.role)} may not do this")
        return principal

    return check


# People who read incidents; devices only post observations.
Reader = Annotated[Principal, Depends(require(Role.PATROL, Role.SUPERVISOR, Role.EVALUATOR, Role.ADMIN))]
# People who act on incidents; evaluators read only.
Actor = Annotated[Principal, Depends(require(Role.PATROL, Role.SUPERVISOR, Role.ADMIN))]
ObservationPoster = Annotated[Principal, Depends(require(Role.DEVICE, Role.ADMIN))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
