"""Tiled detection for wide tower frames: run the detector on overlapping tiles as well as on the whole frame.

Why: a tower camera's early plume is a few dozen pixels of a 1280–4000 px frame; letterboxed to the network's
640 px input it shrinks to a handful of pixels, below what a small detector can see. Cutting the frame into
``cols × rows`` overlapping tiles gives the network each part at about ``cols`` times the resolution, for
``cols × rows`` extra network passes (batched together with the whole frame). Boxes from all views are mapped
back to frame pixels and merged with the same class-aware NMS the backends use; then a box cut by an edge of its
tile inside the frame is dropped when a box of its class covers at least half of it (:func:`drop_cut_boxes`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from detector.detections import (
    BoolArray,
    Detections,
    Detector,
    FloatArray,
    ImageArray,
    IntArray,
    ModelInfo,
    MotionDetector,
)
from detector.yolo import DEFAULT_IOU, nms

__all__ = [
    "AUTO_MAX_PER_SIDE",
    "DEFAULT_OVERLAP",
    "TiledDetector",
    "auto_grid",
    "cut_by_tile_edge",
    "drop_cut_boxes",
    "tile_boxes",
    "with_tiles",
]

IndexArray = npt.NDArray[np.intp]

_CLASS_OFFSET = 1e5  # larger than any frame, so NMS never merges across classes
#: ``auto`` tiles are at most this fraction of the network input per side, so every tile reaches the network at
#: about its native resolution or better (letterboxing scales it up).
_AUTO_TILE_FRACTION = 0.75
#: ``auto`` leaves frames whose longer side is at most this multiple of the network input alone: shrinking them
#: costs little detail, and tiling would multiply the work for nothing.
_AUTO_MIN_RATIO = 1.5
#: ``auto`` caps the grid: a 4K frame gets 4 × 4 tiles (17 network passes), not 9 × 5.
AUTO_MAX_PER_SIDE = 4
#: Neighbouring tiles overlap by this fraction of a tile, so a plume on a tile edge is whole in one of them.
DEFAULT_OVERLAP = 0.15


def auto_grid(width: int, height: int, input_size: int, overlap: float = DEFAULT_OVERLAP) -> tuple[int, int]:
    """(cols, rows) that ``tiles="auto"`` uses for a ``width × height`` frame and a network of ``input_size``.

    (1, 1) — the whole frame only — when the longer side is at most 1.5× the input; otherwise the fewest tiles
    (overlap included) that are at most three quarters of the input per side, at most :data:`AUTO_MAX_PER_SIDE`
    per side (a capped grid has larger tiles). A 1280×854 tower frame and a 640 px model give 3 × 2, the grid
    that confirmed the FIgLib plume earliest (see ``models/README.md``).
    """
    if width < 1 or height < 1 or input_size < 1:
        raise ValueError(f"need positive sizes, got {width}×{height} for input {input_size}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if max(width, height) <= _AUTO_MIN_RATIO * input_size:
        return 1, 1
    side = _AUTO_TILE_FRACTION * input_size

    def count(length: int) -> int:
        # n tiles with overlap o span length L when each is L / (n − (n − 1)·o) long: at most `side` needs
        # n ≥ (L / side − o) / (1 − o).
        needed = math.ceil((length / side - overlap) / (1.0 - overlap) - 1e-9)
        return min(AUTO_MAX_PER_SIDE, max(1, needed))

    return count(width), count(height)


def with_tiles(detector: Detector, tiles: tuple[int, int] | None) -> Detector:
    """``detector`` run on the whole frame plus ``tiles`` = (cols, rows) overlapping tiles, or ``None`` for ``auto``
    (:func:`auto_grid` per frame); (1, 1) is the whole frame only. The one place that decides how a caller's tile
    setting (``watch --tiles``, a patrol preset's ``tiles``, export's tower check) becomes a detector.

    Returned unwrapped, whatever ``tiles`` says, for the weights-free rules (input size 0: they look at every pixel
    already) and any :class:`MotionDetector`: its smoke rule needs the previous frame of the same view, which tiles
    would not carry. A :class:`~detector.second_opinion.SecondOpinion` stays outside the tiles: the flame rule
    judges each box against the whole frame's colours, as it was measured.
    """
    from detector.second_opinion import SecondOpinion  # here: tiling itself needs no OpenCV

    if isinstance(detector, SecondOpinion):
        return detector if tiles == (1, 1) else SecondOpinion(with_tiles(detector.model, tiles), detector.config)
    if tiles == (1, 1) or isinstance(detector, MotionDetector) or detector.info.input_size < 1:
        return detector
    return TiledDetector.auto(detector) if tiles is None else TiledDetector(detector, *tiles)


def tile_boxes(width: int, height: int, cols: int, rows: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """``cols × rows`` tiles (x1, y1, x2, y2) covering the frame, neighbours overlapping by ``overlap`` of a tile."""
    if cols < 1 or rows < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"need cols, rows ≥ 1 and overlap in [0, 1), got {cols}, {rows}, {overlap}")
    tile_w = width / (cols - (cols - 1) * overlap)
    tile_h = height / (rows - (rows - 1) * overlap)
    tiles = []
    for row in range(rows):
        for col in range(cols):
            x1 = round(col * tile_w * (1 - overlap))
            y1 = round(row * tile_h * (1 - overlap))
            tiles.append((x1, y1, min(width, round(x1 + tile_w)), min(height, round(y1 + tile_h))))
    return tiles


class TiledDetector:
    """Wraps a :class:`Detector`: whole frame plus ``cols × rows`` tiles, merged; implements :class:`Detector`.

    :meth:`auto` picks the grid per frame from its size instead (:func:`auto_grid`).
    """

    def __init__(
        self,
        detector: Detector,
        cols: int = 2,
        rows: int = 2,
        *,
        overlap: float = DEFAULT_OVERLAP,
        iou: float = DEFAULT_IOU,
    ) -> None:
        tile_boxes(64, 64, cols, rows, overlap)  # validates the arguments
        self.detector = detector
        self.cols, self.rows, self.overlap, self.iou = cols, rows, overlap, iou
        self.automatic = False

    @classmethod
    def auto(cls, detector: Detector, *, overlap: float = DEFAULT_OVERLAP, iou: float = DEFAULT_IOU) -> TiledDetector:
        """Tiles chosen per frame by :func:`auto_grid` (whole frame only for frames near the network's size)."""
        tiled = cls(detector, 1, 1, overlap=overlap, iou=iou)
        tiled.automatic = True
        return tiled

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """(cols, rows) for a frame of this size."""
        size = self.detector.info.input_size
        if self.automatic:
            # The weights-free rules (input size 0) look at every pixel already: nothing to gain from tiles.
            return auto_grid(width, height, size, self.overlap) if size > 0 else (1, 1)
        return self.cols, self.rows

    @property
    def info(self) -> ModelInfo:
        """The wrapped detector's model (tiling changes how it is run, not what it is)."""
        return self.detector.info

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        """Detect on every image's whole frame and tiles in one batch; merge per image (an image without tiles
        keeps the wrapped detector's result as it is)."""
        views: list[ImageArray] = []
        regions: list[list[tuple[int, int, int, int]]] = []  # per image: each view's rectangle in the frame
        for image in images:
            height, width = image.shape[:2]
            cols, rows = self.grid(width, height)
            tiles = tile_boxes(width, height, cols, rows, self.overlap) if (cols, rows) != (1, 1) else []
            views.append(image)
            views += [np.ascontiguousarray(image[y1:y2, x1:x2]) for x1, y1, x2, y2 in tiles]
            regions.append([(0, 0, width, height), *tiles])
        found = self.detector.detect(views, conf=conf)
        merged: list[Detections] = []
        start = 0
        for image, rects in zip(images, regions, strict=True):
            parts = found[start : start + len(rects)]
            start += len(rects)
            merged.append(parts[0] if len(rects) == 1 else self._merge(image, parts, rects))
        return merged

    def _merge(
        self, image: ImageArray, parts: Sequence[Detections], rects: Sequence[tuple[int, int, int, int]]
    ) -> Detections:
        """Boxes of every view in frame pixels, class-aware NMS, then :func:`drop_cut_boxes`."""
        shifted = [
            part.xyxy + np.array([x1, y1, x1, y1], np.float32)
            for part, (x1, y1, _, _) in zip(parts, rects, strict=True)
        ]
        xyxy = np.concatenate(shifted).astype(np.float32) if shifted else np.zeros((0, 4), np.float32)
        confidence = np.concatenate([p.confidence for p in parts]).astype(np.float32)
        class_id = np.concatenate([p.class_id for p in parts]).astype(np.int64)
        view = np.concatenate([np.full(len(part), index) for index, part in enumerate(parts)]).astype(np.intp)
        keep = nms(xyxy + (class_id[:, None] * _CLASS_OFFSET).astype(np.float32), confidence, self.iou)
        height, width = image.shape[:2]
        cut = cut_by_tile_edge(xyxy[keep], np.asarray(rects, np.float32)[view[keep]], (width, height))
        keep = keep[drop_cut_boxes(xyxy[keep], confidence[keep], class_id[keep], cut)]
        first = parts[0]
        return Detections(
            (width, height), first.model, first.version, first.classes, xyxy[keep], confidence[keep], class_id[keep]
        )


#: A box this close to a tile's edge inside the frame (fraction of the tile's side, at least 2 px) was cut by it.
_EDGE_FRACTION = 0.01
#: A cut box is dropped when a kept box of its class covers at least this share of its area.
_COVERED = 0.5


def cut_by_tile_edge(boxes: FloatArray, tiles: FloatArray, frame: tuple[int, int]) -> BoolArray:
    """Which ``boxes`` (frame pixels, one row per box) touch an edge of the view they came from (``tiles``, same
    rows; the whole frame for its own boxes) that lies inside the frame: such a box holds only the part of an
    object that was in its tile."""
    width, height = frame
    tolerance = np.maximum(_EDGE_FRACTION * np.maximum(tiles[:, 2] - tiles[:, 0], tiles[:, 3] - tiles[:, 1]), 2.0)
    inner = np.stack([tiles[:, 0] > 0, tiles[:, 1] > 0, tiles[:, 2] < width, tiles[:, 3] < height], axis=1)
    near = np.stack(
        [
            boxes[:, 0] - tiles[:, 0] <= tolerance,
            boxes[:, 1] - tiles[:, 1] <= tolerance,
            tiles[:, 2] - boxes[:, 2] <= tolerance,
            tiles[:, 3] - boxes[:, 3] <= tolerance,
        ],
        axis=1,
    )
    return np.asarray((inner & near).any(axis=1), bool)


def drop_cut_boxes(boxes: FloatArray, confidence: FloatArray, class_id: IntArray, cut: BoolArray) -> IndexArray:
    """Indices of the boxes to keep: all but the cut ones (:func:`cut_by_tile_edge`) of which a box of the same
    class, uncut or more confident, covers at least :data:`_COVERED` of the area.

    Why: NMS compares whole boxes by IoU, and the part of a fire cut off by a tile edge overlaps the whole frame's
    box of that fire by an IoU of 0.3–0.6, under NMS's 0.7: without this, one fire came back as three boxes (the
    whole frame's and two tiles' halves).
    """
    keep = np.ones(len(boxes), bool)
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    for i in np.flatnonzero(cut):
        same = (class_id == class_id[i]) & keep & (np.arange(len(boxes)) != i)
        stronger = ~cut | (confidence > confidence[i]) | ((confidence == confidence[i]) & (np.arange(len(boxes)) < i))
        iw = np.minimum(boxes[:, 2], boxes[i, 2]) - np.maximum(boxes[:, 0], boxes[i, 0])
        ih = np.minimum(boxes[:, 3], boxes[i, 3]) - np.maximum(boxes[:, 1], boxes[i, 1])
        covered = np.clip(iw, 0, None) * np.clip(ih, 0, None) >= _COVERED * max(float(areas[i]), 1e-6)
        if (same & stronger & covered).any():
            keep[i] = False
    return np.flatnonzero(keep)
