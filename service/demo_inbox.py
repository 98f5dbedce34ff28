"""The DEMO inbox: where the demo's alerts are delivered, so that ``make run`` shows the closed loop working offline.

A fresh ``make run`` has no alert recipients: the demo's waiting fires alerted nobody and were escalated to the
county as unreachable, and the status bar opened on "2 个问题". With ``--demo`` (``settings.demo``) the service
gives every DEMO unit a recipient whose channel is an ordinary generic webhook pointing at this process's own
``/api/v1/demo/inbox/<unit>``: the alert worker delivers to it exactly as it would to a county's receiver (the
outbox, the rate limits, the HMAC signature), and the dashboard's 演示收件箱 page lists what arrived. Decisions:

* **Which recipients.** One township-role recipient per DEMO township (its patrol team's group) and one
  county-role recipient for the DEMO county (its supervisors, whom escalations reach); no county-wide duty group,
  which would get every township's alert twice. They are named ``DEMO inbox <code>`` and recognised by that name,
  a ``DEMO`` unit code and a target on the inbox path together (:func:`is_demo_recipient`): a recipient someone
  added by hand is never touched. They exist only while the service serves the DEMO region: a database with real
  regions gets none, even with ``--demo``.
* **When.** At every start in demo mode (:func:`provide_demo_recipients`, idempotent: the same rows, their target
  set to the address ``strawfire serve`` listens on and a new signing secret), before the alert worker starts.
  ``strawfire demo load`` does not make them: it cannot know the address the server will listen on. The demo's
  fires that came in before the recipients existed are sent their alert by the worker's first pass (late, as for
  any unit that has had a recipient added since its fire came in), so no fire is escalated as unreachable; those
  that came in more than 24 h before are left untold, as any (``service.alerts.escalation.CATCH_UP``).
* **Outside demo mode** the inbox does not exist (its routes are not mounted: 404), and a start on a database
  that once ran the demo retires the recipients (:func:`retire_demo_recipients`): deactivated, and their alerts
  still pending withdrawn with the reason recorded on the incident (``why``: ``retired``, worded on the dashboard),
  so that a real deployment never queues an alert for an address nobody reads and never shows alerts failing
  against a 404. A withdrawn alert tells nobody: the fires it was for are escalated by the next pass, or sent to a
  real recipient added since, as fires in a unit without recipients (``service.alerts.escalation``).
* **The signing secret** is made at each start and kept in memory (:class:`DemoInbox`) and on the recipients,
  where the sender reads it. The receiving endpoint checks the ``X-Strawfire-Signature`` HMAC and refuses a
  timestamp more than :data:`MAX_CLOCK_SKEW_S` away, as a real receiver should; a message with a wrong or missing
  signature is refused (401) and not shown. A repeat of the same ``Idempotency-Key`` (a resend after a lost
  answer) is answered 200 and shown once.
* **What is kept**: the last :data:`INBOX_SIZE` messages in memory, newest first; a restart empties the inbox (the
  alerts' outbox rows and the incidents' records keep the history). A digest is kept as its alerts, each marked.
* **Who reads it** (``GET /api/v1/demo/inbox``): admins all of it; supervisors and patrol teams the messages for
  their own unit and the units under it, as they see incidents (the county supervisor sees every DEMO township's
  alerts and the county's escalations; demo-patrol sees 北岗镇's). Evaluators judge the record, not the message
  traffic, and devices only post observations: both are refused (403).
* One demo server per database: a second ``serve --demo`` on the same database points the recipients at itself.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.alerts import service as alerts_service
from service.alerts.channels import sign_webhook
from service.alerts.outbox import LAPSED, withdraw
from service.alerts.tables import Alert, AlertStatus, Channel, Recipient, RecipientRole
from service.db import utcnow
from service.demo import DEMO_LABEL
from service.deps import Actor, SessionDep
from service.errors import InputError
from service.incidents.states import Role
from service.regions.tables import Region
from service.regions.types import RegionLevel

log = logging.getLogger("strawfire.demo")

#: Where the demo recipients deliver: ``<INBOX_PATH>/<unit code>`` (the routes of :data:`router`).
INBOX_PATH = "/api/v1/demo/inbox"
#: The name of a generated demo recipient is this and its unit code: ``DEMO inbox DEMO01``.
RECIPIENT_NAME = "DEMO inbox"
#: Messages kept in memory (the demo's dozen fires, their reminders and escalations fit many times over).
INBOX_SIZE = 200
#: A signed message whose timestamp is further than this from the server's clock is refused (a replay).
MAX_CLOCK_SKEW_S = 300
#: Why a demo recipient's pending alert was withdrawn at a start without ``--demo`` (its ``why`` code: ``retired``).
RETIRED = LAPSED["retired"]

router = APIRouter(prefix="/api/v1/demo", tags=["demo"])


class InboxMessageRead(BaseModel):
    """A received alert as the dashboard lists it: who it was for and what its webhook body said."""

    model_config = ConfigDict(frozen=True)

    received_at: datetime
    unit_code: str  # the recipient's unit (from the address it was sent to)
    kind: str  # new | reminder | escalation
    title: str
    incident_id: int
    unit_name: str
    county_name: str | None
    observed_at: str
    state: str
    escalation_reason: str | None
    digest: bool  # arrived inside a township digest


class InboxMessage(InboxMessageRead):
    """One alert as the inbox keeps it: what the dashboard lists, and its ``Idempotency-Key`` (not listed)."""

    idempotency_key: str


class DemoInbox:
    """The last :data:`INBOX_SIZE` messages and the secret they must be signed with (thread-safe: the endpoint runs
    in the server's thread pool while the dashboard reads)."""

    def __init__(self, secret: str | None = None, size: int = INBOX_SIZE) -> None:
        self.secret = secret or secrets.token_urlsafe(32)
        self._messages: deque[InboxMessage] = deque(maxlen=size)
        self._keys: deque[str] = deque(maxlen=size)  # the Idempotency-Keys seen, to show a resend once
        self._lock = threading.Lock()

    def verify(self, timestamp: str | None, signature: str | None, body: bytes, *, now: float | None = None) -> bool:
        """Whether the body is signed with this inbox's secret at a timestamp close to ``now`` (unix seconds)."""
        if not timestamp or not signature or not signature.startswith("sha256="):
            return False
        try:
            sent_at = int(timestamp)
        except ValueError:
            return False
        if abs((time.time() if now is None else now) - sent_at) > MAX_CLOCK_SKEW_S:
            return False
        expected = sign_webhook(self.secret, timestamp, body)
        return hmac.compare_digest(expected, signature.removeprefix("sha256="))

    def accept(self, key: str, messages: Iterable[InboxMessage]) -> bool:
        """Keep ``messages`` unless ``key`` was seen already; True when they were new."""
        with self._lock:
            if key in self._keys:
                return False
            self._keys.append(key)
            self._messages.extend(messages)
            return True

    def messages(self, units: set[str] | None = None) -> list[InboxMessage]:
        """What arrived, newest first; only for ``units`` when given."""
        with self._lock:
            kept = list(self._messages)
        return [m for m in reversed(kept) if units is None or m.unit_code in units]


# -- the recipients ------------------------------------------------------------------------------------------------


def inbox_base_url(host: str, port: int) -> str:
    """The address the alert worker reaches this server on: the bound host, or the loopback for a wildcard bind."""
    if host in ("", "0.0.0.0"):  # noqa: S104  (a bind to every address; the loopback is one of them)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal in a URL
    return f"http://{host}:{port}"


def recipient_name(unit_code: str) -> str:
    """``DEMO inbox DEMO01``."""
    return f"{RECIPIENT_NAME} {unit_code}"


def is_demo_recipient(recipient: Recipient) -> bool:
    """Whether a recipient is one :func:`provide_demo_recipients` made (name, DEMO unit and inbox target)."""
    return (
        recipient.name == recipient_name(recipient.unit_code)
        and recipient.unit_code.startswith(DEMO_LABEL)
        and recipient.channel == Channel.WEBHOOK.value
        and urllib.parse.urlsplit(recipient.target).path.startswith(INBOX_PATH + "/")
    )


def _demo_recipients(session: Session) -> list[Recipient]:
    rows = session.scalars(
        select(Recipient).where(Recipient.name.startswith(RECIPIENT_NAME), Recipient.unit_code.startswith(DEMO_LABEL))
    )
    return [r for r in rows if is_demo_recipient(r)]


def provide_demo_recipients(session: Session, base_url: str, secret: str) -> list[Recipient]:
    """Give every DEMO unit its inbox recipient (inside the caller's transaction; idempotent): the county a
    county-role one, each township a township-role one, all delivering to ``<base_url>/api/v1/demo/inbox/<code>``
    signed with ``secret``. Existing ones are re-pointed, given the secret and reactivated."""
    units = session.execute(
        select(Region.code, Region.level).where(Region.code.startswith(DEMO_LABEL)).order_by(Region.code)
    ).all()
    existing = {r.unit_code: r for r in _demo_recipients(session)}
    out = []
    for code, level in units:
        role = RecipientRole.COUNTY if level == RegionLevel.COUNTY.value else RecipientRole.TOWNSHIP
        target = f"{base_url.rstrip('/')}{INBOX_PATH}/{code}"
        recipient = existing.get(code)
        if recipient is None:
            recipient = alerts_service.create_recipient(
                session,
                name=recipient_name(code),
                unit_code=code,
                channel=Channel.WEBHOOK,
                target=target,
                secret=secret,
                role=role,
            )
        else:
            recipient.target, recipient.secret, recipient.role, recipient.active = target, secret, role.value, True
        out.append(recipient)
    session.flush()
    return out


def retire_demo_recipients(session: Session) -> tuple[int, int]:
    """Deactivate the demo recipients and withdraw their pending alerts (inside the caller's transaction), each
    withdrawal recorded on its incident; (recipients deactivated, alerts withdrawn)."""
    every = _demo_recipients(session)
    recipients = [r for r in every if r.active]
    ids = [r.id for r in every]
    for recipient in recipients:
        recipient.active = False
    withdrawn = 0
    if ids:
        pending = session.scalars(
            select(Alert)
            .where(Alert.recipient_id.in_(ids), Alert.status == AlertStatus.PENDING.value)
            .order_by(Alert.id)
        ).all()
        now = utcnow()
        for alert in pending:
            withdraw(session, alert, RETIRED, now)
        withdrawn = len(pending)
    session.flush()
    return len(recipients), withdrawn


def wait_until_listening(host: str, port: int, stop: threading.Event, timeout_s: float = 10.0) -> bool:
    """Wait until something accepts connections on the inbox's address (the server itself, which binds its socket
    only after the app's start-up); False when ``timeout_s`` passed or ``stop`` was set first.

    Why: the alert worker starts during the app's start-up, and its first pass would otherwise post the demo's
    alerts before the socket is open, log a connection error for each and send them again 5 s later."""
    url = urllib.parse.urlsplit(inbox_base_url(host, port))
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            stop.wait(0.05)
    return False


# -- the endpoints ---------------------------------------------------------------------------------------------


class Received(BaseModel):
    """The webhook's answer: how many alerts the request carried and whether they were new (not a resend)."""

    alerts: int
    new: bool


def _inbox(request: Request) -> DemoInbox:
    inbox: DemoInbox | None = getattr(request.app.state, "demo_inbox", None)
    if inbox is None:  # the routes are only mounted in demo mode; this is a start-up that has not finished
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the DEMO inbox exists only with --demo")
    return inbox


def _parse(unit_code: str, body: bytes, at: datetime) -> list[InboxMessage]:
    """The alerts of a webhook body (one alert, or ``{"digest": [...]}``); 422 for anything else."""
    try:
        payload = json.loads(body)
        digest = isinstance(payload, dict) and isinstance(payload.get("digest"), list)
        items: list[Any] = payload["digest"] if digest else [payload]
        return [
            InboxMessage(
                received_at=at,
                unit_code=unit_code,
                kind=str(item["kind"]),
                title=str(item["title"]),
                incident_id=int(item["incident_id"]),
                unit_name=str(item["unit_name"]),
                county_name=None if item.get("county_name") is None else str(item["county_name"]),
                observed_at=str(item["observed_at"]),
                state=str(item["state"]),
                escalation_reason=item.get("escalation_reason"),
                idempotency_key=str(item["idempotency_key"]),
                digest=digest,
            )
            for item in items
        ]
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError("not a strawfire alert webhook body") from exc


OptionalHeader = Annotated[str | None, Header()]


@router.post("/inbox/{unit_code}")
async def receive(
    unit_code: str,
    request: Request,
    x_strawfire_timestamp: OptionalHeader = None,
    x_strawfire_signature: OptionalHeader = None,
    idempotency_key: OptionalHeader = None,
) -> Received:
    """The demo recipients' webhook: a signed strawfire alert (or digest) for a DEMO unit, kept for the inbox page.

    Authenticated by its signature, not by a user: 401 when it is missing, wrong or too old, 404 for a unit that
    is not a DEMO one."""
    inbox = _inbox(request)
    if not unit_code.startswith(DEMO_LABEL):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the DEMO inbox takes alerts for DEMO units only")
    body = await request.body()
    if not inbox.verify(x_strawfire_timestamp, x_strawfire_signature, body):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing, wrong or stale X-Strawfire-Signature")
    messages = _parse(unit_code, body, datetime.now(UTC))
    key = idempotency_key or ",".join(m.idempotency_key for m in messages)
    return Received(alerts=len(messages), new=inbox.accept(key, messages))


def _visible_units(session: Session, unit_code: str | None) -> set[str]:
    """A unit and the units directly under it (a county's townships)."""
    if not unit_code:
        return set()
    return {unit_code, *session.scalars(select(Region.code).where(Region.parent_code == unit_code))}


@router.get("/inbox")
def list_inbox(principal: Actor, session: SessionDep, request: Request) -> list[InboxMessageRead]:
    """The alerts the DEMO inbox received, newest first: all for admins, their unit's and those of the units under
    it for supervisors and patrol teams (evaluators and devices: 403)."""
    inbox = _inbox(request)
    units = None if principal.role is Role.ADMIN else _visible_units(session, principal.unit_code)
    # Sent as the declared type: the kept messages less their Idempotency-Key.
    return list[InboxMessageRead](inbox.messages(units))
