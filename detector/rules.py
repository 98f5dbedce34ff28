"""Weights-free fire/smoke candidates: colour rules for flame, motion plus grey colour for smoke.

Why keep rules next to a trained model: they need no weights, so a camera works (as a candidate generator for
sequence verification and human review) before a model is deployed or when the model file is missing; they are
also the baseline a model must beat, measured by the same ``strawfire detector eval``.

* Flame (Çelik & Demirel 2009, "Fire detection in video sequences using a generic color model"): in YCbCr a flame
  pixel has Y > Cb and Cr > Cb, is brighter and redder than the frame average (Y > mean Y, Cr > mean Cr,
  Cb < mean Cb), and has a large chroma gap |Cr − Cb| ≥ τ. Red cars and sunsets pass the colour test too, which is
  why these are candidates for verification, not alerts.
* Smoke needs the previous frame of the same camera: pixels that changed (after removing the global brightness
  change between frames) *and* are grey (low saturation, neither dark nor blown out). Without a previous frame no
  smoke is reported — a single still image has no motion.

Components smaller than ``min_area`` pixels (at the working resolution) are dropped; confidence is a bounded
measure of how strongly the component meets its rule, so thresholds and AP are meaningful but not calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from detector.detections import CLASS_NAMES, Detections, FloatArray, ImageArray, ModelInfo, require_rgb

__all__ = ["RULES_INFO", "RulesConfig", "RulesDetector", "at_work_size", "fire_mask", "smoke_mask"]

RULES_INFO: Final[ModelInfo] = ModelInfo(
    name="strawfire-rules",
    version="1",
    classes=CLASS_NAMES,
    input_size=0,
    operating_threshold=0.5,
    backend="rules",
)
BoolMask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class RulesConfig:
    """Thresholds of the rules (defaults from the reference paper for flame; smoke set on tower frames, but on the
    one-frame-a-minute FIgLib clip the plume changes too slowly between frames for the motion test: see
    docs/detector.md)."""

    work_size: int = 640  # longest side the rules run at: enough for plume-sized blobs, cheap on CPU
    chroma_gap: float = 40.0  # τ of the flame rule, |Cr − Cb| in 8-bit units
    motion_delta: float = 12.0  # grey-level change (after global compensation) that counts as motion
    edge_threshold: float = 120.0  # Sobel magnitude of the previous frame above which change is edge flicker
    max_saturation: int = 60  # HSV S (0–255) below which a pixel is grey
    min_value: int = 70  # HSV V range of smoke: not shadow, not sun glare
    max_value: int = 235
    min_area: int = 12  # flame pixels at work size
    smoke_min_area: int = 40  # smoke pixels at work size (single-pixel motion is noise at one frame a minute)
    merge_px: int = 31  # closing kernel: flame fragments closer than this (at work size) become one box
    max_boxes: int = 50


def _ycrcb(image: ImageArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    return ycc[..., 0], ycc[..., 1], ycc[..., 2]


def fire_mask(image: ImageArray, chroma_gap: float = 40.0) -> BoolMask:
    """Pixels meeting the YCbCr flame rule (all five conditions).

    On the 8-bit planes (1.8× faster than in floating point; the second opinion runs it on every
    frame): for whole numbers, ``v > mean`` is ``v > floor(mean)`` and ``v < mean`` is ``v < ceil(mean)``.
    """
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    mean_y, mean_cr, mean_cb, _ = cv2.mean(ycc)
    flame: BoolMask = (
        (y > cb)
        & (cr > cb)
        & (y > math.floor(mean_y))
        & (cb < math.ceil(mean_cb))
        & (cr > math.floor(mean_cr))
        & (cv2.absdiff(cb, cr) >= math.ceil(chroma_gap))
    )
    return flame


def smoke_mask(image: ImageArray, previous: ImageArray, config: RulesConfig = RulesConfig()) -> BoolMask:
    """Pixels that moved since ``previous`` (same size), are grey enough to be smoke and are not on strong edges.

    Strong edges of the previous frame (masts, dish rims, ridge lines) flicker with every slight camera movement
    and sun change; a plume is soft-edged, so changes there are discarded.
    """
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0).astype(np.float32)
    before = cv2.GaussianBlur(cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY), (5, 5), 0).astype(np.float32)
    diff = gray - before
    moved = np.abs(diff - np.median(diff)) >= config.motion_delta  # median: auto-exposure shifts everything
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    grey = (
        (hsv[..., 1] <= config.max_saturation) & (hsv[..., 2] >= config.min_value) & (hsv[..., 2] <= config.max_value)
    )
    gradient = cv2.magnitude(cv2.Sobel(before, cv2.CV_32F, 1, 0), cv2.Sobel(before, cv2.CV_32F, 0, 1))
    edges = cv2.dilate((gradient > config.edge_threshold).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    mask: BoolMask = moved & grey & ~edges
    return mask


def _components(
    mask: BoolMask, strength: FloatArray, min_area: int, max_boxes: int, merge_px: int = 5
) -> tuple[list[tuple[float, float, float, float]], list[float]]:
    """Boxes and confidences of the connected components of a cleaned mask.

    Confidence = mean rule strength inside the component × how much of its box it fills (a compact blob is more
    credible than scattered pixels), in [0, 1].
    """
    cleaned = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    cleaned = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, np.ones((merge_px, merge_px), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
    boxes: list[tuple[float, float, float, float]] = []
    scores: list[float] = []
    for index in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[index])
        if area < min_area:
            continue
        fill = area / float(w * h)
        inside = labels[y : y + h, x : x + w] == index
        score = float(np.clip(strength[y : y + h, x : x + w][inside].mean(), 0, 1)) * (0.5 + 0.5 * fill)
        boxes.append((float(x), float(y), float(x + w), float(y + h)))
        scores.append(score)
    order = np.argsort(-np.asarray(scores), kind="stable")[:max_boxes]
    return [boxes[i] for i in order], [scores[i] for i in order]


class RulesDetector:
    """The colour/motion rules as a :class:`~detector.detections.MotionDetector`."""

    def __init__(self, config: RulesConfig = RulesConfig(), *, conf: float = 0.01) -> None:
        self.config = config
        self.conf = conf

    @property
    def info(self) -> ModelInfo:
        """``strawfire-rules`` version 1, operating threshold 0.5."""
        return RULES_INFO

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        """Flame candidates in independent images (no smoke: that needs a previous frame)."""
        return [self.detect_pair(image, None, conf=conf) for image in images]

    def detect_pair(self, image: ImageArray, previous: ImageArray | None, *, conf: float | None = None) -> Detections:
        """Flame candidates in ``image`` and, given the previous frame of the same camera, smoke candidates."""
        require_rgb(image)
        height, width = image.shape[:2]
        small, scale = at_work_size(image, self.config.work_size)
        _y, cr, cb = _ycrcb(small)
        boxes, scores = _components(
            fire_mask(small, self.config.chroma_gap),
            (cr - cb) / np.float32(128.0),
            self.config.min_area,
            self.config.max_boxes,
            self.config.merge_px,
        )
        classes = [0] * len(boxes)
        if previous is not None and previous.shape == image.shape:
            before = _resized(previous, scale)
            hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
            greyness = np.float32(1.0) - hsv[..., 1].astype(np.float32) / np.float32(max(self.config.max_saturation, 1))
            smoke_boxes, smoke_scores = _components(
                smoke_mask(small, before, self.config),
                greyness,
                self.config.smoke_min_area,
                self.config.max_boxes,
                self.config.merge_px,
            )
            boxes += smoke_boxes
            scores += smoke_scores
            classes += [1] * len(smoke_boxes)
        threshold = self.conf if conf is None else conf
        xyxy = np.asarray(boxes, np.float32).reshape(-1, 4) / np.float32(scale)
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        confidence = np.asarray(scores, np.float32)
        class_id = np.asarray(classes, np.int64)
        order = np.argsort(-confidence, kind="stable")
        order = order[confidence[order] >= threshold]
        return Detections(
            (width, height), RULES_INFO.name, RULES_INFO.version, RULES_INFO.classes,
            xyxy[order], confidence[order], class_id[order],
        )  # fmt: skip


def at_work_size(image: ImageArray, work_size: int) -> tuple[ImageArray, float]:
    """``image`` shrunk (area averaging) so that its longer side is at most ``work_size``, and the factor from
    its pixels to the result's (1.0: the image itself). Boxes found on the result divide by the factor."""
    height, width = image.shape[:2]
    scale = min(1.0, work_size / max(height, width))
    return _resized(image, scale), scale


def _resized(image: ImageArray, scale: float) -> ImageArray:
    if scale >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
