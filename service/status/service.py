"""Whether the closed loop is working: alert delivery, the FIRMS polls, the cameras, what came in recently.

The loop fails silently when a background part stops: an alert worker that is not running leaves every alert in
the outbox, a revoked MAP_KEY leaves the satellite feed empty, and both look like a quiet day. Each background
component records its latest run (:func:`record_run`, one row per component, replaced at every run), and
:func:`system_status` turns those rows, the outbox and the camera heartbeats into a state per part and a list of
problems in plain words.

Decisions:

* **A component is late after three of its intervals**, and never sooner than a floor (2 min for the alert worker,
  30 min for a FIRMS source): one slow pass is not an outage, three are.
* **One failure is not a problem; two in a row are** (a FIRMS source answers 5xx now and then and the next poll's
  overlapping day range picks up what it missed), unless the component has never succeeded (a wrong MAP_KEY).
* **Overdue alerts are judged on their own**, not only through the worker's row: an alert due longer than the
  worker's limit has not been delivered, whatever the worker says (an alert worker on another machine with the
  wrong database writes its row elsewhere).
* **No hotspots is not a problem**: a quiet week in summer is normal; the recent counts per kind are shown for
  people to judge.
* **Frames the patrol workers dropped unlooked-at are a problem while recent** (``frames_expired``): in a
  distributed patrol a frame no Celery worker took within the grabber's frame TTL is dropped, so a camera that
  sends pictures goes partly unwatched when the workers fall behind. It is judged over the preset's silence
  horizon (three cadences, at least 10 min, as ``silent``), and clears by itself once the workers catch up.
* **A camera preset whose stream does not fit its registered lens is a problem** (``cameras_lens_mismatch``, each
  preset named with the registered and received frame sizes): its frames are of another aspect ratio than the lens
  was calibrated for, so its fires are posted without a ground point (the wedge of the whole view,
  ``video.patrol.locate_camera_box``) — wrong geometry would put them in the wrong place, even the wrong township.
  It comes after the blind presets (frozen, silent: no fire seen at all) and clears with the patrol's next
  heartbeat once the frames fit. Only the aspect ratio counts: a sub-stream or a 720p profile of the same shape is
  scaled exactly and is no problem.
* **A unit with open fires and nobody to alert is a problem** (``units_without_recipients``): its fires queue no
  township alert, so nothing is overdue or failed to show it; they are escalated to the county at once, and the
  units are listed until someone adds a recipient. A county whose escalations reach no supervisor, there or above
  it, is one too (``counties_without_supervisors``): those fires are ``escalated`` with nobody alerted, and the
  status is all that tells the admins. Only units with open fires are listed, not every township without a
  recipient (:mod:`service.alerts.coverage`).
* **Fires nobody was told of and too old to catch up on are a problem** (``fires_left_untold``, by incident
  number): the escalation pass sends a late alert, or escalates, only for fires that came to their unit (opened,
  reopened or moved there) within the last 24 h (:data:`service.alerts.escalation.CATCH_UP`); older ones (after an
  upgrade, a township's first recipient added late, the DEMO inbox retired) wait for a supervisor, and are listed
  until someone deals with them.
* **Alert links nobody can open are a problem** (``alert_links_unreachable``): every alert's "详情与签收" link (where
  a township team acknowledges) is built on ``alerts.public_base_url`` (``STRAWFIRE_ALERTS__PUBLIC_BASE_URL``), whose
  default ``http://127.0.0.1:8000`` is the server's own loopback address: no phone can open it. It is reported while
  real recipients (active, not the DEMO inbox's) exist and the base URL is not an absolute http(s) URL, or its host
  is loopback (``localhost``, ``127.x``, ``::1``), unspecified (``0.0.0.0``) or link-local; a loopback URL on
  another port than the configured one is named as such too. An intranet address (``10.x``, ``192.168.x``) or any
  host name is taken as meant: phones on the county's network or VPN reach it, and the status cannot tell. Blind
  cameras and failing parts come first: these alerts still arrive, with the place and a map link.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast, get_args

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from satellite.errors import redact
from service.alerts.coverage import Uncovered, uncovered_units
from service.alerts.escalation import CATCH_UP, left_untold
from service.alerts.tables import Alert, AlertStatus, Recipient
from service.cameras.health import PRESET_ROWS, HealthState, preset_health
from service.config import Settings
from service.db import driver_message
from service.demo_inbox import is_demo_recipient
from service.incidents.fusion import ObservationKind
from service.incidents.tables import Observation
from service.status.tables import ComponentRun
from video.sources import redact_url

ALERT_WORKER: Final = "alerts.worker"
#: The component of the problems about units nobody is alerted for (recipients are the alerts' configuration).
RECIPIENTS: Final = "alerts.recipients"
#: The component of the problem about the links in alerts (the setting they are built on).
PUBLIC_BASE_URL: Final = "alerts.public_base_url"
FIRMS_PREFIX: Final = "firms:"
#: A stored error is cut to this many characters (they are redacted by whoever records them).
ERROR_CHARS: Final = 500
LATE_INTERVALS: Final = 3
ALERT_WORKER_FLOOR: Final = timedelta(minutes=2)
FIRMS_FLOOR: Final = timedelta(minutes=30)
FAILURES_TO_REPORT: Final = 2
#: How many items (camera presets, units, fires) a problem names before it says "and N more".
NAMED_ITEMS: Final = 10

ComponentState = Literal["ok", "failing", "late", "never_run"]


def firms_component(source: str) -> str:
    """The component name of one FIRMS source's poll (``firms:MODIS_NRT``)."""
    return FIRMS_PREFIX + source


def error_text(exc: BaseException, *secrets: str | None) -> str:
    """An exception as a stored error (:func:`record_run`): ``Type: message``, with passwords in URLs,
    password-like parameters and ``secrets`` masked.

    A database error is its driver's first line only: SQLAlchemy's message also quotes the statement and its
    parameters, which may hold a recipient's webhook address (a Feishu bot's token is in its path, which
    :func:`~video.sources.redact_url` does not recognise), a phone number or a password hash.
    """
    message = driver_message(exc) if isinstance(exc, StatementError) and exc.orig is not None else str(exc)
    return redact(redact_url(f"{type(exc).__name__}: {message}"), *secrets)


def record_run(
    session: Session,
    name: str,
    *,
    at: datetime,
    ok: bool,
    error: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record one run of a component in the caller's transaction (an upsert: several workers may record at once).

    ``error`` must already be redacted; it is cut to :data:`ERROR_CHARS`. A success clears the error and the
    failure count and replaces ``detail``; a failure keeps the last success and its detail.
    """
    table = cast(Table, ComponentRun.__table__)
    message = None if ok else (error or "failed")[:ERROR_CHARS]
    values: dict[str, Any] = {
        "name": name,
        "last_attempt_at": at,
        "last_success_at": at if ok else None,
        "consecutive_failures": 0 if ok else 1,
        "last_error": message,
        "detail": json.dumps(detail or {}, ensure_ascii=False) if ok else "{}",
    }
    update: dict[str, Any] = {"last_attempt_at": at, "last_error": message}
    if ok:
        update |= {"last_success_at": at, "consecutive_failures": 0, "detail": values["detail"]}
    else:
        update["consecutive_failures"] = table.c.consecutive_failures + 1
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_update(index_elements=["name"], set_=update)
    session.execute(statement)


@dataclass(frozen=True)
class ComponentStatus:
    """One background component: its state and latest run."""

    name: str
    state: ComponentState
    expected: bool  # configured to run here (a row of a component no longer configured is shown, not judged)
    late_after_s: float
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertsStatus:
    """The outbox: what waits, what is overdue, what failed and was sent in the last 24 h."""

    pending: int
    overdue: int  # pending and due for longer than the worker's limit
    overdue_since: datetime | None  # when the longest-overdue one fell due
    failed_24h: int  # given up in the last 24 h
    sent_24h: int
    last_sent_at: datetime | None


@dataclass(frozen=True)
class ObservationFeed:
    """What came in of one observation kind."""

    kind: str
    last_received_at: datetime | None
    last_observed_at: datetime | None
    received_24h: int


@dataclass(frozen=True)
class Problem:
    """Something people must act on: ``code`` for translations, ``message`` in plain English, ``items`` named."""

    code: str
    component: str
    message: str
    count: int = 1
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class SystemStatus:
    """Everything :func:`system_status` found; ``status`` is ``degraded`` when there is any problem."""

    status: Literal["ok", "degraded"]
    checked_at: datetime
    alerts: AlertsStatus
    components: list[ComponentStatus]
    observations: list[ObservationFeed]
    cameras: dict[str, int]
    problems: list[Problem]


def alert_worker_limit(settings: Settings) -> timedelta:
    """How long the alert worker (or an alert due) may go without a pass before it is late."""
    return max(LATE_INTERVALS * timedelta(seconds=settings.alerts.poll_interval_s), ALERT_WORKER_FLOOR)


def firms_limit(settings: Settings) -> timedelta:
    """How long a FIRMS source may go without a successful poll before it is late."""
    return max(LATE_INTERVALS * timedelta(minutes=settings.firms.poll_interval_min), FIRMS_FLOOR)


def firms_expected(settings: Settings) -> list[str]:
    """The FIRMS components the service polls itself (none without a MAP_KEY or with polling off)."""
    if not settings.firms.polled_by_service:
        return []
    return [firms_component(source) for source in settings.firms.sources]


def component_state(
    last_attempt_at: datetime | None,
    last_success_at: datetime | None,
    consecutive_failures: int,
    *,
    limit: timedelta,
    now: datetime,
) -> ComponentState:
    """``never_run``; ``failing`` (two failures in a row or more, or failures and never a success: a wrong key
    fails from the first poll on); ``late`` (no success within ``limit``); ``ok``."""
    if last_attempt_at is None:
        return "never_run"
    if consecutive_failures >= FAILURES_TO_REPORT or (consecutive_failures and last_success_at is None):
        return "failing"
    if last_success_at is None or now - last_success_at > limit:
        return "late"
    return "ok"


def components(session: Session, settings: Settings, *, now: datetime) -> list[ComponentStatus]:
    """The alert worker, every expected FIRMS source, and any other component that has recorded a run."""
    rows = {row.name: row for row in session.scalars(select(ComponentRun))}
    # Alert workers apart from the web process (``strawfire alerts worker``) make themselves expected by running.
    worker = settings.alerts.run_worker or ALERT_WORKER in rows
    # So does a FIRMS poll apart from it (``strawfire firms poll [--loop]``, the default: the web process polls
    # only with a MAP_KEY and ``poll_interval_min`` > 0), for each configured source it has recorded: a revoked
    # key there must not look like a quiet day. A source no longer configured is shown, not judged.
    firms = firms_expected(settings) or [
        name for name in (firms_component(source) for source in settings.firms.sources) if name in rows
    ]
    expected = ([ALERT_WORKER] if worker else []) + firms
    # The cameras' expired-frame and lens-mismatch reports share the table for want of columns of their own: they
    # are the presets' (service.cameras.health), shown with them and judged as ``frames_expired`` and
    # ``cameras_lens_mismatch``, not components.
    names = expected + sorted(set(rows) - set(expected) - PRESET_ROWS)
    out = []
    for name in names:
        limit = alert_worker_limit(settings) if name == ALERT_WORKER else firms_limit(settings)
        row = rows.get(name)
        if row is None:
            out.append(ComponentStatus(name, "never_run", True, limit.total_seconds()))
            continue
        state = component_state(
            row.last_attempt_at, row.last_success_at, row.consecutive_failures, limit=limit, now=now
        )
        out.append(
            ComponentStatus(
                name,
                state,
                name in expected,
                limit.total_seconds(),
                row.last_attempt_at,
                row.last_success_at,
                row.consecutive_failures,
                row.last_error,
                json.loads(row.detail or "{}"),
            )
        )
    return out


def alerts_status(session: Session, settings: Settings, *, now: datetime) -> AlertsStatus:
    """Counts from the outbox (one grouped query and a small one).

    An alert is given up at its first failed attempt more than a day after it was queued
    (:data:`~service.alerts.outbox.RETRY_HORIZON`), so its ``created_at`` says nothing about when: the time of that
    last attempt is its ``next_attempt_at`` less one backoff (at most 10 min, or the wait a rate-limited platform
    asked for), close enough for "the last 24 h".
    """
    pending = AlertStatus.PENDING.value
    due_before = now - alert_worker_limit(settings)
    day = now - timedelta(hours=24)
    waiting = session.execute(
        select(func.count(), func.min(Alert.next_attempt_at)).where(
            Alert.status == pending, Alert.next_attempt_at < due_before
        )
    ).one()
    counts = session.execute(
        select(
            func.count().filter(Alert.status == pending),
            func.count().filter(Alert.status == AlertStatus.FAILED.value, Alert.next_attempt_at >= day),
            func.count().filter(Alert.status == AlertStatus.SENT.value, Alert.sent_at >= day),
            func.max(Alert.sent_at),
        )
    ).one()
    return AlertsStatus(
        pending=int(counts[0]),
        overdue=int(waiting[0]),
        overdue_since=waiting[1],
        failed_24h=int(counts[1]),
        sent_24h=int(counts[2]),
        last_sent_at=counts[3],
    )


def observation_feeds(session: Session, *, now: datetime) -> list[ObservationFeed]:
    """Per observation kind that ever came in: its latest arrival and how many arrived in the last 24 h.

    Small queries per kind, each an index search (``ix_observations_kind_received``, ``…_kind_observed``):
    observations are the largest table, and one GROUP BY over it read every row at every status request.
    """
    day = now - timedelta(hours=24)
    out = []
    for kind in sorted(k.value for k in ObservationKind):
        of_kind = Observation.kind == kind
        last = session.scalar(select(func.max(Observation.received_at)).where(of_kind))
        if last is None:
            continue  # never came in
        observed = session.scalar(select(func.max(Observation.observed_at)).where(of_kind))
        recent = session.scalar(select(func.count()).where(of_kind, Observation.received_at >= day))
        out.append(ObservationFeed(kind, last, observed, int(recent or 0)))
    return out


def _named(items: list[str]) -> str:
    named = ", ".join(items[:NAMED_ITEMS])
    return named + (f" and {len(items) - NAMED_ITEMS} more" if len(items) > NAMED_ITEMS else "")


def problems_of(
    alerts: AlertsStatus,
    parts: list[ComponentStatus],
    cameras: list[dict[str, Any]],
    uncovered: Uncovered | None = None,
    untold: Sequence[int] = (),
) -> list[Problem]:
    """The problems people must act on, most urgent first (pure: a unit test gives it any situation); ``untold``:
    the fires the escalation pass leaves untold (:func:`service.alerts.escalation.left_untold`)."""
    out: list[Problem] = []
    if alerts.overdue:
        since = alerts.overdue_since.isoformat(timespec="minutes") if alerts.overdue_since else "?"
        out.append(
            Problem(
                "alerts_overdue",
                ALERT_WORKER,
                f"{alerts.overdue} alert(s) due since {since} have not been delivered: is an alert worker running "
                "(strawfire serve with alerts.run_worker, or strawfire alerts worker) on this database?",
                alerts.overdue,
            )
        )
    if uncovered is not None:
        out.extend(_recipient_problems(uncovered))
    if untold:
        labels = [f"#{number}" for number in untold]
        message = (
            f"{len(labels)} open fire(s) nobody was alerted of came to their unit more than "
            f"{CATCH_UP.total_seconds() / 3600:g} h ago: {_named(labels)}; too old for a late alert or an "
            "escalation, they are left to the supervisors: check each one (assign it, close it or declare it a false "
            "alarm)"
        )
        out.append(Problem("fires_left_untold", RECIPIENTS, message, len(labels), tuple(labels)))
    for part in parts:
        if not part.expected or part.state == "ok":
            continue
        source = part.name.removeprefix(FIRMS_PREFIX)
        what = "the alert worker" if part.name == ALERT_WORKER else f"the FIRMS poll of {source}"
        if part.state == "never_run":
            message = f"{what} has never run"
        elif part.state == "failing" and part.last_success_at is None:
            message = (
                f"{what} has never succeeded ({part.consecutive_failures} attempt(s)); last error: {part.last_error}"
            )
        elif part.state == "failing":
            message = f"{what} failed {part.consecutive_failures} times in a row; last error: {part.last_error}"
        else:
            last = part.last_success_at.isoformat(timespec="minutes") if part.last_success_at else "never"
            message = f"{what} has not succeeded for over {part.late_after_s / 60:g} min (last success: {last})"
        out.append(Problem(f"component_{part.state}", part.name, message))
    if alerts.failed_24h:
        out.append(
            Problem(
                "alerts_failed",
                ALERT_WORKER,
                f"{alerts.failed_24h} alert(s) of the last 24 h were given up after every retry: see the alerts "
                "list for each one's error (a wrong webhook address, a revoked bot)",
                alerts.failed_24h,
            )
        )
    for state, words in (("frozen", "show a frozen picture"), ("silent", "have sent no picture or heartbeat lately")):
        keys = [f"{c['camera_id']}/{c['preset']}" for c in cameras if c["state"] == state]
        if keys:
            message = f"{len(keys)} camera preset(s) {words}: {_named(keys)}; no fire can be seen there"
            out.append(Problem(f"cameras_{state}", "cameras", message, len(keys), tuple(keys)))
    mismatched = [c for c in cameras if c["state"] == "lens_mismatch"]
    if mismatched:
        keys = [f"{c['camera_id']}/{c['preset']}" for c in mismatched]
        sized = [f"{key} ({_lens_sizes(c.get('lens_mismatch'))})" for key, c in zip(keys, mismatched, strict=True)]
        message = (
            f"{len(keys)} camera preset(s) send frames of another aspect ratio than their registered lens: "
            f"{_named(sized)}; their fires are posted without a ground point: register the stream's own lens (its "
            "width and height) or set the stream back to the calibrated profile, then restart the patrol"
        )
        out.append(Problem("cameras_lens_mismatch", "cameras", message, len(keys), tuple(keys)))
    expiring = [c for c in cameras if c.get("expiring")]
    if expiring:
        keys = [f"{c['camera_id']}/{c['preset']}" for c in expiring]
        counted = [f"{key} ({c['expired']} in the last hour)" for key, c in zip(keys, expiring, strict=True)]
        message = (
            f"{len(keys)} camera preset(s) had frames dropped unlooked-at, not taken by a patrol worker within the "
            f"frame TTL: {_named(counted)}; the Celery workers are not keeping up: add workers (celery -A "
            "video.tasks worker) or check that they run"
        )
        out.append(Problem("frames_expired", "cameras", message, len(keys), tuple(keys)))
    return out


def _lens_sizes(mismatch: object) -> str:
    """``registered 1280×854, received 1280×720`` from a preset's ``lens_mismatch``."""
    if not isinstance(mismatch, dict):
        return "sizes unknown"
    registered, received = mismatch.get("registered"), mismatch.get("received")
    if not (isinstance(registered, list | tuple) and isinstance(received, list | tuple)):
        return "sizes unknown"
    return f"registered {'×'.join(map(str, registered))}, received {'×'.join(map(str, received))}"


def _recipient_problems(uncovered: Uncovered) -> list[Problem]:
    """The units with open fires nobody is alerted for (as urgent as undelivered alerts: no alert exists at all)."""
    out: list[Problem] = []
    if uncovered.townships:
        labels = [unit.label for unit in uncovered.townships]
        message = (
            f"{len(labels)} unit(s) with open fires have no alert recipients: {_named(labels)}; their fires alert "
            "nobody there and go straight to the county: add a recipient (strawfire alerts add-recipient --unit CODE)"
        )
        out.append(Problem("units_without_recipients", RECIPIENTS, message, len(labels), tuple(labels)))
    if uncovered.counties:
        labels = [unit.label for unit in uncovered.counties]
        message = (
            f"{len(labels)} county(ies) with open fires have no supervisor recipient, nor any unit above them: "
            f"{_named(labels)}; their escalations alert nobody: add one (strawfire alerts add-recipient --role "
            "county --unit CODE)"
        )
        out.append(Problem("counties_without_supervisors", RECIPIENTS, message, len(labels), tuple(labels)))
    return out


def unreachable_base_url(base_url: str, port: int) -> str | None:
    """Why links built on ``base_url`` cannot be opened on a township team's phone (words describing the URL: "a
    loopback address"), or None when they can be as far as the URL tells. ``port``: the port this server is
    configured to listen on (``settings.port``), named when a loopback URL does not even point at it."""
    try:
        parts = urllib.parse.urlsplit(base_url.strip())
        host, url_port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, a bracket left open
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "not an absolute http(s) URL"
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    named_loopback = host in ("localhost", "localhost.localdomain") or host.endswith(".localhost")
    if named_loopback or (address is not None and address.is_loopback):
        why = "a loopback address"
    elif address is not None and address.is_unspecified:
        return "an unspecified address (a listening address, not one to open)"
    elif address is not None and address.is_link_local:
        return "a link-local address"
    else:
        return None
    effective_port = url_port or (443 if parts.scheme == "https" else 80)
    if effective_port != port:
        why += f", not even on this server's port ({port})"
    return why


def real_recipients(session: Session) -> int:
    """How many active recipients are people's (the DEMO inbox's own recipients left out)."""
    active = session.scalars(select(Recipient).where(Recipient.active.is_(True)))
    return sum(1 for recipient in active if not is_demo_recipient(recipient))


def alert_links_problem(settings: Settings, recipients: int) -> Problem | None:
    """The ``alert_links_unreachable`` problem when ``recipients`` (real, active: :func:`real_recipients`) get
    alerts whose links cannot be opened (:func:`unreachable_base_url`); pure. Also logged by ``strawfire serve``
    at its start. ``items``: the base URL, any password in it masked."""
    base_url = settings.alerts.public_base_url
    why = unreachable_base_url(base_url, settings.port)
    if not recipients or why is None:
        return None
    shown = redact_url(base_url)
    message = (
        f"the links in the alerts of {recipients} active recipient(s) point to {shown} "
        f"(alerts.public_base_url), {why}: no phone can open them, so township teams cannot open or acknowledge "
        "their fires from the message; set STRAWFIRE_ALERTS__PUBLIC_BASE_URL to the dashboard's address as the "
        "teams reach it (e.g. https://strawfire.example.gov.cn)"
    )
    return Problem("alert_links_unreachable", PUBLIC_BASE_URL, message, recipients, (shown,))


def system_status(session: Session, settings: Settings, *, now: datetime) -> SystemStatus:
    """The whole picture, read in one session."""
    alerts = alerts_status(session, settings, now=now)
    parts = components(session, settings, now=now)
    presets = preset_health(session, now=now)
    cameras = dict.fromkeys(get_args(HealthState), 0)
    for preset in presets:
        cameras[preset["state"]] += 1
    problems = problems_of(alerts, parts, presets, uncovered_units(session), left_untold(session, now))
    links = alert_links_problem(settings, real_recipients(session))
    problems += [links] if links else []  # the least urgent: these alerts arrive, with the place and a map link
    return SystemStatus(
        "degraded" if problems else "ok",
        now,
        alerts,
        parts,
        observation_feeds(session, now=now),
        cameras,
        problems,
    )
