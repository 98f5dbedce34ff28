"""SIGTERM (systemd's and docker's stop) and SIGINT stop ``strawfire alerts worker`` as ``AlertWorker.stop`` does,
and ``strawfire serve``'s embedded worker with it: real processes on a real SQLite file, alerts sent to a real
receiver on 127.0.0.1 that holds the first request until the test lets it answer.

The looping worker had no handler: SIGTERM killed it wherever it was, in the middle of a send. Now the request under
way finishes and is recorded, no other send starts after the signal (the township's second alert stays pending,
untried, under its lease), and the process logs its stop and exits with status 0. Each step waits for the one
before it (the request arriving, the worker's "stopping" line), never for a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from service.alerts.tables import Alert, AlertStatus
from service.db import make_engine, make_session_factory, transaction, upgrade
from service.demo import load_demo
from tests.alerts.test_outbox import setup
from tests.httpserver import Recorded, http_receiver
from tests.test_cli import STRAWFIRE

pytestmark = pytest.mark.slow

#: How long a step may take before the test gives up (a safety net: every wait ends on an event long before).
PATIENCE_S = 60.0
#: What ``AlertWorker.stop`` logs once no new send can start.
STOPPING = "alert worker stopping: no new send starts"


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``condition()`` holds; fails at once when the process ended meanwhile (the test's point: a killed
    worker), and after :data:`PATIENCE_S`."""
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("command", "stop"),
    [
        (["alerts", "worker"], signal.SIGTERM),
        (["alerts", "worker"], signal.SIGINT),
        (["serve", "--no-demo", "--port", "0"], signal.SIGTERM),  # a port the system picks: none to race for
        (["serve", "--no-demo", "--port", "0"], signal.SIGINT),
    ],
    ids=["worker-sigterm", "worker-sigint", "serve-sigterm", "serve-sigint"],
)
def test_a_stop_signal_lets_the_send_under_way_finish_and_starts_no_other(
    tmp_path: Path, command: list[str], stop: signal.Signals
) -> None:
    """Two new fires of 北岗镇 for its webhook: the first request is held when the signal comes; once the worker
    says it is stopping, the request is let through. It is recorded as delivered, the second alert was never tried
    (pending, 0 attempts), nothing failed, and the process ends cleanly."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    engine = make_engine(f"sqlite:///{data_dir / 'strawfire.sqlite3'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    arrived = threading.Event()
    release = threading.Event()
    requests: list[str] = []  # the Idempotency-Keys of the requests to the township, in the order they came

    def hold_the_first(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        requests.append(request.headers["Idempotency-Key"])
        arrived.set()
        release.wait(PATIENCE_S)
        return 200, {}, b"{}"

    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env.update(STRAWFIRE_DATA_DIR=str(data_dir), STRAWFIRE_ALERTS__POLL_INTERVAL_S="0.2")
    log = tmp_path / "process.log"
    with http_receiver() as receiver:
        receiver.respond = hold_the_first
        incidents, _ = setup(factory, receiver, 2)
        with log.open("w") as output:
            process = subprocess.Popen([STRAWFIRE, *command], cwd=tmp_path, env=env, stderr=output, stdout=output)
            try:
                _wait_for(arrived.is_set, process, log)
                process.send_signal(stop)
                _wait_for(lambda: STOPPING in log.read_text(), process, log)
                release.set()
                returncode = process.wait(PATIENCE_S)
            finally:
                release.set()
                if process.poll() is None:
                    process.kill()
                    process.wait()
    said = log.read_text()
    assert returncode == 0, said
    if command[0] == "serve":  # the app's shutdown, the worker's with it, ran to its end
        assert "Application shutdown complete" in said, said
    else:
        assert f"{stop.name} received: stopping the alert worker" in said, said
    assert "alert worker stopped" in said, said
    assert "Traceback" not in said, said
    first, second = incidents
    assert requests == [f"{first}:1:new"]  # nothing was sent after the signal
    with factory() as session:
        alerts = {a.incident_id: a for a in session.scalars(select(Alert).where(Alert.recipient_id == 1))}
    assert (alerts[first].status, alerts[first].attempts) == (AlertStatus.SENT.value, 1)
    assert (alerts[second].status, alerts[second].attempts) == (AlertStatus.PENDING.value, 0)
    engine.dispose()
