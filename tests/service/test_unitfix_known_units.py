"""A unit code has to name an imported unit: a patrol account or an alert recipient on a typo'd code saw nothing and
received nothing, for ever, and ``users add`` of an admin silently dropped the ``--unit`` it was given."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service import cli
from service.auth.service import create_user
from service.config import Settings, get_settings
from service.db import make_session_factory, open_database, transaction
from service.demo import load_demo
from service.incidents.states import Role
from service.main import create_app

PASSWORD = "pw-123456789abc"
Strawfire = Callable[..., Result]


@pytest.fixture
def strawfire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Strawfire]:
    """The ``strawfire`` command run in-process on an embedded database of its own (exit code, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith("STRAWFIRE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STRAWFIRE_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()

    def run(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli.app, list(args), input=stdin)

    yield run
    get_settings.cache_clear()


def usernames(tmp_path: Path) -> set[str]:
    from sqlalchemy import select

    from service.auth.tables import User

    engine = open_database(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}")
    with make_session_factory(engine)() as session:
        names = set(session.scalars(select(User.username)))
    engine.dispose()
    return names


def add_user(strawfire: Strawfire, name: str, role: str, unit: str | None) -> Result:
    unit_option = ["--unit", unit] if unit is not None else []
    return strawfire("users", "add", name, "--role", role, *unit_option, "--password-stdin", stdin=PASSWORD + "\n")


def test_users_add_refuses_a_unit_before_any_region_is_imported(strawfire: Strawfire, tmp_path: Path) -> None:
    """No region at all: every code is unknown; the refusal says to import the regions first."""
    assert strawfire("db", "upgrade").exit_code == 0
    result = add_user(strawfire, "p1", "patrol", "DEMO01")
    assert result.exit_code == 2
    assert "no units are imported yet" in result.stderr
    assert "strawfire regions import" in result.stderr
    assert "p1" not in usernames(tmp_path)


def test_users_add_refuses_an_unknown_unit_and_a_unit_for_a_role_without_one(
    strawfire: Strawfire, tmp_path: Path
) -> None:
    assert strawfire("demo", "load").exit_code == 0
    typo = add_user(strawfire, "bad", "patrol", "NOPE")
    assert typo.exit_code == 2
    assert "field 'unit'" in typo.stderr
    assert "no unit with code 'NOPE' is imported" in typo.stderr
    assert "Traceback" not in typo.stderr
    admin = add_user(strawfire, "adm2", "admin", "DEMO01")
    assert admin.exit_code == 2
    assert "admin users answer for no unit" in admin.stderr
    assert {"bad", "adm2"} & usernames(tmp_path) == set()
    # The right codes (a township's patrol, the county's supervisor) and the roles without a unit go through.
    assert add_user(strawfire, "p1", "patrol", "DEMO01").stdout.strip() == "user p1 (patrol, unit DEMO01) created"
    assert add_user(strawfire, "s1", "supervisor", "DEMO00").exit_code == 0
    assert add_user(strawfire, "adm3", "admin", None).exit_code == 0
    assert {"p1", "s1", "adm3"} <= usernames(tmp_path)


def test_users_add_refuses_a_unit_whose_level_no_incident_carries(strawfire: Strawfire, tmp_path: Path) -> None:
    """An incident is assigned a township and a county only: a patrol account on a village would see nothing."""
    villages = tmp_path / "villages.geojson"
    box = [[[125.5, 44.3], [125.51, 44.3], [125.51, 44.31], [125.5, 44.31], [125.5, 44.3]]]
    feature = {"type": "Feature", "properties": {"code": "V1", "name": "甲村"}, "geometry": {"type": "Polygon"}}
    feature["geometry"]["coordinates"] = box  # type: ignore[index]
    villages.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8")
    assert strawfire("demo", "load").exit_code == 0
    imported = strawfire("regions", "import", str(villages), "--level", "village", "--crs", "wgs84")
    assert imported.exit_code == 0, imported.stderr
    result = add_user(strawfire, "v1", "patrol", "V1")
    assert result.exit_code == 2
    assert "V1 is a village: a patrol user answers for a township or a county" in result.stderr


@pytest.fixture
def recipients_client(tmp_path: Path) -> Iterator[Callable[[bool], TestClient]]:
    """An admin's client on a service with the DEMO region loaded, or with no region at all."""
    opened: list[TestClient] = []

    def start(with_demo: bool) -> TestClient:
        app = create_app(Settings(data_dir=tmp_path / f"var{len(opened)}", alerts={"run_worker": False}))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        with transaction(app.state.session_factory) as session:
            if with_demo:
                load_demo(session)
            create_user(session, "admin", PASSWORD, Role.ADMIN, None)
        token = client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return client

    yield start
    for client in opened:
        client.__exit__(None, None, None)


RECIPIENT = {"name": "测试群", "channel": "wecom", "target": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"}


def test_a_recipient_on_an_unknown_unit_is_refused(recipients_client: Callable[[bool], TestClient]) -> None:
    client = recipients_client(True)
    typo = client.post("/api/v1/recipients", json={**RECIPIENT, "unit_code": "NOPE"})
    assert typo.status_code == 422
    assert typo.json()["detail"] == (
        "field 'unit_code': no unit with code 'NOPE' is imported (strawfire regions list shows the codes)"
    )
    assert client.get("/api/v1/recipients").json() == []
    assert client.post("/api/v1/recipients", json={**RECIPIENT, "unit_code": "DEMO01"}).status_code == 201
    # A county's supervisors' group: escalations reach it.
    county = {**RECIPIENT, "unit_code": "DEMO00", "role": "county"}
    assert client.post("/api/v1/recipients", json=county).status_code == 201


def test_a_recipient_before_any_region_is_imported_is_refused(
    recipients_client: Callable[[bool], TestClient],
) -> None:
    client = recipients_client(False)
    response = client.post("/api/v1/recipients", json={**RECIPIENT, "unit_code": "DEMO01"})
    assert response.status_code == 422
    assert "no units are imported yet" in response.json()["detail"]


def test_a_recipient_on_a_parent_code_that_was_not_imported_is_accepted(
    recipients_client: Callable[[bool], TestClient],
) -> None:
    """Counties whose parent is a city not imported itself: the city's duty desk still receives their escalations
    (the escalation climbs the parent codes), so its code is a known one."""
    from sqlalchemy import update

    from service.regions.tables import Region

    client = recipients_client(True)
    city = {**RECIPIENT, "unit_code": "220100", "role": "county"}
    assert client.post("/api/v1/recipients", json=city).status_code == 422
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        session.execute(update(Region).where(Region.code == "DEMO00").values(parent_code="220100"))
    assert client.post("/api/v1/recipients", json=city).status_code == 201
