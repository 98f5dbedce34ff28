"""`strawfire serve` on a port another server holds: it stops before its start-up touches anything."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.alerts.channels import ChannelSender, Destination
from service.alerts.tables import Channel, Recipient
from service.db import make_session_factory, open_database
from service.demo_inbox import INBOX_PATH
from tests.alerts.test_channels import message
from tests.service.test_demo_inbox import _login
from tests.serving import serving
from tests.test_cli import run


@pytest.mark.slow
def test_a_demo_serve_on_a_busy_port_leaves_the_running_servers_inbox_alone(tmp_path: Path) -> None:
    """A second `serve --demo` on the running demo server's port exits 3 with one line naming the address, and
    the running server's DEMO recipients keep its inbox's secret: its demo alerts are still delivered."""
    env = {"STRAWFIRE_DATA_DIR": str(tmp_path / "var"), "STRAWFIRE_ALERTS__RUN_WORKER": "false"}
    assert run("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    assert run("demo", "load", cwd=tmp_path, env=env).returncode == 0
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}, **env}
    factory = make_session_factory(open_database(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}"))

    def recipients() -> dict[str, tuple[str, str | None, bool]]:
        with factory() as session:
            return {r.unit_code: (r.target, r.secret, r.active) for r in session.scalars(select(Recipient))}

    with serving(tmp_path, full_env, "--demo") as url:
        port = url.rsplit(":", 1)[1]
        before = recipients()
        started = time.monotonic()
        second = run("serve", "--demo", "--port", port, cwd=tmp_path, env=env)
        took = time.monotonic() - started
        after = recipients()
        # The running server still takes an alert signed as its recipients sign them.
        target, secret, _active = after["DEMO01"]
        with httpx.Client() as client:
            ChannelSender(client).send(Destination(Channel.WEBHOOK, target, secret), [message(1)])
        inbox = httpx.get(f"{url}{INBOX_PATH}", headers=_login(url, "demo-admin"), timeout=10)
    assert second.returncode == 3, second.stderr
    assert f"127.0.0.1:{port}: Address already in use" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert len(before) == 5
    assert after == before
    assert inbox.status_code == 200
    assert [m["incident_id"] for m in inbox.json()] == [1]
    assert took < 30
