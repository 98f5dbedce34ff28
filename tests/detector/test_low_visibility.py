"""The committed model on frames with nothing to see: a grey "no video" screen and dense fog over real tower
frames used to be confirmed as smoke by `watch` (one frame-wide box, persistent); the FIgLib plume still is."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from detector.cli import app
from tests.detector.conftest import committed_model, shared_path

runner = CliRunner()


def watch(source: Path) -> dict[str, object]:
    committed_model()
    result = runner.invoke(app, ["watch", str(source), "--json"])
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_a_grey_screen_and_fogged_tower_frames_confirm_nothing(tmp_path: Path) -> None:
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(12):  # a camera's "no video" screen, 4:3 (16:9 frames were spared)
        cv2.imwrite(str(grey / f"{i:03d}.jpg"), np.full((768, 1024, 3), 128, np.uint8))
    assert watch(grey)["events"] == []
    frames = sorted(shared_path("tower_sequences", "20190925_FIRE_wc-s-mobo-c", "images").glob("*_-*.jpg"))[:30]
    fog = tmp_path / "fog"
    fog.mkdir()
    for i, path in enumerate(frames):  # pre-ignition frames under dense fog (grey-level std ~8, not "uniform")
        image = cv2.imread(str(path)).astype(np.float32)
        cv2.imwrite(str(fog / f"{i:03d}.jpg"), (0.1 * image + 0.9 * 128).astype(np.uint8))
    assert watch(fog)["events"] == []
