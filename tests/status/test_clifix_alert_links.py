"""Alert links built on ``alerts.public_base_url``: a loopback (or otherwise unreachable) base URL while real
recipients get alerts is a status problem (``alert_links_unreachable``), and ``strawfire serve`` warns of it at
its start; the DEMO inbox's own recipients, disabled ones and a routable base URL are not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.service import create_recipient
from service.alerts.tables import Channel, Recipient
from service.config import Settings
from service.db import transaction, utcnow
from service.demo_inbox import provide_demo_recipients
from service.status import service as status
from tests.alerts.test_outbox import factory  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.service.test_loader import feature, square, write_geojson
from tests.serving import serving
from tests.test_cli import run


@pytest.mark.parametrize(
    ("base_url", "port", "why"),
    [
        ("http://127.0.0.1:8000", 8000, "a loopback address"),
        ("http://127.0.0.1:8000", 8766, "a loopback address, not even on this server's port (8766)"),
        ("http://localhost:8766/", 8766, "a loopback address"),
        ("http://[::1]:8000", 8000, "a loopback address"),
        ("http://127.0.1.1", 80, "a loopback address"),
        ("http://0.0.0.0:8000", 8000, "an unspecified address (a listening address, not one to open)"),
        ("http://169.254.10.1:8000", 8000, "a link-local address"),
        ("strawfire.example.org", 8000, "not an absolute http(s) URL"),
        ("ftp://strawfire.example.org", 8000, "not an absolute http(s) URL"),
        ("http://host:port", 8000, "not a valid URL"),
        ("https://strawfire.example.gov.cn", 8000, None),
        ("http://192.168.10.5:8766", 8000, None),  # an intranet address: phones on the county's network reach it
        ("http://strawfire:8766", 8000, None),  # a host name is taken as meant
    ],
)
def test_which_base_urls_no_phone_can_open(base_url: str, port: int, why: str | None) -> None:
    assert status.unreachable_base_url(base_url, port) == why


def test_loopback_links_are_a_problem_only_while_real_recipients_get_alerts(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    default = Settings()  # alerts.public_base_url: http://127.0.0.1:8000

    def codes(settings: Settings) -> dict[str, tuple[int, tuple[str, ...]]]:
        with factory() as session:
            found = status.system_status(session, settings, now=utcnow())
        return {p.code: (p.count, p.items) for p in found.problems if p.component == status.PUBLIC_BASE_URL}

    with transaction(factory) as session:  # `serve --demo`'s own recipients: their alerts are read in the dashboard
        provide_demo_recipients(session, "http://127.0.0.1:8000", "demo-secret")
    assert codes(default) == {}
    with transaction(factory) as session:
        real = create_recipient(
            session, name="北岗镇群", unit_code="DEMO01", channel=Channel.WEBHOOK, target="https://example.invalid/h"
        ).id
    assert codes(default) == {"alert_links_unreachable": (1, ("http://127.0.0.1:8000",))}
    with factory() as session:
        found = status.system_status(session, default, now=utcnow()).problems
    [problem] = [p for p in found if p.code == "alert_links_unreachable"]
    assert problem.message == (
        "the links in the alerts of 1 active recipient(s) point to http://127.0.0.1:8000 (alerts.public_base_url), a "
        "loopback address: no phone can open them, so township teams cannot open or acknowledge their fires from "
        "the message; set STRAWFIRE_ALERTS__PUBLIC_BASE_URL to the dashboard's address as the teams reach it (e.g. "
        "https://strawfire.example.gov.cn)"
    )
    assert codes(Settings(alerts={"public_base_url": "https://strawfire.example.gov.cn"})) == {}
    with transaction(factory) as session:  # a disabled recipient gets no alert
        session.execute(update(Recipient).where(Recipient.id == real).values(active=False))
    assert codes(default) == {}


def test_a_password_in_the_base_url_is_not_shown() -> None:
    problem = status.alert_links_problem(Settings(alerts={"public_base_url": "http://admin:pw-123@localhost"}), 3)
    assert problem is not None
    assert "pw-123" not in problem.message
    assert "pw-123" not in "".join(problem.items)


def _start_log(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """What ``strawfire serve ARGS`` (on a free port) logs until it answers; ``env`` as :func:`tests.test_cli.run`'s."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")} | (env or {})
    with serving(tmp_path, environment, *args) as url:
        port = url.rsplit(":", 1)[1]
    text = (tmp_path / f"serve-{port}.log").read_text()
    assert "listening on" in text, text
    return text.replace(f"port ({port})", "port (PORT)")


def test_the_status_command_and_serve_say_the_links_point_at_loopback(tmp_path: Path) -> None:
    """As an operator meets it: the service served on port 8766 (not the default 8000) with a township's group
    added, the base URL left at its default. ``status`` reports it (exit 1) and ``serve`` warns at its start; with
    STRAWFIRE_ALERTS__PUBLIC_BASE_URL set, neither does."""
    county = write_geojson(tmp_path / "county.json", [feature("220112", "双阳区", square(125.6, 43.5))])
    imported = run("regions", "import", str(county), "--level", "county", "--crs", "wgs84", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    added = run(
        "alerts", "add-recipient", "值班", "--unit", "220112", "--channel", "webhook",
        "--target", "https://example.invalid/h", cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    found = run("status", "--json", cwd=tmp_path, env={"STRAWFIRE_PORT": "8766"})
    assert found.returncode == 1
    [problem] = [p for p in json.loads(found.stdout)["problems"] if p["code"] == "alert_links_unreachable"]
    assert problem["component"] == "alerts.public_base_url"
    assert "a loopback address, not even on this server's port (8766)" in problem["message"]
    text = run("status", cwd=tmp_path)
    assert "problem: the links in the alerts of 1 active recipient(s) point to http://127.0.0.1:8000" in text.stderr

    log = _start_log(tmp_path)
    [warning] = [line for line in log.splitlines() if "alerts.public_base_url" in line]
    assert " WARNING strawfire: the links in the alerts of 1 active recipient(s) point to http://127.0.0.1:8000" in (
        warning
    )
    assert "not even on this server's port (PORT)" in warning
    public = {"STRAWFIRE_ALERTS__PUBLIC_BASE_URL": "https://strawfire.example.gov.cn"}
    assert "alerts.public_base_url" not in _start_log(tmp_path, env=public)
    assert not [
        p for p in json.loads(run("status", "--json", cwd=tmp_path, env=public).stdout)["problems"]
        if p["code"] == "alert_links_unreachable"
    ]  # fmt: skip


def test_make_run_says_nothing_of_loopback_links(tmp_path: Path) -> None:
    """`make run`'s steps (db upgrade, demo load, serve --demo), started twice: the second start finds the DEMO
    inbox's recipients the first made (at the loopback base URL, by design: the demo's alerts are read in the
    dashboard), and neither ``serve`` nor ``status`` calls that a problem."""
    assert run("db", "upgrade", cwd=tmp_path).returncode == 0
    assert run("demo", "load", cwd=tmp_path).returncode == 0
    for _start in range(2):
        assert "alerts.public_base_url" not in _start_log(tmp_path, "--demo")
    found = run("status", "--json", cwd=tmp_path, env={"STRAWFIRE_DEMO": "true"})
    assert "alert_links_unreachable" not in found.stdout, found.stdout
