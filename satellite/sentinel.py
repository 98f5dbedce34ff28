"""Sentinel Hub and Copernicus Data Space Ecosystem: find scenes, compute active-fire masks, return fire points.

Built on sentinelhub-py. The flow for a region and period (project reference ``satellite.md`` §5, item S10):

1. :meth:`SentinelHubClient.search` — Catalog API (STAC) search of Sentinel-2 L1C/L2A, Landsat-8/9 L1 or
   Sentinel-3 SLSTR over a WGS-84 bbox, returning typed :class:`SceneRecord` s (cloud cover filtered in the
   query where the collection has it).
2. :meth:`SentinelHubClient.scan_scene` — one Process API request per scene, on a UTM grid at the rule's native
   resolution (30 m Landsat, 20 m Sentinel-2 SWIR, 1 km SLSTR), with the evalscript of
   :mod:`satellite.evalscripts`: Sentinel Hub computes the per-pixel codes, strawfire runs what needs a
   neighbourhood (the Landsat contextual test) and vectorises the mask with :mod:`satellite.raster`, exactly as
   for a local scene.

Endpoints: Sentinel Hub (``services.sentinel-hub.com``, token at its ``auth/realms/main`` realm) and CDSE
(``sh.dataspace.copernicus.eu``, token at ``identity.dataspace.copernicus.eu``, realm ``CDSE``). Collections are
addressed by their API ids; not every deployment serves every collection, so check its
``/api/v1/catalog/1.0.0/collections`` (in particular whether CDSE serves ``landsat-ot-l1`` to your account).

Secrets: the client secret is a ``SecretStr`` and the ``SHConfig`` built here masks credentials completely in
``repr``/``str`` (sentinelhub-py's own masking shows the last four characters of long values).
``requests_oauthlib`` logs the token request body — client secret included — and the token at DEBUG level; a
logging filter on the loggers that handle credentials replaces them (and any access token) with ``***`` before
any handler sees the record. Every error this module raises is a :class:`~satellite.errors.SentinelHubError`
with a scrubbed one-line message, raised ``from None`` so no chained exception carries the request body.

No call here touches the network until a method of :class:`SentinelHubClient` that needs it runs; building the
configuration, the evalscript, the grid and the request body is pure (see :func:`build_process_request`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import numpy as np
from pydantic import SecretStr
from sentinelhub.api.catalog import SentinelHubCatalog
from sentinelhub.api.process import SentinelHubRequest
from sentinelhub.config import SHConfig
from sentinelhub.constants import CRS, MimeType
from sentinelhub.download.rate_limit import SentinelHubRateLimit
from sentinelhub.download.session import SentinelHubSession
from sentinelhub.geometry import BBox, Geometry
from shapely.geometry.base import BaseGeometry

from satellite.errors import (
    REDACTED,
    SatelliteError,
    SentinelHubAuthError,
    SentinelHubRateLimitError,
    SentinelHubRequestError,
    SentinelHubResponseError,
    redact,
)
from satellite.evalscripts import OUTPUT_BANDS, evalscript
from satellite.raster import FirePoint, PixelFlag, RuleSet, SceneScan, Sensor, Thresholds, scan_codes

if TYPE_CHECKING:
    from sentinelhub.download.sentinelhub_client import SentinelHubDownloadClient

__all__ = [
    "CDSE_BASE_URL",
    "CDSE_TOKEN_URL",
    "DAY_MAX_SOLAR_ZENITH_DEG",
    "MAX_PROCESS_PIXELS",
    "SCENE_TIME_WINDOW",
    "SENTINEL_HUB_BASE_URL",
    "SENTINEL_HUB_TOKEN_URL",
    "Collection",
    "Endpoint",
    "ProcessGrid",
    "SceneDetection",
    "SceneFires",
    "SceneRecord",
    "SentinelHubClient",
    "SentinelHubSettings",
    "build_process_request",
    "parse_scene",
    "process_grid",
    "scrub",
    "sh_config",
    "solar_zenith_deg",
]

LOG = logging.getLogger(__name__)

_OPENID_CONNECT: Final = "protocol/openid-connect/token"

SENTINEL_HUB_BASE_URL: Final = "https://services.sentinel-hub.com"
SENTINEL_HUB_TOKEN_URL: Final = f"{SENTINEL_HUB_BASE_URL}/auth/realms/main/{_OPENID_CONNECT}"
CDSE_BASE_URL: Final = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL: Final = f"https://identity.dataspace.copernicus.eu/auth/realms/CDSE/{_OPENID_CONNECT}"

MAX_PROCESS_PIXELS: Final = 2500
"""The Process API's limit on output width and height (pixels); larger areas must be split."""

SCENE_TIME_WINDOW: Final = timedelta(minutes=1)
"""Half-width of the time range of a per-scene Process request around the catalog's acquisition time: wide enough
for the tiles of one pass (adjacent Landsat scenes of a path are ~24 s apart), far narrower than a revisit."""

DAY_MAX_SOLAR_ZENITH_DEG: Final = 85.0
"""Day/night split for SLSTR's absolute test: the MODIS convention (reference §6.3, marked unverified there)."""


class Endpoint(StrEnum):
    """A Sentinel Hub deployment with its OAuth token endpoint."""

    SENTINEL_HUB = "sentinel-hub"
    CDSE = "cdse"

    @property
    def base_url(self) -> str:
        """Root of the Catalog and Process APIs."""
        return SENTINEL_HUB_BASE_URL if self is Endpoint.SENTINEL_HUB else CDSE_BASE_URL

    @property
    def token_url(self) -> str:
        """The OAuth2 client-credentials token URL."""
        return SENTINEL_HUB_TOKEN_URL if self is Endpoint.SENTINEL_HUB else CDSE_TOKEN_URL


_KNOWN_TOKEN_URLS: Final[dict[str, str]] = {
    SENTINEL_HUB_BASE_URL: SENTINEL_HUB_TOKEN_URL,
    "https://services-uswest2.sentinel-hub.com": SENTINEL_HUB_TOKEN_URL,
    "https://creodias.sentinel-hub.com": SENTINEL_HUB_TOKEN_URL,
    CDSE_BASE_URL: CDSE_TOKEN_URL,
}


@dataclass(frozen=True, slots=True)
class SentinelHubSettings:
    """Explicit connection settings; nothing is read from ``~/.config/sentinelhub`` or ``SH_*`` variables.

    ``client_secret`` is a pydantic ``SecretStr`` (a plain ``str`` is wrapped), so ``repr`` shows ``**********``.
    ``max_attempts``/``retry_sleep_s``: sentinelhub-py retries 5xx and connection errors this many times, sleeping
    ``retry_sleep_s`` then three times longer each time.
    ``rate_limit_attempts``/``rate_limit_budget_s``: how many HTTP 429 (rate limited) answers one call (a catalog
    search, a scene scan) accepts, and how long it may go on trying, before it gives up with
    :class:`~satellite.errors.SentinelHubRateLimitError`; between them it waits as long as the service's
    ``Retry-After`` says (sentinelhub-py's 30 s without one). sentinelhub-py alone retries 429 without end. A wait
    that would end past the budget is not started: the call gives up at once instead of sleeping to fail.
    """

    client_id: str
    client_secret: SecretStr
    base_url: str = CDSE_BASE_URL
    token_url: str = CDSE_TOKEN_URL
    timeout_s: float = 120.0
    max_attempts: int = 3
    retry_sleep_s: float = 5.0
    rate_limit_attempts: int = 4
    rate_limit_budget_s: float = 300.0

    def __post_init__(self) -> None:
        secret: Any = self.client_secret
        if isinstance(secret, str):
            object.__setattr__(self, "client_secret", SecretStr(secret))
        elif not isinstance(secret, SecretStr):
            raise TypeError("client_secret must be a str or pydantic SecretStr")
        if not self.client_id.strip():
            raise SentinelHubRequestError("Sentinel Hub client_id is empty")
        if not self.client_secret.get_secret_value():
            raise SentinelHubRequestError(f"Sentinel Hub client_secret is empty (client {self.client_id!r})")
        for name in ("base_url", "token_url"):
            url = getattr(self, name)
            if not url.startswith(("https://", "http://")):
                raise SentinelHubRequestError(f"Sentinel Hub {name} must be an http(s) URL, not {url[:80]!r}")
            object.__setattr__(self, name, url.rstrip("/"))
        if not (self.timeout_s > 0 and self.max_attempts >= 1 and self.retry_sleep_s >= 0):
            raise SentinelHubRequestError("timeout_s must be > 0, max_attempts >= 1 and retry_sleep_s >= 0")
        if not (self.rate_limit_attempts >= 1 and 0.0 <= self.rate_limit_budget_s < math.inf):  # NaN fails too
            raise SentinelHubRequestError("rate_limit_attempts must be >= 1 and rate_limit_budget_s finite and >= 0")

    @classmethod
    def for_endpoint(
        cls, endpoint: Endpoint | str, *, client_id: str, client_secret: SecretStr | str, **options: Any
    ) -> SentinelHubSettings:
        """Settings for a known deployment (``"cdse"`` or ``"sentinel-hub"``)."""
        ep = Endpoint(endpoint)
        return cls(client_id, _secret(client_secret), ep.base_url, ep.token_url, **options)

    @classmethod
    def for_base_url(
        cls,
        base_url: str,
        *,
        client_id: str,
        client_secret: SecretStr | str,
        token_url: str | None = None,
        **options: Any,
    ) -> SentinelHubSettings:
        """Settings for ``base_url``; the token URL is inferred for the known deployments, else required."""
        base = base_url.rstrip("/")
        url = token_url or _KNOWN_TOKEN_URLS.get(base)
        if url is None:
            raise SentinelHubRequestError(f"no known token URL for {base[:80]!r}; give token_url")
        return cls(client_id, _secret(client_secret), base, url, **options)


def _secret(value: SecretStr | str) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


class _RedactedSHConfig(SHConfig):
    """``SHConfig`` whose ``repr``/``str``/``to_dict()`` mask credentials completely, not all but the last 4."""

    def _mask_credentials(self, value: str) -> str:
        return REDACTED if value else ""


def sh_config(settings: SentinelHubSettings) -> SHConfig:
    """The sentinelhub-py configuration for ``settings``, built from defaults only (no config file, no env)."""
    return _RedactedSHConfig(
        use_defaults=True,
        sh_client_id=settings.client_id,
        sh_client_secret=settings.client_secret.get_secret_value(),
        sh_base_url=settings.base_url,
        sh_token_url=settings.token_url,
        download_timeout_seconds=settings.timeout_s,
        max_download_attempts=settings.max_attempts,
        download_sleep_time=settings.retry_sleep_s,
        # A backstop only: _BoundedRateLimit gives up first (at rate_limit_attempts 429s per call). Should a later
        # sentinelhub-py stop consulting the client's rate_limit object, this still bounds the 429 loop per request.
        max_retries=settings.rate_limit_attempts + 1,
    )


_CREDENTIAL_FIELD: Final = re.compile(
    r"""(?i)\b(client_secret|access_token|refresh_token|id_token)(["']?\s*[:=]\s*["']?)([^"'&\s,;}]+)"""
)
_BEARER: Final = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets, ``client_secret=``/``access_token`` values and bearer tokens masked."""
    text = redact(text, *secrets)
    text = _CREDENTIAL_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class _CredentialScrubber(logging.Filter):
    """Rewrites log records of the credential-handling libraries so no secret or token reaches a handler."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        with self._lock:
            secrets = tuple(self._secrets)
        clean = scrub(message, *secrets)
        if clean != message:
            record.msg = clean
            record.args = ()
        return True


_SCRUBBER: Final = _CredentialScrubber()
_SCRUBBED_LOGGERS: Final = (
    "requests_oauthlib.oauth2_session",
    "sentinelhub.download.session",
    "sentinelhub.download.handlers",
    "sentinelhub.download.client",
    "sentinelhub.download.sentinelhub_client",
    "urllib3.connectionpool",
    __name__,
)


def _install_scrubber(secret: str) -> None:
    _SCRUBBER.add(secret)
    for name in _SCRUBBED_LOGGERS:
        logging.getLogger(name).addFilter(_SCRUBBER)  # a no-op when already there


class _RateLimitExhaustedError(Exception):
    """Internal: a call reached its bound on HTTP 429 answers; :meth:`SentinelHubClient._service_errors` words it.

    Not a ``requests`` exception, so sentinelhub-py's retry decorators let it through instead of retrying.
    """

    def __init__(self, attempts: int) -> None:
        super().__init__(attempts)
        self.attempts = attempts


def _retry_after_ms(headers: Any, default_ms: float) -> float:
    """The wait a 429 asks for, in milliseconds (Sentinel Hub's ``Retry-After`` unit, as sentinelhub-py reads it).

    A missing or unreadable header (an HTTP date from a proxy) means the client's default; sentinelhub-py's own
    ``int()`` of it would raise ``ValueError`` in the middle of its download loop.
    """
    raw = headers.get(SentinelHubRateLimit.RETRY_HEADER) if hasattr(headers, "get") else None
    try:
        value = float(raw) if raw is not None else float(default_ms)
    except (TypeError, ValueError):
        value = float(default_ms)
    return max(0.0, value) if math.isfinite(value) else float(default_ms)


class _BoundedRateLimit(SentinelHubRateLimit):
    """sentinelhub-py's rate-limit bookkeeping for one call, with an end.

    ``SentinelHubDownloadClient`` calls :meth:`update` after every 429 and then sleeps until the next attempt is
    allowed, for as long as the service keeps answering 429. This gives up (raising :class:`_RateLimitExhaustedError`)
    at the ``max_limited``-th 429, or as soon as the wait asked for would end more than ``budget_s`` after the call
    started: sleeping only to give up afterwards helps no one.
    """

    def __init__(self, *, num_processes: int, max_limited: int, budget_s: float) -> None:
        super().__init__(num_processes=num_processes)
        self.max_limited = max_limited
        self.budget_s = budget_s
        self.limited = 0
        self._started = time.monotonic()

    def update(self, headers: dict[str, Any], *, default: float) -> None:
        """Count a 429 and schedule the next attempt, or give up (``default`` in milliseconds, as upstream)."""
        self.limited += 1
        wait_ms = _retry_after_ms(headers, default)
        elapsed_s = time.monotonic() - self._started
        if self.limited >= self.max_limited or elapsed_s + wait_ms / 1000 > self.budget_s:
            raise _RateLimitExhaustedError(self.limited)
        super().update({self.RETRY_HEADER: str(int(wait_ms))}, default=default)


class _RateLimitAwareSession(SentinelHubSession):
    """A 429 from the token endpoint is an HTTP error, not an OAuth error.

    Its JSON body has an ``error`` key, which sentinelhub-py's compliance hook hands to oauthlib, and the rate limit
    came back as "credentials refused". sentinelhub-py does not retry the token request on 429: one answer is all.
    """

    @staticmethod
    def _compliance_hook(response: Any) -> Any:
        if response.status_code == 429:
            response.raise_for_status()
        return SentinelHubSession._compliance_hook(response)


class Collection(StrEnum):
    """Sentinel Hub data collections with fire rules, by their API/catalog id."""

    SENTINEL2_L1C = "sentinel-2-l1c"
    SENTINEL2_L2A = "sentinel-2-l2a"
    LANDSAT_OT_L1 = "landsat-ot-l1"
    SENTINEL3_SLSTR = "sentinel-3-slstr"

    @property
    def ruleset(self) -> RuleSet:
        """The fire rules for this collection's bands."""
        return _COLLECTION_RULES[self]

    @property
    def resolution_m(self) -> float:
        """Native resolution of the fire bands: 30 m OLI, 20 m MSI SWIR, 1 km SLSTR F1/S7."""
        return _COLLECTION_RESOLUTION[self]

    @classmethod
    def parse(cls, text: str | Collection) -> Collection:
        """A collection from its id or a short name (``s2l1c``, ``s2l2a``, ``landsat``, ``slstr``)."""
        if isinstance(text, Collection):
            return text
        norm = text.strip().lower()
        for member in cls:
            if norm in (member.value, member.name.lower()):
                return member
        alias = _COLLECTION_ALIASES.get(norm.replace("-", "").replace("_", ""))
        if alias is None:
            choices = ", ".join(m.value for m in cls)
            raise SentinelHubRequestError(f"unknown collection {text.strip()[:40]!r}; use one of {choices}")
        return alias


_COLLECTION_RULES: Final[dict[Collection, RuleSet]] = {
    Collection.SENTINEL2_L1C: RuleSet.SENTINEL2,
    Collection.SENTINEL2_L2A: RuleSet.SENTINEL2,
    Collection.LANDSAT_OT_L1: RuleSet.LANDSAT,
    Collection.SENTINEL3_SLSTR: RuleSet.SLSTR,
}
_COLLECTION_RESOLUTION: Final[dict[Collection, float]] = {
    Collection.SENTINEL2_L1C: 20.0,
    Collection.SENTINEL2_L2A: 20.0,
    Collection.LANDSAT_OT_L1: 30.0,
    Collection.SENTINEL3_SLSTR: 1000.0,
}
_COLLECTION_ALIASES: Final[dict[str, Collection]] = {
    "s2l1c": Collection.SENTINEL2_L1C,
    "l1c": Collection.SENTINEL2_L1C,
    "s2l2a": Collection.SENTINEL2_L2A,
    "l2a": Collection.SENTINEL2_L2A,
    "landsat": Collection.LANDSAT_OT_L1,
    "landsatotl1": Collection.LANDSAT_OT_L1,
    "landsat8": Collection.LANDSAT_OT_L1,
    "landsat9": Collection.LANDSAT_OT_L1,
    "slstr": Collection.SENTINEL3_SLSTR,
    "sentinel3slstr": Collection.SENTINEL3_SLSTR,
}


@dataclass(frozen=True, slots=True)
class SceneRecord:
    """One catalog item: a scene (Sentinel-2 tile, Landsat scene, SLSTR granule) over the searched area.

    Fields:
        scene_id: the catalog item id.
        collection: the collection it belongs to.
        acquired: sensing time, tz-aware UTC.
        cloud_cover: ``eo:cloud_cover`` in percent, None when absent.
        platform: the ``platform`` property as published (``sentinel-2a``, ``landsat-9``...), None when absent.
        footprint: the item geometry (WGS-84) as a shapely geometry, None when absent.
    """

    scene_id: str
    collection: Collection
    acquired: datetime
    cloud_cover: float | None = None
    platform: str | None = None
    footprint: BaseGeometry | None = field(default=None, repr=False, compare=False)

    @property
    def sensor(self) -> Sensor:
        """The sensor whose rules apply (Landsat 9 when the platform says so, else Landsat 8)."""
        ruleset = self.collection.ruleset
        if ruleset is RuleSet.LANDSAT:
            return Sensor.LANDSAT9 if self.platform and "9" in self.platform else Sensor.LANDSAT8
        return Sensor(ruleset.value)


def parse_scene(feature: Any, collection: Collection) -> SceneRecord:
    """A :class:`SceneRecord` from one STAC feature of a Catalog search; SentinelHubResponseError if malformed."""
    from shapely.geometry import shape

    if not isinstance(feature, dict):
        raise SentinelHubResponseError(f"catalog item is {type(feature).__name__}, not an object")
    scene_id = feature.get("id")
    props = feature.get("properties")
    if not isinstance(scene_id, str) or not scene_id or not isinstance(props, dict):
        raise SentinelHubResponseError("catalog item without an id or properties")
    raw_time = props.get("datetime")
    try:
        acquired = datetime.fromisoformat(str(raw_time))
    except ValueError:
        raise SentinelHubResponseError(f"catalog item {scene_id}: datetime {str(raw_time)[:40]!r} unreadable") from None
    if acquired.tzinfo is None:
        acquired = acquired.replace(tzinfo=UTC)
    cloud = props.get("eo:cloud_cover")
    if cloud is not None and not (isinstance(cloud, int | float) and math.isfinite(cloud)):
        raise SentinelHubResponseError(f"catalog item {scene_id}: eo:cloud_cover {cloud!r} is not a number")
    platform = props.get("platform")
    geometry = feature.get("geometry")
    footprint = None
    if isinstance(geometry, dict):
        try:
            footprint = shape(geometry)
        except (ValueError, TypeError, AttributeError, KeyError):
            raise SentinelHubResponseError(f"catalog item {scene_id}: geometry is not valid GeoJSON") from None
    return SceneRecord(
        scene_id=scene_id,
        collection=collection,
        acquired=acquired.astimezone(UTC),
        cloud_cover=None if cloud is None else float(cloud),
        platform=platform if isinstance(platform, str) else None,
        footprint=footprint,
    )


@dataclass(frozen=True, slots=True)
class SceneFires:
    """Fire points found in one scene by a Process request."""

    scene: SceneRecord
    scan: SceneScan

    def detections(self) -> list[SceneDetection]:
        """Each fire point as a :class:`SceneDetection`, the record screening, clustering and ingest read."""
        return [SceneDetection.of(self.scene, point, self.scan.value_unit) for point in self.scan.fire_points]


_INSTRUMENTS: Final[dict[RuleSet, str]] = {RuleSet.LANDSAT: "OLI", RuleSet.SENTINEL2: "MSI", RuleSet.SLSTR: "SLSTR"}
_M_PER_DEG_LAT: Final = 111_320.0

SINGLE_PIXEL_CONFIDENCE: Final = 0.55
CLUSTER_CONFIDENCE: Final = 0.8
"""Normalised confidence of a scene fire point: the rules publish no per-pixel confidence, so a fire point of one
pixel gets FIRMS's nominal class (0.55, a lone hot pixel is where the rules' false alarms are) and one of two or more
adjacent fire pixels the high class's lower bound (0.8)."""


@dataclass(frozen=True, slots=True)
class SceneDetection:
    """One fire point of a Sentinel-2 / Landsat / SLSTR scene, shaped like a FIRMS hotspot for the service.

    It fits :class:`satellite.clustering.Detection` and what screening reads (``footprint()``, ``scan_km``,
    ``confidence``), so it is screened, clustered and fused like any satellite hotspot.

    Fields:
        key: ``{collection}|{scene id}|{lat}|{lon}`` of the brightest pixel (5 decimals, ~1 m): scanning the same
            scene again gives the same keys, and the service stores each once.
        latitude, longitude: the brightest pixel's centre, the alarm position (as activefires-pp picks the
            highest-FRP pixel of a cluster).
        acq_utc: the scene's acquisition time.
        scan_km, track_km: the side of :meth:`footprint`, the square the fire point lies in.
        instrument: ``OLI``, ``MSI`` or ``SLSTR``; satellite: the catalog's platform (``landsat-9``...).
        centroid_latitude, centroid_longitude, pixel_count, area_m2, max_value, value_unit: from the raster rules.
    """

    key: str
    collection: Collection
    scene_id: str
    acq_utc: datetime
    latitude: float
    longitude: float
    centroid_latitude: float
    centroid_longitude: float
    pixel_count: int
    area_m2: float
    resolution_m: float
    max_value: float
    value_unit: str
    instrument: str
    satellite: str | None
    frp_mw: float | None = None

    @classmethod
    def of(cls, scene: SceneRecord, point: FirePoint, value_unit: str) -> SceneDetection:
        """The detection of ``point`` in ``scene``."""
        coll = scene.collection
        return cls(
            key=f"{coll.value}|{scene.scene_id}|{point.max_latitude:.5f}|{point.max_longitude:.5f}",
            collection=coll,
            scene_id=scene.scene_id,
            acq_utc=scene.acquired,
            latitude=float(point.max_latitude),
            longitude=float(point.max_longitude),
            centroid_latitude=float(point.latitude),
            centroid_longitude=float(point.longitude),
            pixel_count=int(point.pixel_count),
            area_m2=float(point.area_m2),
            resolution_m=coll.resolution_m,
            max_value=float(point.max_value),
            value_unit=value_unit,
            instrument=_INSTRUMENTS[coll.ruleset],
            satellite=scene.platform,
        )

    @property
    def confidence(self) -> float:
        """See :data:`CLUSTER_CONFIDENCE`."""
        return CLUSTER_CONFIDENCE if self.pixel_count > 1 else SINGLE_PIXEL_CONFIDENCE

    @property
    def confidence_raw(self) -> str:
        """What the confidence stands for, for people reading a screening reason."""
        return f"{self.pixel_count} fire pixel(s)"

    @property
    def _half_side_m(self) -> float:
        # Around the brightest pixel: as far as the cluster's centroid, plus half the side of a square of the
        # cluster's area and half a pixel (geolocation), so the square holds the whole cluster in any shape but a
        # long thin one bent away from its brightest pixel.
        dlat_m = (self.centroid_latitude - self.latitude) * _M_PER_DEG_LAT
        dlon_m = (self.centroid_longitude - self.longitude) * _M_PER_DEG_LAT * math.cos(math.radians(self.latitude))
        return math.hypot(dlat_m, dlon_m) + (math.sqrt(self.area_m2) + self.resolution_m) / 2

    @property
    def scan_km(self) -> float:
        """Side of :meth:`footprint`, km."""
        return 2 * self._half_side_m / 1000

    @property
    def track_km(self) -> float:
        """Side of :meth:`footprint`, km (a square)."""
        return self.scan_km

    def footprint(self) -> BaseGeometry:
        """A WGS-84 square around the brightest pixel that holds the fire point's pixels: its uncertainty region."""
        from shapely.geometry import box

        half_lat = self._half_side_m / _M_PER_DEG_LAT
        half_lon = half_lat / max(math.cos(math.radians(self.latitude)), 0.01)
        lon, lat = self.longitude, self.latitude
        return box(lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)


BBoxLike: TypeAlias = tuple[float, float, float, float]
"""(west, south, east, north) in WGS-84 degrees."""

Area: TypeAlias = Sequence[float] | BaseGeometry
"""Where to look: a WGS-84 bbox (west, south, east, north), or a WGS-84 (Multi)Polygon such as a county."""


def _area(area: Area) -> tuple[BBoxLike, BaseGeometry | None]:
    """The bbox of ``area`` and, when it is a polygon, the polygon."""
    if isinstance(area, BaseGeometry):
        if area.is_empty or area.geom_type not in ("Polygon", "MultiPolygon") or not area.is_valid:
            raise SentinelHubRequestError(f"region must be a valid, non-empty (Multi)Polygon, not {area.geom_type}")
        return _check_bbox(area.bounds), area
    return _check_bbox(area), None


def _check_bbox(bbox: Sequence[float]) -> BBoxLike:
    values = tuple(float(v) for v in bbox)
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise SentinelHubRequestError(f"bbox must be four finite numbers west, south, east, north, not {bbox!r}")
    west, south, east, north = values
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise SentinelHubRequestError(f"bbox {values} is not west < east, south < north within WGS-84 bounds")
    return west, south, east, north


def _check_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise SentinelHubRequestError("start and end must be tz-aware (UTC); a naive time is ambiguous")
    if end <= start:
        raise SentinelHubRequestError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    return start.astimezone(UTC), end.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ProcessGrid:
    """The output grid of a Process request: square pixels in the UTM zone of the area's centre.

    ``bounds`` (minx, miny, maxx, maxy, metres) are snapped outwards to multiples of the resolution, so the grid
    covers the whole WGS-84 bbox and repeated requests over one area align pixel for pixel.
    """

    epsg: int
    bounds: tuple[float, float, float, float]
    width: int
    height: int
    resolution_m: float

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Affine coefficients (a, b, c, d, e, f), north up."""
        minx, _, _, maxy = self.bounds
        return (self.resolution_m, 0.0, minx, 0.0, -self.resolution_m, maxy)


def process_grid(area: Area, resolution_m: float) -> ProcessGrid:
    """The UTM grid at ``resolution_m`` covering ``area``; SentinelHubRequestError beyond 2500 pixels a side."""
    (west, south, east, north), _ = _area(area)
    if not (math.isfinite(resolution_m) and resolution_m > 0):
        raise SentinelHubRequestError(f"resolution must be a positive number of metres, not {resolution_m!r}")
    wgs84 = BBox((west, south, east, north), crs=CRS.WGS84)
    utm = CRS.get_utm_from_wgs84(*wgs84.middle)
    min_x, min_y, max_x, max_y = _utm_bounds((west, south, east, north), int(utm.epsg))
    res = resolution_m
    minx, miny = math.floor(min_x / res) * res, math.floor(min_y / res) * res
    maxx, maxy = math.ceil(max_x / res) * res, math.ceil(max_y / res) * res
    width, height = round((maxx - minx) / res), round((maxy - miny) / res)
    if width > MAX_PROCESS_PIXELS or height > MAX_PROCESS_PIXELS:
        raise SentinelHubRequestError(
            f"the area is {width} x {height} pixels at {res:g} m; the Process API allows {MAX_PROCESS_PIXELS} a side: "
            "split the area or coarsen the resolution"
        )
    return ProcessGrid(int(utm.epsg), (minx, miny, maxx, maxy), width, height, res)


_EDGE_SAMPLES: Final = 101
"""Points per bbox edge when projecting it: parallels are curves in UTM, so the corners alone do not bound it."""


def _utm_bounds(bbox: BBoxLike, epsg: int) -> tuple[float, float, float, float]:
    """Bounds in UTM zone ``epsg`` of everything inside the WGS-84 ``bbox``.

    sentinelhub's ``BBox.transform_bounds`` projects only the four corners. In transverse Mercator a parallel bows
    towards the pole on both sides of the central meridian, so a bbox edge that crosses the meridian reaches
    furthest from the pole *on* it, between the corners (about 40 m south of them for 0.6 degrees at 43.5 N). The
    edges are sampled densely, with the central meridian itself included when the bbox spans it; meridians and
    the rest of each parallel are monotonic within a zone, so the extremes are among the samples.
    """
    from pyproj import Transformer

    west, south, east, north = bbox
    zone = epsg % 100
    central_meridian = -183.0 + 6.0 * zone
    lons = np.linspace(west, east, _EDGE_SAMPLES)
    if west < central_meridian < east:
        lons = np.append(lons, central_meridian)
    lats = np.linspace(south, north, _EDGE_SAMPLES)
    edge_lon = np.concatenate([lons, lons, np.full(lats.size, west), np.full(lats.size, east)])
    edge_lat = np.concatenate([np.full(lons.size, south), np.full(lons.size, north), lats, lats])
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(edge_lon, edge_lat)
    return float(np.min(x)), float(np.min(y)), float(np.max(x)), float(np.max(y))


def build_process_request(
    config: SHConfig,
    collection: Collection | str,
    grid: ProcessGrid,
    start: datetime,
    end: datetime,
    *,
    thresholds: Thresholds | None = None,
    daytime: bool = True,
    swir: bool = False,
    max_cloud_cover: float | None = None,
    region: BaseGeometry | None = None,
) -> SentinelHubRequest:
    """The Process API request for a collection, grid and time range; builds the body only (no network).

    With ``region`` (a WGS-84 polygon), the request carries it, projected to the grid's CRS, as its geometry:
    Sentinel Hub then sets ``dataMask`` to 0 outside it, so fires beyond the region's border come back as no data.
    The body is ``request.download_list[0].post_values``. Input data is given as a plain dict rather than through
    a ``DataCollection``, so the request goes to ``config.sh_base_url`` whatever deployment a ``DataCollection``
    would be pinned to (sentinelhub-py pins Landsat to US-West and SLSTR to CREODIAS). Resampling is nearest
    neighbour: interpolating would blend a hot pixel into its neighbours and change what the rules see.
    """
    coll = Collection.parse(collection)
    start_utc, end_utc = _check_period(start, end)
    data_filter: dict[str, Any] = {
        "timeRange": {"from": _iso(start_utc), "to": _iso(end_utc)},
        "mosaickingOrder": "mostRecent",
    }
    if max_cloud_cover is not None:
        data_filter["maxCloudCoverage"] = _check_cloud(max_cloud_cover)
    input_item: dict[str, Any] = {
        "type": coll.value,
        "dataFilter": data_filter,
        "processing": {"upsampling": "NEAREST", "downsampling": "NEAREST"},
    }
    script = evalscript(coll.ruleset, thresholds=thresholds, daytime=daytime, swir=swir)
    utm = CRS(grid.epsg)
    geometry = None
    if region is not None:
        _area(region)
        geometry = Geometry(_to_crs(region, grid.epsg), crs=utm)
    return SentinelHubRequest(
        evalscript=script,
        input_data=[input_item],
        responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
        bbox=BBox(grid.bounds, crs=utm),
        geometry=geometry,
        size=(grid.width, grid.height),
        config=config,
    )


def _to_crs(geometry: BaseGeometry, epsg: int) -> BaseGeometry:
    import shapely
    from pyproj import Transformer

    transformer = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    projected: BaseGeometry = shapely.transform(geometry, project)
    return projected


def _check_cloud(value: float) -> float:
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise SentinelHubRequestError(f"max_cloud_cover is a percentage 0-100, not {value!r}")
    return float(value)


def solar_zenith_deg(moment: datetime, lon: float, lat: float) -> float:
    """Solar zenith angle (degrees) at a place and time: NOAA's general solar position formulas (~0.5 deg).

    Enough to tell a day from a night pass, which is all the SLSTR threshold needs. ``moment`` must be tz-aware:
    ``astimezone`` would read a naive time in the host's zone (Asia/Shanghai on a Changchun server), eight hours
    off, and turn a day pass into a night one.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SentinelHubRequestError("the time for the solar zenith must be tz-aware (UTC); a naive time is ambiguous")
    t = moment.astimezone(UTC)
    hours = t.hour + t.minute / 60 + t.second / 3600
    gamma = 2 * math.pi / 365 * (t.timetuple().tm_yday - 1 + (hours - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    true_solar_min = hours * 60 + eqtime + 4 * lon
    hour_angle = math.radians(true_solar_min / 4 - 180)
    phi = math.radians(lat)
    cos_zenith = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    return math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


class SentinelHubClient:
    """Catalog search and Process API fire scans against one deployment, with one OAuth session.

    The session (token) is fetched on the first call that needs it and refreshed by sentinelhub-py before it
    expires. Thread-safe for concurrent calls. ``repr`` shows the deployment and client id, never the secret.
    """

    def __init__(self, settings: SentinelHubSettings) -> None:
        self.settings = settings
        self._secret = settings.client_secret.get_secret_value()
        _install_scrubber(self._secret)
        self._config = sh_config(settings)
        self._session: SentinelHubSession | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentinelHubClient(base_url={self.settings.base_url!r}, client_id={self.settings.client_id!r})"

    @property
    def config(self) -> SHConfig:
        """The sentinelhub-py configuration (credentials masked in its repr)."""
        return self._config

    def search(
        self,
        collection: Collection | str,
        area: Area,
        start: datetime,
        end: datetime,
        *,
        max_cloud_cover: float | None = None,
        limit: int = 100,
    ) -> list[SceneRecord]:
        """Catalog search: every scene of ``collection`` intersecting ``area`` in [start, end], oldest first.

        A bbox is sent as ``bbox``, a polygon as ``intersects``. ``max_cloud_cover`` (percent) becomes the CQL2
        filter ``eo:cloud_cover <= N``. ``limit`` is the page size; all pages are fetched.
        """
        coll = Collection.parse(collection)
        (west, south, east, north), region = _area(area)
        start_utc, end_utc = _check_period(start, end)
        if not 1 <= limit <= 100:
            raise SentinelHubRequestError(f"limit must be 1-100 (the Catalog API's page size), not {limit}")
        query_filter = None
        if max_cloud_cover is not None:
            query_filter = f"eo:cloud_cover <= {_check_cloud(max_cloud_cover):g}"
        catalog = SentinelHubCatalog(config=self._config)
        catalog.client = self._download_client()
        with self._service_errors(f"catalog search of {coll.value}"):
            features = list(
                catalog.search(
                    coll.value,
                    time=(start_utc, end_utc),
                    bbox=None if region is not None else BBox((west, south, east, north), crs=CRS.WGS84),
                    geometry=None if region is None else Geometry(region, crs=CRS.WGS84),
                    filter=query_filter,
                    limit=limit,
                )
            )
        scenes = sorted((parse_scene(f, coll) for f in features), key=lambda s: (s.acquired, s.scene_id))
        LOG.info("catalog search of %s found %d scene(s)", coll.value, len(scenes))
        return scenes

    def scan_scene(
        self,
        scene: SceneRecord,
        area: Area,
        *,
        resolution_m: float | None = None,
        thresholds: Thresholds | None = None,
        daytime: bool | None = None,
        swir: bool = False,
    ) -> SceneFires:
        """Fire points of one scene over ``area``: a Process request around the scene's time, then raster rules.

        Over a polygon, pixels outside it are no data. ``daytime`` only matters for SLSTR; None decides it from
        the solar zenith angle at the area's bbox centre at acquisition (day below
        :data:`DAY_MAX_SOLAR_ZENITH_DEG`). ``swir`` adds SLSTR's daytime SWIR rule.
        """
        coll = scene.collection
        (west, south, east, north), region = _area(area)
        grid = process_grid(area, resolution_m or coll.resolution_m)
        if daytime is None:
            zenith = solar_zenith_deg(scene.acquired, (west + east) / 2, (south + north) / 2)
            daytime = zenith < DAY_MAX_SOLAR_ZENITH_DEG
        request = build_process_request(
            self._config,
            coll,
            grid,
            scene.acquired - SCENE_TIME_WINDOW,
            scene.acquired + SCENE_TIME_WINDOW,
            thresholds=thresholds,
            daytime=daytime,
            swir=swir,
            region=region,
        )
        client = self._download_client()
        with self._service_errors(f"process request for {scene.scene_id}"):
            responses = client.download(request.download_list, max_threads=1, decode_data=False)
        content = getattr(responses[0], "content", None) if responses else None
        if not isinstance(content, bytes | bytearray) or not content:
            raise SentinelHubResponseError(f"process request for {scene.scene_id}: empty response")
        codes, value, aux = _decode_response(bytes(content), coll.ruleset, grid, scene.scene_id)
        scan = scan_codes(
            scene.sensor,
            codes,
            value,
            aux=aux,
            transform=grid.transform,
            crs=f"EPSG:{grid.epsg}",
            thresholds=thresholds,
            daytime=daytime,
            swir=swir,
            source_name=scene.scene_id,
        )
        LOG.info(
            "scene %s: %d fire point(s), %d fire pixel(s)", scene.scene_id, len(scan.fire_points), scan.fire_pixels
        )
        return SceneFires(scene, scan)

    def scan_period(
        self,
        collection: Collection | str,
        area: Area,
        start: datetime,
        end: datetime,
        *,
        max_cloud_cover: float | None = None,
        resolution_m: float | None = None,
        thresholds: Thresholds | None = None,
        swir: bool = False,
    ) -> list[SceneFires]:
        """Search the period, then scan every scene found (oldest first)."""
        scenes = self.search(collection, area, start, end, max_cloud_cover=max_cloud_cover)
        return [
            self.scan_scene(scene, area, resolution_m=resolution_m, thresholds=thresholds, swir=swir)
            for scene in scenes
        ]

    def _download_client(self) -> SentinelHubDownloadClient:
        from sentinelhub.download.sentinelhub_client import SentinelHubDownloadClient

        client = SentinelHubDownloadClient(config=self._config, session=self._get_session())
        client.rate_limit = _BoundedRateLimit(
            num_processes=self._config.number_of_download_processes,
            max_limited=self.settings.rate_limit_attempts,
            budget_s=self.settings.rate_limit_budget_s,
        )
        return client

    def _get_session(self) -> SentinelHubSession:
        with self._lock:
            if self._session is None:
                with self._service_errors(f"OAuth token request to {self.settings.token_url}", auth=True):
                    self._session = _RateLimitAwareSession(config=self._config)
            return self._session

    @contextmanager
    def _service_errors(self, what: str, *, auth: bool = False) -> Iterator[None]:
        """Turn library and HTTP failures into scrubbed, one-line SentinelHubError subclasses."""
        import requests
        from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
        from sentinelhub.exceptions import BaseSentinelHubException, DownloadFailedException, OutOfRequestsException

        started = time.monotonic()
        try:
            yield
        except SatelliteError:
            raise
        except _RateLimitExhaustedError as exc:
            raise self._rate_limited(what, exc.attempts, started) from None
        except OutOfRequestsException:  # sentinelhub-py's own per-request bound (max_retries), the backstop
            raise self._rate_limited(what, self.settings.rate_limit_attempts + 1, started) from None
        except InsecureTransportError:
            raise SentinelHubAuthError(f"{what}: the token URL must use https") from None
        except OAuth2Error as exc:
            detail = self._scrub(f"{exc.error}: {exc.description or ''}".strip(": "))
            raise SentinelHubAuthError(
                f"{what}: credentials of client {self.settings.client_id!r} refused ({detail})"
            ) from None
        except DownloadFailedException as exc:
            status, detail = _http_failure(exc)
            message = self._scrub(f"{what}: {detail}")
            if auth:
                raise SentinelHubAuthError(message) from None
            raise SentinelHubResponseError(message, status=status) from None
        except requests.RequestException as exc:
            response = getattr(exc, "response", None)
            status = getattr(response, "status_code", None)
            if status == 429:  # the token endpoint: sentinelhub-py does not retry it, one answer is all there is
                raise self._rate_limited(what, 1, started) from None
            message = self._scrub(f"{what}: {type(exc).__name__}: {_one_line(str(exc))}")
            if auth:
                raise SentinelHubAuthError(message) from None
            raise SentinelHubResponseError(message, status=status) from None
        except (BaseSentinelHubException, KeyError, TypeError, ValueError) as exc:
            message = self._scrub(f"{what}: unexpected response ({type(exc).__name__}: {_one_line(str(exc))})")
            if auth:
                raise SentinelHubAuthError(message) from None
            raise SentinelHubResponseError(message) from None

    def _rate_limited(self, what: str, attempts: int, started: float) -> SentinelHubRateLimitError:
        elapsed_s = time.monotonic() - started
        plural = "s" if attempts != 1 else ""
        message = self._scrub(
            f"{what}: rate limited by {self.settings.base_url} (HTTP 429); gave up after {attempts} rate-limited "
            f"attempt{plural} in {elapsed_s:.1f} s (bounds: {self.settings.rate_limit_attempts} attempts, "
            f"{self.settings.rate_limit_budget_s:g} s)"
        )
        LOG.warning("%s", message)
        return SentinelHubRateLimitError(message, attempts=attempts, elapsed_s=elapsed_s)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secret)


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _http_failure(exc: Any) -> tuple[int | None, str]:
    from sentinelhub.decoding import decode_sentinelhub_err_msg

    cause = getattr(exc, "request_exception", None)
    response = getattr(cause, "response", None)
    status = getattr(response, "status_code", None)
    if response is None:
        return None, f"{type(cause).__name__ if cause else 'download failed'}: {_one_line(str(cause or exc))}"
    url = getattr(response, "url", "") or ""
    try:
        server = decode_sentinelhub_err_msg(response)
    except (ValueError, TypeError):
        server = ""
    if not isinstance(server, str):
        server = json.dumps(server)
    return status, _one_line(f"HTTP {status} from {url}: {server}")


_MAX_CODE: Final = sum(flag.value for flag in PixelFlag)


def _decode_response(
    content: bytes, ruleset: RuleSet, grid: ProcessGrid, scene_id: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Codes, value band and (Landsat) rho5 from the evalscript's FLOAT32 TIFF."""
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.io import MemoryFile

    expected = len(OUTPUT_BANDS[ruleset])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with MemoryFile(content) as memory, memory.open() as dataset:
                data = dataset.read()
    except (RasterioError, OSError) as exc:
        raise SentinelHubResponseError(
            f"process response for {scene_id} is not a readable TIFF: {_one_line(str(exc), 120)}"
        ) from None
    if data.shape != (expected, grid.height, grid.width):
        raise SentinelHubResponseError(
            f"process response for {scene_id} has shape {data.shape}, expected {(expected, grid.height, grid.width)}"
        )
    raw = np.asarray(data[0], dtype=np.float64)
    nodata = ~np.isfinite(raw)
    filled = np.where(nodata, float(PixelFlag.NODATA), raw)
    if (filled != np.round(filled)).any() or filled.min() < 0 or filled.max() > _MAX_CODE:
        raise SentinelHubResponseError(f"process response for {scene_id}: band 1 does not hold pixel codes")
    codes = filled.astype(np.uint8)
    value = np.asarray(data[1], dtype=np.float32)
    aux = np.asarray(data[2], dtype=np.float32) if expected == 3 else None
    return codes, value, aux
