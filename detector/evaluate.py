"""Evaluate any :class:`~detector.detections.Detector` on a folder of YOLO-labelled images, with our own metrics.

Why our own code rather than ultralytics' validator: the same numbers must be computable for every backend
(ONNX Runtime, torch, the weights-free colour rules) and for any labelled folder, whatever its class ids, and they
must be the numbers that matter for alerting, not only mAP:

* AP50 per class: IoU ≥ 0.5, greedy matching in order of decreasing confidence (each prediction takes the
  still-unmatched ground-truth box of its class with the highest IoU), all-point interpolation of the precision
  envelope (PASCAL VOC 2010+; ultralytics reports a 101-point approximation, so its numbers differ slightly).
  ``iou`` changes the matching IoU of every box metric (the report keeps its field names and records ``iou``):
  a smoke plume has no edge, and one labeller's single box is another's three, so a lower IoU separates "found
  the plume, boxed it differently" from "missed it";
* precision / recall / F1 of boxes at the operating threshold;
* image-level presence precision / recall (does the image contain fire / smoke at all? — what an alert needs);
* the false-positive image rate on images without any labelled object (what makes operators mute a camera);
* milliseconds per image, decoding included.

Label ids are mapped by position through ``names`` (``Fire,default,smoke`` → id 0 fire, id 1 ignored, id 2
smoke). An image without a label file is a negative by default, as in YOLO/ultralytics datasets (sets of
negatives often ship without label files, and "false-positive image rate on images without labels" must count
them); ``missing_labels="skip"`` leaves such images out instead, for folders where a missing file means "not
labelled" (the raw FIgLib tower set has no file for frames whose smoke was not boxed). Either way the report says
how many images had none.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, groupby
from pathlib import Path
from typing import Final, Literal, TypedDict, Unpack

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from detector.cpu import usable_cores
from detector.dataset import SOURCE_SEPARATOR
from detector.detections import CLASS_NAMES, BoolArray, Detections, Detector, FloatArray, ImageArray, detect_frame
from detector.images import ImageLoadError, LoadedImage, load_image

__all__ = [
    "DEFAULT_EVAL_CONF",
    "DEFAULT_OPERATING_THRESHOLD",
    "FALSE_ALARM_AIM",
    "IMAGE_SUFFIXES",
    "IOU_THRESHOLD",
    "ClassReport",
    "EvalReport",
    "FolderOptions",
    "FolderRun",
    "GroundTruth",
    "LabelledImage",
    "MissingLabels",
    "PresenceReport",
    "ap_label",
    "assign_detections",
    "average_precision",
    "best_f1_threshold",
    "compute_report",
    "decode_workers_for",
    "decoded",
    "detect_folder",
    "detect_images",
    "detect_sequence",
    "evaluate",
    "evaluate_by_source",
    "image_files",
    "image_source",
    "match_detections",
    "name_order",
    "names_from_data_yaml",
    "parse_names",
    "precision_recall",
    "read_yolo_folder",
    "rescale",
    "resolve_yolo_folder",
]

IMAGE_SUFFIXES: Final[frozenset[str]] = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
)
#: Candidate threshold for AP: low enough that the precision–recall curve reaches the model's full recall.
DEFAULT_EVAL_CONF: Final[float] = 0.001
IOU_THRESHOLD: Final[float] = 0.5
#: ultralytics' predictor default, used when the data cannot choose a threshold.
DEFAULT_OPERATING_THRESHOLD: Final[float] = 0.25
#: The false-alarm aim: at the operating threshold at most this share of the images without fire or smoke may get
#: any detection. A threshold chosen from data (:func:`compute_report` with ``threshold=None``) never exceeds it
#: on that data: a false alarm sends a patrol across the fields for nothing.
FALSE_ALARM_AIM: Final[float] = 0.05

log = logging.getLogger(__name__)


def ap_label(iou: float) -> str:
    """What AP at matching IoU ``iou`` is called in tables: AP50 at the usual 0.5, else e.g. AP@0.3 (reports keep
    their ``ap50`` field names whatever the IoU, and record ``iou``)."""
    return "AP50" if abs(iou - IOU_THRESHOLD) < 1e-9 else f"AP@{iou:g}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassReport(_Strict):
    """Metrics of one class. ``None`` where a ratio is undefined (no ground truth, no prediction)."""

    ap50: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    gt_boxes: int
    predictions: int  # boxes at or above the operating threshold
    true_positives: int
    image_precision: float | None
    image_recall: float | None


class PresenceReport(_Strict):
    """Image-level "fire or smoke present" at the operating threshold."""

    precision: float | None
    recall: float | None


class EvalReport(_Strict):
    """Everything ``strawfire detector eval --json`` prints, also stored in the model manifest."""

    data: str
    model: str
    version: str
    backend: str
    threshold: float
    iou: float = IOU_THRESHOLD
    images: int  # image files found
    evaluated: int  # decoded and evaluated
    unlabelled: int  # images without a label file: negatives, or skipped (see missing_labels)
    # Reports stored before this field existed load as "background"; none of them had an image without a label file.
    missing_labels: MissingLabels = "background"
    negatives: int  # evaluated images without any fire/smoke box
    per_class: dict[str, ClassReport]
    map50: float | None
    presence: PresenceReport
    fp_image_rate: float | None  # share of negatives with a detection at the threshold
    ms_per_image: float | None
    errors: list[str]


#: What an image without a label file is: a negative ("background", the YOLO convention) or left out ("skip").
MissingLabels = Literal["skip", "background"]


@dataclass(frozen=True)
class GroundTruth:
    """Boxes of one image in normalised xyxy (0..1), with project class ids (0 fire, 1 smoke)."""

    xyxy: FloatArray
    class_id: npt.NDArray[np.int64]

    def to_pixels(self, size: tuple[int, int]) -> FloatArray:
        """The boxes in pixels of an image of ``size`` (width, height)."""
        scale = np.array([size[0], size[1], size[0], size[1]], np.float32)
        return (self.xyxy * scale).astype(np.float32)


@dataclass(frozen=True)
class LabelledImage:
    """An image and its ground truth; ``truth`` is None when the label file itself is broken (``error`` says why)."""

    path: Path
    truth: GroundTruth | None
    error: str | None = None
    left_out: tuple[str, ...] = ()  # label lines that could not be read (the image is evaluated without them)


def parse_names(names: str | Sequence[str]) -> tuple[int | None, ...]:
    """Map label ids to project class ids by position: ``"Fire,default,smoke"`` → (0, None, 1).

    Case-insensitive; any name other than fire/smoke means "ignore boxes of this id".
    """
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
    if not items or any(not n for n in items):
        raise ValueError(f"--names needs comma-separated class names, got {names!r}")
    lookup: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
    return tuple(lookup.get(n.lower()) for n in items)


def _lenient_line(raw: str) -> str:
    """A label line as held-out sets write it, made plain YOLO: a class id written ``0.0``, a confidence column
    after the box (``cls cx cy w h conf``), a box overshooting the image edge (clipped here; one wholly outside is
    left for the parser to refuse)."""
    parts = raw.split()
    if len(parts) == 6:  # a box and a confidence (a 3-point polygon has 7 values)
        parts = parts[:5]
    if parts and re.fullmatch(r"\d+\.0*", parts[0]):
        parts[0] = parts[0].split(".")[0]
    if len(parts) == 5:
        try:
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            return raw
        if not all(math.isfinite(v) for v in (cx, cy, w, h)):  # nan/inf would clip to a whole-width box
            return raw
        x0, y0, x1, y1 = max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(1.0, cx + w / 2), min(1.0, cy + h / 2)
        if x1 > x0 and y1 > y0 and (x0, y0, x1, y1) != (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2):
            parts[1:] = [f"{(x0 + x1) / 2:.6f}", f"{(y0 + y1) / 2:.6f}", f"{x1 - x0:.6f}", f"{y1 - y0:.6f}"]
    return " ".join(parts)


def _parse_labels(text: str, ids: Sequence[int | None], where: str) -> tuple[GroundTruth, list[str]]:
    """The image's boxes in project classes, and the problems of the lines left out. Lenient, by decision: an
    evaluation of someone else's labels must not drop a whole image (and every good box on it) for one odd line,
    so a line that cannot be read is left out and named. A class id ``--names`` does not cover is a ValueError:
    most likely the mapping is wrong, and the image must not count as a negative."""
    from detector.dataset import DatasetError, parse_label_text

    boxes: list[tuple[float, float, float, float]] = []
    classes: list[int] = []
    problems: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.split():
            continue
        try:
            [box] = parse_label_text(_lenient_line(raw), where=f"{where}:{lineno}")
        except DatasetError as exc:
            problems.append(str(exc).replace(f"{where}:{lineno}:1:", f"{where}:{lineno}:"))
            continue
        if not 0 <= box.cls < len(ids):  # most likely a --names mistake: the image is not evaluated, and named
            raise ValueError(f"{where}:{lineno}: class id {box.cls} is not covered by --names ({len(ids)} names)")
        target = ids[box.cls]
        if target is None:
            continue
        boxes.append((box.cx - box.w / 2, box.cy - box.h / 2, box.cx + box.w / 2, box.cy + box.h / 2))
        classes.append(target)
    return GroundTruth(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)), problems


def name_order(path: Path) -> tuple[tuple[int, int, str], ...]:
    """Sort key of paths that reads their numbers as numbers: ``frame_2.png`` before ``frame_10.png``.

    Why: ``ffmpeg -i clip.mp4 frame_%d.png`` writes unpadded numbers, which text order runs 0, 1, 10…19, 2, 20…,
    scrambling a sequence's frames (a fire that seemed to end, every frame index wrong). Zero-padded names sort
    the same either way, so "sorted by name" keeps its meaning; the whole path breaks ties (``a01`` and ``a1``).
    The whole path, not the name alone: the frames of ``images/cam1`` stay together, before those of
    ``images/cam2``, rather than interleaved by file name."""
    text = path.as_posix()
    # Numbers before text, as digits come before letters in text order (``100MEDIA`` before ``dir``). isdecimal,
    # the characters \d matches: a superscript "²" is a digit to isdigit but no number to int().
    key = [(0, int(part), "") if part.isdecimal() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]
    return (*key, (1, 0, text))


#: Subfolder names that are a dataset's splits, never evaluated together unless asked (``--split``).
SPLIT_NAMES: Final[frozenset[str]] = frozenset({"train", "val", "valid", "validation", "test", "testing"})


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, any case), sorted by name (:func:`name_order`). Hidden
    files are not images: ``._name.jpg`` is the metadata macOS leaves beside each file it copies to a shared
    drive, and counting it would shift every frame index of a sequence."""
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
        ),
        key=name_order,
    )


def _folder_tree(root: Path, leave_out: Callable[[Path], bool] = lambda _: False, *, warn: bool = True) -> list[Path]:
    """``root`` and its subfolders at any depth, each parent before its subfolders (in :func:`name_order`),
    without those ``leave_out`` names (nor their subfolders).

    A link to a folder is followed, as ultralytics follows it (a camera's images linked into a held-out set from
    an archive), and read under the link's name, so its labels are looked for under the same name in ``labels/``.
    Each folder is read once: a link to a folder of ``root`` itself (read under its own name), to a folder read
    already through another link, or to a folder that holds ``root`` (``cam1/up -> ..``: a loop, which would count
    every image again on each pass, and never end with two such links) is left out, and named in a warning. A link
    leading outside ``root`` is named too, as the evaluation then reads images kept elsewhere.
    ``warn=False``: the same folders, said by nobody (a first look, the warnings coming with the reading)."""
    root_real = root.resolve()
    read: set[Path] = set()  # the real paths of the folders read
    folders: list[Path] = []

    def visit(folder: Path, real: Path) -> None:
        try:
            subfolders = sorted((d for d in folder.iterdir() if d.is_dir() and not leave_out(d)), key=name_order)
        except OSError as exc:  # an unreadable subfolder (permissions, a link gone stale meanwhile): left out, said
            if folder == root:
                raise
            if warn:
                log.warning("%s: not read (%s)", folder, exc)
            return
        read.add(real)
        folders.append(folder)
        for sub in subfolders:
            sub_real = sub.resolve()
            linked = sub.is_symlink()
            # A link into the set is read under the folder's own name; one to a folder holding the set, never.
            into_the_set = linked and (sub_real.is_relative_to(root_real) or root_real.is_relative_to(sub_real))
            if sub_real in read or into_the_set:
                if warn and linked:
                    log.warning(
                        "%s: a link to %s, already read (a link loop, or a second link to one folder): left out",
                        sub,
                        sub_real,
                    )
                elif warn:
                    log.warning("%s: the folder %s, already read through a link: left out", sub, sub_real)
                continue
            if warn and linked:
                log.warning("%s: a link to %s, outside %s: read too", sub, sub_real, root)
            visit(sub, sub_real)

    visit(root, root_real)
    return folders


def _image_tree(images_dir: Path, *, warn: bool = True) -> tuple[list[Path], list[str]]:
    """The images of ``images_dir`` and of its subfolders at any depth (a held-out set grouped by camera or
    scene: ``images/cam1``, ``images/cam2``, as ultralytics reads it; linked folders as :func:`_folder_tree` says),
    and the subfolders named like splits, which are left out: evaluating ``train`` with ``val`` would mix what a
    model learned from with what it did not."""

    def leave_out(folder: Path) -> bool:
        return folder.name.startswith(".") or folder.name.lower() in SPLIT_NAMES

    splits = sorted(
        (d.name for d in images_dir.iterdir() if d.is_dir() and not d.name.startswith(".") and leave_out(d)),
        key=lambda name: name_order(Path(name)),
    )
    folders = _folder_tree(images_dir, leave_out, warn=warn)
    return [path for folder in folders for path in image_files(folder)], splits


def _key_order(key: str) -> tuple[tuple[int, int, str], ...]:
    return name_order(Path(key))


def _label_key(path: Path, root: Path) -> str:
    """An image's or label file's place under its root, without suffix: ``cam1/IMG_1`` (the stem at the top)."""
    return path.relative_to(root).with_suffix("").as_posix()


def _label_files(labels_dir: Path) -> dict[str, Path]:
    """The label file of each image place (:func:`_label_key`) under ``labels_dir``: ``STEM.txt``, else
    ``STEM.TXT`` (or any case of the suffix, as Windows labelling tools may write it): an image whose boxes sit
    in ``IMG_1.TXT`` is not a negative. Subfolders mirror those of ``images/``."""
    exact: dict[str, Path] = {}
    other: dict[str, Path] = {}
    # Not rglob: it does not follow a linked folder, whose images are read (:func:`_folder_tree`).
    for path in sorted(path for folder in _folder_tree(labels_dir) for path in folder.iterdir()):
        if path.suffix.lower() == ".txt" and path.is_file() and not path.name.startswith("."):
            (exact if path.suffix == ".txt" else other).setdefault(_label_key(path, labels_dir), path)
    return other | exact


def names_from_data_yaml(data_dir: Path) -> tuple[Path, list[str]] | None:
    """The class names of the ``data.yaml`` (or ``dataset.yaml``) an ultralytics or Roboflow export keeps beside
    its splits, in ``data_dir`` or its parent (``DATA_DIR`` given as the export's ``valid`` folder): ``names`` as
    a list, or as a mapping of id to name. ``None`` when there is none, or it has no readable ``names``.

    Why: such a set's label ids are its own (``Fire, default, smoke``); evaluated with the project's
    ``fire, smoke`` every smoke box (id 2) fell outside the names and every image was left out."""
    import yaml

    for folder in (data_dir, data_dir.parent):
        for name in ("data.yaml", "dataset.yaml"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                content = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                log.warning("%s: not read (%s): give --names", path, exc)
                return None
            names = content.get("names") if isinstance(content, dict) else None
            if isinstance(names, dict) and all(isinstance(k, int) for k in names):
                names = [str(names.get(i, "")) for i in range(max(names) + 1)] if names else None
            if isinstance(names, list) and names and all(isinstance(n, str | int) and str(n).strip() for n in names):
                return path, [str(n).strip() for n in names]
            log.warning("%s: no list of class names: give --names", path)
            return None
    return None


def resolve_yolo_folder(data_dir: Path, split: str | None = None) -> tuple[Path, str | None]:
    """The folder and split a YOLO evaluation of ``data_dir`` reads (:func:`read_yolo_folder`): ``data_dir`` and
    ``split`` themselves, or the one split of an export (``DATA_DIR/test/images``: Roboflow and other exports put
    each split in its own folder; ``DATA_DIR/images/test``: a held-out set exported as one split). Several splits,
    or the images folder given itself, are refused saying what to give instead."""
    images_dir = data_dir / "images" / split if split else data_dir / "images"
    if not images_dir.is_dir() and split is None and data_dir.is_dir():
        exported = sorted(d.name for d in data_dir.iterdir() if not d.name.startswith(".") and (d / "images").is_dir())
        if len(exported) == 1:
            log.warning("%s holds one split folder, %s: evaluating it", data_dir, exported[0])
            return resolve_yolo_folder(data_dir / exported[0])
        if exported:
            raise ValueError(
                f"{data_dir} holds split folders ({', '.join(exported)}), each with images/ and labels/: "
                f"give one of them as DATA_DIR (e.g. {data_dir / exported[0]})"
            )
        if data_dir.name.lower() == "images" and (data_dir.parent / "labels").is_dir():
            raise FileNotFoundError(
                f"{data_dir} is the images folder itself: give its parent, {data_dir.parent}, as DATA_DIR"
            )
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: no images folder (expected DATA_DIR/images and DATA_DIR/labels)")
    if split is None:
        paths, splits = _image_tree(images_dir, warn=False)  # said when read (read_yolo_folder)
        subfolders = [d for d in images_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if not paths and len(subfolders) == 1:
            # A held-out set is often exported as images/test + labels/test: one split is the set itself.
            log.warning("%s holds one split folder, %s: evaluating it", images_dir, subfolders[0].name)
            return data_dir, subfolders[0].name
        if not paths and splits:
            raise ValueError(f"{images_dir} holds split folders ({', '.join(splits)}), not images: pass --split NAME")
    return data_dir, split


def read_yolo_folder(
    data_dir: Path,
    names: str | Sequence[str] | None = None,
    *,
    split: str | None = None,
    missing_labels: MissingLabels = "background",
) -> tuple[list[LabelledImage], list[Path]]:
    """List ``data_dir/images[/split]`` with ground truth from ``data_dir/labels[/split]/<stem>.txt``
    (:func:`resolve_yolo_folder` says which folder that is).

    Images in subfolders of ``images/`` are evaluated too, their labels in the same subfolders of ``labels/``,
    except folders named like splits (:data:`SPLIT_NAMES`). ``names`` maps label ids (:func:`parse_names`);
    ``None``: those of the set's ``data.yaml`` (:func:`names_from_data_yaml`), else the project's classes.

    Returns the images to evaluate (sorted by name) and those without a label file: negatives among the images to
    evaluate when ``missing_labels`` is "background", left out when it is "skip". With "skip" and no labels folder
    at all there is nothing to evaluate: FileNotFoundError.
    """
    data_dir, split = resolve_yolo_folder(data_dir, split)
    images_dir = data_dir / "images" / split if split else data_dir / "images"
    labels_dir = data_dir / "labels" / split if split else data_dir / "labels"
    if names is None:
        found = names_from_data_yaml(data_dir)
        names = found[1] if found else CLASS_NAMES
    ids = parse_names(names)
    paths, splits = _image_tree(images_dir)
    if not paths:
        log.warning("%s: no images to evaluate", images_dir)
    if paths and splits:
        log.warning("%s: split folders left out (pass --split NAME): %s", images_dir, ", ".join(splits))
    nested = sorted({path.parent.relative_to(images_dir).as_posix() for path in paths} - {"."})
    if nested:
        shown = ", ".join(nested[:5]) + (f" and {len(nested) - 5} more" if len(nested) > 5 else "")
        log.warning("%s: evaluating the images of its subfolders too: %s", images_dir, shown)
    ignored = sorted(
        p.name
        for p in images_dir.iterdir()
        if not p.name.startswith(".") and p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES
    )
    if paths and ignored:
        shown = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
        log.warning("%s: %d files not evaluated (not images): %s", images_dir, len(ignored), shown)
    if paths and not labels_dir.is_dir():
        if missing_labels == "skip":
            raise FileNotFoundError(f"{labels_dir}: no labels folder, and images without labels are to be skipped")
        log.warning("%s: no labels folder: every image is a negative", labels_dir)
    out: list[LabelledImage] = []
    unlabelled: list[Path] = []
    skipped_lines: list[str] = []
    labels = _label_files(labels_dir) if paths and labels_dir.is_dir() else {}
    orphans = sorted(labels.keys() - {_label_key(path, images_dir) for path in paths}, key=_key_order)
    if orphans:
        # A label file without its image: most often the image has another name (renamed, or a .HEIC converted),
        # and its boxes are in no evaluation.
        more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
        shown = ", ".join(f"{k}.txt" for k in orphans[:5]) + more
        log.warning("%s: %d label file(s) without an image, not evaluated: %s", labels_dir, len(orphans), shown)
    for path in paths:
        label = labels.get(_label_key(path, images_dir))
        if label is None:
            unlabelled.append(path)
            if missing_labels == "skip":
                continue
            out.append(LabelledImage(path, GroundTruth(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))))
            continue
        try:
            # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the first line
            text = label.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            out.append(LabelledImage(path, None, f"{label}: {exc}"))
            continue
        try:
            truth, problems = _parse_labels(text, ids, str(label))
        except ValueError as exc:  # the message names the file and line already
            out.append(LabelledImage(path, None, str(exc)))
            continue
        if problems and not len(truth.xyxy):
            # Nothing of its label file could be read: not known to be free of fire, so not a negative (counted as
            # one, a fire image whose boxes were written in pixels would be a false alarm), and not evaluated.
            shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
            out.append(LabelledImage(path, None, f"{label}: no fire or smoke box read, image not evaluated: {shown}"))
            continue
        out.append(LabelledImage(path, truth, left_out=tuple(problems)))
        skipped_lines.extend(problems)
    if skipped_lines:
        more = f" (and {len(skipped_lines) - 3} more)" if len(skipped_lines) > 3 else ""
        log.warning(
            "%d label line(s) left out, their images kept: %s%s", len(skipped_lines), "; ".join(skipped_lines[:3]), more
        )
    return out, unlabelled


# ------------------------------------------------------------------------------------------------------------
# Pure metrics
# ------------------------------------------------------------------------------------------------------------


def assign_detections(
    pred_xyxy: FloatArray, pred_conf: FloatArray, gt_xyxy: FloatArray, iou_threshold: float = IOU_THRESHOLD
) -> npt.NDArray[np.int64]:
    """The ground-truth box each prediction of one class in one image matched (its index), or -1 for a false
    positive (predictions in any order).

    Predictions are taken by decreasing confidence (ties: original order); each takes the unmatched ground-truth
    box with the highest IoU, if that IoU ≥ ``iou_threshold``; otherwise it is a false positive.
    """
    from detector.yolo import box_iou

    matched = np.full(len(pred_conf), -1, np.int64)
    if not len(pred_conf) or not len(gt_xyxy):
        return matched
    ious = box_iou(pred_xyxy, gt_xyxy)
    taken = np.zeros(len(gt_xyxy), bool)
    for i in np.argsort(-pred_conf, kind="stable"):
        candidates = np.where(taken, -1.0, ious[i])
        best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            taken[best] = True
            matched[i] = best
    return matched


def match_detections(
    pred_xyxy: FloatArray, pred_conf: FloatArray, gt_xyxy: FloatArray, iou_threshold: float = IOU_THRESHOLD
) -> BoolArray:
    """True-positive flag of each prediction of one class in one image (:func:`assign_detections`)."""
    flags: BoolArray = assign_detections(pred_xyxy, pred_conf, gt_xyxy, iou_threshold) >= 0
    return flags


def precision_recall(
    tp: BoolArray, conf: FloatArray, n_gt: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], FloatArray]:
    """The precision-recall curve of one class: (recall, precision, confidence) at each distinct confidence, from
    the most confident down (empty without predictions). ``tp``/``conf``: flags and confidences of all its
    predictions over the dataset; ``n_gt`` > 0 labelled boxes.

    Predictions of equal confidence are taken together, since no threshold separates them. Ranking ties by
    position instead (as ultralytics and pycocotools do) makes AP depend on the order of the image files: an int8
    model gives many equal confidences, and on 44 aerial images reversing the file order moved smoke AP50 by 0.008,
    more than the differences models are chosen by.
    """
    if n_gt <= 0:
        raise ValueError("a precision-recall curve needs at least one labelled box")
    if not len(conf):  # nothing predicted: no point on the curve
        return np.zeros(0), np.zeros(0), np.zeros(0, np.float32)
    order = np.argsort(-conf, kind="stable")
    hits = tp[order].astype(np.float64)
    ranked = conf[order]
    last_of_tie = np.append(ranked[1:] != ranked[:-1], True)  # the curve's points: the end of each tie group
    cum_tp = np.cumsum(hits)[last_of_tie]
    cum_fp = np.cumsum(1.0 - hits)[last_of_tie]
    return cum_tp / n_gt, cum_tp / (cum_tp + cum_fp), ranked[last_of_tie].astype(np.float32)


def average_precision(tp: BoolArray, conf: FloatArray, n_gt: int) -> float | None:
    """AP with all-point interpolation: the area under the monotone precision envelope over recall
    (:func:`precision_recall`'s curve).

    ``tp``/``conf`` are the flags and confidences of all predictions of one class over the dataset. ``None`` when
    there is no ground truth (AP is undefined, whatever the false positives).
    """
    if n_gt == 0:
        return None
    if not len(tp):
        return 0.0
    recall, precision, _ = precision_recall(tp, conf, n_gt)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changes = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if recall == 0.0:  # boxes to find and none found: F1 is 0 whether or not anything was predicted
        return 0.0
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def best_f1_threshold(
    flags: Sequence[tuple[BoolArray, FloatArray, int]],
    grid: Iterable[float] = np.arange(0.01, 0.951, 0.01),
    *,
    fallback: float = DEFAULT_OPERATING_THRESHOLD,
    negative_scores: FloatArray | None = None,
    max_fp_rate: float | None = None,
    min_threshold: float = 0.0,
) -> float:
    """The confidence threshold maximising the mean box F1 over the classes that have ground truth.

    ``flags`` holds, per class, (TP flags, confidences, ground-truth count) over the dataset. Ties go to the
    higher threshold (fewer alarms for the same F1). When no threshold gives any true positive (an untrained
    model), F1 cannot choose and ``fallback`` is returned.

    With ``negative_scores`` (each image without fire or smoke: its highest detection confidence, 0 without any)
    and ``max_fp_rate``, only thresholds that flag at most that share of those images are considered (when none
    does, the highest of the grid is returned). ``min_threshold``: none below it. ``fallback`` is raised to the
    lowest threshold allowed by both.
    """
    candidates = [round(float(t), 4) for t in grid if t >= min_threshold - 1e-9]
    fallback = max(fallback, min_threshold)
    if negative_scores is not None and max_fp_rate is not None and len(negative_scores):
        capped = [t for t in candidates if float(np.mean(negative_scores >= t)) <= max_fp_rate + 1e-12]
        if not capped:
            return candidates[-1] if candidates else fallback
        fallback = max(fallback, capped[0])
        candidates = capped
    best, best_score = fallback, 0.0
    for threshold in candidates:
        scores = []
        for tp, conf, n_gt in flags:
            if n_gt == 0:
                continue
            kept = conf >= threshold
            n_tp, n_pred = int(tp[kept].sum()), int(kept.sum())
            scores.append(_f1(_ratio(n_tp, n_pred), n_tp / n_gt) or 0.0)
        score = float(np.mean(scores)) if scores else 0.0
        if score > 0.0 and score >= best_score - 1e-12:
            best, best_score = threshold, score
    return best


@dataclass(frozen=True)
class _Collected:
    """Per-image predictions and ground truth in pixels, ready for the metrics."""

    predictions: list[Detections]
    truths: list[tuple[FloatArray, npt.NDArray[np.int64]]]


def _class_flags(data: _Collected, cls: int, iou: float) -> tuple[BoolArray, FloatArray, int, list[bool]]:
    """TP flags and confidences of all predictions of ``cls``, GT count, and per-image presence of GT."""
    flags: list[BoolArray] = []
    confs: list[FloatArray] = []
    n_gt = 0
    present: list[bool] = []
    for det, (gt_xyxy, gt_cls) in zip(data.predictions, data.truths, strict=True):
        keep = det.class_id == cls
        gt = gt_xyxy[gt_cls == cls]
        n_gt += len(gt)
        present.append(bool(len(gt)))
        flags.append(match_detections(det.xyxy[keep], det.confidence[keep], gt, iou))
        confs.append(det.confidence[keep])
    tp = np.concatenate(flags) if flags else np.zeros(0, bool)
    conf = np.concatenate(confs).astype(np.float32) if confs else np.zeros(0, np.float32)
    return tp, conf, n_gt, present


def compute_report(
    predictions: Sequence[Detections],
    truths: Sequence[tuple[FloatArray, npt.NDArray[np.int64]]],
    *,
    threshold: float | None,
    data: str,
    backend: str,
    images: int | None = None,
    unlabelled: int = 0,
    missing_labels: MissingLabels = "background",
    errors: Sequence[str] = (),
    ms_per_image: float | None = None,
    max_fp_rate: float | None = FALSE_ALARM_AIM,
    min_threshold: float = 0.0,
    iou: float = IOU_THRESHOLD,
    model: tuple[str, str] | None = None,
) -> EvalReport:
    """All metrics from per-image predictions and pixel ground truth (xyxy, class id). Pure.

    ``model``: the (name, version) to report; None takes them from the predictions (empty when there are none).

    ``threshold`` None picks the operating threshold that maximises the mean F1 (:func:`best_f1_threshold`) among
    those, at or above ``min_threshold``, that flag at most ``max_fp_rate`` of the images without fire or smoke.
    """
    collected = _Collected(list(predictions), list(truths))
    per_class_flags = [_class_flags(collected, cls, iou) for cls in range(len(CLASS_NAMES))]
    if threshold is None:
        negative_scores = np.array(
            [
                float(d.confidence.max(initial=0.0))
                for d, t in zip(collected.predictions, collected.truths, strict=True)
                if not len(t[0])
            ],
            np.float32,
        )
        threshold = best_f1_threshold(
            [(tp, conf, n) for tp, conf, n, _ in per_class_flags],
            negative_scores=negative_scores,
            max_fp_rate=max_fp_rate,
            min_threshold=min_threshold,
        )
    per_class: dict[str, ClassReport] = {}
    predicted_any = np.zeros(len(collected.predictions), bool)
    for cls, (tp, conf, n_gt, present) in enumerate(per_class_flags):
        kept = conf >= threshold
        n_tp, n_pred = int(tp[kept].sum()), int(kept.sum())
        precision, recall = _ratio(n_tp, n_pred), _ratio(n_tp, n_gt)
        predicted = np.array(
            [bool(((d.class_id == cls) & (d.confidence >= threshold)).any()) for d in collected.predictions], bool
        )
        predicted_any |= predicted
        truth = np.array(present, bool)
        per_class[CLASS_NAMES[cls]] = ClassReport(
            ap50=average_precision(tp, conf, n_gt),
            precision=precision,
            recall=recall,
            f1=_f1(precision, recall),
            gt_boxes=n_gt,
            predictions=n_pred,
            true_positives=n_tp,
            image_precision=_ratio(int((predicted & truth).sum()), int(predicted.sum())),
            image_recall=_ratio(int((predicted & truth).sum()), int(truth.sum())),
        )
    positive = np.array([bool(len(t[0])) for t in collected.truths], bool)
    aps = [r.ap50 for r in per_class.values() if r.ap50 is not None]
    if model is None:
        first = collected.predictions[0] if collected.predictions else None
        model = (first.model, first.version) if first else ("", "")
    name, version = model
    return EvalReport(
        data=data,
        model=name,
        version=version,
        backend=backend,
        threshold=threshold,
        iou=iou,
        images=len(collected.predictions) + len(errors) if images is None else images,
        evaluated=len(collected.predictions),
        unlabelled=unlabelled,
        missing_labels=missing_labels,
        negatives=int((~positive).sum()),
        per_class=per_class,
        map50=float(np.mean(aps)) if aps else None,
        presence=PresenceReport(
            precision=_ratio(int((predicted_any & positive).sum()), int(predicted_any.sum())),
            recall=_ratio(int((predicted_any & positive).sum()), int(positive.sum())),
        ),
        fp_image_rate=_ratio(int((predicted_any & ~positive).sum()), int((~positive).sum())),
        ms_per_image=ms_per_image,
        errors=list(errors),
    )


# ------------------------------------------------------------------------------------------------------------
# Running a detector over files
# ------------------------------------------------------------------------------------------------------------


def rescale(detections: Detections, image: LoadedImage) -> Detections:
    """Map boxes found on a (possibly downscaled) decoded image to original-image pixels."""
    sx, sy = image.scale
    if image.original_size == detections.image_size and sx == sy == 1.0:
        return detections
    xyxy = detections.xyxy * np.array([sx, sy, sx, sy], np.float32)
    return Detections(
        image.original_size,
        detections.model,
        detections.version,
        detections.classes,
        xyxy.astype(np.float32),
        detections.confidence,
        detections.class_id,
    )


def detect_images(
    detector: Detector,
    paths: Sequence[Path],
    *,
    batch_size: int = 8,
    conf: float | None = None,
    decode_workers: int = 0,
) -> Iterator[tuple[Path, Detections | ImageLoadError]]:
    """Detect in image files in batches; yield each path with its detections or the reason it could not be read.

    One bad file never stops the others: it is reported as soon as it is read, and its batch goes on without it.
    With ``decode_workers`` > 0, files are decoded ahead of the network on that many threads, at most two batches
    ahead, so that decoding overlaps detection (Pillow releases the GIL while it decodes); the default decodes in
    the caller's thread. Ahead is faster only when the detector leaves a core idle (fewer threads than cores, or a
    GPU): on this 2-core machine (``bench/bench_detector.py --end-to-end``, 32 validation images, ms/image in line
    → ahead on one thread) a one-thread detector went 17.1 → 15.2, but with two threads, where ONNX Runtime's
    threads keep both cores busy, batch 8 went 10.8 → 10.5 and batch 1 11.8 → 12.5. :func:`decode_workers_for`
    chooses.
    """
    pending: list[tuple[Path, LoadedImage]] = []

    def flush() -> Iterator[tuple[Path, Detections | ImageLoadError]]:
        found = detector.detect([image.pixels for _, image in pending], conf=conf)
        for (path, image), det in zip(pending, found, strict=True):
            yield path, rescale(det, image)
        pending.clear()

    for path, loaded in decoded(paths, workers=decode_workers, ahead=2 * batch_size):
        if isinstance(loaded, ImageLoadError):
            yield path, loaded
            continue
        pending.append((path, loaded))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()


def detect_sequence(
    detector: Detector, paths: Sequence[Path], *, conf: float | None = None
) -> Iterator[tuple[Path, Detections | ImageLoadError]]:
    """Detect in the frames of one camera position, in the order given, one at a time; a
    :class:`~detector.detections.MotionDetector` (the weights-free rules, whose smoke rule needs motion) gets
    each frame's previous one when that was read (:func:`~detector.detections.detect_frame`). Yields each path
    with its detections or its :class:`ImageLoadError`."""
    previous: ImageArray | None = None
    for path, loaded in decoded(paths, workers=0, ahead=0):
        if isinstance(loaded, ImageLoadError):
            previous = None
            yield path, loaded
            continue
        found = detect_frame(detector, loaded.pixels, previous, conf=conf)
        previous = loaded.pixels
        yield path, rescale(found, loaded)


def decoded(paths: Iterable[Path], *, workers: int, ahead: int) -> Iterator[tuple[Path, LoadedImage | ImageLoadError]]:
    """Each path with its decoded image or its :class:`ImageLoadError`, in order; with ``workers`` > 0 decoded on
    that many threads, at most ``ahead`` files beyond the one the caller is using (memory stays bounded whatever
    the folder's size). Other exceptions propagate, from the file that raised them."""
    if workers < 1:
        for path in paths:
            yield path, _load_or_error(path)
        return
    queue: deque[tuple[Path, Future[LoadedImage | ImageLoadError]]] = deque()
    remaining = iter(paths)
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        try:
            for path in remaining:
                queue.append((path, pool.submit(_load_or_error, path)))
                if len(queue) > ahead:
                    done_path, future = queue.popleft()
                    yield done_path, future.result()
            while queue:
                done_path, future = queue.popleft()
                yield done_path, future.result()
        finally:  # the caller stopped early or a decode raised: drop what is still queued
            for _, future in queue:
                future.cancel()


def decode_workers_for(backend: str, threads: int | None, *, gpu: bool) -> int:
    """Threads to decode files ahead of a detector on ``backend`` (``gpu``: its network runs on a GPU) with
    ``threads`` CPU threads (None or 0: every core): one when that leaves a core idle for it, else none (see
    :func:`detect_images` for the measurements behind this)."""
    if backend == "rules":  # numpy/OpenCV on every core
        return 0
    if gpu or (threads and threads < usable_cores()):
        return 1
    return 0


def _load_or_error(path: Path) -> LoadedImage | ImageLoadError:
    try:
        return load_image(path)
    except ImageLoadError as exc:
        return exc


class FolderOptions(TypedDict, total=False):
    """How :func:`detect_folder` reads and runs a folder (its defaults apply to what is left out), for the functions
    that pass them on."""

    names: str | Sequence[str] | None
    split: str | None
    missing_labels: MissingLabels
    batch_size: int
    conf: float
    decode_workers: int
    sequence: bool
    on_image: Callable[[int, int], None] | None


def evaluate(
    detector: Detector,
    data_dir: Path,
    *,
    threshold: float | None = None,
    choose_threshold: bool = False,
    min_threshold: float = 0.0,
    iou: float = IOU_THRESHOLD,
    **folder: Unpack[FolderOptions],
) -> EvalReport:
    """Run ``detector`` over a YOLO folder (read as ``folder`` says, see :func:`detect_folder`) and compute the
    :class:`EvalReport`.

    The operating threshold is ``threshold``, else the detector's own; ``choose_threshold`` instead picks the one
    with the best mean F1 on this data, at or above ``min_threshold``, that keeps within :data:`FALSE_ALARM_AIM`
    on its negative images (how an export sets a new model's threshold). Boxes match at ``iou`` (module doc).
    """
    run = detect_folder(detector, data_dir, **folder)
    return run.report(_operating(detector, threshold, choose_threshold), min_threshold=min_threshold, iou=iou)


def evaluate_by_source(
    detector: Detector,
    data_dir: Path,
    *,
    threshold: float | None = None,
    choose_threshold: bool = False,
    min_threshold: float = 0.0,
    iou: float = IOU_THRESHOLD,
    **folder: Unpack[FolderOptions],
) -> tuple[EvalReport, dict[str, EvalReport]]:
    """:func:`evaluate`, plus one report per source set (:func:`image_source`), all from one detection pass
    (:meth:`FolderRun.by_source`)."""
    run = detect_folder(detector, data_dir, **folder)
    overall = run.report(_operating(detector, threshold, choose_threshold), min_threshold=min_threshold, iou=iou)
    return overall, run.by_source(overall)


#: The group of images whose names carry no source prefix.
OTHER_SOURCE: Final[str] = "(other)"


def image_source(path: Path) -> str:
    """The source set of an image of a built dataset: its name's prefix before ``__`` (else ``(other)``)."""
    source, separator, _ = path.name.partition(SOURCE_SEPARATOR)
    return source if separator and source else OTHER_SOURCE


@dataclass
class FolderRun:
    """One detection pass over a labelled folder (:func:`detect_folder`): reports at any threshold come from it
    without running the detector again (an export compares thresholds and variants this way)."""

    data: str
    backend: str
    images: int  # image files found
    unlabelled: list[Path]  # of which without a label file (evaluated as negatives, or skipped: missing_labels)
    missing_labels: MissingLabels
    errors: list[str]
    paths: list[Path]
    predictions: list[Detections]
    truths: list[tuple[FloatArray, npt.NDArray[np.int64]]]
    elapsed: float
    model: tuple[str, str] | None = None  # (name, version) of the detector; None: read from the predictions

    def report(self, threshold: float | None, *, min_threshold: float = 0.0, iou: float = IOU_THRESHOLD) -> EvalReport:
        """The report at ``threshold``; None chooses it (:func:`compute_report`: best F1 within the false-alarm aim,
        at or above ``min_threshold``). Boxes match at ``iou``."""
        return compute_report(
            self.predictions,
            self.truths,
            threshold=threshold,
            data=self.data,
            backend=self.backend,
            images=self.images,
            unlabelled=len(self.unlabelled),
            missing_labels=self.missing_labels,
            errors=self.errors,
            ms_per_image=1000.0 * self.elapsed / len(self.predictions) if self.predictions else None,
            min_threshold=min_threshold,
            iou=iou,
            model=self.model,
        )

    def curve(
        self, cls: int, iou: float = IOU_THRESHOLD
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], FloatArray] | None:
        """The precision-recall curve of class ``cls`` (:func:`precision_recall`), None without labelled boxes."""
        tp, conf, n_gt, _ = _class_flags(_Collected(self.predictions, self.truths), cls, iou)
        return precision_recall(tp, conf, n_gt) if n_gt else None

    def by_source(self, overall: EvalReport) -> dict[str, EvalReport]:
        """One report per source set (:func:`image_source`), at ``overall``'s threshold.

        Why: one mean over CCTV close-ups, drone views, tower frames and look-alike negatives hides where a model
        is weak (smoke seen from a drone, say); evaluators need the split. Every source is scored at the overall
        report's operating threshold (and matching IoU), so the rows add up to the one decision the model makes.
        """
        groups: dict[str, list[int]] = {}
        for index, path in enumerate(self.paths):
            groups.setdefault(image_source(path), []).append(index)
        unlabelled = Counter(image_source(path) for path in self.unlabelled)
        skipped = self.missing_labels == "skip"
        return {
            source: compute_report(
                [self.predictions[i] for i in indices],
                [self.truths[i] for i in indices],
                threshold=overall.threshold,
                data=f"{overall.data} [{source}]",
                backend=self.backend,
                images=len(indices) + (unlabelled[source] if skipped else 0),
                unlabelled=unlabelled[source],
                missing_labels=self.missing_labels,
                ms_per_image=overall.ms_per_image,
                iou=overall.iou,
                model=(overall.model, overall.version),
            )
            for source, indices in sorted(groups.items())
        }


def detect_folder(
    detector: Detector,
    data_dir: Path,
    *,
    names: str | Sequence[str] | None = None,
    split: str | None = None,
    missing_labels: MissingLabels = "background",
    batch_size: int = 8,
    conf: float = DEFAULT_EVAL_CONF,
    decode_workers: int = 0,
    sequence: bool = False,
    on_image: Callable[[int, int], None] | None = None,
) -> FolderRun:
    """Run ``detector`` once over a YOLO folder: ``images/`` and ``labels/`` (under ``split`` when given), label
    ids mapped by ``names`` (:func:`parse_names`; ``None``: the set's ``data.yaml``, else the project's), an image
    without a label file a negative or left out as ``missing_labels`` says; ``batch_size`` images per call,
    detections down to ``conf`` kept (the reports pick their threshold later), files decoded as
    :func:`detect_images` explains for ``decode_workers``. With ``sequence`` each folder (``images/``, or each
    camera's subfolder) is one camera's frames in name order (:func:`detect_sequence`), so a detector that uses
    motion gets each image's previous frame of the same folder, labelled or not. ``on_image`` is called after each
    image evaluated or failed, with the images done and their total, for a progress bar."""
    data_dir, split = resolve_yolo_folder(data_dir, split)  # the report names the folder really read
    samples, unlabelled = read_yolo_folder(data_dir, names, split=split, missing_labels=missing_labels)
    run = FolderRun(
        data=str(data_dir / "images" / split) if split else str(data_dir),
        backend=detector.info.backend,
        images=len(samples) + (len(unlabelled) if missing_labels == "skip" else 0),
        unlabelled=unlabelled,
        missing_labels=missing_labels,
        errors=[s.error for s in samples if s.error is not None]
        + [f"{problem} (line left out, image kept)" for s in samples for problem in s.left_out],
        paths=[],
        predictions=[],
        truths=[],
        elapsed=0.0,
        model=(detector.info.name, detector.info.version),
    )
    usable = {s.path: s.truth for s in samples if s.truth is not None}
    started = time.perf_counter()
    images: Iterator[tuple[Path, Detections | ImageLoadError]]
    if sequence:
        # Each folder is one camera's frames: a camera's first frame gets no other camera's last as its previous.
        frames = sorted({sample.path for sample in samples} | set(unlabelled), key=name_order)
        cameras = [list(group) for _, group in groupby(frames, lambda frame: frame.parent)]
        found = chain.from_iterable(detect_sequence(detector, camera, conf=conf) for camera in cameras)
        images = (item for item in found if item[0] in usable)
    else:
        images = detect_images(detector, list(usable), batch_size=batch_size, conf=conf, decode_workers=decode_workers)
    for done, (path, result) in enumerate(images, start=1):
        if on_image is not None:
            on_image(done, len(usable))
        if isinstance(result, ImageLoadError):
            run.errors.append(str(result))
            continue
        truth = usable[path]
        assert truth is not None
        run.paths.append(path)
        run.predictions.append(result)
        run.truths.append((truth.to_pixels(result.image_size), truth.class_id))
    run.elapsed = time.perf_counter() - started
    return run


def _operating(detector: Detector, threshold: float | None, choose: bool) -> float | None:
    """The threshold to report at: None to choose it from the data, else ``threshold`` or the detector's own."""
    if choose:
        return None
    return detector.info.operating_threshold if threshold is None else threshold
