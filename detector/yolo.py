"""YOLO pre- and post-processing, implemented once in numpy/OpenCV and used by every network backend.

Why here and not ultralytics': the ONNX Runtime backend must not depend on torch, and the two backends must give
the same boxes. Both feed the network the tensor built by :func:`letterbox_batch` and decode its raw output with
:func:`postprocess`, so the only difference left between them is the network arithmetic itself.

Two raw output layouts (:data:`HeadLayout`) are understood. ``"decoded"`` is ultralytics' export: ``(batch, 4 +
classes, anchors)``, box centre/size in input pixels then class scores. ``"dfl"`` stops before the head's box
decoding: ``(batch, 4 × REG_MAX + classes, anchors)``, the distribution-focal-loss logits of each box side then the
class scores. Our ONNX exports use ``"dfl"`` because decoding every anchor in the graph (a softmax over a transposed
axis, a 1×1 convolution, the anchor arithmetic) cost ~15 % of the int8 network's time, while :func:`postprocess`
decodes only the anchors whose score passes the threshold (a few hundred of 2100 at conf 0.01). (Since 20261130
the ONNX file itself stores it anchors first; :func:`detector.backends.onnx_network` hands it on in this layout.)

The rules follow ultralytics' predictor (``LetterBox`` with centred padding of grey
114, bilinear resize; best-class class-aware NMS at IoU 0.7, at most 300 boxes) so that weights trained there
behave here as they did in validation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from detector.detections import FloatArray, ImageArray, IntArray

__all__ = [
    "DEFAULT_IOU",
    "DEFAULT_MAX_DET",
    "LEVEL_STRIDES",
    "PAD_VALUE",
    "REG_MAX",
    "STRIDE",
    "HeadLayout",
    "Letterbox",
    "anchor_grid",
    "box_iou",
    "decode_dfl",
    "decoded_output",
    "letterbox",
    "letterbox_batch",
    "network_canvas",
    "nms",
    "postprocess",
]

PAD_VALUE: Final[int] = 114
#: The largest downsampling of the YOLO backbone: input sides must be multiples of it.
STRIDE: Final[int] = 32
DEFAULT_IOU: Final[float] = 0.7
DEFAULT_MAX_DET: Final[int] = 300
#: Boxes of different classes are shifted this far apart so that one NMS pass never suppresses across classes.
_CLASS_OFFSET: Final[float] = 7680.0
#: Only this many top-scoring candidates enter NMS (ultralytics' ``max_nms``).
_MAX_NMS: Final[int] = 30000
#: Distribution bins per box side of YOLOv8/YOLO11 heads (ultralytics' ``reg_max``).
REG_MAX: Final[int] = 16
#: Downsampling of the three detection levels (P3, P4, P5), in the order their anchors are concatenated.
LEVEL_STRIDES: Final[tuple[int, ...]] = (8, 16, 32)
_BINS: Final = np.arange(REG_MAX, dtype=np.float32)

HeadLayout = Literal["decoded", "dfl"]


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the square network input: scale, then (left, top) padding."""

    gain: float
    pad_left: int
    pad_top: int
    image_size: tuple[int, int]  # (width, height) of the image that was letterboxed

    def to_image(self, boxes: FloatArray) -> FloatArray:
        """Map xyxy boxes from network-input pixels back to the image, clipped to it."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_left) / self.gain
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_top) / self.gain
        width, height = self.image_size
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def letterbox(image: ImageArray, size: int, canvas: tuple[int, int] | None = None) -> tuple[ImageArray, Letterbox]:
    """Resize ``image`` to fit a ``size``×``size`` square keeping its aspect ratio, and pad it with grey to
    ``canvas`` (width, height; default the square), centred.

    Same arithmetic as ultralytics' ``LetterBox(center=True)``, including its ``round(d ∓ 0.1)`` split of an odd
    padding; a canvas from :func:`network_canvas` of one image is its ``auto=True`` (minimal padding) shape.
    """
    height, width = image.shape[:2]
    gain = min(size / height, size / width)
    new_w, new_h = max(round(width * gain), 1), max(round(height * gain), 1)
    canvas_w, canvas_h = canvas or (size, size)
    if canvas_w < new_w or canvas_h < new_h:
        raise ValueError(f"canvas {canvas_w}x{canvas_h} is smaller than the resized image {new_w}x{new_h}")
    dw, dh = (canvas_w - new_w) / 2, (canvas_h - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    resized = (
        image
        if (new_w, new_h) == (width, height)
        else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    padded = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return np.asarray(padded, dtype=np.uint8), Letterbox(gain, left, top, (width, height))


def network_canvas(shapes: Sequence[tuple[int, ...]], size: int) -> tuple[int, int]:
    """The smallest network input (width, height), multiples of :data:`STRIDE`, that holds every image of a
    batch (``(height, width, ...)`` shapes) resized to fit ``size``.

    Why: a 16:9 tower frame letterboxed into the full square is 44 % grey padding that the network still
    convolves; a network exported with free height/width (and torch) takes the trimmed canvas instead, as
    ultralytics' own predictor does. The anchor grid follows the input size, so boxes are unchanged.
    """
    width = height = STRIDE
    for shape in shapes:
        gain = min(size / shape[0], size / shape[1])
        width = max(width, max(round(shape[1] * gain), 1))
        height = max(height, max(round(shape[0] * gain), 1))
    return -(-width // STRIDE) * STRIDE, -(-height // STRIDE) * STRIDE


def letterbox_batch(
    images: Sequence[ImageArray], size: int, *, trim: bool = False, pixels: bool = False
) -> tuple[FloatArray, list[Letterbox]]:
    """The network input for a batch: float32 NCHW in [0, 1], RGB, plus each image's :class:`Letterbox`.

    ``trim`` letterboxes into :func:`network_canvas` (for networks that accept any height/width) instead of the
    ``size``×``size`` square. ``pixels`` gives the uint8 values instead (0–255, same layout), for int8 networks
    that take them directly: a quarter of the memory traffic and no float conversion.
    """
    for image in images:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image of shape (h, w, 3), got {image.dtype} {image.shape}")
    canvas_w, canvas_h = network_canvas([image.shape for image in images], size) if trim else (size, size)
    batch = np.empty((len(images), 3, canvas_h, canvas_w), np.uint8 if pixels else np.float32)
    boxes: list[Letterbox] = []
    for i, image in enumerate(images):
        padded, box = letterbox(image, size, (canvas_w, canvas_h))
        batch[i] = padded.transpose(2, 0, 1)
        boxes.append(box)
    if not pixels:
        batch *= np.float32(1.0 / 255.0)
    return batch, boxes


def box_iou(a: FloatArray, b: FloatArray) -> npt.NDArray[np.float64]:
    """IoU matrix (len(a), len(b)) of xyxy boxes; 0 where a union is empty."""
    a64, b64 = a.astype(np.float64).reshape(-1, 4), b.astype(np.float64).reshape(-1, 4)
    lt = np.maximum(a64[:, None, :2], b64[None, :, :2])
    rb = np.minimum(a64[:, None, 2:], b64[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a64[:, 2:] - a64[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b64[:, 2:] - b64[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou: npt.NDArray[np.float64] = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float, max_keep: int | None = None) -> IntArray:
    """Greedy non-maximum suppression; indices kept, by decreasing score.

    A box is dropped when its IoU with a higher-scoring kept box is *greater* than ``iou_threshold``, computed in
    float32 with torchvision's formula, so the kept set is torchvision's. Stops after ``max_keep`` boxes, so its
    cost is bounded by the output size, not the input.
    """
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, i], dtype=np.float32) for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    limit = len(order) if max_keep is None else max_keep
    while order.size and len(keep) < limit:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = width * height
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 for empty boxes: NaN, kept as torchvision does
            suppressed = inter / (areas[best] + areas[rest] - inter) > iou_threshold
        order = rest[~suppressed]
    return np.asarray(keep, dtype=np.int64)


@functools.lru_cache(maxsize=64)
def anchor_grid(height: int, width: int) -> tuple[FloatArray, FloatArray]:
    """Anchor centres ``(anchors, 2)`` (x, y in grid cells of their level) and strides ``(anchors,)`` of a
    ``height``×``width`` network input: ultralytics' ``make_anchors`` (cell centres, levels P3→P5, rows then
    columns). Cached per input size; the arrays are read-only."""
    points, strides = [], []
    for stride in LEVEL_STRIDES:
        rows, cols = -(-height // stride), -(-width // stride)  # stride-2 convolutions with padding round up
        ys, xs = np.meshgrid(
            np.arange(rows, dtype=np.float32) + 0.5, np.arange(cols, dtype=np.float32) + 0.5, indexing="ij"
        )
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full(rows * cols, stride, np.float32))
    grid, scale = np.concatenate(points), np.concatenate(strides)
    grid.setflags(write=False)
    scale.setflags(write=False)
    return grid, scale


def decode_dfl(distribution: FloatArray, points: FloatArray, strides: FloatArray) -> FloatArray:
    """xyxy boxes in input pixels ``(k, 4)`` from DFL logits ``(4 × REG_MAX, k)`` of ``k`` anchors with centres
    ``points`` ``(k, 2)`` and ``strides`` ``(k,)``: each side's distance is the expectation of the softmax over its
    bins (ultralytics' ``DFL`` then ``dist2bbox``)."""
    logits = distribution.reshape(4, REG_MAX, -1).astype(np.float32, copy=False)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    distance = (weights * _BINS[:, None]).sum(axis=1) / weights.sum(axis=1)  # (left, top, right, bottom) × k
    x1y1 = points - distance[:2].T
    x2y2 = points + distance[2:].T
    return (np.concatenate([x1y1, x2y2], axis=1) * strides[:, None]).astype(np.float32)


def decoded_output(raw: FloatArray, canvas: tuple[int, int]) -> FloatArray:
    """A ``"dfl"`` raw output of a ``canvas`` (height, width) input converted to the ``"decoded"`` layout
    ``(batch, 4 + classes, anchors)`` (centre x, centre y, width, height), for every anchor: how the two layouts are
    compared; :func:`postprocess` decodes only the candidates."""
    points, strides = anchor_grid(*canvas)
    classes = raw.shape[1] - 4 * REG_MAX
    out = np.empty((raw.shape[0], 4 + classes, raw.shape[2]), np.float32)
    for i, prediction in enumerate(raw):
        xyxy = decode_dfl(prediction[: 4 * REG_MAX], points, strides)
        out[i, :2] = ((xyxy[:, :2] + xyxy[:, 2:]) / 2).T
        out[i, 2:4] = (xyxy[:, 2:] - xyxy[:, :2]).T
        out[i, 4:] = prediction[4 * REG_MAX :]
    return out


def postprocess(
    raw: FloatArray,
    boxes: Sequence[Letterbox],
    *,
    conf: float,
    iou: float = DEFAULT_IOU,
    max_det: int = DEFAULT_MAX_DET,
    head: HeadLayout = "decoded",
    canvas: tuple[int, int] | None = None,
) -> list[tuple[FloatArray, FloatArray, IntArray]]:
    """Decode raw network output into per-image (xyxy, confidence, class id).

    ``head`` is the output layout (see the module docstring); ``"dfl"`` needs the network input's ``canvas``
    (height, width) for the anchor grid. Each anchor gets its best class; anchors with confidence ≥ ``conf`` go
    through class-aware NMS; boxes are mapped back to image pixels. Results are sorted by decreasing confidence.
    """
    box_channels = 4 if head == "decoded" else 4 * REG_MAX
    if raw.ndim != 3 or raw.shape[1] <= box_channels:
        raise ValueError(
            f"unexpected raw output shape {raw.shape}; expected (batch, {box_channels} + classes, anchors)"
        )
    if head == "dfl":
        if canvas is None:
            raise ValueError("a 'dfl' output needs the input canvas (height, width) to place its anchors")
        points, strides = anchor_grid(*canvas)
        if points.shape[0] != raw.shape[2]:
            raise ValueError(f"{raw.shape[2]} anchors in the output, but a {canvas} input has {points.shape[0]}")
    results: list[tuple[FloatArray, FloatArray, IntArray]] = []
    for prediction, box in zip(raw, boxes, strict=True):
        scores = prediction[box_channels:]
        class_id = scores.argmax(axis=0)
        confidence = scores[class_id, np.arange(scores.shape[1])]
        candidates = np.flatnonzero(confidence >= conf)
        if candidates.size > _MAX_NMS:
            candidates = candidates[np.argsort(-confidence[candidates], kind="stable")[:_MAX_NMS]]
        if head == "dfl":
            xyxy = decode_dfl(prediction[:box_channels, candidates], points[candidates], strides[candidates])
        else:
            cx, cy, w, h = prediction[:4, candidates]
            xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        cand_conf = confidence[candidates].astype(np.float32)
        cand_cls = class_id[candidates].astype(np.int64)
        shifted = xyxy + (cand_cls[:, None] * _CLASS_OFFSET).astype(np.float32)
        keep = nms(shifted, cand_conf, iou, max_det)
        results.append((box.to_image(xyxy[keep]), cand_conf[keep], cand_cls[keep]))
    return results
