"""A platform's sliding-window request limit, for the stand-in servers on 127.0.0.1 (tests.httpserver)."""

from __future__ import annotations

import threading
import time
from collections import deque

from tests.httpserver import Recorded


class SlidingWindow:
    """Answers like a platform that takes at most `limit` requests per `window_s` seconds: `ok` while under it,
    `refusal` beyond it (each refusal's time kept in `refused`)."""

    def __init__(self, limit: int, window_s: float, *, ok: bytes, refusal: bytes) -> None:
        self.limit = limit
        self.window_s = window_s
        self.ok = ok
        self.refusal = refusal
        self.arrivals: deque[float] = deque()
        self.refused: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            now = time.monotonic()
            while self.arrivals and now - self.arrivals[0] >= self.window_s:
                self.arrivals.popleft()
            if len(self.arrivals) >= self.limit:
                self.refused.append(now)
                return 200, {}, self.refusal
            self.arrivals.append(now)
        return 200, {}, self.ok
