"""Starting the real `strawfire serve` in a test: on a port the system picks, stopped cleanly at the end."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))


@contextmanager
def serving(tmp_path: Path, env: dict[str, str], *args: str) -> Iterator[str]:
    """``strawfire serve ARGS`` on a port the system picks (``--port 0``, read from its ``--port-file``: no other
    process can take it in between) until the block ends; yields its URL once it answers. Its output is in
    ``serve-PORT.log``; the stop at the end (SIGTERM) must be clean: exit status 0."""
    name = uuid.uuid4().hex
    port_file, log = tmp_path / f"serve-{name}.port", tmp_path / f"serve-{name}.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [STRAWFIRE, "serve", *args, "--port", "0", "--port-file", str(port_file)], cwd=tmp_path, env=env,
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists():
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            port = int(port_file.read_text())
            log = log.rename(tmp_path / f"serve-{port}.log")  # still written to; the name the callers read
            url = f"http://127.0.0.1:{port}"
            while True:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            stopped = server.wait(timeout=30)
    assert stopped == 0, log.read_text()
