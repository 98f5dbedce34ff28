"""Assemble one YOLO-format fire/smoke training set from the labelled sets in ``../shared/data``.

Why this module exists: the project's labelled images come from five sources with different class ids,
different artefacts and different ways of leaking near-duplicate frames between train and validation. Training
on their union only makes sense when

* every source's class ids are mapped *explicitly* onto the two project classes ``0 = fire`` and ``1 = smoke``
  (:data:`SOURCE_CLASS_MAPS`; an id that is not listed is a data error, never silently kept),
* frames of one video never sit on both sides of the split in an interleaved way — a random split of
  consecutive video frames would put near-identical images in train and val and make validation meaningless —
  so video-derived images are split by *frame range* (the last part of each sequence goes to val) and
  independent photos by a stable hash of their name,
* images whose objects are present but not boxed (tower frames after +15 min) are excluded rather than taught
  as background.

The output is a folder of symlinks to the original images plus rewritten label files, ``data.yaml`` for
ultralytics and ``manifest.json`` with counts, class mapping and licences; wide tower and aerial training frames
also go in as tiles (JPEG crops, :func:`tile_labels`). Nothing is downloaded, and the result is deterministic
for the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from detector.extra_sets import ExtraSet

__all__ = [
    "CLASS_IDS",
    "CLASS_NAMES",
    "DEFAULT_OUT_DIR",
    "DEFAULT_SOURCE_ROOT",
    "DEFAULT_VAL_FRACTION",
    "SOURCES",
    "SOURCE_CLASS_MAPS",
    "Box",
    "DatasetError",
    "DatasetPlan",
    "FrameKey",
    "Sample",
    "SourceInfo",
    "build_dataset",
    "frame_key",
    "parse_label_text",
    "plan_dataset",
    "remap_boxes",
    "split_sequence",
    "stable_unit_interval",
]

ClassName = Literal["fire", "smoke"]
Split = Literal["train", "val"]
SplitRule = Literal["sequence", "photo", "tower", "train"]

#: The project's two classes, in YOLO id order. Every model, metric and alert downstream relies on this order.
CLASS_NAMES: Final[tuple[ClassName, ...]] = ("fire", "smoke")
CLASS_IDS: Final[Mapping[ClassName, int]] = {"fire": 0, "smoke": 1}

#: Where the shared data lives, relative to the repository root (see ``../shared/data/README.md``).
DEFAULT_SOURCE_ROOT: Final[Path] = Path("../shared/data")
#: v2 = v1 (same split) plus training tiles of wide frames with small objects (:func:`tile_labels`).
DATASET_NAME: Final[str] = "strawfire-v2"
DEFAULT_OUT_DIR: Final[Path] = Path("var/datasets") / DATASET_NAME
DEFAULT_VAL_FRACTION: Final[float] = 0.2
#: Sequences shorter than this are too short to cut into a meaningful train/val range; they go whole to one
#: side.
DEFAULT_MIN_SEQUENCE_FRAMES: Final[int] = 5
#: Salt of the photo hash split: changing it reshuffles which independent photos are validation images (kept
#: from v1, so v1 and v2 validate on the same images).
HASH_SALT: Final[str] = "strawfire-v1"
#: Every image of a built dataset is named ``<source>__<original name>`` (evaluation groups by it).
SOURCE_SEPARATOR: Final[str] = "__"

#: Training tiles. A distant plume or field fire is a few dozen pixels of a 1280–4000 px frame and shrinks to a
#: handful at a 320–640 px network input, so tower and aerial frames are watched in tiles (detector.tiling); the
#: network must also have *learnt* on that scale. Train-split frames of these sources at least
#: TILE_MIN_WIDTH px wide that hold a small box (narrower than TILE_SMALL_BOX of the frame) — and every tower
#: frame, whose tiles without smoke teach the long-range background — also go in as the same overlapping tiles
#: that inference cuts. Validation keeps whole frames only, so its numbers stay comparable.
TILE_SOURCES: Final[Mapping[str, bool]] = {"tower_sequences": True, "fire_smoke_aerial": False}  # keep empty tiles?
TILE_GRID: Final[tuple[int, int]] = (3, 2)
TILE_OVERLAP: Final[float] = 0.15
TILE_MIN_WIDTH: Final[int] = 1000
TILE_SMALL_BOX: Final[float] = 0.08
#: A box must show at least this share of its area in a tile to be labelled there; a tile cutting a box more
#: than that is left out (half a plume labelled as background, or as a whole plume, would both teach wrongly).
TILE_MIN_VISIBLE: Final[float] = 0.6
TILE_JPEG_QUALITY: Final[int] = 95

IMAGE_SUFFIXES: Final[frozenset[str]] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

#: Source class id -> project class, per source. ``None`` drops the box (the image stays, as background if
#: nothing else remains). A source id missing from a map is an error, so a new class in a data drop cannot
#: slip through.
SOURCE_CLASS_MAPS: Final[Mapping[str, Mapping[int, ClassName | None]]] = {
    # Roboflow fire-wrpgm v8: 0 Fire, 1 default, 2 smoke. "default" boxes cover whole non-fire CCTV frames: a
    # labelling artefact, so the box is dropped and the frame kept as background.
    "fire_smoke": {0: "fire", 1: None, 2: "smoke"},
    # Roboflow try20 v19: 0 fire, 1 smoke.
    "fire_smoke_aerial": {0: "fire", 1: "smoke"},
    # cair normal_images: negatives only, every label file is empty; any box would be a data error.
    "negatives_cair": {},
    # D-Fire AoF frames, labelled in D-Fire ids (0 fire, 1 smoke): AoF00002 holds one faint smoke plume.
    "negatives_dfire_aof": {0: "fire", 1: "smoke"},
    # FIgLib / firecam boxes: smoke only, class 1.
    "tower_sequences": {1: "smoke"},
}


@dataclass(frozen=True)
class SourceInfo:
    """Provenance of one source, written to the manifest so the licence travels with the dataset."""

    source_id: str
    path: str  # relative to the source root
    licence: str
    attribution: str
    url: str
    split_rule: SplitRule
    note: str


SOURCES: Final[Mapping[str, SourceInfo]] = {
    "fire_smoke": SourceInfo(
        source_id="fire_smoke",
        path="fire_smoke",
        licence="CC BY 4.0",
        attribution='Roboflow Universe "fire-wrpgm" v8 by custom-thxhn, via github.com/Abonia1/'
        "YOLOv8-Fire-and-Smoke-Detection @ f2c67efae8ff249f2c3e1c34df0fd3a6351a1efb",
        url="https://universe.roboflow.com/custom-thxhn/fire-wrpgm/dataset/8",
        split_rule="sequence",
        note="train/ and valid/ are pooled and re-split by frame range per video: Roboflow's own split puts "
        "frames of the same CCTV clips on both sides. 'default' boxes (class 1) are dropped.",
    ),
    "fire_smoke_aerial": SourceInfo(
        source_id="fire_smoke_aerial",
        path="fire_smoke_aerial",
        licence="CC BY 4.0",
        attribution='Roboflow Universe "try20" v19 by wildfireproject-l6dvc, via github.com/chenanran1/'
        "YOLO-based-Wildfire-Smoke-Detection @ b98552443f6a30d91b707c7390501a8e458533fc",
        url="https://universe.roboflow.com/wildfireproject-l6dvc/try20/dataset/19",
        split_rule="sequence",
        note="Drone video frames split by frame range per video; single photos by name hash.",
    ),
    "negatives_cair": SourceInfo(
        source_id="negatives_cair",
        path="negatives/cair",
        licence="MIT (curator's licence; photos collected from the web: training and testing only)",
        attribution="github.com/cair/Fire-Detection-Image-Dataset (normal_images/)",
        url="https://github.com/cair/Fire-Detection-Image-Dataset",
        split_rule="photo",
        note="Background images (hard negatives: sunsets, red scenes, fog); independent photos split by name hash.",
    ),
    "negatives_dfire_aof": SourceInfo(
        source_id="negatives_dfire_aof",
        path="negatives/dfire_aof",
        licence="CC0",
        attribution="D-Fire dataset (AoF frames), via github.com/z3qi/ECE176_Final_Project @ "
        "bbb8a1a5450671045920cd2ab2848b0dc212334b",
        url="https://github.com/gaiasd/DFireDataset",
        split_rule="sequence",
        note="Consecutive captures of a few fixed cameras (near-duplicates), so split by frame range, not by "
        "hash. AoF00002 holds one faint smoke plume.",
    ),
    "tower_sequences": SourceInfo(
        source_id="tower_sequences",
        path="tower_sequences",
        licence="FIgLib images: research use, credit 'HPWREN / UC San Diego'; boxes: CC BY-NC-SA 4.0 "
        "(Open Climate Tech firecam 2019a)",
        attribution="HPWREN / UC San Diego, Fire Ignition images Library (FIgLib); boxes from Open Climate "
        "Tech firecam, via github.com/plasmapotatos/wildfire-smoke-detection @ "
        "1050f9dab3ddfa6c1f3e4beb684d8dc705fc5f56",
        url="https://www.hpwren.ucsd.edu/FIgLib/",
        split_rule="tower",
        note="Pre-ignition frames (empty labels) are negatives, +0..+15 min frames carry smoke boxes; later "
        "frames have no label file and are excluded (smoke present but not boxed). Each phase is split "
        "by time range.",
    ),
}


class DatasetError(ValueError):
    """The source data does not match its README: stop rather than train on wrong labels."""


@dataclass(frozen=True)
class Box:
    """One YOLO box: class id and normalised centre/size, as in a YOLO ``.txt`` label line."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float

    def to_line(self) -> str:
        """Format as a YOLO label line (six decimals: sub-pixel even at 4k)."""
        return f"{self.cls} {self.cx:.6f} {self.cy:.6f} {self.w:.6f} {self.h:.6f}"


@dataclass(frozen=True)
class FrameKey:
    """Sequence (video) of an image and its frame number there; ``frame`` is None for a photo."""

    sequence: str
    frame: int | None


@dataclass(frozen=True)
class Sample:
    """One image of the assembled dataset, before it is written."""

    source: str
    image: Path  # absolute path of the original image
    out_stem: str  # file stem inside the assembled dataset, unique over all sources
    boxes: tuple[Box, ...]  # already in project class ids
    group: str  # split unit: a sequence (video / tower phase) or a single photo
    frame: int | None  # position inside the sequence (frame index or seconds), None for photos
    split: Split


@dataclass
class _SourceStats:
    """Per-source counters for the manifest."""

    images: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    background: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    boxes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"train": {"fire": 0, "smoke": 0}, "val": {"fire": 0, "smoke": 0}}
    )
    dropped_boxes: int = 0
    excluded_images: int = 0


# ------------------------------------------------------------------------------------------------------------
# Pure helpers
# ------------------------------------------------------------------------------------------------------------


def parse_label_text(text: str, *, where: str = "<label>") -> list[Box]:
    """Parse a YOLO label file in the *source's* class ids.

    Accepts box lines (``cls cx cy w h``) and, because Roboflow exports sometimes mix them in, polygon lines
    (``cls x1 y1 x2 y2 ...``), which are reduced to their bounding box. Coordinates that overshoot [0, 1] by
    rounding are clipped; anything else malformed raises :class:`DatasetError` so a broken label never trains
    silently.
    """
    boxes: list[Box] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
            values = [float(p) for p in parts[1:]]
        except ValueError as exc:
            raise DatasetError(f"{where}:{lineno}: not a YOLO label line: {raw!r}") from exc
        if not all(math.isfinite(v) for v in values):  # min()/max() of a polygon would step over a nan
            raise DatasetError(f"{where}:{lineno}: degenerate box {raw!r}")
        if len(values) == 4:
            cx, cy, w, h = values
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
            cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        else:
            raise DatasetError(f"{where}:{lineno}: expected 4 box values or a polygon, got {len(values)}")
        if not all(math.isfinite(v) for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
            raise DatasetError(f"{where}:{lineno}: degenerate box {raw!r}")
        if min(cx - w / 2, cy - h / 2) < -0.01 or max(cx + w / 2, cy + h / 2) > 1.01:
            raise DatasetError(f"{where}:{lineno}: box outside the image {raw!r}")
        boxes.append(_clip_box(cls, cx, cy, w, h))
    return boxes


def _clip_box(cls: int, cx: float, cy: float, w: float, h: float) -> Box:
    """Clip a box to the unit square (ultralytics drops boxes that overshoot, we keep the visible part)."""
    if min(cx - w / 2, cy - h / 2) >= 0.0 and max(cx + w / 2, cy + h / 2) <= 1.0:
        return Box(cls, cx, cy, w, h)  # inside: keep the source values exactly
    x0, y0 = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
    x1, y1 = min(1.0, cx + w / 2), min(1.0, cy + h / 2)
    return Box(cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def tile_labels(
    boxes: Sequence[Box],
    width: int,
    height: int,
    *,
    grid: tuple[int, int] = TILE_GRID,
    overlap: float = TILE_OVERLAP,
    keep_background: bool = False,
    min_visible: float = TILE_MIN_VISIBLE,
) -> list[tuple[tuple[int, int, int, int], tuple[Box, ...]]]:
    """The training tiles of one frame: each tile's pixel rectangle and its boxes, normalised to the tile.

    A box counts in a tile when at least ``min_visible`` of its area lies inside (it is clipped to the tile); a
    tile that cuts any box more than that is skipped, and so is a tile without boxes unless
    ``keep_background``.
    """
    from detector.tiling import tile_boxes

    tiles: list[tuple[tuple[int, int, int, int], tuple[Box, ...]]] = []
    for x1, y1, x2, y2 in tile_boxes(width, height, grid[0], grid[1], overlap):
        tile_w, tile_h = x2 - x1, y2 - y1
        inside: list[Box] = []
        ambiguous = False
        for box in boxes:
            bx1, bx2 = (box.cx - box.w / 2) * width, (box.cx + box.w / 2) * width
            by1, by2 = (box.cy - box.h / 2) * height, (box.cy + box.h / 2) * height
            ix1, iy1, ix2, iy2 = max(bx1, x1), max(by1, y1), min(bx2, x2), min(by2, y2)
            visible = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
            area = (bx2 - bx1) * (by2 - by1)
            if visible <= 0.0 or area <= 0.0:
                continue
            if visible < min_visible * area:
                ambiguous = True
                break
            inside.append(
                Box(
                    box.cls,
                    ((ix1 + ix2) / 2 - x1) / tile_w,
                    ((iy1 + iy2) / 2 - y1) / tile_h,
                    (ix2 - ix1) / tile_w,
                    (iy2 - iy1) / tile_h,
                )
            )
        if ambiguous or (not inside and not keep_background):
            continue
        tiles.append(((x1, y1, x2, y2), tuple(inside)))
    return tiles


def wants_tiles(source: str, boxes: Sequence[Box], width: int) -> bool:
    """Whether a train-split frame also goes in as tiles (see :data:`TILE_SOURCES`)."""
    if source not in TILE_SOURCES or width < TILE_MIN_WIDTH:
        return False
    return TILE_SOURCES[source] or any(box.w < TILE_SMALL_BOX for box in boxes)


def remap_boxes(
    boxes: Iterable[Box], class_map: Mapping[int, ClassName | None], *, where: str = "<label>"
) -> tuple[list[Box], int]:
    """Map source class ids to project ids; return the kept boxes and how many were dropped (mapped to None).

    An id absent from ``class_map`` raises: the mapping must be explicit for every id a source uses.
    """
    kept: list[Box] = []
    dropped = 0
    for box in boxes:
        if box.cls not in class_map:
            known = dict(class_map)
            raise DatasetError(f"{where}: class id {box.cls} has no mapping for this source ({known})")
        target = class_map[box.cls]
        if target is None:
            dropped += 1
            continue
        kept.append(Box(CLASS_IDS[target], box.cx, box.cy, box.w, box.h))
    return kept, dropped


_ROBOFLOW_SUFFIX = re.compile(r"^(?P<base>.+)_(?:jpe?g|png|bmp|webp)\.rf\.[0-9a-fA-F]+$")
#: Copy markers seen in the data: ``img_52--2-`` (a "(2)" duplicate), ``bcws-carousel-2-Copie``, ``x-copy``,
#: ``x (2)``.
_COPY_MARKER = re.compile(r"(?:--\d+-|[-_ ](?:copie|copy)|\s*\(\d+\))$", re.IGNORECASE)
_TRAILING_FRAME = re.compile(r"^(?P<sequence>.*?)[-_]?(?P<frame>\d+)$")


def frame_key(stem: str) -> FrameKey:
    """Derive (sequence, frame) from an image file stem, so frames of one video can be split by range.

    Roboflow names video frames ``<video>_mp4-<frame>_jpg.rf.<hash>``, numbered captures
    ``img_<n>_jpg.rf.<hash>`` and photos ``<name>_jpg.rf.<hash>``; duplicates carry ``--2-`` or ``-Copie``.
    The Roboflow suffix and copy markers are removed (so a copy lands with its original), then a trailing
    number is taken as the frame. A name without a trailing number is a photo (``frame`` None) whose sequence
    is the cleaned name itself.
    """
    base = _copy_normalised(stem)
    if match := _TRAILING_FRAME.match(base):
        return FrameKey(match["sequence"], int(match["frame"]))
    return FrameKey(base, None)


def _copy_normalised(stem: str) -> str:
    """An image stem without its Roboflow export suffix and copy markers: a copy gets the name of its original."""
    base = stem
    if match := _ROBOFLOW_SUFFIX.match(base):
        base = match["base"]
    while (cleaned := _COPY_MARKER.sub("", base)) != base and cleaned:
        base = cleaned
    return base


def stable_unit_interval(key: str, salt: str = HASH_SALT) -> float:
    """Map a key to [0, 1) with SHA-256: stable across machines and runs, unlike ``hash()``."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_sequence(
    frames: Iterable[int],
    val_fraction: float,
    *,
    group: str,
    min_frames: int = DEFAULT_MIN_SEQUENCE_FRAMES,
) -> frozenset[int]:
    """Return the frame numbers of one sequence that go to validation.

    The last ``val_fraction`` of the sequence's distinct frames (at least one) go to val, so every train frame
    precedes every val frame: neighbouring near-duplicates meet only at the single cut. Sequences with fewer
    than ``min_frames`` distinct frames cannot be cut usefully and go whole to one side by a stable hash of
    ``group``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    distinct = sorted(set(frames))
    if not distinct or val_fraction == 0.0:
        return frozenset()
    if len(distinct) < min_frames:
        return frozenset(distinct) if stable_unit_interval(group) < val_fraction else frozenset()
    n_val = max(1, math.floor(len(distinct) * val_fraction + 0.5))
    return frozenset(distinct[-n_val:])


def _photo_split(group: str, val_fraction: float) -> Split:
    """Split an independent photo by hash of its (copy-normalised) name."""
    return "val" if stable_unit_interval(group) < val_fraction else "train"


# ------------------------------------------------------------------------------------------------------------
# Reading the sources
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """An image with its remapped boxes, before the split is decided."""

    source: str
    image: Path
    out_stem: str
    boxes: tuple[Box, ...]
    group: str
    frame: int | None
    dropped: int


def _images_in(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name for determinism."""
    if not folder.is_dir():
        raise DatasetError(f"missing image folder {folder}")
    # Hidden files are not images: ``._name.jpg`` is the metadata macOS leaves beside each file it copies.
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _require_readable(image: Path) -> None:
    """Refuse an image that cannot be opened: ultralytics would skip it with a warning in the training log, so the
    manifest (and the model card after it) would count an image the model never saw, and a tiled source would fail
    half-way through writing."""
    from PIL import Image

    try:
        with Image.open(image) as opened:
            opened.verify()  # reads the structure without decoding the pixels: ~0.1 ms an image
    except Exception as exc:  # PIL raises OSError, SyntaxError, struct.error, ... for a damaged file
        raise DatasetError(f"{image}: not a readable image ({exc}); replace or remove it and its label") from exc


def _read_boxes(label: Path, class_map: Mapping[int, ClassName | None]) -> tuple[list[Box], int]:
    """Read one label file and remap it with its source's ``class_map``."""
    try:
        # utf-8-sig: a byte-order mark (Windows labelling tools write one) is not part of the first line
        text = label.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{label}: unreadable label file ({exc})") from exc
    raw = parse_label_text(text, where=str(label))
    return remap_boxes(raw, class_map, where=str(label))


def _require_label(image: Path, labels: Path) -> Path:
    """Label file of an image where every image must have one.

    A missing label is an error, not "background": unboxed positives taught as negatives are exactly the
    failure the tower frames after +15 min would cause.
    """
    label = labels / f"{image.stem}.txt"
    if not label.is_file():
        raise DatasetError(f"{image}: no label file {label}")
    return label


#: Label files that are not an image's: the class list labelImg and YOLO exports write beside the labels.
_NOT_IMAGE_LABELS: Final[frozenset[str]] = frozenset({"classes.txt"})


def _refuse_orphan_labels(labels: Path, images: Iterable[Path]) -> None:
    """A label file whose image is missing (or has a suffix the dataset does not take, such as ``.tif``) would
    silently drop its boxes: refuse it, as an image without a label is refused."""
    stems = {image.stem for image in images}
    orphans = sorted(
        p for p in labels.glob("*.txt") if p.stem not in stems and p.name not in _NOT_IMAGE_LABELS and p.is_file()
    )
    if orphans:
        more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
        raise DatasetError(
            f"{orphans[0]}{more}: a label file without an image in {labels.parent / 'images'} (images are "
            f"{', '.join(sorted(IMAGE_SUFFIXES))}); add the image or remove the label"
        )


def _collect_flat(
    source: str, images: Iterable[Path], labels_of: Mapping[Path, Path], class_map: Mapping[int, ClassName | None]
) -> list[_Candidate]:
    """Candidates of a source whose images and labels sit in images/ + labels/ folders."""
    out: list[_Candidate] = []
    for image in images:
        boxes, dropped = _read_boxes(labels_of[image], class_map)
        _require_readable(image)
        key = frame_key(image.stem)
        out.append(
            _Candidate(
                source=source,
                image=image,
                out_stem=f"{source}{SOURCE_SEPARATOR}{image.stem}",
                boxes=tuple(boxes),
                group=f"{source}/{key.sequence}",
                frame=key.frame,
                dropped=dropped,
            )
        )
    return out


def _collect_images_labels(
    source: str, folders: Sequence[Path], class_map: Mapping[int, ClassName | None] | None = None
) -> list[_Candidate]:
    """Candidates from one or more ``<folder>/images`` + ``<folder>/labels`` pairs; ``class_map`` defaults to the
    built-in source's."""
    images: list[Path] = []
    labels_of: dict[Path, Path] = {}
    for folder in folders:
        found = _images_in(folder / "images")
        for image in found:
            images.append(image)
            labels_of[image] = _require_label(image, folder / "labels")
        _refuse_orphan_labels(folder / "labels", found)
    return _collect_flat(source, images, labels_of, SOURCE_CLASS_MAPS[source] if class_map is None else class_map)


_TOWER_NAME = re.compile(r"^(?P<epoch>\d+)_(?P<offset>[+-]\d+)$")


def _collect_tower(root: Path) -> tuple[list[_Candidate], int]:
    """Tower frames that have a label file; return them and how many frames were excluded for lacking one.

    File names are ``<unix epoch>_<offset seconds from ignition>``. Frames before ignition and after it are
    separate split groups ("phases"), so validation holds both tower negatives and tower smoke.
    """
    source = "tower_sequences"
    out: list[_Candidate] = []
    excluded = 0
    sequences = sorted(p for p in root.iterdir() if (p / "images").is_dir())
    if not sequences:
        raise DatasetError(f"no tower sequences under {root}")
    for seq in sequences:
        for image in _images_in(seq / "images"):
            match = _TOWER_NAME.match(image.stem)
            if match is None:
                raise DatasetError(f"{image}: tower frame name is not <epoch>_<offset>")
            label = seq / "labels" / f"{image.stem}.txt"
            if not label.is_file():
                excluded += 1  # smoke present but not boxed: neither a positive nor a negative
                continue
            boxes, dropped = _read_boxes(label, SOURCE_CLASS_MAPS[source])
            _require_readable(image)
            offset = int(match["offset"])
            phase = "pre" if offset < 0 else "post"
            out.append(
                _Candidate(
                    source=source,
                    image=image,
                    out_stem=f"{source}{SOURCE_SEPARATOR}{seq.name}__{image.stem}",
                    boxes=tuple(boxes),
                    group=f"{source}/{seq.name}/{phase}",
                    frame=offset,
                    dropped=dropped,
                )
            )
    return out, excluded


def _assign_splits(
    candidates: Sequence[_Candidate], rule: SplitRule, val_fraction: float, min_frames: int
) -> list[Sample]:
    """Decide train/val for every candidate of one source."""
    if rule == "train":  # generated frames: they teach, but must not move the validation figures models compare by
        return [_to_sample(c, "train") for c in candidates]
    if rule == "photo":
        # Independent photos: each image is its own group, whatever digits its name happens to end in; a copy
        # (``x (2)``, ``x-copy``, ``x--2-``) joins its original, so the same picture never sits on both sides.
        photos = [replace(c, group=f"{c.source}/{_copy_normalised(c.image.stem)}", frame=None) for c in candidates]
        return [_to_sample(c, _photo_split(c.group, val_fraction)) for c in photos]
    frames_of: dict[str, list[int]] = {}
    for c in candidates:
        if c.frame is not None:
            frames_of.setdefault(c.group, []).append(c.frame)
    val_frames = {
        group: split_sequence(frames, val_fraction, group=group, min_frames=min_frames)
        for group, frames in frames_of.items()
    }
    samples: list[Sample] = []
    for c in candidates:
        if c.frame is None:
            split = _photo_split(c.group, val_fraction)
        else:
            split = "val" if c.frame in val_frames[c.group] else "train"
        samples.append(_to_sample(c, split))
    return samples


def _to_sample(c: _Candidate, split: Split) -> Sample:
    return Sample(c.source, c.image, c.out_stem, c.boxes, c.group, c.frame, split)


@dataclass(frozen=True)
class DatasetPlan:
    """Everything :func:`build_dataset` will write, computed without touching the output folder."""

    samples: tuple[Sample, ...]
    dropped_boxes: Mapping[str, int]
    excluded_images: Mapping[str, int]
    extra_sets: tuple[ExtraSet, ...] = ()  # detector.extra_sets

    @property
    def sources(self) -> dict[str, tuple[SourceInfo, Mapping[int, ClassName | None]]]:
        """Every source of the plan, built-in then extra, with its provenance and class map."""
        built_in = {sid: (info, SOURCE_CLASS_MAPS[sid]) for sid, info in SOURCES.items()}
        return built_in | {extra.name: (extra.info(), extra.class_map) for extra in self.extra_sets}


def plan_dataset(
    source_root: Path = DEFAULT_SOURCE_ROOT,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    min_sequence_frames: int = DEFAULT_MIN_SEQUENCE_FRAMES,
    extra_sets: Sequence[ExtraSet] = (),
) -> DatasetPlan:
    """Read all sources (the built-in ones under ``source_root``, then ``extra_sets``), map classes and decide
    the split; pure apart from reading the folders."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = source_root.resolve()
    if not root.is_dir():
        raise DatasetError(f"source root {source_root} does not exist (expected ../shared/data)")
    per_source: dict[str, list[_Candidate]] = {
        "fire_smoke": _collect_images_labels(
            "fire_smoke", [root / "fire_smoke" / "train", root / "fire_smoke" / "valid"]
        ),
        "fire_smoke_aerial": _collect_images_labels("fire_smoke_aerial", [root / "fire_smoke_aerial"]),
        "negatives_cair": _collect_images_labels("negatives_cair", [root / "negatives" / "cair"]),
        "negatives_dfire_aof": _collect_images_labels("negatives_dfire_aof", [root / "negatives" / "dfire_aof"]),
    }
    tower, tower_excluded = _collect_tower(root / "tower_sequences")
    per_source["tower_sequences"] = tower
    rules: dict[str, SplitRule] = {sid: info.split_rule for sid, info in SOURCES.items()}
    for extra in extra_sets:
        if extra.name in per_source:
            raise DatasetError(f"extra set {extra.name!r}: the name of another source")
        per_source[extra.name] = _collect_images_labels(extra.name, [extra.path], extra.class_map)
        rules[extra.name] = extra.split

    samples: list[Sample] = []
    for source, candidates in per_source.items():
        samples += _assign_splits(candidates, rules[source], val_fraction, min_sequence_frames)
    seen: dict[str, Path] = {}
    for sample in samples:
        if (other := seen.setdefault(sample.out_stem, sample.image)) != sample.image:
            raise DatasetError(f"{other} and {sample.image} map to the same output name {sample.out_stem}")
    return DatasetPlan(
        samples=tuple(samples),
        dropped_boxes={s: sum(c.dropped for c in cs) for s, cs in per_source.items()},
        excluded_images={s: (tower_excluded if s == "tower_sequences" else 0) for s in per_source},
        extra_sets=tuple(extra_sets),
    )


# ------------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------------

MANIFEST_NAME: Final[str] = "manifest.json"


def _check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder we did not build (no manifest of ours, not empty): never wipe others."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DatasetError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
            raise DatasetError(f"{out_dir} is not empty and has no {MANIFEST_NAME}: refusing to overwrite it")


#: Name parts of the sibling folders a build writes into and swaps with the output folder (``.<name>.building-*``,
#: ``.<name>.replaced-*``); ones left by a killed build are removed by the next.
_BUILDING: Final[str] = "building-"
_REPLACED: Final[str] = "replaced-"


def _remove_leftovers(out_dir: Path) -> None:
    """Remove the staging folders of an earlier build of ``out_dir`` that was killed before it could clean up."""
    for kind in (_BUILDING, _REPLACED):
        for stale in out_dir.parent.glob(f".{out_dir.name}.{kind}*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)


def _sibling(out_dir: Path, kind: str) -> Path:
    """A fresh name for a staging folder beside ``out_dir``."""
    return out_dir.parent / f".{out_dir.name}.{kind}{os.getpid()}-{secrets.token_hex(4)}"


def _swap_in(staged: Path, out_dir: Path) -> None:
    """Put the finished ``staged`` folder in place of ``out_dir`` (an earlier build, or nothing) and delete the
    earlier build: two renames in one folder, so ``out_dir`` is never a mix of two builds."""
    if out_dir.exists():
        old = _sibling(out_dir, _REPLACED)
        out_dir.rename(old)
        staged.rename(out_dir)
        shutil.rmtree(old)
    else:
        staged.rename(out_dir)


def _data_yaml(out_dir: Path) -> str:
    """ultralytics dataset file; the absolute path keeps it valid from any working directory."""
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES))
    return (
        "# Generated by detector.dataset; do not edit (rebuild with `strawfire detector dataset build`).\n"
        f"path: {json.dumps(str(out_dir))}\n"
        "train: images/train\n"
        "val: images/val\n"
        f"nc: {len(CLASS_NAMES)}\n"
        f"names:\n{names}\n"
    )


def _manifest(plan: DatasetPlan, source_root: Path, val_fraction: float, min_frames: int) -> dict[str, object]:
    """Counts, class mapping, split rules and licences: what a model card needs to cite."""
    stats: dict[str, _SourceStats] = {s: _SourceStats() for s in plan.sources}
    for s in plan.samples:
        st = stats[s.source]
        st.images[s.split] += 1
        if not s.boxes:
            st.background[s.split] += 1
        for b in s.boxes:
            st.boxes[s.split][CLASS_NAMES[b.cls]] += 1
    for source, n in plan.dropped_boxes.items():
        stats[source].dropped_boxes = n
    for source, n in plan.excluded_images.items():
        stats[source].excluded_images = n

    sources: dict[str, object] = {}
    for sid, (info, class_map) in plan.sources.items():
        st = stats[sid]
        sources[sid] = {
            "path": info.path,
            "licence": info.licence,
            "attribution": info.attribution,
            "url": info.url,
            "split_rule": info.split_rule,
            "note": info.note,
            "extra": sid not in SOURCES,
            "class_map": {str(k): v for k, v in class_map.items()},
            "images": st.images,
            "background_images": st.background,
            "boxes": st.boxes,
            "dropped_boxes": st.dropped_boxes,
            "excluded_images": st.excluded_images,
        }
    totals = {
        split: {
            "images": sum(stats[s].images[split] for s in stats),
            "background_images": sum(stats[s].background[split] for s in stats),
            "fire_boxes": sum(stats[s].boxes[split]["fire"] for s in stats),
            "smoke_boxes": sum(stats[s].boxes[split]["smoke"] for s in stats),
        }
        for split in ("train", "val")
    }
    return {
        # extra sets change what a model learnt from: the name says so (a model card cites it)
        "name": "+".join([DATASET_NAME, *(extra.name for extra in plan.extra_sets)]),
        "generator": "detector.dataset",
        "source_root": str(source_root),
        "classes": {str(i): name for i, name in enumerate(CLASS_NAMES)},
        "val_fraction": val_fraction,
        "min_sequence_frames": min_frames,
        "hash_salt": HASH_SALT,
        "split_rules": {
            "sequence": "video frames: the last val_fraction of each sequence's distinct frame numbers go to "
            "val (sequences shorter than min_sequence_frames go whole to one side by name hash); photos by "
            "name hash",
            "photo": "independent photos: SHA-256 of salt + name (copy markers removed, so a copy goes with its "
            "original), val if below val_fraction",
            "tower": "each sequence split into pre-ignition and post-ignition phases; the last val_fraction "
            "of each phase (by time offset) goes to val; frames without a label file are excluded",
            "train": "every image to train (generated frames: the validation split stays comparable)",
        },
        "totals": totals,
        "sources": sources,
        "images": [
            {
                "file": f"images/{s.split}/{s.out_stem}{s.image.suffix.lower()}",
                "source": s.source,
                "original": str(s.image.relative_to(source_root) if s.image.is_relative_to(source_root) else s.image),
                "group": s.group,
                "frame": s.frame,
                "split": s.split,
                "boxes": len(s.boxes),
            }
            for s in sorted(plan.samples, key=lambda s: (s.split, s.out_stem))
        ],
    }


def _write_tiles(sample: Sample, images_dir: Path, labels_dir: Path) -> int:
    """Write the training tiles of one frame (JPEG crops + labels); returns how many."""
    from PIL import Image

    with Image.open(sample.image) as opened:
        width, height = opened.size
        if not wants_tiles(sample.source, sample.boxes, width):
            return 0
        image = opened.convert("RGB")
    written = 0
    for index, (rect, boxes) in enumerate(
        tile_labels(sample.boxes, width, height, keep_background=TILE_SOURCES[sample.source])
    ):
        stem = f"{sample.out_stem}__tile{index}"
        image.crop(rect).save(images_dir / f"{stem}.jpg", quality=TILE_JPEG_QUALITY)
        (labels_dir / f"{stem}.txt").write_text("".join(f"{b.to_line()}\n" for b in boxes), encoding="utf-8")
        written += 1
    return written


def _write_dataset(
    plan: DatasetPlan, root: Path, folder: Path, final: Path, val_fraction: float, min_sequence_frames: int
) -> dict[str, object]:
    """Write ``plan`` into the empty ``folder``, whose ``data.yaml`` names ``final`` (where it is moved to)."""
    for split in ("train", "val"):
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)
    tiles: dict[str, int] = dict.fromkeys(TILE_SOURCES, 0)
    for s in plan.samples:
        link = folder / "images" / s.split / f"{s.out_stem}{s.image.suffix.lower()}"
        link.symlink_to(s.image)
        label_text = "".join(f"{b.to_line()}\n" for b in s.boxes)
        (folder / "labels" / s.split / f"{s.out_stem}.txt").write_text(label_text, encoding="utf-8")
        if s.split == "train" and s.source in TILE_SOURCES:
            tiles[s.source] += _write_tiles(s, folder / "images" / "train", folder / "labels" / "train")
    manifest = _manifest(plan, root, val_fraction, min_sequence_frames)
    manifest["train_tiles"] = {
        "sources": tiles,
        "grid": list(TILE_GRID),
        "overlap": TILE_OVERLAP,
        "rule": f"train frames of {', '.join(TILE_SOURCES)} at least {TILE_MIN_WIDTH} px wide with a box narrower "
        f"than {TILE_SMALL_BOX:.0%} of the frame (tower frames always, empty tiles kept for them) are added as "
        f"the overlapping tiles inference cuts; a tile cutting a box to under {TILE_MIN_VISIBLE:.0%} of its area "
        "is left out; validation has whole frames only",
    }
    (folder / "data.yaml").write_text(_data_yaml(final), encoding="utf-8")
    manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (folder / MANIFEST_NAME).write_text(manifest_text, encoding="utf-8")
    return manifest


def build_dataset(
    source_root: Path = DEFAULT_SOURCE_ROOT,
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    min_sequence_frames: int = DEFAULT_MIN_SEQUENCE_FRAMES,
    extra_sets: Sequence[ExtraSet] = (),
) -> dict[str, object]:
    """Write the dataset (symlinks + labels + ``data.yaml`` + ``manifest.json``) and return the manifest; the
    ``extra_sets`` (:class:`ExtraSet`) join the built-in sources.

    Images are symlinked (absolute targets) so no data is duplicated and the shared set stays the single
    source of truth; labels are rewritten because class ids differ per source. The build is written beside
    ``out_dir`` and swapped in when complete, so rebuilding replaces a previous build as a whole (nothing of it is
    left, ultralytics' label caches included) and a build that fails leaves the previous one untouched. A folder
    that is not empty and holds no manifest of ours is refused.
    """
    root = source_root.resolve()
    out = out_dir.resolve()
    plan = plan_dataset(root, val_fraction=val_fraction, min_sequence_frames=min_sequence_frames, extra_sets=extra_sets)
    _check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    # Written beside the output folder and swapped in only when complete: a build that fails half-way (a full
    # disk, Ctrl-C) leaves the previous build as it was, and the next build free to replace it.
    staged = _sibling(out, _BUILDING)
    staged.mkdir()  # with the umask's permissions, like the folder it replaces
    try:
        manifest = _write_dataset(plan, root, staged, out, val_fraction, min_sequence_frames)
        _swap_in(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return manifest
