"""Settings: environment variables ``STRAWFIRE_*`` and an optional TOML file, strictly validated.

Precedence, highest first:

1. values passed to ``Settings(...)`` in code (tests);
2. environment variables ``STRAWFIRE_<FIELD>`` (for example ``STRAWFIRE_DATABASE_URL``; nested tables with
   ``__``, e.g. ``STRAWFIRE_REGIONS__TOLERANCE_M``);
3. the TOML file named by ``STRAWFIRE_CONFIG``, else ``./strawfire.toml`` when it exists;
4. the defaults below.

Unknown keys are errors (a typo in a TOML file must not be silently ignored). Secrets are ``SecretStr``: they
print as ``**********`` in reprs, logs and error messages.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
import types
from functools import lru_cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from service.errors import ConfigError

DEFAULT_TOML = Path("strawfire.toml")
# HS256 wants a key at least as long as its 32-byte hash (RFC 7518 3.2); a short one can be brute-forced offline
# from any token, and then admin tokens forged.
MIN_SECRET_KEY_CHARS = 32
# STRAWFIRE_* variables that are not settings of this class: the settings file's name, the test database, and the
# camera workers' own settings (video.tasks reads STRAWFIRE_VIDEO__*).
_OTHER_VARIABLES = ("STRAWFIRE_CONFIG", "STRAWFIRE_TEST_POSTGRES_URL")
_OTHER_PREFIXES = ("STRAWFIRE_VIDEO__",)


# libpq (and so psycopg) also takes the password as a parameter: ...?password=...
_PASSWORD_PARAM = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of the URL's user part lies, None without one.

    Read by hand: SQLAlchemy ends a password at its first ``@``, so an unencoded ``@`` in it put the rest of it in the
    host, and the shown URL (and the driver's "cannot resolve host" message) carried it. The password runs to the
    last ``@`` before the query, or to the last ``@`` of all when the query holds none before it (a ``?`` in the
    password).
    """
    scheme = url.find("://")
    if scheme < 0:
        return None
    start = scheme + 3
    colon = url.find(":", start)
    query = url.find("?", start)
    at = url.rfind("@", start, query) if query >= 0 else -1
    if at < 0:
        at = url.rfind("@", start)
    if at < 0 or colon < 0 or colon > at or any(c in url[start:colon] for c in "/?#"):
        return None
    return colon + 1, at


def redact_url(url: str) -> str:
    """A database URL fit to print: its password, in the user part or a ``password=`` parameter, as ``***``."""
    span = _password_span(url)
    if span is not None:
        url = f"{url[: span[0]]}***{url[span[1] :]}"
    return _PASSWORD_PARAM.sub(r"\1***", url)


def url_secrets(url: str) -> set[str]:
    """The parts of a database URL a driver's message may quote that must not be shown (for
    :func:`satellite.errors.redact`): the password as written, the piece of it SQLAlchemy took for a password and
    the piece it took for the host (an unencoded ``@``), and ``password=`` parameters' values."""
    secrets: set[str] = set()
    span = _password_span(url)
    if span is not None:
        written = url[span[0] : span[1]]
        secrets.add(written)
        secrets.update(written.split("@"))
    secrets.update(m.group(0).split("=", 1)[1] for m in _PASSWORD_PARAM.finditer(url))
    try:
        parsed = make_url(url)
        if parsed.password:
            secrets.add(str(parsed.password))
        secrets.update(str(v) for k, v in parsed.query.items() if "password" in k.lower())
    except Exception:  # noqa: S110  (not parseable: the hand-read parts above are all there is)
        pass
    return secrets


#: Settings that were once accepted and are now ignored (with a warning, once per process): refusing them, as any
#: unknown key is, would stop a working deployment's settings file from starting the service.
RETIRED_REGION_SETTINGS = {
    "default_level": (
        "regions.default_level is ignored and can be removed from the settings: incidents are always assigned to "
        "a township and that township's county (the county alone where no townships are imported); "
        "'strawfire regions assign --level' and the API's 'level' choose a level for one request"
    ),
}
_warned: set[str] = set()
log = logging.getLogger("strawfire.config")


class RegionSettings(BaseModel):
    """How places are assigned to administrative units.

    There is no level setting. The service assigns every incident to the township its location falls in and to
    that township's county, or to the county alone where no townships are imported: townships answer for fires
    and counties supervise them, and an incident has a column for each (a village or grid level would have
    nowhere to go). ``default_level`` claimed to choose that level but was never read; a file or variable that
    still sets it is accepted with a warning and its value ignored (:data:`RETIRED_REGION_SETTINGS`).
    """

    model_config = ConfigDict(extra="forbid")

    # A fire a few hundred metres outside every polygon is almost always a boundary-data error (coarse or
    # offset polygons), not a fire abroad: give it to the nearest unit, flagged `nearest`.
    tolerance_m: float = Field(500.0, ge=0, le=50_000)

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name in RETIRED_REGION_SETTINGS.keys() & data.keys():
            if name not in _warned:
                _warned.add(name)
                log.warning("%s", RETIRED_REGION_SETTINGS[name])
        return {key: value for key, value in data.items() if key not in RETIRED_REGION_SETTINGS}


class IncidentSettings(BaseModel):
    """Fusion of observations into incidents, and upload limits."""

    model_config = ConfigDict(extra="forbid")

    # Pyronear links camera detections of one fire for 2 h; SMHI's activefires-pp suppresses repeat satellite
    # alarms at a spot for 6 h. A satellite pass is a snapshot, hence the longer window whenever one is involved.
    ground_window_h: float = Field(2.0, gt=0, le=48)
    satellite_window_h: float = Field(6.0, gt=0, le=72)
    # A satellite pass 6–24 h later at the spot a satellite, drone or triangulation placed a fire joins that
    # incident while it is not yet closed 销号 (closed-loop reference §2.4 step 3); below satellite_window_h it
    # changes nothing.
    satellite_repass_h: float = Field(24.0, gt=0, le=72)
    # A new incident within repeat_site_km (between the two incidents' location regions) of an earlier real fire
    # (fed back as a violation, or still open) seen at most repeat_site_days before it is flagged repeat_at_site
    # (同一地点再次起火). 30 days: one burning season (spring ~Mar–May or autumn ~Oct–Nov) around Changchun.
    repeat_site_km: float = Field(0.8, ge=0, le=50)
    repeat_site_days: float = Field(30.0, gt=0, le=366)
    # Uncertainty regions must overlap; a positive buffer (m) also links regions that nearly touch.
    link_buffer_m: float = Field(0.0, ge=0, le=5000)
    # A FIRMS global 24 h CSV is ~1.3 MB; a 7-day global VIIRS file is ~100 MB.
    max_upload_mb: float = Field(100.0, gt=0, le=2000)


class DeadlineSettings(BaseModel):
    """A county's response deadlines in minutes (defaults: acknowledge 15, on site 30)."""

    model_config = ConfigDict(extra="forbid")

    acknowledge_min: float = Field(15.0, gt=0, le=24 * 60)
    on_site_min: float = Field(30.0, gt=0, le=24 * 60)


class SmtpSettings(BaseModel):
    """The mail server for e-mail alerts."""

    model_config = ConfigDict(extra="forbid")

    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    sender: str = "strawfire@localhost"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False


class AlertSettings(BaseModel):
    """Alert delivery and escalation."""

    model_config = ConfigDict(extra="forbid")

    # Links in alerts point here (the dashboard as the township teams reach it).
    public_base_url: str = "http://127.0.0.1:8000"
    # The embedded deployment runs the delivery/escalation worker inside the web process; a deployment with
    # `strawfire alerts worker` processes turns this off.
    run_worker: bool = True
    poll_interval_s: float = Field(5.0, gt=0, le=600)
    deadlines: DeadlineSettings = Field(default_factory=DeadlineSettings)
    # Per-county overrides, keyed by county code: [alerts.county_deadlines.220112] acknowledge_min = 10
    county_deadlines: dict[str, DeadlineSettings] = Field(default_factory=dict)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)


class ScreeningSettings(BaseModel):
    """Satellite hotspot screening before anyone is alerted (see satellite/screening.py for the rules)."""

    model_config = ConfigDict(extra="forbid")

    # GeoJSON files (any CRS strawfire knows, declared by `layers_crs`, projected ones included): 禁烧区/限烧区
    # zones, burn permits (polygon + start/end, or valid_from/valid_to, with a UTC offset), known industrial heat
    # sources. Absent files mean "no such layer".
    zones_file: Path | None = None
    permits_file: Path | None = None
    sites_file: Path | None = None
    layers_crs: str = "wgs84"
    # A hotspot outside every imported unit (beyond the assignment tolerance) is recorded but opens no incident.
    coverage_from_regions: bool = True
    # The Henan two-year VIIRS analysis: a ~1 km cell hot on >= 10 local days a year is a fixed heat source.
    static_min_days: int = Field(10, ge=1, le=366)
    static_window_days: int = Field(365, ge=1, le=3660)
    # Count the cell alone (0) or with its 8 neighbours (1, a 3 x 3 block of ~3.3 x 2.4 km at Changchun). 0 by
    # default: the 10-day threshold was calibrated on single 0.01° cells (Henan, VIIRS 375 m), and a 3 x 3 block
    # also adds up neighbouring farmers' fields over two burning seasons, so real straw fires would be held as
    # static sources and no township would hear of them. A deployment that sees chimneys escape the rule because
    # MODIS pixel centres scatter over neighbouring cells sets 1.
    static_neighbourhood: int = Field(0, ge=0, le=1)
    # Hold hotspots below this normalised detection confidence as `low_confidence` (0.30: the low class of every
    # product, e.g. VIIRS sun glint). Off by default: small straw fires are often only in the low class.
    min_confidence: float = Field(0.0, ge=0.0, le=1.0)
    # Cropland polygons (三调 耕地; GeoJSON or a (zipped) shapefile, in `cropland_crs`, default `layers_crs`): a
    # hotspot with less than `min_cropland_fraction` of its pixel footprint on cropland is held as `non_crop`.
    cropland_file: Path | None = None
    cropland_crs: str | None = None
    min_cropland_fraction: float = Field(0.5, gt=0.0, le=1.0)


class EvidenceSettings(BaseModel):
    """Photos uploaded from the field."""

    model_config = ConfigDict(extra="forbid")

    # Where files go; default <data_dir>/evidence. Named by sha256, so a re-upload stores nothing new.
    directory: Path | None = None
    max_upload_mb: float = Field(25.0, gt=0, le=500)
    # A photo whose GPS is farther than this from the incident is flagged for a supervisor's look.
    max_distance_m: float = Field(1000.0, gt=0, le=100_000)


class DetectorSettings(BaseModel):
    """The fire/smoke detector the service runs itself (drone image uploads); camera workers take
    ``STRAWFIRE_VIDEO__DETECTOR`` (``video.tasks``)."""

    model_config = ConfigDict(extra="forbid")

    # Re-weigh the model's fire boxes by the flame colour rule (detector.second_opinion): fewer false fires on
    # red objects, some real fires missed; off because a missed fire costs more than a wasted trip.
    second_opinion: bool = False


class ClusteringSettings(BaseModel):
    """Satellite fire points (the unit provinces count): pixels of one pass within ``link_km`` are one fire point,
    located at its highest-FRP pixel; a fire point within ``repeat_km`` of one seen less than
    ``repeat_window_h`` earlier is a repeat (SMHI activefires-pp's 0.8 km / 1.2 km / 6 h)."""

    model_config = ConfigDict(extra="forbid")

    link_km: float = Field(0.8, gt=0, le=50)
    split_km: float = Field(1.2, gt=0, le=100)
    repeat_km: float = Field(0.8, gt=0, le=50)
    repeat_window_h: float = Field(6.0, ge=0, le=72)


class StatsSettings(BaseModel):
    """Statistics and accountability scoring."""

    model_config = ConfigDict(extra="forbid")

    # Folder of versioned scoring-rules files (*.toml): each period is scored with the version in force then.
    rules_dir: Path = Path("rules")


class FirmsSettings(BaseModel):
    """NASA FIRMS area-API polling."""

    model_config = ConfigDict(extra="forbid")

    map_key: SecretStr | None = None
    base_url: str = "https://firms.modaps.eosdis.nasa.gov"
    # VIIRS on three satellites plus MODIS: the NRT products that cover Jilin several times a day.
    sources: list[str] = Field(
        default_factory=lambda: ["VIIRS_NOAA20_NRT", "VIIRS_NOAA21_NRT", "VIIRS_SNPP_NRT", "MODIS_NRT"]
    )
    # W,S,E,N; empty = the bounds of the imported regions.
    bbox: list[float] = Field(default_factory=list, max_length=4)
    # 2 days: each poll overlaps the previous one, so a late-published pass is picked up (duplicates are no-ops).
    day_range: int = Field(2, ge=1, le=5)
    # 0 = no automatic polling inside the web process (use `strawfire firms poll`).
    poll_interval_min: float = Field(0.0, ge=0, le=24 * 60)
    # After an outage longer than day_range, each poll first fetches the missed days in dated windows, oldest first,
    # at most this many days back (older days: keep an archive for screening with `strawfire firms history`, or
    # make its rows fires now with `strawfire firms ingest`). 0 = no back-fill.
    backfill_max_days: int = Field(30, ge=0, le=90)

    @property
    def polled_by_service(self) -> bool:
        """Whether the web process polls FIRMS itself (a MAP_KEY and a poll interval)."""
        return self.map_key is not None and self.poll_interval_min > 0


class SentinelHubSettings(BaseModel):
    """Sentinel Hub / Copernicus Data Space: the credentials and endpoints ``strawfire sentinel scan`` uses."""

    model_config = ConfigDict(extra="forbid")

    client_id: str | None = None
    client_secret: SecretStr | None = None
    # CDSE by default; Sentinel Hub is https://services.sentinel-hub.com.
    base_url: str = "https://sh.dataspace.copernicus.eu"
    # The OAuth token URL; unset = the known one of base_url (CDSE, Sentinel Hub), required for any other.
    token_url: str | None = None
    # Per request; 5xx and connection errors are retried max_attempts times in all, retry_sleep_s then 3x longer.
    timeout_s: float = Field(120.0, gt=0, le=3600)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_sleep_s: float = Field(5.0, ge=0, le=600)
    # HTTP 429 (rate limited, e.g. the month's processing units spent): give up after this many per search or scene,
    # or once waiting would go past rate_limit_budget_s seconds (sentinelhub-py alone waits for ever).
    rate_limit_attempts: int = Field(4, ge=1, le=100)
    rate_limit_budget_s: float = Field(300.0, ge=0, le=3600)
    # W,S,E,N; empty = the bounds of the imported regions. The Process API takes at most 2,500 x 2,500 pixels
    # (50 x 50 km at Sentinel-2's 20 m, 75 x 75 km at Landsat's 30 m).
    bbox: list[float] = Field(default_factory=list, max_length=4)
    # Scenes more cloudy than this (percent) are not scanned: clouds hide fires, and cost processing units.
    max_cloud_cover: float = Field(60.0, ge=0, le=100)


class Settings(BaseSettings):
    """All of strawfire's settings. Build with :func:`get_settings` (cached) or directly in tests."""

    model_config = SettingsConfigDict(
        env_prefix="STRAWFIRE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    # SQLite under the data folder by default: the embedded deployment needs no other server.
    # PostgreSQL: postgresql+psycopg://user:password@host:5432/db
    database_url: str = ""
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Load the generated, clearly labelled demo region and scenario at start when the database is empty.
    demo: bool = False
    log_level: str = "INFO"
    # Signs API tokens. Generated into the data folder on first use when not set (see service.auth).
    secret_key: SecretStr | None = None
    # Failed logins (service.auth.throttle): after login_max_failures for one username, or
    # login_max_failures_per_client from one client address, within login_window_minutes, further attempts are
    # answered 429 with Retry-After until the oldest failure leaves the window. A successful login clears its
    # username's count. Kept in the service's memory (a restart clears it).
    login_max_failures: int = Field(10, ge=1, le=10_000)
    login_max_failures_per_client: int = Field(50, ge=1, le=100_000)
    login_window_minutes: float = Field(15.0, gt=0, le=24 * 60)
    regions: RegionSettings = Field(default_factory=RegionSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    screening: ScreeningSettings = Field(default_factory=ScreeningSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    clustering: ClusteringSettings = Field(default_factory=ClusteringSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    firms: FirmsSettings = Field(default_factory=FirmsSettings)
    sentinelhub: SentinelHubSettings = Field(default_factory=SentinelHubSettings)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgres")):
            raise ValueError("database_url must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith(("postgres://", "postgresql://")):
            # SQLAlchemy would pick psycopg2, which strawfire does not ship.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_CHARS:
            raise ValueError(
                f"secret_key must be at least {MIN_SECRET_KEY_CHARS} characters (make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'), or leave it unset"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return level

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file ``<data_dir>/strawfire.sqlite3``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'strawfire.sqlite3'}"

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "database_url" and value else value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("STRAWFIRE_CONFIG")
        path = Path(toml_path) if toml_path else DEFAULT_TOML
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        _refuse_unknown_variables(set(settings_cls.model_fields))
        if toml_path and not path.is_file():
            raise ConfigError(f"STRAWFIRE_CONFIG names {path}, which is not a file")
        if path.is_file():
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            except ValueError as exc:  # malformed TOML, or not UTF-8
                raise ConfigError(f"invalid settings file {path}: {exc}") from None
        return tuple(sources)


def _refuse_unknown_variables(fields: set[str]) -> None:
    """Nested typos (``STRAWFIRE_FIRMS__MAPKEY``) fail validation; top-level ones would be silently ignored."""
    unknown = []
    for name in os.environ:
        upper = name.upper()
        if not upper.startswith("STRAWFIRE_") or upper in _OTHER_VARIABLES or upper.startswith(_OTHER_PREFIXES):
            continue
        if upper.removeprefix("STRAWFIRE_").split("__", 1)[0].lower() not in fields:
            unknown.append(name)
    if unknown:
        raise ConfigError(
            f"unknown setting {', '.join(sorted(unknown))} in the environment "
            "(settings are STRAWFIRE_<NAME>, nested tables with __, e.g. STRAWFIRE_REGIONS__TOLERANCE_M)"
        )


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation problems into a :class:`ConfigError` without secret values.

    Each problem names where its value was written, so that it can be found: ``STRAWFIRE_PORT: ...`` for an
    environment variable, ``/etc/strawfire/prod.toml: firms.mapkey: ...`` for the settings file (the one
    ``STRAWFIRE_CONFIG`` names, or ``./strawfire.toml`` shown with its folder, which is read without being named);
    a value passed in code is named by its key alone. A list or table in an environment variable is written as
    JSON; one that is not names the variable and shows how (:func:`_not_json_message`)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        source = _SettingSources(set(overrides))
        problems = "; ".join(f"{source.of(err['loc'])}{err['msg']}" for err in exc.errors(include_input=False))
        raise ConfigError(f"invalid settings: {problems}") from None
    except SettingsError as exc:  # an environment value that is not valid JSON for a list or table
        raise ConfigError(f"invalid settings: {_not_json_message(exc)}") from None


class _SettingSources:
    """Where a setting's value came from, for an error message: the variable, the file, or (code) neither."""

    def __init__(self, passed_in_code: set[str]) -> None:
        self._passed_in_code = passed_in_code
        # Matched whatever their case, as pydantic-settings reads them; shown as written.
        self._variables = {name.upper(): name for name in os.environ if name.upper().startswith("STRAWFIRE_")}
        named = os.environ.get("STRAWFIRE_CONFIG")
        self._file = Path(named) if named else DEFAULT_TOML.resolve()
        try:
            self._file_data: dict[str, Any] = tomllib.loads(self._file.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # no file (the defaults), or one Settings already refused
            self._file_data = {}

    def of(self, loc: tuple[int | str, ...]) -> str:
        """``"SOURCE: key: "`` for the problem at ``loc`` (``"key: "`` when it came from code, or from no source:
        a missing value)."""
        key = ".".join(str(part) for part in loc)
        if not loc or loc[0] in self._passed_in_code:
            return f"{key}: "
        # The longest variable that set this value or a table holding it (STRAWFIRE_FIRMS='{"bbox": ...}').
        for end in range(len(loc), 0, -1):
            name = "STRAWFIRE_" + "__".join(str(part) for part in loc[:end]).upper()
            if name in self._variables:
                return f"{self._variables[name]}: {key}: "
        value: Any = self._file_data
        for part in loc:
            in_table = isinstance(value, dict) and part in value
            in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
            if in_table or in_list:
                value = value[part]
            else:
                return f"{key}: "
        return f"{self._file}: {key}: "


_SETTINGS_ERROR_FIELD = re.compile(r'field "(\w+)"')


def _not_json_message(exc: SettingsError) -> str:
    """Which ``STRAWFIRE_<TABLE>...`` variable holds a list or table that is not JSON, and how to write one; never
    its value (it may be a secret's neighbour, or a secret)."""
    match = _SETTINGS_ERROR_FIELD.search(str(exc))
    if match is None:
        return str(exc)
    field = match.group(1)
    prefix = f"STRAWFIRE_{field.upper()}"
    names = sorted(n for n in os.environ if n.upper() == prefix or n.upper().startswith(prefix + "__"))
    not_json = []
    for name in names:
        annotation = _annotation_at(_dotted(name).split("."))
        if annotation is None or _scalar(annotation):
            continue
        try:
            json.loads(os.environ[name])
        except ValueError:
            not_json.append((name, annotation))
    if not not_json:
        return f"{', '.join(names) or prefix}: {exc}"
    return "; ".join(
        f"{name} ({_dotted(name)}) is not valid JSON: {_how_to_write(name, annotation)}"
        for name, annotation in not_json
    )


def _dotted(name: str) -> str:
    """``STRAWFIRE_FIRMS__BBOX`` → ``firms.bbox``."""
    return ".".join(name.upper().removeprefix("STRAWFIRE_").lower().split("__"))


def _annotation_at(path: list[str]) -> Any:
    """The type of the setting at ``path`` (``["firms", "bbox"]``), None when there is none."""
    annotation: Any = Settings
    for part in path:
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) is dict:  # a table keyed by code: [alerts.county_deadlines.220112]
            annotation = get_args(annotation)[1]
        else:
            return None
    return _without_none(annotation)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _scalar(annotation: Any) -> bool:
    """Whether an environment variable holds the value as it is (not as JSON)."""
    if get_origin(annotation) in (list, tuple, set, dict):
        return False
    return not (isinstance(annotation, type) and issubclass(annotation, (BaseModel, list, tuple, set, dict)))


def _how_to_write(name: str, annotation: Any) -> str:
    if get_origin(annotation) in (list, tuple, set) or annotation in (list, tuple, set):
        items = get_args(annotation)
        if items and items[0] is str:
            return f'a list is written as JSON, text in double quotes: {name}=\'["VIIRS_SNPP_NRT", "MODIS_NRT"]\''
        return f"a list is written as JSON: {name}='[125.4, 44.05, 125.9, 44.5]'"
    return f"a table is written as a JSON object: {name}='{{\"key\": value}}', or one variable per key ({name}__KEY)"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own :class:`Settings`)."""
    return load_settings()
