"""The Detector backends: ONNX Runtime and torch agree on the same weights; loading is verified and offline."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detector.backends import YoloDetector, load_detector, onnx_network, torch_network
from detector.cpu import int8_kernels_exact
from detector.detections import Detections, Detector, MotionDetector
from detector.images import load_image
from detector.manifest import ModelError, load_manifest, resolve_model, verified_file
from detector.rules import RulesDetector
from tests.detector.conftest import committed_model, flame_image, shared_path


@pytest.fixture(scope="module")
def models_dir() -> Path:
    return committed_model()


@pytest.fixture(scope="module")
def onnx_detector(models_dir: Path) -> YoloDetector:
    # The fp32 default by name: ONNX Runtime's own default may be its int8 variant (manifest ``cpu_default``).
    fp32 = resolve_model(load_manifest(models_dir)).name
    detector = load_detector("onnx", model=fp32, models_dir=models_dir, threads=1)
    assert isinstance(detector, YoloDetector)
    return detector


@pytest.fixture(scope="module")
def torch_detector(models_dir: Path) -> YoloDetector:
    detector = load_detector("torch", models_dir=models_dir, threads=1, device="cpu")
    assert isinstance(detector, YoloDetector)
    return detector


def synthetic_images() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [flame_image(), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), flame_image(300, 90)]


def real_images() -> list[np.ndarray]:
    picks = [
        shared_path("fire_smoke", "train", "images"),
        shared_path("fire_smoke_aerial", "images"),
        shared_path("tower_sequences", "20190925_FIRE_wc-s-mobo-c", "images"),
        shared_path("negatives", "cair"),
    ]
    paths = []
    for folder in picks:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        paths += files[:: max(1, len(files) // 3)][:3]
    return [load_image(p).pixels for p in paths]


def as_decoded(detector: YoloDetector, batch: np.ndarray) -> np.ndarray:
    """The raw output for ``batch`` in ultralytics' decoded layout, whichever layout the network gives."""
    from detector.backends import head_layout
    from detector.yolo import decoded_output

    raw = detector.raw(batch)
    dfl = head_layout(raw.shape[1], len(detector.info.classes)) == "dfl"
    return decoded_output(raw, (batch.shape[2], batch.shape[3])) if dfl else raw


def assert_same_detections(a: Detections, b: Detections, *, conf_tol: float = 1e-3, box_tol: float = 1.0) -> None:
    """Every box of ``a`` clearly above the shared threshold has a twin in ``b`` and vice versa."""
    for left, right in ((a, b), (b, a)):
        for det in left.above(0.01 + conf_tol):
            twins = [
                d
                for d in right
                if d.class_name == det.class_name
                and abs(d.confidence - det.confidence) <= conf_tol
                and max(abs(p - q) for p, q in zip(d.box, det.box, strict=True)) <= box_tol
            ]
            assert twins, f"no twin for {det} among {len(right)} boxes"


def test_backends_implement_the_protocol(onnx_detector: YoloDetector) -> None:
    assert isinstance(onnx_detector, Detector)
    assert not isinstance(onnx_detector, MotionDetector)
    assert isinstance(RulesDetector(), MotionDetector)
    info = onnx_detector.info
    assert info.classes == ("fire", "smoke")
    assert info.backend == "onnx"
    assert info.input_size == resolve_model(load_manifest(committed_model()), None).input_size
    assert info.input_size in (320, 640)  # the sizes this project trains at (CPU, GPU)


def test_raw_outputs_agree_on_the_same_letterboxed_tensor(
    onnx_detector: YoloDetector, torch_detector: YoloDetector
) -> None:
    from detector.yolo import letterbox_batch

    assert onnx_detector.trim == torch_detector.trim  # the manifest decides the letterbox for both
    batch, _ = letterbox_batch(synthetic_images(), 320, trim=onnx_detector.trim)
    ours, theirs = as_decoded(onnx_detector, batch), as_decoded(torch_detector, batch)
    anchors = sum((batch.shape[2] // s) * (batch.shape[3] // s) for s in (8, 16, 32))
    assert ours.shape == theirs.shape == (3, 6, anchors)
    np.testing.assert_allclose(ours[:, :4], theirs[:, :4], atol=0.05)  # box centre/size in network pixels
    np.testing.assert_allclose(ours[:, 4:], theirs[:, 4:], atol=1e-4)  # class scores


def test_detections_agree_on_synthetic_images(onnx_detector: YoloDetector, torch_detector: YoloDetector) -> None:
    images = synthetic_images()
    for a, b in zip(onnx_detector.detect(images), torch_detector.detect(images), strict=True):
        assert a.image_size == b.image_size
        assert_same_detections(a, b)


@pytest.mark.shared_data
def test_detections_agree_on_real_images(onnx_detector: YoloDetector, torch_detector: YoloDetector) -> None:
    images = real_images()
    found = 0
    for a, b in zip(onnx_detector.detect(images), torch_detector.detect(images), strict=True):
        assert_same_detections(a, b)
        found += len(a)
    assert found > 0  # the comparison compared something


def test_head_layout_from_the_output_channels() -> None:
    from detector.backends import head_layout

    assert head_layout(6, 2) == "decoded"
    assert head_layout(66, 2) == "dfl"
    assert head_layout(67, 3) == "dfl"
    with pytest.raises(ModelError, match=r"outputs 10 channels; a 2-class model has 6 .* or 66"):
        head_layout(10, 2)


def test_output_layout_from_the_declared_shape() -> None:
    """Anchors-first outputs (exports since 20261130) declare a free anchors axis and a fixed channel count."""
    from detector.backends import output_anchors_first

    assert output_anchors_first(["batch", "anchors", 66])
    assert not output_anchors_first(["batch", 66, "anchors"])  # free-size exports before 20261130
    assert not output_anchors_first([1, 6, 2100])  # the first, fixed-size exports
    assert not output_anchors_first(["batch", "anchors"])


@pytest.mark.parametrize(
    ("declared", "transposed"), [(["batch", "anchors", 6], True), (["batch", 6, "anchors"], False)]
)
def test_onnx_network_gives_channels_first_from_either_output_layout(
    tmp_path: Path, declared: list[object], transposed: bool
) -> None:
    """Through onnx_network, an anchors-first output arrives as (batch, channels, anchors) and a channels-first one
    (exports before 20261130) as it is."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "layout",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, declared)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, declared)],
    )
    path = tmp_path / "layout.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    network = onnx_network(path, threads=1)
    raw = np.arange(2 * 6 * 21, dtype=np.float32).reshape((2, 21, 6) if transposed else (2, 6, 21))
    expected = raw.transpose(0, 2, 1) if transposed else raw
    np.testing.assert_array_equal(network(raw), expected)
    assert network.max_batch is None  # a float network keeps the default batch


def test_batch_equals_one_by_one(onnx_detector: YoloDetector) -> None:
    images = synthetic_images()
    batched = onnx_detector.detect(images)
    for image, together in zip(images, batched, strict=True):
        [alone] = onnx_detector.detect([image])
        assert_same_detections(alone, together, conf_tol=1e-5, box_tol=0.01)
    previous, onnx_detector.max_batch = onnx_detector.max_batch, 2  # a batch split across network calls
    try:
        assert [len(d) for d in onnx_detector.detect(images)] == [len(d) for d in batched]
    finally:
        onnx_detector.max_batch = previous


def test_one_detector_serves_several_threads_with_their_own_results(models_dir: Path) -> None:
    """The patrol runs one thread per preset on one detector. ultralytics' Detect head caches its anchor grid on
    the module, so unguarded torch calls with different canvases gave shape errors or silently wrong boxes; ONNX
    Runtime sessions are safe as they are. Landscape and portrait views of one frame: different canvases."""
    from concurrent.futures import ThreadPoolExecutor

    landscape = np.ascontiguousarray(np.broadcast_to(flame_image(320, 180), (180, 320, 3)))
    images = [landscape, np.ascontiguousarray(landscape.transpose(1, 0, 2)), flame_image(200, 300), flame_image()]
    for detector in (
        load_detector("torch", models_dir=models_dir, threads=1, device="cpu"),
        load_detector("onnx", models_dir=models_dir, threads=1),
    ):
        alone = [detector.detect([image])[0] for image in images]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda i, run=detector.detect: run([images[i % 4]])[0], range(120)))
        for index, found in enumerate(together):
            expected = alone[index % 4]
            np.testing.assert_allclose(found.xyxy, expected.xyxy, atol=1e-3)
            np.testing.assert_allclose(found.confidence, expected.confidence, atol=1e-5)


def test_conf_must_be_a_probability(onnx_detector: YoloDetector) -> None:
    for conf in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="conf must be in"):
            onnx_detector.detect([flame_image()], conf=conf)
    with pytest.raises(ValueError, match=r"non-empty|no pixels"):
        onnx_detector.detect([np.zeros((0, 5, 3), np.uint8)])


def test_decoding_files_ahead_finds_the_same_in_the_same_order(onnx_detector: YoloDetector, tmp_path: Path) -> None:
    """``detect_images`` with files decoded on worker threads gives each file exactly what decoding in line gives,
    in the same order (a bad file as soon as it is read), across batch boundaries."""
    from PIL import Image

    from detector.evaluate import detect_images

    paths = []
    for index, image in enumerate(synthetic_images() * 2):
        path = tmp_path / f"{index}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    paths.insert(3, tmp_path / "bad.jpg")
    in_line = list(detect_images(onnx_detector, paths, batch_size=2))
    for workers in (1, 3):
        ahead = list(detect_images(onnx_detector, paths, batch_size=2, decode_workers=workers))
        assert [path for path, _ in ahead] == [path for path, _ in in_line]
        assert sorted(path for path, _ in ahead) == sorted(paths)
        for (_, expected), (path, found) in zip(in_line, ahead, strict=True):
            if path.name == "bad.jpg":
                assert str(found) == str(expected)
                continue
            assert isinstance(found, Detections)
            assert isinstance(expected, Detections)
            np.testing.assert_array_equal(found.xyxy, expected.xyxy)
            np.testing.assert_array_equal(found.confidence, expected.confidence)
            np.testing.assert_array_equal(found.class_id, expected.class_id)


def test_files_are_decoded_ahead_only_beside_an_idle_core(monkeypatch: pytest.MonkeyPatch) -> None:
    import detector.evaluate as evaluate

    monkeypatch.setattr(evaluate, "usable_cores", lambda: 4)
    assert evaluate.decode_workers_for("onnx", None, gpu=False) == 0  # every core runs the network
    assert evaluate.decode_workers_for("onnx", 0, gpu=False) == 0
    assert evaluate.decode_workers_for("onnx", 4, gpu=False) == 0
    assert evaluate.decode_workers_for("onnx", 2, gpu=False) == 1
    assert evaluate.decode_workers_for("torch", None, gpu=True) == 1  # the network runs on the GPU
    assert evaluate.decode_workers_for("torch", None, gpu=False) == 0
    assert evaluate.decode_workers_for("rules", 1, gpu=False) == 0


def test_the_int8_network_runs_one_image_per_call_and_gives_what_a_batch_gives(models_dir: Path) -> None:
    """The int8 variant (ONNX Runtime's CPU default) runs one image per network call, measured faster per image
    than batches; a batch forced through it in one call finds the same."""
    variant = load_manifest(models_dir).cpu_default
    if variant is None:
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'} (kept only when it keeps accuracy)")
    int8 = load_detector("onnx", model=variant, models_dir=models_dir, threads=1)
    assert isinstance(int8, YoloDetector)
    assert int8.info.name.endswith("-int8")
    assert int8.max_batch == 1
    images = [flame_image(), flame_image(192, 128)]  # one aspect, one canvas: they can share a network call
    one_by_one = int8.detect(images)
    int8.max_batch = 8
    for alone, together in zip(one_by_one, int8.detect(images), strict=True):
        assert_same_detections(alone, together, conf_tol=1e-5, box_tol=0.01)


def test_boxes_are_in_original_pixels_and_sorted(onnx_detector: YoloDetector) -> None:
    image = flame_image(1000, 300)
    [found] = onnx_detector.detect([image], conf=0.001)
    assert found.image_size == (1000, 300)
    assert len(found) > 0
    assert (found.xyxy[:, [0, 2]] <= 1000).all()
    assert (found.xyxy[:, [1, 3]] <= 300).all()
    assert (np.diff(found.confidence) <= 0).all()
    assert found.above(0.5).confidence.min(initial=1.0) >= 0.5


def test_model_loading_never_touches_the_network(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for backend in ("onnx", "torch"):
        detector = load_detector(backend, models_dir=models_dir, threads=1)  # type: ignore[arg-type]
        [found] = detector.detect([flame_image()])
        assert found.model == detector.info.name


def copy_models(models_dir: Path, tmp_path: Path) -> Path:
    """A copy of the models folder whose ONNX Runtime default is the fp32 default entry (no ``cpu_default``)."""
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.pop("cpu_default", None)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_corrupted_weights_are_a_clear_error(models_dir: Path, tmp_path: Path) -> None:
    copy = copy_models(models_dir, tmp_path)
    entry = resolve_model(load_manifest(copy))
    onnx_file = copy / entry.file
    # Both weight files: ``auto`` runs the torch one on a GPU machine (seen on a lent H200), the ONNX one elsewhere.
    assert entry.torch_file
    for weights in (onnx_file, copy / entry.torch_file):
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"sha256 .* does not match"):
        load_detector("onnx", models_dir=copy)
    with pytest.raises(ModelError, match=r"sha256 .* does not match"):
        load_detector("torch", models_dir=copy, device="cpu")
    with pytest.raises(ModelError, match="sha256"):
        load_detector("auto", models_dir=copy)  # a configured model never silently falls back to the rules
    onnx_file.unlink()
    with pytest.raises(ModelError, match="missing"):
        load_detector("onnx", models_dir=copy)


def test_unreadable_weights_with_matching_hash_are_a_clear_error(models_dir: Path, tmp_path: Path) -> None:
    copy = copy_models(models_dir, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == manifest["default"])
    (copy / entry["file"]).write_bytes(b"not an onnx model")
    entry["sha256"] = __import__("hashlib").sha256(b"not an onnx model").hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="cannot load"):
        load_detector("onnx", models_dir=copy)
    (copy / entry["torch_file"]).write_bytes(b"not a checkpoint")
    entry["torch_sha256"] = __import__("hashlib").sha256(b"not a checkpoint").hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="not a loadable"):
        torch_network(verified_file(copy, resolve_model(load_manifest(copy)), "torch"))


def test_manifest_problems_are_clear_errors(models_dir: Path, tmp_path: Path) -> None:
    copy = copy_models(models_dir, tmp_path)
    with pytest.raises(ModelError, match="not in the manifest"):
        load_detector("onnx", model="no-such-model", models_dir=copy)
    (copy / "manifest.json").write_text("{ broken")
    with pytest.raises(ModelError, match="invalid manifest"):
        load_detector("onnx", models_dir=copy)
    (copy / "manifest.json").write_text(json.dumps({"schema_version": 1, "models": [], "surprise": 1}))
    with pytest.raises(ModelError, match="invalid manifest"):
        load_manifest(copy)


def test_an_entry_that_does_not_describe_its_weights_is_refused_at_load(models_dir: Path, tmp_path: Path) -> None:
    """Classes of another count or order, or an absurd or mistyped input size: a clear error when the model loads,
    never wrong labels, a traceback in the middle of a batch or a huge allocation."""
    copy = copy_models(models_dir, tmp_path)
    original = (copy / "manifest.json").read_text()

    def edited(name: str | None, **fields: object) -> None:
        data = json.loads(original)
        wanted = name or data["default"]
        entry = next(m for m in data["models"] if m["name"] == wanted)
        entry.update(fields)
        (copy / "manifest.json").write_text(json.dumps(data))

    fp32 = resolve_model(load_manifest(copy)).name
    for name in {fp32, load_manifest(copy).cpu_default or fp32}:
        edited(name, classes=["fire", "smoke", "ash"])
        with pytest.raises(ModelError, match=r"66 channels.*3 classes|classes are \[.fire., .smoke.\]"):
            load_detector("onnx", model=name, models_dir=copy)
    edited(fp32, classes=["smoke", "fire"])  # swapped: every alert would say smoke for fire
    with pytest.raises(ModelError, match=r"classes are \['fire', 'smoke'\], the manifest says \['smoke', 'fire'\]"):
        load_detector("onnx", model=fp32, models_dir=copy)
    with pytest.raises(ModelError, match="classes are"):
        load_detector("torch", model=fp32, models_dir=copy, device="cpu")
    for fields, message in [
        ({"input_size": 100000}, "input_size"),
        ({"input_size": 37}, "multiple of 32"),
        ({"input_size": "640"}, "input_size"),
        ({"classes": []}, "classes"),
        ({"classes": ["fire", "fire"]}, "distinct"),
        ({"date": "yesterday"}, "ISO 8601"),
        ({"date": "20261130"}, "ISO 8601"),
    ]:
        edited(fp32, **fields)
        with pytest.raises(ModelError, match=message):
            load_detector("onnx", models_dir=copy)
    data = json.loads(original)
    data["models"].append(data["models"][0])
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="repeated"):
        load_manifest(copy)


def test_a_named_model_never_falls_back_to_the_rules(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model manifest"):
        load_detector("auto", model="strawfire-yolov8n", models_dir=tmp_path)


def test_no_model_configured_falls_back_to_rules_only_in_auto(tmp_path: Path) -> None:
    assert isinstance(load_detector("auto", models_dir=tmp_path), RulesDetector)
    assert isinstance(load_detector("rules", models_dir=tmp_path), RulesDetector)
    with pytest.raises(ModelError, match="no model manifest"):
        load_detector("onnx", models_dir=tmp_path)


def test_threads_are_configurable(models_dir: Path) -> None:
    entry = resolve_model(load_manifest(models_dir))
    network = onnx_network(verified_file(models_dir, entry), threads=2)
    assert network(np.zeros((1, 3, 320, 320), np.float32)).shape == (1, 4 * 16 + 2, 2100)  # DFL logits + class scores
    cpu_torch = torch_network(verified_file(models_dir, entry, "torch"), device="cpu", threads=1)
    assert cpu_torch(np.zeros((2, 3, 320, 320), np.float32)).shape == (2, 6, 2100)


def test_onnx_runtime_runs_the_cpu_default_and_torch_the_fp32_weights(models_dir: Path, tmp_path: Path) -> None:
    manifest = load_manifest(models_dir)
    fp32 = resolve_model(manifest)
    variant = next((m for m in manifest.models if m.name == f"{fp32.name}-int8"), None)
    if variant is None:
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'} (kept only when it keeps accuracy)")
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["cpu_default"] = variant.name
    (copy / "manifest.json").write_text(json.dumps(data))
    # A full-range int8 model on a CPU without VNNI: the fp32 model instead (detector.cpu); 7-bit: exact anywhere
    default = variant.name if variant.exact_without_vnni or int8_kernels_exact() else fp32.name
    assert load_detector("onnx", models_dir=copy, threads=1).info.name == default
    assert load_detector("onnx", model=variant.name, models_dir=copy, threads=1).info.name == variant.name  # asked
    assert load_detector("onnx", model=fp32.name, models_dir=copy, threads=1).info.name == fp32.name
    assert load_detector("torch", models_dir=copy, threads=1, device="cpu").info.name == fp32.name
    data["cpu_default"] = None
    (copy / "manifest.json").write_text(json.dumps(data))
    assert load_detector("onnx", models_dir=copy, threads=1).info.name == fp32.name


def test_a_fixed_size_network_keeps_the_square_letterbox(models_dir: Path) -> None:
    entry = resolve_model(load_manifest(models_dir))
    network = onnx_network(verified_file(models_dir, entry), threads=1)
    detector = YoloDetector(network, load_detector("onnx", model=entry.name, models_dir=models_dir).info)
    assert detector.trim == network.any_size == entry.trimmed_input
    assert YoloDetector(network, detector.info, trim=False).trim is False


@pytest.mark.shared_data
def test_int8_variant_loads_and_finds_what_fp32_finds(models_dir: Path, onnx_detector: YoloDetector) -> None:
    manifest = load_manifest(models_dir)
    name = f"{resolve_model(manifest).name}-int8"
    variant = next((m for m in manifest.models if m.name == name), None)
    if variant is None:
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'} (kept only when it keeps accuracy)")
    if not (variant.exact_without_vnni or int8_kernels_exact()):
        pytest.skip(f"{name} has full-range weights, whose int8 sums saturate on this CPU without VNNI")
    int8 = load_detector("onnx", model=name, models_dir=models_dir, threads=1)
    assert int8.info.name == name
    images = real_images()
    fp32_found, int8_found = onnx_detector.detect(images, conf=0.001), int8.detect(images, conf=0.001)
    compared = 0
    for a, b in zip(fp32_found, int8_found, strict=True):
        best_a, best_b = float(a.confidence.max(initial=0.0)), float(b.confidence.max(initial=0.0))
        assert abs(best_a - best_b) < 0.1
        compared += best_a > 0.25
    assert compared > 0  # the comparison compared real detections


def test_the_int8_network_takes_pixels_and_converts_a_float_batch(models_dir: Path) -> None:
    """The committed int8 variant takes uint8 pixels (export's _take_pixels) as 2×2 blocks; an NCHW batch of pixels
    or of floats in [0, 1], as raw() and the tests give, is converted back to exactly those blocks."""
    from detector.yolo import letterbox_batch

    manifest = load_manifest(models_dir)
    name = f"{resolve_model(manifest).name}-int8"
    entry = next((m for m in manifest.models if m.name == name), None)
    if entry is None:
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'} (kept only when it keeps accuracy)")
    network = onnx_network(verified_file(models_dir, entry), threads=1)
    assert network.pixels
    assert network.layout == "blocks"  # export's _channels_last_blocks: 2x2 pixel blocks, channels last
    images = synthetic_images()[:1]
    floats, _ = letterbox_batch(images, 320, trim=True)
    pixels, _ = letterbox_batch(images, 320, trim=True, pixels=True)
    blocks, _ = letterbox_batch(images, 320, trim=True, pixels=True, layout="blocks")
    expected = network(blocks)
    np.testing.assert_array_equal(network(pixels), expected)  # NCHW uint8, rearranged
    np.testing.assert_array_equal(network(floats), expected)  # NCHW floats in [0, 1], converted and rearranged
    fp32 = onnx_network(verified_file(models_dir, resolve_model(manifest)), threads=1)
    assert not fp32.pixels


def test_a_batch_runs_side_by_side_with_the_same_results(models_dir: Path) -> None:
    """With two threads the int8 network also gets a one-thread session, and a batch's images run on it side by
    side (one per core); every image gets exactly what it gets alone on one thread, in the caller's order, also
    when the images differ in canvas size."""
    manifest = load_manifest(models_dir)
    name = f"{resolve_model(manifest).name}-int8"
    if not any(m.name == name for m in manifest.models):
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'} (kept only when it keeps accuracy)")
    entry = next(m for m in manifest.models if m.name == name)
    network = onnx_network(verified_file(models_dir, entry), threads=2)
    assert network.workers == 2
    assert network.single_thread is not None
    assert onnx_network(verified_file(models_dir, entry), threads=1).workers == 1
    assert onnx_network(verified_file(models_dir, resolve_model(manifest)), threads=2).workers == 1  # fp32 batches
    side_by_side = load_detector("onnx", model=name, models_dir=models_dir, threads=2)
    alone = load_detector("onnx", model=name, models_dir=models_dir, threads=1)
    images = real_images() + synthetic_images()
    together = side_by_side.detect(images, conf=0.05)
    assert isinstance(side_by_side, YoloDetector)
    assert side_by_side._pool is not None  # the batch did run side by side
    found = 0
    for image, got in zip(images, together, strict=True):
        # The same alone on one thread and alone on the two-thread session (one image: no side-by-side calls).
        for expected in (alone.detect([image], conf=0.05)[0], side_by_side.detect([image], conf=0.05)[0]):
            assert got.image_size == expected.image_size
            np.testing.assert_array_equal(got.xyxy, expected.xyxy)
            np.testing.assert_array_equal(got.confidence, expected.confidence)
            np.testing.assert_array_equal(got.class_id, expected.class_id)
        found += len(got)
    assert found > 0
    side_by_side.close()
    assert side_by_side._pool is None
    assert len(side_by_side.detect(images[:2], conf=0.05)) == 2  # a closed detector starts a new pool


def test_a_forked_child_runs_side_by_side_batches(models_dir: Path) -> None:
    """A pool's threads do not survive fork: a detector that ran a batch before a fork starts a new pool in the
    child instead of waiting for ever on the parent's (Celery's prefork workers, multiprocessing on Linux)."""
    import multiprocessing

    manifest = load_manifest(models_dir)
    name = f"{resolve_model(manifest).name}-int8"
    if not any(m.name == name for m in manifest.models):
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'} (kept only when it keeps accuracy)")
    detector = load_detector("onnx", model=name, models_dir=models_dir, threads=2)
    images = synthetic_images()
    before = [len(found) for found in detector.detect(images)]

    def child(queue: Any) -> None:
        queue.put([len(found) for found in detector.detect(images)])

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    process.join(timeout=60)
    if process.is_alive():
        process.kill()
        pytest.fail("the forked child hung on the parent's worker pool")
    assert process.exitcode == 0
    assert queue.get(timeout=5) == before


@pytest.mark.parametrize("weight_bits", [None, 8, 7])
@pytest.mark.parametrize("exact", [True, False], ids=["vnni", "avx2-only"])
def test_the_cpu_default_is_the_int8_variant_only_where_its_sums_are_exact(
    models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    exact: bool,
    weight_bits: int | None,
) -> None:
    """On an AVX2-only x86 CPU ONNX Runtime's int8 kernels saturate with full-range weights (29 % of the stem's
    outputs differed, and a tower's hazy hillside got a smoke event): there a full-range int8 variant (8 bits, or
    an export from before the field) gives way to the fp32 model, and the log says why. A 7-bit one is exact
    everywhere (test_int8_without_vnni) and stays the default."""
    import detector.backends

    manifest = load_manifest(models_dir)
    if manifest.cpu_default is None:
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'} (kept only when it keeps accuracy)")
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    data = json.loads((copy / "manifest.json").read_text())
    for entry in data["models"]:
        if entry["name"] == manifest.cpu_default:
            entry["weight_bits"] = weight_bits
    (copy / "manifest.json").write_text(json.dumps(data))
    monkeypatch.setattr(detector.backends, "int8_kernels_exact", lambda: exact)
    monkeypatch.setattr(detector.backends, "_warned", set())
    loaded = load_detector("onnx", models_dir=copy, threads=1)
    int8_runs = exact or weight_bits == 7
    assert loaded.info.name == (manifest.cpu_default if int8_runs else resolve_model(manifest).name)
    warned = [r.getMessage() for r in caplog.records if "VNNI" in r.getMessage()]
    assert len(warned) == (0 if int8_runs else 1)


@pytest.mark.parametrize(
    ("flags", "exact"),
    [
        ("fpu sse sse2 avx avx2 fma", False),  # AMD EPYC (Zen 2/3), Xeon before Cascade Lake
        ("fpu sse avx2 avx512f avx512bw", False),  # AVX-512 without VNNI (Skylake-SP) saturates too
        ("fpu avx2 avx512f avx512_vnni", True),  # Cascade Lake and later, Zen 4
        ("fpu avx2 avx_vnni", True),  # Alder Lake
    ],
)
def test_int8_kernels_are_exact_where_the_cpu_has_vnni(flags: str, exact: bool) -> None:
    cpuinfo = f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {flags}\nbugs\t\t:\n"
    assert int8_kernels_exact(cpuinfo) is exact
    assert int8_kernels_exact("processor : 0\n") is True  # no flags line (not x86): nothing to say it saturates
