"""Tiled detection for wide tower frames: run the detector on overlapping tiles as well as on the whole frame.

Why: a tower camera's early plume is a few dozen pixels of a 1280–4000 px frame; letterboxed to the network's
320 px it shrinks to a handful of pixels, below what a small detector can see. Cutting the frame into
``cols × rows`` overlapping tiles gives the network each part at about ``cols`` times the resolution, for
``cols × rows`` extra network passes (batched together with the whole frame). Boxes from all views are mapped
back to frame pixels and merged with the same class-aware NMS the backends use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from detector.detections import Detections, Detector, ImageArray, ModelInfo, MotionDetector
from detector.yolo import DEFAULT_IOU, nms

__all__ = ["AUTO_MAX_PER_SIDE", "DEFAULT_OVERLAP", "TiledDetector", "auto_grid", "tile_boxes", "with_tiles"]

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
    would not carry.
    """
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
        origins: list[list[tuple[int, int]]] = []
        for image in images:
            height, width = image.shape[:2]
            cols, rows = self.grid(width, height)
            tiles = tile_boxes(width, height, cols, rows, self.overlap) if (cols, rows) != (1, 1) else []
            views.append(image)
            views += [np.ascontiguousarray(image[y1:y2, x1:x2]) for x1, y1, x2, y2 in tiles]
            origins.append([(0, 0)] + [(x1, y1) for x1, y1, _, _ in tiles])
        found = self.detector.detect(views, conf=conf)
        merged: list[Detections] = []
        start = 0
        for image, offsets in zip(images, origins, strict=True):
            parts = found[start : start + len(offsets)]
            start += len(offsets)
            merged.append(parts[0] if len(offsets) == 1 else self._merge(image, parts, offsets))
        return merged

    def _merge(self, image: ImageArray, parts: Sequence[Detections], offsets: Sequence[tuple[int, int]]) -> Detections:
        shifted = [
            part.xyxy + np.array([dx, dy, dx, dy], np.float32) for part, (dx, dy) in zip(parts, offsets, strict=True)
        ]
        xyxy = np.concatenate(shifted).astype(np.float32) if shifted else np.zeros((0, 4), np.float32)
        confidence = np.concatenate([p.confidence for p in parts]).astype(np.float32)
        class_id = np.concatenate([p.class_id for p in parts]).astype(np.int64)
        keep = nms(xyxy + (class_id[:, None] * _CLASS_OFFSET).astype(np.float32), confidence, self.iou)
        first = parts[0]
        height, width = image.shape[:2]
        return Detections(
            (width, height), first.model, first.version, first.classes, xyxy[keep], confidence[keep], class_id[keep]
        )
