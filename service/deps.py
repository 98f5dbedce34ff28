"""FastAPI dependency aliases: routes ask for ``SessionDep``, ``SettingsDep``, ``RegionIndexesDep``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.config import Settings
from service.regions.service import RegionIndexCache


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def _region_indexes(request: Request) -> RegionIndexCache:
    cache: RegionIndexCache = request.app.state.region_indexes
    return cache


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
RegionIndexesDep = Annotated[RegionIndexCache, Depends(_region_indexes)]
