"""A fire another township's patrol found, put through the real API (shared by the statistics API and report tests).

东镇's patrol, standing across the boundary in 西镇, reports a fire (``POST /api/v1/observations/patrol``); it is
西镇's incident, and 西镇's team takes it on and feeds it back as a straw fire: a violation first (and only) seen by
a patrol report that is not 西镇's own, so charged as a ``patrol`` point. Townships: tests/stats/scenario.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.auth.service import create_user
from service.config import Settings
from service.db import make_engine, transaction
from service.incidents.states import Role
from service.incidents.tables import Incident
from service.main import create_app
from service.stats.router import router as stats_router
from tests.conftest import POSTGRES_URL
from tests.conftest import _reset_postgres as reset_postgres
from tests.stats.scenario import COUNTY_A, EAST, WEST, import_regions

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
USERS = {"admin": (Role.ADMIN, None), "east": (Role.PATROL, EAST), "west": (Role.PATROL, WEST)}
IN_WEST = (44.05, 125.15)  # (lat, lon)
BEIJING = timedelta(hours=8)


#: The params of a fixture that runs the service on each database: its own SQLite, and PostgreSQL when configured.
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def empty_database_url(database: str) -> str:
    """The ``database_url`` setting for one of :data:`DATABASES`: "" (the service's SQLite in its data folder), or
    the test PostgreSQL server emptied (skipping the test when none is configured)."""
    if database == "sqlite":
        return ""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set STRAWFIRE_TEST_POSTGRES_URL (.ci/run does)")
    engine = make_engine(POSTGRES_URL)
    reset_postgres(engine)
    engine.dispose()
    return POSTGRES_URL


@contextmanager
def patrol_app(
    data_dir: Path, database_url: str = "", users: Mapping[str, tuple[Role, str | None]] = USERS
) -> Iterator[TestClient]:
    """The service with the scenario's regions and ``users`` (by default an admin and a patrol user for 东镇 and
    西镇; each with :data:`PASSWORD`), scored with ./rules."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # the scores use ./rules
        settings = Settings(data_dir=data_dir, database_url=database_url, alerts={"run_worker": False})
        app = create_app(settings)
        app.include_router(stats_router)
        with TestClient(app) as client:
            with transaction(app.state.session_factory) as session:
                import_regions(session)
                for name, (role, unit) in users.items():
                    create_user(session, name, PASSWORD, role, unit)
            yield client


def login(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def call(client: TestClient, user: str, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, headers=login(client, user), **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


def report_across_the_boundary(client: TestClient) -> int:
    """东镇's patrol reports a fire in 西镇; 西镇 takes it on and feeds it back as a straw fire. The incident id."""
    body = {"latitude": IN_WEST[0], "longitude": IN_WEST[1], "accuracy_m": 12.0}
    out = call(client, "east", "POST", "/api/v1/observations/patrol", json=body)
    assert (out["township_code"], out["taken_on"]) == (WEST, False)
    incident: int = out["incident_id"]
    for to in ("acknowledged", "on_site", "extinguished"):
        call(client, "west", "POST", f"/api/v1/incidents/{incident}/transitions", json={"to": to})
    feedback = {"to": "feedback", "feedback": {"cause": "straw", "burned_area_m2": 120}}
    call(client, "west", "POST", f"/api/v1/incidents/{incident}/transitions", json=feedback)
    return incident


def period_of(client: TestClient, incident: int) -> str:
    """The Beijing month the incident was first observed in (the report was stamped with the server's clock)."""
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        first = session.get_one(Incident, incident).first_observed_at
    return f"{first + BEIJING:%Y-%m}"


AREA = COUNTY_A
