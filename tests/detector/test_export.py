"""Export: lossless fp16 storage, manifest and card written together, int8 only when it keeps accuracy."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from detector.backends import YoloDetector, load_detector
from detector.evaluate import ClassReport, EvalReport, PresenceReport
from detector.export import (
    _merge,
    _quantization_verdict,
    _store_fp16,
    _tower_checks,
    _training_device,
    export_model,
    render_card,
)
from detector.manifest import load_manifest, resolve_model, sha256_file
from detector.train import checkpoint_epochs_total
from tests.detector.conftest import committed_model, flame_image, needs_exact_int8


def report(map50: float) -> EvalReport:
    cls = ClassReport(
        ap50=map50,
        precision=None,
        recall=None,
        f1=None,
        gt_boxes=1,
        predictions=0,
        true_positives=0,
        image_precision=None,
        image_recall=None,
    )
    return EvalReport(
        data="d",
        model="m",
        version="1",
        backend="onnx",
        threshold=0.25,
        images=1,
        evaluated=1,
        unlabelled=0,
        negatives=0,
        per_class={"fire": cls, "smoke": cls},
        map50=map50,
        presence=PresenceReport(precision=None, recall=None),
        fp_image_rate=None,
        ms_per_image=None,
        errors=[],
    )


def test_int8_is_kept_only_when_accurate_and_faster() -> None:
    assert _quantization_verdict(report(0.60), report(0.595), 30, 20).startswith("kept")
    assert _quantization_verdict(report(0.60), report(0.58), 30, 20).startswith("rejected: loses accuracy")
    assert _quantization_verdict(report(0.60), report(0.60), 30, 31).startswith("rejected: not faster")
    assert "too low" in _quantization_verdict(report(0.05), report(0.05), 30, 20)


def test_fp16_storage_is_lossless_and_skips_inexact_values() -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    exact = np.arange(32, dtype=np.float32).reshape(32, 1) / 4
    inexact = np.full((32, 1), 0.1, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "exact"], ["y"]), helper.make_node("Add", ["y", "inexact"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 1])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [32, 1])],
        [numpy_helper.from_array(exact, "exact"), numpy_helper.from_array(inexact, "inexact")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _store_fp16(model)
    onnx.checker.check_model(model)
    dtypes = {init.name: init.data_type for init in model.graph.initializer}
    assert dtypes == {"inexact": TensorProto.FLOAT, "exact__fp16": TensorProto.FLOAT16}
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.ones((32, 1), np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], x + exact + inexact)


def first_values(graph: Any) -> dict[str, float]:
    """Each initializer of an ONNX graph by name: its first value (a scale or zero point is a single one)."""
    from onnx import numpy_helper

    return {tensor.name: float(numpy_helper.to_array(tensor).reshape(-1)[0]) for tensor in graph.initializer}


def stem_graph(kernel: int = 3, stride: int = 2, outputs: int = 8, seed: int = 0) -> Any:
    """A quantised (QDQ) stem as _quantize leaves it: uint8 pixels → DequantizeLinear(1/255) → Conv with per-channel
    int8 weights and int32 bias → QuantizeLinear → DequantizeLinear."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight_scale = (rng.random(outputs) * 0.01 + 0.002).astype(np.float32)
    constants = {
        "x_scale": np.array(1 / 255, np.float32),
        "x_zero": np.array(0, np.uint8),
        "w": rng.integers(-127, 128, (outputs, 3, kernel, kernel)).astype(np.int8),
        "w_scale": weight_scale,
        "w_zero": np.zeros(outputs, np.int8),
        "b": rng.integers(-2000, 2000, outputs).astype(np.int32),
        "b_scale": (weight_scale / 255).astype(np.float32),
        "b_zero": np.zeros(outputs, np.int32),
        "y_scale": np.array(0.03, np.float32),
        "y_zero": np.array(0, np.uint8),
    }
    pad = kernel // 2
    nodes = [
        helper.make_node("DequantizeLinear", ["images", "x_scale", "x_zero"], ["x"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wf"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zero"], ["bf"], axis=0),
        helper.make_node(
            "Conv", ["x", "wf", "bf"], ["conv"], kernel_shape=[kernel, kernel], strides=[stride, stride],
            pads=[pad] * 4,
        ),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("QuantizeLinear", ["relu", "y_scale", "y_zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "y_scale", "y_zero"], ["out"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "stem",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", outputs, "rows", "columns"])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@needs_exact_int8
def test_the_space_to_depth_stem_gives_the_same_output_bit_for_bit(tmp_path: Path) -> None:
    """The int8 stem rewritten as SpaceToDepth(2) + a 2×2 convolution over 12 channels: the same integers in, the
    same output out, through ONNX Runtime's fused int8 kernels, for several batch and canvas sizes."""
    import onnx
    import onnxruntime as ort

    from detector.export import _space_to_depth_stem

    original, rewritten = tmp_path / "stem.onnx", tmp_path / "stem-s2d.onnx"
    onnx.save(stem_graph(), str(original))
    model = stem_graph()
    _space_to_depth_stem(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(rewritten))
    graph = model.graph
    assert [node.op_type for node in graph.node if "images" in node.input] == ["SpaceToDepth"]
    conv = next(node for node in graph.node if node.op_type == "Conv")
    assert {attribute.name: list(attribute.ints) for attribute in conv.attribute if attribute.ints} == {
        "kernel_shape": [2, 2], "strides": [1, 1], "pads": [1, 1, 0, 0], "dilations": [1, 1]
    }  # fmt: skip
    before = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(rewritten), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 64, 64), (2, 3, 32, 96), (1, 3, 96, 32)]:
        pixels = rng.integers(0, 256, shape).astype(np.uint8)
        pixels[0, :, :3, :3] = 255  # bright corner: the padded edge is where a wrong kernel placement shows
        expected = before.run(None, {"images": pixels})[0]
        assert expected.shape == (shape[0], 8, shape[2] // 2, shape[3] // 2)
        assert np.count_nonzero(expected) > expected.size // 4  # not a trivially empty output
        np.testing.assert_array_equal(after.run(None, {"images": pixels})[0], expected)


def test_the_space_to_depth_stem_refuses_another_first_layer() -> None:
    import onnx

    from detector.export import _space_to_depth_stem

    for kernel, stride in [(1, 1), (3, 1)]:
        with pytest.raises(ValueError, match="3x3 stride 2"):
            _space_to_depth_stem(stem_graph(kernel, stride))
    shifted = stem_graph()
    for tensor in shifted.graph.initializer:
        if tensor.name == "w_zero":
            tensor.CopyFrom(onnx.numpy_helper.from_array(np.ones(8, np.int8), "w_zero"))
    with pytest.raises(ValueError, match="zero point"):
        _space_to_depth_stem(shifted)  # the added zero taps would not read as weight 0
    rewritten = stem_graph()
    _space_to_depth_stem(rewritten)
    with pytest.raises(ValueError, match="one DequantizeLinear"):
        _space_to_depth_stem(rewritten)  # already rewritten: the pixels feed the SpaceToDepth


@needs_exact_int8
def test_the_stem_takes_pixel_blocks_channels_last_bit_for_bit(tmp_path: Path) -> None:
    """After the space-to-depth rewrite, _channels_last_blocks makes the graph take (batch, h/2, w/2, 12) blocks:
    the same output as the NCHW pixels gave, and in ONNX Runtime's optimised graph the blocks go straight into the
    convolution (the Transpose the rewrite adds cancels against the one ONNX Runtime puts before its channels-last
    convolution; what is left is the one back to NCHW for this test graph's output)."""
    import onnx
    import onnxruntime as ort

    from detector.export import _channels_last_blocks, _space_to_depth_stem
    from detector.yolo import to_blocks

    original, rewritten, optimised = tmp_path / "stem.onnx", tmp_path / "blocks.onnx", tmp_path / "optimised.onnx"
    onnx.save(stem_graph(), str(original))
    model = stem_graph()
    _space_to_depth_stem(model)
    _channels_last_blocks(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(rewritten))
    assert [dim.dim_value or dim.dim_param for dim in model.graph.input[0].type.tensor_type.shape.dim] == [
        "batch", "block_rows", "block_columns", 12
    ]  # fmt: skip
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(optimised)
    before = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(rewritten), options, providers=["CPUExecutionProvider"])
    optimised_graph = onnx.load(str(optimised)).graph
    assert [node.op_type for node in optimised_graph.node if "pixel_blocks" in node.input] == ["QLinearConv"]
    assert "SpaceToDepth" not in {node.op_type for node in optimised_graph.node}
    rng = np.random.default_rng(2)
    for shape in [(1, 3, 64, 64), (2, 3, 32, 96), (1, 3, 96, 32)]:
        pixels = rng.integers(0, 256, shape).astype(np.uint8)
        pixels[0, :, :3, :3] = 255
        expected = before.run(None, {"images": pixels})[0]
        assert np.count_nonzero(expected) > expected.size // 4
        np.testing.assert_array_equal(after.run(None, {"pixel_blocks": to_blocks(pixels)})[0], expected)
    fixed = stem_graph()
    for dim, value in zip(fixed.graph.input[0].type.tensor_type.shape.dim, (1, 3, 64, 96), strict=True):
        dim.dim_value = value  # a fixed-size export keeps fixed sides, halved
    _space_to_depth_stem(fixed)
    _channels_last_blocks(fixed)
    assert [dim.dim_value for dim in fixed.graph.input[0].type.tensor_type.shape.dim] == [1, 32, 48, 12]
    with pytest.raises(ValueError, match="SpaceToDepth"):
        _channels_last_blocks(stem_graph())  # no space-to-depth stem: nothing to take blocks for
    with pytest.raises(ValueError, match="SpaceToDepth"):
        _channels_last_blocks(model)  # already rewritten


def upsampling_graph(
    mode: str = "nearest",
    out_scale: float = 0.05,
    scales: tuple[float, ...] = (1.0, 1.0, 2.0, 2.0),
    *,
    side: bool = True,
    constant_scales: bool = False,
    out_zero: Any = None,
    opset: int = 17,
) -> Any:
    """uint8 → DequantizeLinear → Resize → QuantizeLinear → DequantizeLinear, as the int8 neck's upsampling; with
    ``side`` a second reader of the dequantised input (the neck's concatenation also reads it); with
    ``constant_scales`` the Resize's scales come from a Constant node instead of an initializer."""
    from onnx import TensorProto, helper, numpy_helper

    constants = {
        "in_scale": np.array(0.05, np.float32),
        "zero": np.array(3, np.uint8),
        "out_scale": np.array(out_scale, np.float32),
        "out_zero": np.array(3, np.uint8) if out_zero is None else out_zero,
    }
    factors = np.array(scales, np.float32)
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "in_scale", "zero"], ["xf"]),
        helper.make_node(
            "Resize", ["xf", "", "scales"], ["up"], mode=mode, coordinate_transformation_mode="asymmetric",
            nearest_mode="floor", name="/model.10/Resize",
        ),
        helper.make_node("QuantizeLinear", ["up", "out_scale", "out_zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "out_scale", "out_zero"], ["out"]),
    ]  # fmt: skip
    if constant_scales:
        nodes.insert(0, helper.make_node("Constant", [], ["scales"], value=numpy_helper.from_array(factors)))
    else:
        constants["scales"] = factors
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "channels", "rows", "columns"])]
    if side:
        nodes.append(helper.make_node("Relu", ["xf"], ["side"]))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, ["batch", "channels", "h", "w"]))
    graph = helper.make_graph(
        nodes,
        "upsampling",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["batch", "channels", "height", "width"])],
        outputs,
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(
    ("side", "constant_scales"), [(True, False), (False, False), (True, True)], ids=["shared", "alone", "constant"]
)
def test_the_neck_upsampling_becomes_a_uint8_copy_bit_for_bit(side: bool, constant_scales: bool) -> None:
    """_nhwc_upsampling replaces a 2x nearest Resize between equal int8 scales with Transpose/Expand/Reshape on
    the uint8 values: the same outputs for several batch sizes, channel counts and odd sides, whether the
    dequantised input has another reader (kept) or not (removed), and with the scales in a Constant node; the
    Resize's constants go with it."""
    import onnx
    import onnxruntime as ort

    from detector.export import _nhwc_upsampling

    model = upsampling_graph(side=side, constant_scales=constant_scales)
    assert _nhwc_upsampling(model) == 1
    onnx.checker.check_model(model)
    kinds = [node.op_type for node in model.graph.node]
    assert "Resize" not in kinds
    assert kinds.count("Expand") == 1
    assert kinds.count("DequantizeLinear") == (2 if side else 1)  # the input's is removed when nothing else reads it
    assert "scales" not in {tensor.name for tensor in model.graph.initializer}
    before = ort.InferenceSession(
        upsampling_graph(side=side, constant_scales=constant_scales).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for shape in [(1, 8, 5, 7), (2, 16, 4, 4), (1, 3, 1, 9)]:
        values = rng.integers(0, 256, shape).astype(np.uint8)
        expected = before.run(None, {"x": values})
        assert expected[0].shape == (shape[0], shape[1], 2 * shape[2], 2 * shape[3])
        for got, want in zip(after.run(None, {"x": values}), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_other_resizes_are_left_as_they_are() -> None:
    """Another mode or factor, a different scale or zero-point type on the far side, a Resize output that is
    also a graph output, or an opset without Unsqueeze's axes input: nothing is rewritten."""
    from onnx import helper

    from detector.export import _nhwc_upsampling

    exposed = upsampling_graph()
    exposed.graph.output.append(helper.make_tensor_value_info("up", 1, ["batch", "channels", "rows", "columns"]))
    for other in (
        upsampling_graph(mode="linear"),
        upsampling_graph(out_scale=0.07),
        upsampling_graph(scales=(1.0, 1.0, 3.0, 3.0)),
        upsampling_graph(out_zero=np.array(3, np.int8)),  # equal value, another type
        upsampling_graph(opset=11),
        exposed,
    ):
        assert _nhwc_upsampling(other) == 0
        assert [node.op_type for node in other.graph.node].count("Resize") == 1


def test_tensors_a_concat_joins_share_one_calibrated_range(tmp_path: Path) -> None:
    """_concat_ranges gives every tensor a Concat joins (and what a Split passes through) the union of their
    calibrated ranges, so the int8 concatenation can copy bytes; tensors outside any Concat keep their own."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from detector.export import _concat_ranges

    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Mul", ["x", "three"], ["x3"]),
        helper.make_node("Relu", ["x3"], ["b"]),
        helper.make_node("Concat", ["a", "b"], ["joined"], axis=1),
        helper.make_node("Split", ["joined"], ["left", "right"], axis=1, num_outputs=2),
        helper.make_node("Mul", ["x", "five"], ["x5"]),
        helper.make_node("Relu", ["x5"], ["alone"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 2, 4, 4]) for name in ("left", "right", "alone")],
        [
            numpy_helper.from_array(np.array(3, np.float32), "three"),
            numpy_helper.from_array(np.array(5, np.float32), "five"),
        ],
    )
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))

    class Reader:
        def __init__(self) -> None:
            self._batches = iter([{"x": np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 2, 4, 4)}])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    ranges = _concat_ranges(path, nodes, Reader, excluded=set())
    assert set(ranges) == {"a", "b", "joined", "left", "right"}  # "alone" (range 0..5) is no Concat's business
    for low, high in ranges.values():
        assert (low, high) == pytest.approx((0.0, 3.0))
    nodes[3].name = "/model.22/Concat"
    assert _concat_ranges(path, nodes, Reader, excluded={"/model.22/Concat"}) == {}  # an excluded Concat joins nothing


def test_the_head_prefix_is_told_by_the_class_convolutions() -> None:
    from types import SimpleNamespace

    from detector.export import _head_prefix

    def nodes(*names: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=name) for name in names]

    yolov8 = nodes("/model.0/conv/Conv", "/model.22/cv2.0/cv2.0.2/Conv", "/model.22/cv3.0/cv3.0.2/Conv")
    assert _head_prefix(yolov8) == "/model.22/"
    assert _head_prefix(nodes("/model.23/cv3.1/cv3.1.2/Conv")) == "/model.23/"
    with pytest.raises(ValueError, match=r"found head layers \[\]"):
        _head_prefix(nodes("/model.0/conv/Conv", "/model.22/cv3.0/cv3.0.1/conv/Conv"))  # no class logits
    with pytest.raises(ValueError, match="22', '23"):
        _head_prefix(nodes("/model.22/cv3.0/cv3.0.2/Conv", "/model.23/cv3.0/cv3.0.2/Conv"))  # two heads


@pytest.mark.slow
def test_a_yolo11n_head_is_found_and_quantised_like_yolov8n_s(tmp_path: Path) -> None:
    """The int8 export finds the detection head by its class convolutions wherever the architecture puts it
    (layer 23 in yolo11n, 22 in yolov8n): its convolutions are quantised, the class logits over the fixed range,
    and the sigmoid and the concatenations after it stay float."""
    import onnx
    import torch

    from detector import export

    export.configure_offline(tmp_path / "ultralytics", threads=1)
    with export.offline_guard():
        from ultralytics.nn.tasks import DetectionModel

        model = DetectionModel("yolo11n.yaml", nc=2, verbose=False)
    weights = tmp_path / "yolo11n.pt"
    torch.save({"model": model.half()}, weights)
    export._export_onnx(weights, tmp_path / "model.onnx", 64, {})
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i, (width, height) in enumerate([(96, 64), (64, 64)]):
        Image.fromarray(flame_image(width, height)).save(calibration / f"{i}.png")
    int8 = tmp_path / "int8.onnx"
    export._quantize(tmp_path / "model.fp32.onnx", int8, calibration, 64)

    graph = onnx.load(str(int8)).graph
    assert export._head_prefix(graph.node) == "/model.23/"
    consumers = {
        name: [node for node in graph.node if name in node.input] for node in graph.node for name in node.output
    }
    scales = first_values(graph)
    logits = [node for node in graph.node if export._CLASS_LOGITS.match(node.name)]
    assert len(logits) == 3
    low, high = export._CLASS_LOGIT_RANGE
    for conv in logits:
        [quantize] = consumers[conv.output[0]]
        assert quantize.op_type == "QuantizeLinear"
        assert scales[quantize.input[1]] == pytest.approx((high - low) / 255, rel=1e-3)
    # The scores' sigmoids (not the SiLU activations' inside the convolutions) stay float: no QuantizeLinear.
    scores = [node for node in graph.node if re.fullmatch(r"/model\.23/Sigmoid(_\d+)?", node.name)]
    assert len(scores) == 3
    assert {consumer.op_type for sigmoid in scores for consumer in consumers[sigmoid.output[0]]} == {"Concat"}
    assert [dim.dim_value or dim.dim_param for dim in graph.output[0].type.tensor_type.shape.dim] == [
        "batch", "anchors", 66
    ]  # fmt: skip


def tiny_dataset(root: Path) -> Path:
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(flame_image()).save(root / "images" / split / f"{i}.jpg")
            (root / "labels" / split / f"{i}.txt").write_text("0 0.4167 0.4688 0.2083 0.3125\n")
    source = {"licence": "CC0", "attribution": "test", "url": "https://example.org", "images": {"train": 3, "val": 3}}
    (root / "manifest.json").write_text(json.dumps({"name": "tiny", "sources": {"tiny": source}}))
    return root


@pytest.mark.slow
def test_export_writes_weights_manifest_and_card(tmp_path: Path) -> None:
    committed = committed_model() / resolve_model(load_manifest(committed_model())).torch_file  # type: ignore[operator]
    # As a training run that continued from earlier weights leaves it: weights/best.pt and lineage.json.
    weights = tmp_path / "run" / "weights" / "best.pt"
    weights.parent.mkdir(parents=True)
    shutil.copyfile(committed, weights)
    (tmp_path / "run" / "lineage.json").write_text(
        json.dumps({"init_weights": "models/old.pt", "init_sha256": "ab" * 32, "init_epochs": 100})
    )
    models = tmp_path / "models"
    result = export_model(
        weights,
        name="tiny-model",
        version="t1",
        models_dir=models,
        dataset=tiny_dataset(tmp_path / "data"),
        quantize=False,
        tower_clip=None,
        threads=1,
    )
    assert result.baseline is not None
    assert result.baseline.backend == "rules"
    manifest = load_manifest(models)
    assert manifest.default == "tiny-model"
    entry = resolve_model(manifest)
    assert entry == result.entry
    assert entry.sha256 == sha256_file(models / entry.file)
    assert entry.torch_sha256 == sha256_file(models / "tiny-model.pt")
    assert entry.training_sets[0].licence == "CC0"
    assert entry.validation.evaluated == 3
    assert entry.architecture == "yolov8n-relu"  # the committed model: yolov8n with ReLU (detector/arch)
    assert entry.weight_bits is None  # a float model
    import torch  # after export_model: unpickling the checkpoint imports ultralytics, which must be offline first

    run_epochs = int(torch.load(committed, map_location="cpu", weights_only=False)["epoch"]) + 1  # its own run
    assert entry.epochs_trained == 100 + run_epochs  # the whole training, not only the last run
    assert "continued from models/old.pt" in entry.notes
    assert checkpoint_epochs_total(models / "tiny-model.pt") == 100 + run_epochs  # the next run counts on from it
    assert (models / entry.file).stat().st_size < 8_000_000  # fp16 storage: a few MB
    card = (models / "README.md").read_text()
    assert "tiny-model t1" in card
    assert "early checkpoint" in card
    assert "CC0" in card
    assert "weights-free rules" in card
    assert "Errors at the operating threshold" in card  # the validation split's errors by kind, from the same run
    # The exported ONNX gives the same raw output as the committed model's torch weights it came from.
    exported = load_detector("onnx", models_dir=models, threads=1)
    reference = load_detector("torch", models_dir=committed_model(), threads=1, device="cpu")
    from detector.yolo import decoded_output, letterbox_batch

    # Exported without box decoding (the "dfl" layout, decoded for the candidates only by postprocess).
    assert isinstance(exported, YoloDetector)
    assert isinstance(reference, YoloDetector)
    batch, _ = letterbox_batch([flame_image()], 320)
    assert (exported.raw(batch).shape[1], reference.raw(batch).shape[1]) == (4 * 16 + 2, 4 + 2)
    np.testing.assert_allclose(decoded_output(exported.raw(batch), (320, 320)), reference.raw(batch), atol=0.05)
    # Exported with free height/width: a wide image goes in without the grey bands, in both backends.
    assert entry.trimmed_input
    assert manifest.cpu_default is None  # no int8 variant here
    trimmed, _ = letterbox_batch([flame_image(300, 90)], 320, trim=True)
    assert trimmed.shape == (1, 3, 96, 320)
    np.testing.assert_allclose(decoded_output(exported.raw(trimmed), (96, 320)), reference.raw(trimmed), atol=0.05)


@pytest.mark.slow
def test_re_exporting_committed_weights_keeps_their_epoch_count(tmp_path: Path) -> None:
    committed = committed_model() / resolve_model(load_manifest(committed_model())).torch_file  # type: ignore[operator]
    result = export_model(
        committed,  # no lineage.json beside it: the count comes from the file itself
        name="again",
        version="t2",
        models_dir=tmp_path / "models",
        dataset=tiny_dataset(tmp_path / "data"),
        quantize=False,
        tower_clip=None,
        threads=1,
        compare_rules=False,
    )
    assert result.entry.epochs_trained == checkpoint_epochs_total(committed)
    assert checkpoint_epochs_total(tmp_path / "models" / "again.pt") == checkpoint_epochs_total(committed)


def test_a_kept_int8_variant_becomes_the_cpu_default(tmp_path: Path) -> None:
    entry = resolve_model(load_manifest(committed_model()))
    variant = entry.model_copy(update={"name": f"{entry.name}-int8", "torch_file": None, "torch_sha256": None})
    merged = _merge(tmp_path, entry, variant, set_default=True)
    assert (merged.default, merged.cpu_default) == (entry.name, variant.name)
    assert _merge(tmp_path, entry, None, set_default=True).cpu_default is None


def test_export_refuses_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        export_model(tmp_path / "none.pt", models_dir=tmp_path)
    with pytest.raises(ValueError, match="7 or 8 bits"):  # before any file is read
        export_model(tmp_path / "none.pt", models_dir=tmp_path, int8_weight_bits=4)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cpu", "CPU"),
        ("CPU", "CPU"),
        (None, "CPU"),
        ("", "CPU"),
        ("0", "GPU (CUDA device 0)"),
        (0, "GPU (CUDA device 0)"),
        ("0,1", "GPU (CUDA device 0,1)"),
        ("cuda:0", "GPU (cuda:0)"),
        ("mps", "GPU (mps)"),
    ],
)
def test_training_device_is_read_from_the_run_args(device: object, expected: str) -> None:
    """The model card says where the last run trained (the 640 px run was on a lent GPU, earlier ones on CPU)."""
    assert _training_device({"device": device}) == expected
    assert _training_device({}) == "CPU"


def test_tower_checks_run_with_the_given_rule_and_the_card_states_it(tmp_path: Path) -> None:
    """Each check records the rule it ran with (the model's own per-frame threshold), and the card prints that."""
    from detector.sequence import DEFAULT_SEQUENCE_CONFIG, frame_threshold_for

    models = committed_model()
    manifest = load_manifest(models)
    entry = resolve_model(manifest)
    detector = load_detector("onnx", model=entry.name, models_dir=models, threads=1)
    assert isinstance(detector, YoloDetector)
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in range(3):
        Image.fromarray(flame_image(192, 128)).save(clip / f"{i:02d}.jpg")
    mask = tmp_path / "mask.json"
    mask.write_text("[[[0, 0], [10, 0], [10, 10]]]")
    config = replace(DEFAULT_SEQUENCE_CONFIG, frame_threshold=frame_threshold_for(0.45))

    assert _tower_checks(detector, None, mask, config) == []
    assert _tower_checks(detector, tmp_path / "absent.mp4", mask, config) == []
    # Whole frame (watch's default) and `--tiles auto`, each without and with the mask: the 192×128 frames are
    # smaller than the model's input, so auto tiling leaves them whole.
    unmasked = _tower_checks(detector, clip, tmp_path / "no-mask.json", config)
    assert [(c.masked, c.tiles, c.auto_tiles) for c in unmasked] == [(False, None, False), (False, None, True)]
    checks = _tower_checks(detector, clip, mask, config)
    assert [(c.masked, c.auto_tiles) for c in checks] == [(False, False), (True, False), (False, True), (True, True)]
    assert all(c.frames == 3 and c.config == config for c in checks)
    wide = tmp_path / "wide"
    wide.mkdir()
    for i in range(2):
        Image.fromarray(flame_image(1280, 854)).save(wide / f"{i:02d}.jpg")
    wide_checks = _tower_checks(detector, wide, None, config)
    assert [c.tiles for c in wide_checks] == [None, (3, 2)]

    card = render_card(manifest, tower={entry.name: checks})
    assert "4 of 8 frames at confidence ≥ 0.225" in card
    assert "(`--tiles auto` keeps frames this size whole)" in card
    assert "without a mask (what `strawfire detector watch` does by default)" in card
    wide_card = render_card(manifest, tower={entry.name: wide_checks})
    assert "whole frame plus 3×2 tiles (`--tiles auto`)" in wide_card


def test_the_card_gives_each_source_ap_at_both_ious() -> None:
    manifest = load_manifest(committed_model())
    entry = resolve_model(manifest)
    strict = {"aerial": report(0.22), "negatives": report(0.0)}
    loose = {"aerial": report(0.48).model_copy(update={"iou": 0.3})}
    card = render_card(manifest, sources={entry.name: (strict, loose)})
    header = "| source | images | without fire/smoke | AP50 fire | AP50 smoke | AP@0.3 fire | AP@0.3 smoke |"
    assert f"{header} image recall | false-positive image rate |\n|---|---|---|---|---|---|---|---|---|\n" in card
    assert "| aerial | 1 | 0 | 0.220 | 0.220 | 0.480 | 0.480 |" in card
    assert "| negatives | 1 | 0 | 0.000 | 0.000 | – | – |" in card  # no looser report for it: dashes
    plain = render_card(manifest, sources={entry.name: (strict, {})})
    assert "| AP50 fire | AP50 smoke | image recall |" in plain
    assert "AP@" not in plain


def test_the_card_counts_the_errors_by_kind() -> None:
    manifest = load_manifest(committed_model())
    entry = resolve_model(manifest)
    counts = {
        "fire": {"duplicate": 0, "class": 0, "localisation": 4, "background": 26, "boxed_differently": 4,
                 "wrong_class": 0, "missed": 69},
        "smoke": {"duplicate": 9, "class": 0, "localisation": 77, "background": 15, "boxed_differently": 74,
                  "wrong_class": 0, "missed": 65},
    }  # fmt: skip
    card = render_card(manifest, errors={entry.name: counts})  # type: ignore[dict-item]
    table = (
        "| class | duplicate | class | localisation | background | boxed differently | wrong class | missed |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| fire | 0 | 0 | 4 | 26 | 4 | 0 | 69 |\n"
        "| smoke | 9 | 0 | 77 | 15 | 74 | 0 | 65 |\n"
    )
    assert table in card
    assert "Errors at the operating threshold" not in render_card(manifest)


def test_the_tower_rule_is_the_models_own_unless_given() -> None:
    """An export watches the tower clip as `watch` and the patrol pipeline would: at half the chosen threshold."""
    from detector.export import tower_rule
    from detector.sequence import DEFAULT_SEQUENCE_CONFIG, SequenceConfig

    assert tower_rule(None, 0.45) == replace(DEFAULT_SEQUENCE_CONFIG, frame_threshold=0.225)
    assert tower_rule(None, 0.30).frame_threshold == 0.15
    given = SequenceConfig(frame_threshold=0.4, window=6, min_hits=3)
    assert tower_rule(given, 0.45) is given


@needs_exact_int8
@pytest.mark.slow
@pytest.mark.parametrize("bits", [8, 7])
def test_the_int8_model_takes_pixels_and_gives_what_the_float_input_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bits: int
) -> None:
    """The int8 export's input QuantizeLinear (scale 1/255, zero point 0) is replaced by the uint8 pixels, its stem
    convolution by a space-to-depth one reading 2×2 pixel blocks channels last, and its upsamplings by uint8
    copies: the same output bit for bit, through ONNX Runtime, for real letterboxed images. With 7-bit weights the
    input scale is 2/255 and the pixels are shifted right by one in the graph: the same output as the float input
    on images of even pixel values (where the quantiser's rounding and the shift's flooring agree)."""
    import onnx
    import onnxruntime as ort

    from detector import export
    from detector.yolo import letterbox_batch

    models = committed_model()
    weights = models / resolve_model(load_manifest(models)).torch_file  # type: ignore[operator]
    export._export_onnx(weights, tmp_path / "model.onnx", 320, {})
    fp32 = tmp_path / "model.fp32.onnx"  # written next to it: float32 weights, what _quantize starts from
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    images = [flame_image(320, 224), flame_image(200, 300)]
    for i, image in enumerate(images):
        Image.fromarray(image).save(calibration / f"{i}.png")

    pixels = tmp_path / "pixels.onnx"
    export._quantize(fp32, pixels, calibration, 320, weight_bits=bits)
    floats = tmp_path / "floats.onnx"
    with monkeypatch.context() as patched:
        patched.setattr(export, "_take_pixels", lambda model, **_: None)  # the same quantisation, float input kept
        patched.setattr(export, "_space_to_depth_stem", lambda model: None)  # and the 3x3 stride-2 stem
        patched.setattr(export, "_channels_last_blocks", lambda model: None)  # and NCHW input
        patched.setattr(export, "_nhwc_upsampling", lambda model: 0)  # and the Resize nodes
        patched.setattr(export, "_halve_pixels", lambda model: None)  # and the 7-bit pixels' shift
        export._quantize(fp32, floats, calibration, 320, weight_bits=bits)

    by_floats = ort.InferenceSession(str(floats), providers=["CPUExecutionProvider"])
    by_pixels = ort.InferenceSession(str(pixels), providers=["CPUExecutionProvider"])
    assert by_floats.get_inputs()[0].type == "tensor(float)"
    assert by_pixels.get_inputs()[0].type == "tensor(uint8)"
    assert by_pixels.get_inputs()[0].shape[3] == 12
    for image in images:
        batch, _ = letterbox_batch([image], 320, trim=True)
        blocks, _ = letterbox_batch([image], 320, trim=True, pixels=True, layout="blocks")
        if bits == 7:  # even values, after the letterbox's resizing
            blocks &= np.uint8(0xFE)
            batch = (letterbox_batch([image], 320, trim=True, pixels=True)[0] & np.uint8(0xFE)) / np.float32(255)
        expected = by_floats.run(None, {"images": batch})[0]
        np.testing.assert_array_equal(by_pixels.run(None, {"pixel_blocks": blocks})[0], expected)
    counts = [Counter(node.op_type for node in onnx.load(str(path)).graph.node) for path in (floats, pixels)]
    assert (counts[0]["Resize"], counts[1]["Resize"], counts[1]["Expand"]) == (2, 0, 2)
    assert sum(node.op_type == "QuantizeLinear" for node in onnx.load(str(pixels)).graph.node) < sum(
        node.op_type == "QuantizeLinear" for node in onnx.load(str(floats)).graph.node
    )
    assert [node.op_type for node in onnx.load(str(pixels)).graph.node if "pixel_blocks" in node.input] == [
        "BitShift" if bits == 7 else "Transpose"
    ]
    with pytest.raises(ValueError, match="QuantizeLinear"):
        export._take_pixels(onnx.load(str(pixels)))  # already takes pixels: nothing left to replace
    # Every concatenation outside the head shares one scale and zero point across its inputs and output (a byte
    # copy in ONNX Runtime).
    graph = onnx.load(str(pixels)).graph
    scales = first_values(graph)
    producers = {name: node for node in graph.node for name in node.output}
    shared = concatenations = 0
    for node in graph.node:
        if node.op_type == "Concat" and not node.name.startswith("/model.22/"):
            inputs = {
                (scales[producers[name].input[1]], scales[producers[name].input[2]])
                for name in node.input
                if producers[name].op_type == "DequantizeLinear"
            }
            [quantize] = [
                other for other in graph.node if node.output[0] in other.input and other.op_type == "QuantizeLinear"
            ]
            shared += inputs == {(scales[quantize.input[1]], scales[quantize.input[2]])}
            concatenations += 1
    assert shared == concatenations == 13  # C2f blocks, SPPF and the neck
    # The output is anchors first (batch, anchors, 4 × 16 + 2), as the fp32 export's; onnx_network reads it so.
    assert [
        dim.dim_value or dim.dim_param for dim in onnx.load(str(pixels)).graph.output[0].type.tensor_type.shape.dim
    ] == ["batch", "anchors", 66]


def test_re_exporting_the_same_weights_keeps_the_committed_file(tmp_path: Path) -> None:
    """torch.save writes a fresh serialization id each time: the same weights are recognised by content, so a
    re-export keeps the committed .pt (and its sha256) instead of adding another copy to the repository."""
    from detector.export import _same_checkpoint, _strip

    models = committed_model()
    committed = models / resolve_model(load_manifest(models)).torch_file  # type: ignore[operator]
    first, second, other = tmp_path / "first.pt", tmp_path / "second.pt", tmp_path / "other.pt"
    _strip(committed, first)
    _strip(committed, second)
    assert _same_checkpoint(first, second)
    _strip(committed, other, init_epochs=1)  # the same tensors, another lineage: a different file
    assert not _same_checkpoint(first, other)
    assert not _same_checkpoint(tmp_path / "absent.pt", first)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    assert not _same_checkpoint(tmp_path / "broken.pt", first)


def test_export_refuses_a_damaged_checkpoint_or_an_unbuilt_dataset_naming_the_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detector.cli import app

    runner = CliRunner()
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"PK\x03\x04 cut short")
    dataset = tmp_path / "dataset"
    (dataset / "images" / "val").mkdir(parents=True)
    args = ["export", "--weights", str(weights), "--models-dir", str(tmp_path / "models"), "--dataset", str(dataset)]

    def said(result: object) -> str:
        """stderr without whitespace: rich wraps long paths wherever the terminal width falls."""
        return "".join(getattr(result, "stderr", "").split())

    unbuilt = runner.invoke(app, args)
    assert unbuilt.exit_code == 1
    assert "notadatasetbuiltby" in said(unbuilt)
    (dataset / "manifest.json").write_text(json.dumps({"name": "d", "sources": {}}))
    damaged = runner.invoke(app, args)
    assert damaged.exit_code == 1
    assert f"{weights}:notaloadableultralyticscheckpoint" in said(damaged)
    assert "strawfire-export-" not in said(damaged)  # not the temporary copy's name
    (dataset / "manifest.json").write_text(json.dumps({"name": "d", "sources": {"x": {"licence": "MIT"}}}))
    assert "needssourceswithlicence" in said(runner.invoke(app, args))
