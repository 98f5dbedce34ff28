"""YOLO pre- and post-processing, implemented once in numpy/OpenCV and used by every network backend.

Why here and not ultralytics': the ONNX Runtime backend must not depend on torch, and the two backends must give
the same boxes. Both feed the network the tensor built by :func:`letterbox_batch` and decode its raw output with
:func:`postprocess`, so the only difference left between them is the network arithmetic itself.

Two raw output layouts (:data:`HeadLayout`) are understood. ``"decoded"`` is ultralytics' export: ``(batch, 4 +
classes, anchors)``, box centre/size in input pixels then class scores. ``"dfl"`` stops before the head's box
decoding: ``(batch, 4 × REG_MAX + classes, anchors)``, the distribution-focal-loss logits of each box side then the
class scores. Our ONNX exports use ``"dfl"`` because decoding every anchor in the graph (a softmax over a transposed
axis, a 1×1 convolution, the anchor arithmetic) cost ~14 % of the int8 network's time, while :func:`postprocess`
decodes only the anchors whose score passes the threshold (a few hundred of 8400 at conf 0.01; 5880 for a
640×448 tower frame). (Since 20261130
the ONNX file itself stores it anchors first; :func:`detector.backends.onnx_network` hands it on in this layout.)

The rules follow ultralytics' predictor (``LetterBox`` with centred padding of grey
114, bilinear resize; best-class class-aware NMS at IoU 0.7, at most 300 boxes) so that weights trained there
behave here as they did in validation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from detector.detections import FloatArray, ImageArray, IntArray, require_rgb

__all__ = [
    "BLOCK_VALUES",
    "DEFAULT_IOU",
    "DEFAULT_MAX_DET",
    "LEVEL_STRIDES",
    "PAD_VALUE",
    "REG_MAX",
    "STRIDE",
    "HeadLayout",
    "InputLayout",
    "Letterbox",
    "anchor_grid",
    "box_iou",
    "decode_dfl",
    "decoded_output",
    "input_canvas",
    "letterbox",
    "letterbox_batch",
    "network_canvas",
    "nms",
    "postprocess",
    "scaled_size",
    "to_blocks",
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
#: How a batch of pixels is laid out for a network. ``"nchw"``: (batch, 3, height, width), what ultralytics and the
#: fp32 export take. ``"blocks"``: uint8 (batch, height/2, width/2, 12), each 2×2 block of pixels as 12 values
#: (row in block, column in block, RGB) — the channels-last space-to-depth that the int8 export's first
#: convolution reads directly (see ``detector.export._channels_last_blocks``).
InputLayout = Literal["nchw", "blocks"]
#: Values per block of the ``"blocks"`` layout.
BLOCK_VALUES: Final[int] = 12


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the square network input: scale, then (left, top) padding."""

    gain: float
    pad_left: int
    pad_top: int
    image_size: tuple[int, int]  # (width, height) of the image that was letterboxed

    @property
    def resized(self) -> tuple[int, int]:
        """(width, height) the image was resized to on the canvas: whole pixels (:func:`scaled_size`)."""
        return scaled_size(*self.image_size, self.gain)

    def to_image(self, boxes: FloatArray) -> FloatArray:
        """Map xyxy boxes from network-input pixels back to the image, clipped to it.

        Each axis by its own exact scale: the resized sides are whole pixels, so one ``gain`` for both is off by
        up to half a network pixel on one of them (1.5 px at the bottom of a 4000×3003 photo).
        """
        out = boxes.astype(np.float32, copy=True)
        width, height = self.image_size
        resized_w, resized_h = self.resized
        gain_x, gain_y = resized_w / width, resized_h / height
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_left) / gain_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_top) / gain_y
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def scaled_size(width: int, height: int, gain: float) -> tuple[int, int]:
    """An image's (width, height) scaled by ``gain`` to whole pixels, as ultralytics' letterbox rounds them."""
    return max(round(width * gain), 1), max(round(height * gain), 1)


def letterbox(
    image: ImageArray, size: int, canvas: tuple[int, int] | None = None, *, out: ImageArray | None = None
) -> tuple[ImageArray, Letterbox]:
    """Resize ``image`` to fit a ``size``×``size`` square keeping its aspect ratio, and pad it with grey to
    ``canvas`` (width, height; default the square), centred.

    Same arithmetic as ultralytics' ``LetterBox(center=True)``, including its ``round(d ∓ 0.1)`` split of an odd
    padding; a canvas from :func:`network_canvas` of one image is its ``auto=True`` (minimal padding) shape.
    ``out``: a (height, width, 3) uint8 array of the canvas's size to write into (a reused scratch buffer).

    The image is resized straight into its place on the canvas and only the border strips are painted: one pass
    over the output instead of a resize, a padded copy and a conversion (0.65 → 0.3 ms for a 1280×854 frame).
    """
    require_rgb(image)
    height, width = image.shape[:2]
    gain = min(size / height, size / width)
    new_w, new_h = scaled_size(width, height, gain)
    canvas_w, canvas_h = canvas or (size, size)
    if canvas_w < new_w or canvas_h < new_h:
        raise ValueError(f"canvas {canvas_w}x{canvas_h} is smaller than the resized image {new_w}x{new_h}")
    dw, dh = (canvas_w - new_w) / 2, (canvas_h - new_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    if out is None:
        out = np.empty((canvas_h, canvas_w, 3), np.uint8)
    elif out.shape != (canvas_h, canvas_w, 3) or out.dtype != np.uint8:
        raise ValueError(f"out is {out.dtype} {out.shape}, expected uint8 {(canvas_h, canvas_w, 3)}")
    out[:top] = PAD_VALUE
    out[top + new_h :] = PAD_VALUE
    out[top : top + new_h, :left] = PAD_VALUE
    out[top : top + new_h, left + new_w :] = PAD_VALUE
    place = out[top : top + new_h, left : left + new_w]
    if (new_w, new_h) == (width, height):
        place[...] = image
    else:
        resized = cv2.resize(image, (new_w, new_h), dst=place, interpolation=cv2.INTER_LINEAR)
        if not np.shares_memory(resized, out):  # OpenCV builds without in-place ROI output: copy it in
            place[...] = resized
    return out, Letterbox(gain, left, top, (width, height))


def network_canvas(shapes: Sequence[tuple[int, ...]], size: int) -> tuple[int, int]:
    """The smallest network input (width, height), multiples of :data:`STRIDE`, that holds every image of a
    batch (``(height, width, ...)`` shapes) resized to fit ``size``.

    Why: a 16:9 tower frame letterboxed into the full square is 44 % grey padding that the network still
    convolves; a network exported with free height/width (and torch) takes the trimmed canvas instead, as
    ultralytics' own predictor does. The anchor grid follows the input size, so boxes are unchanged.
    """
    width = height = STRIDE
    for shape in shapes:
        if not shape[0] or not shape[1]:
            raise ValueError(f"an image of shape {tuple(shape)} has no pixels")
        scaled_w, scaled_h = scaled_size(shape[1], shape[0], min(size / shape[0], size / shape[1]))
        width, height = max(width, scaled_w), max(height, scaled_h)
    return -(-width // STRIDE) * STRIDE, -(-height // STRIDE) * STRIDE


def letterbox_batch(
    images: Sequence[ImageArray],
    size: int,
    *,
    trim: bool = False,
    pixels: bool = False,
    layout: InputLayout = "nchw",
) -> tuple[FloatArray, list[Letterbox]]:
    """The network input for a batch: float32 NCHW in [0, 1], RGB, plus each image's :class:`Letterbox`.

    ``trim`` letterboxes into :func:`network_canvas` (for networks that accept any height/width) instead of the
    ``size``×``size`` square. ``pixels`` gives the uint8 values instead (0–255, same layout), for int8 networks
    that take them directly: a quarter of the memory traffic and no float conversion. ``layout="blocks"`` (uint8
    only, so it needs ``pixels``) gives them as 2×2 blocks, channels last (:data:`InputLayout`).
    """
    if layout == "blocks" and not pixels:
        raise ValueError("the 'blocks' layout holds uint8 pixels: pass pixels=True")
    for image in images:  # before any work: network_canvas reads the shapes
        require_rgb(image)
    canvas_w, canvas_h = network_canvas([image.shape for image in images], size) if trim else (size, size)
    if layout == "blocks" and (canvas_w % 2 or canvas_h % 2):
        raise ValueError(f"the 'blocks' layout needs an even canvas, got {canvas_w}x{canvas_h}")
    shape = (
        (len(images), canvas_h // 2, canvas_w // 2, BLOCK_VALUES)
        if layout == "blocks"
        else (len(images), 3, canvas_h, canvas_w)
    )
    batch: npt.NDArray[Any] = np.empty(shape, np.uint8)  # uint8 until the float conversion at the end
    scratch = np.empty((canvas_h, canvas_w, 3), np.uint8)
    boxes: list[Letterbox] = []
    for i, image in enumerate(images):
        padded, box = letterbox(image, size, (canvas_w, canvas_h), out=scratch)
        if layout == "blocks":
            _blocks_into(padded, batch[i])
        else:
            # HWC → CHW: OpenCV's split writes each channel plane in place, ~5× faster than numpy's transposed copy.
            planes = cv2.split(padded, list(batch[i]))
            if not np.shares_memory(planes[0], batch):  # an OpenCV build that returned new planes instead
                batch[i] = padded.transpose(2, 0, 1)
        boxes.append(box)
    if pixels:
        return batch, boxes
    floats = batch.astype(np.float32)
    floats *= np.float32(1.0 / 255.0)
    return floats, boxes


def _blocks_into(image: ImageArray, out: ImageArray) -> None:
    """Write an (h, w, 3) uint8 image into ``out`` (h/2, w/2, 12) as 2×2 blocks (:data:`InputLayout`).

    Output row y interleaves image rows 2y and 2y + 1 in runs of two pixels (6 bytes). Seen as three uint16 values
    per run, that is OpenCV's merge of two 3-channel images into one of 6 channels: ~0.1 ms for a 640×448 canvas,
    where numpy's transposed copy of 6-byte runs takes ~0.6.
    """
    height, width = image.shape[:2]
    runs = np.ascontiguousarray(image).reshape(height // 2, 2, width * 3).view(np.uint16)
    pairs = runs.reshape(height // 2, 2, width // 2, 3)
    target = out.view(np.uint16).reshape(height // 2, width // 2, 6)
    merged = cv2.merge([pairs[:, 0], pairs[:, 1]], dst=target)
    if not np.shares_memory(merged, out):  # an OpenCV build that returned a new array instead
        out[...] = to_blocks(image.transpose(2, 0, 1)[None])[0]


def to_blocks(batch: ImageArray) -> ImageArray:
    """A uint8 NCHW batch (even height and width) in the ``"blocks"`` layout (:data:`InputLayout`), by numpy."""
    count, channels, height, width = batch.shape
    if channels != 3 or height % 2 or width % 2:
        raise ValueError(f"expected a (batch, 3, even height, even width) batch, got {batch.shape}")
    cells = batch.reshape(count, 3, height // 2, 2, width // 2, 2).transpose(0, 2, 4, 3, 5, 1)
    return np.ascontiguousarray(cells).reshape(count, height // 2, width // 2, BLOCK_VALUES)


def input_canvas(batch: npt.NDArray[np.generic], layout: InputLayout) -> tuple[int, int]:
    """The (height, width) in pixels of the images a network input ``batch`` of ``layout`` holds."""
    if layout == "blocks":
        return 2 * batch.shape[1], 2 * batch.shape[2]
    return batch.shape[2], batch.shape[3]


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
    float32 with torchvision's formula, so the kept set is torchvision's, except where scores tie exactly (the
    order among equal scores is the input order here, unspecified there). Stops after ``max_keep`` boxes, so
    its cost is bounded by the output size, not the input.
    """
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, i], dtype=np.float32) for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    limit = len(order) if max_keep is None else max_keep
    zero = np.float32(0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 for empty boxes: NaN, kept as torchvision does
        while order.size and len(keep) < limit:
            best = int(order[0])
            keep.append(best)
            rest = order[1:]
            # np.maximum(·, 0) rather than np.clip: the same values, without clip's Python-level wrapper (NMS
            # of a frame's ~100 candidates took 0.25 ms, most of it there).
            width = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), zero)
            height = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), zero)
            inter = width * height
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


def _best_class(scores: FloatArray) -> tuple[FloatArray, IntArray]:
    """Each anchor's best score and its class (the first on a tie, as ``argmax``) from ``(classes, anchors)``
    scores. One contiguous copy, then a running maximum over the classes: 0.014 ms for 8400 anchors where
    ``argmax`` over the strided rows of an anchors-first output plus the gather took 0.10."""
    rows = np.ascontiguousarray(scores, dtype=np.float32)
    best = rows[0].copy()
    class_id = np.zeros(rows.shape[1], np.int64)
    for k in range(1, rows.shape[0]):
        better = rows[k] > best
        class_id[better] = k
        np.maximum(best, rows[k], out=best)
    return best, class_id


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
        confidence, class_id = _best_class(prediction[box_channels:])
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
