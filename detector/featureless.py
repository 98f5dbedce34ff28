"""Large boxes over featureless image content: the model's one known blind spot, left out after NMS (pure).

Why: the CCTV set the model learned from includes rooms filled with smoke, whose only structure is the camera's
overlay text, so it puts one frame-wide box on any frame with nothing in it: smoke at 0.66–0.96 on a flat grey or
white frame, an evenly lit overcast sky or a brightness ramp, fire at 0.56 on a camera's blue "no signal"
screen, smoke at 0.4–0.65 over tower frames under dense fog. Smoke or fire that a field camera or a drone can
report has some structure (a plume's edge, flames, what shows through the haze); such a frame has none, and a
single frame of it cannot tell smoke from fog, cloud or a dead camera.

So a box of confidence :data:`JUDGED_CONFIDENCE` or more that covers a quarter of the frame or more (the share
sequence verification already leaves out) is dropped when, on a 128-px thumbnail (area-averaged, then blurred
by one pixel: sensor noise and JPEG blocks average away), every colour channel inside it stays within
``min_structure`` grey levels (standard deviation) of a plane: flat, or one smooth ramp.

Measured (``docs/detector.md``, *Featureless frames*): of the 546 labelled fire and smoke boxes over a quarter of
their image in the training and validation sets, the flattest deviates 9.0 grey levels from its plane (a
smoke-filled room; its structure is the overlay text), outdoor ones 11 or more; grey, white, noisy, ramp and blue
frames 0.0–0.5, tower frames under 90 % fog 4.5–5.5. The default 6.0 sits between. Validation figures are
unchanged to the last digit. Small boxes are never judged, so a faint distant plume on an even sky is untouched.
The real fix is such frames as negatives in the next training; this rule then changes nothing.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from detector.detections import FloatArray, ImageArray

Float64 = npt.NDArray[np.float64]

__all__ = [
    "DEFAULT_MIN_AREA_FRACTION",
    "DEFAULT_MIN_STRUCTURE",
    "JUDGED_CONFIDENCE",
    "THUMBNAIL_SIDE",
    "box_structure",
    "featureless_boxes",
]

#: Boxes covering at least this share of the image are judged (the sequence rule's ``max_box_fraction``).
DEFAULT_MIN_AREA_FRACTION: Final[float] = 0.25
#: Grey levels (0–255) of deviation from a plane, in every channel, below which a box holds nothing to see.
DEFAULT_MIN_STRUCTURE: Final[float] = 6.0
#: Boxes under this confidence are not judged: below every threshold anything acts on (sequence verification's
#: per-frame threshold is at least 0.15), and judging the low-confidence large boxes most frames have would cost
#: a thumbnail per frame (~0.5 ms of the int8 network's ~14).
JUDGED_CONFIDENCE: Final[float] = 0.1
#: Longer side of the thumbnail the structure is measured on.
THUMBNAIL_SIDE: Final[int] = 128


def _thumbnail(image: ImageArray) -> tuple[Float64, float]:
    """The image shrunk so its longer side is :data:`THUMBNAIL_SIDE` and blurred by one pixel, as float64
    channels-first (channels, h, w); and the scale from image pixels to thumbnail pixels.

    Shrunk by area averaging over an integer factor, then resampled linearly by the last factor under two:
    OpenCV's area averaging is slow for a fractional factor (0.33 ms for 152 → 128 px here, against 0.03 linear),
    and what a linear step of under two could alias, the blur takes out.
    """
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, THUMBNAIL_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small: npt.NDArray[np.integer[Any] | np.floating[Any]] = image
    if scale < 1.0:
        factor = max(height, width) // THUMBNAIL_SIDE
        if factor > 1:
            small = cv2.resize(small, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
        small = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
    blurred = np.asarray(cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.0), np.float32)
    if blurred.ndim == 2:
        blurred = blurred[:, :, None]
    return np.ascontiguousarray(blurred.transpose(2, 0, 1), np.float64), scale


def _plane_residual(crop: Float64) -> float:
    """Largest, over channels, standard deviation of ``crop`` (channels, h, w; both sides ≥ 2) around each
    channel's least-squares plane.

    On a rectangle the centred x and y are orthogonal, so a channel's plane is two independent slopes and its
    residual variance is the variance less what each slope explains; the slopes need only the row and column sums.
    """
    channels, height, width = crop.shape
    n = height * width
    flat = crop.reshape(channels, n)
    total = flat.sum(axis=1)
    squares = np.einsum("ij,ij->i", flat, flat)
    xs = np.arange(width, dtype=np.float64) - (width - 1) / 2.0
    ys = np.arange(height, dtype=np.float64) - (height - 1) / 2.0
    along_x = crop.sum(axis=1) @ xs  # Σ (x − x̄)·v per channel
    along_y = crop.sum(axis=2) @ ys
    residual = squares - total * total / n - along_x**2 / (height * (xs @ xs)) - along_y**2 / (width * (ys @ ys))
    return float(np.sqrt(max(0.0, float(residual.max())) / n))


def box_structure(image: ImageArray, xyxy: FloatArray) -> FloatArray:
    """Per box (original-image pixels), the grey levels by which its content deviates from a plane (see the
    module and :func:`_plane_residual`); ``inf`` for a box too small on the thumbnail to judge (under 3×3
    pixels)."""
    out = np.full(len(xyxy), np.inf, np.float32)
    if not len(xyxy):
        return out
    thumb, scale = _thumbnail(image)
    height, width = thumb.shape[1:]
    for i, box in enumerate(np.asarray(xyxy, np.float64).reshape(-1, 4) * scale):
        x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
        if x2 - x1 >= 3 and y2 - y1 >= 3:
            out[i] = _plane_residual(thumb[:, y1:y2, x1:x2])
    return out


def featureless_boxes(
    image: ImageArray,
    xyxy: FloatArray,
    confidence: FloatArray,
    *,
    min_structure: float = DEFAULT_MIN_STRUCTURE,
    min_area_fraction: float = DEFAULT_MIN_AREA_FRACTION,
    min_confidence: float = JUDGED_CONFIDENCE,
) -> npt.NDArray[np.bool_]:
    """True for each box (original-image pixels) with at least ``min_confidence`` that covers at least
    ``min_area_fraction`` of ``image`` and whose content has less than ``min_structure`` grey levels of
    structure; ``min_structure`` 0 judges none."""
    flags = np.zeros(len(xyxy), bool)
    if min_structure <= 0.0 or not len(xyxy):
        return flags
    height, width = image.shape[:2]
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    judged = np.flatnonzero((area >= min_area_fraction * width * height) & (confidence >= min_confidence))
    if len(judged):
        flags[judged] = box_structure(image, boxes[judged].astype(np.float32)) < min_structure
    return flags
