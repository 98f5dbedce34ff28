"""An evaluation's errors as files a person can go through: ``strawfire detector eval --errors DIR``.

What a reviewer needs after a number such as "smoke AP50 0.52": which images, which boxes, what kind of mistake
(:mod:`detector.error_analysis`), and whether the labels or the model are at fault, which only looking tells. The
folder holds:

* ``errors.csv``: one row per error (image, source set, kind, class, confidence, IoU, box in original pixels,
  the annotated image it is drawn in), every error of every image;
* ``summary.json``: the counts per class and kind, overall and per source set, with the model, data, threshold
  and matching IoU they were counted at;
* ``images/``: each image with an error, drawn at most 1280 px on its longer side: labelled boxes green (orange
  when missed, with the miss's kind), the model's boxes at the threshold blue when they matched and red when not
  (with the kind and confidence); the ``max_images`` images with the most errors, ties by name;
* ``pr_curves.png``: each class's precision-recall curve with the operating point marked.

Decisions: a folder that exists must be empty or an earlier review (its ``summary.json`` says it was written here),
whose own files are replaced (the drawings it lists, not whatever else is in ``images/``), so a typo cannot fill or
empty a folder of other files, and stale images of an earlier run never mix with new ones. Images are read again to
be drawn (the evaluation keeps boxes, not pixels); an image that cannot be read again keeps its rows in
``errors.csv`` and is reported as not drawn.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from detector.detections import ImageArray
from detector.error_analysis import ERROR_KINDS, ErrorKind, ImageReview, count_errors, review_images
from detector.evaluate import EvalReport, FolderRun
from detector.images import ImageLoadError, load_image

__all__ = ["DRAWN_SIZE", "ReviewSummary", "check_review_folder", "draw_review", "write_review"]

#: Longer side of the drawn images: enough to see a distant plume's box, small enough to page through.
DRAWN_SIZE: Final[int] = 1280
SUMMARY_FILE: Final[str] = "summary.json"
#: Written into summary.json: a folder is taken for an earlier review only when its summary says this.
GENERATOR: Final[str] = "strawfire detector eval --errors"
_GREEN, _ORANGE, _BLUE, _RED = (40, 200, 40), (255, 150, 0), (40, 110, 255), (230, 30, 30)  # RGB


@dataclass
class ReviewSummary:
    """What :func:`write_review` wrote (also ``summary.json``, with the model and data it was counted for)."""

    counts: dict[str, dict[ErrorKind, int]]
    by_source: dict[str, dict[str, dict[ErrorKind, int]]]
    images_with_errors: int
    drawn: list[str] = field(default_factory=list)  # file names under images/
    not_drawn: list[str] = field(default_factory=list)  # "<image>: <why>" for images that could not be read again


def _earlier_review(out: Path) -> list[str] | None:
    """The images an earlier review in ``out`` drew (its ``summary.json`` says so), else None."""
    try:
        summary = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("generator") != GENERATOR:
        return None
    drawn = summary.get("drawn")
    return [name for name in drawn if isinstance(name, str)] if isinstance(drawn, list) else []


def check_review_folder(out: Path) -> None:
    """FileExistsError unless ``out`` may take a review: new, empty, or an earlier review (module docstring).
    Changes nothing: callers check before a long evaluation."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and _earlier_review(out) is None:
        raise FileExistsError(
            f"{out}: not empty and not an earlier review (no {SUMMARY_FILE} written by `eval --errors`): "
            "choose another folder"
        )


def _prepare(out: Path) -> None:
    """Make ``out`` ready (:func:`check_review_folder`): an earlier review's own files are removed, and only
    those, so that its drawings never mix with the new ones."""
    check_review_folder(out)
    for name in _earlier_review(out) or []:
        if Path(name).name == name:  # a bare file name, as written: never a path out of images/
            (out / "images" / name).unlink(missing_ok=True)
    for name in (SUMMARY_FILE, "errors.csv", "pr_curves.png"):
        (out / name).unlink(missing_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)


def _drawn_name(path: Path, used: set[str]) -> str:
    """A JPEG name for ``path`` under images/, unique among ``used`` (``a.png`` and ``a.jpg`` may both err)."""
    base = path.name if path.suffix.lower() in {".jpg", ".jpeg"} else f"{path.name}.jpg"
    name, counter = base, 1
    while name.lower() in used:
        counter += 1
        name = f"{Path(base).stem}-{counter}.jpg"
    used.add(name.lower())
    return name


def _label(image: ImageArray, text: str, corner: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """``text`` on a filled box of ``colour`` just above ``corner`` (below it at the top edge)."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    x, y = corner
    top = y - height - baseline - 2 if y - height - baseline - 2 >= 0 else y
    cv2.rectangle(image, (x, top), (x + width + 2, top + height + baseline + 2), colour, cv2.FILLED)
    cv2.putText(image, text, (x + 1, top + height + 1), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def draw_review(
    pixels: ImageArray, scale: tuple[float, float], review: ImageReview, classes: Sequence[str]
) -> ImageArray:
    """``pixels`` (an image decoded at ``scale`` = original / decoded size) shrunk to :data:`DRAWN_SIZE` with
    ``review``'s boxes drawn as the module docstring says."""
    height, width = pixels.shape[:2]
    shrink = min(1.0, DRAWN_SIZE / max(height, width))
    size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
    canvas: ImageArray = np.ascontiguousarray(
        cv2.resize(pixels, size, interpolation=cv2.INTER_AREA) if shrink < 1.0 else pixels.copy(), dtype=np.uint8
    )
    factor = np.array([shrink / scale[0], shrink / scale[1]] * 2, np.float64)

    def corners(box: Sequence[float]) -> tuple[tuple[int, int], tuple[int, int]]:
        x1, y1, x2, y2 = (np.asarray(box, np.float64) * factor).round().astype(int).tolist()
        return (x1, y1), (x2, y2)

    missed = {error.box for error in review.errors if error.missed}
    false = {(error.box, error.confidence): error for error in review.errors if not error.missed}
    gt_xyxy, _ = review.truth
    for box in gt_xyxy.tolist():
        start, end = corners(box)
        colour = _ORANGE if tuple(box) in missed else _GREEN
        cv2.rectangle(canvas, start, end, colour, 2)
    for error in review.errors:  # a miss's label inside its box's bottom edge: the model's labels sit at the top
        if error.missed:
            start, end = corners(error.box)
            _label(canvas, f"{error.kind} {error.class_name}", (start[0], end[1]), _ORANGE)
    for box, confidence, cls in zip(
        review.found.xyxy.tolist(), review.found.confidence.tolist(), review.found.class_id.tolist(), strict=True
    ):
        start, end = corners(box)
        wrong = false.get((tuple(box), confidence))
        cv2.rectangle(canvas, start, end, _RED if wrong else _BLUE, 1 if wrong is None else 2)
        text = f"{classes[cls]} {confidence:.2f}" + (f" {wrong.kind}" if wrong else "")
        _label(canvas, text, (start[0], end[1] + 14 if wrong is None else start[1]), _RED if wrong else _BLUE)
    return canvas


def _plot_curves(run: FolderRun, report: EvalReport, target: Path) -> bool:
    """Each class's precision-recall curve with the operating point, to ``target``; False when no class has a
    labelled box (nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    from matplotlib import pyplot as plt

    classes = list(report.per_class)
    curves = [(name, run.curve(index, report.iou)) for index, name in enumerate(classes)]
    if all(curve is None for _, curve in curves):
        return False
    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    try:
        for (name, curve), colour in zip(curves, ("tab:red", "tab:grey", "tab:blue"), strict=False):
            if curve is None:
                continue
            recall, precision, _ = curve
            result = report.per_class[name]
            ap = f"{result.ap50:.3f}" if result.ap50 is not None else "–"
            axes.step(recall, precision, where="post", color=colour, label=f"{name} (AP {ap}, {result.gt_boxes} boxes)")
            if result.recall is not None and result.precision is not None:
                axes.plot(result.recall, result.precision, "o", color=colour)
        axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        axes.set_title(
            f"{report.model} {report.version}: IoU {report.iou:g}, dots at the threshold {report.threshold:.2f}",
            fontsize=9,
        )
        axes.grid(alpha=0.3)
        axes.legend(loc="lower left")
        figure.savefig(target)
    finally:
        plt.close(figure)
    return True


def write_review(
    run: FolderRun,
    report: EvalReport,
    out: Path,
    *,
    max_images: int = 500,
    on_image: Callable[[int, int], None] | None = None,
) -> ReviewSummary:
    """Write the review folder of ``run`` at ``report``'s threshold into ``out`` (module docstring); ``max_images``
    drawn at most; ``on_image`` gets (drawn, to draw) for a progress bar."""
    if max_images < 0:
        raise ValueError(f"max_images must be ≥ 0, got {max_images}")
    _prepare(out)
    reviews = review_images(run, report)
    classes = list(report.per_class)
    erring = [review for review in reviews if review.errors]
    ranked = sorted(erring, key=lambda review: (-len(review.errors), review.path.name))[:max_images]
    summary = ReviewSummary(
        counts=count_errors((error for review in reviews for error in review.errors), classes),
        by_source={
            source: count_errors((e for r in reviews if r.source == source for e in r.errors), classes)
            for source in sorted({review.source for review in reviews})
        },
        images_with_errors=len(erring),
    )
    drawn: dict[Path, str] = {}
    used: set[str] = set()
    for done, review in enumerate(ranked, start=1):
        try:
            loaded = load_image(review.path)
        except ImageLoadError as exc:
            summary.not_drawn.append(str(exc))
        else:
            name = _drawn_name(review.path, used)
            canvas = draw_review(loaded.pixels, loaded.scale, review, classes)
            if not cv2.imwrite(str(out / "images" / name), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
                raise OSError(f"{out / 'images' / name}: could not be written")
            drawn[review.path] = name
            summary.drawn.append(name)
        if on_image is not None:
            on_image(done, len(ranked))
    with (out / "errors.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "source", "kind", "class", "confidence", "iou", "x1", "y1", "x2", "y2", "drawn"])
        for review in erring:
            for error in review.errors:
                confidence = "" if error.confidence is None else f"{error.confidence:.4f}"
                box = [f"{value:.1f}" for value in error.box]
                row = [review.path.name, review.source, error.kind, error.class_name, confidence, f"{error.iou:.3f}"]
                writer.writerow([*row, *box, drawn.get(review.path, "")])
    plotted = _plot_curves(run, report, out / "pr_curves.png")
    payload = {
        "generator": GENERATOR,
        "data": report.data,
        "model": report.model,
        "version": report.version,
        "backend": report.backend,
        "threshold": report.threshold,
        "iou": report.iou,
        "kinds": list(ERROR_KINDS),
        "counts": summary.counts,
        "by_source": summary.by_source,
        "images_evaluated": len(reviews),
        "images_with_errors": summary.images_with_errors,
        "drawn": summary.drawn,
        "not_drawn": summary.not_drawn,
        "pr_curves": "pr_curves.png" if plotted else None,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
