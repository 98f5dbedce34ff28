"""Tests of detector.dataset: class mapping, leak-free splits, dropped/excluded labels, the written dataset.

Most tests run on a tiny synthetic copy of the ``../shared/data`` layout (fast, always available); the tests
marked ``shared_data`` check the same invariants on the real sets and skip when ``../shared/data`` is absent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from detector.dataset import (
    CLASS_IDS,
    CLASS_NAMES,
    SOURCE_CLASS_MAPS,
    SOURCES,
    Box,
    DatasetError,
    DatasetPlan,
    FrameKey,
    Sample,
    build_dataset,
    frame_key,
    parse_label_text,
    plan_dataset,
    remap_boxes,
    split_sequence,
    stable_unit_interval,
    tile_labels,
    wants_tiles,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "README.md").is_file(), reason=f"real labelled data not found at {SHARED_DATA}"
)

RF = "_jpg.rf.0123456789abcdef0123456789abcdef"  # a Roboflow export suffix


# ------------------------------------------------------------------------------------------------------------
# Class mapping
# ------------------------------------------------------------------------------------------------------------


def test_project_classes_are_fire_then_smoke() -> None:
    assert CLASS_NAMES == ("fire", "smoke")
    assert dict(CLASS_IDS) == {"fire": 0, "smoke": 1}


def test_class_map_per_source_is_explicit() -> None:
    assert {k: dict(v) for k, v in SOURCE_CLASS_MAPS.items()} == {
        "fire_smoke": {0: "fire", 1: None, 2: "smoke"},  # 1 = "default", a labelling artefact
        "fire_smoke_aerial": {0: "fire", 1: "smoke"},
        "negatives_cair": {},
        "negatives_dfire_aof": {0: "fire", 1: "smoke"},
        "tower_sequences": {1: "smoke"},
    }
    assert set(SOURCE_CLASS_MAPS) == set(SOURCES)


@pytest.mark.parametrize(
    ("source", "source_id", "expected"),
    [
        ("fire_smoke", 0, 0),
        ("fire_smoke", 1, None),
        ("fire_smoke", 2, 1),
        ("fire_smoke_aerial", 0, 0),
        ("fire_smoke_aerial", 1, 1),
        ("negatives_dfire_aof", 1, 1),
        ("tower_sequences", 1, 1),
    ],
)
def test_remap_maps_each_source_id(source: str, source_id: int, expected: int | None) -> None:
    kept, dropped = remap_boxes([Box(source_id, 0.5, 0.5, 0.1, 0.1)], SOURCE_CLASS_MAPS[source])
    if expected is None:
        assert (kept, dropped) == ([], 1)
    else:
        assert [b.cls for b in kept] == [expected]
        assert dropped == 0


@pytest.mark.parametrize(("source", "source_id"), [("tower_sequences", 0), ("negatives_cair", 0), ("fire_smoke", 3)])
def test_remap_refuses_unmapped_ids(source: str, source_id: int) -> None:
    with pytest.raises(DatasetError, match="no mapping"):
        remap_boxes([Box(source_id, 0.5, 0.5, 0.1, 0.1)], SOURCE_CLASS_MAPS[source])


# ------------------------------------------------------------------------------------------------------------
# Label parsing
# ------------------------------------------------------------------------------------------------------------


def test_parse_boxes_polygons_and_blank_lines() -> None:
    boxes = parse_label_text("0 0.5 0.5 0.2 0.4\n\n2 0.1 0.1 0.3 0.1 0.3 0.5\n")
    assert boxes[0] == Box(0, 0.5, 0.5, 0.2, 0.4)
    assert boxes[1].cls == 2
    assert (boxes[1].cx, boxes[1].cy, boxes[1].w, boxes[1].h) == pytest.approx((0.2, 0.3, 0.2, 0.4))


def test_parse_clips_rounding_overshoot() -> None:
    (box,) = parse_label_text("1 0.995 0.5 0.02 0.2")
    assert box.cx + box.w / 2 == pytest.approx(1.0)


@pytest.mark.parametrize("line", ["fire 0.5 0.5 0.1 0.1", "0 0.5 0.5 0.1", "0 0.5 0.5 0 0.1", "0 1.5 0.5 0.1 0.1"])
def test_parse_rejects_malformed_lines(line: str) -> None:
    with pytest.raises(DatasetError):
        parse_label_text(line)


# ------------------------------------------------------------------------------------------------------------
# Frame keys and splits
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        (f"1-Zenmuse_X4S_1_1_mp4-561{RF}", FrameKey("1-Zenmuse_X4S_1_1_mp4", 561)),
        (f"newsmoke2_mp4-54{RF}", FrameKey("newsmoke2_mp4", 54)),
        (f"img_52--2-{RF}", FrameKey("img", 52)),  # a "(2)" copy lands with img_52
        (f"img_52{RF}", FrameKey("img", 52)),
        (f"gg{RF}", FrameKey("gg", None)),
        ("AoF00002", FrameKey("AoF", 2)),
    ],
)
def test_frame_key(stem: str, expected: FrameKey) -> None:
    assert frame_key(stem) == expected


def test_copies_share_the_key_of_their_original() -> None:
    assert frame_key(f"bcws-carousel-2-Copie{RF}") == frame_key("bcws-carousel-2_jpg.rf.ffff")


def test_split_sequence_takes_the_tail() -> None:
    val = split_sequence(range(0, 30, 3), 0.2, group="g")
    assert val == frozenset({24, 27})


def test_split_sequence_counts_distinct_frames() -> None:
    # Roboflow keeps two augmentations of some frames: they must not shift the cut or be split apart.
    val = split_sequence([1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.2, group="g")
    assert val == frozenset({9, 10})


def test_short_sequences_go_whole_to_one_side() -> None:
    for group in (f"group-{i}" for i in range(50)):
        val = split_sequence([1, 2, 3], 0.2, group=group, min_frames=5)
        assert val in (frozenset(), frozenset({1, 2, 3}))


def test_split_sequence_validates_fraction() -> None:
    assert split_sequence([1, 2, 3, 4, 5], 0.0, group="g") == frozenset()
    with pytest.raises(ValueError, match="val_fraction"):
        split_sequence([1, 2], 1.0, group="g")


def test_stable_hash_is_pinned() -> None:
    # Pinned so that a refactor cannot silently reshuffle which photos are validation images.
    assert stable_unit_interval("x") == pytest.approx(0.2096651869670662)
    assert all(0.0 <= stable_unit_interval(str(i)) < 1.0 for i in range(100))


# ------------------------------------------------------------------------------------------------------------
# Synthetic source tree
# ------------------------------------------------------------------------------------------------------------


def _image(path: Path, size: tuple[int, int] = (16, 12)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)  # narrow frames are only symlinked, wide ones also tiled


def _pair(folder: Path, stem: str, label: str | None) -> None:
    _image(folder / "images" / f"{stem}.jpg")
    if label is not None:
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        (folder / "labels" / f"{stem}.txt").write_text(label)


TOWER_SEQ = "20190925_FIRE_wc-s-mobo-c"


@pytest.fixture
def source_root(tmp_path: Path) -> Path:
    """A miniature of ../shared/data with every case the builder must handle."""
    root = tmp_path / "shared" / "data"
    fs = root / "fire_smoke"
    for frame in range(10):  # one CCTV video across Roboflow's train/ and valid/
        part = "valid" if frame % 4 == 0 else "train"
        _pair(fs / part, f"fire1_mp4-{frame}{RF}", "0 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1")
    _pair(fs / "train", f"img_1{RF}", "1 0.5 0.5 1 1")  # only a "default" box: becomes background
    _pair(fs / "train", f"photo{RF}", "")
    aerial = root / "fire_smoke_aerial"
    for frame in range(0, 60, 3):
        _pair(aerial, f"1-Zenmuse_X4S_1_1_mp4-{frame}{RF}", "0 0.5 0.5 0.01 0.01\n1 0.4 0.4 0.2 0.2")
    _pair(aerial, f"bcws-carousel-2{RF}", "0 0.5 0.5 0.2 0.2")
    _pair(aerial, "bcws-carousel-2-Copie_jpg.rf.ffff", "0 0.5 0.5 0.2 0.2")
    for i in range(20):
        _pair(root / "negatives" / "cair", f"cair_neg_{i:03d}_photo", "")
    for i in range(0, 20, 2):
        _pair(root / "negatives" / "dfire_aof", f"AoF{i:05d}", "1 0.7 0.3 0.03 0.05" if i == 2 else "")
    tower = root / "tower_sequences" / TOWER_SEQ
    for minute in range(-10, 21):
        offset = minute * 60
        label = "" if minute < 0 else "1 0.01 0.47 0.02 0.04" if minute <= 15 else None
        _pair(tower, f"{1569442402 + offset}_{offset:+06d}", label)
    return root


def _assert_no_interleaving(samples: Iterable[Sample]) -> None:
    """Within every sequence, all train frames precede all val frames."""
    frames: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"train": [], "val": []})
    for s in samples:
        if s.frame is not None:
            frames[s.group][s.split].append(s.frame)
    for group, by_split in frames.items():
        if by_split["train"] and by_split["val"]:
            assert max(by_split["train"]) < min(by_split["val"]), group


def test_plan_splits_video_frames_by_range(source_root: Path) -> None:
    plan = plan_dataset(source_root)
    _assert_no_interleaving(plan.samples)
    fire1 = sorted((s.frame, s.split) for s in plan.samples if s.group == "fire_smoke/fire1_mp4")
    # Roboflow's train/valid folders are pooled: the split follows the frame number only.
    assert fire1 == [(f, "val" if f >= 8 else "train") for f in range(10)]
    zenmuse = [s for s in plan.samples if s.group.endswith("Zenmuse_X4S_1_1_mp4")]
    assert {s.frame for s in zenmuse if s.split == "val"} == {48, 51, 54, 57}


def test_plan_keeps_copies_together(source_root: Path) -> None:
    plan = plan_dataset(source_root)
    carousel = {s.split for s in plan.samples if "bcws-carousel" in s.out_stem}
    assert len(carousel) == 1


def test_plan_drops_default_boxes(source_root: Path) -> None:
    plan = plan_dataset(source_root)
    assert plan.dropped_boxes["fire_smoke"] == 1
    (img,) = (s for s in plan.samples if s.out_stem.startswith("fire_smoke__img_1_"))
    assert img.boxes == ()  # kept as a background image
    fire1 = [s for s in plan.samples if s.group == "fire_smoke/fire1_mp4"]
    assert all(sorted(b.cls for b in s.boxes) == [0, 1] for s in fire1)  # 0 Fire -> 0, 2 smoke -> 1


def test_plan_excludes_unlabelled_tower_frames(source_root: Path) -> None:
    plan = plan_dataset(source_root)
    tower = [s for s in plan.samples if s.source == "tower_sequences"]
    assert plan.excluded_images["tower_sequences"] == 5  # +16 .. +20 min: smoke present, not boxed
    assert all(s.frame is not None and s.frame <= 15 * 60 for s in tower)
    negatives = [s for s in tower if s.frame is not None and s.frame < 0]
    assert len(negatives) == 10
    assert all(s.boxes == () for s in negatives)
    assert all([b.cls for b in s.boxes] == [1] for s in tower if s.frame is not None and s.frame >= 0)
    # Both phases contribute their last part to val: tower negatives and tower smoke are both validated.
    assert {(s.group.rsplit("/", 1)[1], s.split) for s in tower} == {
        ("pre", "train"),
        ("pre", "val"),
        ("post", "train"),
        ("post", "val"),
    }


def test_plan_dfire_smoke_plume_is_smoke(source_root: Path) -> None:
    plan = plan_dataset(source_root)
    (aof2,) = (s for s in plan.samples if s.out_stem == "negatives_dfire_aof__AoF00002")
    assert [b.cls for b in aof2.boxes] == [CLASS_IDS["smoke"]]


def test_plan_rejects_missing_labels(source_root: Path) -> None:
    (source_root / "negatives" / "cair" / "labels" / "cair_neg_000_photo.txt").unlink()
    with pytest.raises(DatasetError, match="no label file"):
        plan_dataset(source_root)


def test_build_writes_symlinks_labels_yaml_and_manifest(source_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = build_dataset(source_root, out)
    images = sorted((out / "images").rglob("*.jpg"))
    labels = sorted((out / "labels").rglob("*.txt"))
    assert len(images) == len(labels) == 12 + 22 + 20 + 10 + 26
    for image in images:
        assert image.is_symlink()  # narrow frames: no tiles
        assert image.resolve().is_relative_to(source_root.resolve())
        label = out / "labels" / image.parent.name / f"{image.stem}.txt"
        for line in label.read_text().splitlines():
            assert line.split()[0] in {"0", "1"}
    assert "path: " in (out / "data.yaml").read_text()
    assert "  0: fire\n  1: smoke\n" in (out / "data.yaml").read_text()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    tower = on_disk["sources"]["tower_sequences"]
    assert tower["excluded_images"] == 5
    assert "CC BY-NC-SA 4.0" in tower["licence"]
    assert on_disk["sources"]["fire_smoke"]["licence"] == "CC BY 4.0"
    assert on_disk["sources"]["negatives_dfire_aof"]["licence"] == "CC0"
    assert on_disk["sources"]["fire_smoke"]["class_map"] == {"0": "fire", "1": None, "2": "smoke"}


def test_tile_labels_keep_whole_boxes_and_skip_cut_ones() -> None:
    # 1280x854 frame, 3x2 tiles of 474x462 px overlapping by 15 % (x from 0, 403, 806; y from 0, 392); a
    # 40x30 px plume at (20..60, 400..430) lies whole in both left tiles.
    plume = Box(1, 40 / 1280, 415 / 854, 40 / 1280, 30 / 854)
    tiles = tile_labels([plume], 1280, 854)
    assert [rect for rect, _ in tiles] == [(0, 0, 474, 462), (0, 392, 474, 854)]
    (x1, y1, x2, y2), (box,) = tiles[1]
    assert box.cls == 1
    assert box.cx * (x2 - x1) == pytest.approx(40)
    assert box.cy * (y2 - y1) == pytest.approx(415 - 392)
    assert box.w * (x2 - x1) == pytest.approx(40)
    assert box.h * (y2 - y1) == pytest.approx(30)
    with_background = tile_labels([plume], 1280, 854, keep_background=True)
    assert len(with_background) == 6
    assert sum(1 for _, boxes in with_background if not boxes) == 4
    # A fire at x 360..460 is whole in the first tile but only 57 % inside the second (from x 403): that tile is
    # left out rather than labelled with part of a fire or taught as background.
    straddling = Box(0, 410 / 1280, 100 / 854, 100 / 1280, 40 / 854)
    rects = [rect for rect, _ in tile_labels([straddling], 1280, 854, keep_background=True)]
    assert (0, 0, 474, 462) in rects
    assert (403, 0, 877, 462) not in rects
    assert len(rects) == 5


def test_wants_tiles_only_for_wide_frames_with_small_objects() -> None:
    small, large = Box(0, 0.5, 0.5, 0.02, 0.02), Box(0, 0.5, 0.5, 0.3, 0.3)
    assert wants_tiles("tower_sequences", [], 1280)  # tower backgrounds always
    assert not wants_tiles("tower_sequences", [], 640)
    assert wants_tiles("fire_smoke_aerial", [large, small], 3840)
    assert not wants_tiles("fire_smoke_aerial", [large], 3840)
    assert not wants_tiles("fire_smoke", [small], 3840)


def test_build_adds_tiles_of_wide_train_frames(source_root: Path, tmp_path: Path) -> None:
    tower_images = source_root / "tower_sequences" / TOWER_SEQ / "images"
    for image in tower_images.iterdir():
        _image(image, (1280, 854))
    out = tmp_path / "out"
    manifest = build_dataset(source_root, out)
    tiles = sorted((out / "images" / "train").glob("*__tile*.jpg"))
    train_tower = [
        s
        for s in manifest["images"]
        if s["source"] == "tower_sequences" and s["split"] == "train"  # type: ignore[index]
    ]
    assert len(tiles) == manifest["train_tiles"]["sources"]["tower_sequences"] > 0  # type: ignore[index]
    assert not list((out / "images" / "val").glob("*__tile*"))  # validation stays whole frames
    assert len(tiles) <= 6 * len(train_tower)
    for tile in tiles:
        assert not tile.is_symlink()
        label = out / "labels" / "train" / f"{tile.stem}.txt"
        for line in label.read_text().splitlines():
            cls, cx, cy, w, h = line.split()
            assert cls == "1"
            assert all(0.0 <= float(v) <= 1.0 for v in (cx, cy, w, h))


def test_rebuild_is_deterministic(source_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = (build_dataset(source_root, out), (out / "manifest.json").read_bytes())
    second = (build_dataset(source_root, out), (out / "manifest.json").read_bytes())
    assert first == second


def test_build_refuses_to_wipe_a_foreign_folder(source_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="refusing"):
        build_dataset(source_root, out)
    assert (out / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------------------------------------
# The real data
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_plan() -> DatasetPlan:
    return plan_dataset(SHARED_DATA)


@pytest.mark.shared_data
@needs_shared_data
def test_real_counts_match_the_readme(real_plan: DatasetPlan) -> None:
    per_source: dict[str, int] = defaultdict(int)
    for s in real_plan.samples:
        per_source[s.source] += 1
    assert dict(per_source) == {
        "fire_smoke": 877 + 47,
        "fire_smoke_aerial": 310,
        "negatives_cair": 358,
        "negatives_dfire_aof": 49,
        "tower_sequences": 54,
    }
    assert real_plan.dropped_boxes["fire_smoke"] == 160  # every "default" box
    boxes: dict[tuple[str, int], int] = defaultdict(int)
    for s in real_plan.samples:
        for b in s.boxes:
            boxes[s.source, b.cls] += 1
    assert boxes["fire_smoke", 0] == 349
    assert boxes["fire_smoke", 1] == 511


@pytest.mark.shared_data
@needs_shared_data
def test_real_split_never_interleaves_video_frames(real_plan: DatasetPlan) -> None:
    _assert_no_interleaving(real_plan.samples)
    zenmuse = [s for s in real_plan.samples if "Zenmuse" in s.group]
    assert {s.group for s in zenmuse} == {"fire_smoke_aerial/1-Zenmuse_X4S_1_1_mp4"}
    val_share = sum(s.split == "val" for s in real_plan.samples) / len(real_plan.samples)
    assert 0.15 < val_share < 0.25


@pytest.mark.shared_data
@needs_shared_data
def test_real_tower_frames_without_labels_are_excluded(real_plan: DatasetPlan) -> None:
    labels = SHARED_DATA / "tower_sequences" / TOWER_SEQ / "labels"
    tower = [s for s in real_plan.samples if s.source == "tower_sequences"]
    assert len(tower) == len(list(labels.glob("*.txt")))
    assert real_plan.excluded_images["tower_sequences"] == 81 - len(tower)
    assert all((labels / f"{s.image.stem}.txt").is_file() for s in tower)
    assert all(s.frame is not None and s.frame <= 15 * 60 for s in tower)


@pytest.mark.shared_data
@needs_shared_data
def test_real_default_boxes_never_reach_the_output(real_plan: DatasetPlan) -> None:
    assert all(b.cls in (0, 1) for s in real_plan.samples for b in s.boxes)
    aof2 = next(s for s in real_plan.samples if s.image.stem == "AoF00002")
    assert [b.cls for b in aof2.boxes] == [1]


EXTRA_TOML = """
[[set]]
name = "changchun_towers"
path = "towers"
names = ["smoke", "Fire", "person"]
licence = "Changchun EEB, internal use"
attribution = "Changchun tower network, labelled 2026-11"
"""


def _extra_folder(root: Path) -> Path:
    """A deployment's own labelled tower frames: ten of one camera (label ids: 0 smoke, 1 fire, 2 person)."""
    for frame in range(10):
        label = "" if frame < 4 else "0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.05 0.1\n1 0.6 0.6 0.1 0.1"
        _pair(root / "towers", f"cam7_preset2_{frame:03d}", label)
    (root / "extra.toml").write_text(EXTRA_TOML, encoding="utf-8")
    return root / "extra.toml"


def test_extra_sets_join_the_dataset_with_their_classes_split_and_licence(source_root: Path, tmp_path: Path) -> None:
    from detector.export import _training_sets
    from detector.extra_sets import load_extra_sets

    (extra,) = load_extra_sets(_extra_folder(tmp_path / "mine"))
    assert extra.path == (tmp_path / "mine" / "towers").resolve()  # relative to the TOML file
    assert extra.class_map == {0: "smoke", 1: "fire", 2: None}
    plan = plan_dataset(source_root, extra_sets=[extra])
    mine = sorted((s.frame, s.split, [b.cls for b in s.boxes]) for s in plan.samples if s.source == extra.name)
    assert [split for _, split, _ in mine] == ["train"] * 8 + ["val"] * 2  # by frame range, one camera
    assert mine[5][2] == [CLASS_IDS["smoke"], CLASS_IDS["fire"]]  # the person box dropped
    assert plan.dropped_boxes[extra.name] == 6
    out = tmp_path / "out"
    manifest = build_dataset(source_root, out, extra_sets=[extra])
    assert manifest["name"] == "strawfire-v2+changchun_towers"
    sources = json.loads((out / "manifest.json").read_text())["sources"]
    assert sources[extra.name]["extra"] is True
    assert sources["fire_smoke"]["extra"] is False
    assert sources[extra.name]["images"] == {"train": 8, "val": 2}
    assert sources[extra.name]["class_map"] == {"0": "smoke", "1": "fire", "2": None}
    assert (out / "labels" / "val" / "changchun_towers__cam7_preset2_009.txt").read_text().splitlines() == [
        "1 0.500000 0.500000 0.200000 0.200000",
        "0 0.600000 0.600000 0.100000 0.100000",
    ]
    # The model card's training sets come from this manifest: the extra set's licence goes with the weights.
    name, sets = _training_sets(out)
    assert name == "strawfire-v2+changchun_towers"
    assert {s.source: s.licence for s in sets}[extra.name] == "Changchun EEB, internal use"


def test_an_extra_set_from_a_labelling_tool_with_its_quirks(source_root: Path, tmp_path: Path) -> None:
    """Labels with a byte-order mark (Windows tools) are read; macOS ``._`` files are not images; a set whose
    images sit in split folders is refused with what to do."""
    from detector.extra_sets import load_extra_sets

    spec = _extra_folder(tmp_path / "mine")
    towers = tmp_path / "mine" / "towers"
    (towers / "labels" / "cam7_preset2_009.txt").write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.2 0.2\n")
    (towers / "images" / "._cam7_preset2_009.jpg").write_bytes(b"\x00\x05\x16\x07 mac metadata")
    plan = plan_dataset(source_root, extra_sets=load_extra_sets(spec))
    (last,) = (s for s in plan.samples if s.out_stem == "changchun_towers__cam7_preset2_009")
    assert [b.cls for b in last.boxes] == [CLASS_IDS["smoke"]]
    assert sum(s.source == "changchun_towers" for s in plan.samples) == 10
    split = tmp_path / "split"
    _pair(split / "towers" / "images" / "train", "a", None)
    (split / "extra.toml").write_text(EXTRA_TOML, encoding="utf-8")
    with pytest.raises(DatasetError, match=r"no images directly in .*\(it holds folders train"):
        load_extra_sets(split / "extra.toml")


def test_an_extra_image_without_a_label_file_is_refused(source_root: Path, tmp_path: Path) -> None:
    from detector.extra_sets import load_extra_sets

    spec = _extra_folder(tmp_path / "mine")
    (tmp_path / "mine" / "towers" / "labels" / "cam7_preset2_003.txt").unlink()
    with pytest.raises(DatasetError, match=r"cam7_preset2_003\.jpg: no label file"):
        plan_dataset(source_root, extra_sets=load_extra_sets(spec))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"changchun_towers"', '"fire_smoke"'), r"set 1: name: .*'fire_smoke' is a built-in"),
        (lambda t: t.replace('"changchun_towers"', '"Towers!"'), r"set 1: name: String should match pattern"),
        (lambda t: t.replace('"changchun_towers"', '"a__b"'), r"set 1: name: .*no '__'"),
        (lambda t: t.replace('licence = "Changchun EEB, internal use"\n', ""), r"set 1: licence: Field required"),
        (lambda t: t + 'colour = "red"\n', r"set 1: colour: Extra inputs are not permitted"),
        (lambda t: t.replace('["smoke", "Fire", "person"]', '["person"]'), r"set 1: names: .*none of"),
        (lambda t: t.replace('"towers"', '"elsewhere"'), r"set 1 \(changchun_towers\): no images folder"),
        (lambda t: t + t, r"set 2: the name 'changchun_towers' is used twice"),
        (lambda t: t.replace("[[set]]", "[[sets]]"), r"expected \[\[set\]\] tables"),
        (lambda t: t.replace("names = [", "names = ["[:-1]), r"not valid TOML"),
    ],
)
def test_extra_sets_file_errors_name_the_set_and_field(tmp_path: Path, edit: Any, message: str) -> None:
    from detector.extra_sets import load_extra_sets

    spec = _extra_folder(tmp_path / "mine")
    spec.write_text(edit(EXTRA_TOML), encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as caught:
        load_extra_sets(spec)
    assert str(spec) in str(caught.value)
    with pytest.raises(DatasetError, match="cannot read"):
        load_extra_sets(tmp_path / "missing.toml")


def test_dataset_build_cli_takes_extra_sets(source_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from detector.cli import app

    spec = _extra_folder(tmp_path / "mine")
    runner = CliRunner()
    args = ["dataset", "build", "--source-root", str(source_root), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--extra-sets", str(spec)])
    assert result.exit_code == 0, result.output
    assert "changchun_towers" in result.stdout
    spec.write_text(EXTRA_TOML.replace("path", "paht"), encoding="utf-8")
    broken = runner.invoke(app, [*args, "--extra-sets", str(spec)])
    assert broken.exit_code == 1
    assert "set 1: path: Field required" in " ".join(broken.output.split())
