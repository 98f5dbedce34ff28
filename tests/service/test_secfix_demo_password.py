"""The public DEMO password opens no account outside demo mode, however a user came to have it (an audit's finding:
the start-up check alone let `users enable demo-admin` or `users passwd ... demo-password` reopen the door while a
production server ran)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.auth.service import authenticate, create_user, set_active, set_password
from service.auth.tables import User
from service.config import Settings
from service.db import transaction
from service.demo import DEMO_PASSWORD
from service.errors import InputError
from service.incidents.states import Role
from service.main import create_app
from tests.test_cli import run

TOKEN_URL = "/api/v1/auth/token"


def test_a_production_server_refuses_the_demo_password_however_it_came_back(tmp_path: Path) -> None:
    assert run("demo", "load", cwd=tmp_path).returncode == 0
    for name in ("demo-admin", "demo-supervisor", "demo-patrol"):
        assert run("users", "disable", name, cwd=tmp_path).returncode == 0
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    app = create_app(settings)
    with TestClient(app) as client:  # starts: every DEMO user is disabled
        # What the audit did while the server ran: both are refused now, each with a one-line reason.
        enabled = run("users", "enable", "demo-admin", cwd=tmp_path)
        assert enabled.returncode == 2, enabled.stderr
        assert "still has the public DEMO password" in enabled.stderr
        assert "strawfire users passwd demo-admin" in enabled.stderr
        given_back = run("users", "passwd", "demo-patrol", "--password-stdin", cwd=tmp_path, stdin="demo-password\n")
        assert given_back.returncode == 2, given_back.stderr
        assert "cannot be the DEMO password" in given_back.stderr
        # And a DEMO user enabled behind the service's back (by SQL) still cannot log in with it.
        with transaction(app.state.session_factory) as session:
            session.execute(update(User).where(User.username == "demo-admin").values(active=True))
        login = client.post(TOKEN_URL, data={"username": "demo-admin", "password": DEMO_PASSWORD})
        assert login.status_code == 401, login.text
        assert "strawfire users passwd" in login.json()["detail"]
        assert "DEMO password" in login.json()["detail"]
        # The same answer for a name that does not exist: the refusal says nothing of the account.
        nobody = client.post(TOKEN_URL, data={"username": "no-such-user", "password": DEMO_PASSWORD})
        assert nobody.json() == login.json()
        # A real password makes the DEMO user usable again, and enabling it then is allowed.
        passwd = run("users", "passwd", "demo-supervisor", "--password-stdin", cwd=tmp_path, stdin="a-real-password\n")
        assert passwd.returncode == 0, passwd.stderr
        assert run("users", "enable", "demo-supervisor", cwd=tmp_path).returncode == 0
        assert client.post(TOKEN_URL, data={"username": "demo-supervisor", "password": "a-real-password"}).is_success


def test_demo_mode_still_signs_the_demo_users_in(tmp_path: Path) -> None:
    """`make run` (demo load, then serve --demo): the DEMO users log in with the DEMO password."""
    assert run("demo", "load", cwd=tmp_path).returncode == 0
    settings = Settings(data_dir=tmp_path / "var", demo=True, alerts={"run_worker": False})
    with TestClient(create_app(settings)) as client:
        for name in ("demo-admin", "demo-supervisor", "demo-patrol"):
            login = client.post(TOKEN_URL, data={"username": name, "password": DEMO_PASSWORD})
            assert login.status_code == 200, login.text


def test_the_service_functions_refuse_the_public_password(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", demo=True, alerts={"run_worker": False})
    app = create_app(settings)
    with TestClient(app), transaction(app.state.session_factory) as session:
        with pytest.raises(InputError, match="DEMO password"):
            create_user(session, "wang", DEMO_PASSWORD, Role.PATROL, "DEMO01")  # for anyone but the DEMO users
        create_user(session, "li", "li-password", Role.PATROL, "DEMO01")
        create_user(session, "demo-patrol", DEMO_PASSWORD, Role.PATROL, "DEMO01")  # as load_demo_scenario does
        with pytest.raises(InputError, match="DEMO password"):
            set_password(session, "li", DEMO_PASSWORD)
        with pytest.raises(InputError, match="DEMO password"):
            set_password(session, "demo-patrol", DEMO_PASSWORD)  # DEMO users included
        set_active(session, "demo-patrol", False)
        with pytest.raises(InputError, match="public DEMO password"):
            set_active(session, "demo-patrol", True)
        assert set_active(session, "demo-patrol", True, demo=True).active  # in demo mode the DEMO user may return
        assert authenticate(session, "demo-patrol", DEMO_PASSWORD, demo=True) is not None
