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

A box is also left out when at least :data:`FLAT_SHARE` of it lies within :data:`FLAT_TOLERANCE` grey levels of one
plane (a robust fit: least squares, then again on the half of the pixels nearest that plane): a camera's blue "no
signal" screen with the encoder's lighter message box in the middle has 7.5–11.7 grey levels of structure (the
message box's edges) and drew a frame-wide fire box at 0.45–0.56, but 93–96 % of it is one plane; of the labelled
fire and smoke boxes over a quarter of their image, at most 22 % is (a smoke-filled room, img_932).

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
    "FLAT_SHARE",
    "FLAT_TOLERANCE",
    "JUDGED_CONFIDENCE",
    "THUMBNAIL_SIDE",
    "box_flat_share",
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
#: A box at least this share of which lies within :data:`FLAT_TOLERANCE` of one plane is mostly nothing: a screen
#: with a message box (93–96 %), against at most 22 % of any large labelled fire or smoke box. Well above a half,
#: so that a box half over an even sky and half over a plume is never judged by it.
FLAT_SHARE: Final[float] = 0.75
#: Grey levels (0–255, every channel) within which a thumbnail pixel lies on the box's plane.
FLAT_TOLERANCE: Final[float] = 2.0


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


def _flat_share(crop: Float64) -> float:
    """Share of ``crop``'s pixels (channels, h, w) within :data:`FLAT_TOLERANCE` of its plane in every channel.

    The plane is fitted twice per channel: by least squares, then again on the half of the pixels nearest that
    first plane, so that a small bright object (a message box) does not tilt or lift the plane off the rest. Both
    fits in closed form over all channels at once (the first on centred coordinates, which are orthogonal on a
    rectangle; the second by its 3×3 normal equations), several times faster than ``lstsq``.
    """
    channels, height, width = crop.shape
    xs = np.tile(np.arange(width, dtype=np.float64) - (width - 1) / 2.0, height)
    ys = np.repeat(np.arange(height, dtype=np.float64) - (height - 1) / 2.0, width)
    values = crop.reshape(channels, -1)
    first = (
        values.mean(axis=1, keepdims=True)
        + (values @ xs / (xs @ xs))[:, None] * xs
        + (values @ ys / (ys @ ys))[:, None] * ys
    )
    residual = np.abs(values - first)
    nearest = (residual <= np.median(residual, axis=1, keepdims=True)).astype(np.float64)
    columns = np.stack([np.ones_like(xs), xs, ys])  # (3, n)
    products = (columns[:, None, :] * columns[None, :, :]).reshape(9, -1)
    normal = (nearest @ products.T).reshape(channels, 3, 3)  # per channel, Σ over its nearest pixels
    moments = (nearest * values) @ columns.T
    coefficients = np.linalg.solve(normal + 1e-9 * np.eye(3), moments[..., None])[..., 0]  # (channels, 3)
    worst = np.abs(values - coefficients @ columns).max(axis=0)
    return float(np.mean(worst < FLAT_TOLERANCE))


def _judge(image: ImageArray, xyxy: FloatArray, measures: int) -> FloatArray:
    """Per box (original-image pixels): its structure (:func:`_plane_residual`) and, with ``measures`` 2, its flat
    share (:func:`_flat_share`), as rows; ``inf`` structure and 0 share for a box too small on the thumbnail to
    judge (under 3×3 pixels)."""
    out = np.zeros((2, len(xyxy)), np.float32)
    out[0] = np.inf
    if not len(xyxy):
        return out
    thumb, scale = _thumbnail(image)
    height, width = thumb.shape[1:]
    for i, box in enumerate(np.asarray(xyxy, np.float64).reshape(-1, 4) * scale):
        x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
        x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
        if x2 - x1 >= 3 and y2 - y1 >= 3:
            crop = thumb[:, y1:y2, x1:x2]
            out[0, i] = _plane_residual(crop)
            if measures > 1:  # every other thumbnail pixel: a share needs no more, and it costs a quarter
                out[1, i] = _flat_share(crop[:, ::2, ::2] if min(crop.shape[1:]) >= 6 else crop)
    return out


def box_structure(image: ImageArray, xyxy: FloatArray) -> FloatArray:
    """Per box (original-image pixels), the grey levels by which its content deviates from a plane (see the
    module and :func:`_plane_residual`); ``inf`` for a box too small on the thumbnail to judge (under 3×3
    pixels)."""
    structure: FloatArray = _judge(image, xyxy, 1)[0]
    return structure


def box_flat_share(image: ImageArray, xyxy: FloatArray) -> FloatArray:
    """Per box (original-image pixels), the share of it within :data:`FLAT_TOLERANCE` of one plane (see
    :func:`_flat_share`); 0 for a box too small on the thumbnail to judge."""
    share: FloatArray = _judge(image, xyxy, 2)[1]
    return share


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
    structure, or lies mostly on one plane (:data:`FLAT_SHARE`); ``min_structure`` 0 judges none."""
    flags = np.zeros(len(xyxy), bool)
    if min_structure <= 0.0 or not len(xyxy):
        return flags
    height, width = image.shape[:2]
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    judged = np.flatnonzero((area >= min_area_fraction * width * height) & (confidence >= min_confidence))
    if len(judged):
        structure, flat_share = _judge(image, boxes[judged].astype(np.float32), 2)
        flags[judged] = (structure < min_structure) | (flat_share >= FLAT_SHARE)
    return flags
