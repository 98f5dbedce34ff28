"""Our evaluation metrics against hand-computed cases: matching, AP50 (all-point), thresholds, the report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from detector.detections import Detections, ImageArray, ModelInfo
from detector.evaluate import (
    average_precision,
    best_f1_threshold,
    compute_report,
    evaluate,
    evaluate_by_source,
    image_source,
    match_detections,
    parse_names,
    read_yolo_folder,
)


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(rows, np.float32).reshape(-1, 4)


def dets(
    rows: list[tuple[int, float, tuple[float, float, float, float]]], size: tuple[int, int] = (100, 100)
) -> Detections:
    order = sorted(range(len(rows)), key=lambda i: -rows[i][1])
    return Detections(
        size,
        "m",
        "1",
        xyxy=boxes(*(rows[i][2] for i in order)),
        confidence=np.asarray([rows[i][1] for i in order], np.float32),
        class_id=np.asarray([rows[i][0] for i in order], np.int64),
    )


def test_matching_is_greedy_by_confidence_and_each_truth_is_used_once() -> None:
    gt = boxes((0, 0, 10, 10))
    pred = boxes((0, 0, 10, 10), (0, 0, 10, 9))
    # The lower-confidence exact box comes second: the truth is already taken, so it is a duplicate (FP).
    assert match_detections(pred, np.array([0.9, 0.8], np.float32), gt).tolist() == [True, False]
    assert match_detections(pred, np.array([0.7, 0.8], np.float32), gt).tolist() == [False, True]


def test_matching_takes_the_best_unmatched_truth_and_needs_iou_half() -> None:
    gt = boxes((0, 0, 10, 10), (0, 0, 10, 12))
    pred = boxes((0, 0, 10, 12), (0, 0, 10, 10.5))
    # pred0 takes gt1 (IoU 1); pred1 best is gt0 (IoU 10/10.5) — still free.
    assert match_detections(pred, np.array([0.9, 0.8], np.float32), gt).tolist() == [True, True]
    # IoU exactly 0.5 counts (≥), just below does not.
    half = boxes((0, 0, 20, 10))
    assert match_detections(half, np.array([0.5], np.float32), boxes((0, 0, 10, 10))).tolist() == [True]
    below = boxes((0, 0, 20.1, 10))
    assert match_detections(below, np.array([0.5], np.float32), boxes((0, 0, 10, 10))).tolist() == [False]


def test_average_precision_all_point_hand_computed() -> None:
    # 3 truths; predictions by confidence: TP, FP, TP, FP, TP.
    # Precision/recall: (1, 1/3), (1/2, 1/3), (2/3, 2/3), (1/2, 2/3), (3/5, 1).
    # Envelope: recall 1/3 → 1, 2/3 → 2/3, 1 → 3/5. AP = 1/3·1 + 1/3·2/3 + 1/3·3/5 = 0.7555…
    tp = np.array([True, False, True, False, True])
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    assert average_precision(tp, conf, 3) == pytest.approx(1 / 3 + 2 / 9 + 1 / 5)
    # Order is by confidence, not by position in the arrays.
    assert average_precision(tp[::-1], conf[::-1], 3) == pytest.approx(1 / 3 + 2 / 9 + 1 / 5)


def test_average_precision_edge_cases() -> None:
    assert average_precision(np.array([True, True]), np.array([0.9, 0.1], np.float32), 2) == pytest.approx(1.0)
    # Half the truths found with perfect precision: AP 0.5 (the missing recall counts as precision 0).
    assert average_precision(np.array([True]), np.array([0.9], np.float32), 2) == pytest.approx(0.5)
    assert average_precision(np.zeros(0, bool), np.zeros(0, np.float32), 4) == 0.0
    assert average_precision(np.array([False]), np.array([0.9], np.float32), 0) is None


def test_predictions_of_equal_confidence_are_one_point_of_the_curve() -> None:
    """No threshold separates equal confidences, so their order (the order of the image files) must not change
    AP: one TP and one FP at 0.5 with one truth is precision 1/2 at recall 1, AP 0.5 either way round (ranked by
    position it was 0.5 or 0.25)."""
    conf = np.array([0.5, 0.5], np.float32)
    assert average_precision(np.array([True, False]), conf, 1) == pytest.approx(0.5)
    assert average_precision(np.array([False, True]), conf, 1) == pytest.approx(0.5)
    # Ties among others: TP 0.9, then {TP, FP, FP} at 0.6, then TP 0.4; 3 truths.
    # Points: (1, 1/3), (2/4, 2/3), (3/5, 1). Envelope: 1/3 → 1, 2/3 → 3/5, 1 → 3/5.
    tp = np.array([True, False, True, False, True])
    ties = np.array([0.9, 0.6, 0.6, 0.6, 0.4], np.float32)
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = np.r_[0, 1 + rng.permutation(3), 4]
        assert average_precision(tp[order], ties[order], 3) == pytest.approx(1 / 3 + 1 / 3 * 3 / 5 + 1 / 3 * 3 / 5)


def test_f1_is_zero_when_there_were_boxes_to_find_and_nothing_was_predicted() -> None:
    report = compute_report(
        [dets([])], [(boxes((10, 10, 30, 30)), np.array([0]))], threshold=0.5, data="d", backend="b"
    )
    assert (report.per_class["fire"].recall, report.per_class["fire"].f1) == (0.0, 0.0)
    assert report.per_class["fire"].precision is None  # nothing predicted: precision is undefined


def test_best_f1_threshold_prefers_higher_threshold_on_ties_and_falls_back() -> None:
    tp = np.array([True, True, False])
    conf = np.array([0.9, 0.8, 0.3], np.float32)
    # F1 is 1.0 for any threshold in (0.3, 0.8]: the highest such grid value wins.
    assert best_f1_threshold([(tp, conf, 2)], grid=[0.2, 0.5, 0.8, 0.85]) == pytest.approx(0.8)
    assert best_f1_threshold([(np.array([False]), np.array([0.9], np.float32), 3)], fallback=0.25) == 0.25


def test_the_chosen_threshold_keeps_within_the_false_alarm_aim() -> None:
    """F1 alone would pick 0.3; 20 negative images, two of them with a 0.4 and 0.6 look-alike: at most 5 % (one
    image) may be flagged, so the threshold rises above 0.4, and min_threshold raises it further."""
    tp = np.array([True, True, False, True])
    conf = np.array([0.9, 0.7, 0.35, 0.3], np.float32)
    grid = [0.3, 0.35, 0.5, 0.8]
    negatives = np.array([0.6, 0.4] + [0.0] * 18, np.float32)
    assert best_f1_threshold([(tp, conf, 3)], grid=grid) == pytest.approx(0.3)
    capped = best_f1_threshold([(tp, conf, 3)], grid=grid, negative_scores=negatives, max_fp_rate=0.05)
    assert capped == pytest.approx(0.5)
    assert float(np.mean(negatives >= capped)) <= 0.05
    assert best_f1_threshold(
        [(tp, conf, 3)], grid=grid, negative_scores=negatives, max_fp_rate=0.05, min_threshold=0.6
    ) == pytest.approx(0.8)
    # No true positive anywhere: the fallback, raised to what min_threshold and the cap allow.
    none = [(np.array([False]), np.array([0.9], np.float32), 3)]
    assert best_f1_threshold(none, grid=grid, fallback=0.25, min_threshold=0.6) == 0.6
    assert best_f1_threshold(none, grid=grid, fallback=0.25, negative_scores=negatives, max_fp_rate=0.05) == 0.5
    # No threshold in the grid keeps within the cap: the highest one (fewest alarms) is returned.
    flagged = np.full(20, 0.99, np.float32)
    assert best_f1_threshold([(tp, conf, 3)], grid=grid, negative_scores=flagged, max_fp_rate=0.05) == 0.8


def test_report_hand_computed() -> None:
    # Image A: fire truth, detected (0.9) + a smoke false positive (0.4).
    # Image B: smoke truth, detected (0.6) + one duplicate (0.55).
    # Image C: negative, a fire false positive at 0.2 (below the 0.3 threshold) and one at 0.35 (above).
    preds = [
        dets([(0, 0.9, (10, 10, 30, 30)), (1, 0.4, (50, 50, 60, 60))]),
        dets([(1, 0.6, (0, 0, 40, 40)), (1, 0.55, (1, 1, 41, 41))]),
        dets([(0, 0.2, (5, 5, 9, 9)), (0, 0.35, (70, 70, 90, 90))]),
    ]
    truths = [
        (boxes((10, 10, 30, 30)), np.array([0])),
        (boxes((0, 0, 40, 40)), np.array([1])),
        (boxes(), np.zeros(0, np.int64)),
    ]
    report = compute_report(preds, truths, threshold=0.3, data="x", backend="test")
    fire, smoke = report.per_class["fire"], report.per_class["smoke"]
    assert fire.ap50 == pytest.approx(1.0)  # the TP has the top confidence
    assert (fire.predictions, fire.true_positives, fire.gt_boxes) == (2, 1, 1)
    assert fire.precision == pytest.approx(0.5)
    assert fire.recall == pytest.approx(1.0)
    assert fire.f1 == pytest.approx(2 / 3)
    assert fire.image_precision == pytest.approx(0.5)  # images A (right) and C (wrong)
    # Smoke: 0.6 TP, 0.55 duplicate FP, 0.4 FP → AP 1.0, precision 1/3 at 0.3.
    assert smoke.ap50 == pytest.approx(1.0)
    assert smoke.precision == pytest.approx(1 / 3)
    assert smoke.image_recall == pytest.approx(1.0)
    assert smoke.image_precision == pytest.approx(0.5)  # A (smoke FP there) and B
    assert report.map50 == pytest.approx(1.0)
    assert report.negatives == 1
    assert report.fp_image_rate == pytest.approx(1.0)  # C has the 0.35 fire box
    assert report.presence.precision == pytest.approx(2 / 3)
    assert report.presence.recall == pytest.approx(1.0)
    raised = compute_report(preds, truths, threshold=0.5, data="x", backend="test")
    assert raised.fp_image_rate == 0.0
    assert raised.per_class["fire"].precision == pytest.approx(1.0)


def test_report_at_a_lower_iou_counts_a_plume_boxed_differently() -> None:
    # One labelled plume (0,0)-(40,40); the model boxed its upper part, IoU 0.35 (560/1600): missed at 0.5.
    preds = [dets([(1, 0.8, (0, 0, 40, 14))])]
    truths = [(boxes((0, 0, 40, 40)), np.array([1]))]
    strict = compute_report(preds, truths, threshold=0.5, data="x", backend="test")
    loose = compute_report(preds, truths, threshold=0.5, data="x", backend="test", iou=0.3)
    assert (strict.iou, loose.iou) == (0.5, 0.3)
    assert strict.per_class["smoke"].ap50 == 0.0
    assert strict.per_class["smoke"].true_positives == 0
    assert loose.per_class["smoke"].ap50 == pytest.approx(1.0)
    assert loose.per_class["smoke"].recall == pytest.approx(1.0)
    # Image-level presence does not depend on box matching.
    assert strict.presence == loose.presence


def test_parse_names_maps_by_position_case_insensitively() -> None:
    assert parse_names("Fire,default,smoke") == (0, None, 1)
    assert parse_names("SMOKE, fire") == (1, 0)
    with pytest.raises(ValueError, match="names"):
        parse_names("fire,,smoke")


def test_read_yolo_folder_maps_ignores_and_skips(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for name in ("a", "b", "c", "d"):
        (tmp_path / "images" / f"{name}.jpg").write_bytes(b"")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 1 1\n2 0.25 0.25 0.1 0.1\n")
    (tmp_path / "labels" / "b.txt").write_text("")
    (tmp_path / "labels" / "c.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    samples, unlabelled = read_yolo_folder(tmp_path, "Fire,default,smoke", missing_labels="skip")
    assert [path.name for path in unlabelled] == ["d.jpg"]  # no label file
    a, b, c = samples
    assert a.truth is not None
    assert a.truth.class_id.tolist() == [0, 1]  # "default" dropped, smoke → 1
    np.testing.assert_allclose(a.truth.to_pixels((200, 100))[0], [80, 40, 120, 60], atol=1e-4)
    assert b.truth is not None
    assert len(b.truth.xyxy) == 0
    assert c.truth is None
    assert c.error is not None
    assert "class id 7" in c.error
    # The default, as in YOLO datasets: an image without a label file is a negative (and still counted).
    with_background, unlabelled = read_yolo_folder(tmp_path, "Fire,default,smoke")
    assert [path.name for path in unlabelled] == ["d.jpg"]
    assert [s.path.name for s in with_background] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    d = with_background[3]
    assert d.truth is not None
    assert len(d.truth.xyxy) == 0


class BrightnessDetector:
    """Stub: one whole-image "fire" box per image, as confident as the image is bright (mean pixel / 255)."""

    info = ModelInfo("stub", "1", ("fire", "smoke"), 0, 0.5, "stub")

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            h, w = image.shape[:2]
            score = float(image.mean()) / 255
            out.append(dets([(0, score, (0, 0, w, h))], size=(w, h)))
        return out


def test_a_folder_without_labels_is_all_negatives_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "images").mkdir()
    for name in ("a", "b"):
        (tmp_path / "images" / f"{name}.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="detector.evaluate"):
        samples, unlabelled = read_yolo_folder(tmp_path)
    assert len(unlabelled) == 2
    assert [len(s.truth.xyxy) for s in samples if s.truth is not None] == [0, 0]
    assert "no labels folder: every image is a negative" in caplog.text
    with pytest.raises(FileNotFoundError, match="no labels folder"):
        read_yolo_folder(tmp_path, missing_labels="skip")  # nothing could be evaluated


def test_image_source_is_the_built_datasets_name_prefix() -> None:
    assert image_source(Path("x/fire_smoke_aerial__DJI_0001__tile2.jpg")) == "fire_smoke_aerial"
    assert image_source(Path("negatives_cair__n1.jpg")) == "negatives_cair"
    assert image_source(Path("plain.jpg")) == "(other)"
    assert image_source(Path("__odd.jpg")) == "(other)"


def test_evaluate_by_source_splits_one_pass_at_the_overall_threshold(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    whole_fire = "0 0.5 0.5 1 1\n"
    for name, level, label in [
        ("aerial__a", 200, whole_fire),
        ("aerial__b", 220, whole_fire),
        ("cctv__c", 20, whole_fire),  # a fire the stub scores 0.08: missed at 0.5
        ("negatives__d", 150, ""),  # a look-alike the stub scores 0.59: a false alarm at 0.5
        ("e", 10, ""),
    ]:
        Image.fromarray(np.full((32, 48, 3), level, np.uint8)).save(tmp_path / "images" / f"{name}.png")
        (tmp_path / "labels" / f"{name}.txt").write_text(label)
    detector = BrightnessDetector()
    overall, sources = evaluate_by_source(detector, tmp_path)
    assert overall == evaluate(detector, tmp_path).model_copy(update={"ms_per_image": overall.ms_per_image})
    assert list(sources) == ["(other)", "aerial", "cctv", "negatives"]
    assert sum(r.evaluated for r in sources.values()) == overall.evaluated == 5
    assert {r.threshold for r in sources.values()} == {0.5}
    assert sources["aerial"].per_class["fire"].ap50 == 1.0
    assert sources["aerial"].presence.recall == 1.0
    assert sources["cctv"].presence.recall == 0.0
    assert sources["negatives"].fp_image_rate == 1.0
    assert sources["(other)"].fp_image_rate == 0.0
    assert sources["aerial"].data.endswith("[aerial]")
    _, loose_sources = evaluate_by_source(detector, tmp_path, iou=0.3)
    assert {r.iou for r in loose_sources.values()} == {0.3}
    chosen, chosen_sources = evaluate_by_source(detector, tmp_path, choose_threshold=True)
    assert {r.threshold for r in chosen_sources.values()} == {chosen.threshold}


def test_held_out_label_quirks_cost_a_line_not_the_image(tmp_path: Path) -> None:
    """A confidence column after the box, a class id written 0.0 and a box overshooting the edge by 2 % each made
    the whole image (every good box on it) disappear from the evaluation."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    (tmp_path / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2 0.93\n"  # with a confidence
        "1.0 0.25 0.25 0.1 0.1\n"  # class id as a float
        "0 0.95 0.5 0.14 0.2\n"  # overshoots the right edge by 0.02: clipped
        "0 0.5 oops 0.2 0.2\n"  # unreadable: this line alone is left out
    )
    [a], _ = read_yolo_folder(tmp_path, "fire,smoke")
    assert a.truth is not None
    assert a.truth.class_id.tolist() == [0, 1, 0]
    np.testing.assert_allclose(a.truth.xyxy[2], [0.88, 0.4, 1.0, 0.6], atol=1e-6)
    assert len(a.left_out) == 1
    assert "a.txt:4" in a.left_out[0]
