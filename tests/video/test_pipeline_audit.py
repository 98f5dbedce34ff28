"""Audit of the frame sources and the patrol/Celery pipeline, against real servers on 127.0.0.1 and a real Redis.

* A slow detector must not make a live source hand over frames that sat in the socket (or FFmpeg's) buffer while
  it ran, stamped with the time they were finally read: the frame handed over is the camera's newest, and its
  ``captured_at`` is when it arrived.
* A connection that delivered good frames resets the reconnect backoff even when the cadence let none of them
  through (a camera that drops its link now and then, between two due frames, is healthy).
* A frame whose task dies after its preset's verifier state was saved but before its sighting was handed over is
  given back by Celery (``acks_late``); processing it again must deliver that sighting, not call it ``late``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from tests.video.figlib import (
    CLIP_START,
    CONFIRM_FRAME,
    VIDEO,
    FiglibLabelledDetector,
    clip_frames,
    figlib_registry,
    require,
)
from tests.video.rtspserver import rtsp_server
from tests.video.streamserver import Feed, camera_server, read_mark
from tests.video.test_sources import collect
from tests.video.test_tasks import redis_url  # noqa: F401  (the module's real redis-server fixture)
from video.patrol import FramePipeline, PostOutcome
from video.sighting import CameraSighting, SightingUpload
from video.sources import Backoff, Frame, MjpegSource, RtspSource, SourceError
from video.tasks import RedisVerifierStore

FAST = Backoff(initial_s=0.02, max_s=0.1, jitter=0.0)


class TimedFeed(Feed):
    """A feed that remembers when (wall clock, UTC) it made each frame number."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made_at: dict[int, datetime] = {}

    def next_jpeg(self) -> bytes:
        with self.lock:
            number = self.served
        self.made_at[number % 256] = datetime.now(UTC)
        return super().next_jpeg()


def noise_frames(count: int, width: int = 640, height: int = 432) -> list[np.ndarray]:
    """Incompressible frames (a few hundred kB as JPEG): the socket buffers fill within a second."""
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def assert_newest(frames: list[Frame], handed_at: list[datetime], feed: TimedFeed) -> None:
    """Each frame is stamped between the moment it was made and the moment it was handed over, and each frame after
    the first was made after the previous one was handed over: while the detector worked, not a backlog that was
    already waiting. Orderings of events, not wall-clock durations, so a loaded machine cannot fail them."""
    made = [feed.made_at[read_mark(frame.image)[1]] for frame in frames]
    for frame, made_at, handed in zip(frames, made, handed_at, strict=True):
        assert made_at <= frame.captured_at <= handed, (
            f"frame {frame.seq} made at {made_at.time()}, stamped {frame.captured_at.time()}, handed over at "
            f"{handed.time()}: not stamped when it arrived"
        )
    for i in range(1, len(frames)):
        assert made[i] > handed_at[i - 1], (
            f"frame {frames[i].seq} was made at {made[i].time()}, before the previous frame was handed over at "
            f"{handed_at[i - 1].time()}: a backlog was processed late"
        )


def test_a_slow_detector_gets_the_newest_mjpeg_frame_stamped_when_it_arrived() -> None:
    feed = TimedFeed(0, noise_frames(4), fps=30.0)
    handed_at: list[datetime] = []
    with camera_server([feed]) as server:
        source = MjpegSource(server.mjpeg_url(0), "tower-a", "p1", min_interval_s=0.2, backoff=FAST)
        frames = collect(source, 4, timeout_s=30.0, work_s=1.5, handed_at=handed_at)
    assert_newest(frames, handed_at, feed)
    assert all(b.seq - a.seq >= 20 for a, b in itertools.pairwise(frames))  # the backlog was dropped


def test_a_slow_detector_gets_the_newest_rtsp_frame_stamped_when_it_arrived() -> None:
    feed = TimedFeed(0, noise_frames(4), fps=25.0)
    handed_at: list[datetime] = []
    with rtsp_server([feed]) as server:
        source = RtspSource(
            server.stream_url(0), "tower-r", "p1", min_interval_s=0.2, stall_timeout_s=2.0, backoff=FAST
        )
        frames = collect(source, 4, timeout_s=40.0, work_s=1.5, handed_at=handed_at)
    # The first frame of a connection is one FFmpeg read while probing the stream at open: a one-off per
    # connection, not a backlog. Every later one was made while the detector worked on the one before.
    assert_newest(frames, handed_at, feed)
    assert all(b.seq - a.seq >= 20 for a, b in itertools.pairwise(frames))


def test_reconnects_of_a_delivering_camera_do_not_accumulate_as_failures() -> None:
    """A camera that drops its link every few frames but delivers good frames in between is not failing, even
    when the cadence lets none of those frames through: ``max_failures`` must not give up on it, and the backoff
    must start over after each good connection."""
    script = deque((["ok"] * 3 + ["drop"]) * 40)
    feed = Feed(0, noise_frames(2, 64, 48), fps=60.0, script=script)
    with camera_server([feed]) as server:
        source = MjpegSource(server.mjpeg_url(0), "tower-a", "p1", min_interval_s=60.0, backoff=FAST, max_failures=2)
        errors: list[BaseException] = []
        frames: list[Frame] = []

        def run() -> None:
            try:
                frames.extend(source)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60.0  # only bounds a hang: the loop ends at the sixth reconnect
        while source.stats.reconnects < 6 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        source.close()
        thread.join(10)
    assert not [e for e in errors if isinstance(e, SourceError)], errors
    assert source.stats.reconnects >= 6
    assert len(frames) == 1  # the first frame; the cadence (60 s) let no other through


class WorkerLost(BaseException):
    """What the pipeline sees of a worker killed mid-task: nothing after this point runs."""


class CrashOnceSink:
    def __init__(self) -> None:
        self.crash = True
        self.uploads: list[SightingUpload] = []

    def send(self, upload: SightingUpload) -> PostOutcome:
        if self.crash:
            self.crash = False
            raise WorkerLost
        self.uploads.append(upload)
        return PostOutcome(upload.key, True, 201)


def test_a_frame_given_back_after_its_worker_died_still_posts_its_sighting(redis_url: str) -> None:  # noqa: F811
    """acks_late + reject_on_worker_lost: the frame whose worker died between saving the verifier state and
    handing over the sighting is delivered again; it is then older-or-equal to the preset's last frame, but its
    confirmed event was never posted, so it must be posted now (the service's natural key makes a repeat a no-op),
    once, and the frame must not count twice."""
    import redis

    require(VIDEO)
    client = redis.Redis.from_url(redis_url)
    for stale in client.scan_iter("strawfire:video:*figlib-mobo-c*"):
        client.delete(stale)
    sink = CrashOnceSink()
    pipeline = FramePipeline(figlib_registry(), FiglibLabelledDetector(), sink, store=RedisVerifierStore(client))
    frames = clip_frames()
    results = []
    for i in range(CONFIRM_FRAME + 1):
        frame = Frame(frames[i], CLIP_START + timedelta(minutes=i), "figlib-mobo-c", "p1", i)
        try:
            results.append(pipeline.process(frame))
        except WorkerLost:
            assert i == CONFIRM_FRAME
            # Celery gives the frame back; another worker (here: the same pipeline object, fresh state from Redis)
            again = pipeline.process(frame)
            assert again.status == "ok"
            assert [(e.state, e.posted) for e in again.events] == [("confirmed", True)]
            results.append(again)
            # A third delivery (a duplicate from the broker) posts nothing new.
            third = pipeline.process(frame)
            assert third.status == "late"
            assert third.events == ()
    sightings = [u.sighting for u in sink.uploads]
    assert [s.event.state for s in sightings if isinstance(s, CameraSighting)] == ["confirmed"]
    assert sightings[0].frame_seq == CONFIRM_FRAME
    # The frame did not count twice: the next frame continues the sequence one index later.
    nxt = Frame(frames[CONFIRM_FRAME + 1], CLIP_START + timedelta(minutes=CONFIRM_FRAME + 1), "figlib-mobo-c", "p1", 99)
    assert pipeline.process(nxt).frame_index == results[-1].frame_index + 1  # type: ignore[operator]


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    # A reader blocked in a read when its source is closed ends at the read's timeout (the stall timeout).
    deadline = time.monotonic() + 60.0  # only bounds a hang: a loaded machine's reader may end late
    while time.monotonic() < deadline:
        extra = [
            t for t in threading.enumerate() if t.ident not in before and t.name.startswith("source-") and t.is_alive()
        ]
        if not extra:
            return
        time.sleep(0.05)
    raise AssertionError(f"source threads left running: {extra}")
