"""The detector's one interface and its typed result, shared by every backend (ONNX Runtime, torch, colour rules).

Why one record type for all: alerting, evaluation and sequence verification must not care which backend produced
a box. A :class:`Detections` holds one image's boxes as arrays (cheap to filter and to feed to numpy metrics, as
in ``supervision.Detections``), in the *original* image's pixel coordinates, with the model's name and version so
that every alert can say which model raised it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLASS_NAMES",
    "BoolArray",
    "ClassName",
    "Detection",
    "Detections",
    "Detector",
    "ImageArray",
    "ModelInfo",
    "MotionDetector",
    "detect_frame",
    "require_rgb",
]

ClassName = Literal["fire", "smoke"]
#: Class ids of every model and of the training set (``detector.dataset.CLASS_NAMES`` has the same order).
CLASS_NAMES: Final[tuple[ClassName, ...]] = ("fire", "smoke")

#: An RGB ``uint8`` image of shape (height, width, 3).
ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def require_rgb(image: ImageArray) -> None:
    """A clear ValueError for anything but a non-empty (h, w, 3) uint8 image, the one input every detector takes
    (``detector.images.load_image`` converts grayscale, palette and RGBA files to it)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or not image.shape[0] or not image.shape[1]:
        raise ValueError(f"expected a non-empty RGB uint8 image of shape (h, w, 3), got {image.dtype} {image.shape}")


@dataclass(frozen=True)
class ModelInfo:
    """What a detector is: enough to reproduce and to audit an alert."""

    name: str
    version: str
    classes: tuple[str, ...]
    input_size: int  # square network input in pixels; 0 for the weights-free rules
    operating_threshold: float  # confidence at which a detection counts as a finding
    backend: str  # "onnx", "torch" or "rules"; "onnx+rules", "torch+rules" with the rules' second opinion


@dataclass(frozen=True)
class Detection:
    """One box, for code that prefers records to arrays."""

    class_name: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original-image pixels
    model: str
    version: str


def _empty_boxes() -> FloatArray:
    return np.zeros((0, 4), np.float32)


def _empty_scores() -> FloatArray:
    return np.zeros((0,), np.float32)


def _empty_ids() -> IntArray:
    return np.zeros((0,), np.int64)


@dataclass(frozen=True)
class Detections:
    """All boxes found in one image, sorted by decreasing confidence.

    ``xyxy`` is (n, 4) float32 in original-image pixels, ``confidence`` (n,) float32, ``class_id`` (n,) int64
    indexing ``classes``. ``image_size`` is (width, height) of the original image, so boxes can be normalised.
    """

    image_size: tuple[int, int]
    model: str
    version: str
    classes: tuple[str, ...] = CLASS_NAMES
    xyxy: FloatArray = field(default_factory=_empty_boxes)
    confidence: FloatArray = field(default_factory=_empty_scores)
    class_id: IntArray = field(default_factory=_empty_ids)

    def __post_init__(self) -> None:
        n = len(self.confidence)
        if self.xyxy.shape != (n, 4) or self.class_id.shape != (n,):
            raise ValueError(f"inconsistent detection arrays: {self.xyxy.shape}, {n}, {self.class_id.shape}")

    def __len__(self) -> int:
        return len(self.confidence)

    def __iter__(self) -> Iterator[Detection]:
        for box, conf, cls in zip(self.xyxy.tolist(), self.confidence.tolist(), self.class_id.tolist(), strict=True):
            x1, y1, x2, y2 = box
            yield Detection(self.classes[cls], conf, (x1, y1, x2, y2), self.model, self.version)

    @property
    def class_names(self) -> list[str]:
        """The class name of every box, in box order."""
        return [self.classes[i] for i in self.class_id.tolist()]

    def select(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Detections:
        """A copy with only the boxes picked by a boolean mask or index array (order kept)."""
        return Detections(
            self.image_size,
            self.model,
            self.version,
            self.classes,
            self.xyxy[keep].reshape(-1, 4),
            self.confidence[keep],
            self.class_id[keep],
        )

    def above(self, threshold: float) -> Detections:
        """The boxes with confidence ≥ ``threshold``."""
        return self.select(self.confidence >= threshold)

    def to_rows(self) -> list[list[str | float]]:
        """``[[class, confidence, x1, y1, x2, y2], ...]``, the JSON shape of ``strawfire detector predict``."""
        return [[d.class_name, round(d.confidence, 5), *(round(v, 2) for v in d.box)] for d in self]


@runtime_checkable
class Detector(Protocol):
    """Finds fire and smoke in independent images. Implemented by every backend.

    ``images`` are RGB ``uint8`` arrays of any size; the result has one :class:`Detections` per image, in order.
    ``conf`` overrides the minimum confidence kept (default: the backend's own low candidate threshold, not the
    operating threshold, so that callers such as sequence verification can apply their own).
    """

    @property
    def info(self) -> ModelInfo:
        """The model behind this detector."""
        ...

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        """Detect in a batch of images."""
        ...


@runtime_checkable
class MotionDetector(Detector, Protocol):
    """A detector that also uses the previous frame of the same camera (the weights-free smoke rule needs motion)."""

    def detect_pair(self, image: ImageArray, previous: ImageArray | None, *, conf: float | None = None) -> Detections:
        """Detect in ``image``, using ``previous`` (same camera, same position) when given."""
        ...


def detect_frame(
    detector: Detector, image: ImageArray, previous: ImageArray | None, *, conf: float | None = None
) -> Detections:
    """One frame of a fixed camera: a :class:`MotionDetector` also gets the previous frame (None when there is
    none), any other detector the frame alone."""
    if isinstance(detector, MotionDetector):
        return detector.detect_pair(image, previous, conf=conf)
    return detector.detect([image], conf=conf)[0]
