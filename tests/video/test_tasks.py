"""Scale-out on Celery: verifier state as JSON, the eager (embedded) mode, and a real Redis + two real workers."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.detections import Detections
from detector.rules import RulesDetector
from detector.sequence import Event, SequenceConfig, SequenceVerifier
from tests.httpserver import Recorded, http_receiver
from tests.video.figlib import (
    CLIP_START,
    CONFIRM_FRAME,
    END_FRAME,
    FRAMES,
    VIDEO,
    FiglibLabelledDetector,
    clip_frames,
    figlib_camera,
    figlib_registry,
    require,
)
from video.errors import VideoError
from video.patrol import FramePipeline, PostOutcome, PresetState
from video.registry import CameraRegistry, save_registry
from video.sighting import CameraSighting, SightingUpload
from video.sources import Frame, VideoFileSource
from video.tasks import (
    RedisVerifierStore,
    Runtime,
    app,
    configure_runtime,
    frame_from_payload,
    frame_payload,
    load_detector_spec,
    make_celery,
    process_frame_task,
    state_from_json,
    state_to_json,
    submit_frame,
)

REPO = Path(__file__).resolve().parents[2]


def random_detections(rng: random.Random) -> Detections:
    """0–3 boxes from a few fixed places (so tracks form, confirm and end), jittered, random class and score."""
    anchors = [(100, 100), (300, 120), (500, 400)]
    rows, scores, classes = [], [], []
    for x, y in rng.sample(anchors, rng.randint(0, 3)):
        dx, dy = rng.uniform(-8, 8), rng.uniform(-8, 8)
        rows.append([x + dx, y + dy, x + dx + 40, y + dy + 30])
        scores.append(rng.uniform(0.05, 0.9))
        classes.append(rng.randint(0, 1))
    return Detections(
        (640, 480),
        "m",
        "1",
        ("fire", "smoke"),
        np.asarray(rows, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(classes, np.int64),
    )


def test_a_verifier_rebuilt_from_json_every_frame_behaves_like_one_that_never_stopped() -> None:
    """The JSON state carries everything the verifier reads (including long events, whose hits are trimmed)."""
    config = SequenceConfig()
    rng = random.Random(7)
    t0 = datetime(2026, 4, 20, tzinfo=UTC)
    steady = PresetState(SequenceVerifier(config))
    stored: dict[str, Any] | None = None
    changes = 0
    for minute in range(400):
        detections = random_detections(rng)
        if minute < 120:  # one fire that burns for two hours: its track far outlives the window
            detections = Detections(
                (640, 480),
                "m",
                "1",
                ("fire", "smoke"),
                np.vstack([detections.xyxy, [[20, 300, 60, 340]]]).astype(np.float32),
                np.append(detections.confidence, np.float32(0.5)),
                np.append(detections.class_id, 1),
            )
        when = t0 + timedelta(minutes=minute) if rng.random() > 0.1 else t0 + timedelta(minutes=minute, seconds=59)
        expected = steady.advance(when, 60.0, detections)
        revived = PresetState(SequenceVerifier(config)) if stored is None else state_from_json(stored, config)
        got = revived.advance(when, 60.0, detections)
        assert got == expected, minute
        stored = json.loads(json.dumps(state_to_json(revived)))
        changes += len(got[1])
    assert changes > 20
    assert stored is not None
    assert all(len(track["hits"]) <= config.window + 1 for track in stored["tracks"])
    with pytest.raises(ValueError, match="unknown verifier state format"):
        state_from_json({"format": 99}, config)


def test_frame_payloads_round_trip_and_keep_the_cameras_jpeg() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:20, 10:30] = (0, 128, 255)
    frame = Frame(image, datetime(2026, 4, 20, 1, 2, 3, tzinfo=UTC), "tower-a", "p1", 42)
    back = frame_from_payload(json.loads(json.dumps(frame_payload(frame))))
    assert (back.camera_id, back.preset_id, back.seq, back.captured_at) == ("tower-a", "p1", 42, frame.captured_at)
    assert np.abs(back.image.astype(int) - image.astype(int)).mean() < 3
    jpeg = back.encoded
    assert jpeg is not None
    again = Frame(back.image, back.captured_at, "tower-a", "p1", 43, jpeg)
    assert frame_payload(again)["jpeg_b64"] == frame_payload(back)["jpeg_b64"]  # not re-encoded
    with pytest.raises(VideoError, match="malformed frame payload"):
        frame_from_payload({"camera_id": "tower-a"})
    with pytest.raises(VideoError, match="does not decode"):
        frame_from_payload({**frame_payload(frame), "jpeg_b64": "AAAA"})
    with pytest.raises(VideoError, match="has no time zone"):  # a VideoError like the others, not a ValueError
        frame_from_payload({**frame_payload(frame), "captured_at": "2026-04-20T01:02:03"})


def test_detector_specs() -> None:
    assert isinstance(load_detector_spec("rules"), RulesDetector)
    assert isinstance(load_detector_spec("tests.video.figlib:FiglibLabelledDetector"), FiglibLabelledDetector)
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        load_detector_spec("yolo")
    with pytest.raises(TypeError, match="did not return a Detector"):
        load_detector_spec("datetime:date.today")


class ListSink:
    def __init__(self) -> None:
        self.uploads: list[SightingUpload] = []

    def send(self, upload: SightingUpload) -> PostOutcome:
        self.uploads.append(upload)
        return PostOutcome(upload.key, True, 201)


@pytest.fixture
def eager_runtime() -> Iterator[ListSink]:
    if not app.conf.task_always_eager:
        pytest.skip("STRAWFIRE_VIDEO__BROKER_URL is set in this environment: the module app is not in embedded mode")
    sink = ListSink()
    configure_runtime(Runtime(FramePipeline(figlib_registry(), FiglibLabelledDetector(), sink), None))
    yield sink
    configure_runtime(None)


def test_embedded_mode_runs_the_same_tasks_in_process(eager_runtime: ListSink) -> None:
    require(VIDEO)
    results = [
        submit_frame(frame).get()
        for frame in VideoFileSource(VIDEO, "figlib-mobo-c", "p1", start_time=CLIP_START, frame_interval_s=60.0)
    ]
    assert len(results) == FRAMES
    assert {r["worker"] for r in results} == {"eager"}
    states = {r["seq"]: [e["state"] for e in r["events"]] for r in results if r["events"]}
    assert states == {CONFIRM_FRAME: ["confirmed"], END_FRAME: ["ended"]}
    sightings = [u.sighting for u in eager_runtime.uploads]
    assert [s.event.state for s in sightings if isinstance(s, CameraSighting)] == ["confirmed", "ended"]
    direct = process_frame_task.delay(frame_payload(Frame(clip_frames()[0], CLIP_START, "ghost", "p1", 0))).get()
    assert direct["status"] == "error"


# --- A real Redis server and real Celery workers ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(folder: Path, *, password: str | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server of its own on a free port of 127.0.0.1, once it answers; the test is skipped without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    if password is not None:
        command += ["--requirepass", password]
    process = subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port, password=password)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    client.close()
    return process, port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, port = _start_redis(tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


def test_redis_store_serialises_presets_and_reports_late_frames(redis_url: str) -> None:
    import redis

    store = RedisVerifierStore(redis.Redis.from_url(redis_url))
    key = f"test-{uuid.uuid4().hex}/p1"
    config = SequenceConfig(min_hits=2, window=3)
    box = Detections(
        (64, 64),
        "m",
        "1",
        ("fire", "smoke"),
        np.array([[1, 1, 9, 9]], np.float32),
        np.array([0.9], np.float32),
        np.ones(1, np.int64),
    )
    t0 = datetime(2026, 4, 20, tzinfo=UTC)
    image = np.full((64, 64, 3), 77, np.uint8)

    def new() -> PresetState:
        return PresetState(SequenceVerifier(config))

    first, events = store.advance(key, new, t0, 60.0, box, image)
    assert first is not None
    assert events == []
    assert store.advance(key, new, t0 - timedelta(minutes=1), 60.0, box) == (None, [])  # late
    index, events = store.advance(key, new, t0 + timedelta(minutes=1), 60.0, box)
    assert index == first + 1
    assert [(e.class_name, e.end_frame) for e in events] == [("smoke", None)]
    assert isinstance(events[0], Event)
    previous = store.previous_image(key, t0 + timedelta(minutes=2), 180.0)
    assert previous is not None
    assert abs(int(previous.mean()) - 77) <= 1
    assert store.previous_image(key, t0 + timedelta(hours=1), 180.0) is None
    assert 0 < store.redis.ttl("strawfire:video:verifier:" + key) <= 86_400


def test_workers_record_expired_frames_and_the_grabbers_heartbeats_carry_them(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each frame a worker drops unlooked-at (``expired``) is recorded per preset in the workers' Redis; the
    grabber's heartbeats read it there (``expired`` in the last hour, ``last_expired_at``) for the system status,
    and go without those fields, not without the heartbeat, when that Redis does not answer."""
    import redis

    from tests.video.stand_ins import steady_smoke_detector
    from tests.video.test_health import ListSource
    from video.tasks import grabber_celery, process_frame, run_grabber

    state_url = redis_url.removesuffix("/0") + "/1"  # a database of its own: other tests' presets stay apart
    redis.Redis.from_url(state_url).flushdb()
    store = RedisVerifierStore(redis.Redis.from_url(state_url))
    registry = figlib_registry()
    configure_runtime(Runtime(FramePipeline(registry, steady_smoke_detector(), ListSink(), store=store), None))
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    past = datetime.now(UTC) - timedelta(seconds=1)
    rng = np.random.default_rng(6)
    frames = [
        Frame(rng.integers(0, 255, (427, 640, 3), dtype=np.uint8), t0 + timedelta(minutes=i), "figlib-mobo-c", "p1", i)
        for i in range(3)
    ]
    try:
        dropped = [process_frame(frame_payload(frame, expires_at=past))["status"] for frame in frames]
        # Celery hands a frame out again when its worker is lost: dropped twice, it is one frame dropped.
        process_frame(frame_payload(frames[0], expires_at=past))
        taken = process_frame(frame_payload(frames[2], expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    finally:
        configure_runtime(None)
    assert dropped == ["expired"] * 3
    assert taken["status"] in {"ok", "late"}  # looked at, not dropped: not counted
    assert store.redis.ttl("strawfire:video:expired:figlib-mobo-c/p1") > 86_000

    def grab(state: str) -> list[dict[str, Any]]:
        beats: list[list[dict[str, Any]]] = []
        celery = grabber_celery(state_url, queue=f"strawfire-test-{uuid.uuid4().hex[:8]}")
        try:
            run_grabber(
                registry,
                celery,
                frame_ttl_s=300,
                sources=lambda camera, preset: ListSource(frames[:1]),
                heartbeat=beats.append,
                state_url=state,
            )
        finally:
            celery.close()
        return beats[-1]

    [beat] = grab(state_url)
    assert beat["expired"] == 3
    last = datetime.fromisoformat(beat["last_expired_at"])
    assert past < last <= datetime.fromisoformat(beat["at"])
    with caplog.at_level("WARNING", logger="video.patrol"):
        [unread] = grab(f"redis://127.0.0.1:{_free_port()}/0")
    assert "expired" not in unread
    assert "last_expired_at" not in unread
    assert unread["frames"] == 1
    assert "the workers' expired frames could not be read" in caplog.text


def _start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "video.tasks", "worker", "--pool=solo", "-n", name,
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_real_workers_share_verifier_state_and_post_sightings(redis_url: str, tmp_path: Path) -> None:
    """Frames of the real tower video go through Redis to two worker processes, one after the other as a grabber
    sends them; Redis hands them to the workers in turn, so consecutive frames of the preset are verified in
    different processes — and the events still come out exactly as in one process. The service is down for the
    first posts: that sighting is queued and delivered by the post task."""
    require(VIDEO)
    registry_path = save_registry(figlib_registry(), tmp_path / "cameras.json")
    queue = f"strawfire-test-{uuid.uuid4().hex[:8]}"
    failures = {"left": 2}
    lock = threading.Lock()

    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        with lock:
            if failures["left"] > 0:
                failures["left"] -= 1
                return 503, {"Content-Type": "application/json"}, b'{"detail": "restarting"}'
        return 201, {"Content-Type": "application/json"}, b'{"ok": true}'

    first = 12  # the verifier starts fresh here; the first labelled frame is 20
    frames = [
        Frame(image, CLIP_START + timedelta(minutes=i), "figlib-mobo-c", "p1", i)
        for i, image in enumerate(clip_frames())
    ][first:]
    with http_receiver() as receiver:
        receiver.respond = respond
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "STRAWFIRE_VIDEO__BROKER_URL": redis_url,
            "STRAWFIRE_VIDEO__QUEUE": queue,
            "STRAWFIRE_VIDEO__REGISTRY": str(registry_path),
            "STRAWFIRE_VIDEO__SERVICE_URL": receiver.url,
            "STRAWFIRE_VIDEO__DEVICE_TOKEN": "worker-token",
            "STRAWFIRE_VIDEO__DETECTOR": "tests.video.figlib:figlib_labelled_detector",
            "STRAWFIRE_VIDEO__POST_RETRY_S": "0.2",
        }
        names = [f"w1-{queue}@test", f"w2-{queue}@test"]
        workers = [_start_worker(name, env, tmp_path / f"worker{i}.log") for i, name in enumerate(names)]
        client = make_celery(redis_url, queue=queue)
        try:
            deadline = time.monotonic() + 60
            while len(client.control.ping(destination=names, timeout=0.5)) < 2:
                if any(w.poll() is not None for w in workers) or time.monotonic() > deadline:
                    logs = "\n".join((tmp_path / f"worker{i}.log").read_text() for i in range(2))
                    pytest.fail(f"workers did not start:\n{logs}")
            # One grabber, frames in order, the next sent when the previous is done (as at a preset's cadence).
            results = [submit_frame(frame, celery=client).get(timeout=60, interval=0.01) for frame in frames]
            deadline = time.monotonic() + 30
            while len(receiver.received()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGQUIT)  # nothing in flight: a cold shutdown is instant
            for worker in workers:
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    worker.kill()
            client.close()

    assert [r["seq"] for r in results] == list(range(first, FRAMES))
    assert {r["status"] for r in results} == {"ok"}
    states = {r["seq"]: [e["state"] for e in r["events"]] for r in results if r["events"]}
    assert states == {CONFIRM_FRAME: ["confirmed"], END_FRAME: ["ended"]}
    by_worker = [r["worker"] for r in results]
    assert set(by_worker) == set(names)
    handovers = sum(a != b for a, b in itertools.pairwise(by_worker))
    assert handovers >= len(results) // 4  # the preset's state really moved between processes
    outcomes = [e for r in results for e in r["events"]]
    assert [e["queued"] for e in outcomes] == [True, False]  # the outage met the first sighting (2 attempts)
    requests = receiver.received()
    assert sorted(json.loads(_part(r, b"sighting"))["sighting_key"] for r in requests) == sorted(
        e["sighting_key"] for e in outcomes
    )
    assert all(r.headers["Authorization"] == "Bearer worker-token" for r in requests)


def _part(request: Recorded, name: bytes) -> bytes:
    marker = b'name="' + name + b'"'
    start = request.body.index(marker)
    body_start = request.body.index(b"\r\n\r\n", start) + 4
    boundary = request.headers["Content-Type"].split("boundary=")[1].encode()
    return request.body[body_start : request.body.index(b"\r\n--" + boundary, body_start)]


def _worker_of(meta: dict[str, Any]) -> str | None:
    result = meta.get("result")
    return result.get("worker") if isinstance(result, dict) else None  # post tasks' results name no worker


def _noise_frames(folder: Path, start: datetime, count: int, seed: int) -> None:
    """``count`` frames of moving noise, one a minute from ``start``, named by their epoch (their capture time)."""
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = rng.integers(0, 255, (427, 640, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{int(start.timestamp()) + 60 * i}.jpg"), image)


@pytest.mark.slow
def test_patrol_with_a_broker_grabs_for_real_workers_which_drop_what_waited_too_long(
    redis_url: str, tmp_path: Path
) -> None:
    """``strawfire patrol --broker``: the grabber reads the cameras and queues their frames, sends the heartbeats,
    and loads no detector; a real Celery worker detects, verifies and posts. Frames queued while no worker ran
    and older than ``--frame-ttl-s`` when one came are dropped unlooked-at (``expired``), and the frames queued
    after them are verified from a fresh start."""
    import redis

    queue = f"strawfire-test-{uuid.uuid4().hex[:8]}"
    t0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    _noise_frames(tmp_path / "before", t0, 3, seed=1)
    _noise_frames(tmp_path / "after", t0 + timedelta(minutes=10), 6, seed=2)
    registries = {}
    for name in ("before", "after"):
        camera = figlib_camera(source=str(tmp_path / name), kind="folder")
        registries[name] = save_registry(CameraRegistry((camera,)), tmp_path / f"{name}.json")
    strawfire = str(Path(sys.executable).with_name("strawfire"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}

    def grab(receiver_url: str, registry: Path, ttl_s: str) -> subprocess.CompletedProcess[str]:
        command = [
            strawfire, "patrol", "--service-url", receiver_url, "--registry", str(registry), "--broker", redis_url,
            "--queue", queue, "--frame-ttl-s", ttl_s, "--heartbeat-s", "30", "--detector", "no.such:factory",
        ]  # fmt: skip
        return subprocess.run(
            command, env=clean, input="grabber-token\n", capture_output=True, text=True, timeout=120, check=False
        )

    def respond(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        if request.path == "/api/v1/cameras/health":
            return 200, {"Content-Type": "application/json"}, b'{"stored": 1, "stale": 0, "rejected": []}'
        return 201, {"Content-Type": "application/json"}, b'{"ok": true}'

    with http_receiver() as receiver:
        receiver.respond = respond
        early = grab(receiver.url, registries["before"], "1")  # no worker yet: these wait in Redis
        assert early.returncode == 0, early.stderr
        assert early.stdout.strip() == "figlib-mobo-c/p1: 3 frames queued, 0 errors"
        time.sleep(1.5)
        env = clean | {
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "STRAWFIRE_VIDEO__BROKER_URL": redis_url,
            "STRAWFIRE_VIDEO__QUEUE": queue,
            "STRAWFIRE_VIDEO__REGISTRY": str(registries["after"]),
            "STRAWFIRE_VIDEO__SERVICE_URL": receiver.url,
            "STRAWFIRE_VIDEO__DEVICE_TOKEN": "worker-token",
            "STRAWFIRE_VIDEO__DETECTOR": "tests.video.stand_ins:steady_smoke_detector",
        }
        name = f"w-{queue}@test"
        worker = _start_worker(name, env, tmp_path / "worker.log")
        try:
            late = grab(receiver.url, registries["after"], "300")
            assert late.returncode == 0, late.stderr
            assert late.stdout.strip() == "figlib-mobo-c/p1: 6 frames queued, 0 errors"
            store = redis.Redis.from_url(redis_url)
            deadline = time.monotonic() + 90
            results: list[dict[str, Any]] = []
            while len(results) < 9 and time.monotonic() < deadline and worker.poll() is None:
                metas = [json.loads(store.get(k) or b"{}") for k in store.scan_iter("celery-task-meta-*")]
                results = [m["result"] for m in metas if m.get("status") == "SUCCESS" and _worker_of(m) == name]
                time.sleep(0.2)
            posted = [r for r in receiver.received() if r.path == "/api/v1/observations/camera"]
            # Once the worker has dropped the old frames, the next grabber run's heartbeat says so.
            again = grab(receiver.url, registries["before"], "300")  # taken in time (as late), not dropped
            assert again.returncode == 0, again.stderr
        finally:
            worker.send_signal(signal.SIGQUIT)
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
        log_text = (tmp_path / "worker.log").read_text()
        beats = [r for r in receiver.received() if r.path == "/api/v1/cameras/health"]

    assert len(results) == 9, log_text
    by_status = sorted((r["status"], r["seq"]) for r in results)
    assert by_status == [("expired", 0), ("expired", 1), ("expired", 2)] + [("ok", i) for i in range(6)]
    assert all(r["model"] == "steady-smoke" for r in results)
    confirmed = {r["seq"]: r["events"] for r in results if r["events"]}
    assert list(confirmed) == [3]  # the fourth frame of the fresh start, not the first (the old ones never counted)
    [event] = confirmed[3]
    assert (event["state"], event["class_name"], event["posted"]) == ("confirmed", "smoke", True)
    [sighting] = posted
    assert sighting.headers["Authorization"] == "Bearer worker-token"
    assert json.loads(_part(sighting, b"sighting"))["sighting_key"] == event["sighting_key"]
    # The grabber's last heartbeat of each run, with its own token; the detector option was never loaded.
    assert [b.headers["Authorization"] for b in beats] == ["Bearer grabber-token"] * 3
    assert [b.json()["heartbeats"][0]["frames"] for b in beats] == [3, 6, 3]
    # The frames the worker dropped reach the service in the heartbeats the grabber sends after, read from Redis.
    assert beats[0].json()["heartbeats"][0]["expired"] == 0  # none dropped yet: no worker had run
    [after] = beats[2].json()["heartbeats"]
    assert after["expired"] == 3
    assert after["last_expired_at"] is not None


def test_patrol_with_a_broker_that_does_not_answer_says_so_once_without_its_password(tmp_path: Path) -> None:
    _noise_frames(tmp_path / "frames", datetime(2026, 4, 20, 2, 0, tzinfo=UTC), 2, seed=3)
    camera = figlib_camera(source=str(tmp_path / "frames"), kind="folder")
    registry = save_registry(CameraRegistry((camera,)), tmp_path / "cameras.json")
    command = [
        str(Path(sys.executable).with_name("strawfire")), "patrol", "--service-url", "http://127.0.0.1:9",
        "--registry", str(registry), "--broker", f"redis://:hunter2-secret@127.0.0.1:{_free_port()}/0",
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    result = subprocess.run(command, env=clean, input="t\n", capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "the broker redis://:***@127.0.0.1:" in result.stderr
    assert "does not answer" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_an_expired_frame_whose_sightings_are_still_due_is_processed_not_dropped() -> None:
    """A frame given back after its worker died between verifying it and handing its sightings over is past its
    ``expires_at`` by then (the broker's visibility timeout is an hour): its sightings are sent all the same."""
    from tests.video.stand_ins import steady_smoke_detector
    from video.patrol import MemoryVerifierStore

    sink = ListSink()
    store = MemoryVerifierStore()
    pipeline = FramePipeline(figlib_registry(), steady_smoke_detector(), sink, store=store)
    runtime = Runtime(pipeline, None)
    t0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    rng = np.random.default_rng(4)
    frames = [
        Frame(rng.integers(0, 255, (427, 640, 3), dtype=np.uint8), t0 + timedelta(minutes=i), "figlib-mobo-c", "p1", i)
        for i in range(4)
    ]
    past = datetime.now(UTC) - timedelta(minutes=1)
    configure_runtime(runtime)
    try:
        for frame in frames[:3]:
            assert process_frame_task.delay(frame_payload(frame)).get()["status"] == "ok"
        # The fourth frame confirms; its worker "dies" after the verifier saved its state: the events are pending.
        key = "figlib-mobo-c/p1"
        found = steady_smoke_detector().detect([frames[3].rgb()])[0]
        preset = pipeline.registry.preset("figlib-mobo-c", "p1")[1]
        index, events = store.advance(key, lambda: pipeline.new_state(preset), frames[3].captured_at, 60.0, found)
        assert index is not None
        assert [e.class_name for e in events] == ["smoke"]
        redelivered = process_frame_task.delay(frame_payload(frames[3], expires_at=past)).get()
        stale = process_frame_task.delay(
            frame_payload(Frame(frames[0].image, t0 - timedelta(minutes=5), "figlib-mobo-c", "p1", 9), expires_at=past)
        ).get()
    finally:
        configure_runtime(None)
    assert (redelivered["status"], redelivered["frame_index"]) == ("ok", index)
    assert [e["state"] for e in redelivered["events"]] == ["confirmed"]
    assert len(sink.uploads) == 1
    assert store.pending(key, frames[3].captured_at) is None  # settled once handed over
    assert (stale["status"], stale["frame_index"], stale["events"]) == ("expired", None, [])


def test_a_grabber_whose_broker_goes_down_counts_each_frame_as_an_error_at_once(tmp_path: Path) -> None:
    """The broker stops in the middle of a patrol: each frame the grabber cannot queue is one error of its preset,
    within about a second, and the patrol goes on. With a result backend, every frame sent also subscribed to its
    result (which the grabber never reads), and while Redis was down that subscription retried for ~20 s per
    frame ("Retry limit exceeded ... The Celery application must be restarted"), holding up the preset."""
    import redis

    from video.sources import SourceStats
    from video.tasks import grabber_celery, run_grabber

    server, port = _start_redis(tmp_path, password="grab-secret")
    try:
        probe = redis.Redis(port=port, password="grab-secret")
        queue = f"strawfire-test-{uuid.uuid4().hex[:8]}"
        t0 = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
        rng = np.random.default_rng(5)
        handled: list[float] = []

        class Source:
            camera_id, preset_id, stats = "figlib-mobo-c", "p1", SourceStats()

            def __iter__(self) -> Iterator[Frame]:
                for i in range(3):
                    if i == 1:  # the first frame is queued; then the broker goes away
                        assert probe.llen(queue) == 1
                        probe.close()
                        server.terminate()
                        server.wait(10)
                    handled.append(time.monotonic())
                    image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)  # the lens's 3:2
                    yield Frame(image, t0 + timedelta(minutes=i), self.camera_id, self.preset_id, i)
                handled.append(time.monotonic())

            def close(self) -> None:
                pass

        celery = grabber_celery(f"redis://:grab-secret@127.0.0.1:{port}/0", queue=queue)
        try:
            report = run_grabber(figlib_registry(), celery, frame_ttl_s=60, sources=lambda c, p: Source())
        finally:
            celery.close()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)
    stats = report.presets["figlib-mobo-c/p1"]
    assert (stats.frames, stats.errors) == (3, 2)
    assert stats.last_error is not None
    assert stats.last_error.startswith("OperationalError")
    assert "grab-secret" not in stats.last_error
    waits = [b - a for a, b in itertools.pairwise(handled[1:])]  # the two frames sent to a broker that is gone
    assert max(waits) < 5.0, waits
