"""Audit fixes, image folders: a copied folder (names without times, modification times tied or milliseconds
apart) is analysed image by image in name order, not cut to its first image by the cadence; empty, truncated and
undecodable files are the preset's errors, and the folder's end says what was skipped and why."""

from __future__ import annotations

import itertools
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.video.figlib import figlib_camera, figlib_registry
from video.patrol import Patrol
from video.registry import CameraRecord, PresetRecord
from video.sources import Frame, FrameSource, ImageFolderSource, open_source

#: When a copy wrote the files (cp without -p): every one gets (about) the same modification time.
COPIED_AT_NS = 1_777_000_000 * 10**9


def write_jpegs(folder: Path, names: list[str]) -> list[bytes]:
    written = []
    for i, name in enumerate(names):
        ok, buffer = cv2.imencode(".jpg", np.full((64, 96, 3), 20 * i, np.uint8))
        assert ok
        (folder / name).write_bytes(buffer.tobytes())
        written.append(buffer.tobytes())
    return written


def set_mtimes(folder: Path, step_ns: int) -> None:
    for i, path in enumerate(sorted(folder.iterdir())):
        when = COPIED_AT_NS + i * step_ns
        os.utime(path, ns=(when, when))


def folder_source(folder: Path, cadence_s: float = 60.0) -> ImageFolderSource:
    """The folder as the patrol opens it: ``open_source`` with the preset's cadence as the throttle."""
    camera = figlib_camera(source=str(folder), kind="folder")
    preset = PresetRecord("p1", 250.0, -1.0, source=str(folder), source_kind="folder", cadence_s=cadence_s)
    source = open_source(CameraRecord(camera.id, camera.site, camera.lens, (preset,)), preset)
    assert isinstance(source, ImageFolderSource)
    return source


@pytest.mark.parametrize("step_ns", [0, 2_000_000], ids=["tied", "milliseconds-apart"])
def test_a_copied_folder_is_analysed_image_by_image_in_name_order(tmp_path: Path, step_ns: int) -> None:
    names = [f"IMG_{i:04d}.jpg" for i in range(1, 11)]
    jpegs = write_jpegs(tmp_path, names)
    set_mtimes(tmp_path, step_ns)
    source = folder_source(tmp_path)
    frames = list(source)
    assert [f.encoded for f in frames] == jpegs  # every image, in name order
    assert [f.seq for f in frames] == list(range(10))
    times = [f.captured_at for f in frames]
    assert all(later > earlier for earlier, later in itertools.pairwise(times))  # the order the verifier needs
    assert source.stats.throttled == 0
    if step_ns:  # increasing modification times are kept as the frames' times
        assert times[0] == datetime.fromtimestamp(COPIED_AT_NS / 1e9, UTC)
        assert times[1] - times[0] == timedelta(milliseconds=2)
    else:  # tied: one interval (the cadence) apart
        assert times[1] - times[0] == timedelta(seconds=60)


def test_capture_times_from_names_are_still_throttled_and_the_summary_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # FIgLib-style names: one a minute; at a 2-minute cadence every other image is skipped, and the log says why.
    names = [f"{1569442402 + 60 * i}_+{60 * i:05d}.jpg" for i in range(5)]
    write_jpegs(tmp_path, names)
    set_mtimes(tmp_path, 0)
    source = folder_source(tmp_path, cadence_s=120.0)
    with caplog.at_level(logging.INFO, logger="video.sources"):
        frames = list(source)
    assert [f.seq for f in frames] == [0, 2, 4]
    assert source.stats.throttled == 2
    [summary] = [r.getMessage() for r in caplog.records if "analysed" in r.getMessage()]
    assert "5 image(s), 3 analysed, 2 skipped (less than the cadence of 120 s" in summary
    assert "0 unreadable" in summary


def test_empty_truncated_and_undecodable_files_are_errors_not_silence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit's folder (a JPEG, a 0-byte JPEG, a PNG, a truncated JPEG, copied) reported "1 frames, 0 errors":
    the other files were never read."""
    [good] = write_jpegs(tmp_path, ["a.jpg"])
    (tmp_path / "b.jpg").write_bytes(b"")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((64, 96, 3), 99, np.uint8))
    (tmp_path / "d.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "e.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("not an image")
    set_mtimes(tmp_path, 0)
    seen: list[Frame] = []

    def sources(camera: CameraRecord, preset: PresetRecord) -> FrameSource:
        return folder_source(tmp_path, cadence_s=preset.cadence_s)

    with caplog.at_level(logging.INFO, logger="video.sources"):
        report = Patrol(figlib_registry(source=str(tmp_path), kind="folder"), seen.append, sources=sources).run()
    stats = report.presets["figlib-mobo-c/p1"]
    assert (stats.frames, stats.errors, stats.throttled) == (2, 3, 0)
    assert [f.seq for f in seen] == [0, 2]  # a.jpg and c.png
    assert stats.last_error == "e.png: not a decodable image"
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage() and r.levelno == logging.WARNING]
    assert [m.split("(")[-1] for m in skipped] == ["an empty file)", "not a decodable image)", "not a decodable image)"]
    [summary] = [r.getMessage() for r in caplog.records if "analysed" in r.getMessage()]
    assert "5 image(s), 2 analysed, 0 skipped" in summary
    assert "3 unreadable (last: e.png: not a decodable image)" in summary
