"""Shared fixtures of the camera service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from tests.conftest import without_alert_worker


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The service on an empty database with one user of each role the camera endpoints tell apart."""
    app = create_app(without_alert_worker(Settings(data_dir=tmp_path / "var")))
    with TestClient(app) as test_client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "admin", "admin-password", Role.ADMIN, None)
            create_user(session, "worker", "device-password", Role.DEVICE, None)
            create_user(session, "sup", "supervisor-password", Role.SUPERVISOR, "DEMO00")
            create_user(session, "eval", "evaluator-password", Role.EVALUATOR, None)
        yield test_client
