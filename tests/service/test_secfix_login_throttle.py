"""Failed logins are logged and throttled (an audit's finding: 60 wrong passwords in 29 s, then the right one
worked, and no log line named the account or the client)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.auth.service import create_user
from service.auth.throttle import LoginAttempt, LoginThrottle
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app

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


@pytest.mark.parametrize("service", [{"login_max_failures": 2, "login_window_minutes": 0.02}], indirect=True)
def test_the_window_slides(service: TestClient) -> None:
    assert [login(service, "admin", WRONG).status_code for _ in range(2)] == [401, 401]
    refused = login(service, "admin", PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] in ("1", "2")
    time.sleep(1.3)
    assert login(service, "admin", PASSWORD).status_code == 200


@pytest.mark.parametrize("service", [{"login_max_failures": 1}], indirect=True)
def test_a_refused_attempt_costs_no_password_hash(service: TestClient) -> None:
    """A flood of guesses is not made into a flood of argon2 hashing: the refusal comes before the check."""
    started = time.perf_counter()
    assert login(service, "admin", WRONG).status_code == 401
    checked = time.perf_counter() - started  # one argon2id verification and the request around it
    started = time.perf_counter()
    assert [login(service, "admin", WRONG).status_code for _ in range(10)] == [429] * 10
    refused = (time.perf_counter() - started) / 10
    assert refused < checked / 2, (refused, checked)


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
