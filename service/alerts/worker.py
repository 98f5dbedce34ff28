"""The alert worker: delivers due alerts and applies deadlines, on a timer, apart from ingestion.

The embedded deployment runs one inside the web process (a daemon thread started by the app's lifespan);
larger ones run ``strawfire alerts worker`` processes. Several workers are safe on PostgreSQL (leases claimed
with SKIP LOCKED); on SQLite run one.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Collection
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender, Sender, SmtpSettings
from service.alerts.escalation import Deadlines, EscalationReport, escalate_due
from service.alerts.outbox import DeliveryReport, SendingLanes, deliver_due, retry_stale
from service.config import AlertSettings, DeadlineSettings
from service.db import utcnow
from service.status.service import ALERT_WORKER, error_text, record_run

log = logging.getLogger("strawfire.alerts")


def deadlines_of(settings: DeadlineSettings) -> Deadlines:
    """Minutes from settings as a :class:`Deadlines`."""
    return Deadlines(timedelta(minutes=settings.acknowledge_min), timedelta(minutes=settings.on_site_min))


def sender_from(settings: AlertSettings, client: httpx.Client | None = None) -> ChannelSender:
    """The channel sender configured by ``settings``."""
    smtp = settings.smtp
    smtp_settings = None
    if smtp.host:
        smtp_settings = SmtpSettings(
            smtp.host,
            smtp.port,
            smtp.sender,
            smtp.username,
            smtp.password.get_secret_value() if smtp.password else None,
            smtp.starttls,
        )
    return ChannelSender(client=client, smtp=smtp_settings)


def run_once(
    factory: sessionmaker[Session],
    sender: Sender,
    settings: AlertSettings,
    now: datetime | None = None,
    *,
    lanes: SendingLanes | None = None,
) -> tuple[EscalationReport, DeliveryReport]:
    """One pass: apply deadlines (queueing reminders/escalations), then deliver what is due (on ``lanes``, the
    worker's sending threads, when given: a target that hangs does not hold up the next pass; see
    :func:`~service.alerts.outbox.deliver_due`)."""
    at = now or utcnow()
    per_county = {code: deadlines_of(d) for code, d in settings.county_deadlines.items()}

    # A phone that moves an incident while the pass escalates it makes the pass's write stale and rolls the whole
    # pass back (every other incident's reminder and escalation with it): the pass is judged again from the fresh
    # state, in which the team's move stands. Passes are idempotent (one alert per missed deadline).
    def escalate() -> EscalationReport:
        with factory() as session, session.begin():
            return escalate_due(session, at, default=deadlines_of(settings.deadlines), per_county=per_county)

    escalation = retry_stale(escalate, "an incident moved during the escalation pass; judging the pass again")
    delivery = deliver_due(
        factory, sender, base_url=settings.public_base_url, now=(lambda: at) if now else utcnow, lanes=lanes
    )
    return escalation, delivery


def record_pass(factory: sessionmaker[Session], *, ok: bool, error: str | None = None) -> None:
    """Record a pass for the system status (``alerts.worker``); a failure to record is logged, never raised (a
    database that refuses this write refuses the pass's own work too, and the pass already logged that)."""
    try:
        with factory() as session, session.begin():
            record_run(session, ALERT_WORKER, at=utcnow(), ok=ok, error=error)
    except Exception:
        log.warning("could not record the alert worker's pass", exc_info=True)


class AlertWorker(threading.Thread):
    """A daemon thread calling :func:`run_once` every ``poll_interval_s`` until stopped.

    Its passes are recorded for the system status (:mod:`service.status`): every failure, and a success at most
    once a minute (a pass every few seconds need not write a row every few seconds). It sends on
    :class:`~service.alerts.outbox.SendingLanes` of its own: one township's channel that hangs holds up neither the
    next pass's deadlines nor any other target's alerts.
    """

    RECORD_EVERY: timedelta = timedelta(minutes=1)

    def __init__(self, factory: sessionmaker[Session], settings: AlertSettings, sender: Sender | None = None) -> None:
        super().__init__(name="strawfire-alerts", daemon=True)
        self._factory = factory
        self._settings = settings
        self._sender = sender or sender_from(settings)
        self._stop_event = threading.Event()
        self._lanes = SendingLanes()

    def run(self) -> None:
        """Loop until :meth:`stop`; an error in one pass is logged and the next pass runs anyway."""
        recorded: datetime | None = None
        while not self._stop_event.is_set():
            try:
                run_once(self._factory, self._sender, self._settings, lanes=self._lanes)
            except Exception as exc:  # a worker that dies silently would stop every alert
                log.exception("alert worker pass failed")
                record_pass(self._factory, ok=False, error=error_text(exc))
                recorded = None  # the next success is recorded at once: the status must see the recovery
            else:
                if recorded is None or utcnow() - recorded >= self.RECORD_EVERY:
                    record_pass(self._factory, ok=True)
                    recorded = utcnow()
            self._stop_event.wait(self._settings.poll_interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait for it, then up to ``timeout`` s for the requests under way (no further one
        starts; see :meth:`SendingLanes.close`): the service closes the channels' HTTP client next. It logs that
        it is stopping once no new send can start, and that it stopped."""
        self._stop_event.set()
        self._lanes.stopping.set()  # before the join: the pass under way waits for its targets' sends
        log.info("alert worker stopping: no new send starts; the requests under way finish (up to %g s)", timeout)
        self.join(timeout)
        self._lanes.close(timeout)
        log.info("alert worker stopped")


#: What stops a looping ``strawfire alerts worker``: systemd's and docker's stop (SIGTERM), Ctrl-C (SIGINT).
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


def run_until_signalled(
    worker: AlertWorker,
    signals: Collection[signal.Signals] = STOP_SIGNALS,
    *,
    stop_timeout: float = 10.0,
    check_every_s: float = 1.0,
) -> signal.Signals | None:
    """Start ``worker`` and wait in this thread (a process's main thread) until one of ``signals`` comes, then stop
    it as :meth:`AlertWorker.stop` does; the signal that stopped it, or None when the worker ended by itself.

    Why: SIGTERM (``systemctl stop``, ``docker stop``) killed the process wherever it was, in the middle of a pass:
    the alerts it had claimed went out again only when their lease ran out, and a send whose answer had come was
    not recorded. Stopped like this, no new send starts, the requests under way finish (each within its channel's
    timeout) and are recorded, the alerts claimed and not sent stay pending under their lease (sent, with the same
    Idempotency-Key, by the next start's worker once it runs out), and the process logs that it stopped and exits
    with status 0. It takes up to ``stop_timeout`` s for the pass under way, then as long again for the requests
    (as a rule well under that: a pass waits 2 s for its targets, a request 10 s at most); SIGKILL after that, as
    systemd and docker send, loses nothing that a lease does not bring back.

    The signals are blocked before the worker starts, so that its threads (the pass's and the sending lanes',
    which inherit the mask) never take one, and are taken here with ``sigtimedwait``: no Python handler runs in the
    middle of whatever this thread does. A second signal while the worker stops does not cut the stop short (it is
    taken and dropped; SIGKILL does); the mask is as before when this returns."""
    blocked = set(signals)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        worker.start()
        received: signal.Signals | None = None
        while received is None and worker.is_alive():
            taken = signal.sigtimedwait(blocked, check_every_s)
            if taken is not None:
                received = signal.Signals(taken.si_signo)
        if received is not None:
            log.info("%s received: stopping the alert worker", received.name)
            worker.stop(stop_timeout)
        while signal.sigtimedwait(blocked, 0) is not None:
            pass  # a second signal sent while it stopped: taken, not left to kill the process as the mask opens
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return received
