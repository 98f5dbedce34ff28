"""A real strawfire server for browser tests: uvicorn in a thread on a free 127.0.0.1 port, embedded SQLite.

It is seeded with the DEMO region (演示县 and its four townships), one user per role and a handful of incidents
made the way production makes them (``service.flows.ingest_observations``), so the browser sees exactly what a
county would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
import uvicorn
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.orm import Session

from service.auth.service import SYSTEM, Principal, create_user
from service.config import Settings
from service.db import transaction
from service.demo import load_demo
from service.flows import ingest_observations
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.incidents.tables import Incident
from service.main import create_app
from service.regions.service import RegionIndexCache

PASSWORD = "correct horse battery"
USERS = {
    "beigang": (Role.PATROL, "DEMO01"),  # 北岗镇 patrol team
    "nantun": (Role.PATROL, "DEMO03"),  # 南屯镇 patrol team
    "sup": (Role.SUPERVISOR, "DEMO00"),  # the county supervisor
    "eval": (Role.EVALUATOR, None),
    "admin": (Role.ADMIN, None),
}
ADMIN = Principal("admin", Role.ADMIN)


@dataclass
class LiveServer:
    """Where the server listens and what it was seeded with."""

    url: str
    app: FastAPI
    incidents: dict[str, int] = field(default_factory=dict)  # scenario name → incident id


def api(live: LiveServer, username: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The JSON answer to a GET of ``path`` (a POST of ``body`` when given) as ``username``, signed in anew."""
    token = httpx.post(f"{live.url}/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    url = f"{live.url}{path}"
    response = httpx.post(url, json=body, headers=headers) if body is not None else httpx.get(url, headers=headers)
    assert response.is_success, response.text
    return response.json()


@contextmanager
def repeat_of(live: LiveServer, again: int, earlier: int) -> Iterator[None]:
    """Incident ``again`` marked as a fire again at the place of ``earlier`` (同一地点再次起火) until the block ends."""
    with transaction(live.app.state.session_factory) as session:
        session.execute(update(Incident).where(Incident.id == again).values(repeat_of_incident_id=earlier))
    try:
        yield
    finally:
        with transaction(live.app.state.session_factory) as session:
            session.execute(update(Incident).where(Incident.id == again).values(repeat_of_incident_id=None))


def _pixel(lon: float, lat: float, half: float = 0.0035) -> shapely.Polygon:
    return shapely.box(lon - half, lat - half, lon + half, lat + half)


def new_fire(live: LiveServer, key: str, lon: float, lat: float, *, township: str) -> int:
    """A new satellite fire at (``lon``, ``lat``), ingested the production way; its incident id, checked to be
    placed in ``township`` (a test's scenario depends on whose fire it is)."""
    pixel = _pixel(lon, lat, 0.003)
    observation = ObservationIn(ObservationKind.SATELLITE, key, datetime.now(UTC), lat, lon, pixel, 0.8)
    with transaction(live.app.state.session_factory) as session:
        (number,) = ingest_observations(
            session, [observation], indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
        ).new_incidents
        assert session.get_one(Incident, number).township_code == township
    return number


def _wedge(tower: tuple[float, float], target: tuple[float, float], spread: float = 0.012) -> shapely.Polygon:
    """A camera's bearing wedge from its tower past the target (a thin triangle is enough here)."""
    (tx, ty), (x, y) = tower, target
    dx, dy = x - tx, y - ty
    far = (tx + 1.4 * dx, ty + 1.4 * dy)
    return shapely.Polygon([tower, (far[0] - spread * dy * 10, far[1] + spread * dx * 10), far, tower]).convex_hull


# A fortnight of handled fires, so the statistics and scores pages have something to draw:
# (days ago, township, kind, lon, lat, [(minutes after notification, state, extra)]).
_TEAM = {
    "DEMO01": Principal("beigang", Role.PATROL, "DEMO01"),
    "DEMO02": Principal("donghe", Role.PATROL, "DEMO02"),
    "DEMO03": Principal("nantun", Role.PATROL, "DEMO03"),
    "DEMO04": Principal("xipo", Role.PATROL, "DEMO04"),
}
SUPERVISOR = Principal("sup", Role.SUPERVISOR, "DEMO00")
S = IncidentState


def _handled(ack: int, on_site: int, out: int, cause: str, area: float) -> list[tuple[int, S, dict[str, object]]]:
    return [
        (ack, S.ACKNOWLEDGED, {}),
        (ack + 2, S.EN_ROUTE, {}),
        (on_site, S.ON_SITE, {}),
        (out, S.EXTINGUISHED, {}),
        (out + 20, S.FEEDBACK, {"feedback": {"cause": cause, "burned_area_m2": area, "responsible_party": "村民"}}),
        (out + 600, S.VERIFIED, {}),
        (out + 660, S.CLOSED, {}),
    ]


HISTORY: list[tuple[float, str, ObservationKind, float, float, list[tuple[int, S, dict[str, object]]]]] = [
    (14, "DEMO04", ObservationKind.CAMERA, 125.54, 44.19, _handled(18, 50, 80, "秸秆焚烧", 2500)),
    (
        12,
        "DEMO02",
        ObservationKind.SATELLITE,
        125.70,
        44.38,
        [(3, S.ACKNOWLEDGED, {}), (30, S.FALSE_ALARM, {"reason": FalseAlarmReason.PERMITTED_BURN})],
    ),
    (10, "DEMO03", ObservationKind.SATELLITE, 125.71, 44.17, _handled(35, 90, 130, "秸秆焚烧", 8000)),
    (8, "DEMO01", ObservationKind.CAMERA, 125.53, 44.37, _handled(12, 40, 65, "秸秆焚烧", 600)),
    (6, "DEMO04", ObservationKind.DRONE, 125.60, 44.22, _handled(9, 25, 45, "焚烧垃圾", 80)),
    (
        5,
        "DEMO03",
        ObservationKind.SATELLITE,
        125.77,
        44.24,
        [(4, S.ACKNOWLEDGED, {}), (35, S.FALSE_ALARM, {"reason": FalseAlarmReason.INDUSTRIAL_HEAT})],
    ),
    (3, "DEMO02", ObservationKind.CAMERA, 125.76, 44.33, _handled(22, 70, 100, "秸秆焚烧", 3200)),
    (2, "DEMO01", ObservationKind.SATELLITE, 125.58, 44.30, _handled(6, 28, 55, "秸秆焚烧", 1200)),
]


class _Clock:
    """The server clock the incident service reads while the scenario is recorded (events carry server time)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _record_history(session: Session, now: datetime, clock: _Clock) -> None:
    for i, (days, code, kind, lon, lat, steps) in enumerate(HISTORY):
        seen = now - timedelta(days=days)
        region = shapely.Point(lon, lat) if kind is ObservationKind.DRONE else _pixel(lon, lat)
        clock.now = seen + timedelta(minutes=2)
        summary = ingest_observations(
            session,
            [ObservationIn(kind, f"history-{i}", seen, lat, lon, region, 0.75)],
            indexes=RegionIndexCache(500),
            settings=Settings(),
            actor=ADMIN,
        )
        incident = session.get_one(Incident, summary.new_incidents[0])
        notified = seen + timedelta(minutes=5)
        clock.now = notified
        incidents.transition(session, incident, S.NOTIFIED, SYSTEM, note="alert delivered", at=notified)
        for after, state, extra in steps:
            clock.now = notified + timedelta(minutes=after)
            actor = SUPERVISOR if state in (S.VERIFIED, S.CLOSED) else _TEAM[code]
            incidents.transition(session, incident, state, actor, at=clock.now, **extra)  # type: ignore[arg-type]
        if steps[-1][1] is S.FALSE_ALARM:
            clock.now += timedelta(hours=2)
            incidents.transition(session, incident, S.CLOSED, SUPERVISOR, at=clock.now)


def seed(app: FastAPI, now: datetime) -> dict[str, int]:
    """Users, a fortnight of handled fires, and today's: 北岗镇 (DEMO01), 南屯镇 (DEMO03), a late one, a drone's."""
    observed = now - timedelta(minutes=3)
    factory = app.state.session_factory
    clock = _Clock(now)
    with pytest.MonkeyPatch.context() as patch, transaction(factory) as session:
        patch.setattr(incidents, "utcnow", clock)
        load_demo(session)
        for name, (role, unit) in USERS.items():
            create_user(session, name, PASSWORD, role, unit)
        _record_history(session, now, clock)
        clock.now = now
        observations = [
            # 北岗镇: a VIIRS pixel and a tower camera's wedge over it fuse into one incident.
            ObservationIn(
                ObservationKind.SATELLITE,
                "viirs-n20-beigang",
                observed,
                44.342,
                125.561,
                _pixel(125.561, 44.342),
                0.55,
                frp_mw=7.4,
                details={"instrument": "VIIRS", "satellite": "N20", "confidence": "n", "scan": 0.39, "track": 0.36},
            ),
            ObservationIn(
                ObservationKind.CAMERA,
                "tower-07-frame-1812",
                observed + timedelta(minutes=1),
                44.343,
                125.562,
                _wedge((125.60, 44.31), (125.562, 44.343)),
                0.7,
                details={"camera": "塔07 <script>alert(1)</script>", "bearing_deg": 318.5, "model": "yolov8n"},
            ),
            # 南屯镇: another township's fire, which the 北岗镇 team must not see.
            ObservationIn(
                ObservationKind.SATELLITE,
                "modis-aqua-nantun",
                observed,
                44.205,
                125.742,
                _pixel(125.742, 44.205, 0.006),
                0.8,
                frp_mw=21.0,
                details={"instrument": "MODIS", "satellite": "Aqua", "confidence": 80},
            ),
            # 东河乡: notified 40 minutes ago and still not acknowledged: late for the supervisor.
            ObservationIn(
                ObservationKind.CAMERA,
                "tower-02-frame-77",
                now - timedelta(minutes=45),
                44.36,
                125.73,
                _wedge((125.78, 44.30), (125.73, 44.36)),
                0.62,
                details={"camera": "塔02", "bearing_deg": 331.0},
            ),
            # 西坡乡: a drone's exact point.
            ObservationIn(
                ObservationKind.DRONE,
                "dji-m30t-0042",
                now - timedelta(minutes=20),
                44.21,
                125.57,
                shapely.Point(125.57, 44.21),
                0.9,
                details={"aircraft": "M30T", "altitude_m": 120.0, "method": "ray"},
            ),
        ]
        summary = ingest_observations(
            session, observations, indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
        )
        by_key = {}
        for incident_id in summary.new_incidents:
            incident = session.get_one(Incident, incident_id)
            key = {"DEMO01": "beigang", "DEMO03": "nantun", "DEMO02": "donghe", "DEMO04": "xipo"}
            by_key[key[incident.township_code or ""]] = incident_id
        late = session.get_one(Incident, by_key["donghe"])
        clock.now = now - timedelta(minutes=40)
        incidents.transition(session, late, S.NOTIFIED, SYSTEM, note="alert delivered", at=clock.now)
    return by_key


def bound_socket() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1, for :func:`serving` (an app that must know its port before it
    starts, as the DEMO inbox's does, is made with it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(app: FastAPI, sock: socket.socket) -> Iterator[str]:
    """Serve ``app`` (its lifespan, workers included) on ``sock`` until the block ends; yields its URL."""
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="live-server")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def live_server(data_dir: Path, *, extra_routers: tuple[object, ...] = ()) -> Iterator[LiveServer]:
    """Serve a seeded app until the block ends."""
    # A routable link address: left at loopback, the seeded real recipients would add a status problem to every page.
    settings = Settings(
        data_dir=data_dir, alerts={"run_worker": False, "public_base_url": "https://strawfire.example.org"}
    )
    app = create_app(settings)
    paths = {getattr(route, "path", None) for route in app.routes}
    for extra in extra_routers:  # routers not (yet) included by create_app
        extra_paths = {getattr(route, "path", None) for route in extra.routes}  # type: ignore[attr-defined]
        if not extra_paths & paths:
            app.include_router(extra)  # type: ignore[arg-type]
    with serving(app, bound_socket()) as url:
        live = LiveServer(url, app)
        live.incidents = seed(app, datetime.now(UTC))
        yield live
