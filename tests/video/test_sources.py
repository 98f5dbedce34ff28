"""Frame sources against real servers on 127.0.0.1 serving the real tower video's frames, misbehaving on cue.

What must hold: a source reconnects after drops and stalls, skips corrupt frames, keeps its frame numbers
increasing, and never yields a frame from another camera — checked from the pixels (each served frame carries its
camera index and number) while two cameras are served at once.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from tests.video.figlib import CLIP_START, FRAMES, SEQUENCE, VIDEO, clip_frames, figlib_camera, require
from tests.video.rtspserver import rtsp_frames, rtsp_server
from tests.video.streamserver import Feed, camera_server, garbage_jpeg, read_mark
from video.registry import CameraRecord, PresetRecord
from video.sources import (
    Backoff,
    Frame,
    ImageFolderSource,
    MjpegSource,
    MultipartJpegParser,
    RtspSource,
    SnapshotSource,
    SourceError,
    VideoFileSource,
    decode_jpeg,
    epoch_from_name,
    open_source,
    redact_url,
)

FAST = Backoff(initial_s=0.02, max_s=0.1, jitter=0.0)


def small_frames(count: int = 12) -> list[np.ndarray]:
    return [cv2.resize(f, (640, 427), interpolation=cv2.INTER_AREA) for f in clip_frames()[:count]]


def collect(
    source: MjpegSource | SnapshotSource | RtspSource,
    count: int,
    timeout_s: float = 20.0,
    work_s: float = 0.0,
    handed_at: list[datetime] | None = None,
) -> list[Frame]:
    """``count`` frames from ``source`` in a thread (the source is closed from outside when time runs out), each
    followed by ``work_s`` of "detection" during which the thread does nothing else. ``handed_at``, when given,
    receives the wall-clock time (UTC) at which each frame reached the consumer."""
    frames: list[Frame] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for frame in source:
                if handed_at is not None:
                    handed_at.append(datetime.now(UTC))
                frames.append(frame)
                if len(frames) >= count:
                    break
                time.sleep(work_s)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    source.close()
    thread.join(10)
    assert not errors, errors
    assert len(frames) == count, f"{len(frames)} frames in {timeout_s} s; stats {source.stats}"
    return frames


def assert_own_frames(frames: list[Frame], camera_index: int, camera_id: str) -> list[int]:
    """Every frame is from ``camera_index`` (by its pixels) and ``camera_id`` (by its record); numbers increase."""
    numbers = []
    for frame in frames:
        assert frame.camera_id == camera_id
        served_by, number = read_mark(frame.image)
        assert served_by == camera_index, f"frame from camera {served_by} yielded by {camera_id}"
        numbers.append(number)
        assert frame.captured_at.tzinfo is UTC
        assert frame.encoded is None or decode_jpeg(frame.encoded) is not None
    assert numbers == sorted(set(numbers)), numbers
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    times = [f.captured_at for f in frames]
    assert times == sorted(times)
    return numbers


def test_two_mjpeg_cameras_reconnect_skip_corrupt_parts_and_never_cross() -> None:
    frames = small_frames()
    camera_a = Feed(0, frames, content_length=True, script=deque(["ok"] * 3 + ["corrupt"] + ["ok"] * 2 + ["drop"]))
    # The stall timeout is 40 frame gaps long and the scripted stalls well beyond it: on a loaded machine a 0.4 s
    # timeout fired between two good parts, and the parts the server then wrote into the abandoned connection
    # were gone (a frame and the truncated part missing, neither counted: the client never received them).
    camera_a.script.extend(["ok"] * 2 + ["stall:1.6"] + ["ok"] * 3)
    camera_b = Feed(1, frames[::-1], content_length=False, script=deque(["ok"] * 2 + ["truncated"] + ["ok"] * 2))
    camera_b.script.extend(["trickle:1.6"] + ["ok"] * 2 + ["drop"] + ["ok"] * 3)
    with camera_server([camera_a, camera_b]) as server:
        sources = [
            MjpegSource(server.mjpeg_url(0), "tower-a", "p1", stall_timeout_s=1.0, backoff=FAST),
            MjpegSource(server.mjpeg_url(1), "tower-b", "p1", stall_timeout_s=1.0, backoff=FAST),
        ]
        results: dict[str, list[Frame]] = {}
        threads = [
            threading.Thread(target=lambda s=s: results.__setitem__(s.camera_id, collect(s, 10))) for s in sources
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    a_numbers = assert_own_frames(results["tower-a"], 0, "tower-a")
    b_numbers = assert_own_frames(results["tower-b"], 1, "tower-b")
    a, b = sources[0].stats, sources[1].stats
    # Frames served after a corrupt or truncated part continue the sequence (numbers rise, none repeated: checked
    # above). A live source hands over the newest whole frame, so one the consumer was too slow for may be skipped
    # on a loaded machine, but then it is counted as throttled: nothing served whole is lost unseen.
    assert a_numbers[0] == 0
    assert len(set(range(a_numbers[4] + 1)) - set(a_numbers)) <= a.throttled
    assert b_numbers[0] == 0
    assert 2 not in b_numbers  # frame 2 was the truncated one
    assert len(set(range(b_numbers[3] + 1)) - set(b_numbers) - {2}) <= b.throttled
    assert (a.corrupt, b.corrupt) == (1, 1)
    assert a.reconnects >= 2
    assert a.stalls >= 1
    assert b.reconnects >= 2
    assert b.stalls >= 1
    assert camera_a.connections >= 3
    assert camera_b.connections >= 3


def test_mjpeg_cadence_throttles_without_decoding() -> None:
    feed = Feed(0, small_frames(4), fps=60.0)
    with camera_server([feed]) as server:
        source = MjpegSource(server.mjpeg_url(0), "tower-a", "p1", min_interval_s=0.15, backoff=FAST)
        frames = collect(source, 4)
    gaps = [(b.captured_at - a.captured_at).total_seconds() for a, b in itertools.pairwise(frames)]
    assert min(gaps) >= 0.14
    assert source.stats.throttled >= 6
    assert all(b.seq - a.seq > 1 for a, b in itertools.pairwise(frames))  # the skipped parts show as gaps


def test_snapshot_source_survives_errors_garbage_stalls_and_drops() -> None:
    script = deque(["ok", "error", "corrupt", "ok", "stall:0.8", "drop", "ok", "ok"])
    feed = Feed(0, small_frames(6), script=script)
    with camera_server([feed]) as server:
        source = SnapshotSource(
            server.snapshot_url(0), "tower-a", "p3", interval_s=0.01, stall_timeout_s=0.4, backoff=FAST
        )
        frames = collect(source, 4)
    assert_own_frames(frames, 0, "tower-a")
    assert all(f.preset_id == "p3" for f in frames)
    assert source.stats.corrupt == 1
    assert source.stats.stalls >= 1
    assert source.stats.reconnects >= 3  # 503, stall, drop
    assert frames[0].encoded is not None
    assert frames[0].encoded.startswith(b"\xff\xd8")


def test_snapshot_credentials_travel_as_auth_not_in_logs() -> None:
    assert (
        redact_url("http://admin:s3cret@10.0.0.7:8080/ISAPI/picture?ch=1")
        == "http://admin:***@10.0.0.7:8080/ISAPI/picture?ch=1"
    )
    assert redact_url("rtsp://cam/1") == "rtsp://cam/1"


@pytest.mark.parametrize(
    ("url", "shown", "to_others"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/ch1", "rtsp://admin:***@10.0.0.5:554/ch1", "rtsp://***@10.0.0.5:554/ch1"),
        # XMEye DVRs put the password in the path, Foscam-style cameras in the query
        (
            "rtsp://10.0.0.5:554/user=admin&password=s3cret&channel=1&stream=0.sdp",
            "rtsp://10.0.0.5:554/user=admin&password=***&channel=1&stream=0.sdp",
            "rtsp://10.0.0.5:554/user=admin&password=***&channel=1&stream=0.sdp",
        ),
        (
            "http://cam/snapshot.cgi?loginuse=admin&loginpas=s3cret",
            "http://cam/snapshot.cgi?loginuse=admin&loginpas=***",
            "http://cam/snapshot.cgi?loginuse=admin&loginpas=***",
        ),
        # an unencoded # in the password: URL parsers take "cd@host/ch1" for a fragment
        ("rtsp://admin:ab#cd@host/ch1", "rtsp://admin:***@host/ch1", "rtsp://***@host/ch1"),
        ("rtsp://admin@host/ch1", "rtsp://admin@host/ch1", "rtsp://***@host/ch1"),
        # an RTMP-style stream key is a secret too
        ("http://h/x?stream_key=abc&key=zz", "http://h/x?stream_key=***&key=***", "http://h/x?stream_key=***&key=***"),
        # XMEye's underscore-separated form, and other names cameras use
        (
            "rtsp://10.0.0.7:554/user=admin_password=s3cret_channel=1_stream=0.sdp",
            "rtsp://10.0.0.7:554/user=admin_password=***_channel=1_stream=0.sdp",
            "rtsp://10.0.0.7:554/user=admin_password=***_channel=1_stream=0.sdp",
        ),
        (
            "http://cam/x?loginPassword=s3cret&psw=s3cret&Authorization=Basic_s3cret",
            "http://cam/x?loginPassword=***&psw=***&Authorization=***",
            "http://cam/x?loginPassword=***&psw=***&Authorization=***",
        ),
        ("/srv/frames/tower-a", "/srv/frames/tower-a", "/srv/frames/tower-a"),
        # names nobody listed: Vivotek's userpass, and the like
        (
            "http://cam/cgi?user=root&userpass=s3cret&channel=1&adminpass=s3cret&userpwd=s3cret&subtype=0",
            "http://cam/cgi?user=root&userpass=***&channel=1&adminpass=***&userpwd=***&subtype=0",
            "http://cam/cgi?user=root&userpass=***&channel=1&adminpass=***&userpwd=***&subtype=0",
        ),
        (
            "http://cam/x?authbasic=s3cret&passwort=s3cret&psd=s3cret&user_pass=s3cret&resolution=1080",
            "http://cam/x?authbasic=***&passwort=***&psd=***&user_pass=***&resolution=1080",
            "http://cam/x?authbasic=***&passwort=***&psd=***&user_pass=***&resolution=1080",
        ),
        # an @ in the path or query after a port is no user part (it was read as one, and the URL refused)
        (
            "rtsp://10.0.0.1:554/user=admin&password=p@ss&channel=1",
            "rtsp://10.0.0.1:554/user=admin&password=***&channel=1",
            "rtsp://10.0.0.1:554/user=admin&password=***&channel=1",
        ),
    ],
)
def test_every_kind_of_stream_secret_is_redacted(url: str, shown: str, to_others: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(url, keep_user=False) == to_others
    assert "s3cret" not in redact_url(f"InvalidURL: cannot open {url}")


def test_mjpeg_source_refuses_a_snapshot_url() -> None:
    with camera_server([Feed(0, small_frames(2))]) as server:
        source = MjpegSource(server.snapshot_url(0), "tower-a", "p1", backoff=FAST)
        with pytest.raises(SourceError, match="is not an MJPEG stream"):
            next(iter(source))


def test_live_source_gives_up_only_when_asked() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    source = MjpegSource(f"http://127.0.0.1:{port}/mjpeg", "tower-a", "p1", backoff=FAST, max_failures=2)
    with pytest.raises(SourceError, match="giving up after 3 failures"):
        next(iter(source))
    assert source.stats.reconnects == 2


def test_rtsp_source_reconnects_after_drop_and_stall() -> None:
    """A real RTSP session (RTP/JPEG over TCP) read by OpenCV's FFmpeg backend, dropped and stalled by the server."""
    feed = Feed(0, rtsp_frames(clip_frames()[:8]), fps=50.0, script=deque(["ok"] * 8 + ["drop"]))
    feed.script.extend(["ok"] * 60 + ["stall:1.5"] + ["ok"] * 5)
    with rtsp_server([feed]) as server:
        source = RtspSource(
            server.stream_url(0), "tower-r", "p1", stall_timeout_s=0.6, open_timeout_s=3.0, backoff=FAST
        )
        frames = collect(source, 72, timeout_s=30.0)
    numbers = assert_own_frames(frames, 0, "tower-r")
    # A live source hands over the newest frame when asked: the burst FFmpeg buffered while opening is not
    # queued for a consumer busy with the previous frame, so only the first frame and the order are fixed.
    assert numbers[0] == 0
    assert frames[0].size == (640, 432)
    assert source.stats.reconnects >= 2
    assert source.stats.stalls >= 1


def test_parser_handles_boundary_quirks_and_byte_by_byte_input() -> None:
    jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes()
    body = (
        b"preamble\r\n--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
        + jpeg
        + b"\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n"
        + jpeg
        + b"\r\n--frame--\r\n"
    )
    parser = MultipartJpegParser("frame")
    parts = [p for i in range(len(body)) for p in parser.feed(body[i : i + 1])]
    assert parts == [jpeg, jpeg]
    assert parser.finished
    # Declared "boundary=--frame" but delimited by "--frame" (seen on cheap cameras).
    quirky = MultipartJpegParser("--frame")
    assert quirky.feed(b"--frame\r\n\r\n" + jpeg + b"\r\n--frame\r\n\r\n" + jpeg + b"\r\n--frame\r\n") == [jpeg, jpeg]


def test_decode_jpeg_refuses_truncated_and_garbage() -> None:
    jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 200, np.uint8))[1].tobytes()
    assert decode_jpeg(jpeg) is not None
    assert decode_jpeg(jpeg + b"\r\n") is not None
    assert decode_jpeg(jpeg[: len(jpeg) // 2]) is None
    assert decode_jpeg(garbage_jpeg(300)) is None
    assert decode_jpeg(b"") is None


def test_video_file_frames_are_stamped_from_the_start_time_and_interval() -> None:
    require(VIDEO)
    source = VideoFileSource(VIDEO, "figlib-mobo-c", "p1", start_time=CLIP_START, frame_interval_s=60.0)
    frames = list(source)
    assert len(frames) == FRAMES
    assert [f.seq for f in frames] == list(range(FRAMES))
    assert frames[20].captured_at == datetime.fromtimestamp(1569442402, UTC)  # ignition, as FIgLib names it
    assert frames[-1].captured_at - frames[0].captured_at == timedelta(minutes=40)
    assert {(f.camera_id, f.preset_id) for f in frames} == {("figlib-mobo-c", "p1")}
    # Without an interval the container's fps applies (4 fps: 0.25 s apart).
    fps_frames = [f for f, _ in zip(VideoFileSource(VIDEO, "c", "p", start_time=CLIP_START), range(5), strict=False)]
    assert fps_frames[4].captured_at - fps_frames[0].captured_at == timedelta(seconds=1)
    # Replayed at a cadence: one frame per 2.5 s of video time, the rest grabbed but not converted.
    paced = VideoFileSource(VIDEO, "c", "p", start_time=CLIP_START, min_interval_s=2.5)
    assert [f.seq for f in paced] == list(range(0, FRAMES, 10))
    assert paced.stats.throttled == FRAMES - 5


def test_missing_or_broken_video_files_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such video file"):
        list(VideoFileSource(tmp_path / "none.mp4", "c", "p"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        list(VideoFileSource(broken, "c", "p"))


def test_image_folder_uses_figlib_names_and_skips_corrupt_files(tmp_path: Path) -> None:
    images = require(SEQUENCE / "images")
    names = sorted(p.name for p in images.iterdir())[38:44]
    for name in names:
        shutil.copy(images / name, tmp_path / name)
    (tmp_path / f"{names[2][:-4]}x.jpg").write_bytes(b"\xff\xd8 not really a jpeg \xff\xd9")
    (tmp_path / "notes.txt").write_text("not an image")
    source = ImageFolderSource(tmp_path, "figlib-mobo-c", "p1")
    frames = list(source)
    assert [f.captured_at for f in frames] == [epoch_from_name(n) for n in names]
    assert source.stats.corrupt == 1
    assert frames[0].encoded == (tmp_path / names[0]).read_bytes()  # evidence keeps the camera's own bytes
    assert epoch_from_name("1569442402_+00000.jpg") == datetime(2019, 9, 25, 20, 13, 22, tzinfo=UTC)
    assert epoch_from_name("DJI_0001.JPG") is None


def test_image_folder_without_epoch_names_uses_start_and_interval(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"frame{i:03d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    start = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    frames = list(ImageFolderSource(tmp_path, "c", "p", start_time=start, frame_interval_s=30.0))
    assert [f.captured_at for f in frames] == [start + timedelta(seconds=30 * i) for i in range(3)]
    assert frames[0].encoded is None  # PNG: evidence is encoded by the pipeline
    paced = ImageFolderSource(tmp_path, "c", "p", start_time=start, frame_interval_s=30.0, min_interval_s=60.0)
    assert [f.seq for f in paced] == [0, 2]


def test_open_source_binds_each_preset_to_its_own_camera_and_kind(tmp_path: Path) -> None:
    camera = figlib_camera(presets=("p1",))
    presets = {
        "rtsp": PresetRecord("a", 0.0, 0.0, source="rtsp://u:p@cam/1", cadence_s=30.0),
        "mjpeg": PresetRecord("b", 0.0, 0.0, source="http://cam/mjpg", source_kind="mjpeg"),
        "snapshot": PresetRecord("c", 0.0, 0.0, source="http://cam/snap.jpg", cadence_s=45.0),
        "file": PresetRecord("d", 0.0, 0.0, source=str(tmp_path / "clip.mp4")),
        "folder": PresetRecord("e", 0.0, 0.0, source=str(tmp_path)),
    }
    record = CameraRecord(camera.id, camera.site, camera.lens, tuple(presets.values()))
    kinds = {
        "rtsp": RtspSource,
        "mjpeg": MjpegSource,
        "snapshot": SnapshotSource,
        "file": VideoFileSource,
        "folder": ImageFolderSource,
    }
    for kind, preset in presets.items():
        source = open_source(record, preset)
        assert isinstance(source, kinds[kind])
        assert (source.camera_id, source.preset_id) == (record.id, preset.id)
    rtsp = open_source(record, presets["rtsp"])
    assert isinstance(rtsp, RtspSource)
    assert rtsp.min_interval_s == 30.0
    snapshot = open_source(record, presets["snapshot"])
    assert isinstance(snapshot, SnapshotSource)
    assert snapshot.interval_s == 45.0
    with pytest.raises(SourceError, match="has no frame source"):
        open_source(record, PresetRecord("z", 0.0, 0.0))


def test_frames_must_be_bgr_and_timezone_aware() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="timezone-aware"):
        Frame(image, datetime(2026, 1, 1), "c", "p", 0)
    with pytest.raises(ValueError, match="BGR uint8"):
        Frame(np.zeros((4, 4), np.uint8), datetime.now(UTC), "c", "p", 0)
    local = datetime(2026, 1, 1, 8, tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert Frame(image, local, "c", "p", 0).captured_at == datetime(2026, 1, 1, 8, tzinfo=UTC)
