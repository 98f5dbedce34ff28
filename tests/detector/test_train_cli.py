"""Fast tests of detector.train and detector.cli: offline set-up, refusals, lazy imports. No training here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detector import train as train_module
from detector.cli import app
from detector.train import (
    AUGMENTATION,
    TrainingSetupError,
    configure_offline,
    last_checkpoint,
    offline_guard,
    train,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import sys, detector.cli; print(sorted(m for m in ('torch', 'ultralytics', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.usefixtures("clean_env")
def test_configure_offline_sets_env_and_local_fonts(tmp_path: Path) -> None:
    configure_offline(tmp_path / "cfg", threads=1)
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_CONFIG_DIR"] == str((tmp_path / "cfg").resolve())
    assert os.environ["OMP_NUM_THREADS"] == "1"
    for font in ("Arial.ttf", "Arial.Unicode.ttf"):
        link = tmp_path / "cfg" / "Ultralytics" / font
        assert link.is_symlink()
        assert link.resolve().is_file()  # check_font() finds it and never downloads
    configure_offline(tmp_path / "cfg", threads=1)  # idempotent


def test_offline_guard_blocks_remote_lookups_but_not_loopback() -> None:
    with offline_guard():
        with pytest.raises(OSError, match="blocked"):
            socket.getaddrinfo("github.com", 443)
        socket.getaddrinfo("localhost", 80)
    assert train_module._guard["active"] is False


def test_augmentation_suits_upright_outdoor_cameras() -> None:
    assert AUGMENTATION["flipud"] == 0.0  # smoke rises; the sky is never below the ground
    assert AUGMENTATION["degrees"] == 0.0
    assert AUGMENTATION["mixup"] == 0.0
    assert AUGMENTATION["hsv_h"] <= 0.02  # flame colour must stay flame colour


def test_train_refuses_pt_models_and_missing_data(tmp_path: Path) -> None:
    with pytest.raises(TrainingSetupError, match="yaml"):
        train(tmp_path / "data.yaml", model="yolov8n.pt")
    with pytest.raises(TrainingSetupError, match="dataset build"):
        train(tmp_path / "missing.yaml")


def test_last_checkpoint_location() -> None:
    assert last_checkpoint(Path("var/train"), "run") == Path("var/train/run/weights/last.pt")


def test_cli_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "train" in result.output
    assert "dataset" in result.output


def test_cli_dataset_build_reports_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dataset", "build", "--source-root", str(tmp_path / "nowhere")])
    assert result.exit_code == 1


def test_cli_train_without_dataset_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "none.yaml"), "--project", str(tmp_path)])
    assert result.exit_code == 1


def test_the_epoch_log_line_counts_epochs_and_names_the_final_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ultralytics validates best.pt once more after the last epoch, through the same callback and with its epoch
    counter moved on: that is not an epoch 6 of 5, nor, after an early stop, an epoch 11 of 300."""
    from types import SimpleNamespace

    from detector.train import _add_callbacks

    for trained, planned in ((range(3, 5), 5), (range(8, 10), 300)):  # the last epochs of a full run; an early stop
        callbacks: dict[str, object] = {}
        _add_callbacks(SimpleNamespace(add_callback=callbacks.__setitem__), threads=1)
        start, end = callbacks["on_train_epoch_start"], callbacks["on_fit_epoch_end"]
        assert callable(start)
        assert callable(end)
        for epoch in trained:
            trainer = SimpleNamespace(epoch=epoch, epochs=planned, save_dir=tmp_path, fitness=0.5)
            start(trainer)
            end(trainer)
        end(SimpleNamespace(epoch=trained[-1] + 1, epochs=planned, save_dir=tmp_path, fitness=0.5))
        lines = capsys.readouterr().out.splitlines()
        assert [line.split(" done")[0] for line in lines] == [
            *(f"strawfire: epoch {epoch + 1}/{planned}" for epoch in trained),
            "strawfire: final validation of best.pt",
        ]
