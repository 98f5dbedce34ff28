"""Tiled detection: tiles cover the frame, boxes come back in frame pixels, duplicates across views merge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from detector.detections import Detections, Detector, ImageArray, ModelInfo
from detector.rules import RulesDetector
from detector.tiling import TiledDetector, auto_grid, tile_boxes, with_tiles

INFO = ModelInfo("stub", "0", ("fire", "smoke"), 320, 0.25, "stub")


class MarkerDetector:
    """Finds the single white pixel-block in each view (a stand-in network with exact, known output)."""

    info = INFO

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            ys, xs = np.nonzero(image[..., 0] == 255)
            height, width = image.shape[:2]
            if len(xs):
                box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
                # Seen whole in a small view: higher confidence, as a network seeing it larger would.
                conf_value = 0.9 if width < 200 else 0.6
                confidence = np.array([conf_value], np.float32)
                out.append(
                    Detections(
                        (width, height), "stub", "0", xyxy=box, confidence=confidence, class_id=np.ones(1, np.int64)
                    )
                )
            else:
                out.append(Detections((width, height), "stub", "0"))
        return out


def test_tiles_cover_the_frame_with_overlap() -> None:
    tiles = tile_boxes(300, 200, 3, 2, 0.1)
    assert len(tiles) == 6
    covered = np.zeros((200, 300), bool)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    assert tiles[1][0] < tiles[0][2]  # neighbours overlap
    assert tile_boxes(300, 200, 1, 1, 0.0) == [(0, 0, 300, 200)]
    with pytest.raises(ValueError, match="cols"):
        tile_boxes(300, 200, 0, 1, 0.1)


def test_tiled_boxes_are_in_frame_pixels_and_merged() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[20:30, 40:52] = 255
    tiled = TiledDetector(MarkerDetector(), 3, 2, overlap=0.1)
    assert isinstance(tiled, Detector)
    [found] = tiled.detect([image])
    assert found.image_size == (300, 200)
    assert len(found) == 1  # the whole-frame and tile views saw the same block: one box after NMS
    np.testing.assert_allclose(found.xyxy[0], [40, 20, 52, 30])
    assert found.confidence[0] == pytest.approx(0.9)
    assert tiled.info == INFO


def test_auto_grid_follows_the_frame_size() -> None:
    # Near the network's size: the whole frame only.
    assert auto_grid(640, 480, 640) == (1, 1)
    assert auto_grid(960, 540, 640) == (1, 1)  # 1.5× the input: still whole-frame only
    # A FIgLib tower frame (1280×854) and a 640 px model: 3 × 2 tiles of at most 480 px.
    assert auto_grid(1280, 854, 640) == (3, 2)
    assert auto_grid(1920, 1080, 640) == (4, 3)
    assert auto_grid(3840, 2160, 640) == (4, 4)  # capped (8 × 5 uncapped)
    assert auto_grid(854, 1280, 640) == (2, 3)  # portrait: the same rule per side
    assert auto_grid(1280, 854, 320) == (4, 4)
    # Overlap included: 1440 px in 3 tiles would be 533 px each (> 480), so 4 of 424 px.
    assert auto_grid(1440, 960, 640) == (4, 3)
    for width, height in [(1280, 854), (1440, 960), (1000, 700), (1700, 1300)]:  # all below the cap
        cols, rows = auto_grid(width, height, 640)
        tiles = tile_boxes(width, height, cols, rows, 0.15)
        assert max(x2 - x1 for x1, _, x2, _ in tiles) <= 481
        assert max(y2 - y1 for _, y1, _, y2 in tiles) <= 481
    assert auto_grid(5, 3, 1) == (4, 4)  # a tiny input does not divide by zero (tiles of 0.75 px: capped)
    with pytest.raises(ValueError, match="positive"):
        auto_grid(0, 10, 640)
    with pytest.raises(ValueError, match="overlap"):
        auto_grid(1280, 854, 640, overlap=1.0)


def test_auto_tiling_picks_the_grid_per_frame() -> None:
    seen: list[tuple[int, ...]] = []

    class Recording(MarkerDetector):
        def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
            seen.extend(image.shape[:2] for image in images)
            return super().detect(images, conf=conf)

    tiled = TiledDetector.auto(Recording())  # the stub's input is 320 px
    assert tiled.grid(400, 300) == (1, 1)
    assert tiled.grid(1280, 854) == (4, 4)
    big = np.zeros((854, 1280, 3), np.uint8)
    big[300:310, 100:110] = 255  # inside one tile only (a block cut by a tile edge leaves a sliver box)
    small = np.zeros((300, 400, 3), np.uint8)
    small[100:110, 200:220] = 255
    found_big, found_small = tiled.detect([big, small])
    assert len(seen) == (1 + 16) + 1  # the big frame and its 4 × 4 tiles, the small frame alone
    assert seen[0] == (854, 1280)
    assert seen[-1] == (300, 400)
    np.testing.assert_allclose(found_big.xyxy, [[100, 300, 110, 310]])
    np.testing.assert_allclose(found_small.xyxy, [[200, 100, 220, 110]])


def test_with_tiles_wraps_only_what_tiles_can_help() -> None:
    stub = MarkerDetector()
    assert with_tiles(stub, (1, 1)) is stub
    fixed = with_tiles(stub, (3, 2))
    assert isinstance(fixed, TiledDetector)
    assert fixed.grid(1280, 854) == (3, 2)
    automatic = with_tiles(stub, None)
    assert isinstance(automatic, TiledDetector)
    assert automatic.grid(1280, 854) == (4, 4)
    # The weights-free rules: a motion detector (it needs the previous frame of the whole view) with input size 0.
    rules = RulesDetector()
    assert with_tiles(rules, None) is rules
    assert with_tiles(rules, (3, 2)) is rules
    assert TiledDetector.auto(rules).grid(1280, 854) == (1, 1)


def test_a_frame_left_whole_keeps_the_wrapped_detectors_result() -> None:
    """No second NMS or box clipping for frames auto tiling leaves whole: the result is the detector's own."""
    found: list[Detections] = []

    class Remembering(MarkerDetector):
        def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
            found.extend(super().detect(images, conf=conf))
            return found[-len(images) :]

    small = np.zeros((300, 400, 3), np.uint8)
    small[100:110, 200:220] = 255
    [result] = TiledDetector.auto(Remembering()).detect([small])
    assert result is found[0]


def test_a_fire_cut_by_tile_edges_comes_back_as_one_box(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parts of a fire that tiles cut off overlap the whole frame's box by an IoU under NMS's 0.7: they are
    dropped as covered cut boxes (the case an audit found: one aerial fire as three boxes)."""
    import detector.tiling as tiling

    image = np.zeros((400, 600, 3), np.uint8)
    image[150:260, 250:360] = 255  # straddles the tile borders of a 2x2 grid
    tiled = TiledDetector(MarkerDetector(), 2, 2, overlap=0.1)
    [found] = tiled.detect([image])
    assert len(found) == 1
    np.testing.assert_allclose(found.xyxy[0], [250, 150, 360, 260])
    monkeypatch.setattr(tiling, "drop_cut_boxes", lambda boxes, confidence, class_id, cut: np.arange(len(boxes)))
    [nms_alone] = tiled.detect([image])
    assert len(nms_alone) > 1  # what NMS alone keeps: the tiles' parts besides the whole box


def test_cut_boxes_are_those_on_inner_tile_edges_and_only_covered_ones_go() -> None:
    from detector.tiling import cut_by_tile_edge, drop_cut_boxes

    frame = (1280, 854)
    tiles = np.array(
        [[0, 0, 1280, 854], [403, 0, 877, 462], [403, 392, 877, 854], [0, 0, 464, 462]], np.float32
    )  # the whole frame, then three tiles
    boxes = np.array(
        [[592, 273, 705, 457], [595, 326, 692, 458], [595, 392, 697, 459], [0, 0, 464, 462]], np.float32
    )  # the audit's fire (whole frame, two tile halves) and a box filling a corner tile
    cut = cut_by_tile_edge(boxes, tiles, frame)
    assert cut.tolist() == [False, True, True, True]
    confidence = np.array([0.925, 0.783, 0.783, 0.5], np.float32)
    class_id = np.array([0, 0, 0, 1], np.int64)
    assert drop_cut_boxes(boxes, confidence, class_id, cut).tolist() == [0, 3]  # nothing covers the smoke box
    # Two cut halves of one fire, nothing whole: the more confident stays.
    assert drop_cut_boxes(boxes[1:3], np.array([0.7, 0.8], np.float32), class_id[1:3], cut[1:3]).tolist() == [1]
