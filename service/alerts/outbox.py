"""The transactional outbox: alerts are written with the incident change and delivered later by a worker.

* **Enqueue** (:func:`enqueue`) runs inside the caller's transaction, so an incident and its alerts commit or
  roll back together; the unique idempotency key (incident, recipient, kind[, round]) means a recipient never
  gets the same alert twice, however often the enqueue runs.
* **Deliver** (:func:`deliver_due`) claims due alerts with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
  several workers can run), sends them outside any transaction, then records the outcome. Ingestion never waits
  for a channel. A worker killed mid-send leaves the alert pending; once the lease expires it is sent again,
  carrying the same ``Idempotency-Key`` so that the receiver can drop the repeat. The lease is renewed before each
  send, and an alert another worker has taken over since is skipped: a slow batch never sends it twice.
* **Failures** are retried with exponential backoff (5 s doubling to 10 min, or what the platform asked for)
  until the retry horizon (24 h) passes; then the alert is ``failed`` and shows up for supervisors. A township
  whose new-fire alert failed on every channel never heard of the fire: the incident is escalated to the county
  at once, the record saying the township could not be reached (:func:`escalate_unreachable`).
* **Rate limits**: at most ``rate_per_min`` requests to one target (bot) in any 60 s, counted over every recipient
  that shares it (the platforms limit a bot, not a recipient); when more are due than the window allows, each
  recipient's alerts go out as one township digest.
* **A slow or dead target holds up only its own alerts**: targets are sent to side by side, each one's alerts in
  order; once a target times out, refuses the connection or says to wait (429 ``Retry-After``), the rest of its
  alerts wait with the one that found it so instead of each being tried (:func:`_deliver_to_target`), and the
  alert worker's passes do not wait for a target that hangs (:class:`SendingLanes`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from service.alerts.channels import DEFAULT_RATE_PER_MIN, DeliveryError, Destination, Sender, safe_url
from service.alerts.coverage import supervisors_unit
from service.alerts.messages import OVERDUE, UNREACHABLE, AlertMessage
from service.alerts.tables import Alert, AlertKind, AlertStatus, Channel, Recipient, RecipientRole
from service.auth.service import SYSTEM
from service.db import utcnow
from service.incidents.service import record_event, transition
from service.incidents.states import IncidentState
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.types import RegionLevel

log = logging.getLogger("strawfire.alerts")

T = TypeVar("T")

LEASE = timedelta(seconds=60)
RETRY_HORIZON = timedelta(hours=24)
_WINDOW = timedelta(seconds=60)


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 5 s, 10 s, 20 s … capped at 10 min."""
    return timedelta(seconds=min(600.0, 5.0 * 2 ** max(0, attempts - 1)))


def alert_round(since: datetime) -> int:
    """The round of a reminder or escalation: the deadline's start (notified, reopened or acknowledged at), in
    whole seconds. One alert per missed deadline, and a new one for the next: a fixed round number had let only
    the first escalation, or the first reminder after a reopening, ever reach anyone."""
    return int(since.timestamp())


def idempotency_key(incident_id: int, recipient_id: int, kind: AlertKind, round_no: int = 0) -> str:
    """The key that makes an alert unique per (incident, recipient, kind[, round])."""
    base = f"{incident_id}:{recipient_id}:{kind.value}"
    return f"{base}:{round_no}" if round_no else base


def enqueue(
    session: Session,
    incident: Incident,
    kind: AlertKind,
    *,
    role: RecipientRole = RecipientRole.TOWNSHIP,
    round_no: int = 0,
    now: datetime | None = None,
) -> list[Alert]:
    """Queue ``kind`` alerts for every active recipient of the incident's township or county (idempotent; an alert
    of the same key that was withdrawn, never sent, is queued again)."""
    return enqueue_many(session, [incident], kind, role=role, round_no=round_no, now=now)


def enqueue_many(
    session: Session,
    incidents: Sequence[Incident],
    kind: AlertKind,
    *,
    role: RecipientRole = RecipientRole.TOWNSHIP,
    round_no: int = 0,
    now: datetime | None = None,
) -> list[Alert]:
    """:func:`enqueue` for many incidents with two queries in all (an ingest can open thousands)."""
    units = {code for i in incidents for code in (i.township_code, i.county_code) if code}
    if not units:
        return []
    recipients = session.scalars(
        select(Recipient)
        .where(Recipient.active.is_(True), Recipient.role == role.value, Recipient.unit_code.in_(sorted(units)))
        .order_by(Recipient.id)
    ).all()
    pairs = [
        (incident, recipient)
        for incident in incidents
        for recipient in recipients
        if recipient.unit_code in (incident.township_code, incident.county_code)
    ]
    return _queue(session, pairs, kind, round_no=round_no, now=now)


def _queue(
    session: Session,
    pairs: Sequence[tuple[Incident, Recipient]],
    kind: AlertKind,
    *,
    round_no: int,
    now: datetime | None,
) -> list[Alert]:
    """Queue one ``kind`` alert per (incident, recipient) pair, or re-arm its withdrawn one (see :func:`enqueue`)."""
    wanted = [
        (incident, recipient, idempotency_key(incident.id, recipient.id, kind, round_no))
        for incident, recipient in pairs
    ]
    keys = [key for _, _, key in wanted]
    existing: set[str] = set()
    rearmed: list[Alert] = []
    for start in range(0, len(keys), 500):
        for alert in session.scalars(select(Alert).where(Alert.idempotency_key.in_(keys[start : start + 500]))):
            existing.add(alert.idempotency_key)
            if alert.status == AlertStatus.WITHDRAWN.value:
                # Withdrawn, never sent, and due again (the fire moved away and back): queued again. It held the
                # key, so the recipient was otherwise never told; re-sending is still once per key.
                alert.status = AlertStatus.PENDING.value
                alert.next_attempt_at = now or utcnow()
                alert.lease_until = None
                alert.last_error = None  # the withdrawal stays on the incident's record (alert_withdrawn)
                rearmed.append(alert)
    created = [
        Alert(
            incident_id=incident.id,
            recipient_id=recipient.id,
            kind=kind.value,
            idempotency_key=key,
            next_attempt_at=now or utcnow(),
        )
        for incident, recipient, key in wanted
        if key not in existing
    ]
    session.add_all(created)
    session.flush()
    return [*rearmed, *created]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one :func:`deliver_due` pass did."""

    claimed: int
    sent: int
    digests: int
    retried: int
    failed: int
    withdrawn: int = 0


#: States in which "not acknowledged yet, again" is still true (those the escalation pass reminds in, and before).
_UNACKNOWLEDGED = frozenset({IncidentState.SUSPECTED.value, IncidentState.NOTIFIED.value, IncidentState.REOPENED.value})
_ENDED = frozenset({IncidentState.CLOSED.value, IncidentState.FALSE_ALARM.value})


def acknowledged_since_notified(
    *, acknowledged_at: datetime | None, notified_at: datetime | None, reopened_at: datetime | None
) -> bool:
    """Whether the team acknowledged in the incident's current round (since it was notified, or reopened since).

    ``escalated`` says nothing about it: the escalation pass escalates a notified incident nobody acknowledged as
    well as an acknowledged one whose team is not on site, and an acknowledgement of an earlier round (before a
    reopening) is not one of this round."""
    if acknowledged_at is None:
        return False
    start = max((t for t in (notified_at, reopened_at) if t is not None), default=None)
    return start is None or acknowledged_at >= start


def lapsed_reason(
    kind: AlertKind, state: str, unit_code: str, units: tuple[str | None, ...], *, acknowledged: bool | None = None
) -> str | None:
    """Why an alert due now is no longer worth sending, or ``None`` (pure).

    An alert waits in the outbox while its channel is down; by the time it could go out the incident may have
    moved on, and sending it then misleads: "未签收，再次提醒" to a team that has acknowledged, a new fire for an
    incident merged into another or closed, a fire of a unit it no longer belongs to. An escalation stands: the
    missed deadline it reports stays missed.

    ``acknowledged`` (:func:`acknowledged_since_notified`) decides a reminder of an ``escalated`` incident, whose
    state alone does not say whether anyone acknowledged; without it such a reminder stands.
    """
    if kind is AlertKind.ESCALATION:
        return None
    if unit_code not in units:
        return LAPSED["moved"]
    if state in _ENDED:
        return LAPSED["false_alarm" if state == IncidentState.FALSE_ALARM.value else "closed"]
    if kind is AlertKind.REMINDER and state not in _UNACKNOWLEDGED:
        if state == IncidentState.ESCALATED.value and not acknowledged:
            return None  # escalated because nobody acknowledged: the reminder is still true
        return LAPSED["acknowledged"]
    return None


#: Why an alert lapsed (:func:`lapsed_reason`), by the code its ``alert_withdrawn`` event's data carries (``why``)
#: for the dashboard to word in its reader's language; the sentence is the alert's ``last_error`` and the note.
LAPSED: dict[str, str] = {
    "moved": "the incident moved to another unit before the alert went out",
    "false_alarm": "the incident was declared a false alarm before the alert went out",
    "closed": "the incident was closed before the alert went out",
    "acknowledged": "the incident was acknowledged before the reminder went out",
    # Not a lapse of the incident's but of the recipient: a DEMO inbox recipient retired at a start without the demo
    # (service.demo_inbox.retire_demo_recipients), or one an admin disabled (service.alerts.service.
    # set_recipient_active) or deactivated otherwise, its alerts still pending withdrawn rather than sent or failing.
    "retired": "its recipient was retired before the alert went out",
}
_LAPSED_CODES = {sentence: code for code, sentence in LAPSED.items()}


def _claim(
    factory: sessionmaker[Session], now: datetime, batch: int, skip_targets: Sequence[str] = ()
) -> dict[int, datetime]:
    """Lease up to ``batch`` due alerts, none of whose recipients' target is in ``skip_targets``: {alert id: the
    lease this worker holds on it}."""
    with factory() as session, session.begin():
        query = (
            select(Alert)
            .where(
                Alert.status == AlertStatus.PENDING.value,
                Alert.next_attempt_at <= now,
                or_(Alert.lease_until.is_(None), Alert.lease_until < now),
            )
            .order_by(Alert.next_attempt_at, Alert.id)
            .limit(batch)
        )
        if skip_targets:
            sending = select(Recipient.id).where(Recipient.target.in_(sorted(skip_targets)))
            query = query.where(Alert.recipient_id.not_in(sending))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        alerts = session.scalars(query).all()
        for alert in alerts:
            alert.lease_until = now + LEASE
        return {a.id: now + LEASE for a in alerts}


def _renew(factory: sessionmaker[Session], held: dict[int, datetime], ids: list[int], at: datetime) -> list[int]:
    """Of ``ids``, those this worker still holds (pending, under the lease it took or last renewed, as ``held``
    records), their leases renewed from ``at``. Why: a batch sends one alert after another, with up to 10 s of
    timeout each, so its last alerts can outlive the lease taken at the start; another worker may have claimed
    them since, and sending them too would be a double alert."""
    until = at + LEASE
    mine: list[int] = []
    with factory() as session, session.begin():
        query = select(Alert).where(Alert.id.in_(ids)).order_by(Alert.id)  # locked in id order (see lock_incidents)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        for alert in session.scalars(query):
            if alert.status == AlertStatus.PENDING.value and alert.lease_until == held[alert.id]:
                alert.lease_until = until
                held[alert.id] = until
                mine.append(alert.id)
    return sorted(mine, key=ids.index)


def _message(session: Session, alert: Alert, incident: Incident, recipient: Recipient, base_url: str) -> AlertMessage:
    sources = tuple(
        sorted(set(session.scalars(select(Observation.kind).where(Observation.incident_id == incident.id))))
    )
    unit = incident.township_name or incident.county_name or recipient.unit_code
    return AlertMessage.build(
        incident_id=incident.id,
        kind=AlertKind(alert.kind),
        unit_name=unit,
        county_name=incident.county_name,
        latitude=incident.latitude,
        longitude=incident.longitude,
        observed_at=incident.first_observed_at,
        sources=sources,
        confidence=incident.confidence,
        state=incident.state,
        base_url=base_url,
        idempotency_key=alert.idempotency_key,
        escalation_reason=escalation_reason(session, alert) if alert.kind == AlertKind.ESCALATION.value else None,
        unit_level=acting_level(incident),
    )


def _sent_recently(session: Session, target: str, now: datetime) -> int:
    """Requests to ``target`` in the last minute, whichever recipient they were for: one group bot may be the
    recipient of several townships (or of a township and its county), and the platform counts the bot."""
    # A digest counts once: one request to the platform.
    count = session.scalar(
        select(func.count(func.distinct(Alert.sent_at)))
        .join(Recipient, Recipient.id == Alert.recipient_id)
        .where(Recipient.target == target, Alert.status == AlertStatus.SENT.value, Alert.sent_at > now - _WINDOW)
    )
    return int(count or 0)


def deliver_due(
    factory: sessionmaker[Session],
    sender: Sender,
    *,
    base_url: str,
    now: Callable[[], datetime] = utcnow,
    batch: int = 100,
    lanes: SendingLanes | None = None,
) -> DeliveryReport:
    """Claim and deliver the alerts that are due; record every outcome.

    Without ``lanes`` the pass sends to up to :data:`PARALLEL_TARGETS` targets side by side and returns when all
    are done. With them (the alert worker's), it sends on their threads, kept from pass to pass, and returns once
    every target is done or :attr:`SendingLanes.wait_s` has passed: a target that hangs goes on in the background
    (its outcome recorded when it ends, left out of the report) while the next passes claim the alerts of every
    other target, the deadlines' escalations with them; its own alerts are not claimed while it is being sent to
    (one request at a time to a target, in order)."""
    started = now()
    claimed = _claim(factory, started, batch, lanes.busy() if lanes is not None else ())
    if not claimed:
        return DeliveryReport(0, 0, 0, 0, 0)
    with factory() as session:
        by_recipient: dict[int, list[Alert]] = defaultdict(list)
        for alert in session.scalars(select(Alert).where(Alert.id.in_(list(claimed))).order_by(Alert.id)):
            by_recipient[alert.recipient_id].append(alert)
        work: list[_Work] = []
        lapsed: dict[int, str] = {}
        # Requests per target in the last minute, then also those this pass plans: the limit is the bot's.
        requests: dict[str, int] = {}
        for recipient_id, claimed_alerts in by_recipient.items():
            recipient = session.get_one(Recipient, recipient_id)
            if not recipient.active:
                # Deactivated by whatever route (strawfire alerts disable-recipient, the API, a start without the
                # demo, an UPDATE by hand): nobody is to receive its alerts any more. An alert being retried had
                # still gone out once its channel was back. Withdrawn, as disabling withdraws them.
                for alert in claimed_alerts:
                    lapsed[alert.id] = LAPSED["retired"]
                continue
            # Each with its incident, held for _message: the session keeps unchanged objects only while they are used.
            alerts: list[tuple[Alert, Incident]] = []
            for alert in claimed_alerts:
                incident = session.get_one(Incident, alert.incident_id)
                units = (incident.township_code, incident.county_code)
                acknowledged = acknowledged_since_notified(
                    acknowledged_at=incident.acknowledged_at,
                    notified_at=incident.notified_at,
                    reopened_at=incident.reopened_at,
                )
                reason = lapsed_reason(
                    AlertKind(alert.kind), incident.state, recipient.unit_code, units, acknowledged=acknowledged
                )
                if reason is None:
                    alerts.append((alert, incident))
                else:
                    lapsed[alert.id] = reason
            if not alerts:
                continue
            limit = recipient.rate_per_min or DEFAULT_RATE_PER_MIN[Channel(recipient.channel)]
            if recipient.target not in requests:
                requests[recipient.target] = _sent_recently(session, recipient.target, started)
            messages = [_message(session, a, incident, recipient, base_url) for a, incident in alerts]
            destination = Destination(Channel(recipient.channel), recipient.target, recipient.secret)
            work.append(_Work(recipient.id, destination, [a.id for a, _ in alerts], messages, limit))
    withdrawn = _withdraw(factory, claimed, lapsed, now()) if lapsed else 0
    # Each target's alerts in order, the targets side by side (see _deliver_to_target).
    by_target: dict[str, list[_Work]] = defaultdict(list)
    for item in work:
        by_target[item.destination.target].append(item)

    stopping = lanes.stopping if lanes is not None else None

    def deliver_to(target: str) -> _Tally:
        return _deliver_to_target(
            factory, sender, claimed, by_target[target], requests[target], now, started, stopping
        )

    if lanes is not None:
        sending = [lanes.submit(target, partial(deliver_to, target)) for target in by_target]
        done, _ = wait(sending, timeout=lanes.wait_s)
        tallies = [future.result() for future in done if not future.cancelled() and future.exception() is None]
        lanes.raise_failure()
    elif len(by_target) <= 1:
        tallies = [deliver_to(target) for target in by_target]
    else:
        workers = min(PARALLEL_TARGETS, len(by_target))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="strawfire-alert-send") as pool:
            tallies = list(pool.map(deliver_to, by_target))
    return DeliveryReport(
        len(claimed),
        sum(t.sent for t in tallies),
        sum(t.digests for t in tallies),
        sum(t.retried for t in tallies),
        sum(t.failed for t in tallies),
        withdrawn,
    )


#: How many targets one pass sends to at the same time (each target's alerts one after another, in order).
PARALLEL_TARGETS = 8


class SendingLanes:
    """The alert worker's sending threads, kept from pass to pass, and the targets being sent to on them.

    Why: a pass that waited for every target waited for the slowest; with one township's channel hanging (a 10 s
    timeout a try) a neighbour's new fire, or the county's escalation, queued meanwhile waited for it. A pass now
    waits at most ``wait_s`` for its targets (:func:`deliver_due`); the next claims none of the alerts of a target
    still being sent to, so each target still gets one request at a time, in order. ``workers`` targets at once:
    beyond that, a target's alerts wait for a thread, under the lease they were claimed with (renewed before each
    send, as ever).

    An error a sending thread did not expect (a database error, say: its alerts stay leased and are sent again
    once the lease runs out) is raised by the worker's pass that ends after it (:meth:`raise_failure`), so that the
    worker logs it and the system status shows it, as when a pass sent on its own thread. :meth:`close` stops the
    sending: ``stopping`` is set, and each target's sending ends after the request under way."""

    def __init__(self, workers: int = PARALLEL_TARGETS, wait_s: float = 2.0) -> None:
        self.wait_s = wait_s
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="strawfire-alert-send")
        self._busy: set[str] = set()
        self._sending: set[Future[_Tally]] = set()
        self._failures: list[Exception] = []
        self._lock = threading.Lock()

    def busy(self) -> list[str]:
        """The targets being sent to now."""
        with self._lock:
            return sorted(self._busy)

    def submit(self, target: str, send: Callable[[], _Tally]) -> Future[_Tally]:
        """Send to ``target`` on a lane; it is busy until ``send`` returns."""
        with self._lock:
            self._busy.add(target)
            self._sending = {future for future in self._sending if not future.done()}
            future = self._pool.submit(self._send, target, send)
            self._sending.add(future)
        return future

    def _send(self, target: str, send: Callable[[], _Tally]) -> _Tally:
        # The failure is kept and the target freed before the future is done: a pass that sees it done sees both.
        try:
            return send()
        except Exception as exc:
            exc.add_note(f"sending alerts to {safe_url(target)}")  # in the traceback the worker logs
            with self._lock:
                self._failures.append(exc)
            raise
        finally:
            with self._lock:
                self._busy.discard(target)

    def _take_failures(self) -> list[Exception]:
        with self._lock:
            failures, self._failures = self._failures, []
        return failures

    def raise_failure(self) -> None:
        """Raise the first error of a sending thread not raised yet (the others are logged), if any."""
        failures = self._take_failures()
        for other in failures[1:]:
            log.error("sending alerts failed", exc_info=other)
        if failures:
            raise failures[0]

    def close(self, timeout: float | None = None) -> None:
        """Start no more sends, and wait up to ``timeout`` s for those under way (each ends within its channel's
        timeout): the alerts a target had left stay pending, sent again when their lease runs out."""
        self.stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            sending = list(self._sending)
        wait(sending, timeout=timeout)
        for failure in self._take_failures():
            log.error("sending alerts failed", exc_info=failure)


@dataclass(frozen=True, slots=True)
class _Work:
    """One recipient's alerts of a pass, ready to send: their ids and messages, and its target's rate limit."""

    recipient_id: int
    destination: Destination
    alert_ids: list[int]
    messages: list[AlertMessage]
    limit: int


@dataclass(slots=True)
class _Tally:
    """What a pass did with one target's alerts (summed into the :class:`DeliveryReport`)."""

    sent: int = 0
    digests: int = 0
    retried: int = 0
    failed: int = 0


def _deliver_to_target(
    factory: sessionmaker[Session],
    sender: Sender,
    held: dict[int, datetime],
    work: list[_Work],
    sent_recently: int,
    now: Callable[[], datetime],
    started: datetime,
    stopping: threading.Event | None = None,
) -> _Tally:
    """Send one target's alerts of a pass, in order (``sent_recently``: its requests in the last minute), until
    ``stopping`` is set (the worker stopping: the alerts left stay pending under their lease).

    Decisions, so that one township's dead or slow channel holds up nobody else's alerts:

    * the pass delivers to :data:`PARALLEL_TARGETS` targets at once (or on the worker's :class:`SendingLanes`),
      each target's alerts one after another in the order queued (per-target order and rate limits stay as they
      were). A target that hangs holds up only its own alerts: a neighbouring township's new fire and the
      county's escalations go out meanwhile;
    * once the target times out, refuses the connection or says to wait (HTTP 429 with its ``Retry-After``, a
      bot's rate-limit code), its remaining alerts of the pass are not sent: each is recorded as a failed attempt
      with the same error, due again when the one that failed is (its backoff, or the ``Retry-After``). Then the
      target is tried again with one alert at a time rather than all of them, each waiting out the same 10 s
      timeout (ten fires of one township held everything behind them for 100 s) or hammering a platform that
      asked to wait. They count as attempts, with the error, because they were due and could not be delivered:
      a township's alert that was held back is an undelivered one for the escalation deadline and the retry
      horizon, as if it had been tried. An error of the message itself (an HTTP 500, a bot's error code) holds
      back nothing: the next alert may go through.
    """
    tally = _Tally()
    requests = sent_recently
    # (error, due again at) once the target was found unavailable in this pass.
    unavailable: tuple[str, datetime] | None = None
    for item in work:
        alert_ids, messages, destination = item.alert_ids, item.messages, item.destination
        if unavailable is not None:
            _hold_back(factory, held, alert_ids, unavailable, now(), tally)
            continue
        capacity = item.limit - requests
        if capacity <= 0:
            _postpone(factory, alert_ids, started + timedelta(seconds=15))
            continue
        # Within the limit: one request per alert. Over it: everything due as one digest.
        groups = [[i] for i in range(len(messages))] if len(messages) <= capacity else [list(range(len(messages)))]
        requests += len(groups)
        for group in groups:
            if stopping is not None and stopping.is_set():
                return tally
            if unavailable is not None:
                _hold_back(factory, held, [alert_ids[i] for i in group], unavailable, now(), tally)
                continue
            ids = _renew(factory, held, [alert_ids[i] for i in group], now())
            if not ids:
                continue  # another worker took them over after our lease ran out: it sends them
            kept = [i for i in group if alert_ids[i] in ids]
            try:
                sender.send(destination, [messages[i] for i in kept])
            except DeliveryError as exc:
                outcome, due = _failed_until(factory, ids, str(exc), exc.retry_after, now())
                tally.retried += outcome == "retry"
                tally.failed += outcome == "failed"
                log.warning("alert %s to recipient %s failed: %s", ids, item.recipient_id, exc)
                if exc.target_unavailable:
                    unavailable = (str(exc), due)
                continue
            _delivered(factory, ids, now(), digest=len(kept) > 1)
            tally.sent += len(ids)
            tally.digests += len(kept) > 1
    return tally


def _hold_back(
    factory: sessionmaker[Session],
    held: dict[int, datetime],
    alert_ids: list[int],
    unavailable: tuple[str, datetime],
    at: datetime,
    tally: _Tally,
) -> None:
    """Record the alerts this worker still holds as failed attempts of an unavailable target, due again with the
    alert that found it so (see :func:`_deliver_to_target`)."""
    ids = _renew(factory, held, alert_ids, at)
    if not ids:
        return  # another worker took them over after our lease ran out
    error, due = unavailable
    outcome, _ = _failed_until(factory, ids, error, None, at, until=due)
    tally.retried += outcome == "retry"
    tally.failed += outcome == "failed"
    log.info("alerts %s not sent: their target is unavailable (%s); due again at %s", ids, error, due)


def _withdraw(factory: sessionmaker[Session], held: dict[int, datetime], lapsed: dict[int, str], at: datetime) -> int:
    """Mark the lapsed alerts this worker still holds ``withdrawn``, each with an event on its incident's record."""
    ids = _renew(factory, held, list(lapsed), at)
    with factory() as session, session.begin():
        # By incident, then alert: each event's row lock on its incident taken in id order (see lock_incidents).
        for alert in session.scalars(select(Alert).where(Alert.id.in_(ids)).order_by(Alert.incident_id, Alert.id)):
            withdraw(session, alert, lapsed[alert.id], at)
    return len(ids)


def withdraw(session: Session, alert: Alert, reason: str, at: datetime) -> None:
    """Mark an alert ``withdrawn``, never sent, because of ``reason`` (a sentence of :data:`LAPSED`: the alert's
    ``last_error``), with an ``alert_withdrawn`` event on its incident's record (inside the caller's transaction)."""
    alert.status = AlertStatus.WITHDRAWN.value
    alert.lease_until = None
    alert.last_error = reason
    record_event(
        session,
        session.get_one(Incident, alert.incident_id),
        SYSTEM,
        "alert_withdrawn",
        note=f"{alert.kind} alert to recipient {alert.recipient_id} not sent: {reason}",
        # The alert's kind and why, as codes for the dashboard's words (the note is the English original).
        data={
            "alert": alert.id,
            "recipient": alert.recipient_id,
            "alert_kind": alert.kind,
            "why": _LAPSED_CODES.get(reason),
        },
        at=at,
    )


def withdraw_pending(session: Session, recipient_ids: Sequence[int], at: datetime) -> int:
    """Withdraw the pending alerts of these recipients, deactivated (inside the caller's transaction): each
    ``withdrawn`` with the reason :data:`LAPSED` ``retired`` (``why``: ``retired``) recorded on its incident, as
    :func:`withdraw` records a lapse; how many.

    The alerts count as telling nobody from then on (:data:`TELLING`): a fire whose township recipients are all
    deactivated is caught by the escalation pass's "told nobody" path (its alert queued to another active recipient
    of the unit, else the county told at once), never left waiting on alerts nobody will send."""
    if not recipient_ids:
        return 0
    pending = session.scalars(
        select(Alert)
        .where(Alert.recipient_id.in_(list(recipient_ids)), Alert.status == AlertStatus.PENDING.value)
        .order_by(Alert.id)
    ).all()
    for alert in pending:
        withdraw(session, alert, LAPSED["retired"], at)
    session.flush()
    return len(pending)


def _postpone(factory: sessionmaker[Session], ids: list[int], until: datetime) -> None:
    with factory() as session, session.begin():
        for alert in session.scalars(select(Alert).where(Alert.id.in_(ids)).order_by(Alert.id)):
            alert.lease_until = None
            alert.next_attempt_at = until


def _failed(factory: sessionmaker[Session], ids: list[int], error: str, retry_after: float | None, at: datetime) -> str:
    """Record a failed attempt: retried later, or ``failed`` past the retry horizon (and the county told when that
    leaves the township unreached, :func:`escalate_unreachable`); the outcome (:func:`_failed_until`)."""
    return _failed_until(factory, ids, error, retry_after, at)[0]


def _failed_until(
    factory: sessionmaker[Session],
    ids: list[int],
    error: str,
    retry_after: float | None,
    at: datetime,
    *,
    until: datetime | None = None,
) -> tuple[str, datetime]:
    """Record a failed attempt as :func:`_failed` does; the outcome, and when the alerts are due again (the latest
    of them). Due again after ``retry_after`` seconds when the platform said so, at ``until`` when given (alerts
    held back behind another's failure), else after the backoff. Made again from the fresh state when a phone's
    concurrent move of the incident makes the escalation's write stale, as :func:`_delivered` is."""
    return retry_stale(
        lambda: _record_failure(factory, ids, error, retry_after, at, until),
        "alerts %s: the incident moved while the failure was recorded; recording it again",
        ids,
    )


def _record_failure(
    factory: sessionmaker[Session],
    ids: list[int],
    error: str,
    retry_after: float | None,
    at: datetime,
    until: datetime | None,
) -> tuple[str, datetime]:
    outcome = "retry"
    due = at
    with factory() as session, session.begin():
        given_up: list[Alert] = []
        for alert in session.scalars(select(Alert).where(Alert.id.in_(ids)).order_by(Alert.id)):
            alert.attempts += 1
            alert.lease_until = None
            alert.last_error = error[:1000]
            delay = timedelta(seconds=retry_after) if retry_after else backoff(alert.attempts)
            alert.next_attempt_at = until or at + delay
            due = max(due, alert.next_attempt_at)
            if at - alert.created_at > RETRY_HORIZON:
                alert.status = AlertStatus.FAILED.value
                outcome = "failed"
                given_up.append(alert)
        session.flush()  # the failures count in what escalate_unreachable reads
        if given_up:
            # Targets are sent to side by side (and by several workers): two recipients' last alerts of one
            # incident given up at once each saw the other still pending, and neither told the county. The
            # incident's row, locked, makes the second wait for the first and see its failure.
            lock_incidents(session, [alert.incident_id for alert in given_up])
        for alert in given_up:
            escalate_unreachable(session, alert, at)
    return outcome, due


#: States in which the township has not answered the fire yet: the ones an unreached township leaves it in.
AWAITING_TOWNSHIP = frozenset(
    {IncidentState.SUSPECTED.value, IncidentState.NOTIFIED.value, IncidentState.REOPENED.value}
)

#: Alerts still on their way or given up: a withdrawn one was never meant to reach anyone any more.
_UNDELIVERED = frozenset({AlertStatus.PENDING.value, AlertStatus.FAILED.value})

#: The new-fire alerts that count as telling a township (a condition on an alert joined with its recipient): not
#: withdrawn (never sent, and never to be: a lapse, or a retired DEMO inbox recipient's), and to a recipient still
#: active unless it was delivered already (a team that heard of the fire was told, whatever became of its group).
#: What :func:`township_alerts` and the escalation pass's "told nobody" count: a fire whose alerts are all
#: withdrawn had otherwise been taken as told, and was never alerted again nor escalated.
TELLING = and_(
    Alert.status != AlertStatus.WITHDRAWN.value,
    or_(Recipient.active.is_(True), Alert.status == AlertStatus.SENT.value),
)


def _round_of(key: str) -> int:
    """The round of an idempotency key (0 for the first round; see :func:`idempotency_key`)."""
    parts = key.split(":")
    return int(parts[3]) if len(parts) > 3 else 0


def new_fire_round(incident: Incident) -> int:
    """The round of the incident's current new-fire alerts: a reopened incident's are the reopening's
    (:func:`service.flows.transition_incident` queues them), every other incident's the first (0)."""
    if incident.state == IncidentState.REOPENED.value and incident.reopened_at is not None:
        return alert_round(incident.reopened_at)
    return 0


@dataclass(frozen=True, slots=True)
class TownshipAlerts:
    """The new-fire alerts of one round to those who act on an incident's unit (its township's recipients, and
    those of its county that act on alerts), as the decision whether the township was reached needs them."""

    unit: str  # the unit that acts on the fire
    delivered: bool  # one of them reached someone
    trying: bool  # one of them is still being retried (pending)
    attempted: bool  # one of them was tried at least once
    recipients: list[int]  # the recipients not reached, in id order
    error: str | None  # the last delivery error so far (of the latest-queued alert that has one)
    first_queued: datetime | None  # when the first of them was queued (the township would have been told then)


def township_alerts(session: Session, incidents: Sequence[Incident]) -> dict[int, TownshipAlerts]:
    """:class:`TownshipAlerts` of each incident's current round, by incident id (absent: no such alert, e.g. a unit
    without a township recipient; only alerts that count as telling it, :data:`TELLING`); one query per 500
    incidents."""
    by_id = {incident.id: incident for incident in incidents}
    found: dict[int, list[tuple[int, str, int, str | None, datetime]]] = defaultdict(list)
    ids = sorted(by_id)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(
                Alert.incident_id,
                Alert.recipient_id,
                Alert.status,
                Alert.attempts,
                Alert.last_error,
                Alert.created_at,
                Alert.idempotency_key,
                Recipient.unit_code,
            )
            .join(Recipient, Recipient.id == Alert.recipient_id)
            .where(
                Alert.incident_id.in_(ids[start : start + 500]),
                Alert.kind == AlertKind.NEW.value,
                Recipient.role == RecipientRole.TOWNSHIP.value,
                TELLING,
            )
            .order_by(Alert.id)
        )
        for incident_id, recipient_id, status, attempts, error, created_at, key, unit_code in rows:
            incident = by_id[incident_id]
            current = _round_of(key) == new_fire_round(incident)
            if current and unit_code in (incident.township_code, incident.county_code):
                found[incident_id].append((recipient_id, status, attempts, error, created_at))
    summary: dict[int, TownshipAlerts] = {}
    for incident_id, alerts in found.items():
        incident = by_id[incident_id]
        errors = [error for _, _, _, error, _ in alerts if error]
        summary[incident_id] = TownshipAlerts(
            unit=incident.township_code or incident.county_code or "",
            delivered=any(status == AlertStatus.SENT.value for _, status, _, _, _ in alerts),
            trying=any(status == AlertStatus.PENDING.value for _, status, _, _, _ in alerts),
            attempted=any(attempts > 0 for _, _, attempts, _, _ in alerts),
            recipients=sorted(r for r, status, _, _, _ in alerts if status in _UNDELIVERED),
            error=errors[-1] if errors else None,
            first_queued=min(created_at for *_, created_at in alerts),
        )
    return summary


def escalate_unreachable(session: Session, alert: Alert, at: datetime) -> bool:
    """Escalate the incident of a new-fire alert that has just ``failed`` when that leaves its township unreached;
    whether it did (inside the caller's transaction).

    Unreached: no new-fire alert of the same round (the first alert, or a reopening's) to anyone who acts on the
    incident's unit — its township's recipients, or those of its county that act on alerts — was delivered or is
    still being retried. Then nobody in the township knows of the fire, and the county is the only one that can
    act: the incident moves to ``escalated`` by the system (:func:`escalate_as_unreachable`).

    Usually the escalation pass has done so long before, when the acknowledge escalation deadline passed with the
    alert still undelivered (``service.alerts.escalation``); the incident is ``escalated`` then and is not escalated
    a second time here.

    Not escalated: a reminder or escalation that failed (the township was told of the fire once); a recipient of a
    unit the fire has left (its new unit's own alert decides); an incident the township has answered, one the
    county already has (escalated) or one that has ended; a township that another of its channels reached."""
    if alert.kind != AlertKind.NEW.value:
        return False
    recipient = session.get_one(Recipient, alert.recipient_id)
    incident = session.get_one(Incident, alert.incident_id)
    if (
        recipient.role != RecipientRole.TOWNSHIP.value
        or recipient.unit_code not in (incident.township_code, incident.county_code)
        or incident.state not in AWAITING_TOWNSHIP
        or _round_of(alert.idempotency_key) != new_fire_round(incident)
    ):
        return False
    alerts = township_alerts(session, [incident]).get(incident.id)
    if alerts is None or alerts.delivered or alerts.trying:
        # None: its recipient was deactivated meanwhile, and no alert of the round counts as telling the township:
        # the escalation pass's "told nobody" path has it (service.alerts.escalation).
        return False
    why = f"failed on every channel for {RETRY_HORIZON.total_seconds() / 3600:g} h"
    escalate_as_unreachable(session, incident, alerts, why, at, cause=escalation_record("given_up", RETRY_HORIZON))
    return True


def escalate_as_unreachable(
    session: Session,
    incident: Incident,
    alerts: TownshipAlerts,
    why: str,
    at: datetime,
    *,
    cause: dict[str, Any] | None = None,
) -> str | None:
    """Move the incident to ``escalated`` (by the system) because its township could not be reached, and alert the
    supervisors (:func:`escalate`, inside the caller's transaction); the unit whose supervisors were alerted, or
    None.

    The event's note says so ("the township could not be reached: the new-fire alert to DEMO01 {why} …"; "the
    unit …" for a fire with no township, whose unit is its county or district) and its data names the unit, the
    recipients not reached and the last error (``{"unreachable": {...}}``), and why in words the dashboard
    translates (``cause``: :func:`escalation_record`). The county's alert is of the round of this moment
    (:func:`alert_round` of ``at``): that is how its message knows to say why (:func:`escalation_reason`)."""
    township = bool(alerts.unit) and alerts.unit == incident.township_code
    to = escalate(
        session,
        incident,
        note=(
            f"the {'township' if township else 'unit'} could not be reached: the new-fire alert to {alerts.unit} {why} "
            f"(recipients {', '.join(map(str, alerts.recipients))}; last error: {alerts.error})"
        ),
        record={
            "unreachable": {"unit": alerts.unit, "recipients": alerts.recipients, "error": alerts.error},
            "escalation": cause or {},
        },
        round_no=alert_round(at),
        at=at,
    )
    log.warning("incident %s escalated: %s could not be reached", incident.id, unit_label(incident, alerts.unit))
    return to


def unit_label(incident: Incident, code: str) -> str:
    """The incident's unit ``code`` as a log names it, worded by its level (pure): ``township DEMO01 (北岗镇)`` for
    its township, ``unit 220102 (南关区)`` for its county-level unit (a county, a district: a fire with no township
    is its county's to act on), with the name when the incident carries one."""
    if code and code == incident.township_code:
        return "township " + _named(code, incident.township_name)
    return "unit " + _named(code, incident.county_name if code == incident.county_code else None)


def acting_level(incident: Incident) -> RegionLevel | None:
    """The level of the unit that acts on the incident (pure): its township's, else its county-level unit's (a
    county, a district: a fire with no township is its county's), None outside every unit. The level an alert's
    message words the unit by (an unreached unit's escalation: 乡镇 or 区县)."""
    if incident.township_code:
        return RegionLevel.TOWNSHIP
    return RegionLevel.COUNTY if incident.county_code else None


def _named(code: str, name: str | None) -> str:
    return f"{code} ({name})" if name and name != code else code


def escalation_record(cause: str, limit: timedelta | None = None, counted_from: str | None = None) -> dict[str, Any]:
    """What an escalation's event data says about why, for the dashboard to word in its reader's language (pure):
    ``cause`` (``not_acknowledged``, ``not_on_site``, ``not_delivered``, ``given_up``, ``no_recipients``), the
    deadline missed in seconds (``limit_s``), what it was counted from (``from``: ``notified``, ``reopened``,
    ``acknowledged``, ``move``, ``queued``); :func:`escalate` adds ``to``. The note keeps the English sentence for
    readers of the raw record and for events written before these fields existed."""
    return {
        "cause": cause,
        "limit_s": None if limit is None else int(limit.total_seconds()),
        "from": counted_from,
    }


def escalate(
    session: Session,
    incident: Incident,
    *,
    note: str,
    record: dict[str, Any],
    round_no: int,
    at: datetime,
) -> str | None:
    """Move the incident to ``escalated`` by the system and queue the escalation alert for its supervisors (inside
    the caller's transaction); the unit whose supervisors were alerted, or None when nobody was.

    The supervisors are the county's (or the township's) own; a county without any active county-role recipient
    falls back to the nearest unit above it that has some (:func:`~service.alerts.coverage.supervisors_unit`), and
    when there is none the fire is escalated all the same: ``escalated`` heads the supervisors' and admins' queues,
    and the system status lists the county. The event records where the alert went (``escalation.to``, null for
    nobody), and its note says so when it is not the county's own."""
    to = supervisors_unit(session, incident.township_code, incident.county_code)
    county = incident.county_code or incident.township_code
    if to is None:
        note += f"; no supervisor recipient is configured for {county} or above it: nobody was alerted"
    elif to not in (incident.county_code, incident.township_code):
        note += f"; {county} has no supervisor recipient: its escalation goes to {to}"
    escalation = {**record.get("escalation", {}), "to": to}
    record = {**record, "escalation": escalation}
    transition(session, incident, IncidentState.ESCALATED, SYSTEM, note=note, record=record, at=at)
    enqueue_escalation(session, incident, to, round_no=round_no, now=at)
    if to is None:
        log.warning("incident %s escalated, but no supervisor recipient is configured for %s", incident.id, county)
    return to


def enqueue_escalation(
    session: Session, incident: Incident, to: str | None, *, round_no: int, now: datetime | None = None
) -> list[Alert]:
    """Queue the escalation alert for the supervisors of unit ``to`` (:func:`supervisors_unit`; None: nobody): the
    incident's own county's as :func:`enqueue` queues them, or those of a unit above it."""
    if to is None:
        return []
    if to in (incident.township_code, incident.county_code):
        return enqueue(session, incident, AlertKind.ESCALATION, role=RecipientRole.COUNTY, round_no=round_no, now=now)
    above = session.scalars(
        select(Recipient)
        .where(Recipient.active.is_(True), Recipient.role == RecipientRole.COUNTY.value, Recipient.unit_code == to)
        .order_by(Recipient.id)
    ).all()
    return _queue(session, [(incident, r) for r in above], AlertKind.ESCALATION, round_no=round_no, now=now)


def escalation_reason(session: Session, alert: Alert) -> str:
    """Why the county gets this escalation alert: :data:`UNREACHABLE` when it reports a township its new-fire alert
    could not reach (an escalation event with ``unreachable`` data, of the alert's round), else :data:`OVERDUE`."""
    round_no = _round_of(alert.idempotency_key)
    rows = session.execute(
        select(IncidentEvent.at, IncidentEvent.data).where(
            IncidentEvent.incident_id == alert.incident_id,
            IncidentEvent.kind == "transition",
            IncidentEvent.to_state == IncidentState.ESCALATED.value,
            IncidentEvent.actor_role == SYSTEM.role.value,
        )
    )
    for at, data in rows:
        if alert_round(at) == round_no and "unreachable" in json.loads(data or "{}"):
            return UNREACHABLE
    return OVERDUE


def lock_incidents(session: Session, incident_ids: Sequence[int]) -> None:
    """Lock these incidents' rows for the caller's transaction, in id order (PostgreSQL; SQLite has one writer at
    a time): ``SELECT … FOR NO KEY UPDATE ORDER BY id``, the rows loaded fresh into the session.

    Why in id order: the outbox's writes that move several incidents run side by side, one per target, and with
    the escalation pass; each writes its incidents' rows in id order (the escalation pass goes through them so,
    a delivery's alerts are taken in incident order). Two that took overlapping rows in opposite orders each held
    one the other waited for, and PostgreSQL's deadlock detector rolled one back. ``NO KEY UPDATE`` is the lock an
    UPDATE takes anyway: unlike ``FOR UPDATE`` it does not wait for the key-share locks that adding an event or an
    alert of the incident takes (a phone's upload, another delivery's record), nor they for it."""
    if not incident_ids or session.get_bind().dialect.name != "postgresql":
        return
    locking = (
        select(Incident)
        .where(Incident.id.in_(sorted(set(incident_ids))))
        .order_by(Incident.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    session.scalars(locking).all()


#: How often a write that a phone's concurrent move made stale is tried in all, each time from the fresh state.
STALE_RETRIES = 3


def retry_stale(write: Callable[[], T], retrying: str, *args: object) -> T:
    """``write()`` (a transaction of its own), made again from the fresh state while a phone's concurrent move makes
    it stale (PostgreSQL, where the incident row is not locked), :data:`STALE_RETRIES` times in all; each retry is
    logged as ``retrying % args``, and the last try's error is raised."""
    for _ in range(STALE_RETRIES - 1):
        try:
            return write()
        except StaleDataError:
            log.info(retrying, *args)
    return write()


def _delivered(factory: sessionmaker[Session], ids: list[int], at: datetime, *, digest: bool) -> None:
    """Record that the alerts went out (and move a ``suspected`` incident to ``notified``).

    A phone may move the incident between this reading it and writing it back (a team acknowledging from the map
    before the alert arrived; PostgreSQL, where the incident row is not locked): the write is then stale and is
    made again from the fresh state, where the team's move stands. Why: the stale write rolled back the record of
    the delivery too; the alert stayed pending and went out a second time when its lease ran out."""
    retry_stale(
        lambda: _record_delivery(factory, ids, at, digest=digest),
        "alerts %s: the incident moved while the delivery was recorded; recording it again",
        ids,
    )


def _record_delivery(factory: sessionmaker[Session], ids: list[int], at: datetime, *, digest: bool) -> None:
    with factory() as session, session.begin():
        # In incident order, so that the incidents' rows are written (and so locked, on PostgreSQL) in id order:
        # each when the next one is read, the last at the commit. A digest's alerts (a reopened or moved fire's
        # queued after a later fire's) need not be in that order, and two targets' deliveries recorded side by side
        # that moved the same incidents in opposite orders deadlocked: PostgreSQL rolled one back, and its alerts,
        # delivered, went out again. Not locked beforehand: a phone's move in between makes this write stale, and
        # it is made again from the fresh state (:func:`_delivered`), the team's move standing.
        query = select(Alert).where(Alert.id.in_(ids)).order_by(Alert.incident_id, Alert.id)
        for alert in session.scalars(query):
            alert.status = AlertStatus.SENT.value
            alert.sent_at = at
            alert.attempts += 1
            alert.lease_until = None
            alert.digest_size = len(ids)
            incident = session.get_one(Incident, alert.incident_id)
            record_event(
                session,
                incident,
                SYSTEM,
                "alert",
                note=f"{alert.kind} alert delivered to recipient {alert.recipient_id}"
                + (" (digest)" if digest else ""),
                data={"alert": alert.id, "recipient": alert.recipient_id, "alert_kind": alert.kind, "digest": digest},
                at=at,
            )
            # The township has been told: the incident is now "notified" (推送), and the ack deadline starts.
            if alert.kind == AlertKind.NEW.value and incident.state == IncidentState.SUSPECTED.value:
                transition(session, incident, IncidentState.NOTIFIED, SYSTEM, note="alert delivered", at=at)
