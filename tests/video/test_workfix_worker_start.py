"""A camera worker that cannot build its runtime refuses to start (a real Redis broker, real Celery workers).

The audit: ``celery -A video.tasks worker`` without ``STRAWFIRE_VIDEO__REGISTRY`` logged "ready", then every frame's
task failed with VideoError and the frame was lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.video.figlib import figlib_registry
from tests.video.test_tasks import REPO, _start_worker, redis_url  # noqa: F401  (redis_url: the fixture)
from video.errors import VideoError
from video.registry import save_registry
from video.tasks import check_worker_env, make_celery


def worker_env(redis_url: str, **video: str) -> dict[str, str]:  # noqa: F811
    """The environment of a worker on this Redis and a queue of its own, with these ``STRAWFIRE_VIDEO__*`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_VIDEO__")}
    queue = f"strawfire-test-{uuid.uuid4().hex[:8]}"
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "STRAWFIRE_VIDEO__BROKER_URL": redis_url,
        "STRAWFIRE_VIDEO__QUEUE": queue,
        **{f"STRAWFIRE_VIDEO__{name}": value for name, value in video.items()},
    }


def refused(worker: subprocess.Popen[bytes], log: Path) -> list[str]:
    """The worker's output once it has exited (failing the test if it is still running after 60 s)."""
    try:
        worker.wait(60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)
        pytest.fail(f"the worker started:\n{log.read_text()}")
    return log.read_text().strip().splitlines()


def test_a_worker_without_its_camera_registry_refuses_to_start(redis_url: str, tmp_path: Path) -> None:  # noqa: F811
    env = worker_env(redis_url)
    name = f"w-{env['STRAWFIRE_VIDEO__QUEUE']}@test"
    worker = _start_worker(name, env, tmp_path / "worker.log")
    lines = refused(worker, tmp_path / "worker.log")
    assert worker.returncode == 1
    assert lines[-1] == (
        "strawfire video worker: STRAWFIRE_VIDEO__REGISTRY is not set: workers need the camera registry file"
    )
    assert not any("Traceback" in line for line in lines)
    client = make_celery(redis_url, queue=env["STRAWFIRE_VIDEO__QUEUE"])
    try:
        assert client.control.ping(destination=[name], timeout=0.5) == []  # it never took frames
    finally:
        client.close()


def test_a_prefork_worker_with_a_missing_registry_file_refuses_to_start(
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The default pool too: the check runs in the main process, before any child is forked."""
    missing = tmp_path / "cameras.json"
    env = worker_env(redis_url, REGISTRY=str(missing))
    command = [
        sys.executable, "-m", "celery", "-A", "video.tasks", "worker", "--pool=prefork", "--concurrency=1",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=warning",
    ]  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    lines = refused(worker, log)
    assert worker.returncode == 1
    assert lines[-1] == f"strawfire video worker: {missing}: no such registry file"



@pytest.mark.parametrize(
    ("name", "value"), [("DETECTOR_THREADS", "two"), ("DETECTOR_THREADS", "1.5"), ("POST_RETRY_S", "30s")]
)
def test_a_worker_setting_that_is_not_a_number_is_named(tmp_path: Path, name: str, value: str) -> None:
    registry = save_registry(figlib_registry(), tmp_path / "cameras.json")
    env = {"STRAWFIRE_VIDEO__REGISTRY": str(registry), f"STRAWFIRE_VIDEO__{name}": value}
    with pytest.raises(VideoError, match=f"^STRAWFIRE_VIDEO__{name} is not a number: '{value}'$"):
        check_worker_env(env)
