"""Linked folders in a held-out set read by ``eval``: a folder linked from elsewhere (a camera's images kept in an
archive) is read once, with its labels; a link loop or a second link to a folder already read is left out and
named, never walked round and round."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detector.evaluate import LabelledImage, read_yolo_folder
from tests.detector.test_cli_stranger_sets import FIRE_BOX, RULES, labelled


def _places(root: Path, samples: list[LabelledImage]) -> list[tuple[str, list[int] | None]]:
    return [
        (s.path.relative_to(root).as_posix(), s.truth.class_id.tolist() if s.truth is not None else None)
        for s in samples
    ]


def test_a_link_loop_is_read_once_and_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``images/cam1/up -> ..`` made every image count 40 times (each pass round the loop, until the system's
    limit on links in a path), and two such links 2^40 times: eval never ended. The loop is left out now."""
    labelled(tmp_path, "cam1/a", f"0 {FIRE_BOX}")
    (tmp_path / "images" / "cam1" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "images" / "cam1" / "again").symlink_to("..", target_is_directory=True)
    started = time.monotonic()
    samples, unlabelled = read_yolo_folder(tmp_path, "fire,smoke")
    assert time.monotonic() - started < 10
    assert _places(tmp_path, samples) == [("images/cam1/a.png", [0])]
    assert unlabelled == []
    link = tmp_path / "images" / "cam1" / "up"
    assert any(str(link) in message and "already read" in message for message in caplog.messages)


def test_a_camera_folder_linked_from_outside_is_read_with_its_labels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera's folders linked into the set (images/cam9 and labels/cam9 pointing to an archive): its images were
    read but not its labels (the label search did not follow links), so every fire image counted as a negative."""
    archive = tmp_path / "archive"
    labelled(archive, "cam9/b", f"1 {FIRE_BOX}")
    data = tmp_path / "set"
    labelled(data, "cam1/a", f"0 {FIRE_BOX}")
    (data / "images" / "cam9").symlink_to(archive / "images" / "cam9", target_is_directory=True)
    (data / "labels" / "cam9").symlink_to(archive / "labels" / "cam9", target_is_directory=True)
    samples, unlabelled = read_yolo_folder(data, "fire,smoke")
    assert _places(data, samples) == [("images/cam1/a.png", [0]), ("images/cam9/b.png", [1])]
    assert unlabelled == []
    message = f"{data / 'images' / 'cam9'}: a link to {archive / 'images' / 'cam9'}, outside {data / 'images'}"
    assert any(m.startswith(message) for m in caplog.messages), caplog.messages


def test_a_second_link_to_a_folder_of_the_set_is_not_read_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``images/latest -> cam1`` (a "latest camera" shortcut) counted cam1's images twice, the second time as
    negatives (no labels/latest): the fire was counted as found once and missed once."""
    labelled(tmp_path, "cam1/a", f"0 {FIRE_BOX}")
    (tmp_path / "images" / "latest").symlink_to("cam1", target_is_directory=True)
    samples, unlabelled = read_yolo_folder(tmp_path, "fire,smoke")
    assert _places(tmp_path, samples) == [("images/cam1/a.png", [0])]
    assert unlabelled == []
    link = tmp_path / "images" / "latest"
    assert any(str(link) in m and str(tmp_path / "images" / "cam1") in m for m in caplog.messages)


def test_eval_of_a_set_with_a_link_loop_names_it_on_stderr(tmp_path: Path) -> None:
    """The command as a user runs it (a subprocess: the CLI runner would not see the process's own stderr)."""
    labelled(tmp_path, "cam1/a", f"0 {FIRE_BOX}")
    (tmp_path / "images" / "cam1" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "images" / "cam1" / "again").symlink_to("..", target_is_directory=True)
    command = [sys.executable, "-m", "service.cli", "detector", "eval", str(tmp_path), *RULES]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 1
    for link in ("up", "again"):
        assert f"{tmp_path / 'images' / 'cam1' / link}: a link to {tmp_path / 'images'}" in result.stderr


def test_links_to_the_sets_parent_or_into_a_linked_folder_read_each_image_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A link to a folder holding the set (``-> ../..``, the set's own folder) would read its labels/ and its
    neighbours; two links into one archive folder, one inside the other, would read its inner images twice."""
    archive = tmp_path / "archive"
    labelled(archive, "cam9/b", f"1 {FIRE_BOX}")
    labelled(archive, "cam9/sub/c", f"1 {FIRE_BOX}")
    data = tmp_path / "set"
    labelled(data, "cam1/a", f"0 {FIRE_BOX}")
    (data / "images" / "cam1" / "whole_set").symlink_to("../..", target_is_directory=True)
    (data / "images" / "a_sub").symlink_to(archive / "images" / "cam9" / "sub", target_is_directory=True)
    (data / "images" / "cam9").symlink_to(archive / "images" / "cam9", target_is_directory=True)
    samples, _ = read_yolo_folder(data, "fire,smoke")
    assert [s.path.relative_to(data).as_posix() for s in samples] == [
        "images/a_sub/c.png",
        "images/cam1/a.png",
        "images/cam9/b.png",
    ]
    said = "\n".join(caplog.messages)
    assert f"{data / 'images' / 'cam1' / 'whole_set'}: a link to {data}, already read" in said
    inner = archive / "images" / "cam9" / "sub"
    assert f"{data / 'images' / 'cam9' / 'sub'}: the folder {inner}, already read through a link" in said
