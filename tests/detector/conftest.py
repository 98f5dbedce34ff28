"""Fixtures of the detector tests: the committed model, tiny images, and the real data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.cpu import int8_kernels_exact
from detector.paths import DEFAULT_MODELS_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


#: What :func:`detector.train.configure_offline` writes into the process environment.
_OFFLINE_ENV_VARS = (
    "YOLO_OFFLINE",
    "YOLO_CONFIG_DIR",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MPLCONFIGDIR",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let configure_offline() write os.environ; monkeypatch restores it afterwards."""
    for var in _OFFLINE_ENV_VARS:
        monkeypatch.setenv(var, "placeholder")
        monkeypatch.delenv(var)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a clear reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (../shared/data is not checked out)")
    return path


def committed_model() -> Path:
    """models/ of this checkout, skipping when no model has been exported there."""
    if not (DEFAULT_MODELS_DIR / "manifest.json").is_file():
        pytest.skip(f"no exported model: {DEFAULT_MODELS_DIR / 'manifest.json'} is missing")
    return DEFAULT_MODELS_DIR


def said(text: str) -> str:
    """``text`` without whitespace or panel borders: rich wraps messages at the terminal's width, inside boxes for
    usage errors, so a phrase may be split over lines."""
    return "".join(text.replace("│", " ").split())


def flame_image(width: int = 96, height: int = 64) -> np.ndarray:
    """A dull green field with a bright orange-yellow blob: flame-coloured by the YCbCr rule."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = (60, 90, 50)
    image[20:40, 30:50] = (255, 140, 20)
    image[25:35, 35:45] = (255, 210, 80)
    return image


#: For bit-for-bit tests on graphs with full-range int8 weights: ONNX Runtime's int8 kernels saturate on x86 CPUs
#: without VNNI (AVX2 alone), so such sums are not exact there (detector.cpu; our exports use 7-bit weights for
#: this reason, detector.export.INT8_WEIGHT_BITS).
needs_exact_int8 = pytest.mark.skipif(
    not int8_kernels_exact(),
    reason="this CPU has no VNNI: ONNX Runtime's int8 kernels saturate here with full-range weights "
    "(detector.cpu.int8_kernels_exact)",
)
