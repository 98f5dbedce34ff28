"""The service's side of the ``lens_mismatch`` camera health state: heartbeats set and clear it, the state ranks
below the blind states, a contradictory report is refused, and nothing more is written per heartbeat while the
lenses fit (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.cameras.health import LENS_MISMATCH, preset_health, store_heartbeats
from service.cameras.service import replace_registry
from service.config import Settings
from service.db import make_session_factory, transaction
from service.status import service as status
from service.status.tables import ComponentRun
from tests.video.test_registry import BASE
from video.registry import CameraRegistry

NOW = datetime(2026, 4, 20, 8, 0, tzinfo=UTC)
MISMATCH = {"registered": [1920, 1080], "received": [704, 576]}  # a 16:9 lens, a D1 (PAL) sub-stream


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    made = make_session_factory(engine)
    with transaction(made) as session:
        replace_registry(session, CameraRegistry.from_dict(BASE))
    return made


def beat(preset: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "camera_id": "nongan-07",
        "preset": preset,
        "at": at.isoformat(),
        "frames": 10,
        "errors": 10,
        "frozen": False,
        "last_frame_at": (at - timedelta(seconds=5)).isoformat(),
    } | extra


def post(factory: sessionmaker[Session], *beats: dict[str, Any], now: datetime = NOW) -> Any:
    with transaction(factory) as session:
        return store_heartbeats(session, list(beats), now=now)


def health(factory: sessionmaker[Session], now: datetime = NOW) -> dict[str, dict[str, Any]]:
    with factory() as session:
        return {f"{p['camera_id']}/{p['preset']}": p for p in preset_health(session, now=now)}


def written_at(factory: sessionmaker[Session]) -> datetime | None:
    with factory() as session:
        row = session.get(ComponentRun, LENS_MISMATCH)
        return None if row is None else row.last_attempt_at


def test_a_heartbeat_sets_and_a_newer_one_clears_the_lens_mismatch(factory: sessionmaker[Session]) -> None:
    assert post(factory, beat("p1", NOW - timedelta(seconds=60)), beat("p2", NOW - timedelta(seconds=60))).stored == 2
    assert written_at(factory) is None  # lenses that fit write nothing more than the heartbeat itself

    post(factory, beat("p1", NOW - timedelta(seconds=30), lens_mismatch=MISMATCH))
    presets = health(factory)
    assert (presets["nongan-07/p1"]["state"], presets["nongan-07/p1"]["lens_mismatch"]) == ("lens_mismatch", MISMATCH)
    assert (presets["nongan-07/p2"]["state"], presets["nongan-07/p2"]["lens_mismatch"]) == ("ok", None)
    first_write = written_at(factory)
    assert first_write is not None

    # The same report again changes nothing: the row is not rewritten.
    post(factory, beat("p1", NOW - timedelta(seconds=20), lens_mismatch=MISMATCH), now=NOW + timedelta(seconds=1))
    assert written_at(factory) == first_write
    # An older heartbeat arriving late is ignored, whatever it says.
    assert post(factory, beat("p1", NOW - timedelta(seconds=25))).stale == 1
    assert health(factory)["nongan-07/p1"]["state"] == "lens_mismatch"

    # A frozen or silent preset is reported as such first: it sees no fire at all.
    post(factory, beat("p1", NOW - timedelta(seconds=10), lens_mismatch=MISMATCH, frozen=True))
    assert health(factory)["nongan-07/p1"]["state"] == "frozen"
    later = NOW + timedelta(hours=1)
    assert health(factory, later)["nongan-07/p1"]["state"] == "silent"

    # The stream fits its lens again: the next heartbeat, which says nothing of the lens, clears it.
    post(factory, beat("p1", NOW - timedelta(seconds=5)))
    presets = health(factory)
    assert (presets["nongan-07/p1"]["state"], presets["nongan-07/p1"]["lens_mismatch"]) == ("ok", None)


def test_a_contradictory_or_malformed_lens_report_is_refused_on_its_own(factory: sessionmaker[Session]) -> None:
    at = NOW - timedelta(seconds=10)
    result = post(
        factory,
        beat("p1", at, lens_mismatch={"registered": [1280, 720], "received": [1280, 720]}),
        beat("p1", at, lens_mismatch={"registered": [1280, 720]}),
        beat("p1", at, lens_mismatch={"registered": [1280, 0], "received": [1280, 720]}),
        beat("p1", at, lens_mismatch={"registered": ["1280", 720], "received": [1280, 720]}),
        beat("p2", at, lens_mismatch=MISMATCH),
    )
    assert result.stored == 1
    errors = [r.error for r in result.rejected]
    assert errors[0] == "lens_mismatch: registered and received are the same size"
    assert all(e.startswith("lens_mismatch.") for e in errors[1:]), errors
    assert health(factory)["nongan-07/p1"]["state"] == "never_seen"
    assert health(factory)["nongan-07/p2"]["state"] == "lens_mismatch"


def test_the_status_names_the_presets_with_their_sizes(factory: sessionmaker[Session]) -> None:
    post(factory, beat("p2", NOW - timedelta(seconds=10), lens_mismatch=MISMATCH))
    settings = Settings(alerts={"public_base_url": "https://strawfire.example.org", "run_worker": False})
    with factory() as session:
        found = status.system_status(session, settings, now=NOW)
    assert found.cameras["lens_mismatch"] == 1
    assert LENS_MISMATCH not in {part.name for part in found.components}
    [problem] = [p for p in found.problems if p.code == "cameras_lens_mismatch"]
    assert (problem.component, problem.count, problem.items) == ("cameras", 1, ("nongan-07/p2",))
    assert problem.message.startswith(
        "1 camera preset(s) send frames of another aspect ratio than their registered lens: nongan-07/p2 (registered "
        "1920×1080, received 704×576); their fires are posted without a ground point"
    )
