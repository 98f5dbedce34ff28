"""What the incident API answers to input it cannot use: a lone UTF-16 surrogate in a JSON string, and a
reassignment to the unit an incident is already assigned to by hand (on the demo county, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import http_errors
from service.alerts.escalation import moved_at
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, Channel, Recipient
from service.auth.service import create_user
from service.config import Settings
from service.db import transaction
from service.errors import InputError
from service.incidents.states import IncidentState, Role, a_role, check_transition
from service.incidents.tables import IncidentEvent
from tests.incidents.test_evidence import PASSWORD, demo_service, token


@pytest.fixture
def fire(tmp_path: Path) -> Iterator[tuple[TestClient, int]]:
    """A 北岗镇 (DEMO01) fire from a satellite pixel, assigned automatically; a group bot for 北岗镇 and 东河乡."""
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    users = {"beigang": (Role.PATROL, "DEMO01"), "sup": (Role.SUPERVISOR, "DEMO00")}
    with demo_service(settings, users) as (client, [incident]):
        with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
            for unit in ("DEMO01", "DEMO02"):
                create_recipient(
                    session, name=f"bot {unit}", unit_code=unit, channel=Channel.WEBHOOK, target="https://x.test/h"
                )
        yield client, incident


def _post_raw(client: TestClient, user: str, path: str, body: str) -> Any:
    # Sent as written: httpx would encode a str holding a lone surrogate as invalid UTF-8, not as the JSON escape.
    return client.post(path, content=body, headers={**token(client, user), "Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("where", "body", "loc", "echoed"),
    [
        ("patrol", r'{"latitude": 44.33, "longitude": 125.55, "note": "\ud83d"}', ["body", "note"], r"\ud83d"),
        ("transition", r'{"to": "acknowledged", "note": "fire \udc00 out"}', ["body", "note"], r"fire \udc00 out"),
        ("patrol", r'{"latitude": 44.33, "longitude": 125.55, "\ud800": 1}', ["body"], r"\ud800"),  # a key
        # The feedback is a free-form object: its texts were not checked, and storing one was the 500.
        (
            "transition",
            r'{"to": "feedback", "feedback": {"cause": "\ud800"}}',
            ["body", "feedback"],
            {"cause": r"\ud800"},
        ),
        (
            "transition",
            r'{"to": "feedback", "feedback": {"cause": "x", "\udfff": 1}}',
            ["body", "feedback"],
            {"cause": "x", r"\udfff": 1},
        ),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field(
    fire: tuple[TestClient, int], where: str, body: str, loc: list[str], echoed: Any
) -> None:
    """The JSON parser takes ``"\\ud83d"`` (half an emoji), the model refuses it, and echoing it failed the answer
    itself: UTF-8 cannot encode it (a 500, the connection reset). It is echoed as its escape now."""
    client, incident = fire
    path = "/api/v1/observations/patrol" if where == "patrol" else f"/api/v1/incidents/{incident}/transitions"
    if '"feedback"' in body:  # where feedback is taken: extinguished
        for step in ("acknowledged", "on_site", "extinguished"):
            moved = client.post(path, headers=token(client, "beigang"), json={"to": step})
            assert moved.status_code == 200, moved.text
    before = client.get(f"/api/v1/incidents/{incident}/events", headers=token(client, "beigang")).json()
    response = _post_raw(client, "beigang", path, body)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert error["type"] == ("value_error" if loc[-1] == "feedback" else "string_unicode")
    assert error["input"] == echoed  # the escape as text, the rest as sent (pydantic names a key's object)
    after = client.get(f"/api/v1/incidents/{incident}/events", headers=token(client, "beigang")).json()
    assert after == before  # nothing was done


def _assign(client: TestClient, incident: int, **body: str) -> Any:
    return client.post(f"/api/v1/incidents/{incident}/assignment", headers=token(client, "sup"), json=body)


def _reassignments(client: TestClient, incident: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    events = client.get(f"/api/v1/incidents/{incident}/events", headers=token(client, "sup")).json()
    return [(e["data"]["from"], e["data"]["to"]) for e in events if e["kind"] == "reassigned"]


def _alerts(client: TestClient, incident: int) -> list[tuple[str, str]]:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        rows = session.execute(
            select(Alert.kind, Recipient.unit_code)
            .join(Recipient, Alert.recipient_id == Recipient.id)
            .where(Alert.incident_id == incident)
            .order_by(Alert.id)
        )
        return [(kind, unit) for kind, unit in rows]


def test_reassigning_to_the_unit_it_is_already_assigned_to_by_hand_is_refused(fire: tuple[TestClient, int]) -> None:
    """Confirming an automatic assignment pins it (an event, no move); naming the same unit again changes nothing
    and is a 409 (it appended another event each time); a move to another township still works, once."""
    client, incident = fire
    beigang = {"township": "DEMO01", "county": "DEMO00"}
    donghe = {"township": "DEMO02", "county": "DEMO00"}
    confirmed = _assign(client, incident, township_code="DEMO01", note="电话确认在北岗镇")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["assignment_status"] == "manual"
    assert _reassignments(client, incident) == [(beigang, beigang)]
    alerts = _alerts(client, incident)
    same_unit = (
        {"township_code": "DEMO01"},
        {"county_code": "DEMO00"},
        {"township_code": "DEMO01", "county_code": "DEMO00"},
    )
    for body in same_unit:
        again = _assign(client, incident, **body, note="again")
        assert again.status_code == 409, again.text
        assert again.json()["detail"].startswith("the incident is already assigned to 北岗镇 (DEMO) (DEMO01) by hand")
    assert _reassignments(client, incident) == [(beigang, beigang)]
    assert _alerts(client, incident) == alerts
    moved = _assign(client, incident, township_code="DEMO02", note="地块属东河乡")
    assert (moved.status_code, moved.json()["township_code"]) == (200, "DEMO02")
    assert _assign(client, incident, township_code="DEMO02", note="again").status_code == 409
    assert _reassignments(client, incident) == [(beigang, beigang), (beigang, donghe)]
    assert _alerts(client, incident)[len(alerts) :] == [("new", "DEMO02")]
    # The move the clocks restart at is still the one to 东河乡 (a refused request recorded nothing).
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        (move,) = session.scalars(
            select(IncidentEvent.at).where(IncidentEvent.incident_id == incident, IncidentEvent.kind == "reassigned")
        ).all()[1:]
        assert moved_at(session, [incident]) == {incident: move}


def test_a_domain_error_quoting_a_lone_surrogate_is_answered() -> None:
    """The service's own errors quote what they refuse (a file name, a code); one holding a lone surrogate failed
    the answer like the validation errors' echo did. The handlers as the service installs them, on a route that
    raises such an error."""
    app = FastAPI()
    http_errors.install(app)

    @app.get("/refuse")
    def refuse() -> None:
        raise InputError("not a photo", source="\ud83d.jpg")

    with TestClient(app) as client:
        response = client.get("/refuse")
    assert (response.status_code, response.json()) == (422, {"detail": "\\ud83d.jpg: not a photo"})


def test_roles_are_named_with_their_article(fire: tuple[TestClient, int]) -> None:
    """403s and refused moves read "an evaluator" / "an admin" (they read "a evaluator")."""
    assert [a_role(r) for r in Role] == ["a patrol", "a supervisor", "an evaluator", "an admin", "a device", "a system"]
    assert check_transition(IncidentState.SUSPECTED, IncidentState.ESCALATED, Role.ADMIN) == (
        "an admin may not move an incident from suspected to escalated"
    )
    client, incident = fire
    with transaction(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        create_user(session, "eval", PASSWORD, Role.EVALUATOR, None)
    refused = client.post(
        f"/api/v1/incidents/{incident}/transitions", headers=token(client, "eval"), json={"to": "acknowledged"}
    )
    assert (refused.status_code, refused.json()) == (403, {"detail": "an evaluator may not do this"})
