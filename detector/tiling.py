"""Tiled detection for wide tower frames: run the detector on overlapping tiles as well as on the whole frame.

Why: a tower camera's early plume is a few dozen pixels of a 1280–4000 px frame; letterboxed to the network's
320 px it shrinks to a handful of pixels, below what a small detector can see. Cutting the frame into
``cols × rows`` overlapping tiles gives the network each part at ``cols``-times the resolution, for
``cols × rows`` extra network passes (batched together with the whole frame). Boxes from all views are mapped
back to frame pixels and merged with the same class-aware NMS the backends use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detector.detections import Detections, Detector, ImageArray, ModelInfo
from detector.yolo import DEFAULT_IOU, nms

__all__ = ["TiledDetector", "tile_boxes"]

_CLASS_OFFSET = 1e5  # larger than any frame, so NMS never merges across classes


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
    """Wraps a :class:`Detector`: whole frame plus ``cols × rows`` tiles, merged; implements :class:`Detector`."""

    def __init__(
        self, detector: Detector, cols: int = 2, rows: int = 2, *, overlap: float = 0.15, iou: float = DEFAULT_IOU
    ) -> None:
        tile_boxes(64, 64, cols, rows, overlap)  # validates the arguments
        self.detector = detector
        self.cols, self.rows, self.overlap, self.iou = cols, rows, overlap, iou

    @property
    def info(self) -> ModelInfo:
        """The wrapped detector's model (tiling changes how it is run, not what it is)."""
        return self.detector.info

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        """Detect on every image's whole frame and tiles in one batch; merge per image."""
        views: list[ImageArray] = []
        origins: list[list[tuple[int, int]]] = []
        for image in images:
            height, width = image.shape[:2]
            tiles = tile_boxes(width, height, self.cols, self.rows, self.overlap)
            views.append(image)
            views += [np.ascontiguousarray(image[y1:y2, x1:x2]) for x1, y1, x2, y2 in tiles]
            origins.append([(0, 0)] + [(x1, y1) for x1, y1, _, _ in tiles])
        found = self.detector.detect(views, conf=conf)
        merged: list[Detections] = []
        start = 0
        for image, offsets in zip(images, origins, strict=True):
            parts = found[start : start + len(offsets)]
            start += len(offsets)
            merged.append(self._merge(image, parts, offsets))
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
