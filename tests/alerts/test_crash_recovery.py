"""kill -9 the running service with alerts pending: after a restart every alert is delivered, none twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import shared_path
from tests.httpserver import http_receiver

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))


def cli(*args: str, cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(
        [STRAWFIRE, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_kill_9_with_pending_alerts_then_restart(tmp_path: Path) -> None:
    boundary = shared_path("boundaries", "220100_full.json")
    firms = shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env |= {"STRAWFIRE_ALERTS__POLL_INTERVAL_S": "0.3"}
    with http_receiver() as receiver:
        receiver.respond = lambda r: (503, {}, b"receiver down")
        cli("regions", "import", str(boundary), "--level", "county", "--crs", "gcj02", cwd=tmp_path, env=env)
        for county in ("220102", "220112", "220113"):
            for n in (1, 2):
                cli(
                    "alerts",
                    "add-recipient",
                    f"{county}-{n}",
                    "--unit",
                    county,
                    "--channel",
                    "webhook",
                    "--target",
                    f"{receiver.url}/{county}/{n}",
                    cwd=tmp_path,
                    env=env,
                )
        summary = cli("firms", "ingest", str(firms), cwd=tmp_path, env=env)
        assert "rows read 484, new 10," in summary  # 9 centred in Changchun + 1 footprint reaching in
        # No pooled connection kept open between looks: the server's restart recovers the database on its own.
        engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}", poolclass=NullPool)

        def alerts_where(condition: str) -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(f"SELECT count(*) FROM alerts WHERE {condition}")).scalar_one())

        with engine.connect() as conn:
            in_changchun = conn.execute(text("SELECT count(*) FROM incidents WHERE county_code IS NOT NULL")).scalar()
        pending = alerts_where("status = 'pending'")
        assert in_changchun
        assert pending == 2 * in_changchun

        # Port 0: one the system picks (the test reaches the service through its database and the receiver only).
        server = subprocess.Popen(
            [STRAWFIRE, "serve", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # The worker has tried (and failed) against the down receiver: killed with attempts on record, whatever
            # the machine's speed (a fixed sleep could end before the server had even started).
            wait_for(lambda: alerts_where("attempts > 0") > 0, 60, "a failed attempt")
        finally:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        assert receiver.received() == []

        receiver.respond = lambda r: (200, {}, b"{}")
        server = subprocess.Popen(
            [STRAWFIRE, "serve", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Retries back off (5 s, 10 s …); allow for it.
            wait_for(lambda: len(receiver.received()) >= pending, 90, "the pending alerts")
            # Every delivery recorded: nothing is left for the worker to send again (a duplicate would come now).
            wait_for(lambda: alerts_where("status = 'pending'") == 0, 60, "the deliveries recorded")
        finally:
            server.send_signal(signal.SIGTERM)
            stopped = server.wait(timeout=30)
        assert stopped == 0  # a clean stop after the restart
        keys = [r.headers["Idempotency-Key"] for r in receiver.received()]
    engine.dispose()
    # Every Changchun incident that day (three counties), alerted to both of its county's recipients.
    assert len(keys) == len(set(keys)), "an alert was delivered twice"
    paths = sorted({r.path.rsplit("/", 1)[0] for r in receiver.received()})
    assert paths == ["/220102", "/220112", "/220113"]
    assert len(keys) == pending
