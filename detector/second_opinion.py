"""The weights-free flame rule as a second opinion on a trained model's fire boxes ("double confirm").

Why: field systems confirm a detector's fire with a second, independent cue before calling a crew out (China
Tower's visible + thermal "secondary confirmation", Hikvision's "Double Confirm": ``../shared/reference``). A
visible-light camera has no thermal channel, but the YCbCr flame rule of :mod:`detector.rules` is independent of
the network: it looks at pixel colour only. The share of a fire box's pixels that meet it (its *support*) ranks
the model's fire boxes on its own (on the validation split, area under the ROC curve 0.83 for telling the model's
true fire boxes from its false ones, against 0.90 for the model's confidence), and the two disagree usefully: of
the fire boxes the model scored between 0.21 and 0.42, 8 of 27 with support were real and 2 of 17 without.

How: a fire box keeps its confidence when at least :attr:`SecondOpinionConfig.full_support` of its pixels are
flame-coloured, and is scaled down linearly to :attr:`SecondOpinionConfig.unsupported_weight` times its
confidence when none is. Confidence only ever goes down, so the model's operating threshold still means "at
least this sure"; a fire box the rule does not support may fall below it. The rule judges the boxes the model's
NMS kept: a box suppressed by a neighbour that the rule then lowers does not come back.

Smoke is left alone, measured: the grey-colour test alone does not separate true smoke boxes from false ones
(AUC 0.40: haze, cloud and concrete are as grey as a plume), and the motion test misses a plume at one frame a
minute (docs/detector.md, FIgLib clip), so penalising smoke without motion would delay the confirmations sequence
verification exists for.

The trade-off (validation split, int8 model, ``strawfire detector eval --second-opinion``; docs/detector.md): fire AP50
0.783 → 0.793 (the two numbers were chosen on that split; chosen on either half, they gained 0.003 and 0.009 on
the other), and at the operating threshold fire precision 0.84 → 0.99 but fire recall 0.68 → 0.60, most of the
loss in CCTV scenes, whose fires the colour rule often misses. A missed straw fire costs a township more than a
wasted trip, so the default is **off**; switch it on (``--second-opinion``, a detector spec ending in ``+rules``)
for a camera whose false alarms are red roofs, lamps or signs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from detector.detections import Detections, Detector, FloatArray, ImageArray, ModelInfo, require_rgb
from detector.rules import RulesConfig, at_work_size, fire_mask

__all__ = ["BACKEND_SUFFIX", "SecondOpinion", "SecondOpinionConfig", "flame_support", "reweigh"]

#: Appended to the model's backend in :class:`~detector.detections.ModelInfo`, so every alert raised through the
#: second opinion says so ("onnx+rules").
BACKEND_SUFFIX = "+rules"


@dataclass(frozen=True)
class SecondOpinionConfig:
    """How much the flame rule's disagreement costs a fire box (chosen on the validation split: docs/detector.md)."""

    #: share of a box's pixels meeting the flame rule at which the rule fully agrees (fire AP50 was flat for
    #: 0.1–0.2 and fell below 0.05: a box around a flame holds smoke, fuel and ground too)
    full_support: float = 0.10
    #: confidence multiplier of a fire box without a single flame-coloured pixel (flat for 0.4–0.6)
    unsupported_weight: float = 0.5
    rules: RulesConfig = field(default_factory=RulesConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.full_support <= 1.0:
            raise ValueError(f"full_support must be in (0, 1], got {self.full_support}")
        if not 0.0 <= self.unsupported_weight <= 1.0:
            raise ValueError(f"unsupported_weight must be in [0, 1], got {self.unsupported_weight}")


def flame_support(image: ImageArray, xyxy: FloatArray, rules: RulesConfig | None = None) -> FloatArray:
    """The share of each box's pixels (``xyxy`` in ``image`` pixels) meeting the YCbCr flame rule, in [0, 1].

    The rule runs on the whole image, as :class:`~detector.rules.RulesDetector` runs it (its thresholds are
    relative to the frame's mean colour), at the rules' working size; every box covers at least one pixel there.
    A box wholly outside the image, or reversed (x2 < x1 or y2 < y1), has support 0.
    """
    rules = rules or RulesConfig()
    require_rgb(image)
    if not len(xyxy):
        return np.zeros(0, np.float32)
    height, width = image.shape[:2]
    small, scale = at_work_size(image, rules.work_size)
    mask = fire_mask(small, rules.chroma_gap)
    rows, cols = mask.shape
    # Summed-area table: every box's count in four lookups, however many boxes (eval asks at conf 0.001).
    table = cv2.integral(mask.astype(np.uint8)).astype(np.int64)
    x1 = np.clip(np.floor(xyxy[:, 0] * scale).astype(np.int64), 0, cols - 1)
    y1 = np.clip(np.floor(xyxy[:, 1] * scale).astype(np.int64), 0, rows - 1)
    x2 = np.clip(np.ceil(xyxy[:, 2] * scale).astype(np.int64), x1 + 1, cols)
    y2 = np.clip(np.ceil(xyxy[:, 3] * scale).astype(np.int64), y1 + 1, rows)
    inside = table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]
    support: FloatArray = (inside / ((x2 - x1) * (y2 - y1))).astype(np.float32)
    on_image = (xyxy[:, 2] > 0) & (xyxy[:, 3] > 0) & (xyxy[:, 0] < width) & (xyxy[:, 1] < height)
    support[~(on_image & (xyxy[:, 2] >= xyxy[:, 0]) & (xyxy[:, 3] >= xyxy[:, 1]))] = 0.0
    return support


def reweigh(
    detections: Detections, support: FloatArray, config: SecondOpinionConfig = SecondOpinionConfig()
) -> Detections:
    """``detections`` with each fire box's confidence scaled by its flame ``support`` (one value per box, any
    value for other classes), re-sorted by confidence; smoke boxes unchanged."""
    if support.shape != detections.confidence.shape:
        raise ValueError(f"one support value per box: {support.shape} for {len(detections)} boxes")
    agreement = np.clip(support / np.float32(config.full_support), 0.0, 1.0)
    weight = np.float32(config.unsupported_weight) + np.float32(1.0 - config.unsupported_weight) * agreement
    confidence = detections.confidence.copy()
    if "fire" in detections.classes:
        fire = detections.class_id == detections.classes.index("fire")
        confidence[fire] *= weight[fire]
    return replace(detections, confidence=confidence).select(np.argsort(-confidence, kind="stable"))


class SecondOpinion:
    """A trained model's :class:`~detector.detections.Detector` whose fire boxes the flame rule re-weighs.

    ``info`` is the model's, with ``+rules`` after the backend; ``detect`` returns the model's boxes at ``conf``
    (its candidate threshold when None), re-weighed, without those that fell below ``conf``.
    """

    def __init__(self, model: Detector, config: SecondOpinionConfig = SecondOpinionConfig()) -> None:
        if model.info.backend.endswith(BACKEND_SUFFIX):
            raise ValueError(f"{model.info.name} already has the rules' second opinion")
        if model.info.input_size < 1:
            raise ValueError("the weights-free rules cannot be their own second opinion: configure a trained model")
        self.model = model
        self.config = config

    @property
    def info(self) -> ModelInfo:
        """The model's, backend ``<backend>+rules``."""
        return replace(self.model.info, backend=self.model.info.backend + BACKEND_SUFFIX)

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        """The model's detections in each image, fire boxes re-weighed by the flame rule."""
        out: list[Detections] = []
        for image, found in zip(images, self.model.detect(images, conf=conf), strict=True):
            weighed = reweigh(found, flame_support(image, found.xyxy, self.config.rules), self.config)
            out.append(weighed if conf is None else weighed.above(conf))
        return out
