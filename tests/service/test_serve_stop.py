"""`strawfire serve --port 0` says where it listens (its log, `--port-file`), and a requested stop (SIGTERM from
systemd or docker, Ctrl+C) that shuts down gracefully exits with status 0; uvicorn used to end it by raising the
signal again, so SIGTERM's stop read as status -15. A shutdown that does not complete exits 1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import uvicorn

from service.cli import _run_until_stopped, _StopSignals
from service.cli import app as cli_app
from tests.test_cli import STRAWFIRE, run

#: How long a step may take before the test gives up (a safety net: every wait ends on an event long before).
PATIENCE_S = 60.0


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def _answers(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/healthz", timeout=1).json() == {"status": "ok"})
    except httpx.HTTPError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_serve_on_port_0_says_its_port_and_a_stop_signal_ends_it_with_status_0(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """The port the system picked is in the port file and the log's ``listening on`` line, the server answers
    there, and the signal ends it after the app's shutdown with status 0; the port file goes with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env.update(STRAWFIRE_DATA_DIR=str(tmp_path / "var"))
    port_file, log = tmp_path / "run" / "port", tmp_path / "serve.log"
    port_file.parent.mkdir()
    with log.open("w") as output:
        server = subprocess.Popen(
            [STRAWFIRE, "serve", "--no-demo", "--port", "0", "--port-file", str(port_file)], cwd=tmp_path, env=env,
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_for(port_file.exists, server, log)
            port = int(port_file.read_text())
            url = f"http://127.0.0.1:{port}"
            _wait_for(lambda: _answers(url), server, log)
            server.send_signal(stop)
            returncode = server.wait(PATIENCE_S)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    said = log.read_text()
    assert returncode == 0, said
    assert not port_file.exists()  # removed when the server stopped
    assert port > 0
    assert f"INFO strawfire: listening on {url} (press Ctrl+C to quit)" in said, said
    assert "Application shutdown complete" in said, said
    assert "Traceback" not in said, said
    assert not list(port_file.parent.iterdir())  # no partial file left beside it


def test_a_port_file_that_cannot_be_written_stops_serve_before_it_touches_the_database(tmp_path: Path) -> None:
    result = run(
        "serve", "--port", "0", "--port-file", str(tmp_path / "missing" / "port"), cwd=tmp_path,
        env={"STRAWFIRE_DATA_DIR": str(tmp_path / "var")},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"error: --port-file {tmp_path / 'missing' / 'port'}: cannot write it: No such file or directory" in (
        " ".join(result.stderr.split())
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var").exists()


# -- the stop itself, in this process: uvicorn on a socket of its own, an app whose start-up raises the signals ------


def _lifespan_app(on_startup: Callable[[], None], shutdown_fails: bool = False) -> Any:
    """An ASGI app with a start-up and a shutdown and no routes."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                done = "lifespan.shutdown.failed" if shutdown_fails else "lifespan.shutdown.complete"
                await send({"type": done, "message": "the app's shutdown failed" if shutdown_fails else ""})
                return

    return app


@contextmanager
def _guarded_signals() -> Iterator[tuple[Any, Any]]:
    """Handlers of this test's own for SIGINT and SIGTERM (so that one leaking past the server cannot stop the test
    run); yields them, to compare with what is in place after the server ran, and restores pytest's."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    leaked: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        leaked.append(signum)

    def terminate(signum: int, frame: object) -> None:
        leaked.append(signum)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield interrupt, terminate
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert leaked == []


def _serve(app: Any) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    try:
        with _StopSignals() as stop:  # as `strawfire serve` runs it
            stop.server = server
            _run_until_stopped(server, sock)
    finally:
        sock.close()


def test_a_signal_during_start_up_ends_the_run_normally_with_the_handlers_put_back() -> None:
    with _guarded_signals() as (interrupt, terminate):
        _serve(_lifespan_app(lambda: signal.raise_signal(signal.SIGTERM)))
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (interrupt, terminate)


def test_a_failed_app_shutdown_exits_1() -> None:
    with _guarded_signals(), pytest.raises(typer.Exit) as stopped:
        _serve(_lifespan_app(lambda: signal.raise_signal(signal.SIGTERM), shutdown_fails=True))
    assert stopped.value.exit_code == 1


def test_a_second_ctrl_c_cuts_the_shutdown_short_and_exits_1() -> None:
    def twice() -> None:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # uvicorn's "quit now": the app's shutdown is skipped

    with _guarded_signals(), pytest.raises(typer.Exit) as stopped:
        _serve(_lifespan_app(twice))
    assert stopped.value.exit_code == 1


def test_stop_signals_note_a_stop_and_put_back_the_handlers_found() -> None:
    with _guarded_signals() as (interrupt, terminate):
        with _StopSignals() as stop:
            signal.raise_signal(signal.SIGTERM)
            assert stop.requested
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (interrupt, terminate)


def test_a_sigterm_before_the_server_runs_ends_serve_with_status_0_and_no_port_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while `serve` opens the database (migrations may take minutes) used Python's default action: the
    process died with status -15 and left its --port-file behind. Now the stop is noted, the server never runs."""
    from typer.testing import CliRunner

    import service.db

    make_data_dir = service.db.make_data_dir

    def slow_start(path: Path) -> None:
        signal.raise_signal(signal.SIGTERM)  # systemctl stop, while serve is getting ready
        make_data_dir(path)

    monkeypatch.setattr(service.db, "make_data_dir", slow_start)
    for key in [k for k in os.environ if k.startswith("STRAWFIRE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STRAWFIRE_DATA_DIR", str(tmp_path / "var"))
    from service.config import get_settings

    get_settings.cache_clear()
    port_file = tmp_path / "port"
    try:
        with _guarded_signals():
            result = CliRunner().invoke(cli_app, ["serve", "--port", "0", "--port-file", str(port_file)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert not port_file.exists()
