"""The torch backend on a CUDA GPU: ``auto`` picks it there, and it finds what ONNX Runtime finds on the CPU.

CI has no GPU, so these skip there. On a GPU machine without the service's dependencies (the lent device):
``python -m pytest tests/detector/test_gpu.py --confcutdir tests/detector -p no:cacheprovider -p no:warnings``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.backends import YoloDetector, cuda_available, load_detector
from detector.manifest import load_manifest, resolve_model
from detector.yolo import letterbox_batch
from tests.detector.conftest import committed_model
from tests.detector.test_backends import as_decoded, assert_same_detections, synthetic_images

pytestmark = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def models_dir() -> Path:
    return committed_model()


def test_auto_runs_the_torch_backend_on_the_gpu(models_dir: Path) -> None:
    detector = load_detector("auto", models_dir=models_dir)
    assert isinstance(detector, YoloDetector)
    assert detector.info.backend == "torch"
    assert detector.info.name == resolve_model(load_manifest(models_dir)).name  # fp32 weights, not the int8 ONNX


def test_gpu_torch_agrees_with_onnx_runtime_on_the_cpu(models_dir: Path) -> None:
    fp32 = resolve_model(load_manifest(models_dir)).name
    onnx = load_detector("onnx", model=fp32, models_dir=models_dir, threads=1)
    gpu = load_detector("torch", models_dir=models_dir, device="cuda")
    assert isinstance(onnx, YoloDetector)
    assert isinstance(gpu, YoloDetector)
    images = synthetic_images()
    batch, _ = letterbox_batch(images, onnx.info.input_size, trim=onnx.trim)
    # cuDNN may run fp32 convolutions in TF32 (10-bit mantissa): agreement to ~1e-2 on raw scores and box logits.
    np.testing.assert_allclose(as_decoded(gpu, batch), as_decoded(onnx, batch), atol=0.05, rtol=0.01)
    found_cpu = onnx.detect(images, conf=0.01)
    found_gpu = gpu.detect(images, conf=0.01)
    assert sum(len(d) for d in found_cpu) > 0  # something to compare
    for a, b in zip(found_cpu, found_gpu, strict=True):
        assert_same_detections(a, b, conf_tol=5e-3, box_tol=2.0)
