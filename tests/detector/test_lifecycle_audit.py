"""Audit of the model lifecycle (dataset build, training runs, export, manifest, model card): each test pins a defect
that was found and fixed, on tiny synthetic inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from detector.dataset import DatasetError, build_dataset, plan_dataset
from detector.manifest import Manifest, TrainingSet, load_manifest, resolve_model, verified_file
from tests.detector.conftest import committed_model
from tests.detector.test_dataset import EXTRA_TOML, TOWER_SEQ, _pair
from tests.detector.test_dataset import source_root as source_root

# ------------------------------------------------------------------------------------------------------------
# Dataset build
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        Path("negatives") / "cair" / "images" / "cair_neg_003_photo.jpg",  # only symlinked: was accepted silently
        Path("tower_sequences") / TOWER_SEQ / "images" / "1569441802_-00600.jpg",  # opened for tiles: a PIL error
    ],
)
def test_an_unreadable_image_is_a_dataset_error_before_the_output_is_touched(
    source_root: Path,
    tmp_path: Path,
    broken: Path,
) -> None:
    """ultralytics skips an image it cannot open (a warning in the training log), so the manifest's counts and the
    model card would list images the model never saw; a tile source raised PIL's own exception (a traceback in the
    CLI) after the old build had already been deleted."""
    out = tmp_path / "out"
    build_dataset(source_root, out)
    before = (out / "manifest.json").read_bytes()
    assert (source_root / broken).is_file()
    (source_root / broken).write_bytes(b"\xff\xd8 cut short")
    with pytest.raises(DatasetError, match=rf"{broken.name}: .*not a readable image"):
        build_dataset(source_root, out)
    assert (out / "manifest.json").read_bytes() == before


def test_a_failed_rebuild_keeps_the_previous_build_and_can_be_retried(
    source_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild that failed half-way (a full disk, Ctrl-C) deleted the old manifest first, so the folder was
    neither the old dataset nor the new one, and every later `dataset build` refused to touch it ("not empty and
    has no manifest.json")."""
    import detector.dataset as dataset

    out = tmp_path / "datasets" / "out"
    build_dataset(source_root, out)
    before = (out / "manifest.json").read_bytes()
    files_before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def disk_full(*_: Any, **__: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset, "_write_tiles", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build_dataset(source_root, out)
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == files_before
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no half-built folder left beside it
    monkeypatch.undo()
    manifest = build_dataset(source_root, out)  # and the next build goes through
    assert json.loads((out / "manifest.json").read_text()) == json.loads(json.dumps(manifest))


def test_a_rebuild_leaves_nothing_of_the_previous_build(source_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset(source_root, out)
    (out / "labels" / "train.cache").write_bytes(b"ultralytics label cache")
    (source_root / "negatives" / "cair" / "images" / "cair_neg_019_photo.jpg").unlink()
    (source_root / "negatives" / "cair" / "labels" / "cair_neg_019_photo.txt").unlink()
    manifest = build_dataset(source_root, out)
    listed = {entry["file"] for entry in manifest["images"]}  # type: ignore[attr-defined]
    on_disk = {str(p.relative_to(out)) for p in (out / "images").rglob("*.*") if "__tile" not in p.name}
    assert on_disk == listed
    assert not (out / "labels" / "train.cache").exists()


def test_photo_split_keeps_copies_of_a_photo_together(source_root: Path, tmp_path: Path) -> None:
    """`split = "photo"` hashed each file's raw name, so a photo and its download copy (``x (2).jpg``, ``x-copy``,
    ``x--2-``) could land on both sides of the split: the same picture in train and val."""
    from detector.extra_sets import load_extra_sets

    mine = tmp_path / "mine"
    for index in range(30):
        for stem in (f"web{index:02d}", f"web{index:02d} (2)", f"web{index:02d}-copy", f"web{index:02d}--2-"):
            _pair(mine / "photos", stem, "0 0.5 0.5 0.2 0.2")
    (mine / "extra.toml").write_text(EXTRA_TOML.replace('"towers"', '"photos"') + 'split = "photo"\n', encoding="utf-8")
    plan = plan_dataset(source_root, extra_sets=load_extra_sets(mine / "extra.toml"))
    sides: dict[str, set[str]] = {}
    for sample in plan.samples:
        if sample.source == "changchun_towers":
            sides.setdefault(sample.out_stem.split("__", 1)[1][:5], set()).add(sample.split)
    assert len(sides) == 30
    assert all(len(split) == 1 for split in sides.values()), sides
    assert {next(iter(split)) for split in sides.values()} == {"train", "val"}


def test_copy_normalised_photo_groups_leave_the_real_negatives_split_unchanged() -> None:
    """The photo rule's group is now copy-normalised; no cair name carries a copy marker, so the real split (and
    with it the validation set behind the committed model's numbers) is unchanged."""
    from tests.detector.conftest import shared_path

    root = shared_path()
    plan = plan_dataset(root)
    cair = [s for s in plan.samples if s.source == "negatives_cair"]
    assert len(cair) == 358
    assert all(s.group == f"negatives_cair/{s.image.stem}" for s in cair)


# ------------------------------------------------------------------------------------------------------------
# Training runs
# ------------------------------------------------------------------------------------------------------------


class _FakeYOLO:
    """Stands in for ultralytics' YOLO: records what a run would train, trains nothing."""

    runs: list[dict[str, Any]] = []  # noqa: RUF012

    def __init__(self, source: str) -> None:
        self.source = source
        self.trainer = None

    def add_callback(self, *_: Any) -> None:
        pass

    def load(self, *_: Any) -> None:
        pass

    def train(self, **kwargs: Any) -> None:
        self.runs.append({"source": self.source, **kwargs})


@pytest.mark.usefixtures("clean_env")
def test_a_fresh_start_forgets_the_lineage_of_an_earlier_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run started over (``--no-resume``, or no last.pt) without ``--init-weights`` kept the ``lineage.json`` of an
    earlier run in the same folder, so its export claimed it had continued from those weights and added their
    epochs to the model card's count."""
    import torch

    from detector.train import configure_offline, read_lineage, train

    configure_offline(tmp_path / "ultralytics")  # before ultralytics is imported
    import ultralytics.models.yolo.model as yolo_model

    monkeypatch.setattr(yolo_model, "YOLO", _FakeYOLO)
    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: fire\n  1: smoke\n")
    init = tmp_path / "earlier.pt"
    torch.save({"model": torch.nn.Linear(2, 2), "epoch": -1, "epochs_total": 120, "train_args": {"epochs": 120}}, init)
    common: dict[str, Any] = {
        "project": tmp_path / "runs",
        "name": "run",
        "config_dir": tmp_path / "ultralytics",
        "cache": False,
    }
    train(data, init_weights=init, **common)
    assert read_lineage(tmp_path / "runs" / "run") is not None  # this run did continue from earlier.pt
    train(data, resume=False, **common)  # started over from random weights
    assert _FakeYOLO.runs[-1]["pretrained"] is False
    assert read_lineage(tmp_path / "runs" / "run") is None


# ------------------------------------------------------------------------------------------------------------
# Export and model card
# ------------------------------------------------------------------------------------------------------------


class _Interrupted(BaseException):
    """Ctrl-C, or the session ending, in the middle of a copy."""


@pytest.mark.slow
def test_an_interrupted_export_leaves_the_deployed_model_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export copied the new weights straight over the deployed files: cut off mid-copy, models/ held half a
    file under the name the (old) manifest points at, and the deployed model no longer loaded."""
    import detector.export as export
    from tests.detector.test_export import tiny_dataset

    models = tmp_path / "models"
    shutil.copytree(committed_model(), models)
    manifest = load_manifest(models)
    deployed = resolve_model(manifest)
    real_copy = shutil.copyfile

    def copy_cut_short(src: Any, dst: Any, **kwargs: Any) -> Any:
        if Path(dst).resolve().parent == models.resolve():
            data = Path(src).read_bytes()
            Path(dst).write_bytes(data[: len(data) // 2])
            raise _Interrupted
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(export.shutil, "copyfile", copy_cut_short)
    with pytest.raises(_Interrupted):
        export.export_model(
            committed_model() / str(deployed.torch_file),
            name=deployed.name,
            version="t-interrupted",
            models_dir=models,
            dataset=tiny_dataset(tmp_path / "data"),
            quantize=False,
            tower_clip=None,
            threads=1,
            compare_rules=False,
        )
    assert load_manifest(models) == manifest
    for entry in manifest.models:
        verified_file(models, entry)  # every deployed file is still the one the manifest names
        if entry.torch_file:
            verified_file(models, entry, "torch")
    assert sorted(p.name for p in models.iterdir()) == sorted(p.name for p in committed_model().iterdir())


def test_the_card_lists_the_training_licences_of_every_model() -> None:
    """The card's licence table came from the first model (by name) only: a model trained with a deployment's own
    set listed after it went out without that set's licence."""
    from detector.export import render_card

    entry = resolve_model(load_manifest(committed_model()))
    own = TrainingSet(
        source="changchun_towers",
        licence="Changchun EEB, internal use",
        attribution="Changchun tower network",
        url="",
        images={"train": 8, "val": 2},
    )
    field = entry.model_copy(
        update={
            "name": f"{entry.name}-field",
            "training_dataset": "strawfire-v2+changchun_towers",
            "training_sets": (*entry.training_sets, own),
            "torch_file": None,
            "torch_sha256": None,
        }
    )
    card = render_card(Manifest(default=entry.name, models=(entry, field)))
    assert "Changchun EEB, internal use" in card
    assert "strawfire-v2+changchun_towers" in card
    # each licence once per distinct training set, not once per model
    assert card.count("| fire_smoke |") == 2
    same = render_card(Manifest(default=entry.name, models=(entry, entry.model_copy(update={"name": "x"}))))
    assert same.count("| fire_smoke |") == 1


@pytest.mark.parametrize("image_suffix", [None, ".tif"])
def test_a_label_without_its_image_is_refused(
    source_root: Path,
    image_suffix: str | None,
) -> None:
    """A label whose image was lost, or is a ``.tif`` (which ultralytics trains on but the build did not collect),
    was skipped without a word: its boxes silently left the dataset."""
    aerial = source_root / "fire_smoke_aerial"
    (aerial / "labels" / "field-burn-7.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    if image_suffix is not None:
        (aerial / "images" / f"field-burn-7{image_suffix}").write_bytes(b"II*\x00")
    (aerial / "labels" / "classes.txt").write_text("fire\nsmoke\n")  # labelImg's class list is not an orphan
    with pytest.raises(DatasetError, match=r"field-burn-7\.txt: a label file without an image .*\.jpg"):
        plan_dataset(source_root)
    (aerial / "labels" / "field-burn-7.txt").unlink()
    plan_dataset(source_root)


def test_a_label_line_with_six_columns_names_the_file_and_line(source_root: Path) -> None:
    """Predictions saved with their confidence (``cls cx cy w h conf``) are not labels: a clear error, not a box."""
    label = source_root / "negatives" / "dfire_aof" / "labels" / "AoF00004.txt"
    label.write_text("1 0.7 0.3 0.03 0.05\n0 0.5 0.5 0.1 0.1 0.87\n")
    with pytest.raises(DatasetError, match=r"AoF00004\.txt:2: expected 4 box values or a polygon, got 5"):
        plan_dataset(source_root)
