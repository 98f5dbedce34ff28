"""Where a detector goes wrong: every error of an evaluation at its operating threshold, by kind. Pure.

Why: AP50 0.22 for smoke seen from a drone says the model is weak there, not how. A model that misses plumes
needs more data; one that finds them but boxes them differently from the labeller (one plume, three boxes) needs
consistent labels or a lower matching IoU; one that calls smoke fire needs neither. The kinds follow TIDE (Bolya
et al., ECCV 2020), reduced to what a single operating threshold shows, with the evaluation's own matching
(:func:`detector.evaluate.assign_detections`), so that per class the false positives add up to the report's
predictions minus its true positives and the misses to its labelled boxes minus its true positives.

A **false positive** is a box at or above the threshold that matched no labelled box of its class at the
matching IoU. The first that applies:

* ``duplicate``: it overlaps a labelled box of its class at the matching IoU, which a more confident box took;
* ``class``: it overlaps a labelled box of the *other* class at the matching IoU (smoke called fire);
* ``localisation``: it overlaps a labelled box of its class, at an IoU of at least :data:`BACKGROUND_IOU` but
  below the matching IoU: found, boxed differently;
* ``background``: none of these: a look-alike, or an object nobody labelled.

A **missed** labelled box is one no box at or above the threshold matched. The first that applies:

* ``boxed_differently``: a box of its class overlaps it at an IoU of at least :data:`BACKGROUND_IOU`;
* ``wrong_class``: a box of the other class overlaps it at the matching IoU;
* ``missed``: nothing found there.

Each error carries the IoU that put it in its kind (0 for ``background`` and ``missed``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from detector.detections import CLASS_NAMES, Detections, FloatArray
from detector.evaluate import IOU_THRESHOLD, EvalReport, FolderRun, assign_detections, image_source
from detector.yolo import box_iou

__all__ = [
    "BACKGROUND_IOU",
    "ERROR_KINDS",
    "FALSE_POSITIVE_KINDS",
    "MISSED_KINDS",
    "ErrorBox",
    "ErrorKind",
    "ImageReview",
    "count_errors",
    "image_errors",
    "review_images",
    "scored",
]

ErrorKind = Literal["duplicate", "class", "localisation", "background", "boxed_differently", "wrong_class", "missed"]
FALSE_POSITIVE_KINDS: Final[tuple[ErrorKind, ...]] = ("duplicate", "class", "localisation", "background")
MISSED_KINDS: Final[tuple[ErrorKind, ...]] = ("boxed_differently", "wrong_class", "missed")
ERROR_KINDS: Final[tuple[ErrorKind, ...]] = FALSE_POSITIVE_KINDS + MISSED_KINDS
#: Below this IoU two boxes are about different things (TIDE's background threshold).
BACKGROUND_IOU: Final[float] = 0.1


@dataclass(frozen=True)
class ErrorBox:
    """One wrong or missing box: a detection (``confidence`` set) or a labelled box (``confidence`` None)."""

    kind: ErrorKind
    class_name: str  # the detection's class, or the labelled box's
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original-image pixels
    confidence: float | None
    iou: float  # the overlap that decided the kind (module docstring)

    @property
    def missed(self) -> bool:
        """A labelled box nothing matched (rather than a detection that matched nothing)."""
        return self.confidence is None


def _best(ious: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Per row of ``ious``, the largest value among the columns ``mask`` selects (0 when none)."""
    if not mask.any() or not ious.shape[0]:
        return np.zeros(ious.shape[0])
    best: npt.NDArray[np.float64] = ious[:, mask].max(axis=1)
    return best


def _as_box(row: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in row)
    return x1, y1, x2, y2


def scored(detections: Detections, threshold: float) -> Detections:
    """The boxes the evaluation scores at ``threshold``: confidence at or above it, of a project class."""
    return detections.select((detections.confidence >= threshold) & (detections.class_id < len(CLASS_NAMES)))


def image_errors(
    detections: Detections,
    gt_xyxy: FloatArray,
    gt_class: npt.NDArray[np.int64],
    *,
    threshold: float,
    iou: float = IOU_THRESHOLD,
) -> list[ErrorBox]:
    """The errors of one image at ``threshold``: its false positives by decreasing confidence, then its missed
    labelled boxes in label order. ``gt_xyxy`` in the detections' pixels, ``gt_class`` indexing the project's
    classes (:data:`~detector.detections.CLASS_NAMES`), as do the detections' class ids: as in the evaluation,
    which scores those classes only, a model's boxes of any further class are left out; boxes match at ``iou``."""
    found = scored(detections, threshold)
    pred_iou = box_iou(found.xyxy, gt_xyxy) if len(found) and len(gt_xyxy) else np.zeros((len(found), len(gt_xyxy)))
    matched = np.full(len(found), -1, np.int64)
    for cls in range(len(CLASS_NAMES)):
        mine, theirs = np.flatnonzero(found.class_id == cls), np.flatnonzero(gt_class == cls)
        assigned = assign_detections(found.xyxy[mine], found.confidence[mine], gt_xyxy[theirs], iou)
        matched[mine[assigned >= 0]] = theirs[assigned[assigned >= 0]]
    errors: list[ErrorBox] = []
    for index in np.flatnonzero(matched < 0):  # ``found`` is sorted by decreasing confidence
        cls = int(found.class_id[index])
        same = _best(pred_iou[index : index + 1], gt_class == cls)[0]
        other = _best(pred_iou[index : index + 1], gt_class != cls)[0]
        kind: ErrorKind
        if same >= iou:
            kind, overlap = "duplicate", same
        elif other >= iou:
            kind, overlap = "class", other
        elif same >= BACKGROUND_IOU:
            kind, overlap = "localisation", same
        else:
            kind, overlap = "background", 0.0
        errors.append(
            ErrorBox(kind, CLASS_NAMES[cls], _as_box(found.xyxy[index]), float(found.confidence[index]), overlap)
        )
    taken = np.zeros(len(gt_xyxy), bool)
    taken[matched[matched >= 0]] = True
    for label in np.flatnonzero(~taken):
        cls = int(gt_class[label])
        column = pred_iou[:, label]
        same = float(column[found.class_id == cls].max(initial=0.0))
        other = float(column[found.class_id != cls].max(initial=0.0))
        if same >= BACKGROUND_IOU:
            kind, overlap = "boxed_differently", same
        elif other >= iou:
            kind, overlap = "wrong_class", other
        else:
            kind, overlap = "missed", 0.0
        errors.append(ErrorBox(kind, CLASS_NAMES[cls], _as_box(gt_xyxy[label]), None, overlap))
    return errors


def count_errors(errors: Iterable[ErrorBox], classes: Sequence[str]) -> dict[str, dict[ErrorKind, int]]:
    """Errors per class and kind, every kind present (0 when none)."""
    counts: dict[str, dict[ErrorKind, int]] = {name: dict.fromkeys(ERROR_KINDS, 0) for name in classes}
    for error in errors:
        counts.setdefault(error.class_name, dict.fromkeys(ERROR_KINDS, 0))[error.kind] += 1
    return counts


@dataclass(frozen=True)
class ImageReview:
    """One evaluated image: its errors, and what is drawn over it."""

    path: Path
    source: str
    errors: list[ErrorBox]
    found: Detections  # the model's boxes at the threshold
    truth: tuple[FloatArray, npt.NDArray[np.int64]]  # labelled boxes (pixels) and class ids


def review_images(run: FolderRun, report: EvalReport) -> list[ImageReview]:
    """Every evaluated image of ``run`` with its errors at ``report``'s threshold and matching IoU. Pure."""
    reviews: list[ImageReview] = []
    for path, found, (gt_xyxy, gt_class) in zip(run.paths, run.predictions, run.truths, strict=True):
        errors = image_errors(found, gt_xyxy, gt_class, threshold=report.threshold, iou=report.iou)
        reviews.append(
            ImageReview(path, image_source(path), errors, scored(found, report.threshold), (gt_xyxy, gt_class))
        )
    return reviews
