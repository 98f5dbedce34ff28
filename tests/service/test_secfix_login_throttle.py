"""Failed logins are logged and throttled (an audit's finding: 60 wrong passwords in 29 s, then the right one
worked, and no log line named the account or the client)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.auth import service as auth_service
from service.auth.security import verify_password as auth_service_verify
from service.auth.service import create_user
from service.auth.throttle import LoginAttempt, LoginThrottle
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from tests.dashboard.live import bound_socket, serving

TOKEN_URL = "/api/v1/auth/token"
PASSWORD = "the-right-password"
WRONG = "a-wrong-guess-7731"


@pytest.fixture
def service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The service with users admin and zhang (both PASSWORD) and the throttle settings given as its parameter."""
    overrides: dict[str, Any] = request.param
    app = create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}, **overrides))
    with TestClient(app) as client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "admin", PASSWORD, Role.ADMIN, None)
            create_user(session, "zhang", PASSWORD, Role.EVALUATOR, None)
        yield client


def login(client: TestClient, username: str, password: str) -> Any:
    return client.post(TOKEN_URL, data={"username": username, "password": password})


@pytest.mark.parametrize("service", [{"login_max_failures": 3}], indirect=True)
def test_an_account_is_throttled_after_its_failures_and_the_log_names_it(
    service: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="strawfire.auth")
    assert [login(service, "admin", WRONG).status_code for _ in range(3)] == [401, 401, 401]
    refused = login(service, "admin", PASSWORD)  # the right password, too late
    assert refused.status_code == 429, refused.text
    assert 14 * 60 < int(refused.headers["retry-after"]) <= 15 * 60
    assert "too many failed logins: try again in 15 minutes" in refused.json()["detail"]
    assert login(service, "zhang", PASSWORD).status_code == 200  # another account is not locked out
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert failures[:3] == ["failed login as 'admin' from testclient: wrong username or password"] * 3
    assert failures[3].startswith("login as 'admin' from testclient refused: too many failed logins")
    assert "login as 'zhang' (evaluator) from testclient" in caplog.text
    assert WRONG not in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("service", [{"login_max_failures": 3}], indirect=True)
def test_a_successful_login_clears_the_count(service: TestClient) -> None:
    for _ in range(3):
        assert [login(service, "admin", WRONG).status_code for _ in range(2)] == [401, 401]
        assert login(service, "admin", PASSWORD).status_code == 200


@pytest.mark.parametrize("service", [{"login_max_failures": 100, "login_max_failures_per_client": 4}], indirect=True)
def test_a_password_sprayed_over_many_names_is_throttled_by_address(service: TestClient) -> None:
    assert [login(service, name, WRONG).status_code for name in ("a", "b", "c", "d")] == [401] * 4
    assert login(service, "admin", PASSWORD).status_code == 429


@pytest.mark.parametrize("service", [{"login_max_failures": 2}], indirect=True)
def test_the_window_slides(service: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's own throttle on a clock the test moves (no sleeping: a loaded machine cannot make it flaky)."""
    now = [5000.0]
    throttle: LoginThrottle = service.app.state.login_throttle  # type: ignore[attr-defined]
    monkeypatch.setattr(throttle, "_clock", lambda: now[0])
    assert [login(service, "admin", WRONG).status_code for _ in range(2)] == [401, 401]
    now[0] += 60
    refused = login(service, "admin", PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(15 * 60 - 60)  # until the first failure leaves the window
    now[0] += 15 * 60 - 60
    assert login(service, "admin", PASSWORD).status_code == 200


@pytest.mark.parametrize("service", [{"login_max_failures": 1}], indirect=True)
def test_a_refused_attempt_costs_no_password_hash(service: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of guesses is not made into a flood of argon2 hashing: the refusal comes before the check (counted
    on the real verification, which still runs)."""
    verified: list[str] = []

    def counted(stored_hash: str, password: str) -> bool:
        verified.append(password)
        return auth_service_verify(stored_hash, password)

    monkeypatch.setattr(auth_service, "verify_password", counted)
    assert login(service, "admin", WRONG).status_code == 401
    assert len(verified) == 1  # the account's own argon2id verification
    assert [login(service, "admin", WRONG).status_code for _ in range(10)] == [429] * 10
    assert len(verified) == 1  # ten refusals, no hash


def test_behind_a_proxy_on_this_machine_each_client_address_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx on the same machine: uvicorn, as ``strawfire serve`` runs it, takes the client's address from the
    proxy's X-Forwarded-For (trusted from loopback), so one client's failures do not lock out the others behind
    the same proxy."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)  # uvicorn's default: loopback proxies are trusted
    caplog.set_level(logging.WARNING, logger="strawfire.auth")
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}, login_max_failures_per_client=2)
    with serving(create_app(settings), bound_socket()) as url:

        def login_from(client: str, username: str) -> int:
            data = {"username": username, "password": WRONG}
            return httpx.post(f"{url}{TOKEN_URL}", data=data, headers={"X-Forwarded-For": client}).status_code

        assert [login_from("203.0.113.7", name) for name in ("a", "b", "c")] == [401, 401, 429]
        assert login_from("203.0.113.8", "d") == 401  # another client behind the same proxy
    assert "failed login as 'a' from 203.0.113.7: wrong username or password" in caplog.text


def test_attempts_count_when_they_start() -> None:
    """Guesses sent in parallel cannot all pass the check before the first is counted: an attempt counts as a
    failure from the moment it is let through until it succeeds."""
    now = [1000.0]
    throttle = LoginThrottle(3, 100, 60.0, clock=lambda: now[0])
    attempts = [throttle.attempt("admin", "10.0.0.7") for _ in range(3)]  # none has finished yet
    assert all(isinstance(a, LoginAttempt) for a in attempts)
    assert throttle.attempt("admin", "10.0.0.7") == 60
    first = attempts[0]
    assert isinstance(first, LoginAttempt)
    throttle.succeeded(first)
    assert isinstance(throttle.attempt("admin", "10.0.0.7"), LoginAttempt)
    now[0] += 61
    assert isinstance(throttle.attempt("someone", "10.0.0.8"), LoginAttempt)  # the sweep drops what expired
    assert isinstance(throttle.attempt("admin", "10.0.0.7"), LoginAttempt)
