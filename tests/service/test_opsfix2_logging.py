"""STRAWFIRE_LOG_LEVEL sets strawfire's own log (not only uvicorn's): its level, and lines with time, level and logger
name, from `strawfire serve` and the long-running commands; secrets stay out of it."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from service.alerts.tables import Alert
from service.db import make_session_factory, open_database
from tests.serving import serving
from tests.test_cli import STRAWFIRE, run

#: A log line: date and time, level, logger name, message.
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
TOKEN = "dingtalk-access-token-0123456789"


def _demo_database(tmp_path: Path) -> dict[str, str]:
    env = {"STRAWFIRE_DATA_DIR": str(tmp_path / "var")}
    assert run("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    assert run("demo", "load", cwd=tmp_path, env=env).returncode == 0
    return env


@pytest.mark.slow
def test_serve_logs_strawfires_info_lines_with_time_level_and_name(tmp_path: Path) -> None:
    env = {**_demo_database(tmp_path), "STRAWFIRE_LOG_LEVEL": "INFO", "STRAWFIRE_ALERTS__RUN_WORKER": "false"}
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}, **env}
    with serving(tmp_path, full_env, "--demo") as url:
        pass
    lines = (tmp_path / f"serve-{url.rsplit(':', 1)[1]}.log").read_text().splitlines()
    assert any(LINE.match(line) and " INFO strawfire: DEMO alerts are delivered" in line for line in lines), lines
    # uvicorn's lines too: one format for the whole log.
    assert any(LINE.match(line) and "Application startup complete" in line for line in lines), lines
    assert all(LINE.match(line) for line in lines), lines


def _alert_worker(tmp_path: Path, env: dict[str, str], level: str, attempts: int) -> str:
    """Run `strawfire alerts worker` at ``level`` until every alert was tried ``attempts`` times; its stderr."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}, **env}
    full_env.update(STRAWFIRE_LOG_LEVEL=level, STRAWFIRE_ALERTS__POLL_INTERVAL_S="0.2")
    factory = make_session_factory(open_database(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}"))
    log = tmp_path / f"worker-{level}.log"
    with log.open("w") as output:
        worker = subprocess.Popen([STRAWFIRE, "alerts", "worker"], cwd=tmp_path, env=full_env, stderr=output)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                with factory() as session:
                    tried = session.scalars(select(Alert.attempts)).all()
                if tried and min(tried) >= attempts:
                    break
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    return log.read_text()


@pytest.mark.slow
def test_the_alert_workers_log_follows_the_level_and_keeps_the_token_out(tmp_path: Path) -> None:
    """A township's DingTalk robot that cannot be reached: at DEBUG each failed delivery is a WARNING line of
    strawfire.alerts, the robot's access token in none (nor in any third-party library's line); at ERROR the
    same failures print nothing."""
    env = _demo_database(tmp_path)
    target = f"http://127.0.0.1:9/robot/send?access_token={TOKEN}"  # port 9 (discard): nothing listens
    added = run(
        "alerts", "add-recipient", "东河镇巡查群", "--unit", "DEMO02", "--channel", "dingtalk", "--target", target,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    quiet = _alert_worker(tmp_path, env, "ERROR", attempts=1)
    debug = _alert_worker(tmp_path, env, "DEBUG", attempts=2)
    assert quiet == "", quiet
    failures = [line for line in debug.splitlines() if "to recipient 1 failed" in line]
    assert failures, debug
    assert all(LINE.match(line) and " WARNING strawfire.alerts: alert [" in line for line in failures), failures
    assert TOKEN not in debug
