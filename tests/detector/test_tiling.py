"""Tiled detection: tiles cover the frame, boxes come back in frame pixels, duplicates across views merge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from detector.detections import Detections, Detector, ImageArray, ModelInfo
from detector.tiling import TiledDetector, tile_boxes

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
