"""Real (tiny) training runs: one epoch on a few synthetic 64 px images, to check what a run starts from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml

from detector.train import TrainingSetupError, read_lineage, train


def _tiny_dataset(root: Path, names: list[str]) -> Path:
    """Four 64 px images with one flame-coloured box each, in train and val; returns data.yaml."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(4):
            image = rng.integers(40, 90, (64, 64, 3), dtype=np.uint8)
            x, y = 10 + 8 * index, 12 + 6 * index
            image[y : y + 16, x : x + 16] = (20, 140, 255)
            cv2.imwrite(str(root / "images" / split / f"{index}.jpg"), image)
            (root / "labels" / split / f"{index}.txt").write_text(
                f"{index % len(names)} {(x + 8) / 64:.4f} {(y + 8) / 64:.4f} 0.25 0.25\n"
            )
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n"
        + "".join(f"  {i}: {name}\n" for i, name in enumerate(names))
    )
    return data


def _one_epoch(
    data: Path,
    project: Path,
    name: str,
    init_weights: Path | None = None,
    lr0: float = 0.01,
    model: str | None = None,
    close_mosaic: int | None = None,
) -> Path:
    return train(
        data,
        model=model,
        epochs=1,
        imgsz=64,
        batch=2,
        threads=1,
        project=project,
        name=name,
        cache=False,
        config_dir=project / "ultralytics",
        init_weights=init_weights,
        lr0=lr0,
        close_mosaic=close_mosaic,
    )


@pytest.mark.slow
@pytest.mark.usefixtures("clean_env")
def test_init_weights_carry_over_and_a_mismatch_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    two_classes = _tiny_dataset(tmp_path / "two", ["fire", "smoke"])
    first = _one_epoch(two_classes, tmp_path / "runs", "first", model="yolov8n.yaml")  # the SiLU original
    weights = first / "weights" / "last.pt"
    assert weights.is_file()

    # Same architecture and classes: every tensor must arrive (this once silently started from random weights).
    with caplog.at_level(logging.INFO, logger="detector.train"):
        _one_epoch(two_classes, tmp_path / "runs", "second", init_weights=weights, lr0=0.004, close_mosaic=0)
    assert any("initialised all" in record.getMessage() for record in caplog.records)
    # Fine-tuning: the chosen rate, and a short warm-up without the bias rate meant for a random head.
    args = yaml.safe_load((tmp_path / "runs" / "second" / "args.yaml").read_text())
    assert (args["lr0"], args["warmup_epochs"], args["warmup_bias_lr"]) == (0.004, 1.0, 0.004)
    first_args = yaml.safe_load((first / "args.yaml").read_text())
    assert (first_args["lr0"], first_args["warmup_epochs"], first_args["warmup_bias_lr"]) == (0.01, 3.0, 0.1)
    assert (args["close_mosaic"], first_args["close_mosaic"]) == (0, 10)  # as asked, else AUGMENTATION's
    lineage = read_lineage(tmp_path / "runs" / "second")
    assert lineage is not None
    assert lineage["init_epochs"] == 1
    assert lineage["init_weights"] == str(weights)
    assert read_lineage(first) is None  # from random weights

    # Another architecture with the same layers: the SiLU weights carry over into the ReLU yolov8n, every tensor.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="detector.train"):
        relu_run = _one_epoch(two_classes, tmp_path / "runs", "relu", init_weights=weights, model="yolov8n-relu.yaml")
    assert any("initialised all" in record.getMessage() for record in caplog.records)
    relu = torch.load(relu_run / "weights" / "last.pt", map_location="cpu", weights_only=False)["model"]
    activations = {type(module.act).__name__ for module in relu.modules() if hasattr(module, "act")}
    assert activations == {"ReLU"}
    assert relu.yaml["activation"] == "nn.ReLU()"
    relu_lineage = read_lineage(relu_run)
    assert relu_lineage is not None
    assert relu_lineage["init_architecture"] == "yolov8n"

    # Three classes: the head cannot carry over, and training from a partly random model is refused.
    three_classes = _tiny_dataset(tmp_path / "three", ["fire", "smoke", "other"])
    with pytest.raises(TrainingSetupError, match=r"only \d+ of \d+ tensors carried over"):
        _one_epoch(three_classes, tmp_path / "runs", "third", init_weights=weights)


@pytest.mark.usefixtures("clean_env")
def test_hours_must_be_positive(tmp_path: Path) -> None:
    data = tmp_path / "data.yaml"
    data.write_text("names: {0: fire}\n")
    with pytest.raises(TrainingSetupError, match="hours must be positive"):
        train(data, hours=0, project=tmp_path, config_dir=tmp_path / "u")


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("lr0", [0.0, -0.01, 0.5])
def test_learning_rate_must_be_sensible(tmp_path: Path, lr0: float) -> None:
    data = tmp_path / "data.yaml"
    data.write_text("names: {0: fire}\n")
    with pytest.raises(TrainingSetupError, match="lr0 must be in"):
        train(data, lr0=lr0, project=tmp_path, config_dir=tmp_path / "u")


@pytest.mark.usefixtures("clean_env")
def test_close_mosaic_cannot_be_negative(tmp_path: Path) -> None:
    data = tmp_path / "data.yaml"
    data.write_text("names: {0: fire}\n")
    with pytest.raises(TrainingSetupError, match="close_mosaic must be"):
        train(data, close_mosaic=-1, project=tmp_path, config_dir=tmp_path / "u")


@pytest.mark.usefixtures("clean_env")
def test_resuming_another_architecture_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unfinished run resumes as what it is: asking for another architecture is an error, not silently ignored."""
    data = _tiny_dataset(tmp_path / "data", ["fire", "smoke"])
    run = _one_epoch(data, tmp_path / "runs", "interrupted")  # the default: yolov8n-relu
    last = run / "weights" / "last.pt"
    # Finished as it is: resuming says so in the CLI's own terms (ultralytics marks it epoch -1).
    with pytest.raises(TrainingSetupError, match=r"finished run \(all 1 planned epochs\); start over with --no-resume"):
        train(data, project=tmp_path / "runs", name="interrupted", config_dir=tmp_path / "u")
    # As an interrupted run leaves it: epoch 0 of 2 done, optimiser state kept.
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    ckpt.update(epoch=0, optimizer={"state": {}}, train_args={**ckpt["train_args"], "epochs": 2})
    torch.save(ckpt, last)
    with pytest.raises(TrainingSetupError, match=r"unfinished yolov8n-relu run, not yolov8n\.yaml"):
        train(data, model="yolov8n.yaml", project=tmp_path / "runs", name="interrupted", config_dir=tmp_path / "u")
    # Resumed as it is (ultralytics' trainer replaced by a recorder: the checkpoint's optimiser state is a stub
    # here), it keeps its own augmentation, and a --close-mosaic given now says it is ignored.
    from ultralytics.models.yolo.model import YOLO

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(YOLO, "train", lambda self, **kwargs: calls.append(kwargs))
    with caplog.at_level(logging.WARNING, logger="detector.train"):
        train(data, close_mosaic=0, project=tmp_path / "runs", name="interrupted", config_dir=tmp_path / "u")
    assert "--close-mosaic is ignored" in caplog.text
    [resumed] = calls
    assert resumed["resume"] is True
    assert "close_mosaic" not in resumed


@pytest.mark.usefixtures("clean_env")
def test_damaged_checkpoints_and_unknown_architectures_are_clear_errors(tmp_path: Path) -> None:
    """ultralytics writes last.pt in place, so a run killed while saving can leave it cut short: resuming from it,
    starting from damaged --init-weights, or naming an architecture that does not exist each say what to do,
    instead of a torch traceback or a bare "Aborted."."""
    data = _tiny_dataset(tmp_path / "data", ["fire", "smoke"])
    weights = tmp_path / "runs" / "cut" / "weights"
    weights.mkdir(parents=True)
    for damaged in (b"", b"PK\x03\x04 cut short"):
        (weights / "last.pt").write_bytes(damaged)
        with pytest.raises(TrainingSetupError, match=r"last\.pt: unreadable checkpoint.*--no-resume"):
            train(data, project=tmp_path / "runs", name="cut", config_dir=tmp_path / "u")
    (tmp_path / "init.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(TrainingSetupError, match=r"init\.pt: unreadable checkpoint.*give --init-weights an"):
        train(data, init_weights=tmp_path / "init.pt", project=tmp_path / "runs", name="new", config_dir=tmp_path / "u")
    with pytest.raises(TrainingSetupError, match=r"--model yolov8q\.yaml: cannot build.*yolov8n-relu\.yaml"):
        train(data, model="yolov8q.yaml", project=tmp_path / "runs", name="other", config_dir=tmp_path / "u")
