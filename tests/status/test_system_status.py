"""The system status: each background component's latest run, overdue and failed alerts, cameras, and what came in
— on SQLite and PostgreSQL, with a real alert worker thread, a real FIRMS stand-in and the HTTP API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.worker import AlertWorker
from service.auth.service import create_user
from service.config import AlertSettings, Settings
from service.db import transaction, utcnow
from service.incidents.states import Role
from service.main import create_app
from service.status import service as status
from service.status.tables import ComponentRun
from tests.alerts.test_outbox import factory, setup  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.cameras.test_registry_service import login
from tests.httpserver import Recorded, http_receiver

NOW = datetime(2026, 4, 20, 8, 0, tzinfo=UTC)
MAP_KEY = "0123456789abcdef0123456789abcdef"


def part(name: str, state: status.ComponentState, *, expected: bool = True, **kwargs: Any) -> status.ComponentStatus:
    return status.ComponentStatus(name, state, expected, 900.0, **kwargs)


def quiet_alerts(**kwargs: Any) -> status.AlertsStatus:
    return status.AlertsStatus(**({"pending": 0, "overdue": 0, "overdue_since": None, "failed_24h": 0,
                                   "sent_24h": 0, "last_sent_at": None} | kwargs))  # fmt: skip


def test_component_states() -> None:
    limit = timedelta(minutes=30)
    state = status.component_state
    assert state(None, None, 0, limit=limit, now=NOW) == "never_run"
    assert state(NOW, NOW, 0, limit=limit, now=NOW) == "ok"
    ago = NOW - timedelta(minutes=20)
    assert state(NOW, ago, 1, limit=limit, now=NOW) == "ok"  # one failure after a recent success: not yet
    assert state(NOW, ago, 2, limit=limit, now=NOW) == "failing"
    assert state(NOW, None, 1, limit=limit, now=NOW) == "failing"  # never worked: a wrong key fails from the start
    assert state(NOW, NOW - timedelta(minutes=31), 0, limit=limit, now=NOW) == "late"


def test_problems_are_plain_and_most_urgent_first() -> None:
    cameras = [{"camera_id": "c1", "preset": f"p{i}", "state": "silent"} for i in range(12)]
    cameras += [
        {"camera_id": "c2", "preset": "east", "state": "frozen"},
        {"camera_id": "c3", "preset": "a", "state": "ok"},
    ]
    parts = [
        part("alerts.worker", "ok"),
        part(
            "firms:MODIS_NRT",
            "failing",
            consecutive_failures=3,
            last_error="HTTP 500: server error",
            last_success_at=NOW,
        ),
        part("firms:VIIRS_SNPP_NRT", "late", last_success_at=NOW - timedelta(hours=5)),
        part("firms:VIIRS_NOAA20_NRT", "failing", expected=False, consecutive_failures=9),  # no longer configured
    ]
    overdue = quiet_alerts(pending=5, overdue=4, overdue_since=NOW - timedelta(minutes=42), failed_24h=2)
    problems = status.problems_of(overdue, parts, cameras)
    assert [p.code for p in problems] == [
        "alerts_overdue", "component_failing", "component_late", "alerts_failed", "cameras_frozen", "cameras_silent",
    ]  # fmt: skip
    assert problems[0].message.startswith("4 alert(s) due since 2026-04-20T07:18+00:00 have not been delivered")
    assert (
        problems[1].message == "the FIRMS poll of MODIS_NRT failed 3 times in a row; last error: HTTP 500: server error"
    )
    assert "has not succeeded for over 15 min (last success: 2026-04-20T03:00+00:00)" in problems[2].message
    assert problems[4].items == ("c2/east",)
    assert problems[5].count == 12
    assert problems[5].message.endswith("c1/p9 and 2 more; no fire can be seen there")
    assert status.problems_of(quiet_alerts(sent_24h=3), [part("alerts.worker", "ok")], []) == []


def test_record_run_keeps_the_last_success_through_failures(factory: sessionmaker[Session]) -> None:  # noqa: F811
    with transaction(factory) as session:
        status.record_run(session, "firms:MODIS_NRT", at=NOW, ok=True, detail={"hotspots": 7})
    for minutes in (10, 20):
        with transaction(factory) as session:
            status.record_run(
                session, "firms:MODIS_NRT", at=NOW + timedelta(minutes=minutes), ok=False, error="x" * 900
            )
    with factory() as session:
        row = session.get(ComponentRun, "firms:MODIS_NRT")
        assert row is not None
        assert (row.last_success_at, row.last_attempt_at) == (NOW, NOW + timedelta(minutes=20))
        assert row.consecutive_failures == 2
        assert row.last_error == "x" * status.ERROR_CHARS
        assert json.loads(row.detail) == {"hotspots": 7}  # what the last success did
    with transaction(factory) as session:
        status.record_run(session, "firms:MODIS_NRT", at=NOW + timedelta(minutes=30), ok=True, detail={"hotspots": 0})
    with factory() as session:
        row = session.get(ComponentRun, "firms:MODIS_NRT")
        assert row is not None
        assert (row.consecutive_failures, row.last_error, row.detail) == (0, None, '{"hotspots": 0}')


def test_an_alert_worker_that_is_not_running_and_one_that_fails_are_problems(
    factory: sessionmaker[Session],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(alerts={"public_base_url": "https://strawfire.example.org"})  # links the teams can open
    with http_receiver() as receiver:
        ids, _ = setup(factory, receiver, 2)
        with factory() as session:
            now = utcnow()
            fresh = status.system_status(session, settings, now=now)
            later = status.system_status(session, settings, now=now + timedelta(minutes=10))
        assert fresh.alerts.pending == fresh.alerts.overdue + 2 == 2  # due now, not overdue yet
        assert [p.code for p in fresh.problems] == ["component_never_run"]  # the worker has never passed
        assert later.status == "degraded"
        assert [p.code for p in later.problems] == ["alerts_overdue", "component_never_run"]
        assert later.alerts.overdue == 2
        # A real worker thread delivers them and records its pass.
        worker = AlertWorker(factory, AlertSettings(poll_interval_s=0.05))
        worker.start()
        deadline = time.monotonic() + 20
        while len(receiver.received()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.stop()
    with factory() as session:
        after = status.system_status(session, settings, now=utcnow())
    assert after.problems == []
    assert after.status == "ok"
    assert (after.alerts.pending, after.alerts.sent_24h) == (0, 2)
    [worker_part] = [p for p in after.components if p.name == "alerts.worker"]
    assert worker_part.state == "ok"
    assert len(ids) == 2

    # A worker whose passes fail (here: the database it was given refuses) says so, its message redacted.
    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("could not connect to postgresql://strawfire:s3cret-pw@10.1.1.5/strawfire")

    monkeypatch.setattr("service.alerts.worker.run_once", failing)
    worker = AlertWorker(factory, AlertSettings(poll_interval_s=0.05))
    worker.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with factory() as session:
            row = session.get(ComponentRun, "alerts.worker")
            if row is not None and row.consecutive_failures >= 2:
                break
        time.sleep(0.05)
    worker.stop()
    with factory() as session:
        failed = status.system_status(session, settings, now=utcnow())
    [problem] = failed.problems
    assert problem.code == "component_failing"
    assert "s3cret-pw" not in problem.message
    assert "postgresql://strawfire:***@10.1.1.5/strawfire" in problem.message


def test_a_worker_run_apart_from_the_web_process_is_judged_once_it_has_run(factory: sessionmaker[Session]) -> None:  # noqa: F811
    apart = Settings(alerts={"run_worker": False})
    with factory() as session:
        assert [p.name for p in status.components(session, apart, now=NOW)] == []
    with transaction(factory) as session:
        status.record_run(session, "alerts.worker", at=NOW - timedelta(hours=1), ok=True)
    with factory() as session:
        [worker] = status.components(session, apart, now=NOW)
    assert (worker.expected, worker.state) == (True, "late")


@pytest.fixture
def firms_stand_in() -> Any:
    """FIRMS' area API on 127.0.0.1: MODIS fails (500) at every poll, VIIRS answers with no fires."""
    with http_receiver() as firms:

        def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
            if "/MODIS_NRT/" in request.path:
                return 500, {}, b"server error"
            header = b"latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,"
            return 200, {"Content-Type": "text/csv"}, header + b"version,bright_ti5,frp,daynight\n"

        firms.respond = respond
        yield firms


def test_the_api_shows_a_failing_firms_source_without_its_key(tmp_path: Path, firms_stand_in: Any) -> None:
    """The service's own poller (started by the app, polling the stand-in at once) records each source; the
    status API shows MODIS failing and VIIRS fine, to supervisors and admins only, and never the MAP_KEY."""
    settings = Settings(
        data_dir=tmp_path / "var",
        demo=True,
        firms={
            "map_key": MAP_KEY,
            "base_url": firms_stand_in.url,
            "sources": ["MODIS_NRT", "VIIRS_SNPP_NRT"],
            "poll_interval_min": 60,
        },
    )
    app = create_app(settings)
    with TestClient(app) as client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "sup", "supervisor-password", Role.SUPERVISOR, "DEMO00")
            create_user(session, "eval", "evaluator-password", Role.EVALUATOR, None)
        deadline = time.monotonic() + 60
        names: set[str] = set()
        while not {"firms:MODIS_NRT", "firms:VIIRS_SNPP_NRT"} <= names and time.monotonic() < deadline:
            with app.state.session_factory() as session:
                names = set(session.scalars(select(ComponentRun.name)))
            time.sleep(0.1)
        supervisor = login(client, "sup", "supervisor-password")
        response = client.get("/api/v1/status", headers=supervisor)
        assert client.get("/api/v1/status", headers=login(client, "eval", "evaluator-password")).status_code == 403
        assert client.get("/api/v1/status").status_code == 401
        assert client.get("/readyz").json() == {"status": "ready"}
        app.state.engine = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite3'}")
        unready = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert MAP_KEY not in response.text
    body = response.json()
    parts = {p["name"]: p for p in body["components"]}
    assert parts["firms:VIIRS_SNPP_NRT"]["state"] == "ok"
    assert parts["firms:VIIRS_SNPP_NRT"]["detail"] == {"hotspots": 0}
    assert parts["firms:MODIS_NRT"]["state"] == "failing"  # it has never succeeded
    assert parts["firms:MODIS_NRT"]["last_error"]
    assert body["status"] == "degraded"
    # Other problems may come first (the demo's alert worker may not have run yet): find MODIS's by its component.
    [modis] = [p for p in body["problems"] if p["component"] == "firms:MODIS_NRT"]
    assert modis["message"].startswith("the FIRMS poll of MODIS_NRT has never succeeded (1 attempt(s))")
    assert body["cameras"] == {"ok": 0, "frozen": 0, "silent": 0, "never_seen": 0, "lens_mismatch": 0}
    assert (unready.status_code, unready.json()) == (503, {"status": "unavailable"})


def test_the_status_counts_what_came_in_per_kind(factory: sessionmaker[Session]) -> None:  # noqa: F811
    with http_receiver() as receiver:
        setup(factory, receiver, 3)
    with factory() as session:
        now = utcnow()
        today = status.observation_feeds(session, now=now)
        tomorrow = status.observation_feeds(session, now=now + timedelta(days=1, minutes=1))
    [satellite] = today
    assert (satellite.kind, satellite.received_24h) == ("satellite", 3)
    assert satellite.last_observed_at == datetime(2025, 10, 20, 3, 0, tzinfo=UTC)
    assert tomorrow[0].received_24h == 0
    assert tomorrow[0].last_received_at == satellite.last_received_at


def test_the_status_command_exits_1_on_a_problem_and_0_when_the_loop_works(tmp_path: Path) -> None:
    """``strawfire status`` on the configured database, as a monitoring timer runs it: before any alert worker
    has run there is a problem (exit 1); ``alerts worker --once`` records its pass, and the status is ok (exit 0)."""
    import os
    import subprocess
    import sys

    strawfire = str(Path(sys.executable).with_name("strawfire"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [strawfire, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    assert run("db", "upgrade").returncode == 0
    before = run("status")
    assert before.returncode == 1, before.stderr
    assert "the alert worker has never run" in before.stderr
    assert before.stdout.strip().endswith("status: degraded")
    assert run("alerts", "worker", "--once").returncode == 0
    after = run("status", "--json")
    assert after.returncode == 0, after.stderr
    body = json.loads(after.stdout)
    assert (body["status"], body["problems"]) == ("ok", [])
    assert [(c["name"], c["state"]) for c in body["components"]] == [("alerts.worker", "ok")]


def test_a_failing_pass_of_alerts_worker_once_is_recorded_and_still_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alerts worker --once`` from a timer: a pass that fails is recorded for the status (redacted), and the
    command still fails, so the timer's own log shows it too."""
    from typer.testing import CliRunner

    from service import cli
    from service.config import get_settings
    from service.db import make_session_factory, open_database

    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("webhook https://open.feishu.cn/x?access_token=tok-123 unreachable")

    monkeypatch.setenv("STRAWFIRE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setattr("service.alerts.worker.run_once", failing)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["alerts", "worker", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    engine = open_database(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}")
    with make_session_factory(engine)() as session:
        row = session.get(ComponentRun, "alerts.worker")
        assert row is not None
        assert (row.consecutive_failures, row.last_success_at) == (1, None)
        assert row.last_error == "RuntimeError: webhook https://open.feishu.cn/x?access_token=*** unreachable"
    engine.dispose()


def test_frames_the_workers_dropped_lately_come_after_the_blind_cameras() -> None:
    cameras = [
        {"camera_id": "c1", "preset": "p1", "state": "silent"},
        {"camera_id": "c2", "preset": "east", "state": "ok", "expiring": True, "expired": 12},
        {"camera_id": "c2", "preset": "west", "state": "ok", "expiring": False, "expired": 3},  # caught up since
    ]
    problems = status.problems_of(quiet_alerts(), [], cameras)
    assert [p.code for p in problems] == ["cameras_silent", "frames_expired"]
    assert problems[1].items == ("c2/east",)
    assert problems[1].message == (
        "1 camera preset(s) had frames dropped unlooked-at, not taken by a patrol worker within the frame TTL: "
        "c2/east (12 in the last hour); the Celery workers are not keeping up: add workers (celery -A video.tasks "
        "worker) or check that they run"
    )


def test_expired_frame_reports_of_two_grabbers_are_kept_per_preset(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """Two grabbers (each with its own cameras) report the frames their workers dropped; each report replaces
    only its own presets' in the shared row, and the status names the presets where frames expired lately."""
    from service.cameras.health import store_heartbeats
    from service.cameras.service import replace_registry
    from tests.video.test_registry import BASE
    from video.registry import CameraRegistry

    with transaction(factory) as session:
        replace_registry(session, CameraRegistry.from_dict(BASE))
    now = utcnow()

    def report(camera_id: str, preset: str, expired: int, last_ago_min: float | None, at: datetime) -> dict[str, Any]:
        last = None if last_ago_min is None else (now - timedelta(minutes=last_ago_min)).isoformat()
        beat = {"camera_id": camera_id, "preset": preset, "at": at.isoformat(), "frames": 9, "errors": 0}
        return beat | {"frozen": False, "last_frame_at": at.isoformat(), "expired": expired, "last_expired_at": last}

    first, second = now - timedelta(minutes=2), now - timedelta(minutes=1)
    batches = [
        [report("nongan-07", "p1", 5, 3, first), report("nongan-07", "p2", 0, None, first)],
        [report("dehui-02", "east", 2, 4, first)],
        [report("nongan-07", "p1", 0, 70, second), report("nongan-07", "p2", 1, 1, second)],  # p1 caught up
    ]
    for batch in batches:
        with transaction(factory) as session:
            result = store_heartbeats(session, list(batch), now=now)
            assert (result.stored, result.rejected) == (len(batch), [])
    with factory() as session:
        found = status.system_status(session, Settings(), now=now)
        presets = {f"{c['camera_id']}/{c['preset']}": c for c in status.preset_health(session, now=now)}
    assert {key: (p["expired"], p["expiring"]) for key, p in presets.items()} == {
        "nongan-07/p1": (0, False),
        "nongan-07/p2": (1, True),
        "dehui-02/east": (2, True),
    }
    [problem] = [p for p in found.problems if p.code == "frames_expired"]
    assert problem.items == ("nongan-07/p2", "dehui-02/east")
    assert "cameras.expired_frames" not in {c.name for c in found.components}
