"""Generated featureless negatives: what they are, that the committed network gets them wrong, and that they join a
dataset as a training-only extra set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from detector.backends import load_detector
from detector.cli import app
from detector.dataset import build_dataset
from detector.detections import Detector
from detector.extra_sets import load_extra_sets
from detector.featureless import DEFAULT_MIN_STRUCTURE, box_structure
from detector.synthetic_negatives import KINDS, SET_NAME, featureless_frame, featureless_frames
from tests.detector.conftest import committed_model, said
from tests.detector.test_dataset import source_root  # noqa: F401  (the miniature ../shared/data fixture)

runner = CliRunner()


def structure(pixels: np.ndarray) -> float:
    height, width = pixels.shape[:2]
    return float(box_structure(pixels, np.array([[0, 0, width, height]], np.float32))[0])


def test_the_same_seed_draws_the_same_frames_of_every_kind() -> None:
    first = list(featureless_frames(10, seed=3, size=(320, 240)))
    again = list(featureless_frames(10, seed=3, size=(320, 240)))
    other = list(featureless_frames(10, seed=4, size=(320, 240)))
    assert [name for name, _ in first] == [f"{KINDS[i % 5]}_{i:05d}" for i in range(10)]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for (_, a), (_, b) in zip(first, other, strict=True))
    assert all(pixels.shape == (240, 320, 3) and pixels.dtype == np.uint8 for _, pixels in first)


@pytest.mark.parametrize("kind", ["flat", "overcast", "noise", "fog"])
def test_the_frames_hold_nothing_to_see(kind: str) -> None:
    """Below the structure under which the served model leaves a large box out: the frames the rule covers today,
    and a trained model should learn itself."""
    rng = np.random.default_rng(0)
    values = [structure(featureless_frame(kind, rng)) for _ in range(12)]  # type: ignore[arg-type]
    assert max(values) < DEFAULT_MIN_STRUCTURE, values


def test_a_no_signal_screen_is_one_colour_or_holds_a_message_box() -> None:
    rng = np.random.default_rng(1)
    screens = [featureless_frame("screen", rng) for _ in range(20)]
    plain = [s for s in screens if len(np.unique(s.reshape(-1, 3), axis=0)) == 1]
    boxed = [s for s in screens if len(np.unique(s.reshape(-1, 3), axis=0)) == 2]
    assert plain
    assert boxed
    assert len(plain) + len(boxed) == len(screens)


@pytest.fixture(scope="module")
def raw_network() -> Detector:
    """The committed model's network without the featureless rule."""
    return load_detector("onnx", models_dir=committed_model(), min_structure=0.0, threads=1)


def test_the_committed_network_boxes_most_of_them(raw_network: Detector) -> None:
    """Why the set exists: the raw network puts a box at its operating threshold on most of these frames (measured:
    42 of 60). A model trained with them that no longer does is what lets the featureless rule go; until then the
    rule leaves every one of those boxes out."""
    frames = [pixels for _, pixels in featureless_frames(20, seed=0)]
    threshold = raw_network.info.operating_threshold
    assert sum(1 for f in raw_network.detect(frames, conf=threshold) if len(f)) >= 10
    served = load_detector("onnx", models_dir=committed_model(), threads=1)
    assert [len(f) for f in served.detect(frames, conf=threshold)] == [0] * 20


def test_the_cli_writes_a_training_only_extra_set(source_root: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "featureless"
    result = runner.invoke(app, ["dataset", "featureless", str(out), "--count", "12", "--seed", "5"])
    assert result.exit_code == 0, result.output
    images = sorted((out / "images").iterdir())
    assert len(images) == 12
    assert all((out / "labels" / f"{p.stem}.txt").read_text() == "" for p in images)
    with Image.open(images[0]) as first:
        assert first.format == "JPEG"
    (extra,) = load_extra_sets(out / "extra_sets.toml")
    assert (extra.name, extra.split, extra.path) == (SET_NAME, "train", out.resolve())
    manifest = build_dataset(source_root, tmp_path / "dataset", extra_sets=[extra])
    sources = json.loads((tmp_path / "dataset" / "manifest.json").read_text())["sources"]
    assert manifest["name"] == f"strawfire-v2+{SET_NAME}"
    assert sources[SET_NAME]["images"] == {"train": 12, "val": 0}  # the validation split stays comparable
    assert sources[SET_NAME]["background_images"] == {"train": 12, "val": 0}
    # a smaller set written again replaces the earlier one whole; a folder of someone else's is refused
    again = runner.invoke(app, ["dataset", "featureless", str(out), "--count", "5"])
    assert again.exit_code == 0, again.output
    assert len(list((out / "images").iterdir())) == 5
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "photo.jpg").write_bytes(b"x")
    refused = runner.invoke(app, ["dataset", "featureless", str(tmp_path / "mine")])
    assert refused.exit_code == 1
    assert said("holds files that are not a featureless set of ours") in said(refused.stderr)
    assert (tmp_path / "mine" / "photo.jpg").exists()
