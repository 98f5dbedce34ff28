"""Benchmark: patrol frames per second end to end — decode → detect → verify → geolocate → post — per worker.

* **inline**: the embedded default, the task function called in this process (no broker): the baseline.
* **celery ×1, ×2**: the same task function in 1 and 2 Celery worker processes (``--pool=solo``, one detector thread
  each) over a real Redis broker started here (``redis-server`` on a free port), verifier state in that Redis,
  sightings posted to a local HTTP receiver standing in for the service. Without ``redis-server`` the worker
  processes are a ``multiprocessing`` pool running the same task function, each preset pinned to one process
  (state in memory); the output says which was used.

Frames are the real FIgLib tower clip (41 frames, 1280×854, one per minute), sent as JPEG payloads for ``--presets``
presets of one camera at once; each preset's frames go one after the other (the next when the previous is done, as
at a preset's cadence), so with more presets than workers every worker stays busy and no frame arrives late.
Payloads are encoded before timing (the grabber's work, not the worker's); detector loading is warmed up before
timing. The detectors: the committed model (``auto``: ONNX Runtime, 1 thread) and the weights-free rules (a motion
detector: its previous frame travels through Redis too). Geolocation and posting run only for confirmed or ended
events, so the "posts" column says how much of that work each run did.

    .venv/bin/python bench/bench_patrol.py [--presets 4] [--detectors auto,rules] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import base64
import itertools
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402

from video.camera import CameraSite, ZoomLens  # noqa: E402
from video.registry import CameraRecord, CameraRegistry, PresetRecord, save_registry  # noqa: E402

CLIP = (
    REPO.parent / "shared" / "data" / "videos" / "figlib_20190925_FIRE_wc-s-mobo-c_-20to+20min_1frame-per-min_4fps.mp4"
)
START = datetime.fromtimestamp(1569442402 - 20 * 60, UTC)


class Receiver:
    """A local HTTP server that accepts every sighting (201) and counts them."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.count += 1
                body = b'{"ok": true}'
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def registry(presets: int) -> CameraRegistry:
    camera = CameraRecord(
        id="bench-tower",
        site=CameraSite(latitude=44.3, longitude=125.3, mast_height_m=40.0, ground_elevation_m=190.0),
        lens=ZoomLens(1280, 854, ((1.0, 60.0), (10.0, 6.5))),
        presets=tuple(PresetRecord(f"p{i}", 30.0 * i, -1.0, cadence_s=60.0) for i in range(presets + 1)),
    )
    return CameraRegistry((camera,))


def clip_payloads() -> list[bytes]:
    capture = cv2.VideoCapture(str(CLIP))
    jpegs = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    capture.release()
    return jpegs


_RUNS = itertools.count(1)


def payloads_for(preset: str, jpegs: list[bytes], run: int) -> list[dict[str, Any]]:
    # Each run gets its own camera-time so the verifier state of an earlier run never makes these frames "late".
    offset = timedelta(days=run)
    return [
        {
            "camera_id": "bench-tower",
            "preset_id": preset,
            "captured_at": (START + offset + timedelta(minutes=i)).isoformat(),
            "seq": i,
            "jpeg_b64": base64.b64encode(jpeg).decode("ascii"),
        }
        for i, jpeg in enumerate(jpegs)
    ]


def run_presets(send: Callable[[dict[str, Any]], dict[str, Any]], work: list[list[dict[str, Any]]]) -> float:
    """Every preset's frames in order, presets in parallel; seconds from the first send to the last result."""
    errors: list[BaseException] = []

    def one(frames: list[dict[str, Any]]) -> None:
        try:
            for payload in frames:
                result = send(payload)
                if result["status"] != "ok":
                    raise RuntimeError(f"frame {payload['seq']} of {payload['preset_id']}: {result['status']}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(frames,)) for frames in work]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return process, f"redis://127.0.0.1:{port}/0"


def worker_env(registry_path: Path, detector: str, service_url: str, broker: str | None, queue: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "STRAWFIRE_VIDEO__REGISTRY": str(registry_path),
        "STRAWFIRE_VIDEO__DETECTOR": detector,
        "STRAWFIRE_VIDEO__DETECTOR_THREADS": "1",
        "STRAWFIRE_VIDEO__SERVICE_URL": service_url,
        "STRAWFIRE_VIDEO__DEVICE_TOKEN": "bench",
        "STRAWFIRE_VIDEO__QUEUE": queue,
    }
    env.pop("STRAWFIRE_VIDEO__BROKER_URL", None)
    if broker:
        env["STRAWFIRE_VIDEO__BROKER_URL"] = broker
    return env


def bench_celery(
    workers: int,
    env: dict[str, str],
    broker: str,
    queue: str,
    work: list[list[dict[str, Any]]],
    warm: list[dict[str, Any]],
) -> float:
    from video.tasks import make_celery

    names = [f"bench{i}-{queue}@bench" for i in range(workers)]
    command = [sys.executable, "-m", "celery", "-A", "video.tasks", "worker", "--pool=solo", "--loglevel=warning"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    processes = [
        subprocess.Popen(
            [*command, "-n", name], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for name in names
    ]
    client = make_celery(broker, queue=queue)
    try:
        while len(client.control.ping(destination=names, timeout=0.5)) < workers:
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a Celery worker died at start")

        def send(payload: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = client.send_task("strawfire.video.process_frame", args=[payload]).get(
                timeout=300, interval=0.005
            )
            return result

        # Warm-up: one frame per worker at once (status not checked: they race), so every worker has loaded its
        # detector before the clock starts.
        threads = [threading.Thread(target=send, args=(payload,)) for payload in warm[:workers]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return run_presets(send, work)
    finally:
        for process in processes:
            process.send_signal(signal.SIGQUIT)
        for process in processes:
            process.wait(30)
        client.close()


def _pool_init(env: dict[str, str]) -> None:
    os.environ.update(env)


def _pool_process(payload: dict[str, Any]) -> dict[str, Any]:
    from video.tasks import process_frame

    return process_frame(payload, worker=str(os.getpid()))


def bench_pool(
    workers: int, env: dict[str, str], work: list[list[dict[str, Any]]], warm: list[dict[str, Any]]
) -> float:
    """No Redis: one single-process pool per worker, each preset pinned to one of them (state stays in memory)."""
    context = multiprocessing.get_context("spawn")
    pools = [context.Pool(1, initializer=_pool_init, initargs=(env,)) for _ in range(workers)]
    try:
        for pool, payload in zip(pools, warm, strict=False):
            pool.apply(_pool_process, (payload,))
        pinned = {frames[0]["preset_id"]: pools[i % workers] for i, frames in enumerate(work)}

        def send(payload: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = pinned[payload["preset_id"]].apply(_pool_process, (payload,))
            return result

        return run_presets(send, work)
    finally:
        for pool in pools:
            pool.terminate()


def bench_inline(env: dict[str, str], work: list[list[dict[str, Any]]], warm: list[dict[str, Any]]) -> float:
    """This process, no broker: the task function called directly, one preset after another."""
    from video import tasks

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        tasks.configure_runtime(None)
        tasks.process_frame(warm[0])
        started = time.perf_counter()
        for frames in work:
            for payload in frames:
                tasks.process_frame(payload)
        return time.perf_counter() - started
    finally:
        os.environ.clear()
        os.environ.update(saved)
        tasks.configure_runtime(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", type=int, default=4, help="presets patrolled at once (41 frames each)")
    parser.add_argument("--detectors", default="auto,rules", help="comma-separated detector specs")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts")
    args = parser.parse_args()
    if not CLIP.is_file():
        raise SystemExit(f"{CLIP} is missing (../shared/data)")
    worker_counts = [int(w) for w in args.workers.split(",")]
    jpegs = clip_payloads()
    receiver = Receiver()
    use_redis = shutil.which("redis-server") is not None
    folder = Path(tempfile.mkdtemp(prefix="strawfire-bench-"))
    registry_path = save_registry(registry(args.presets), folder / "cameras.json")
    redis_process, broker = start_redis(folder) if use_redis else (None, None)
    frames_total = args.presets * len(jpegs)
    transport = (
        "Celery workers over a Redis broker (state in Redis)" if use_redis else "multiprocessing (no redis-server)"
    )
    print(f"{frames_total} frames ({args.presets} presets × {len(jpegs)} real 1280×854 tower frames) per run")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; scale-out via {transport}")
    print()
    print(f"{'detector':<22} {'mode':<12} {'frames/s':>9} {'per worker':>11} {'posts':>6} {'vs inline':>10}")
    try:
        for detector in args.detectors.split(","):
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            env = worker_env(registry_path, detector, receiver.url, broker, queue)
            rows: list[tuple[str, int, float]] = []

            def runs() -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
                run = next(_RUNS)
                work = [payloads_for(f"p{i + 1}", jpegs, run) for i in range(args.presets)]
                return work, payloads_for("p0", jpegs, run)

            before = receiver.count
            work, warm = runs()
            seconds = bench_inline(worker_env(registry_path, detector, receiver.url, None, queue), work, warm)
            rows.append(("inline", 1, seconds))
            posts = [receiver.count - before]
            for workers in worker_counts:
                before = receiver.count
                work, warm = runs()
                if use_redis:
                    assert broker is not None
                    seconds = bench_celery(workers, env, broker, queue, work, warm)
                    label = f"celery ×{workers}"
                else:
                    seconds = bench_pool(workers, env, work, warm)
                    label = f"pool ×{workers}"
                rows.append((label, workers, seconds))
                posts.append(receiver.count - before)
            inline_rate = frames_total / rows[0][2]
            for (label, workers, seconds), posted in zip(rows, posts, strict=True):
                rate = frames_total / seconds
                ratio = rate / inline_rate
                print(f"{detector:<22} {label:<12} {rate:>9.1f} {rate / workers:>11.1f} {posted:>6} {ratio:>9.2f}×")
            if len(rows) >= 3:
                print(f"{'':<22} scaling ×{rows[2][1]} / ×{rows[1][1]}: {rows[1][2] / rows[2][2]:.2f}×")
    finally:
        receiver.close()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
