"""A real HTTP server on 127.0.0.1 for tests: records requests and answers as the test says."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the server has received, and how it should answer (``respond`` may be swapped at any time)."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    respond: Callable[[Recorded], tuple[int, dict[str, str], bytes]] = lambda r: (200, {}, b'{"errcode": 0}')
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests)


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    """Serve on an ephemeral port of 127.0.0.1 for the duration of the block."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            record = Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            status, headers, body = receiver.respond(record)
            if status < 300:
                with receiver.lock:
                    receiver.requests.append(record)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET = _handle  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
