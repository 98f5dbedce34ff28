"""The DEMO inbox: `make run` delivers the demo's alerts to the app's own signed webhook, offline, and a real start
on a database that once ran the demo retires the demo recipients instead of leaving alerts failing."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender, DeliveryError, Destination, sign_webhook
from service.alerts.coverage import Uncovered, uncovered_units
from service.alerts.messages import AlertMessage
from service.alerts.tables import Alert, AlertKind, AlertStatus, Channel, Recipient, RecipientRole
from service.config import Settings
from service.db import make_session_factory, open_database, transaction, utcnow
from service.demo import DEMO_PASSWORD, load_demo, load_demo_scenario
from service.demo_inbox import (
    INBOX_PATH,
    MAX_CLOCK_SKEW_S,
    RETIRED,
    DemoInbox,
    InboxMessageRead,
    inbox_base_url,
    provide_demo_recipients,
    retire_demo_recipients,
)
from service.incidents.tables import Incident, IncidentEvent
from service.regions.service import RegionIndexCache
from service.status.service import ALERT_WORKER
from service.status.tables import ComponentRun
from tests.alerts.test_channels import message
from tests.serving import serving
from tests.test_cli import run

DEMO_UNITS = {
    "DEMO00": RecipientRole.COUNTY.value,
    "DEMO01": RecipientRole.TOWNSHIP.value,
    "DEMO02": RecipientRole.TOWNSHIP.value,
    "DEMO03": RecipientRole.TOWNSHIP.value,
    "DEMO04": RecipientRole.TOWNSHIP.value,
}


# -- the recipients ------------------------------------------------------------------------------------------------


def test_every_demo_unit_gets_one_inbox_recipient_and_a_hand_made_one_is_left_alone(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
        load_demo_scenario(session, Settings(), RegionIndexCache(500))
        # Named like a demo one but delivering elsewhere: someone's own recipient, never touched.
        session.add(
            Recipient(
                name="DEMO inbox DEMO01",
                unit_code="DEMO01",
                channel=Channel.WEBHOOK.value,
                target="https://example.invalid/hook",
            )
        )
        assert [u.code for u in uncovered_units(session).counties] == ["DEMO00"]
        first = provide_demo_recipients(session, "http://127.0.0.1:8000", "first-secret")
    with transaction(factory) as session:
        again = provide_demo_recipients(session, "http://127.0.0.1:9100/", "second-secret")
        assert uncovered_units(session) == Uncovered([], [])  # what the status would list as problems
    assert [r.id for r in again] == [r.id for r in first]  # the same rows, re-pointed
    with factory() as session:
        rows = session.scalars(select(Recipient).order_by(Recipient.id)).all()
    demo = [r for r in rows if r.target.startswith("http://127.0.0.1")]
    assert {r.unit_code: r.role for r in demo} == DEMO_UNITS
    assert {r.target for r in demo} == {f"http://127.0.0.1:9100{INBOX_PATH}/{code}" for code in DEMO_UNITS}
    assert {r.secret for r in demo} == {"second-secret"}
    assert all(r.active and r.channel == "webhook" for r in demo)
    [own] = [r for r in rows if r not in demo]
    assert own.target == "https://example.invalid/hook"


def test_a_start_without_demo_retires_the_recipients_and_withdraws_their_pending_alerts(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
        load_demo_scenario(session, Settings(), RegionIndexCache(500))
        recipients = provide_demo_recipients(session, "http://127.0.0.1:8000", "secret")
        own = Recipient(name="北岗镇值班", unit_code="DEMO01", channel="webhook", target="https://example.invalid/h")
        session.add(own)
        session.flush()
        incident = session.scalars(select(Incident).where(Incident.township_code == "DEMO01")).first()
        assert incident is not None
        for recipient in (recipients[1], own):
            session.add(
                Alert(
                    incident_id=incident.id,
                    recipient_id=recipient.id,
                    kind=AlertKind.NEW.value,
                    idempotency_key=f"retire-test-{recipient.id}",
                )
            )
    with transaction(factory) as session:
        assert retire_demo_recipients(session) == (5, 1)
    with transaction(factory) as session:
        assert retire_demo_recipients(session) == (0, 0)  # once
    with factory() as session:
        active = {r.name: r.active for r in session.scalars(select(Recipient))}
        alerts = {a.recipient_id: a for a in session.scalars(select(Alert))}
        events = session.scalars(select(IncidentEvent).where(IncidentEvent.kind == "alert_withdrawn")).all()
    assert active == {**{f"DEMO inbox {code}": False for code in DEMO_UNITS}, "北岗镇值班": True}
    assert alerts[recipients[1].id].status == AlertStatus.WITHDRAWN.value
    assert alerts[recipients[1].id].last_error == RETIRED
    assert alerts[own.id].status == AlertStatus.PENDING.value  # not a demo recipient's
    assert [e.incident_id for e in events] == [incident.id]
    # Why, as a code the incident page words in its reader's language (it showed the English note).
    assert json.loads(events[0].data) == {
        "alert": alerts[recipients[1].id].id,
        "recipient": recipients[1].id,
        "alert_kind": "new",
        "why": "retired",
    }
    assert events[0].note == f"new alert to recipient {recipients[1].id} not sent: {RETIRED}"
    with transaction(factory) as session:  # a later demo start brings them back
        assert all(r.active for r in provide_demo_recipients(session, "http://127.0.0.1:8000", "s"))


def test_the_inbox_takes_only_fresh_messages_signed_with_its_secret() -> None:
    inbox = DemoInbox("the-secret")
    body = b'{"kind": "new"}'
    now = 1_800_000_000
    good = "sha256=" + sign_webhook("the-secret", str(now), body)
    assert inbox.verify(str(now), good, body, now=now + 5)
    assert not inbox.verify(str(now), good, body + b" ", now=now)  # body changed
    assert not inbox.verify(str(now), "sha256=" + sign_webhook("other", str(now), body), body, now=now)
    assert not inbox.verify(str(now), good.removeprefix("sha256="), body, now=now)
    assert not inbox.verify(str(now), good, body, now=now + MAX_CLOCK_SKEW_S + 1)  # a replay
    assert not inbox.verify(None, good, body, now=now)
    assert not inbox.verify("soon", good, body, now=now)


def test_the_inbox_address_is_where_the_server_listens() -> None:
    assert inbox_base_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert inbox_base_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert inbox_base_url("::", 8080) == "http://[::1]:8080"
    assert inbox_base_url("10.0.0.5", 80) == "http://10.0.0.5:80"


# -- the endpoints ---------------------------------------------------------------------------------------------


def _signed(inbox: DemoInbox, body: bytes, key: str = "k1") -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "X-Strawfire-Timestamp": timestamp,
        "X-Strawfire-Signature": "sha256=" + sign_webhook(inbox.secret, timestamp, body),
        "Idempotency-Key": key,
    }


def test_the_inbox_exists_only_in_demo_mode_and_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    """In demo mode: 401 unsigned, 404 for a unit that is not a DEMO one, 422 for a body that is no alert, 403 for
    evaluators and devices (the inbox is for people who act on fires). Without demo mode both routes are 404."""
    from fastapi.testclient import TestClient

    from service.auth.service import create_user
    from service.incidents.states import Role
    from service.main import create_app

    app = create_app(Settings(data_dir=tmp_path / "demo", demo=True, alerts={"run_worker": False}))
    with TestClient(app) as client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "eval", "evaluator-password", Role.EVALUATOR, None)
            create_user(session, "cam", "device-password", Role.DEVICE, None)
            create_user(session, "sup", "supervisor-password", Role.SUPERVISOR, "DEMO00")
        inbox: DemoInbox = app.state.demo_inbox
        body = json.dumps(_message(3, "new-3").as_json()).encode()
        unsigned = client.post(f"{INBOX_PATH}/DEMO01", content=body)
        elsewhere = client.post(f"{INBOX_PATH}/220112", content=body, headers=_signed(inbox, body))
        junk = client.post(f"{INBOX_PATH}/DEMO01", content=b"[1]", headers=_signed(inbox, b"[1]", "k2"))
        good = client.post(f"{INBOX_PATH}/DEMO02", content=body, headers=_signed(inbox, body, "k3"))
        again = client.post(f"{INBOX_PATH}/DEMO02", content=body, headers=_signed(inbox, body, "k3"))
        readers = {
            name: client.get(INBOX_PATH, headers=_login(client, name, password))
            for name, password in (
                ("eval", "evaluator-password"),
                ("cam", "device-password"),
                ("sup", "supervisor-password"),
            )
        }
        anonymous = client.get(INBOX_PATH)
    assert (unsigned.status_code, elsewhere.status_code, junk.status_code) == (401, 404, 422)
    assert (good.json(), again.json()) == ({"alerts": 1, "new": True}, {"alerts": 1, "new": False})
    assert {name: r.status_code for name, r in readers.items()} == {"eval": 403, "cam": 403, "sup": 200}
    assert [(m["unit_code"], m["incident_id"], m["kind"]) for m in readers["sup"].json()] == [("DEMO02", 3, "new")]
    assert set(readers["sup"].json()[0]) == set(InboxMessageRead.model_fields)  # not the Idempotency-Key
    assert anonymous.status_code == 401
    real = create_app(Settings(data_dir=tmp_path / "real", alerts={"run_worker": False}))
    with TestClient(real) as client:
        assert client.get(INBOX_PATH).status_code == 404
        assert client.post(f"{INBOX_PATH}/DEMO01", content=body).status_code == 404
        assert INBOX_PATH not in str(client.get("/openapi.json").json()["paths"])


# -- `make run` ----------------------------------------------------------------------------------------------------


def _login(server: str | Any, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
    """Sign in on a server's URL, or through a TestClient."""
    data = {"username": username, "password": password}
    if isinstance(server, str):
        token = httpx.post(f"{server}/api/v1/auth/token", data=data)
    else:
        token = server.post("/api/v1/auth/token", data=data)
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _get(url: str, path: str, headers: dict[str, str]) -> Any:
    response = httpx.get(f"{url}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _worker_passed_since(factory: sessionmaker[Session], since: datetime) -> bool:
    """Whether the alert worker recorded a pass (its first is recorded at once) at or after ``since``."""
    with factory() as session:
        worker = session.get(ComponentRun, ALERT_WORKER)
    return worker is not None and worker.last_attempt_at >= since


def _message(incident_id: int, key: str) -> AlertMessage:
    """A new-fire alert for the incident, sent with the Idempotency-Key ``key``."""
    return dataclasses.replace(message(incident_id), idempotency_key=key)


@pytest.mark.slow
def test_make_run_delivers_the_demo_alerts_to_the_inbox_and_a_real_start_retires_them(tmp_path: Path) -> None:
    """`make run`'s three steps as a user runs them: every waiting demo fire's new-fire alert is delivered (sent)
    to the inbox, signed, none escalated as unreachable and the status without recipient problems; each user sees
    their unit's messages. Then the same database served for real: no inbox, the recipients retired, and an alert
    still pending for one withdrawn rather than failing against the missing inbox."""
    env = {"STRAWFIRE_DATA_DIR": str(tmp_path / "var"), "STRAWFIRE_ALERTS__POLL_INTERVAL_S": "1"}
    assert run("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    assert run("demo", "load", cwd=tmp_path, env=env).returncode == 0
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}, **env}
    engine = open_database(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}")
    factory = make_session_factory(engine)
    with factory() as session:
        waiting = set(
            session.scalars(
                select(Incident.id).where(Incident.state == "suspected", Incident.township_code.is_not(None))
            )
        )
    assert len(waiting) >= 5
    with serving(tmp_path, full_env, "--demo") as url:
        admin = _login(url, "demo-admin")
        deadline, alerts = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            alerts = _get(url, "/api/v1/alerts", admin)
            if alerts and all(a["status"] != "pending" for a in alerts):
                break
            time.sleep(0.5)
        inbox = _get(url, INBOX_PATH, admin)
        status = _get(url, "/api/v1/status", admin)
        config = _get(url, "/app/config.json", admin)
        with factory() as session:
            demo = {r.unit_code: r for r in session.scalars(select(Recipient))}
        # What the alert worker sends is what the inbox takes: the same sender, the recipients' own secret.
        target = demo["DEMO01"].target
        with httpx.Client() as client:
            sender = ChannelSender(client)
            sender.send(Destination(Channel.WEBHOOK, target, demo["DEMO01"].secret), [_message(1, "by-hand")])
            with pytest.raises(DeliveryError, match="HTTP 401"):
                sender.send(Destination(Channel.WEBHOOK, target, "not-the-secret"), [_message(1, "forged")])
            with pytest.raises(DeliveryError, match="HTTP 401"):
                sender.send(Destination(Channel.WEBHOOK, target, None), [_message(1, "unsigned")])
        resent = httpx.post(target, content=b"{}", headers={"Idempotency-Key": "by-hand"})
        after = [m["incident_id"] for m in _get(url, INBOX_PATH, admin)]
        supervisor = _get(url, INBOX_PATH, _login(url, "demo-supervisor"))
        patrol = _get(url, INBOX_PATH, _login(url, "demo-patrol"))
    assert config["demo"] is True
    assert {a["status"] for a in alerts} == {"sent"}, alerts
    new = [m for m in inbox if m["kind"] == "new"]
    assert {m["incident_id"] for m in new} == waiting  # every waiting fire's township was told
    assert all(m["unit_code"].startswith("DEMO0") and m["unit_code"] != "DEMO00" for m in new)
    assert all(m["unit_code"] == "DEMO00" for m in inbox if m["kind"] == "escalation")  # the county's supervisors
    assert len(inbox) == len(alerts)
    assert status["problems"] == [], status["problems"]
    assert status["alerts"]["failed_24h"] == 0
    assert len(supervisor) == len(after)  # the county: its townships' alerts and its own escalations
    # 北岗镇's team (the scenario's fires there are handled ones): its own messages only, the hand-sent one.
    assert [(m["unit_code"], m["incident_id"]) for m in patrol] == [("DEMO01", 1)] + [
        ("DEMO01", m["incident_id"]) for m in inbox if m["unit_code"] == "DEMO01"
    ]
    assert resent.status_code == 401  # unsigned
    assert after == [1, *(m["incident_id"] for m in inbox)]  # the hand-sent one, once; the forged ones not at all
    with factory() as session:
        unreachable = [e.incident_id for e in session.scalars(select(IncidentEvent)) if "unreachable" in (e.data or "")]
        escalated = session.scalars(select(IncidentEvent.data).where(IncidentEvent.to_state == "escalated")).all()
    assert unreachable == []
    assert all(json.loads(data or "{}")["escalation"]["cause"] == "not_acknowledged" for data in escalated)

    # The same database served for real: an alert still pending for a demo recipient is withdrawn, not failed.
    with transaction(factory) as session:
        session.add(
            Alert(
                incident_id=min(waiting),
                recipient_id=demo["DEMO01"].id,
                kind=AlertKind.REMINDER.value,
                idempotency_key="left-pending",
            )
        )
    for name in ("demo-admin", "demo-supervisor", "demo-patrol"):  # else the real start refuses their password
        assert run("users", "disable", name, cwd=tmp_path, env=env).returncode == 0
    real_start = utcnow()
    with serving(tmp_path, full_env) as url:
        inbox_gone = httpx.get(f"{url}{INBOX_PATH}").status_code
        post_gone = httpx.post(f"{url}{INBOX_PATH}/DEMO01", content=b"{}").status_code
        # The alert worker has passed with the alert in the outbox (its pass recorded after the real start), rather
        # than a fixed sleep that a slow machine's worker may not have passed in.
        deadline = time.monotonic() + 60
        while not _worker_passed_since(factory, real_start):
            assert time.monotonic() < deadline, "the alert worker never passed"
            time.sleep(0.2)
    assert (inbox_gone, post_gone) == (404, 404)
    with factory() as session:
        left = session.scalars(select(Alert).where(Alert.idempotency_key == "left-pending")).one()
        active = [r.unit_code for r in session.scalars(select(Recipient).where(Recipient.active.is_(True)))]
    assert (left.status, left.attempts, left.last_error) == (AlertStatus.WITHDRAWN.value, 0, RETIRED)
    assert active == []
    engine.dispose()
