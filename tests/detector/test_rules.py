"""The weights-free rules: flame by YCbCr colour, smoke by motion + grey, nothing on plain scenes."""

from __future__ import annotations

import numpy as np
import pytest

from detector.rules import RulesConfig, RulesDetector, fire_mask, smoke_mask
from tests.detector.conftest import flame_image


def sky_and_field(width: int = 160, height: int = 120) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2] = (110, 150, 210)  # blue sky
    image[height // 2 :] = (70, 100, 45)  # green field
    return image


def test_flame_blob_is_found_where_it_is() -> None:
    image = flame_image()
    mask = fire_mask(image)
    assert mask[30, 40]
    assert not mask[5, 5]
    [found] = RulesDetector().detect([image])
    assert found.class_names == ["fire"]
    x1, y1, x2, y2 = found.xyxy[0]
    assert (x1, y1) <= (31, 21)
    assert (x2, y2) >= (49, 39)
    assert 0.0 < found.confidence[0] <= 1.0


def test_plain_scenes_give_nothing() -> None:
    assert len(RulesDetector().detect([sky_and_field()])[0]) == 0
    grey = np.full((60, 80, 3), 128, np.uint8)
    assert len(RulesDetector().detect_pair(grey, grey)) == 0


def test_grey_moving_plume_is_smoke_only_with_a_previous_frame() -> None:
    before = sky_and_field()
    after = before.copy()
    after[30:60, 70:90] = (185, 185, 180)  # a grey plume rising into the sky
    detector = RulesDetector()
    assert len(detector.detect([after])[0]) == 0  # a still image has no motion
    found = detector.detect_pair(after, before)
    assert found.class_names == ["smoke"]
    x1, y1, x2, y2 = found.xyxy[0]
    assert y1 <= 31
    assert y2 >= 50  # the lower edge meets the horizon line, whose flicker is discarded
    assert x1 <= 71
    assert x2 >= 89
    assert smoke_mask(after, before)[45, 80]


def test_global_brightness_change_is_not_motion() -> None:
    before = sky_and_field()
    brighter = np.clip(before.astype(int) + 25, 0, 255).astype(np.uint8)
    assert len(RulesDetector().detect_pair(brighter, before)) == 0


def test_large_frames_are_processed_at_work_size_and_mapped_back() -> None:
    image = np.zeros((1200, 1600, 3), np.uint8)
    image[:] = (60, 90, 50)
    image[400:600, 800:1000] = (255, 150, 30)
    [found] = RulesDetector(RulesConfig(work_size=400)).detect([image])
    assert found.image_size == (1600, 1200)
    np.testing.assert_allclose(found.xyxy[0], [800, 400, 1000, 600], atol=8)


def test_an_image_without_pixels_or_channels_is_a_clear_error() -> None:
    detector = RulesDetector()
    for bad in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 10, 3), np.uint8), np.zeros((8, 8), np.uint8)):
        with pytest.raises(ValueError, match="non-empty RGB uint8"):
            detector.detect_pair(bad, None)


def test_the_8_bit_flame_rule_equals_the_rule_in_floating_point() -> None:
    """fire_mask compares whole-number planes with floor/ceil of the frame means; the paper's rule compares with
    the means themselves. Same pixels, on noise, flat frames, sunsets-like gradients and a non-integer gap."""
    import cv2

    def paper(image: np.ndarray, chroma_gap: float) -> np.ndarray:
        ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(np.float64)
        y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
        return (  # type: ignore[no-any-return]
            (y > cb)
            & (cr > cb)
            & (y > y.mean())
            & (cb < cb.mean())
            & (cr > cr.mean())
            & (np.abs(cb - cr) >= chroma_gap)
        )

    rng = np.random.default_rng(4)
    gradient = np.zeros((60, 200, 3), np.uint8)
    gradient[..., 0] = np.linspace(80, 255, 200, dtype=np.uint8)
    gradient[..., 1] = np.linspace(40, 160, 200, dtype=np.uint8)
    images = [
        *(np.asarray(rng.integers(0, 256, (h, w, 3)), np.uint8) for h, w in [(1, 1), (7, 9), (240, 320), (33, 1000)]),
        np.full((40, 40, 3), (200, 100, 20), np.uint8),
        gradient,
        flame_image(),
    ]
    for image in images:
        for gap in (40.0, 40.5, 0.0):
            assert np.array_equal(fire_mask(image, gap), paper(image, gap))
