"""A server that takes a request and never answers: the dashboard's API calls give up after their time limit with
the "no connection" error the forms word as "未提交：网络不通…" (keeping what was typed), instead of leaving the
button disabled for ever. The dashboard's own api.js under Node, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.httpserver import Recorded, http_receiver

SCRIPT = """
globalThis.sessionStorage = { getItem: () => null, setItem: () => {}, removeItem: () => {} };
globalThis.window = { location: { origin: INPUT.origin } };
const api = await import(`${STATIC_URL}/api.js`);
const outcome = async (call) => {
  const started = Date.now();
  try {
    await call();
    return { answered: true, ms: Date.now() - started };
  } catch (error) {
    return { name: error.constructor.name, status: error.status, timedOut: error.timedOut, ms: Date.now() - started };
  }
};
console.log(JSON.stringify({
  get: await outcome(() => api.api("/api/v1/incidents", { timeoutMs: INPUT.ms })),
  post: await outcome(() => api.api("/api/v1/observations/patrol", { json: { note: "x" }, timeoutMs: INPUT.ms })),
  login: await outcome(() => api.login("beigang", "secret", { timeoutMs: INPUT.ms })),
  limits: [api.REQUEST_TIMEOUT_MS, api.UPLOAD_TIMEOUT_MS, api.DOWNLOAD_TIMEOUT_MS],
}));
"""


def test_a_request_to_a_server_that_never_answers_gives_up(in_node: Callable[[str, object], Any]) -> None:
    release = threading.Event()

    def hang(_: Recorded) -> tuple[int, dict[str, str], bytes]:
        release.wait(10)  # the server took the request and is stuck (SIGSTOPped, a dead upstream…)
        return 200, {"Content-Type": "application/json"}, b"[]"

    with http_receiver() as server:
        server.respond = hang
        started = time.monotonic()
        try:
            out = in_node(SCRIPT, {"origin": server.url, "ms": 400})
        finally:
            release.set()
    assert time.monotonic() - started < 20
    for call in ("get", "post", "login"):
        assert out[call]["name"] == "NetworkError", out
        assert out[call]["status"] == 0
        assert out[call]["timedOut"] is True
        assert 300 <= out[call]["ms"] < 5000
    request, upload, download = out["limits"]
    assert 10_000 <= request <= 30_000  # a JSON call: long for a 2G link's answer, short for a person waiting
    assert upload > request
    assert download > request
