"""Sequence verification: persistence (N of M), overlap, ignore masks, end of event. Pure, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from detector.detections import Detections
from detector.sequence import (
    IgnoreMask,
    PositionVerifiers,
    SequenceConfig,
    SequenceVerifier,
    frame_threshold_for,
    overlap,
    point_in_polygon,
)

BOX = (100.0, 100.0, 140.0, 130.0)


def frame(*items: tuple[str, float, tuple[float, float, float, float]]) -> Detections:
    ids = {"fire": 0, "smoke": 1}
    return Detections(
        (640, 480),
        "m",
        "1",
        xyxy=np.asarray([b for _, _, b in items], np.float32).reshape(-1, 4),
        confidence=np.asarray([c for _, c, _ in items], np.float32),
        class_id=np.asarray([ids[k] for k, _, _ in items], np.int64),
    )


def run(verifier: SequenceVerifier, frames: list[Detections]) -> list[tuple[int, str, int | None]]:
    changes = []
    for index, detections in enumerate(frames):
        changes += [(index, e.class_name, e.end_frame) for e in verifier.update(index, detections)]
    return changes


EMPTY = frame()
SMOKE = frame(("smoke", 0.3, BOX))


def test_confirms_on_the_nth_supporting_frame_of_the_window() -> None:
    verifier = SequenceVerifier(SequenceConfig(window=6, min_hits=3))
    changes = run(verifier, [EMPTY, SMOKE, EMPTY, SMOKE, EMPTY, SMOKE, SMOKE])
    assert changes == [(5, "smoke", None)]
    [event] = verifier.events
    assert (event.start_frame, event.confirm_frame, event.end_frame) == (1, 5, None)
    assert event.box == BOX


def test_hits_spread_wider_than_the_window_never_confirm() -> None:
    verifier = SequenceVerifier(SequenceConfig(window=4, min_hits=3, end_after=10))
    frames = [SMOKE, EMPTY, EMPTY, SMOKE, EMPTY, EMPTY, SMOKE, EMPTY, EMPTY, SMOKE]
    assert run(verifier, frames) == []
    assert verifier.events == []


def test_single_frame_flashes_and_low_confidence_never_confirm() -> None:
    verifier = SequenceVerifier(SequenceConfig(window=8, min_hits=4, frame_threshold=0.15))
    weak = frame(("smoke", 0.1, BOX))
    assert run(verifier, [weak] * 12) == []
    flashes = [frame(("fire", 0.9, (x, 10.0, x + 20, 30.0))) for x in range(0, 600, 50)]  # new place every frame
    assert run(SequenceVerifier(), flashes) == []


def test_detections_must_overlap_and_match_the_class() -> None:
    moving = [frame(("smoke", 0.5, (float(i * 60), 0.0, float(i * 60 + 40), 40.0))) for i in range(8)]
    assert run(SequenceVerifier(SequenceConfig(window=8, min_hits=4)), moving) == []
    alternating = [frame(("smoke" if i % 2 else "fire", 0.5, BOX)) for i in range(7)]
    assert run(SequenceVerifier(SequenceConfig(window=8, min_hits=4)), alternating) == [(6, "fire", None)]


def test_a_growing_plume_stays_one_track() -> None:
    growing = [frame(("smoke", 0.4, (100.0, 100.0 - 10 * i, 120.0 + 10 * i, 120.0))) for i in range(6)]
    verifier = SequenceVerifier(SequenceConfig(window=6, min_hits=4))
    assert run(verifier, growing) == [(3, "smoke", None)]
    assert verifier.events[0].box == (100.0, 70.0, 150.0, 120.0)


def test_event_ends_after_k_frames_without_support() -> None:
    verifier = SequenceVerifier(SequenceConfig(window=4, min_hits=2, end_after=3))
    changes = run(verifier, [SMOKE, SMOKE, SMOKE, EMPTY, EMPTY, EMPTY, EMPTY])
    assert changes == [(1, "smoke", None), (5, "smoke", 2)]
    [event] = verifier.events
    assert (event.start_frame, event.confirm_frame, event.end_frame) == (0, 1, 2)
    # A new fire at the same place after the end is a new event.
    assert run(verifier, []) == []
    verifier.update(7, SMOKE)
    verifier.update(8, SMOKE)
    assert [(e.start_frame, e.end_frame) for e in verifier.events] == [(0, 2), (7, None)]


def test_ignore_mask_drops_detections_centred_in_a_polygon() -> None:
    chimney = IgnoreMask.from_lists([[[90, 90], [150, 90], [150, 140], [90, 140]]])
    verifier = SequenceVerifier(SequenceConfig(window=4, min_hits=2), chimney)
    assert run(verifier, [SMOKE] * 6) == []
    elsewhere = frame(("smoke", 0.3, (300.0, 100.0, 340.0, 130.0)))
    assert run(SequenceVerifier(SequenceConfig(window=4, min_hits=2), chimney), [elsewhere] * 2) == [(1, "smoke", None)]


def test_frames_must_increase_and_config_is_validated() -> None:
    verifier = SequenceVerifier()
    verifier.update(3, EMPTY)
    with pytest.raises(ValueError, match="increase"):
        verifier.update(3, EMPTY)
    with pytest.raises(ValueError, match="min_hits"):
        SequenceConfig(window=4, min_hits=5)
    with pytest.raises(ValueError, match="end_after"):
        SequenceConfig(end_after=0)
    with pytest.raises(ValueError, match="3 points"):
        IgnoreMask.from_lists([[[0, 0], [1, 1]]])


def test_positions_are_independent() -> None:
    verifiers = PositionVerifiers(
        SequenceConfig(window=4, min_hits=2),
        {"east": IgnoreMask.from_lists([[[0, 0], [640, 0], [640, 480], [0, 480]]])},
    )
    for index in range(3):
        verifiers.update("west", index, SMOKE)
        verifiers.update("east", index, SMOKE)
    assert len(verifiers.events("west")) == 1
    assert verifiers.events("east") == []
    assert verifiers.events("north") == []


def test_geometry_helpers() -> None:
    square = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
    assert point_in_polygon((5, 5), square)
    assert not point_in_polygon((15, 5), square)
    concave = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (5.0, 5.0), (0.0, 10.0))
    assert not point_in_polygon((5, 8), concave)
    assert overlap((0, 0, 10, 10), (5, 5, 100, 100)) == pytest.approx(0.25)
    assert overlap((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_frame_threshold_is_half_the_models_operating_threshold() -> None:
    assert frame_threshold_for(0.30) == 0.15  # the 320 px model: the former fixed default
    assert frame_threshold_for(0.45) == 0.225
    assert frame_threshold_for(0.0) == 0.0
    with pytest.raises(ValueError, match="operating threshold"):
        frame_threshold_for(1.5)
    rule = SequenceConfig(window=6, min_hits=3)
    assert rule.for_model(0.45) == SequenceConfig(frame_threshold=0.225, window=6, min_hits=3)
