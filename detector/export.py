"""Export a training checkpoint to ``models/``: ONNX (+ the stripped torch weights), evaluation, manifest, model card.

Why one function does all of it: a weights file is only deployable together with its measured numbers and the
licences it inherits, and re-exporting a later checkpoint must refresh all of them at once. The steps:

1. copy the checkpoint first (training rewrites ``best.pt`` every epoch) and strip it to fp16 model weights
   (``<name>.pt``, the torch backend's file — ultralytics itself stores fp16 weights the same way);
2. export the *same* fp16-rounded weights to ONNX with free batch, height and width and store its float32 weights as
   float16 plus a ``Cast`` (half the file, and lossless because the values are fp16 already; ONNX Runtime folds
   the casts when it loads the model, so inference still runs in fp32 at fp32 speed);
3. evaluate the ONNX model on the held-out split with :func:`detector.evaluate.evaluate`, picking the operating
   threshold with the best mean F1 among those that flag at most 5 % of the split's negatives
   (:data:`detector.evaluate.FALSE_ALARM_AIM`), raised until the int8 variant keeps within it too;
4. try a static int8 (QDQ) variant and keep it only if it loses at most :data:`MAX_QUANT_AP_DROP` AP50 on the same
   split *and* is faster;
5. optionally run the sequence verifier over the FIgLib tower clip (time to confirmation after ignition);
6. write ``manifest.json`` (sha256 of every file) and regenerate ``README.md`` (the model card).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from detector.backends import YoloDetector, onnx_network
from detector.detections import CLASS_NAMES, ModelInfo
from detector.error_analysis import FALSE_POSITIVE_KINDS, MISSED_KINDS, ErrorKind, count_errors, review_images
from detector.evaluate import (
    DEFAULT_EVAL_CONF,
    FALSE_ALARM_AIM,
    IMAGE_SUFFIXES,
    IOU_THRESHOLD,
    EvalReport,
    FolderRun,
    ap_label,
    detect_folder,
    evaluate,
)
from detector.images import ImageLoadError, load_image
from detector.manifest import (
    DEFAULT_MODELS_DIR,
    MANIFEST_NAME,
    Manifest,
    ModelEntry,
    TrainingSet,
    load_manifest,
    sha256_file,
    write_manifest,
)
from detector.rules import RulesDetector
from detector.sequence import DEFAULT_SEQUENCE_CONFIG, SequenceConfig, frame_threshold_for
from detector.train import (
    DEFAULT_PROJECT,
    DEFAULT_RUN_NAME,
    checkpoint_epoch,
    configure_offline,
    epochs_total,
    offline_guard,
    read_lineage,
)
from detector.yolo import BLOCK_VALUES, letterbox_batch

__all__ = [
    "DEFAULT_DATASET",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_TOWER_CLIP",
    "DEFAULT_WEIGHTS",
    "INT8_WEIGHT_BITS",
    "MAX_QUANT_AP_DROP",
    "ExportResult",
    "TowerCheck",
    "export_model",
    "render_card",
]

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS: Final[Path] = DEFAULT_PROJECT / DEFAULT_RUN_NAME / "weights" / "best.pt"
DEFAULT_DATASET: Final[Path] = Path("var/datasets/strawfire-v2")
DEFAULT_MODEL_NAME: Final[str] = "strawfire-yolov8n"
#: The FIgLib tower clip: frame i is (i − 20) minutes from ignition, one frame a minute.
DEFAULT_TOWER_CLIP: Final[Path] = Path(
    "../shared/data/videos/figlib_20190925_FIRE_wc-s-mobo-c_-20to+20min_1frame-per-min_4fps.mp4"
)
TOWER_IGNITION_FRAME: Final[int] = 20
#: A yolov8n run from scratch is usually planned at this many epochs; fewer is reported as an early checkpoint.
FULL_RUN_EPOCHS: Final[int] = 300
#: Where the plume is (normalised x1, y1, x2, y2): the FIgLib boxes of +0..+15 min span x 0–0.04, y 0.45–0.50;
#: the margin allows for the grown plume. An event elsewhere after ignition is a false event, not a detection.
TOWER_PLUME_REGION: Final[tuple[float, float, float, float]] = (0.0, 0.30, 0.15, 0.55)
#: The camera position's ignore mask (its own mast and structures), kept with the tests that use it.
DEFAULT_TOWER_MASK: Final[Path] = (
    DEFAULT_MODELS_DIR.parent / "tests" / "detector" / "data" / "figlib_wc-s-mobo-c_mask.json"
)
#: An int8 variant is kept only if its mean AP50 is at most this much below the fp32 model's.
MAX_QUANT_AP_DROP: Final[float] = 0.01
#: The int8 variant's weight range, in bits, unless asked otherwise (``strawfire detector export
#: --int8-weight-bits``). 7: every weight in [-64, 64] (ONNX Runtime's ``reduce_range``), except the stem's, which
#: keep 8 bits and read the pixels with 7 bits instead (:func:`_halve_pixels`). Why: on x86 CPUs without VNNI
#: (AVX2, or AVX-512 alone: Hygon, AMD EPYC before Zen 4, Xeons before Cascade Lake) ONNX Runtime multiplies uint8
#: activations by int8 weights with ``vpmaddubsw``, which sums each pair of products in 16 bits with saturation.
#: Full-range pairs reach 2 × 255 × 127 = 64,770; these reach at most 2 × 255 × 64 = 32,640 and, in the stem,
#: 2 × 127 × 127 = 32,258, under 32,767: every x86 CPU computes the same sums as a VNNI one, and the int8 variant
#: can be the CPU default everywhere (``tests/detector/test_int8_without_vnni.py`` runs it under ``qemu-x86_64
#: -cpu Haswell``). Measured on the 20261130-e344 weights, validation mAP50 (fp32 0.658): 8 bits 0.653, whose
#: outputs on 6 of 6 validation images changed under the emulated Haswell (by up to 8.9 in a logit); 7 bits
#: everywhere, stem included, 0.646; 7 bits on the stem alone 0.649, and 4 of 6 images still changed (the deeper
#: layers saturate too); this scheme 0.657, 0 of 8 images changed, at the same speed. 8 gives the full-range
#: variant, which on CPUs without VNNI gives way to the fp32 model (:func:`detector.backends.load_detector`).
INT8_WEIGHT_BITS: Final[int] = 7
#: Below this the fp32 model is too weak for "int8 keeps accuracy" to be measurable: the variant is not kept.
MIN_MAP_TO_COMPARE: Final[float] = 0.2
OPSET: Final[int] = 17
#: The card's second matching IoU, per source set: smoke has no edge, and one labeller's single plume box is
#: another's three; where AP at this IoU is far above AP50, the model found the object and boxed it otherwise.
CARD_LOOSE_IOU: Final[float] = 0.3
_CALIBRATION_IMAGES: Final[int] = 64


@dataclass(frozen=True)
class TowerCheck:
    """Sequence verification on the tower clip: when (if at all) smoke was confirmed relative to ignition."""

    clip: str
    masked: bool  # whether the position's ignore mask was applied
    frames: int
    ignition_frame: int
    events: list[dict[str, Any]]
    first_confirm_minutes: float | None  # minutes after ignition of the first confirmation on the plume
    false_events_before_ignition: int
    false_events_after_ignition: int  # confirmed after ignition but away from the plume
    tiles: tuple[int, int] | None = None  # also run on these overlapping tiles (detector.tiling)
    config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG  # the persistence rule and per-frame threshold it ran with
    auto_tiles: bool = False  # the tiles were chosen by ``--tiles auto`` for the clip's frame size


@dataclass(frozen=True)
class ExportResult:
    """What an export produced."""

    entry: ModelEntry
    quantized: ModelEntry | None
    quantization_note: str
    towers: list[TowerCheck]  # the tower clip without and with the position's mask (empty when absent)
    baseline: EvalReport | None  # the weights-free rules on the same split, for comparison
    manifest_path: Path
    card_path: Path


# ------------------------------------------------------------------------------------------------------------
# Checkpoint → torch weights → ONNX
# ------------------------------------------------------------------------------------------------------------


def _load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """(fp32 model, checkpoint dict) with ultralytics kept offline."""
    configure_offline(DEFAULT_MODELS_DIR.parent / "var" / "ultralytics", threads=1)
    with offline_guard():
        from ultralytics.nn.tasks import load_checkpoint

        model, ckpt = load_checkpoint(str(path), device=None, fuse=False)  # type: ignore[no-untyped-call]
    return model, ckpt


def _strip(source: Path, target: Path, *, init_epochs: int = 0) -> dict[str, Any]:
    """Write a model-only fp16 checkpoint (no optimizer, no EMA copy) and return the source's metadata.

    ``init_epochs``: epochs behind the weights the run started from; stored as ``epochs_total`` with this run's.
    Without it, a source that is itself one of our stripped exports keeps its own ``epochs_total``.
    """
    import torch

    model, ckpt = _load_checkpoint(source)
    yaml = getattr(model, "yaml", None) or {}
    epoch = checkpoint_epoch(ckpt)
    if not init_epochs:
        # One of our own stripped exports (e.g. models/*.pt re-exported) already counts its earlier runs.
        init_epochs = epochs_total(ckpt) - (epoch + 1)
    meta: dict[str, Any] = {
        "architecture": Path(str(yaml.get("yaml_file") or "yolo")).stem,
        "epoch": epoch,
        "date": ckpt.get("date"),
        "version": ckpt.get("version"),
        "train_args": dict(ckpt.get("train_args") or {}),
        "train_metrics": dict(ckpt.get("train_metrics") or {}),
        "init_epochs": init_epochs,
    }
    half = copy.deepcopy(model).half()
    for parameter in half.parameters():
        parameter.requires_grad_(False)
    payload = {
        "model": half,
        "epoch": meta["epoch"],
        "date": meta["date"],
        "version": meta["version"],
        "train_args": meta["train_args"],
        "train_metrics": meta["train_metrics"],
        "architecture": meta["architecture"],
        "epochs_total": init_epochs + epoch + 1,
        "license": "AGPL-3.0-or-later (strawfire; trained with ultralytics, AGPL-3.0)",
    }
    torch.save(payload, target)
    return meta


def _same_checkpoint(existing: Path, new: Path) -> bool:
    """Whether ``existing`` (a models/ file, if any) holds the same weights and metadata as ``new``, both written by
    :func:`_strip`: every tensor equal and every other entry equal."""
    if not existing.is_file():
        return False
    import torch

    try:
        old, fresh = (torch.load(path, map_location="cpu", weights_only=False) for path in (existing, new))
    except Exception:  # an unreadable or foreign file is simply replaced
        return False
    if {k: v for k, v in old.items() if k != "model"} != {k: v for k, v in fresh.items() if k != "model"}:
        return False
    a, b = old["model"].state_dict(), fresh["model"].state_dict()
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _export_onnx(weights: Path, target: Path, imgsz: int, metadata: dict[str, str]) -> None:
    """Export the stripped checkpoint to ONNX (dynamic batch) and store its weights as lossless fp16."""
    import onnx
    import torch

    model, _ = _load_checkpoint(weights)  # first: it puts ultralytics offline before anything imports it
    from ultralytics.nn.modules.block import C2f
    from ultralytics.nn.modules.head import Detect

    head_channels = 0  # set from the Detect head below
    for module in model.modules():
        if isinstance(module, C2f):
            # ``chunk`` traces to Shape → Gather → Div → Slice on the dynamic input; in the int8 graph that Shape
            # kept a dequantised, NCHW-transposed copy of every C2f's input alive just to read its channel count.
            # ``split`` with the sizes written out is one static Split (ultralytics' own exporter does the same
            # for every format but TensorFlow's). Same arithmetic.
            module.forward = module.forward_split  # type: ignore[method-assign]
        if isinstance(module, Detect):
            if getattr(module, "end2end", False):
                raise ValueError("end-to-end (NMS-free) heads are not supported by this export")
            # Stop before box decoding, anchors first: see _anchors_first_head.
            module.forward = types.MethodType(_anchors_first_head, module)  # type: ignore[method-assign]
            head_channels = int(module.no)
    if not head_channels:
        raise ValueError(f"{weights}: no YOLO Detect head in the model")
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    raw = target.with_suffix(".fp32.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns that Python booleans are taken from tensors (the head's shape cache: fixed for a fixed
        # input size), that the TorchScript exporter is legacy and that BN is kept: all expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(raw),
            opset_version=OPSET,
            input_names=["images"],
            output_names=["output0"],
            # Free height/width: callers letterbox into the smallest multiple-of-32 canvas that holds the image
            # (detector.yolo.network_canvas), which skips the grey padding of wide frames.
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}},
            dynamo=False,  # the TorchScript exporter needs no onnxscript and gives the graph ultralytics ships
            # Keep BatchNormalization nodes (the model is in eval mode): folding them into the convolutions here
            # would make the weights non-fp16-exact; ONNX Runtime folds them itself when it loads the model.
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    proto = onnx.load(str(raw))
    # The tracer leaves the channel count symbolic; declared as the number it is, it tells onnx_network the layout.
    channels = proto.graph.output[0].type.tensor_type.shape.dim[2]
    channels.ClearField("dim_param")
    channels.dim_value = head_channels
    onnx.save(proto, str(raw))  # the float32 copy the int8 variant is quantised from
    _store_fp16(proto)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(target))


def _anchors_first_head(self: Any, features: list[Any]) -> Any:
    """The detection head for export (replaces ``Detect.forward``): ``(batch, anchors, 4 × REG_MAX + nc)``, each
    anchor's DFL box logits then its class scores, levels P3 → P5 with rows then columns inside a level.

    Why not ultralytics' output: its box decoding for every anchor cost ~15 % of the int8 network's time, while
    :func:`detector.yolo.postprocess` decodes only the candidates ("dfl" layout). And anchors before channels:
    ONNX Runtime runs the int8 convolutions channels-last (NHWC), so a head output of (batch, channels, anchors)
    made it transpose every level back; in this order the transposes cancel.
    :func:`detector.backends.onnx_network` hands the output on as (batch, channels, anchors), a view.
    """
    import torch

    levels = []
    for index, feature in enumerate(features):
        level = torch.cat((self.cv2[index](feature), self.cv3[index](feature).sigmoid()), 1)
        levels.append(level.permute(0, 2, 3, 1).reshape(level.shape[0], -1, self.no))
    return torch.cat(levels, 1)


def _store_fp16(proto: Any) -> None:
    """Replace float32 initializers that are exactly representable in fp16 by fp16 ones plus a Cast to float32."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts = []
    for init in list(graph.initializer):
        values = numpy_helper.to_array(init)
        if values.dtype != np.float32 or values.size < 16:
            continue
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue  # not fp16-exact: keep it as is, the export must stay lossless
        stored = numpy_helper.from_array(half, f"{init.name}__fp16")
        graph.initializer.remove(init)
        graph.initializer.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)


# ------------------------------------------------------------------------------------------------------------
# int8 variant
# ------------------------------------------------------------------------------------------------------------


def _calibration_batches(images_dir: Path, imgsz: int, count: int) -> Iterator[dict[str, np.ndarray]]:
    """Letterboxed training images, one per batch, evenly spread over the sorted folder."""
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    step = max(1, len(paths) // count)
    for path in paths[::step][:count]:
        try:
            image = load_image(path)
        except ImageLoadError:
            continue
        batch, _ = letterbox_batch([image.pixels], imgsz)
        yield {"images": batch}


def _check_weight_bits(weight_bits: int) -> None:
    if weight_bits not in (7, 8):
        raise ValueError(f"int8 weights take 7 or 8 bits, not {weight_bits}")


def _int8_precision(upsamplings: int, weight_bits: int) -> str:
    """The int8 variant's precision line for the manifest and card; ``upsamplings``: how many of the neck's
    upsamplings :func:`_nhwc_upsampling` rewrote."""
    copies = f"; {upsamplings} neck upsampling{'s' if upsamplings != 1 else ''} as uint8 copies" if upsamplings else ""
    weights = "per-channel weights"
    if weight_bits == 7:
        weights = "per-channel 7-bit weights, the stem's 8-bit on 7-bit pixels: exact without VNNI"
    return (
        f"int8 static QDQ (every convolution; {weights}; one range per concatenation; uint8 pixel input;"
        f" space-to-depth stem taking 2x2 pixel blocks channels last{copies})"
    )


#: The last convolution of each class branch (its output is the class logits); the group is the head's layer
#: index (22 in yolov8n, 23 in yolo11n).
_CLASS_LOGITS: Final = re.compile(r"/model\.(\d+)/cv3\.\d+/cv3\.\d+\.2/Conv$")
#: Head nodes that are quantised, after the head's "/model.N/" prefix: every convolution (and activation) of each
#: box (cv2) / class (cv3) branch. The sigmoid and the concatenations after them stay float.
_QUANTISED_HEAD: Final = re.compile(r"cv[23]\.\d+/cv[23]\.\d+\.[012]/")
#: The int8 range of the class logits: confidence 0.0005 (half the lowest confidence anything asks for,
#: evaluation's DEFAULT_EVAL_CONF: everything under it is dropped anyway) to 0.9997. Calibration spreads the 256
#: steps over what it sees, about [-50, 2.5]: a step of 0.2, ±0.025 in confidence at the operating threshold,
#: enough to move validation negatives across it. Over this range the step is 0.06. The top is kept high: logits
#: above it would all read as one confidence, and ties among the strongest boxes cost AP (at +5.3, mAP50 fell by
#: 0.01). The bottom must lie under every caller's threshold, or every anchor becomes a candidate at the bottom
#: value (at −5.3, evaluation's NMS ran into its 300-box cap on every image).
_CLASS_LOGIT_RANGE: Final[tuple[float, float]] = (-math.log(2 / DEFAULT_EVAL_CONF - 1), 8.0)


def _head_prefix(nodes: Iterable[Any]) -> str:
    """The node-name prefix of the detection head ("/model.22/" in yolov8n), told by its class convolutions."""
    indices = {match.group(1) for node in nodes if (match := _CLASS_LOGITS.fullmatch(node.name))}
    if len(indices) != 1:
        raise ValueError(f"expected the class convolutions of one detection head, found head layers {sorted(indices)}")
    return f"/model.{indices.pop()}/"


def _quantize(
    fp32_onnx: Path, target: Path, calibration_dir: Path, imgsz: int, *, weight_bits: int = INT8_WEIGHT_BITS
) -> str:
    """Static int8 QDQ quantisation of the network, per-channel weights, calibrated on training images, with the
    graph rewrites after it; returns the precision line (:func:`_int8_precision`). ``weight_bits``: 8 or 7
    (:data:`INT8_WEIGHT_BITS`)."""
    _check_weight_bits(weight_bits)
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # untyped base class
        def __init__(self) -> None:
            self._batches = _calibration_batches(calibration_dir, imgsz, _CALIBRATION_IMAGES)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    prepared = target.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
    nodes = list(onnx.load(str(prepared)).graph.node)
    # Every convolution is quantised, and also the activations, add, concat, pooling and resize between them, so
    # activations stay int8 from one convolution to the next instead of bouncing through float (1.6x faster than
    # quantising the convolutions alone, same mAP). The head's sigmoid and the concatenation of DFL logits
    # (unbounded) with class scores (0–1) stay float: one int8 scale could not serve both. Each last convolution
    # of a box/class branch has its own output scale; quantising them (and so skipping ONNX Runtime's float
    # NCHWc reorders there) saved ~1.7 ms of ~25 per 640 px frame, validation mAP50 within 0.005.
    head = _head_prefix(nodes)
    head_nodes = [
        node.name for node in nodes if node.name.startswith(head) and not _QUANTISED_HEAD.match(node.name, len(head))
    ]
    overrides = _concat_ranges(prepared, nodes, Reader, excluded=set(head_nodes))
    for node in nodes:
        if _CLASS_LOGITS.match(node.name):
            overrides[node.output[0]] = _CLASS_LOGIT_RANGE
    tensor_overrides: dict[str, list[dict[str, Any]]] = {
        name: [{"rmin": np.float32(low), "rmax": np.float32(high)}] for name, (low, high) in overrides.items()
    }
    if weight_bits == 7:
        # The stem keeps full-range weights and reads 7-bit pixels instead (_halve_pixels): its input scale is
        # 2/255 from the start, so that the quantiser's bias scales (input × weight scale) match it.
        stem = next(node for node in nodes if node.op_type == "Conv")
        tensor_overrides[stem.input[1]] = [{"axis": 0, "reduce_range": False}]
        # (1-element arrays: the quantiser squeezes them, and a 0-d array would come out as a numpy scalar)
        pixels = {"scale": np.array([2 / 255], np.float32), "zero_point": np.array([0], np.uint8)}
        tensor_overrides[stem.input[0]] = [pixels]
    quantize_static(
        str(prepared),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=weight_bits == 7,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=head_nodes,
        extra_options={"TensorQuantOverrides": tensor_overrides},
    )
    prepared.unlink(missing_ok=True)
    model = onnx.load(str(target))
    pixel_shift = 1 if weight_bits == 7 else 0
    _take_pixels(model, pixel_shift=pixel_shift)
    _space_to_depth_stem(model)
    _channels_last_blocks(model)
    upsamplings = _nhwc_upsampling(model)
    if pixel_shift:
        _halve_pixels(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return _int8_precision(upsamplings, weight_bits)


#: Operators whose output holds the values of their (first) input, rearranged or subsampled: in a group with the
#: tensors a Concat joins, they share its range.
_PASS_THROUGH: Final[frozenset[str]] = frozenset({"Split", "Resize", "MaxPool"})


def _concat_ranges(
    prepared: Path, nodes: Iterable[Any], reader: Callable[[], Any], *, excluded: set[str]
) -> dict[str, tuple[float, float]]:
    """One calibrated range for every group of tensors that a Concat joins (with what Split, Resize and MaxPool
    pass through unchanged): the union of their ranges, for the quantiser to use instead of each tensor's own.

    Why: with one scale and zero point on all its inputs and its output, ONNX Runtime's int8 concatenation copies
    bytes instead of requantising every input through a lookup table (3x faster in isolation; the 13 concatenations
    of the YOLOv8 neck and C2f blocks took ~1.9 of ~22 ms per 640 px frame, 0.8 after). The ranges it joins are
    within a factor of 1.8 of each other in every group (calibrated maxima from 5.7 to 24 across groups), so a
    shared range costs an input at most one bit of resolution; validation mAP50 was 0.651 without it and 0.657
    with it. This is a calibration pass of its own,
    before the quantiser's: ONNX Runtime's quantiser takes ranges only as overrides. ``nodes``: the graph of
    ``prepared``, as the caller has read it.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    augmented = prepared.with_suffix(".augmented.onnx")
    try:
        calibrator = create_calibrator(
            str(prepared), augmented_model_path=str(augmented), calibrate_method=CalibrationMethod.MinMax
        )
        calibrator.collect_data(reader())
        calibrated = calibrator.compute_data()
    finally:
        augmented.unlink(missing_ok=True)
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    joined: set[str] = set()
    for node in nodes:
        if node.name in excluded:
            continue
        if node.op_type == "Concat":
            joined.add(node.output[0])
            for name in node.input:
                parent[root(name)] = root(node.output[0])
        elif node.op_type in _PASS_THROUGH:
            for name in node.output:
                parent[root(name)] = root(node.input[0])
    groups: dict[str, list[str]] = {}
    for name in list(parent):
        groups.setdefault(root(name), []).append(name)
    ranges: dict[str, tuple[float, float]] = {}
    for members in groups.values():
        known = [name for name in members if name in calibrated.data]
        if not joined & set(members) or len(known) < 2:
            continue
        bounds = np.array([np.asarray(calibrated[name].range_value, np.float64).reshape(2) for name in known])
        for name in known:
            ranges[name] = (float(bounds[:, 0].min()), float(bounds[:, 1].max()))
    return ranges


def _readers(graph: Any, tensor: str) -> list[Any]:
    """The nodes of ``graph`` that take ``tensor`` as an input."""
    return [node for node in graph.node if tensor in node.input]


def _producers(graph: Any, tensor: str) -> list[Any]:
    """The nodes of ``graph`` that output ``tensor`` (one in a valid graph; none for an input or initializer)."""
    return [node for node in graph.node if tensor in node.output]


def _take_pixels(model: Any, *, pixel_shift: int = 0) -> None:
    """Make the int8 model take the letterboxed uint8 pixels as its input, instead of floats in [0, 1].

    The quantised graph starts with QuantizeLinear(pixels / 255) → DequantizeLinear. With the input's scale set
    to exactly 1/255 and zero point 0 — the range [0, 1] every input has, which calibration finds anyway when an
    image has a white pixel — that quantisation returns the pixel values themselves. So the QuantizeLinear is
    dropped and the uint8 pixels feed the DequantizeLinear (which ONNX Runtime folds into the first QLinearConv):
    the caller skips the float conversion, and the network its one float-to-int8 pass. Same output, bit for bit,
    when calibration saw a white pixel (tested), about 1 ms less per 640 px image on one core. Anything else at
    the input (a shared or non-constant scale, a non-zero zero point) is refused with a ValueError, which keeps
    the fp32 model only. ``model``: the quantised ``onnx.ModelProto``, changed in place. ``pixel_shift``: 1 when
    the stem reads 7-bit pixels (input scale 2/255, see :func:`_halve_pixels`, which inserts the shift after the
    other rewrites).
    """
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    source = graph.input[0].name
    quantize = _readers(graph, source)
    if len(quantize) != 1 or quantize[0].op_type != "QuantizeLinear" or len(quantize[0].input) < 3:
        raise ValueError(f"expected the input to feed one QuantizeLinear, got {[n.op_type for n in quantize]}")
    node = quantize[0]
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    consumers = _readers(graph, node.output[0])
    if not consumers or any(other.op_type != "DequantizeLinear" or len(other.input) < 3 for other in consumers):
        raise ValueError(f"the quantised input feeds {[n.op_type for n in consumers]}, not DequantizeLinear")
    names = {node.input[1], node.input[2]} | {name for other in consumers for name in other.input[1:3]}
    if not names <= initializers.keys():
        raise ValueError(f"the input's scale or zero point is not a constant ({sorted(names)})")
    shared = [n.name or n.op_type for n in graph.node if n is not node and n not in consumers and names & set(n.input)]
    if shared:
        raise ValueError(f"the input's scale or zero point is also used by {shared}")
    for name in {node.input[2]} | {other.input[2] for other in consumers}:
        zero_point = numpy_helper.to_array(initializers[name])
        if zero_point.dtype != np.uint8 or zero_point.size != 1 or int(zero_point.reshape(())) != 0:
            raise ValueError(f"the input's zero point is {zero_point!r}, not uint8 0")
    calibrated = float(numpy_helper.to_array(initializers[node.input[1]]).reshape(()))
    step = float(1 << pixel_shift)
    if abs(calibrated * 255.0 - step) > 1e-6:
        # Calibration saw no white pixel: [0, 1] is the true input range, and using it is at least as exact.
        log.info("input scale %.9g (calibrated) replaced by %g/255", calibrated, step)
    for other in consumers:
        other.input[0] = source
        scale = other.input[1]
        initializers[scale].CopyFrom(numpy_helper.from_array(np.array(step / 255.0, np.float32), scale))
    graph.node.remove(node)
    graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8


def _halve_pixels(model: Any) -> None:
    """Make the int8 model read its pixels with 7 bits (value // 2; the input scale is already 2/255, see
    :func:`_take_pixels`), for the stem's full-range weights: a pair of products then stays at most
    2 × 127 × 127 = 32,258 (see :data:`INT8_WEIGHT_BITS`). A right shift at the input, before the byte
    rearrangements (Transpose, SpaceToDepth) that lead to the stem's DequantizeLinear; it floors where the
    quantiser's float path would round half to even, an offset of at most one 255th of the pixel range. It costs
    0.8 ms of a 640×640 frame on one core (ONNX Runtime's BitShift is not vectorised), which keeps the model's
    input the plain pixels every caller already gives it.
    ``model``: changed in place, after the other rewrites (which expect the pixels to feed them directly).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    source = graph.input[0].name
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    reached, dequantize = [source], []
    while reached:
        for node in _readers(graph, reached.pop()):
            if node.op_type in ("Transpose", "SpaceToDepth"):
                reached.append(node.output[0])
            elif node.op_type == "DequantizeLinear":
                dequantize.append(node)
            else:
                raise ValueError(f"the pixels reach {node.op_type} {node.name!r} before a DequantizeLinear")
    scales = {float(numpy_helper.to_array(initializers[node.input[1]]).reshape(())) for node in dequantize}
    if not dequantize or any(abs(scale * 255.0 - 2.0) > 1e-6 for scale in scales):
        raise ValueError(f"the pixels reach no DequantizeLinear of scale 2/255 (scales {sorted(scales)})")
    halved = f"{source}_halved"
    for node in _readers(graph, source):
        for i, name in enumerate(node.input):
            if name == source:
                node.input[i] = halved
    graph.initializer.append(numpy_helper.from_array(np.array(1, np.uint8), "pixel_shift"))
    graph.node.insert(
        0, helper.make_node("BitShift", [source, "pixel_shift"], [halved], "stem/HalvePixels", direction="RIGHT")
    )


#: Where each tap of a 3×3 stride-2 kernel lands after a 2×2 space-to-depth: kernel offset → (offset in blocks
#: of the 2×2 kernel that replaces it, offset inside the block). Rows 2y − 1, 2y, 2y + 1 of output row y are
#: block y − 1's second row, block y's first and block y's second.
_STEM_TAPS: Final[dict[int, tuple[int, int]]] = {0: (0, 1), 1: (1, 0), 2: (1, 1)}


def _space_to_depth_stem(model: Any) -> None:
    """Rewrite the int8 model's first convolution (3×3, stride 2, padding 1, 3 input channels) as a
    ``SpaceToDepth(2)`` of the pixels followed by a 2×2 stride-1 convolution over 12 channels (padding 1 top/left).

    Why: ONNX Runtime's int8 convolution kernels work on channel groups, and with 3 input channels the stem
    convolution took ~4.6 of ~28 ms per 640 px frame on one core, at a tenth of the speed of the layers after it.
    Over 12 channels it takes ~2. The rewrite is exact: the same int8 weights (the new kernel holds each of them
    once, zeros elsewhere), the same per-channel scales and bias, and the padding is zero in both, so the integer
    sums and the output are the same bit for bit (tested). Canvas sides are multiples of 32, so the space-to-depth
    never meets an odd side. The graph keeps taking plain NCHW uint8 pixels. ``model``: the ``onnx.ModelProto``
    after :func:`_take_pixels`, changed in place. Anything else at the input raises ValueError (and export keeps
    the fp32 model only).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    source = graph.input[0].name
    consumers = _readers(graph, source)
    if len(consumers) != 1 or consumers[0].op_type != "DequantizeLinear":
        raise ValueError(f"expected the pixels to feed one DequantizeLinear, got {[n.op_type for n in consumers]}")
    pixels = consumers[0]
    convs = _readers(graph, pixels.output[0])
    if len(convs) != 1 or convs[0].op_type != "Conv" or convs[0].input[0] != pixels.output[0]:
        raise ValueError(f"expected the pixels to feed one convolution, got {[n.op_type for n in convs]}")
    conv = convs[0]
    attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in conv.attribute}
    expected = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    if (
        any(list(attributes.get(key, [])) != value for key, value in expected.items())
        or attributes.get("group", 1) != 1
        or list(attributes.get("dilations", [1, 1])) != [1, 1]
        or attributes.get("auto_pad", b"NOTSET") != b"NOTSET"
    ):
        raise ValueError(f"the first convolution is not 3x3 stride 2 padding 1 ({attributes})")
    weight_nodes = _producers(graph, conv.input[1])
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    if (
        len(weight_nodes) != 1
        or weight_nodes[0].op_type != "DequantizeLinear"
        or (weight_nodes[0].input[0] not in initializers)
    ):
        raise ValueError("the first convolution's weights are not a dequantised constant")
    weight_name = weight_nodes[0].input[0]
    if len(_readers(graph, weight_name)) != 1:
        raise ValueError("the first convolution's weights are shared with another node")
    zero_point = weight_nodes[0].input[2] if len(weight_nodes[0].input) > 2 else ""
    if zero_point and (zero_point not in initializers or np.any(numpy_helper.to_array(initializers[zero_point]))):
        # The new kernel's added taps are integer 0: they read as weight 0 only with a zero point of 0.
        raise ValueError("the first convolution's weights have a non-zero zero point")
    weights = numpy_helper.to_array(initializers[weight_name])
    outputs, channels = weights.shape[:2]
    if weights.shape[2:] != (3, 3):
        raise ValueError(f"first-convolution weights of shape {weights.shape}, expected (o, c, 3, 3)")
    stem = np.zeros((outputs, 4 * channels, 2, 2), weights.dtype)
    for ky, (dy, by) in _STEM_TAPS.items():
        for kx, (dx, bx) in _STEM_TAPS.items():
            block = (by * 2 + bx) * channels  # SpaceToDepth's channel order: (row in block, column in block, c)
            stem[:, block : block + channels, dy, dx] = weights[:, :, ky, kx]
    initializers[weight_name].CopyFrom(numpy_helper.from_array(stem, weight_name))
    del conv.attribute[:]
    conv.attribute.extend(
        [
            helper.make_attribute("kernel_shape", [2, 2]),
            helper.make_attribute("strides", [1, 1]),
            helper.make_attribute("pads", [1, 1, 0, 0]),
            helper.make_attribute("dilations", [1, 1]),
            helper.make_attribute("group", 1),
        ]
    )
    blocks = f"{source}_space_to_depth"
    position = list(graph.node).index(pixels)
    graph.node.insert(
        position, helper.make_node("SpaceToDepth", [source], [blocks], blocksize=2, name="stem/SpaceToDepth")
    )
    pixels.input[0] = blocks


def _channels_last_blocks(model: Any) -> None:
    """Make the int8 model take its pixels as 2×2 blocks, channels last — uint8 (batch, height/2, width/2, 12),
    the ``"blocks"`` :data:`~detector.yolo.InputLayout` — instead of NCHW pixels through ``SpaceToDepth``.

    Why: ONNX Runtime runs the quantised convolutions channels last (NHWC). For the stem it ran the SpaceToDepth
    on NCHW and then a Transpose to NHWC: 0.4–1.0 ms per 640×448 frame together. The graph now starts with a
    Transpose to NCHW, which ONNX Runtime's layout optimiser cancels against its own, so neither runs; the caller
    lays out the blocks from the letterboxed image in ~0.1 ms (``detector.yolo.letterbox_batch``), and no longer
    splits it into channel planes. Same values reach the first convolution, so the output is the same bit for bit
    (tested). ``model``: the ``onnx.ModelProto`` after :func:`_space_to_depth_stem`, changed in place; anything
    else at the input raises ValueError.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    source = graph.input[0]
    readers = _readers(graph, source.name)
    if len(readers) != 1 or readers[0].op_type != "SpaceToDepth":
        raise ValueError(f"expected the pixels to feed one SpaceToDepth, got {[n.op_type for n in readers]}")
    space_to_depth = readers[0]
    blocksize = next((helper.get_attribute_value(a) for a in space_to_depth.attribute if a.name == "blocksize"), 0)
    if blocksize != 2 or source.type.tensor_type.elem_type != TensorProto.UINT8:
        raise ValueError(f"expected a SpaceToDepth(2) of uint8 pixels, got blocksize {blocksize}")
    old_dims = list(source.type.tensor_type.shape.dim)
    if len(old_dims) != 4:
        raise ValueError(f"expected an NCHW pixel input, got {len(old_dims)} dimensions")
    position = list(graph.node).index(space_to_depth)
    graph.node.remove(space_to_depth)
    graph.node.insert(
        position,
        helper.make_node(
            "Transpose", [_BLOCKS_INPUT], [space_to_depth.output[0]], perm=[0, 3, 1, 2], name="stem/ChannelsFirst"
        ),
    )
    graph.input.remove(source)
    graph.input.insert(0, helper.make_tensor_value_info(_BLOCKS_INPUT, TensorProto.UINT8, [None] * 4))
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[0].CopyFrom(old_dims[0])  # the batch dimension as it was (named, fixed or unnamed)
    for new, old, name in ((dims[1], old_dims[2], "block_rows"), (dims[2], old_dims[3], "block_columns")):
        if old.HasField("dim_value"):
            new.dim_value = old.dim_value // 2  # a fixed-size export stays fixed: onnx_network reads it so
        else:
            new.dim_param = name
    dims[3].dim_value = BLOCK_VALUES


#: The int8 model's input name since it takes the ``"blocks"`` layout (the fp32 model's is "images").
_BLOCKS_INPUT: Final[str] = "pixel_blocks"


def _nhwc_upsampling(model: Any) -> int:
    """Rewrite each nearest-neighbour 2× upsampling of the int8 model (the neck's ``Resize``, between a
    DequantizeLinear and a QuantizeLinear of the same scale and zero point) as a uint8 copy in channels-last order:
    Transpose to NHWC, Unsqueeze, Expand ×2 along height and width, Reshape, Transpose back. Returns how many.

    Why: ONNX Runtime moves the Resize into its NHWC layout, where its uint8 nearest kernel is slow: the two took
    ~0.6 ms of a 640×448 frame alone and ~1 ms in the network (an NCHW Resize of the same data takes 0.03). Expand
    copies whole channel rows instead (0.07 ms for both), and the layout optimiser cancels both Transposes against
    its own. Nearest upsampling copies values, so with equal scales on both sides the int8 values are the output
    exactly (tested bit for bit). Any other Resize (another mode or factor, unequal scales or zero-point types, a
    tensor that is also a graph output) is left as it is, and so is every Resize below opset 13 (Unsqueeze's axes
    input).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        log.info("upsamplings left as they are: opset %d has no Unsqueeze with an axes input", opset)
        return 0
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    graph_outputs = {output.name for output in graph.output}

    def constant(name: str) -> np.ndarray | None:
        if name in initializers:
            return np.asarray(numpy_helper.to_array(initializers[name]))
        for node in graph.node:
            if node.op_type == "Constant" and name in node.output:
                value = next((a for a in node.attribute if a.name == "value"), None)
                return np.asarray(numpy_helper.to_array(value.t)) if value is not None else None
        return None

    def same_quantisation(dequantize: Any, quantize: Any) -> bool:
        if len(dequantize.input) != len(quantize.input):
            return False
        for a, b in zip(dequantize.input[1:], quantize.input[1:], strict=True):
            first, second = constant(a), constant(b)
            if first is None or second is None or first.dtype != second.dtype or not np.array_equal(first, second):
                return False
        return True

    rewritten = 0
    for resize in [node for node in graph.node if node.op_type == "Resize"]:
        attributes = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
        scales_name = resize.input[2] if len(resize.input) > 2 else ""
        scales = constant(scales_name) if scales_name else None
        producers = _producers(graph, resize.input[0])
        readers = _readers(graph, resize.output[0])
        if (
            attributes.get("mode") != b"nearest"
            or attributes.get("coordinate_transformation_mode") != b"asymmetric"
            or attributes.get("nearest_mode") != b"floor"
            or scales is None
            or scales.tolist() != [1.0, 1.0, 2.0, 2.0]
            or len(producers) != 1
            or producers[0].op_type != "DequantizeLinear"
            or len(readers) != 1
            or readers[0].op_type != "QuantizeLinear"
            or {resize.input[0], resize.output[0]} & graph_outputs
            or not same_quantisation(producers[0], readers[0])
        ):
            log.info("%s left as it is: not a 2x nearest upsampling between equal int8 scales", resize.name)
            continue
        dequantize, quantize = producers[0], readers[0]
        prefix = resize.name or f"upsample{rewritten}"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(values, np.int64), f"{prefix}/{name}")
                for name, values in (("factor", [1, 2, 2, 1]), ("axes", [2, 4]), ("twice", [1, 1, 2, 1, 2, 1]))
            ]
        )
        nodes = [
            helper.make_node("Transpose", [dequantize.input[0]], [f"{prefix}/nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node("Shape", [f"{prefix}/nhwc"], [f"{prefix}/shape"]),
            helper.make_node("Mul", [f"{prefix}/shape", f"{prefix}/factor"], [f"{prefix}/upsampled_shape"]),
            helper.make_node("Unsqueeze", [f"{prefix}/nhwc", f"{prefix}/axes"], [f"{prefix}/cells"]),
            helper.make_node("Expand", [f"{prefix}/cells", f"{prefix}/twice"], [f"{prefix}/copies"]),
            helper.make_node("Reshape", [f"{prefix}/copies", f"{prefix}/upsampled_shape"], [f"{prefix}/upsampled"]),
            helper.make_node("Transpose", [f"{prefix}/upsampled"], [quantize.output[0]], perm=[0, 3, 1, 2]),
        ]
        for index, node in enumerate(nodes):
            node.name = f"{prefix}/{node.op_type}{index}"
        position = list(graph.node).index(resize)
        graph.node.remove(resize)
        graph.node.remove(quantize)
        removed = {resize.output[0]}
        if not _readers(graph, dequantize.output[0]) and dequantize.output[0] not in graph_outputs:
            graph.node.remove(dequantize)
            removed.add(dequantize.output[0])
            position -= 1
        for offset, node in enumerate(nodes):
            graph.node.insert(position + offset, node)
        _drop_unused(graph, [*resize.input[1:], *quantize.input[1:], *dequantize.input[1:]], removed)
        rewritten += 1
    return rewritten


def _drop_unused(graph: Any, constants: Iterable[str], tensors: set[str]) -> None:
    """Remove the initializers among ``constants`` that no node reads any more (ONNX Runtime warns about each at
    load), and the shape annotations of ``tensors``, which no longer exist."""
    read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
    for tensor in [t for t in graph.initializer if t.name in set(constants) and t.name not in read]:
        graph.initializer.remove(tensor)
    for info in [v for v in graph.value_info if v.name in tensors]:
        graph.value_info.remove(info)


# ------------------------------------------------------------------------------------------------------------
# Evaluation helpers
# ------------------------------------------------------------------------------------------------------------


def _detector(path: Path, info: ModelInfo, threads: int | None) -> YoloDetector:
    return YoloDetector(onnx_network(path, threads=threads), info)


def _speed_ms(*detectors: YoloDetector, imgsz: int, rounds: int = 5, repeats: int = 10) -> list[float]:
    """Per-image time (network + pre/post-processing, batch 1, fixed synthetic image) of each detector.

    The detectors take turns for ``rounds`` rounds and each keeps its best round, so that a load change on this
    shared machine does not decide a comparison between them.
    """
    image = np.full((imgsz, imgsz, 3), 114, np.uint8)
    best = [float("inf")] * len(detectors)
    for detector in detectors:
        detector.detect([image])
    for _ in range(rounds):
        for index, detector in enumerate(detectors):
            started = time.perf_counter()
            for _ in range(repeats):
                detector.detect([image])
            best[index] = min(best[index], 1000.0 * (time.perf_counter() - started) / repeats)
    return best


def _tower_check(
    detector: YoloDetector,
    clip: Path,
    config: SequenceConfig,
    mask: Path | None,
    *,
    auto_tiles: bool = False,
) -> TowerCheck:
    from detector.clips import score_watch
    from detector.tiling import TiledDetector, with_tiles
    from detector.watch import load_mask, watch

    watched = with_tiles(detector, None) if auto_tiles else detector
    result = watch(watched, clip, config=config, mask=load_mask(mask) if mask else None)
    width, height = result.frame_size or (1, 1)
    grid = watched.grid(width, height) if isinstance(watched, TiledDetector) else (1, 1)
    score = score_watch(result, TOWER_IGNITION_FRAME, TOWER_PLUME_REGION)  # as `strawfire detector eval-clips` scores
    found = score.detection_frame
    return TowerCheck(
        clip=clip.name,
        masked=mask is not None,
        frames=result.frames,
        ignition_frame=TOWER_IGNITION_FRAME,
        events=result.event_dicts(),
        first_confirm_minutes=None if found is None else float(found - TOWER_IGNITION_FRAME),
        false_events_before_ignition=score.false_before_ignition,
        false_events_after_ignition=score.false_after_ignition,
        tiles=grid if grid != (1, 1) else None,
        config=config,
        auto_tiles=auto_tiles,
    )


def tower_rule(config: SequenceConfig | None, operating_threshold: float) -> SequenceConfig:
    """The rule an export watches the tower clip with: ``config`` as given, else the default rule at the model's
    own per-frame threshold (the one ``strawfire detector watch`` and the patrol pipeline use)."""
    if config is not None:
        return config
    return DEFAULT_SEQUENCE_CONFIG.for_model(operating_threshold)


def _tower_checks(
    detector: YoloDetector, clip: Path | None, mask: Path | None, config: SequenceConfig
) -> list[TowerCheck]:
    """The tower clip (a video or a folder of frames) on the whole frame (watch's default) and with ``--tiles auto``,
    each without and with the position's mask (when it exists); none when the clip is absent."""
    if clip is None or not clip.exists():
        return []
    position_mask = mask if mask is not None and mask.is_file() else None
    masks = [None] if position_mask is None else [None, position_mask]
    return [_tower_check(detector, clip, config, each, auto_tiles=auto) for auto in (False, True) for each in masks]


def _training_sets(dataset: Path) -> tuple[str, tuple[TrainingSet, ...]]:
    """Dataset name and per-source licences from the dataset's ``manifest.json`` (the licences go on the model
    card: no export without them)."""
    path = dataset / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: not a dataset built by `strawfire detector dataset build` (its manifest records the sources "
            "and licences the model card must list)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable dataset manifest ({exc})") from exc
    try:
        sets = tuple(
            TrainingSet(
                source=source,
                licence=info["licence"],
                attribution=info["attribution"],
                url=info["url"],
                images={k: int(v) for k, v in info["images"].items()},
            )
            for source, info in data["sources"].items()
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"{path}: a dataset manifest needs sources with licence, attribution, url, images ({exc!r})"
        ) from exc
    return str(data.get("name", dataset.name)), sets


# ------------------------------------------------------------------------------------------------------------
# The export
# ------------------------------------------------------------------------------------------------------------


def export_model(
    weights: Path = DEFAULT_WEIGHTS,
    *,
    name: str = DEFAULT_MODEL_NAME,
    version: str | None = None,
    models_dir: Path = DEFAULT_MODELS_DIR,
    dataset: Path = DEFAULT_DATASET,
    split: str = "val",
    quantize: bool = True,
    int8_weight_bits: int = INT8_WEIGHT_BITS,
    threads: int | None = None,
    tower_clip: Path | None = DEFAULT_TOWER_CLIP,
    tower_mask: Path | None = DEFAULT_TOWER_MASK,
    sequence_config: SequenceConfig | None = None,
    set_default: bool = True,
    compare_rules: bool = True,
) -> ExportResult:
    """Export ``weights`` as model ``name`` into ``models_dir`` and refresh the manifest and model card.

    ``tower_clip`` (skipped when absent) is watched with ``sequence_config`` (default: the default rule at the
    model's own per-frame threshold, :func:`detector.sequence.frame_threshold_for`) to record the confirmation
    delay, without and (when the file exists) with the position's ignore mask ``tower_mask``; by the fp32 model and
    by the int8 variant when it is kept, because the int8 one is what runs on CPU by default.
    ``int8_weight_bits``: :data:`INT8_WEIGHT_BITS`.
    """
    _check_weight_bits(int8_weight_bits)  # before minutes of export
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no checkpoint to export")
    if not (dataset / "images" / split).is_dir():
        raise FileNotFoundError(
            f"{dataset / 'images' / split}: build the dataset first (strawfire detector dataset build)"
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    dataset_name, training_sets = _training_sets(dataset)

    with tempfile.TemporaryDirectory(prefix="strawfire-export-") as tmp_name:
        tmp = Path(tmp_name)
        snapshot = tmp / "checkpoint.pt"
        shutil.copyfile(weights, snapshot)  # training rewrites best.pt every epoch
        source_sha = sha256_file(snapshot)
        torch_file = models_dir / f"{name}.pt"
        lineage = read_lineage(weights.parent.parent)  # var/train/<run>/lineage.json, when it continued
        init_epochs = int(lineage["init_epochs"]) if lineage else 0
        try:
            meta = _strip(snapshot, tmp / "stripped.pt", init_epochs=init_epochs)
        except Exception as exc:  # torch/pickle/ultralytics raise many unrelated types for a damaged file
            # (ultralytics' own message names the temporary copy and suggests downloading a model: not shown)
            log.debug("loading %s failed", weights, exc_info=True)
            raise ValueError(
                f"{weights}: not a loadable ultralytics checkpoint (empty, cut short or another kind of file)"
            ) from exc
        if _same_checkpoint(torch_file, tmp / "stripped.pt"):
            # Re-exporting the same weights: keep the committed file (torch.save writes a fresh serialization id
            # every time, so the bytes would differ and a repository would carry another 6 MB for nothing).
            shutil.copyfile(torch_file, tmp / "stripped.pt")
        run_epochs = meta["epoch"] + 1
        epochs = int(meta["init_epochs"]) + run_epochs
        imgsz = int(meta["train_args"].get("imgsz", 320))
        version = version or f"{today.replace('-', '')}-e{epochs}"
        architecture = str(meta["architecture"])
        onnx_tmp = tmp / f"{name}.onnx"
        _export_onnx(
            tmp / "stripped.pt",
            onnx_tmp,
            imgsz,
            {"name": name, "version": version, "classes": ",".join(CLASS_NAMES), "imgsz": str(imgsz),
             "source_sha256": source_sha, "epochs": str(epochs)},
        )  # fmt: skip

        info = ModelInfo(name, version, CLASS_NAMES, imgsz, 0.25, "onnx")
        detector = _detector(onnx_tmp, info, threads)
        # One detection pass per variant; every report below (at whichever threshold) comes from it.
        fp32_run = detect_folder(detector, dataset, split=split)
        # The threshold: best mean F1 within the false-alarm aim on the validation negatives (FALSE_ALARM_AIM).
        report = fp32_run.report(None)
        [speed] = _speed_ms(detector, imgsz=imgsz)  # detect() runs at its candidate conf, whatever the threshold
        threshold = report.threshold
        fp32_choice = (threshold, report)  # kept unless an int8 variant is kept at a raised threshold
        # The int8 variant's pass, report and precision line, when it ships.
        int8_kept: tuple[FolderRun, EvalReport, str] | None = None
        int8_speed = 0.0
        note = "not attempted (--no-quantize)"
        int8_tmp = tmp / f"{name}-int8.onnx"
        if quantize:
            try:
                int8_precision = _quantize(
                    onnx_tmp.with_suffix(".fp32.onnx"), int8_tmp, dataset / "images" / "train", imgsz,
                    weight_bits=int8_weight_bits,
                )  # fmt: skip
                int8_info = ModelInfo(f"{name}-int8", version, CLASS_NAMES, imgsz, threshold, "onnx")
                int8_detector = _detector(int8_tmp, int8_info, threads)
                int8_run = detect_folder(int8_detector, dataset, split=split)
                int8_report = int8_run.report(threshold)
                if (int8_report.fp_image_rate or 0.0) > FALSE_ALARM_AIM:
                    # The int8 variant (the CPU default) flags more negatives than the fp32 one at its threshold:
                    # both share one threshold, so it rises until the int8 variant keeps within the aim too.
                    int8_report = int8_run.report(None, min_threshold=threshold)
                    log.info(
                        "threshold %.2f → %.2f for the int8 variant's false alarms", threshold, int8_report.threshold
                    )
                    threshold = int8_report.threshold
                    report = fp32_run.report(threshold)
                speed, int8_speed = _speed_ms(detector, int8_detector, imgsz=imgsz)
                note = _quantization_verdict(report, int8_report, speed, int8_speed)
                if note.startswith("kept"):
                    int8_kept = (int8_run, int8_report, int8_precision)
            except Exception as exc:  # quantisation is optional: any failure keeps the fp32 model only
                log.exception("int8 quantisation failed")
                note = f"failed: {exc}"
        if int8_kept is None:
            threshold, report = fp32_choice  # no int8 variant ships: its false alarms do not count
        if (report.fp_image_rate or 0.0) > FALSE_ALARM_AIM:
            log.warning(
                "no threshold keeps the false-positive image rate within %.0f%% (%.1f%% at %.2f)",
                100 * FALSE_ALARM_AIM, 100 * (report.fp_image_rate or 0.0), threshold,
            )  # fmt: skip

        info = ModelInfo(name, version, CLASS_NAMES, imgsz, threshold, "onnx")
        detector = _detector(onnx_tmp, info, threads)
        config = tower_rule(sequence_config, threshold)
        towers = _tower_checks(detector, tower_clip, tower_mask, config)
        baseline = evaluate(RulesDetector(), dataset, split=split) if compare_rules else None

        quantized_entry: ModelEntry | None = None
        int8_towers: list[TowerCheck] = []
        if int8_kept is not None:
            _, int8_report, int8_precision = int8_kept
            int8_info = ModelInfo(f"{name}-int8", version, CLASS_NAMES, imgsz, threshold, "onnx")
            int8_towers = _tower_checks(_detector(int8_tmp, int8_info, threads), tower_clip, tower_mask, config)
            quantized_entry = _entry(
                int8_info, f"{name}-int8.onnx", int8_tmp, int8_precision,
                architecture, epochs, None, dataset_name, training_sets, int8_report, today,
                f"{note}; speed {int8_speed:.1f} ms/image (batch 1, network + NMS)", weight_bits=int8_weight_bits,
            )  # fmt: skip

        entry = _entry(
            info, f"{name}.onnx", onnx_tmp, "fp32 compute (weights stored as fp16, lossless: the checkpoint is fp16)",
            architecture, epochs, (f"{name}.pt", tmp / "stripped.pt"), dataset_name, training_sets, report, today,
            f"exported from {weights} (sha256 {source_sha[:12]}…, epoch {run_epochs} of its run at {imgsz} px on "
            f"{_training_device(meta['train_args'])}"
            + (
                f", which continued from {lineage['init_weights']} (sha256 {str(lineage['init_sha256'])[:12]}…, "
                f"{init_epochs} epochs{_architecture_change(lineage, architecture)})"
                if lineage
                else ""
            )
            + f"; {epochs} epochs in all); "
            f"speed {speed:.1f} ms/image (batch 1, network + NMS); int8 variant: {note}",
        )  # fmt: skip
        manifest = _merge(models_dir, entry, quantized_entry, set_default=set_default)
        files = [(onnx_tmp, models_dir / entry.file), (tmp / "stripped.pt", torch_file)]
        if quantized_entry is not None:
            files.append((int8_tmp, models_dir / quantized_entry.file))
        _install(files, lambda: write_manifest(manifest, models_dir))
    manifest_path = models_dir / MANIFEST_NAME
    if quantized_entry is None:
        # stale: belonged to older weights (removed only now that no manifest names it)
        (models_dir / f"{entry.name}-int8.onnx").unlink(missing_ok=True)
    card_path = models_dir / "README.md"
    card_towers = {entry.name: towers} if towers else {}
    if quantized_entry is not None and int8_towers:
        card_towers[quantized_entry.name] = int8_towers
    card_sources = {entry.name: _source_reports(fp32_run, report)}
    card_errors = {entry.name: _error_counts(fp32_run, report)}
    if quantized_entry is not None and int8_kept is not None:
        card_sources[quantized_entry.name] = _source_reports(*int8_kept[:2])
        card_errors[quantized_entry.name] = _error_counts(*int8_kept[:2])
    card = render_card(
        manifest,
        tower=card_towers,
        baseline={entry.name: baseline} if baseline else {},
        sources=card_sources,
        errors=card_errors,
    )
    card_tmp = _temporary_beside(card_path)
    try:
        card_tmp.write_text(card, encoding="utf-8")
        card_tmp.replace(card_path)
    finally:
        card_tmp.unlink(missing_ok=True)
    return ExportResult(entry, quantized_entry, note, towers, baseline, manifest_path, card_path)


def _temporary_beside(target: Path) -> Path:
    """A fresh hidden name beside ``target`` to write it under before it replaces ``target`` in one rename."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    path = Path(name)
    path.chmod(0o644)  # mkstemp makes 0600; models/ files are ordinary repository files
    return path


def _install(files: list[tuple[Path, Path]], commit: Callable[[], Path]) -> None:
    """Copy each ``(source, target)`` into ``models/`` and then write the manifest, so that neither an interrupted
    export nor a full disk leaves half a file under a name a manifest points at; ``commit`` writes the manifest.

    Every file is first copied in full under a temporary name beside its target; only then are they renamed over
    the targets (atomic, and back to back) and the manifest written (atomically, :func:`write_manifest`). Until
    the renames the deployed model is untouched; a temporary copy left by a failure is removed.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for source, target in files:
            temporary = _temporary_beside(target)
            staged.append((temporary, target))
            shutil.copyfile(source, temporary)
        for temporary, target in staged:
            temporary.replace(target)
        commit()
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def _quantization_verdict(fp32: EvalReport, int8: EvalReport, fp32_ms: float, int8_ms: float) -> str:
    """Return "kept …" or "rejected …", with the numbers that decided."""
    drop = (fp32.map50 or 0.0) - (int8.map50 or 0.0)
    numbers = (
        f"mAP50 {fp32.map50 or 0:.3f} → {int8.map50 or 0:.3f} (drop {drop:+.3f}, limit {MAX_QUANT_AP_DROP}), "
        f"{fp32_ms:.1f} → {int8_ms:.1f} ms/image"
    )
    if (fp32.map50 or 0.0) < MIN_MAP_TO_COMPARE:
        return (
            f"rejected: the fp32 model's mAP50 is below {MIN_MAP_TO_COMPARE}, too low for a comparison to show "
            f"that int8 keeps accuracy; retry with a later checkpoint ({numbers})"
        )
    if drop > MAX_QUANT_AP_DROP:
        return f"rejected: loses accuracy ({numbers})"
    if int8_ms >= fp32_ms:
        return f"rejected: not faster on this CPU ({numbers})"
    return f"kept ({numbers})"


def _entry(
    info: ModelInfo,
    file_name: str,
    path: Path,
    precision: str,
    architecture: str,
    epochs: int,
    torch_weights: tuple[str, Path] | None,
    dataset_name: str,
    training_sets: tuple[TrainingSet, ...],
    report: EvalReport,
    today: str,
    notes: str,
    *,
    weight_bits: int | None = None,
) -> ModelEntry:
    return ModelEntry(
        name=info.name,
        version=info.version,
        file=file_name,
        sha256=sha256_file(path),
        precision=precision,
        weight_bits=weight_bits,
        input_size=info.input_size,
        trimmed_input=True,  # exported with free height/width (see _export_onnx)
        classes=info.classes,
        operating_threshold=info.operating_threshold,
        architecture=architecture,
        epochs_trained=epochs,
        torch_file=torch_weights[0] if torch_weights else None,
        torch_sha256=sha256_file(torch_weights[1]) if torch_weights else None,
        training_dataset=dataset_name,
        training_sets=training_sets,
        validation=report,
        date=today,
        notes=notes,
    )


def _merge(models_dir: Path, entry: ModelEntry, quantized: ModelEntry | None, *, set_default: bool) -> Manifest:
    """The manifest with ``entry`` (and its int8 variant, or none) replacing older entries of the same names."""
    try:
        current = load_manifest(models_dir)
    except Exception:  # a missing or broken manifest is replaced by the new one
        current = Manifest()
    variant = f"{entry.name}-int8"
    models = [m for m in current.models if m.name not in {entry.name, variant}]
    models.append(entry)
    if quantized is not None:
        models.append(quantized)
    default = entry.name if set_default or current.default is None else current.default
    # ONNX Runtime runs the int8 variant by default when it was kept (it kept accuracy and is faster); the torch
    # backend has only the fp32 weights.
    cpu_default = (quantized.name if quantized is not None else None) if default == entry.name else current.cpu_default
    return Manifest(default=default, cpu_default=cpu_default, models=tuple(sorted(models, key=lambda m: m.name)))


# ------------------------------------------------------------------------------------------------------------
# Model card
# ------------------------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_card(
    manifest: Manifest,
    *,
    tower: dict[str, list[TowerCheck]] | None = None,
    baseline: dict[str, EvalReport] | None = None,
    sources: dict[str, SourceReports] | None = None,
    errors: dict[str, ErrorCounts] | None = None,
) -> str:
    """The model card (``models/README.md``) for every model in the manifest, from the manifest's own numbers.

    ``sources``: per model, the validation split per source set (:func:`_source_reports`); ``errors``: per model,
    its validation errors by class and kind (:func:`_error_counts`).
    """
    lines = [
        "# models/ — fire/smoke detector weights and model card",
        "",
        "Generated by `strawfire detector export` from `manifest.json`; do not edit by hand (re-export instead).",
        "Every file is loaded through `manifest.json`, which records its sha256: a missing, truncated or replaced",
        "file is an error, never a silent fallback. Without a manifest the detector falls back to the weights-free",
        "colour/motion rules (`--backend rules`).",
        "",
        f"Default model: **{manifest.default or '–'}**.",
        "",
    ]
    for entry in manifest.models:
        lines += _card_section(entry, (tower or {}).get(entry.name, []), (baseline or {}).get(entry.name))
        lines += _sources_section(*(sources or {}).get(entry.name, ({}, {})))
        lines += _errors_section((errors or {}).get(entry.name))
    # Every model's training sets (models trained on the same ones share a table): the licences of a model trained
    # with a deployment's own set must not be left out because another model comes first.
    trained_on: dict[str, tuple[str, tuple[TrainingSet, ...], list[str]]] = {}
    for entry in manifest.models:
        key = json.dumps([entry.training_dataset, [item.model_dump() for item in entry.training_sets]], sort_keys=True)
        trained_on.setdefault(key, (entry.training_dataset, entry.training_sets, []))[2].append(entry.name)
    lines += ["## Training data and licences", ""]
    for dataset_name, sets, names in trained_on.values():
        if len(trained_on) > 1:
            lines += [f"{', '.join(names)} (dataset `{dataset_name}`):", ""]
        lines += ["| source | images train / val | licence | attribution |", "|---|---|---|---|"]
        for item in sets:
            counts = f"{item.images.get('train', 0)} / {item.images.get('val', 0)}"
            lines.append(f"| {item.source} | {counts} | {item.licence} | {item.attribution} ({item.url}) |")
        lines.append("")
    if not trained_on:
        lines += ["| source | images train / val | licence | attribution |", "|---|---|---|---|", ""]
    lines += [
        "The weights are derived from these sets. The tower boxes are CC BY-NC-SA 4.0 and the FIgLib images are",
        "for research use, so check these terms before any commercial deployment of weights trained on them; the",
        "code and the weights are AGPL-3.0-or-later (ultralytics, used for training, is AGPL-3.0).",
        "",
        "## Reproduce",
        "",
        "```sh",
        "strawfire detector export --weights var/train/strawfire-v2/weights/best.pt  # ONNX, eval, manifest, card",
        "strawfire detector eval var/datasets/strawfire-v2 --split val --json       # the numbers above",
        "strawfire detector info --json",
        "```",
        "",
    ]
    return "\n".join(lines)


def _architecture_change(lineage: dict[str, Any], architecture: str) -> str:
    """ ", as <old architecture>, carried over into <new>" when the run changed architecture (e.g. SiLU → ReLU)."""
    before = lineage.get("init_architecture")
    return f" as {before}, every tensor carried over into {architecture}" if before and before != architecture else ""


def _training_device(train_args: dict[str, Any]) -> str:
    """Where a run trained, from its ultralytics ``train_args`` (``device``: "cpu", "0", "0,1", ...)."""
    device = str(train_args.get("device", "cpu")).strip().lower()  # an int 0 is CUDA device 0, not "unset"
    if device in {"cpu", "none", ""}:
        return "CPU"
    return f"GPU (CUDA device {device})" if device[0].isdigit() else f"GPU ({device})"


#: Per source set, the reports at the model's threshold: at IoU 0.5, and at :data:`CARD_LOOSE_IOU` (may be empty).
SourceReports = tuple[dict[str, EvalReport], dict[str, EvalReport]]


def _source_reports(run: FolderRun, report: EvalReport) -> SourceReports:
    """One pass's reports per source set at ``report``'s threshold, at IoU 0.5 and at :data:`CARD_LOOSE_IOU`."""
    return run.by_source(report), run.by_source(run.report(report.threshold, iou=CARD_LOOSE_IOU))


#: Per class, errors at the operating threshold by kind (:mod:`detector.error_analysis`).
ErrorCounts = dict[str, dict[ErrorKind, int]]


def _error_counts(run: FolderRun, report: EvalReport) -> ErrorCounts:
    """The validation split's errors at ``report``'s threshold, by class and kind."""
    return count_errors(
        (error for review in review_images(run, report) for error in review.errors), list(report.per_class)
    )


def _errors_section(counts: ErrorCounts | None) -> list[str]:
    """The validation errors by kind (what ``eval --errors`` writes out one by one)."""
    if not counts:
        return []
    kinds = FALSE_POSITIVE_KINDS + MISSED_KINDS
    lines = [
        "Errors at the operating threshold (same split; `strawfire detector eval --errors DIR` lists and draws them): "
        "a false positive is a *duplicate* of a found box, on a box of the other *class*, a box of its class found "
        "at an IoU of 0.1–0.5 (*localisation*), or on *background*; a labelled box nothing matched was *boxed "
        "differently* (IoU 0.1–0.5), found as the *wrong class*, or *missed*:",
        "",
        "| class | " + " | ".join(kind.replace("_", " ") for kind in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for name, by_kind in counts.items():
        lines.append(f"| {name} | " + " | ".join(str(by_kind.get(kind, 0)) for kind in kinds) + " |")
    return [*lines, ""]


def _sources_section(sources: dict[str, EvalReport], loose: dict[str, EvalReport]) -> list[str]:
    """The validation split per source set, at the model's operating threshold (see ``evaluate_by_source``), with
    AP at the lower IoU of ``loose`` (same sources) where given."""
    if not sources:
        return []
    ious = [IOU_THRESHOLD] + ([next(iter(loose.values())).iou] if loose else [])
    by_iou = [sources, loose][: len(ious)]
    why = (
        f"; {ap_label(ious[1])} matches boxes at IoU {ious[1]:g} instead of {IOU_THRESHOLD:g}: where it is far above "
        f"{ap_label(IOU_THRESHOLD)}, the model found the fire or plume and boxed it differently from the labeller, "
        "which is common for smoke"
        if loose
        else ""
    )
    header = ["source", "images", "without fire/smoke"]
    header += [f"{ap_label(iou)} {cls}" for iou in ious for cls in ("fire", "smoke")]
    header += ["image recall", "false-positive image rate"]
    lines = [
        "Per source set (same split and threshold; a source's images are all of one kind, so its AP shows where the "
        f"model is weak{why}):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, r in sources.items():
        row = [name, str(r.evaluated), str(r.negatives)]
        for reports in by_iou:
            found = reports.get(name)
            row += [_fmt(found.per_class[cls].ap50) if found else "–" for cls in ("fire", "smoke")]
        row += [_fmt(r.presence.recall), _fmt(r.fp_image_rate)]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _card_section(entry: ModelEntry, towers: list[TowerCheck], baseline: EvalReport | None) -> list[str]:
    report = entry.validation
    lines = [
        f"## {entry.name} {entry.version}",
        "",
        f"* **What**: {entry.architecture} detector, classes {', '.join(entry.classes)}, input "
        + (
            f"up to {entry.input_size} px on the longer side (letterboxed into the smallest multiple-of-32 canvas)"
            if entry.trimmed_input
            else f"{entry.input_size}×{entry.input_size} (letterboxed)"
        )
        + f", {entry.precision}.",
        f"* **Files**: `{entry.file}` (sha256 `{entry.sha256}`)"
        + (
            f", `{entry.torch_file}` for the torch/GPU backend (sha256 `{entry.torch_sha256}`)"
            if entry.torch_file
            else ""
        )
        + ".",
        f"* **Training**: {entry.epochs_trained} epochs in all from random initialisation (no pretrained weights "
        f"exist offline; later runs continue from the previous model, see *Exported*), last on dataset "
        f"`{entry.training_dataset}`. "
        + (
            "This is an **early checkpoint**: its numbers are far from what the architecture reaches after a full "
            "run, and it is published so the pipeline can be exercised end to end, not as a finished detector."
            if entry.epochs_trained < FULL_RUN_EPOCHS
            else "As many epochs as a full run (see *Exported* for the runs behind them)."
        ),
        f"* **Operating threshold**: {entry.operating_threshold:.2f} — chosen on the validation split itself (max "
        f"mean F1 over the two classes among the thresholds at which the model, and its int8 variant when there is "
        f"one, flags at most {FALSE_ALARM_AIM:.0%} of the negative images"
        + (
            "; none met that aim, and the highest threshold was taken"
            if (entry.validation.fp_image_rate or 0.0) > FALSE_ALARM_AIM
            else ""
        )
        + "), so the P/R/F1 below are optimistic for that split.",
        f"* **Exported**: {entry.date}. {entry.notes}",
        "",
        f"Validation (`{report.data}`, {report.evaluated} images of which {report.negatives} without fire/smoke; "
        f"IoU {report.iou}; measured by `strawfire detector eval`, backend {report.backend}):",
        "",
        "| class | AP50 | precision | recall | F1 | boxes | image precision | image recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cls, r in report.per_class.items():
        lines.append(
            f"| {cls} | {_fmt(r.ap50)} | {_fmt(r.precision)} | {_fmt(r.recall)} | {_fmt(r.f1)} | {r.gt_boxes} | "
            f"{_fmt(r.image_precision)} | {_fmt(r.image_recall)} |"
        )
    lines += [
        "",
        f"mAP50 {_fmt(report.map50)}; image-level fire-or-smoke presence precision {_fmt(report.presence.precision)}, "
        f"recall {_fmt(report.presence.recall)}; false-positive image rate on the {report.negatives} negatives "
        f"{_fmt(report.fp_image_rate)}; {_fmt(report.ms_per_image, 1)} ms/image end to end (decode + detect, "
        "on the exporting machine; `bench/bench_detector.py` gives comparable timings).",
        "",
    ]
    if baseline is not None:
        aps = ", ".join(f"{cls} AP50 {_fmt(r.ap50)}" for cls, r in baseline.per_class.items())
        lines += [
            f"For comparison, the weights-free rules (`--backend rules`, threshold {baseline.threshold:.2f}) on the "
            f"same split: {aps} (no smoke without a previous frame); presence precision "
            f"{_fmt(baseline.presence.precision)}, recall {_fmt(baseline.presence.recall)}; false-positive image "
            f"rate {_fmt(baseline.fp_image_rate)}.",
            "",
        ]
    if towers:
        cfg = towers[0].config
        own = cfg.frame_threshold == frame_threshold_for(entry.operating_threshold)
        lines += [
            f"Sequence verification on the FIgLib tower clip `{towers[0].clip}` ({towers[0].frames} frames, one a "
            f"minute, ignition at frame {towers[0].ignition_frame}; {cfg.min_hits} of {cfg.window} frames at "
            f"confidence ≥ {cfg.frame_threshold:g}{' (half the operating threshold)' if own else ''}; "
            "the target is smoke confirmed within 10 min):",
            "",
        ]
        for check in towers:
            first = (
                f"plume first confirmed {check.first_confirm_minutes:.0f} min after ignition"
                if check.first_confirm_minutes is not None
                else "plume not confirmed"
            )
            how = "with the position's ignore mask (mast, dishes)" if check.masked else "without a mask"
            if check.tiles:
                how += f", whole frame plus {check.tiles[0]}×{check.tiles[1]} tiles"
            if check.auto_tiles:
                how += " (`--tiles auto`)" if check.tiles else " (`--tiles auto` keeps frames this size whole)"
            elif not check.masked:
                how += " (what `strawfire detector watch` does by default)"
            lines.append(
                f"* {how}: {first}; {check.false_events_before_ignition} false event(s) before ignition, "
                f"{check.false_events_after_ignition} after ignition away from the plume."
            )
        lines.append("")
    return lines
