"""A real RTSP server on 127.0.0.1 for the RTSP source tests: Motion-JPEG over RTP (RFC 2435), interleaved in TCP.

No RTSP server package is available here (mediamtx is not in Debian, gst-rtsp-server needs the system Python), and
FFmpeg only plays RTSP. RFC 2435 is small enough to serve from Python: each JPEG's quantisation tables and entropy-
coded scan are cut into RTP packets; the client (OpenCV's FFmpeg backend, exactly what :class:`RtspSource` uses)
rebuilds the JPEG with the standard Huffman tables. Frames are encoded by OpenCV (baseline, standard tables, 4:2:0),
which is what RFC 2435 type 1 carries.

Each camera follows a script per connection, like ``streamserver``: ``ok``, ``drop`` (close the TCP connection),
``stall:S`` (send nothing for S seconds); frames carry the same pixel marker, so the test reads camera and frame
number from the image.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from tests.video.streamserver import Feed, mark

RTP_JPEG = 26
MAX_PAYLOAD = 1400


def jpeg_parts(jpeg: bytes) -> tuple[bytes, bytes, int, int]:
    """(quantisation tables luma+chroma, scan data without EOI, width, height) of a baseline JPEG."""
    tables: dict[int, bytes] = {}
    width = height = 0
    pos = 2
    while pos < len(jpeg):
        assert jpeg[pos] == 0xFF, "not at a marker"
        marker = jpeg[pos + 1]
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        segment = jpeg[pos + 4 : pos + 2 + length]
        if marker == 0xDB:
            at = 0
            while at < len(segment):
                precision, table = segment[at] >> 4, segment[at] & 0x0F
                assert precision == 0, "16-bit tables are not RFC 2435"
                tables[table] = segment[at + 1 : at + 65]
                at += 65
        elif marker == 0xC0:
            height, width = struct.unpack(">HH", segment[1:5])
        elif marker == 0xDA:
            scan = jpeg[pos + 2 + length :]
            assert scan.endswith(b"\xff\xd9")
            return tables[0] + tables[1], scan[:-2], width, height
        pos += 2 + length
    raise AssertionError("no scan in the JPEG")


def rtp_packets(jpeg: bytes, seq: int, timestamp: int, ssrc: int = 0x5EED) -> tuple[list[bytes], int]:
    """The RTP packets of one frame (marker bit on the last) and the next sequence number."""
    tables, scan, width, height = jpeg_parts(jpeg)
    assert width % 8 == 0
    assert height % 8 == 0
    assert width <= 2040
    assert height <= 2040
    packets = []
    offset = 0
    while offset < len(scan):
        header = bytes([0]) + offset.to_bytes(3, "big") + bytes([1, 255, width // 8, height // 8])
        if offset == 0:
            header += bytes([0, 0]) + struct.pack(">H", len(tables)) + tables
        chunk = scan[offset : offset + MAX_PAYLOAD]
        offset += len(chunk)
        last = offset >= len(scan)
        rtp = struct.pack(">BBHII", 0x80, (0x80 if last else 0) | RTP_JPEG, seq & 0xFFFF, timestamp, ssrc)
        packets.append(rtp + header + chunk)
        seq += 1
    return packets, seq


@dataclass
class RtspServer:
    url: str
    feeds: list[Feed]

    def stream_url(self, index: int) -> str:
        return f"{self.url}/cam{index}"


def _read_request(conn: socket.socket, buffer: bytearray) -> tuple[str, dict[str, str]] | None:
    """The next RTSP request (skipping interleaved RTCP frames from the client); None when the client closed."""
    while True:
        while buffer[:1] == b"$":
            if len(buffer) < 4:
                break
            (size,) = struct.unpack(">H", buffer[2:4])
            if len(buffer) < 4 + size:
                break
            del buffer[: 4 + size]
        end = buffer.find(b"\r\n\r\n")
        if end >= 0 and buffer[:1] != b"$":
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[: end + 4]
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(buffer) < length:
                data = conn.recv(65536)
                if not data:
                    return None
                buffer += data
            del buffer[:length]
            return lines[0], headers
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data


def _serve(conn: socket.socket, feed: Feed, base: str, stopping: threading.Event) -> None:
    send_lock = threading.Lock()
    playing = threading.Event()
    closed = threading.Event()

    def send(data: bytes) -> None:
        with send_lock:
            conn.sendall(data)

    def reply(cseq: str, extra: str = "", body: bytes = b"") -> None:
        head = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}"
        if body:
            head += f"Content-Length: {len(body)}\r\n"
        send((head + "\r\n").encode("latin-1") + body)

    def stream() -> None:
        playing.wait()
        seq, started = 1, time.monotonic()
        try:
            while not stopping.is_set() and not closed.is_set():
                action = feed.action()
                if action == "drop":
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if action.startswith("stall:"):
                    time.sleep(float(action.split(":")[1]))
                    continue
                jpeg = feed.next_jpeg()
                timestamp = round((time.monotonic() - started) * 90000) & 0xFFFFFFFF
                packets, seq = rtp_packets(jpeg, seq, timestamp)
                for packet in packets:
                    send(b"$\x00" + struct.pack(">H", len(packet)) + packet)
                time.sleep(1.0 / feed.fps)
        except OSError:
            return

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    buffer = bytearray()
    try:
        while not stopping.is_set():
            request = _read_request(conn, buffer)
            if request is None:
                return
            line, headers = request
            method = line.split(" ", 1)[0]
            cseq = headers.get("cseq", "0")
            if method == "OPTIONS":
                reply(cseq, "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n")
            elif method == "DESCRIBE":
                sdp = (
                    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=strawfire test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                    b"m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\na=control:track0\r\n"
                )
                reply(cseq, f"Content-Base: {base}/\r\nContent-Type: application/sdp\r\n", sdp)
            elif method == "SETUP":
                if "interleaved" not in headers.get("transport", ""):
                    send(f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n".encode())
                    continue
                reply(cseq, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 5EED5EED;timeout=60\r\n")
            elif method == "PLAY":
                reply(cseq, "Session: 5EED5EED\r\nRange: npt=0.000-\r\n")
                playing.set()
            elif method == "TEARDOWN":
                reply(cseq, "Session: 5EED5EED\r\n")
                return
            else:
                reply(cseq, "Session: 5EED5EED\r\n")
    except OSError:
        return
    finally:
        closed.set()
        playing.set()
        conn.close()


@contextmanager
def rtsp_server(feeds: list[Feed]) -> Iterator[RtspServer]:
    """Serve each feed at ``rtsp://127.0.0.1:<port>/cam<i>`` for the duration of the block."""
    stopping = threading.Event()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}"

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=route, args=(conn,), daemon=True).start()

    def route(conn: socket.socket) -> None:
        buffer = bytearray()
        # Peek the first request to learn which camera is asked for; re-inject it for the session handler.
        data = conn.recv(65536)
        buffer += data
        text = bytes(buffer).decode("latin-1")
        path = text.split(" ", 2)[1] if text.count(" ") >= 2 else ""
        name = path.rsplit("/", 2)
        index = next((int(p[3:]) for p in name if p.startswith("cam") and p[3:].isdigit()), -1)
        if not 0 <= index < len(feeds):
            conn.close()
            return
        feed = feeds[index]
        with feed.lock:
            feed.connections += 1
        _serve(_Replay(conn, bytes(buffer)), feed, f"{url}/cam{index}", stopping)  # type: ignore[arg-type]

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield RtspServer(url, feeds)
    finally:
        stopping.set()
        listener.close()
        thread.join(timeout=2)


class _Replay:
    """A socket whose first ``recv`` returns bytes already read from it."""

    def __init__(self, conn: socket.socket, first: bytes) -> None:
        self._conn = conn
        self._first = first

    def recv(self, size: int) -> bytes:
        if self._first:
            data, self._first = self._first[:size], self._first[size:]
            return data
        return self._conn.recv(size)

    def sendall(self, data: bytes) -> None:
        self._conn.sendall(data)

    def shutdown(self, how: int) -> None:
        self._conn.shutdown(how)

    def close(self) -> None:
        self._conn.close()


def rtsp_frames(frames: Sequence[np.ndarray], width: int = 640, height: int = 432) -> list[np.ndarray]:
    """Frames resized to a size RFC 2435 can carry (multiples of 16, at most 2040)."""
    return [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]


__all__ = ["RtspServer", "jpeg_parts", "mark", "rtp_packets", "rtsp_frames", "rtsp_server"]
