"""A real HTTP camera server on 127.0.0.1 for the source tests: MJPEG streams and snapshots that misbehave on cue.

Every served image carries a marker in its top-left corner (16×16-pixel black/white cells: 4 bits of camera index,
8 bits of frame number) so a test can tell, from the pixels alone, which camera and which frame it received.
Each camera follows a script of actions, one per part (or per snapshot request); when the script runs out it
serves good frames:

* ``ok`` — the next frame;
* ``corrupt`` — a part that starts and ends like a JPEG but holds garbage;
* ``truncated`` — the first half of a JPEG (no end-of-image marker);
* ``drop`` — close the connection;
* ``stall:S`` — say nothing for S seconds, connection open;
* ``trickle:S`` — send a part one byte every 50 ms for S seconds (data flows, no frame completes);
* ``error`` — snapshot only: HTTP 503.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

CELL = 16
CAMERA_BITS = 4
FRAME_BITS = 8


def mark(image: np.ndarray, camera: int, number: int) -> np.ndarray:
    """A copy of ``image`` (BGR) with the camera index and frame number written as cells in its top-left corner."""
    out = image.copy()
    bits = [(camera >> i) & 1 for i in range(CAMERA_BITS)] + [(number >> i) & 1 for i in range(FRAME_BITS)]
    for i, bit in enumerate(bits):
        out[0:CELL, i * CELL : (i + 1) * CELL] = 255 if bit else 0
    return out


def read_mark(image: np.ndarray) -> tuple[int, int]:
    """(camera index, frame number mod 256) of a marked image."""
    bits = [int(image[4 : CELL - 4, i * CELL + 4 : (i + 1) * CELL - 4].mean() > 127) for i in range(12)]
    camera = sum(b << i for i, b in enumerate(bits[:CAMERA_BITS]))
    number = sum(b << i for i, b in enumerate(bits[CAMERA_BITS:]))
    return camera, number


@dataclass
class Feed:
    """One camera: its frames, its script, and what it has served."""

    index: int
    frames: Sequence[np.ndarray]
    content_length: bool = True
    fps: float = 40.0
    script: deque[str] = field(default_factory=deque)
    served: int = 0
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def action(self) -> str:
        with self.lock:
            return self.script.popleft() if self.script else "ok"

    def next_jpeg(self) -> bytes:
        with self.lock:
            number = self.served
            self.served += 1
        image = mark(self.frames[number % len(self.frames)], self.index, number % 256)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        return buffer.tobytes()


def garbage_jpeg(size: int = 5000) -> bytes:
    rng = np.random.default_rng(size)
    return b"\xff\xd8" + rng.integers(0, 256, size, dtype=np.uint8).tobytes().replace(b"\xff", b"\x00") + b"\xff\xd9"


@dataclass
class CameraServer:
    url: str
    feeds: list[Feed]

    def mjpeg_url(self, index: int) -> str:
        return f"{self.url}/cam/{index}/mjpeg"

    def snapshot_url(self, index: int) -> str:
        return f"{self.url}/cam/{index}/snapshot"


@contextmanager
def camera_server(feeds: list[Feed]) -> Iterator[CameraServer]:
    """Serve ``feeds`` on an ephemeral port of 127.0.0.1 for the duration of the block."""
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "cam" or not parts[1].isdigit() or int(parts[1]) >= len(feeds):
                self.send_error(404)
                return
            feed = feeds[int(parts[1])]
            with feed.lock:
                feed.connections += 1
            try:
                if parts[2] == "mjpeg":
                    self._mjpeg(feed)
                elif parts[2] == "snapshot":
                    self._snapshot(feed)
                else:
                    self.send_error(404)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _payload(self, feed: Feed, action: str) -> bytes:
            if action == "corrupt":
                return garbage_jpeg()
            jpeg = feed.next_jpeg()
            return jpeg[: len(jpeg) // 2] if action == "truncated" else jpeg

        def _mjpeg(self, feed: Feed) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=strawfireframe")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            while not stopping.is_set():
                action = feed.action()
                if action == "drop":
                    return
                if action.startswith("stall:"):
                    time.sleep(float(action.split(":")[1]))
                    continue
                if action.startswith("trickle:"):
                    end = time.monotonic() + float(action.split(":")[1])
                    self.wfile.write(b"--strawfireframe\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8")
                    while time.monotonic() < end and not stopping.is_set():
                        self.wfile.write(b"\x00")
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                data = self._payload(feed, action)
                head = b"--strawfireframe\r\nContent-Type: image/jpeg\r\n"
                if feed.content_length:
                    head += f"Content-Length: {len(data)}\r\n".encode()
                self.wfile.write(head + b"\r\n" + data + b"\r\n")
                self.wfile.flush()
                time.sleep(1.0 / feed.fps)

        def _snapshot(self, feed: Feed) -> None:
            action = feed.action()
            if action == "drop":
                self.close_connection = True
                return
            if action.startswith("stall:"):
                time.sleep(float(action.split(":")[1]))
                action = "ok"
            if action == "error":
                body = b"busy"
                self.send_response(503)
                self.send_header("Content-Type", "text/plain")
            else:
                body = self._payload(feed, action)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield CameraServer(f"http://127.0.0.1:{server.server_address[1]}", feeds)
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
