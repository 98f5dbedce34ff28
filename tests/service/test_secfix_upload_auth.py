"""Upload routes refuse a caller without a valid token before reading the body (an audit's finding: a 200 MB
multipart POST with no Authorization to /api/v1/drone/images was read whole, to /tmp, before its 401)."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.auth.security import create_token, password_stamp
from service.auth.service import create_user, set_active, set_password
from service.config import Settings
from service.db import transaction
from service.incidents.states import Role
from service.main import create_app
from tests.dashboard.live import bound_socket, serving
from tests.service.test_body_limit import run

MB = 1 << 20
PASSWORD = "device-password"


def _answer_to_a_huge_upload(url: str, path: str, size_mb: int, authorization: str | None) -> bytes:
    """The status line a real server answers to a POST of ``size_mb`` of which only the headers and 64 KB are sent
    (b"" when it keeps waiting for the rest)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: multipart/form-data; boundary=xyz",
        f"Content-Length: {size_mb * MB}",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"--xyz\r\n" + b"\xff" * (64 * 1024))
        try:
            return conn.recv(200).split(b"\r\n", 1)[0]
        except TimeoutError:
            return b""


def test_a_real_server_answers_401_to_a_huge_anonymous_upload_without_reading_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    app = create_app(settings)
    with serving(app, bound_socket()) as url:
        forged = create_token("another service's key, long enough to sign", "admin", "admin")
        # Each within its route's limit (the audit's 200 MB drone batch; the satellite and evidence limits' worth).
        uploads = {
            "/api/v1/drone/images": 200,
            "/api/v1/observations/satellite": 100,
            "/api/v1/incidents/1/evidence": 25,
        }
        for path, size_mb in uploads.items():
            for authorization in (None, "Bearer not-a-token", f"Bearer {forged}"):
                status = _answer_to_a_huge_upload(url, path, size_mb, authorization)
                assert status == b"HTTP/1.1 401 Unauthorized", (path, authorization, status)


def _through_the_middleware(app: Any, settings: Settings, authorization: str | None) -> tuple[int | None, bool]:
    """A 1 MB drone upload passed to the app's BodyLimit as the server passes it: (status it answered, whether it let
    the request through). Reading the body fails the test."""
    headers = [(b"content-length", str(MB).encode())]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    sent, reached = run(headers, "/api/v1/drone/images", settings=settings, service=app)
    return (sent[0]["status"] if sent else None), reached


def test_each_kind_of_bad_token_is_refused_before_the_body_and_a_good_one_passes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    app = create_app(settings)
    with TestClient(app):
        secret: str = app.state.token_secret
        with transaction(app.state.session_factory) as session:
            tower = create_user(session, "tower07", PASSWORD, Role.DEVICE, None)
            old_stamp = password_stamp(tower.password_hash)
            create_user(session, "tower08", PASSWORD, Role.DEVICE, None)
            set_active(session, "tower08", False)
        with transaction(app.state.session_factory) as session:
            stamp = password_stamp(set_password(session, "tower07", "a-new-password").password_hash)
        cases = {
            "missing": None,
            "another scheme": "Basic dG93ZXIwNzpkZXZpY2UtcGFzc3dvcmQ=",
            "malformed": "Bearer abc.def",
            "bad signature": "Bearer " + create_token("x" * 48, "tower07", "device", stamp=stamp),
            "expired": "Bearer " + create_token(secret, "tower07", "device", timedelta(seconds=-5), stamp=stamp),
            "issued under the old password": "Bearer " + create_token(secret, "tower07", "device", stamp=old_stamp),
            "disabled user": "Bearer " + create_token(secret, "tower08", "device"),
            "no such user": "Bearer " + create_token(secret, "ghost", "admin"),
        }
        for case, authorization in cases.items():
            assert _through_the_middleware(app, settings, authorization) == (401, False), case
        good = "Bearer " + create_token(secret, "tower07", "device", stamp=stamp)
        assert _through_the_middleware(app, settings, good) == (None, True)
        assert _through_the_middleware(app, settings, good.replace("Bearer", "bearer")) == (None, True)


def test_the_refusal_reads_as_the_routes_own_401(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    with TestClient(create_app(settings)) as client:
        files = {"file": ("a.csv", b"latitude,longitude\n", "text/csv")}
        anonymous = client.post("/api/v1/observations/satellite", files=files)
        assert anonymous.status_code == 401
        assert anonymous.json() == {"detail": "Not authenticated"}
        assert anonymous.headers["www-authenticate"] == "Bearer"
        bad = client.post("/api/v1/observations/satellite", files=files, headers={"Authorization": "Bearer x"})
        assert (bad.status_code, bad.json()) == (401, {"detail": "invalid or expired token"})
        # A small request to any other route is its route's to authenticate (as before).
        assert client.post("/api/v1/incidents/1/transitions", json={"to": "acknowledged"}).status_code == 401
