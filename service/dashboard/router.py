"""Serve the web dashboard: the page shell, its static assets and the little configuration it needs.

The dashboard is a single-page app under ``/app/`` written in plain JavaScript modules, CSS and inline SVG, with
no build step and nothing fetched from outside the service (no CDN, fonts or map tiles): a government intranet
has no Internet. It talks to the ordinary JSON API with a bearer token kept in the browser's ``sessionStorage``,
so the pages themselves carry no data and need no authentication; routes inside the app live in the URL
fragment (``/app/#/incident/12``), which the server never sees.

Every response carries a strict Content-Security-Policy: scripts, styles and connections only from this origin,
images also from ``blob:`` (evidence photos are fetched with the token and shown from object URLs), no framing,
no plugins. The app never builds HTML from strings, so API text cannot become markup.

Assets are package data (``service/dashboard/static/*``), read once and served with a strong ETag so phones on
slow township links revalidate instead of downloading again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, status
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from service.deps import Reader, SettingsDep

__all__ = ["CSP", "router"]

# default-src 'self' covers scripts, styles, fonts and fetch(); img-src adds blob: for the evidence thumbnails.
CSP = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Flat folder, plain names: nothing a request supplies can walk out of it.
_ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(?:html|js|css|svg)$")
# How often the map and queue re-read incidents; short enough for a fire, long enough for a 2G township link.
POLL_INTERVAL_S = 15

router = APIRouter(include_in_schema=False, tags=["dashboard"])


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, ready to send."""

    body: bytes
    media_type: str
    etag: str


@lru_cache(maxsize=64)
def load_asset(name: str) -> Asset | None:
    """The packaged file ``static/<name>``, or None when there is no such asset."""
    if not _ASSET_NAME.match(name):
        return None
    path = resources.files("service.dashboard").joinpath("static", name)
    if not path.is_file():
        return None
    body = path.read_bytes()
    suffix = name[name.rindex(".") :]
    return Asset(body, _MEDIA_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _send(asset: Asset, if_none_match: str | None) -> Response:
    headers = {**_SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if if_none_match is not None and asset.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


IfNoneMatch = Annotated[str | None, Header()]


@router.api_route("/app", methods=["GET", "HEAD"])
def app_redirect() -> RedirectResponse:
    """``/app`` → ``/app/`` so that the page's relative asset URLs resolve."""
    return RedirectResponse("/app/", status_code=status.HTTP_308_PERMANENT_REDIRECT)


@router.api_route("/app/", methods=["GET", "HEAD"])
def app_page(if_none_match: IfNoneMatch = None) -> Response:
    """The single page; the app decides what to show from the URL fragment and the stored token."""
    asset = load_asset("index.html")
    if asset is None:  # a broken installation (package data left out), not a client error
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "the dashboard files are not installed")
    return _send(asset, if_none_match)


@router.api_route("/app/static/{name}", methods=["GET", "HEAD"])
def app_asset(name: str, if_none_match: IfNoneMatch = None) -> Response:
    """A script, stylesheet or icon of the dashboard."""
    asset = load_asset(name)
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard file {name!r}")
    return _send(asset, if_none_match)


class DeadlinesOut(BaseModel):
    """Response deadlines in minutes (the ones the escalation timer enforces)."""

    acknowledge_min: float
    on_site_min: float


class DashboardConfig(BaseModel):
    """What the app needs to know about this deployment beyond the API itself."""

    poll_interval_s: int
    deadlines: DeadlinesOut
    # Per-county overrides, keyed by county code.
    county_deadlines: dict[str, DeadlinesOut]
    # The largest evidence photo the server takes: the app refuses a larger one before a long upload.
    max_upload_mb: float
    # Served with --demo: the app offers the DEMO inbox page (service.demo_inbox), where the demo's alerts arrive.
    demo: bool = False


@router.get("/app/config.json")
def app_config(principal: Reader, settings: SettingsDep, response: Response) -> DashboardConfig:
    """Deadlines (to highlight late incidents as the escalation timer would), the polling interval, the photo
    size limit and whether the server runs the demo."""
    alerts = settings.alerts
    response.headers.update({**_SECURITY_HEADERS, "Cache-Control": "no-store"})
    return DashboardConfig(
        poll_interval_s=POLL_INTERVAL_S,
        deadlines=DeadlinesOut(
            acknowledge_min=alerts.deadlines.acknowledge_min, on_site_min=alerts.deadlines.on_site_min
        ),
        county_deadlines={
            code: DeadlinesOut(acknowledge_min=d.acknowledge_min, on_site_min=d.on_site_min)
            for code, d in alerts.county_deadlines.items()
        },
        max_upload_mb=settings.evidence.max_upload_mb,
        demo=settings.demo,
    )
