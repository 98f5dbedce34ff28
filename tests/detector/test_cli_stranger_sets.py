"""Held-out sets as strangers make them (found by calling the CLI contract as an acceptance harness would): an
export's ``data.yaml`` names, an evaluation of nothing, frames named without zero-padding, images grouped in
subfolders, label files without their image, ``--names`` written with spaces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from detector.cli import app
from detector.evaluate import detect_folder, image_files, name_order, names_from_data_yaml, read_yolo_folder
from detector.rules import RulesDetector
from tests.detector.conftest import flame_image, said

runner = CliRunner()
RULES = ["--backend", "rules", "--json"]
FIRE_BOX = "0.4167 0.4688 0.2083 0.3125"


def labelled(root: Path, name: str, line: str) -> None:
    """An image with the flame blob at ``root/images/name.png`` and ``line`` in its label file."""
    (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
    (root / "labels" / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(flame_image()).save(root / "images" / f"{name}.png")
    (root / "labels" / f"{name}.txt").write_text(line + "\n")


def roboflow_export(root: Path, names: str) -> Path:
    """A Roboflow-style export: ``data.yaml`` beside ``valid/images`` and ``valid/labels``, smoke as id 2."""
    (root / "data.yaml").write_text(f"names: {names}\nnc: 3\ntrain: ../train/images\nval: ../valid/images\n")
    labelled(root / "valid", "a", f"2 {FIRE_BOX}")
    labelled(root / "valid", "b", f"0 {FIRE_BOX}")
    return root


@pytest.mark.parametrize("names", ["[Fire, default, smoke]", "{0: Fire, 1: default, 2: smoke}"])
def test_eval_reads_the_class_names_of_the_sets_data_yaml(tmp_path: Path, names: str) -> None:
    """Without ``--names`` a Roboflow export (ids Fire, default, smoke) was read with the project's fire, smoke:
    every smoke box (id 2) fell outside the names, every such image was left out, and eval exited 0 with null
    metrics. The names of the export's data.yaml are used now, and said."""
    root = roboflow_export(tmp_path, names)
    assert names_from_data_yaml(root / "valid") == (root / "data.yaml", ["Fire", "default", "smoke"])
    result = runner.invoke(app, ["eval", str(root), *RULES])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["images"], report["evaluated"], report["errors"]) == (2, 2, [])
    assert (report["per_class"]["fire"]["gt_boxes"], report["per_class"]["smoke"]["gt_boxes"]) == (1, 1)
    assert said(f"class names from {root / 'data.yaml'}: Fire,default,smoke") in said(result.stderr)
    assert report["data"] == str(root / "valid")  # the folder really read, not the export's root


def test_eval_of_which_no_image_could_be_read_exits_2(tmp_path: Path) -> None:
    """A report of nothing (every image left out) exited 0; an image left out for a class id beyond ``--names``
    is warned about in one line."""
    root = roboflow_export(tmp_path, "[Fire, default, smoke]")
    (root / "valid" / "labels" / "b.txt").write_text(f"2 {FIRE_BOX}\n")
    nothing = runner.invoke(app, ["eval", str(root), "--names", "fire,smoke", *RULES])
    assert nothing.exit_code == 2, nothing.output
    assert json.loads(nothing.stdout)["evaluated"] == 0  # the report is still printed, with its errors
    assert said("none of the 2 images could be evaluated") in said(nothing.stderr)
    assert said("2 of 2 images left out: their labels use class ids that --names (fire,smoke)") in said(nothing.stderr)
    (root / "valid" / "labels" / "b.txt").write_text(f"0 {FIRE_BOX}\n")
    partly = runner.invoke(app, ["eval", str(root), "--names", "fire,smoke", *RULES])
    assert partly.exit_code == 0, partly.output
    assert said("1 of 2 images left out") in said(partly.stderr)
    table = runner.invoke(app, ["eval", str(root), "--names", "fire,smoke", "--backend", "rules"])
    assert table.exit_code == 0, table.output


def test_frames_named_without_zero_padding_are_in_number_order(tmp_path: Path) -> None:
    """``ffmpeg -i clip.mp4 frame_%d.png`` writes frame_0 … frame_29: text order ran 0, 1, 10…19, 2, 20…, so
    ``watch`` saw the sequence scrambled (a fire that seemed to end, every frame index wrong)."""
    for i in (0, 1, 2, 10, 11, 20):
        Image.fromarray(flame_image()).save(tmp_path / f"frame_{i}.png")
    assert [p.name for p in image_files(tmp_path)] == [f"frame_{i}.png" for i in (0, 1, 2, 10, 11, 20)]
    padded = sorted([Path("f_010.png"), Path("f_002.png"), Path("f_001.png")], key=name_order)
    assert [p.name for p in padded] == ["f_001.png", "f_002.png", "f_010.png"]  # padded names: as text order
    # The same number written two ways: the whole name decides, so the order is total and stable.
    assert sorted([Path("a1.png"), Path("b.png"), Path("a01.png")], key=name_order) == [
        Path("a01.png"),
        Path("a1.png"),
        Path("b.png"),
    ]
    # A camera's frames stay together, its folder's number read as a number too.
    frames = [Path(f"cam{c}/f_{i}.png") for c in (10, 2) for i in (10, 2)]
    assert [p.as_posix() for p in sorted(frames, key=name_order)] == [
        "cam2/f_2.png",
        "cam2/f_10.png",
        "cam10/f_2.png",
        "cam10/f_10.png",
    ]
    # A superscript is a digit to str.isdigit, but no number: a folder "set_1²" was a ValueError.
    assert sorted([Path("set_2"), Path("set_1²")], key=name_order) == [Path("set_1²"), Path("set_2")]


def test_a_sequence_of_camera_subfolders_is_one_sequence_per_camera(tmp_path: Path) -> None:
    """``eval --sequence`` over images/cam1 and images/cam2 ran the frames in file-name order across the folders
    (cam1/f_1, cam2/f_1, cam1/f_2 …), and a camera's first frame got another camera's frame as its previous: the
    rules' smoke, which is motion, was found where one camera's view differs from the other's."""
    dark = np.full((64, 96, 3), 60, np.uint8)
    haze = dark.copy()
    haze[16:48, 32:64] = 160  # a grey patch: smoke to the rules if it appeared since the previous frame
    for camera, frame in (("cam1", dark), ("cam2", haze)):
        for name in ("f_1", "f_2"):
            (tmp_path / "images" / camera).mkdir(parents=True, exist_ok=True)
            (tmp_path / "labels" / camera).mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(tmp_path / "images" / camera / f"{name}.png")
            (tmp_path / "labels" / camera / f"{name}.txt").write_text("")  # nothing burns
    run = detect_folder(RulesDetector(), tmp_path, names="fire,smoke", sequence=True)
    assert [p.relative_to(tmp_path / "images").as_posix() for p in run.paths] == [
        "cam1/f_1.png",
        "cam1/f_2.png",
        "cam2/f_1.png",
        "cam2/f_2.png",
    ]
    assert [len(found.xyxy) for found in run.predictions] == [0, 0, 0, 0]


def test_images_grouped_in_subfolders_are_evaluated_with_their_labels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A held-out set grouped by camera (images/cam1, images/cam2, mirrored in labels/) was refused as "split
    folders", and images in a subfolder beside others were left out; both are read now, as ultralytics reads
    them. Folders named like splits stay out (a model's training images must not join its evaluation)."""
    labelled(tmp_path, "cam1/a", f"0 {FIRE_BOX}")
    labelled(tmp_path, "cam2/a", f"1 {FIRE_BOX}")  # the same file name in another camera's folder
    samples, unlabelled = read_yolo_folder(tmp_path, "fire,smoke")
    assert [(s.path.relative_to(tmp_path).as_posix(), s.truth.class_id.tolist()) for s in samples if s.truth] == [
        ("images/cam1/a.png", [0]),
        ("images/cam2/a.png", [1]),
    ]
    assert unlabelled == []
    labelled(tmp_path, "top", f"0 {FIRE_BOX}")
    labelled(tmp_path, "train/t", f"1 {FIRE_BOX}")
    samples, _ = read_yolo_folder(tmp_path, "fire,smoke")
    assert sorted(s.path.name for s in samples) == ["a.png", "a.png", "top.png"]
    assert f"{tmp_path / 'images'}: split folders left out (pass --split NAME): train" in caplog.messages


def test_a_label_file_without_its_image_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    labelled(tmp_path, "a", f"0 {FIRE_BOX}")
    (tmp_path / "labels" / "renamed.txt").write_text(f"1 {FIRE_BOX}\n")
    read_yolo_folder(tmp_path, "fire,smoke")
    assert f"{tmp_path / 'labels'}: 1 label file(s) without an image, not evaluated: renamed.txt" in caplog.messages


def test_names_written_with_spaces_are_told_to_use_commas(tmp_path: Path) -> None:
    labelled(tmp_path, "a", f"0 {FIRE_BOX}")
    result = runner.invoke(app, ["eval", str(tmp_path), "--names", "Fire default smoke", *RULES])
    assert result.exit_code == 2
    assert said("is one name: separate the names with commas (e.g. Fire,default,smoke)") in said(result.output)
