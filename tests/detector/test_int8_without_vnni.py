"""The int8 model computes the same sums on x86 CPUs without VNNI as on those with it.

On x86 without VNNI (AVX2 alone, or AVX-512 without it) ONNX Runtime multiplies uint8 by int8 with ``vpmaddubsw``,
which saturates each pair's 16-bit sum; strawfire's int8 weights therefore use 7 bits, the stem's 8 bits on
7-bit pixels (:data:`detector.export.INT8_WEIGHT_BITS`). These tests run ONNX Runtime under Debian's qemu-user
(the CI installs it) on two emulated CPUs, whatever this machine has: ``-cpu Haswell``, AVX2 without VNNI, whose
kernels saturate, against ``-cpu Nehalem``, SSE4.2 without AVX, whose kernels widen the bytes to 16 bits and sum
with ``pmaddwd``: exact, the sums a VNNI CPU computes. The host is not the reference because it may itself lack
VNNI (the 2 December CI machine, an AVX2-only EPYC, computed the 8-bit export's saturated sums natively).
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.cpu import int8_kernels_exact
from detector.manifest import load_manifest, resolve_model, verified_file
from tests.detector.conftest import committed_model, flame_image
from tests.detector.onnx_run import PROBE_K, PROBE_WEIGHTS

QEMU = shutil.which("qemu-x86_64")
RUNNER = Path(__file__).with_name("onnx_run.py")

pytestmark = pytest.mark.skipif(
    QEMU is None or platform.machine() != "x86_64",
    reason="needs qemu-x86_64 (Debian package qemu-user) on an x86-64 machine to emulate a CPU without VNNI",
)


#: The emulated CPU models: AVX2 without VNNI (saturating u8×s8 kernels) and SSE4.2 (exact ones). NumPy's wheels
#: need x86-64-v2, which Nehalem is the oldest model to have.
SATURATING, EXACT = "Haswell", "Nehalem"


def _outputs(tmp_path: Path, *args: str, cpu: str | None) -> np.ndarray:
    """``onnx_run.py ARGS`` under ``qemu-x86_64 -cpu CPU`` (None: natively), its saved output."""
    out = tmp_path / f"{cpu or 'native'}.npy"
    command = [sys.executable, str(RUNNER), *args, str(out)]
    if cpu is not None:
        assert QEMU is not None
        command = [QEMU, "-cpu", cpu, *command]
    # qemu warns about every CPUID feature TCG lacks (pcid, x2apic...): stderr is kept for the failure message only
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: np.ndarray = np.load(out)
    return loaded


def test_the_emulated_cpu_saturates_full_range_weights_and_not_7_bit_ones(tmp_path: Path) -> None:
    """The probe that the emulation exercises the saturating kernels and the reference the exact ones: 64 products
    of 255 × 127 sum to 2,072,640 exactly, but to 1,048,544 (32 pairs at 32,767) on the emulated Haswell, where
    255 × ±64 stays exact; the emulated Nehalem sums every column exactly."""
    exact = np.full((4, PROBE_K), 255, np.int64) @ np.tile(np.array(PROBE_WEIGHTS, np.int64), (PROBE_K, 1))
    saturating = _outputs(tmp_path, "--matmul", cpu=SATURATING)
    assert saturating[0, 0] == PROBE_K // 2 * 32767 != exact[0, 0]  # 127: saturated
    assert saturating[0, 1] == PROBE_K // 2 * -32768 != exact[0, 1]  # -128: saturated
    np.testing.assert_array_equal(saturating[:, 2:], exact[:, 2:])  # ±64: exact
    np.testing.assert_array_equal(_outputs(tmp_path, "--matmul", cpu=EXACT), exact)
    # This machine's own kernels: exact with VNNI, saturated without (detector.cpu.int8_kernels_exact)
    native = _outputs(tmp_path, "--matmul", cpu=None)
    np.testing.assert_array_equal(native, exact if int8_kernels_exact() else saturating)


def _same_without_vnni(tmp_path: Path, model: Path, blocks: np.ndarray) -> tuple[bool, float]:
    """Whether ``model`` gives the same outputs on ``blocks`` on the emulated Haswell (saturating kernels) as on
    the emulated Nehalem (exact ones), and the largest difference. The int8 part is exact or not; the float head
    after it (sigmoid) may round differently in the last place with other vector widths, hence the tolerance."""
    np.save(tmp_path / "blocks.npy", blocks)
    exact = _outputs(tmp_path, str(model), str(tmp_path / "blocks.npy"), cpu=EXACT)
    saturating = _outputs(tmp_path, str(model), str(tmp_path / "blocks.npy"), cpu=SATURATING)
    assert exact.shape == saturating.shape
    assert exact.size > 0
    difference = float(np.abs(exact - saturating).max())
    return difference <= 1e-4, difference


def _noise_blocks(rows: int, columns: int) -> np.ndarray:
    """Pixel blocks of noise: every pixel value, so every weight meets bright pairs."""
    return np.random.default_rng(7).integers(0, 256, size=(1, rows, columns, 12), dtype=np.uint8)


def test_the_committed_int8_model_is_exact_without_vnni_only_with_7_bit_weights(tmp_path: Path) -> None:
    """The premise of load_detector's choice on a CPU without VNNI: a full-range int8 variant (20261130-e344:
    61 % of its outputs on this noise changed, by up to 2.8) gives other outputs there, so the fp32 model runs
    instead; a 7-bit one gives the same outputs, so it runs."""
    models_dir = committed_model()
    manifest = load_manifest(models_dir)
    if manifest.cpu_default is None:
        pytest.skip(f"no int8 variant in {models_dir / 'manifest.json'}")
    entry = resolve_model(manifest, manifest.cpu_default)
    same, difference = _same_without_vnni(
        tmp_path,
        verified_file(models_dir, entry, "onnx"),
        _noise_blocks(160, 224),  # a 448×320 canvas
    )
    assert same is entry.exact_without_vnni, f"largest difference {difference}"


def test_a_7_bit_export_is_exact_without_vnni_and_an_8_bit_one_is_not(tmp_path: Path) -> None:
    """The export's --int8-weight-bits on the committed weights (at 64 px, calibrated on two images): the 7-bit
    variant's outputs are the same under the emulated Haswell, the 8-bit one's are not."""
    from detector import export

    models = committed_model()
    weights = models / resolve_model(load_manifest(models)).torch_file  # type: ignore[operator]
    export._export_onnx(weights, tmp_path / "model.onnx", 64, {})
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i, (width, height) in enumerate([(96, 64), (64, 64)]):
        Image.fromarray(flame_image(width, height)).save(calibration / f"{i}.png")
    blocks = _noise_blocks(32, 32)
    for bits in (7, 8):
        int8 = tmp_path / f"int8-{bits}.onnx"
        precision = export._quantize(tmp_path / "model.fp32.onnx", int8, calibration, 64, weight_bits=bits)
        assert ("7-bit weights" in precision) is (bits == 7)
        same, difference = _same_without_vnni(tmp_path, int8, blocks)
        assert same is (bits == 7), f"{bits}-bit weights: largest difference {difference}"
    with pytest.raises(ValueError, match="7 or 8 bits"):
        export._quantize(tmp_path / "model.fp32.onnx", tmp_path / "x.onnx", calibration, 64, weight_bits=6)
