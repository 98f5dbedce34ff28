"""Failed-login throttling: too many failures for one username, or from one client address, are answered 429.

Why: nothing slowed down password guessing (60 wrong passwords in half a minute, then the right one worked). The
login route asks :meth:`LoginThrottle.attempt` before it checks a password, so a refused attempt costs no argon2
hash (a flood of guesses is not made into a flood of hashing).

Decisions:

- Counted per username as typed (the name the login looks up) and per client address (a password sprayed over
  many names). Defaults: 10 failures for one username, 50 from one address, within 15 minutes (settings
  ``login_max_failures``, ``login_max_failures_per_client``, ``login_window_minutes``). The address limit is
  higher because a township office's phones share one address.
- The window slides: attempts are refused until the oldest of the counted failures is older than the window, and
  the 429 says how long that is (``Retry-After``). A successful login clears its username's failures (the user
  found their password) and takes its own attempt off its address's count, not the address's other failures.
- Every attempt counts as a failure the moment it starts and is taken back when it succeeds: parallel guesses
  cannot all pass the check before the first of them has been counted.
- The client address is the one uvicorn gives the request. Behind a reverse proxy on the same machine (nginx on
  127.0.0.1 or ::1) it is the proxy's ``X-Forwarded-For``, which ``strawfire serve`` trusts from loopback as
  uvicorn does by default. A proxy on another machine must be named in the environment variable
  ``FORWARDED_ALLOW_IPS`` (uvicorn's: comma-separated addresses), or every login seems to come from the proxy and
  ``login_max_failures_per_client`` failures by anyone refuse everyone's logins for the window.
- Kept in this process's memory, which is enough for the single-process service ``strawfire serve`` runs: a
  restart clears the counts (how an administrator lets a locked-out user in before the window ends). Several
  processes behind one address would each keep their own counts. Memory is bounded: each key keeps at most its
  limit of times, and expired keys are swept; past :data:`MAX_KEYS` keys the oldest are dropped.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from service.config import Settings

__all__ = ["MAX_KEYS", "LoginAttempt", "LoginThrottle"]

#: Usernames and addresses tracked at most at once (each holds at most its limit of times).
MAX_KEYS: Final[int] = 100_000
#: How much of a typed username is kept as its key (longer names match no account: usernames have 1–64 characters).
_KEY_CHARS: Final[int] = 128


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One attempt let through :meth:`LoginThrottle.attempt`, counted as a failure until it
    :meth:`~LoginThrottle.succeeded`."""

    username: str
    client: str
    at: float


class LoginThrottle:
    """The counts (module docstring). Thread-safe: the login route runs in the thread pool."""

    def __init__(
        self,
        max_failures: int,
        max_failures_per_client: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.max_failures_per_client = max_failures_per_client
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._by_username: dict[str, deque[float]] = {}
        self._by_client: dict[str, deque[float]] = {}
        self._next_sweep = clock() + window_s

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        """The throttle the settings describe."""
        return cls(
            settings.login_max_failures, settings.login_max_failures_per_client, settings.login_window_minutes * 60
        )

    def attempt(self, username: str, client: str) -> LoginAttempt | int:
        """Let an attempt through (counted as a failure until it succeeds), or the seconds to wait before the next
        one (a whole number, at least 1) when the username or the client address has failed too often."""
        username = username[:_KEY_CHARS]
        with self._lock:
            now = self._clock()
            self._sweep(now)
            waits = [
                self._wait(times, limit, now)
                for times, limit in (
                    (self._by_username.get(username), self.max_failures),
                    (self._by_client.get(client), self.max_failures_per_client),
                )
            ]
            wait = max(waits)
            if wait > 0:
                return max(1, math.ceil(wait))
            self._times(self._by_username, username, self.max_failures).append(now)
            self._times(self._by_client, client, self.max_failures_per_client).append(now)
            return LoginAttempt(username, client, now)

    def succeeded(self, attempt: LoginAttempt) -> None:
        """The attempt logged in: its username's failures are cleared and the attempt is not held against its
        address."""
        with self._lock:
            self._by_username.pop(attempt.username, None)
            times = self._by_client.get(attempt.client)
            if times is not None and attempt.at in times:
                times.remove(attempt.at)

    def _wait(self, times: deque[float] | None, limit: int, now: float) -> float:
        """Seconds until fewer than ``limit`` of ``times`` are within the window (0: now)."""
        if times is None or len(times) < limit:
            return 0.0
        return times[-limit] + self.window_s - now

    def _times(self, table: dict[str, deque[float]], key: str, limit: int) -> deque[float]:
        times = table.get(key)
        if times is None:
            if len(table) >= MAX_KEYS:
                del table[next(iter(table))]  # the key first seen longest ago
            times = table[key] = deque(maxlen=limit)
        return times

    def _sweep(self, now: float) -> None:
        """Drop the keys whose every failure has left the window (once a window at most)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window_s
        for table in (self._by_username, self._by_client):
            for key in [key for key, times in table.items() if not times or times[-1] + self.window_s <= now]:
                del table[key]
