"""The FastAPI application factory."""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from functools import lru_cache
from importlib import resources
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service import http_errors
from service.alerts.router import router as alerts_router
from service.alerts.worker import AlertWorker, sender_from
from service.auth.router import router as auth_router
from service.auth.security import load_or_create_secret, verify_password
from service.auth.tables import User
from service.auth.throttle import LoginThrottle
from service.body_limit import BodyLimit, Scope, Send
from service.cameras.router import router as cameras_router
from service.config import MIN_SECRET_KEY_CHARS, Settings, get_settings
from service.dashboard.router import router as dashboard_router
from service.db import make_data_dir, make_session_factory, open_database, transaction
from service.demo import DEMO_LABEL, DEMO_PASSWORD, DEMO_USERS, demo_scenario, load_demo
from service.demo_inbox import (
    DemoInbox,
    inbox_base_url,
    provide_demo_recipients,
    retire_demo_recipients,
    wait_until_listening,
)
from service.demo_inbox import router as demo_inbox_router
from service.deps import RegionIndexesDep, SessionDep
from service.errors import ConfigError
from service.evidence.router import router as evidence_router
from service.firms_poll import FirmsPollWorker
from service.incidents.router import router as incidents_router
from service.regions import service as regions
from service.regions.router import router as regions_router
from service.regions.service import RegionIndexCache
from service.reports.router import router as reports_router
from service.stats.router import router as stats_router
from service.status.router import router as status_router

log = logging.getLogger("strawfire")

#: Where the API documentation pages' scripts, styles and icon are served from (this app, never a CDN).
DOCS_ASSETS_PATH = "/docs/assets"
#: The one address in ReDoc's bundle its page fetches by itself: the "API docs by Redocly" logo, from Redocly's CDN.
REDOC_CDN_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
#: Headers every answer carries unless its route set its own (the dashboard sets a full Content-Security-Policy):
#: a browser never guesses a type other than the one declared (an uploaded photo or a JSON body read as HTML),
#: and no other site frames a page of this one (clickjacking the API docs' Authorize form, or an evidence photo).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)


def token_secret(settings: Settings) -> str:
    """The key that signs API tokens: ``secret_key`` when set (validated by :class:`Settings`), else the one kept
    in ``<data_dir>/secret_key`` (made on first use)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    secret = load_or_create_secret(settings.data_dir)
    if len(secret) < MIN_SECRET_KEY_CHARS:
        raise ConfigError(
            f"{settings.data_dir / 'secret_key'} holds no usable token signing key (under {MIN_SECRET_KEY_CHARS} "
            "characters): delete it to have a new one made (tokens issued so far stop working), or set secret_key"
        )
    return secret


def refuse_public_demo_passwords(factory: sessionmaker[Session]) -> None:
    """Outside DEMO mode, stop when an active DEMO user still has the DEMO password (printed in the README): after
    `make run` on the deployment's database, demo-admin would be an administrator anyone can log in as."""
    names = [name for name, _role, _unit in DEMO_USERS]
    with factory() as session:
        users = session.scalars(select(User).where(User.username.in_(names), User.active.is_(True))).all()
    open_doors = sorted(u.username for u in users if verify_password(u.password_hash, DEMO_PASSWORD))
    if open_doors:
        raise ConfigError(
            f"DEMO users {', '.join(open_doors)} still have the public DEMO password: give each a password "
            "(strawfire users passwd NAME) or disable it (strawfire users disable NAME), or serve with --demo"
        )


def set_up_demo_recipients(
    factory: sessionmaker[Session], settings: Settings, inbox: DemoInbox | None, serving_demo: bool
) -> bool:
    """Point the DEMO units' alert recipients at this server's demo inbox when it serves the DEMO region in demo
    mode, else retire any a demo start left (:mod:`service.demo_inbox`); True when the demo's alerts are delivered
    to this server.

    The inbox's address is where ``strawfire serve`` listens (``settings.host``/``settings.port``, which its
    ``--host``/``--port`` set)."""
    with transaction(factory) as session:
        if settings.demo and serving_demo and inbox is not None:
            recipients = provide_demo_recipients(session, inbox_base_url(settings.host, settings.port), inbox.secret)
            log.info("DEMO alerts are delivered to the demo inbox (%d recipients)", len(recipients))
            return True
        retired, withdrawn = retire_demo_recipients(session)
    if retired or withdrawn:
        log.warning(
            "retired %d DEMO inbox recipient(s) and withdrew %d alert(s) pending for them: %s",
            retired,
            withdrawn,
            "the service runs without --demo" if not settings.demo else "the database holds real regions",
        )
    return False


def _start_when_listening(worker: AlertWorker, settings: Settings, stop: threading.Event) -> None:
    """Start the alert worker once this server accepts connections (or after a while, or never when the app stops
    first): its first pass delivers the demo's alerts to this server (:func:`~service.demo_inbox.wait_until_listening`).
    """
    wait_until_listening(settings.host, settings.port, stop)
    if not stop.is_set():
        worker.start()


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP answer that does not carry them (the API's JSON,
    evidence downloads, ``/``, ``/docs`` and ``/redoc``; ``/app/*`` already sets its own, which are kept)."""

    def __init__(self, app: Callable[[Scope, Any, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _value in headers}
                headers.extend((name, value) for name, value in SECURITY_HEADERS if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the lifespan applies migrations and, with ``settings.demo``, loads the demo."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.detector.second_opinion:
            from service.drone_uploads import shared_detector

            shared_detector(True)  # a model that does not load stops the start, not the first flight's upload
        make_data_dir(settings.data_dir)
        token_secret_value = token_secret(settings)
        engine = open_database(settings.effective_database_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        if not settings.demo:
            try:
                refuse_public_demo_passwords(app.state.session_factory)
            except ConfigError:
                engine.dispose()
                raise
        app.state.region_indexes = RegionIndexCache(settings.regions.tolerance_m)
        app.state.token_secret = token_secret_value
        serving_demo = False
        if settings.demo:  # before the workers start: the FIRMS poller's first poll needs the region
            with transaction(app.state.session_factory) as session:
                serving_demo = load_demo(session)
                if serving_demo:
                    log.info("loaded the generated DEMO region")
        inbox = app.state.demo_inbox = DemoInbox() if settings.demo else None
        demo_alerts_here = set_up_demo_recipients(app.state.session_factory, settings, inbox, serving_demo)
        worker = None
        stop_waiting = threading.Event()
        starter = None
        alert_client = None
        if settings.alerts.run_worker:
            # The alert channels' HTTP client, closed at the end: its open keep-alive connections (to the demo inbox
            # of this very server, say) are not left to the garbage collector.
            alert_client = httpx.Client(timeout=10.0)
            worker = AlertWorker(
                app.state.session_factory, settings.alerts, sender_from(settings.alerts, client=alert_client)
            )
            if demo_alerts_here:
                # The demo's alerts go to this very server, whose socket opens only after this start-up.
                starter = threading.Thread(
                    target=_start_when_listening,
                    args=(worker, settings, stop_waiting),
                    name="strawfire-demo-start",
                    daemon=True,
                )
                starter.start()
            else:
                worker.start()
        firms_worker = None
        if settings.firms.polled_by_service:
            firms_worker = FirmsPollWorker(app.state.session_factory, settings, app.state.region_indexes)
            firms_worker.start()
        yield
        stop_waiting.set()
        if starter is not None:
            starter.join()
        for thread in (worker, firms_worker):
            if thread is not None and thread.ident is not None:  # started (a demo worker may not be yet)
                thread.stop()
        if alert_client is not None:
            alert_client.close()
        engine.dispose()

    app = FastAPI(
        title="strawfire",
        version="0.1.0",
        summary="Straw-burning detection and closed-loop response",
        license_info={"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        lifespan=lifespan,
        # FastAPI's own pages load their scripts from a CDN: blank offline (add_offline_api_docs serves them).
        docs_url=None,
        redoc_url=None,
    )
    add_offline_api_docs(app)
    http_errors.install(app)
    app.state.login_throttle = LoginThrottle.from_settings(settings)  # failed logins, in memory (service.auth.throttle)
    # Before anything reads a body: uploads are limited by size, and an upload route needs a valid token.
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)  # outermost: the BodyLimit's own refusals carry the headers too
    app.include_router(regions_router)
    app.include_router(auth_router)
    app.include_router(incidents_router)
    app.include_router(alerts_router)
    app.include_router(evidence_router)
    app.include_router(stats_router)
    app.include_router(reports_router)
    app.include_router(cameras_router)
    app.include_router(dashboard_router)
    app.include_router(status_router)
    if settings.demo:  # outside demo mode the inbox does not exist (404)
        app.include_router(demo_inbox_router)

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(session: SessionDep, indexes: RegionIndexesDep) -> str:
        return _home_page(session, indexes)

    return app


def add_offline_api_docs(app: FastAPI) -> None:
    """Serve the API documentation pages with every asset from this app: strawfire runs on networks that cannot
    reach a CDN (or Google's fonts), where FastAPI's default pages are blank.

    ``/docs`` is Swagger UI (try requests out, signed in with the Authorize button) and ``/redoc`` ReDoc (read
    only), both kept at FastAPI's usual addresses. Their bundles are the ``fastapi-offline`` package's copies of
    swagger-ui-dist 5 (which renders the OpenAPI 3.1 schema FastAPI writes) and of ReDoc's standalone build, under
    :data:`DOCS_ASSETS_PATH`.

    Neither page reaches outside: ReDoc's bundle is served with its Redocly logo's CDN address emptied
    (:func:`redoc_bundle`; the logo hides itself), and Swagger UI's online validator badge, which sends the schema's
    address to validator.swagger.io from any host but localhost, is turned off (``validatorUrl`` null).
    """
    assert app.openapi_url is not None  # FastAPI's defaults, which create_app keeps
    assert app.swagger_ui_oauth2_redirect_url is not None
    openapi_url, oauth2_redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url

    # Registered before the mount below, which would otherwise answer with the bundle as packaged.
    @app.get(f"{DOCS_ASSETS_PATH}/redoc.standalone.js", include_in_schema=False)
    def redoc_script() -> Response:
        return Response(redoc_bundle(), media_type="text/javascript; charset=utf-8")

    app.mount(DOCS_ASSETS_PATH, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )


@lru_cache(maxsize=1)
def redoc_bundle() -> bytes:
    """``fastapi-offline``'s ReDoc bundle with the Redocly logo's CDN address (:data:`REDOC_CDN_LOGO`) emptied: the
    page fetched it from cdn.redoc.ly at every view, a request out of an intranet. An image with no address fails
    at once, without a request, and ReDoc then hides it."""
    bundle = resources.files("fastapi_offline").joinpath("static", "redoc.standalone.js").read_bytes()
    return bundle.replace(REDOC_CDN_LOGO, b'""')


def _home_page(session: SessionDep, indexes: RegionIndexesDep) -> str:
    rows = regions.list_regions(session)
    units = "".join(
        f"<tr><td>{html.escape(r.level)}</td><td>{html.escape(r.code)}</td><td>{html.escape(r.name)}</td>"
        f"<td>{r.area_ha:,.0f}</td></tr>"
        for r in rows
    )
    scenario = ""
    levels = regions.loaded_levels(session)
    if rows and all(r.code.startswith(DEMO_LABEL) for r in rows) and levels:
        index = indexes.get(session, levels[0])
        points = demo_scenario()
        result = index.assign_points(
            np.array([p.longitude for p in points]),
            np.array([p.latitude for p in points]),
            measure_outside=True,
        )
        lines = []
        for i, p in enumerate(points):
            a = index.describe(result, i)
            lines.append(
                f"<tr><td>{p.observed_at:%Y-%m-%d %H:%M} UTC</td><td>{p.source}</td>"
                f"<td>{p.latitude:.5f}, {p.longitude:.5f}</td><td>{p.confidence:.2f}</td>"
                f"<td>{html.escape(a.name or '—')}</td><td>{a.status.value}</td>"
                f"<td>{0 if a.distance_m is None else a.distance_m:,.0f}</td></tr>"
            )
        scenario = (
            "<h2>DEMO scenario (generated, not real fires)</h2><table><tr><th>time</th><th>source</th>"
            "<th>lat, lon (WGS-84)</th><th>confidence</th><th>township</th><th>status</th><th>distance m</th>"
            "</tr>" + "".join(lines) + "</table>"
        )
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>strawfire</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
        "</style></head><body><h1>strawfire 秸秆焚烧监测</h1>"
        "<p><a href='/app/'>进入控制台 · Open the dashboard</a></p>"
        "<p>API documentation: <a href='/docs'>/docs</a> · <a href='/openapi.json'>/openapi.json</a></p>"
        "<h2>Administrative units</h2><table><tr><th>level</th><th>code</th><th>name</th><th>area ha</th></tr>"
        f"{units}</table>{scenario}</body></html>"
    )
