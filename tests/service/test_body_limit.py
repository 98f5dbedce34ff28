"""Request bodies refused by declared size before anything reads them (and before authentication)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.body_limit import DEFAULT_LIMIT, BodyLimit, body_limit_for
from service.config import Settings
from service.main import create_app

MB = 1 << 20


def test_each_upload_route_takes_its_own_limit() -> None:
    settings = Settings(evidence={"max_upload_mb": 25}, incidents={"max_upload_mb": 100})
    assert body_limit_for("/api/v1/observations/satellite", settings) == 101 * MB
    assert body_limit_for("/api/v1/incidents/12/evidence", settings) == 26 * MB
    assert body_limit_for("/api/v1/observations/camera/", settings) == 26 * MB
    assert body_limit_for("/api/v1/drone/images", settings) == 50 * 25 * MB + MB
    assert body_limit_for("/api/v1/incidents/12/transitions", settings) == DEFAULT_LIMIT


def run(
    headers: list[tuple[bytes, bytes]],
    path: str = "/api/v1/incidents/1/evidence",
    *,
    settings: Settings | None = None,
    service: Any = None,
) -> tuple[list[Any], bool]:
    """The middleware in front of an app that records whether it was reached; (messages sent, reached).
    ``service``: the application the request is for (``scope["app"]``: its state holds the token secret and the
    database the token check reads)."""
    sent: list[Any] = []
    reached = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal reached
        reached = True

    async def receive() -> Any:
        raise AssertionError("the body was read")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    if service is not None:
        scope["app"] = service
    asyncio.run(BodyLimit(app, settings or Settings())(scope, receive, send))
    return sent, reached


def test_refused_by_its_declared_size_without_reading_it() -> None:
    sent, reached = run([(b"content-length", str(60 * MB).encode())])
    assert not reached
    assert sent[0]["status"] == 413
    assert b"over this route's 26 MB" in sent[1]["body"]
    sent, reached = run([(b"transfer-encoding", b"chunked")])  # an upload that hides its size
    assert (sent[0]["status"], reached) == (411, False)
    sent, reached = run([(b"content-length", b"many")])
    assert (sent[0]["status"], reached) == (400, False)
    _, reached = run([(b"content-length", str(MB).encode())])
    assert reached
    sent, reached = run([(b"transfer-encoding", b"chunked")], path="/api/v1/incidents/1/transitions")
    assert (sent[0]["status"], reached) == (411, False)  # no request of this API needs a body of unknown size
    for spelling in ("+1", "1_0", " 1"):
        sent, reached = run([(b"content-length", str(60 * MB).encode())], path=f"/api/v1/incidents/{spelling}/evidence")
        assert (sent[0]["status"], reached) == (413, False), spelling  # the id's other spellings reach the route


def test_an_oversized_upload_is_refused_before_authentication(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "var", evidence={"max_upload_mb": 0.05}))
    with TestClient(app) as client:
        big = client.post("/api/v1/incidents/1/evidence", files={"file": ("big.jpg", b"\xff" * (2 * MB), "image/jpeg")})
        assert big.status_code == 413  # no token: a body this size never reaches authentication
        for spelling in ("+1", "1_0", "%201"):
            other = client.post(
                f"/api/v1/incidents/{spelling}/evidence", files={"file": ("big.jpg", b"\xff" * (2 * MB), "image/jpeg")}
            )
            assert other.status_code == 413, spelling
        small = client.post("/api/v1/incidents/1/evidence", files={"file": ("small.jpg", b"\xff" * 100, "image/jpeg")})
        assert small.status_code == 401
