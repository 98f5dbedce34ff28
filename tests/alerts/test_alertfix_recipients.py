"""Managing recipients (SQLite and PostgreSQL): disable, enable, re-point, list; duplicates refused; and a
recipient deactivated by any route receives nothing more, its pending alerts withdrawn."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from service import cli
from service.alerts.channels import ChannelSender
from service.alerts.escalation import escalate_due
from service.alerts.outbox import deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertStatus, Channel, Recipient, RecipientRole
from service.auth.service import create_user
from service.config import Settings, get_settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.errors import ConflictError
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident, IncidentEvent
from service.main import create_app
from tests.alerts.conftest import alert_rows, escalation_events, refuse_the_township
from tests.alerts.test_outbox import factory, setup  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.httpserver import http_receiver

Strawfire = Callable[..., Result]
PASSWORD = "pw-123456789abc"
RETIRED = "its recipient was retired before the alert went out"


@pytest.fixture
def strawfire(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Strawfire]:
    """The ``strawfire`` command run in-process on the test's database (SQLite or PostgreSQL), through the test's
    engine: an engine of the command's own would outlive the test's PostgreSQL schema."""
    for name in [n for n in os.environ if n.startswith("STRAWFIRE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(cli, "_session_factory", lambda: make_session_factory(engine))
    monkeypatch.setenv("COLUMNS", "200")  # list-recipients' table on one line per recipient
    get_settings.cache_clear()

    def run(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli.app, list(args), input=stdin)

    yield run
    get_settings.cache_clear()


def withdrawals(factory: sessionmaker[Session]) -> list[tuple[str | None, object]]:  # noqa: F811
    """(note, why) of every ``alert_withdrawn`` event."""
    with factory() as session:
        events = session.scalars(select(IncidentEvent).where(IncidentEvent.kind == "alert_withdrawn"))
        return [(e.note, json.loads(e.data or "{}").get("why")) for e in events]


def test_an_alert_of_a_recipient_deactivated_in_the_database_is_withdrawn_not_sent(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The audit: a township's alert failing with HTTP 500 was still delivered once its channel came back, after
    the recipient had been deactivated (``active = 0`` by hand). The worker withdraws it, whatever route
    deactivated the recipient."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        _, t0 = setup(factory, receiver, 1)
        assert deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0).retried == 1
        with transaction(factory) as session:
            session.execute(update(Recipient).where(Recipient.id == 1).values(active=False))
        receiver.respond = lambda r: (200, {}, b"{}")
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=5))
        assert receiver.received() == []
    assert (report.sent, report.withdrawn) == (0, 1)
    with factory() as session:
        alert = session.scalars(select(Alert)).one()
    assert (alert.status, alert.last_error) == (AlertStatus.WITHDRAWN.value, RETIRED)
    assert withdrawals(factory) == [(f"new alert to recipient 1 not sent: {RETIRED}", "retired")]


def test_disabling_from_the_cli_withdraws_the_pending_alerts_and_the_county_hears_of_the_fire(
    factory: sessionmaker[Session],  # noqa: F811
    strawfire: Strawfire,
) -> None:
    """``disable-recipient`` is how a township group is removed: its pending alerts are withdrawn (as a retired
    DEMO inbox recipient's) and, the township's only recipient gone, the fire counts as told nobody: the next
    escalation pass escalates it to the county at once (README: a withdrawn alert tells nobody)."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        [incident_id], t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        disabled = strawfire("alerts", "disable-recipient", "1")
        assert disabled.exit_code == 0, disabled.output
        assert disabled.stdout.strip() == "recipient 1 (北岗镇群) disabled; 1 pending alert(s) withdrawn"
        listed = strawfire("alerts", "list-recipients").stdout
        row = next(line for line in listed.splitlines() if "北岗镇群" in line)
        cells = [cell.strip() for cell in row.split("│") if cell.strip()]
        # The target by host only (no path, where bot tokens live), whether it has a secret, active, pending.
        assert cells == ["1", "北岗镇群", "DEMO01", "township", "webhook", receiver.url + "/…", "yes", "no", "0"]
        receiver.respond = lambda r: (200, {}, b"{}")
        with transaction(factory) as session:
            escalated = escalate_due(session, t0 + timedelta(minutes=1)).escalated
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=2))
        paths = [r.path for r in receiver.received()]
    assert escalated == [incident_id]
    assert paths == ["/county"]  # the escalation; never the township's alert
    (event,) = escalation_events(factory, incident_id)
    assert json.loads(event.data or "{}")["escalation"]["cause"] == "no_recipients"
    assert alert_rows(factory, incident_id) == [("new", 1, "withdrawn"), ("escalation", 2, "sent")]
    assert withdrawals(factory) == [(f"new alert to recipient 1 not sent: {RETIRED}", "retired")]


def test_a_recipient_enabled_again_is_told_of_a_fire_still_untold(
    factory: sessionmaker[Session],  # noqa: F811
    strawfire: Strawfire,
) -> None:
    """Enabled before the fire was escalated: the escalation pass queues the fire's withdrawn alert again (a
    recipient added since, the same as a new one), and it is delivered."""
    with http_receiver() as receiver:
        [incident_id], t0 = setup(factory, receiver, 1)
        assert strawfire("alerts", "disable-recipient", "1").exit_code == 0
        enabled = strawfire("alerts", "enable-recipient", "1")
        assert enabled.stdout.strip() == "recipient 1 (北岗镇群) enabled"
        with transaction(factory) as session:
            assert escalate_due(session, t0).escalated == []
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        assert [r.path for r in receiver.received()] == ["/town"]
    assert report.sent == 1
    with factory() as session:
        assert session.get_one(Incident, incident_id).state == IncidentState.NOTIFIED.value


def test_set_target_repoints_a_recipient_and_its_pending_alerts_go_there_now(
    factory: sessionmaker[Session],  # noqa: F811
    strawfire: Strawfire,
) -> None:
    """The township's bot URL was wrong: ``set-target`` fixes it and replaces the secret (from stdin); the alert
    waiting out its backoff goes to the new URL at the next pass, signed with the new secret."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        setup(factory, receiver, 1)
        for _ in range(4):  # backoff: the next try is 40 s away
            with factory() as session:
                due = session.scalars(select(Alert)).one().next_attempt_at
            deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda due=due: due)  # type: ignore[misc]
        changed = strawfire(
            "alerts", "set-target", "1", "--target", receiver.url + "/newtown", "--secret-stdin", stdin="new-key\n"
        )
        assert changed.exit_code == 0, changed.output
        assert changed.stdout.strip() == "recipient 1 (北岗镇群): target and secret changed"
        assert "new-key" not in changed.output
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: due + timedelta(seconds=1))
        (request,) = receiver.received()
    assert report.sent == 1
    assert request.path == "/newtown"
    expected = hmac.new(
        b"new-key", request.headers["X-Strawfire-Timestamp"].encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Strawfire-Signature"] == f"sha256={expected}"
    cleared = strawfire("alerts", "set-target", "1", "--clear-secret")
    assert cleared.stdout.strip() == "recipient 1 (北岗镇群): secret changed"
    with factory() as session:
        assert session.get_one(Recipient, 1).secret is None
    # Refused: a target its channel cannot use, an unknown id, nothing to change.
    bad = strawfire("alerts", "set-target", "1", "--target", "ftp://x/y")
    assert (bad.exit_code, "field 'target': the target must be an http(s) URL" in bad.stderr) == (2, True)
    unknown = strawfire("alerts", "disable-recipient", "99")
    assert (unknown.exit_code, "no recipient 99" in unknown.stderr) == (2, True)
    assert strawfire("alerts", "set-target", "1").exit_code == 2


def test_a_duplicate_recipient_is_refused_naming_the_existing_one(
    factory: sessionmaker[Session],  # noqa: F811
    strawfire: Strawfire,
) -> None:
    """The same unit, role, channel and target twice sent every alert twice; refused, naming the recipient that
    already delivers there (disabled: say how to enable it). Another role on the same group is not a duplicate."""
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"
    first = strawfire("alerts", "add-recipient", "北岗镇群", "--unit", "DEMO01", "--channel", "wecom", "--target", url)
    assert first.exit_code == 0, first.output
    again = strawfire("alerts", "add-recipient", "又一个", "--unit", "DEMO01", "--channel", "wecom", "--target", url)
    assert again.exit_code == 2
    assert "recipient 1 (北岗镇群) already delivers township alerts of DEMO01 by wecom" in again.stderr
    assert "key=K" not in again.stderr
    county = ("--unit", "DEMO01", "--channel", "wecom", "--target", url, "--role", "county")
    assert strawfire("alerts", "add-recipient", "督导", *county).exit_code == 0
    assert strawfire("alerts", "disable-recipient", "1").exit_code == 0
    with transaction(factory) as session, pytest.raises(ConflictError, match=r"recipient 1 \(北岗镇群, disabled"):
        create_recipient(session, name="x", unit_code="DEMO01", channel=Channel.WECOM, target=url)
    other = url.replace("key=K", "key=L")
    assert (
        strawfire(
            "alerts", "add-recipient", "二群", "--unit", "DEMO01", "--channel", "wecom", "--target", other
        ).exit_code
        == 0
    )
    # Re-pointing onto an existing recipient's target is a duplicate too.
    repoint = strawfire("alerts", "set-target", "3", "--target", url)
    assert repoint.exit_code == 2
    assert "recipient 1 (北岗镇群, disabled" in repoint.stderr
    with factory() as session:
        assert [r.name for r in session.scalars(select(Recipient).order_by(Recipient.id))] == [
            "北岗镇群",
            "督导",
            "二群",
        ]


@pytest.fixture
def admin_api(tmp_path: Path) -> Iterator[tuple[TestClient, sessionmaker[Session]]]:
    """An admin's client on a service with the DEMO region loaded (no alert worker), and a supervisor user."""
    app = create_app(Settings(data_dir=tmp_path / "var", alerts={"run_worker": False}))
    with TestClient(app) as client:
        with transaction(app.state.session_factory) as session:
            load_demo(session)
            create_user(session, "admin", PASSWORD, Role.ADMIN, None)
            create_user(session, "sup", PASSWORD, Role.SUPERVISOR, "DEMO00")
        token = client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client, app.state.session_factory


def bearer(client: TestClient, username: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_the_api_disables_repoints_and_refuses_duplicates(
    admin_api: tuple[TestClient, sessionmaker[Session]],
) -> None:
    client, factory = admin_api  # noqa: F811
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        _, t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        # Supervisors see their county's recipients but change none.
        assert (
            client.patch("/api/v1/recipients/1", json={"active": False}, headers=bearer(client, "sup")).status_code
            == 403
        )
        disabled = client.patch("/api/v1/recipients/1", json={"active": False})
        assert disabled.status_code == 200, disabled.text
        assert (disabled.json()["active"], disabled.json()["has_secret"]) == (False, True)
        assert alert_rows(factory) == [("new", 1, "withdrawn")]
        secret = client.patch(
            "/api/v1/recipients/1", json={"secret": "brand-new-secret", "target": receiver.url + "/t2"}
        )
        assert secret.status_code == 200
        assert "brand-new-secret" not in secret.text
        assert "/t2" not in secret.text
        assert client.patch("/api/v1/recipients/1", json={"active": True}).json()["active"] is True
        with factory() as session:
            recipient = session.get_one(Recipient, 1)
            assert (recipient.target, recipient.secret, recipient.active) == (
                receiver.url + "/t2",
                "brand-new-secret",
                True,
            )
        assert client.patch("/api/v1/recipients/1", json={"secret": None}).json()["has_secret"] is False
        # Refused: a duplicate (409, naming it), a bad target, nothing to change, a field it cannot change, no such id.
        twin = {
            "name": "县督导2",
            "unit_code": "DEMO00",
            "channel": "webhook",
            "target": receiver.url + "/county",
            "role": "county",
        }
        duplicate = client.post("/api/v1/recipients", json=twin)
        assert duplicate.status_code == 409
        assert "recipient 2 (县督导) already delivers county alerts of DEMO00" in duplicate.json()["detail"]
        assert (
            client.patch("/api/v1/recipients/2", json={"target": receiver.url + "/t2"}).status_code == 200
        )  # another unit
        assert client.patch("/api/v1/recipients/1", json={"target": "mailto:x"}).status_code == 422
        assert client.patch("/api/v1/recipients/1", json={}).status_code == 422
        assert client.patch("/api/v1/recipients/1", json={"active": None}).status_code == 422
        assert client.patch("/api/v1/recipients/1", json={"unit_code": "DEMO02"}).status_code == 422
        assert client.patch("/api/v1/recipients/99", json={"active": False}).status_code == 404
        # An e-mail recipient is listed with its address (it read ":///…", a URL's scheme and host of nothing).
        mail = {"name": "值班邮箱", "unit_code": "DEMO00", "channel": "email", "target": "duty@example.org"}
        created = client.post("/api/v1/recipients", json={**mail, "role": "county"})
        assert created.status_code in (200, 201), created.text
        assert created.json()["target_host"] == "duty@example.org"
        listed = {r["id"]: r["active"] for r in client.get("/api/v1/recipients").json()}
    assert listed == {1: True, 2: True, 3: True}
    with factory() as session:
        assert session.get_one(Recipient, 2).role == RecipientRole.COUNTY.value
