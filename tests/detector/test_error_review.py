"""Error analysis (kinds of wrong and missed boxes) and the review folder of ``strawfire detector eval --errors``."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from detector.cli import app
from detector.detections import Detections, ImageArray, ModelInfo
from detector.error_analysis import FALSE_POSITIVE_KINDS, MISSED_KINDS, count_errors, image_errors
from detector.evaluate import compute_report, detect_folder, precision_recall
from detector.review import DRAWN_SIZE, write_review
from tests.detector.conftest import flame_image, said

runner = CliRunner()
Row = tuple[int, float, tuple[float, float, float, float]]


def dets(rows: Sequence[Row], size: tuple[int, int] = (100, 100)) -> Detections:
    order = sorted(range(len(rows)), key=lambda i: -rows[i][1])
    return Detections(
        size,
        "m",
        "1",
        xyxy=np.asarray([rows[i][2] for i in order], np.float32).reshape(-1, 4),
        confidence=np.asarray([rows[i][1] for i in order], np.float32),
        class_id=np.asarray([rows[i][0] for i in order], np.int64),
    )


def truth(*rows: tuple[int, tuple[float, float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.asarray([box for _, box in rows], np.float32).reshape(-1, 4),
        np.asarray([cls for cls, _ in rows], np.int64),
    )


def test_every_kind_of_false_positive_and_miss() -> None:
    gt_xyxy, gt_class = truth(
        (0, (0, 0, 10, 10)),  # fire: found, and found again (duplicate)
        (1, (50, 50, 70, 70)),  # smoke: boxed loosely (localisation / boxed differently)
        (1, (0, 80, 20, 100)),  # smoke called fire (class / wrong class)
        (0, (80, 0, 100, 20)),  # fire nobody found (missed)
    )
    found = dets(
        [
            (0, 0.9, (0, 0, 10, 10)),
            (0, 0.8, (0, 0, 10, 11)),
            (1, 0.7, (50, 50, 90, 90)),  # IoU 400/1600 = 0.25 with the plume
            (0, 0.6, (0, 80, 20, 100)),
            (0, 0.5, (30, 30, 40, 40)),  # on nothing
            (0, 0.2, (80, 0, 100, 20)),  # would match the missed fire, but is below the threshold
        ]
    )
    errors = image_errors(found, gt_xyxy, gt_class, threshold=0.3)
    assert [(e.kind, e.class_name, e.confidence) for e in errors] == [
        ("duplicate", "fire", pytest.approx(0.8)),
        ("localisation", "smoke", pytest.approx(0.7)),
        ("class", "fire", pytest.approx(0.6)),
        ("background", "fire", pytest.approx(0.5)),
        ("boxed_differently", "smoke", None),
        ("wrong_class", "smoke", None),
        ("missed", "fire", None),
    ]
    assert [round(e.iou, 3) for e in errors] == [0.909, 0.25, 1.0, 0.0, 0.25, 1.0, 0.0]
    assert errors[-1].box == (80.0, 0.0, 100.0, 20.0)
    assert errors[-1].missed
    # Lowering the threshold finds the missed fire; raising the matching IoU above 0.909 makes the duplicate a
    # localisation error, and nothing is left out of the matching.
    assert "missed" not in {e.kind for e in image_errors(found, gt_xyxy, gt_class, threshold=0.1)}
    strict = image_errors(found, gt_xyxy, gt_class, threshold=0.3, iou=0.95)
    assert strict[0].kind == "localisation"
    counts = count_errors(errors, ("fire", "smoke"))
    assert counts["fire"]["background"] == 1
    assert counts["smoke"]["wrong_class"] == 1
    assert set(counts["fire"]) == set(FALSE_POSITIVE_KINDS + MISSED_KINDS)


def test_a_curve_without_predictions_is_empty() -> None:
    recall, precision, confidence = precision_recall(np.zeros(0, bool), np.zeros(0, np.float32), 3)
    assert len(recall) == len(precision) == len(confidence) == 0
    with pytest.raises(ValueError, match="labelled box"):
        precision_recall(np.zeros(0, bool), np.zeros(0, np.float32), 0)


def test_boxes_of_a_class_the_evaluation_does_not_score_are_left_out() -> None:
    """A model with a third class: the evaluation scores fire and smoke only, and so does the error analysis."""
    found = Detections(
        (100, 100),
        "m",
        "1",
        ("fire", "smoke", "person"),
        np.asarray([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32),
        np.asarray([0.9, 0.8], np.float32),
        np.asarray([2, 0], np.int64),
    )
    errors = image_errors(found, *truth((1, (0, 0, 10, 10))), threshold=0.5)
    assert [(e.kind, e.class_name) for e in errors] == [("background", "fire"), ("missed", "smoke")]


def test_an_image_without_truth_or_detections() -> None:
    empty = truth()
    assert image_errors(dets([]), *empty, threshold=0.5) == []
    only_false = image_errors(dets([(1, 0.9, (0, 0, 5, 5))]), *empty, threshold=0.5)
    assert [e.kind for e in only_false] == ["background"]
    only_missed = image_errors(dets([]), *truth((1, (0, 0, 5, 5))), threshold=0.5)
    assert [(e.kind, e.class_name) for e in only_missed] == [("missed", "smoke")]


def test_the_kinds_add_up_to_the_reports_counts_on_random_scenes() -> None:
    """Per class, false positives = predictions − true positives and misses = labelled boxes − true positives,
    at any threshold and IoU: the analysis uses the evaluation's own matching."""
    rng = np.random.default_rng(7)
    predictions, truths = [], []
    for _ in range(40):
        n_gt, n_pred = int(rng.integers(0, 5)), int(rng.integers(0, 8))
        corners = rng.uniform(0, 80, (n_gt + n_pred, 2))
        sizes = rng.uniform(5, 30, (n_gt + n_pred, 2))
        xyxy = np.hstack([corners, corners + sizes]).astype(np.float32)
        gt = (xyxy[:n_gt], rng.integers(0, 2, n_gt).astype(np.int64))
        jitter = xyxy[n_gt:] if not n_gt else xyxy[rng.integers(0, n_gt, n_pred)] + rng.normal(0, 4, (n_pred, 4))
        found = dets([(int(rng.integers(0, 2)), float(rng.uniform(0.05, 1)), tuple(b)) for b in jitter.tolist()])
        predictions.append(found)
        truths.append(gt)
    for threshold, iou in [(0.3, 0.5), (0.6, 0.3), (0.05, 0.75)]:
        report = compute_report(predictions, truths, threshold=threshold, data="x", backend="onnx", iou=iou)
        errors = [
            e for found, (gt, cls) in zip(predictions, truths, strict=True)
            for e in image_errors(found, gt, cls, threshold=threshold, iou=iou)
        ]  # fmt: skip
        counts = count_errors(errors, ("fire", "smoke"))
        for name, result in report.per_class.items():
            assert sum(counts[name][k] for k in FALSE_POSITIVE_KINDS) == result.predictions - result.true_positives
            assert sum(counts[name][k] for k in MISSED_KINDS) == result.gt_boxes - result.true_positives


class WidthDetector:
    """Fixed boxes per image width: a stand-in whose mistakes the test chooses."""

    def __init__(self, table: dict[int, list[Row]]) -> None:
        self.table = table

    @property
    def info(self) -> ModelInfo:
        return ModelInfo("table", "1", ("fire", "smoke"), 640, 0.5, "onnx")

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            height, width = image.shape[:2]
            found = dets(self.table.get(width, []), (width, height))
            out.append(found if conf is None else found.above(conf))
        return out


def review_folder(root: Path) -> Path:
    """Three labelled images: one right, one with a false alarm and a miss, one negative with a false alarm."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(flame_image(100, 50)).save(root / "images" / "a_right.png")
    (root / "labels" / "a_right.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    Image.fromarray(flame_image(2000, 1000)).save(root / "images" / "b_wrong.jpg")
    (root / "labels" / "b_wrong.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.1 0.1\n")
    Image.fromarray(flame_image(120, 60)).save(root / "images" / "c_negative.png")
    (root / "labels" / "c_negative.txt").write_text("")
    return root


DETECTOR_TABLE: dict[int, list[Row]] = {
    100: [(0, 0.9, (40, 15, 60, 35))],
    2000: [(0, 0.8, (800, 300, 1200, 700)), (1, 0.7, (1500, 800, 1700, 900))],  # the smoke box is on nothing
    120: [(1, 0.6, (0, 0, 30, 30)), (0, 0.3, (50, 20, 60, 30))],  # 0.3: below the threshold, not an error
}


def test_write_review(tmp_path: Path) -> None:
    data = review_folder(tmp_path / "set")
    detector = WidthDetector(DETECTOR_TABLE)
    run = detect_folder(detector, data)
    report = run.report(0.5)
    out = tmp_path / "review"
    summary = write_review(run, report, out)
    assert summary.images_with_errors == 2
    assert summary.counts["smoke"]["background"] == 2
    assert summary.counts["smoke"]["missed"] == 1
    assert sum(summary.counts["fire"].values()) == 0
    with (out / "errors.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["image"], r["kind"], r["class"], r["confidence"]) for r in rows] == [
        ("b_wrong.jpg", "background", "smoke", "0.7000"),
        ("b_wrong.jpg", "missed", "smoke", ""),
        ("c_negative.png", "background", "smoke", "0.6000"),
    ]
    assert [float(v) for v in (rows[1]["x1"], rows[1]["y1"], rows[1]["x2"], rows[1]["y2"])] == [100, 50, 300, 150]
    # The image with the most errors first; every drawn image exists, shrunk to DRAWN_SIZE on its longer side.
    assert summary.drawn == ["b_wrong.jpg", "c_negative.png.jpg"]
    assert rows[0]["drawn"] == "b_wrong.jpg"
    assert rows[2]["drawn"] == "c_negative.png.jpg"
    with Image.open(out / "images" / "b_wrong.jpg") as drawn:
        assert drawn.size == (DRAWN_SIZE, DRAWN_SIZE // 2)
        red = np.asarray(drawn.convert("RGB"))[800 * DRAWN_SIZE // 2000, 1500 * DRAWN_SIZE // 2000 + 30]
    assert red[0] > 180
    assert red[1] < 90
    assert red[2] < 90
    saved = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert saved["threshold"] == 0.5
    assert saved["model"] == "table"
    assert saved["by_source"]["(other)"]["smoke"]["background"] == 2
    assert saved["pr_curves"] == "pr_curves.png"
    assert (out / "pr_curves.png").stat().st_size > 1000
    # At most one drawn: the other keeps its rows, with no drawing named.
    capped = write_review(run, report, out, max_images=1)
    assert capped.drawn == ["b_wrong.jpg"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["b_wrong.jpg"]  # the earlier review's are gone
    with (out / "errors.csv").open(encoding="utf-8") as handle:
        assert [r["drawn"] for r in csv.DictReader(handle)] == ["b_wrong.jpg", "b_wrong.jpg", ""]


def test_write_review_keeps_rows_of_an_image_it_cannot_read_again(tmp_path: Path) -> None:
    data = review_folder(tmp_path / "set")
    run = detect_folder(WidthDetector(DETECTOR_TABLE), data)
    (data / "images" / "c_negative.png").write_bytes(b"gone")
    summary = write_review(run, run.report(0.5), tmp_path / "review")
    assert summary.drawn == ["b_wrong.jpg"]
    assert len(summary.not_drawn) == 1
    assert "c_negative.png" in summary.not_drawn[0]
    with (tmp_path / "review" / "errors.csv").open(encoding="utf-8") as handle:
        assert [r["image"] for r in csv.DictReader(handle)][-1] == "c_negative.png"


def test_write_review_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    data = review_folder(tmp_path / "set")
    run = detect_folder(WidthDetector(DETECTOR_TABLE), data)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an earlier review"):
        write_review(run, run.report(0.5), other)
    assert (other / "keep.txt").read_text() == "mine"
    assert not (other / "images").exists()
    with pytest.raises(FileExistsError, match="not a folder"):
        write_review(run, run.report(0.5), other / "keep.txt")
    # A summary.json of something else is not an earlier review: its images stay.
    (other / "summary.json").write_text('{"drawn": ["photo.jpg"]}')
    (other / "images").mkdir()
    (other / "images" / "photo.jpg").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="not an earlier review"):
        write_review(run, run.report(0.5), other)
    assert (other / "images" / "photo.jpg").read_bytes() == b"mine"
    # An earlier review's own drawings are replaced; a file someone put beside them stays.
    review = tmp_path / "review"
    write_review(run, run.report(0.5), review)
    (review / "images" / "notes.txt").write_text("mine")
    write_review(run, run.report(0.5), review, max_images=0)
    assert sorted(p.name for p in (review / "images").iterdir()) == ["notes.txt"]
    with pytest.raises(ValueError, match="max_images"):
        write_review(run, run.report(0.5), tmp_path / "new", max_images=-1)


def test_no_curve_without_labelled_boxes(tmp_path: Path) -> None:
    data = review_folder(tmp_path / "set")
    for label in (data / "labels").iterdir():
        label.write_text("")
    run = detect_folder(WidthDetector(DETECTOR_TABLE), data)
    write_review(run, run.report(0.5), tmp_path / "review")
    assert json.loads((tmp_path / "review" / "summary.json").read_text())["pr_curves"] is None
    assert not (tmp_path / "review" / "pr_curves.png").exists()


def test_eval_cli_writes_the_review(tmp_path: Path) -> None:
    data = tmp_path / "set"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    Image.fromarray(flame_image()).save(data / "images" / "flame.png")
    (data / "labels" / "flame.txt").write_text("1 0.5 0.5 0.2 0.2\n")  # labelled smoke: the rules see fire
    out = tmp_path / "review"
    args = ["eval", str(data), "--backend", "rules", "--errors", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["error_counts"]
    assert counts["smoke"]["missed"] + counts["smoke"]["wrong_class"] == 1
    assert sum(counts["fire"][kind] for kind in FALSE_POSITIVE_KINDS) >= 1
    assert (out / "errors.csv").is_file()
    assert (out / "images" / "flame.png.jpg").is_file()
    table = runner.invoke(app, args)  # again into the same folder: an earlier review is replaced
    assert table.exit_code == 0, table.output
    assert "errors @" in table.stdout
    assert "1 of 1 images with errors drawn" in " ".join(table.stdout.split())
    not_a_folder = runner.invoke(app, ["eval", str(data), "--backend", "rules", "--errors", str(out / "errors.csv")])
    assert not_a_folder.exit_code == 2
    assert "isnotafolder" in said(not_a_folder.output)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    refused = runner.invoke(app, ["eval", str(data), "--backend", "rules", "--errors", str(tmp_path / "mine")])
    assert refused.exit_code == 2
    assert "AP50" not in refused.output  # refused before the evaluation, not after it
    assert "notanearlierreview" in said(refused.output)
