"""Sequence verification: persistence (N of M), overlap, ignore masks, end of event. Pure, frame by frame."""

from __future__ import annotations

import dataclasses

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


def test_detections_must_overlap() -> None:
    moving = [frame(("smoke", 0.5, (float(i * 60), 0.0, float(i * 60 + 40), 40.0))) for i in range(8)]
    assert run(SequenceVerifier(SequenceConfig(window=8, min_hits=4)), moving) == []


def test_a_place_seen_as_fire_in_some_frames_and_smoke_in_others_is_one_event() -> None:
    """A distant straw fire flips between fire and smoke: the place persists, so it confirms, once, under the class
    most of its frames had at confirmation (fire on a tie), which it keeps."""
    alternating = [frame(("smoke" if i % 2 else "fire", 0.5, BOX)) for i in range(7)]
    assert run(SequenceVerifier(SequenceConfig(window=8, min_hits=4)), alternating) == [(3, "fire", None)]
    # fire, smoke, nothing, ...: 2 or 3 frames of each class in any 8, never 4 of one; 5–6 of 8 with a detection
    flipping = [frame(("fire", 0.5, BOX)) if i % 3 == 0 else SMOKE if i % 3 == 1 else EMPTY for i in range(24)]
    verifier = SequenceVerifier(SequenceConfig(window=8, min_hits=4, end_after=5))
    assert run(verifier, flipping) == [(4, "fire", None)]  # frames 0 f, 1 s, 3 f, 4 s: a tie, so fire
    assert len(verifier.events) == 1
    mostly_smoke = [frame(("smoke" if c == "s" else "fire", 0.5, BOX)) for c in "ffssfssfssffss"]
    verifier = SequenceVerifier(SequenceConfig(window=8, min_hits=4))
    assert run(verifier, mostly_smoke) == [(3, "fire", None)]
    [event] = verifier.events
    # Fire at confirmation (2 fire, 2 smoke: a tie), and so to the end, although smoke leads by then.
    assert (event.class_name, event.start_frame, event.confirm_frame) == ("fire", 0, 3)


def test_the_confirmed_class_counts_every_box_of_the_confirming_frame_whatever_their_order() -> None:
    for strongest in ("fire", "smoke"):
        weaker = "smoke" if strongest == "fire" else "fire"
        frames = [frame(("smoke", 0.5, BOX)), frame(("smoke", 0.5, BOX)), frame(("fire", 0.5, BOX))]
        frames.append(frame((strongest, 0.6, BOX), (weaker, 0.4, BOX)))  # 3 smoke frames, 2 fire: smoke
        assert run(SequenceVerifier(SequenceConfig(window=8, min_hits=4)), frames) == [(3, "smoke", None)]


def test_boxes_of_one_plume_in_one_frame_support_one_track() -> None:
    """Whole frame plus tiles, or a fragment inside a larger box: several boxes of one plume in a frame are one
    supporting frame of one track, not several tracks (which would confirm the same fire several times)."""
    plume = (0.0, 0.0, 100.0, 100.0)
    pieces = [
        frame(("smoke", 0.6, plume), ("smoke", 0.3, (10.0, 10.0, 30.0, 30.0)), ("smoke", 0.4, (5.0, 5.0, 95.0, 60.0)))
    ]
    verifier = SequenceVerifier(SequenceConfig(window=8, min_hits=4))
    assert run(verifier, pieces * 6) == [(3, "smoke", None)]
    assert len(verifier.events) == 1
    assert verifier.snapshot()["tracks"][0]["hits"] == [0, 1, 2, 3, 4, 5]


def test_an_extra_box_inside_an_ongoing_plume_does_not_take_it_over() -> None:
    """A box inside the event's plume on one frame overlaps the event's track and the newer one equally (overlap
    is over the smaller box): the confirmed track keeps the plume, so the event neither ends nor restarts."""
    plume = ("smoke", 0.6, (0.0, 0.0, 100.0, 100.0))
    frames = [frame(plume) for _ in range(20)]
    frames[5] = frame(plume, ("smoke", 0.3, (10.0, 10.0, 30.0, 30.0)))
    frames[9] = frame(("smoke", 0.3, (10.0, 10.0, 30.0, 30.0)))  # only the small box: still this plume
    verifier = SequenceVerifier(SequenceConfig(window=8, min_hits=4, end_after=5))
    assert run(verifier, frames) == [(3, "smoke", None)]
    [event] = verifier.events
    assert (event.start_frame, event.confirm_frame, event.end_frame) == (0, 3, None)


def test_a_long_watch_keeps_a_small_state() -> None:
    """A track keeps its first hit and the last ``window`` ones (all the rule reads), however long it lasts."""
    verifier = SequenceVerifier(SequenceConfig(window=8, min_hits=4))
    sparse = SequenceVerifier(SequenceConfig(window=8, min_hits=4))
    for index in range(5000):
        verifier.update(index, SMOKE)
        sparse.update(index, SMOKE if index % 5 == 0 else EMPTY)  # never confirms, never idle a whole window
    # The live tracks, not the snapshot (which has always been trimmed): the memory of a verifier that runs for days.
    [track] = verifier._tracks
    assert track.hits == [0, *range(4992, 5000)]
    assert verifier.events[0].start_frame == 0
    assert len(sparse._tracks[0].hits) <= 9
    assert sparse.events == []


def test_a_snapshot_from_before_class_agnostic_tracks_still_restores() -> None:
    old = {
        "last_frame": 9,
        "tracks": [
            {
                "class_name": "smoke",
                "box": list(BOX),
                "hits": [2, 6, 7, 8, 9],
                "confirmed_at": 8,
                "confirm_box": list(BOX),
                "max_confidence": 0.4,
            }
        ],
    }
    verifier = SequenceVerifier.restore(old, SequenceConfig(window=8, min_hits=4))
    assert [(e.class_name, e.start_frame, e.confirm_frame) for e in verifier.events] == [("smoke", 2, 8)]
    assert verifier.update(10, frame(("fire", 0.5, BOX))) == []
    assert verifier.events[0].class_name == "smoke"  # 5 smoke frames against 1 fire


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


def sized(size: tuple[int, int], *items: tuple[str, float, tuple[float, float, float, float]]) -> Detections:
    """:func:`frame` from a frame of another size."""
    return dataclasses.replace(frame(*items), image_size=size)


def test_frames_of_another_size_are_compared_in_the_first_frames_pixels() -> None:
    """A camera switched to its sub-stream (or a folder with frames saved at several sizes): the same fire at the
    same place in the picture keeps one track; compared in each frame's own pixels it would not overlap at all."""
    rule = SequenceConfig(window=6, min_hits=3)
    big = sized((1280, 960), ("fire", 0.9, (400.0, 400.0, 480.0, 480.0)))  # 2× the 640×480 frames
    small = frame(("fire", 0.9, (200.0, 200.0, 240.0, 240.0)))
    verifier = SequenceVerifier(rule)
    assert run(verifier, [small, big, small, big]) == [(2, "fire", None)]
    [event] = verifier.events
    assert (event.start_frame, event.confirm_frame) == (0, 2)
    assert event.box == (200.0, 200.0, 240.0, 240.0)  # in pixels of the frame that confirmed it
    assert verifier.frame_size == (640, 480)
    # confirmed on a large frame, the event's box is in that frame's pixels
    other = SequenceVerifier(rule)
    assert run(other, [big, small, big]) == [(2, "fire", None)]
    assert other.events[0].box == (400.0, 400.0, 480.0, 480.0)
    # the mask is in the first frame's pixels, whatever size the later frames have
    mask = IgnoreMask.from_lists([[[190, 190], [250, 190], [250, 250], [190, 250]]])
    assert run(SequenceVerifier(rule, mask), [small, big, small, big]) == []
    # an undecodable frame (no size) neither sets the first frame's size nor breaks the scaling
    late = SequenceVerifier(rule)
    late.update(0, Detections((0, 0), "m", "1"))
    assert late.frame_size is None
    for index, detections in enumerate([big, small, big], start=1):
        late.update(index, detections)
    assert late.frame_size == (1280, 960)
    assert len(late.events) == 1


def test_the_first_frames_size_survives_a_snapshot() -> None:
    rule = SequenceConfig(window=6, min_hits=3)
    big = sized((1280, 960), ("fire", 0.9, (400.0, 400.0, 480.0, 480.0)))
    small = frame(("fire", 0.9, (200.0, 200.0, 240.0, 240.0)))
    verifier = SequenceVerifier(rule)
    run(verifier, [small, big])
    restored = SequenceVerifier.restore(verifier.snapshot(), rule)
    assert restored.frame_size == (640, 480)
    assert [e.confirm_frame for e in restored.update(2, big)] == [2]


def test_events_are_listed_in_confirmation_order_ended_or_not() -> None:
    """Whether an event has ended does not change where it is listed: a reader taking the first event as the first
    confirmation gets it."""
    rule = SequenceConfig(window=4, min_hits=2, end_after=2)
    first = frame(("fire", 0.9, (10.0, 10.0, 50.0, 50.0)))
    later = frame(("smoke", 0.5, (300.0, 100.0, 340.0, 130.0)))
    both = frame(("fire", 0.9, (10.0, 10.0, 50.0, 50.0)), ("smoke", 0.5, (300.0, 100.0, 340.0, 130.0)))
    verifier = SequenceVerifier(rule)
    run(verifier, [first, first, both, both, first, first, first])  # the smoke ends, the fire goes on
    assert [(e.class_name, e.confirm_frame, e.end_frame) for e in verifier.events] == [
        ("fire", 1, None),
        ("smoke", 3, 3),
    ]
    both_ended = SequenceVerifier(rule)
    run(both_ended, [first, first, both, both, later, EMPTY, EMPTY])  # the smoke ends after the fire
    assert [(e.class_name, e.end_frame) for e in both_ended.events] == [("fire", 3), ("smoke", 4)]


def test_ignore_mask_drops_detections_lying_mostly_in_its_polygons() -> None:
    chimney = IgnoreMask.from_lists([[[90, 90], [150, 90], [150, 140], [90, 140]]])
    verifier = SequenceVerifier(SequenceConfig(window=4, min_hits=2), chimney)
    assert run(verifier, [SMOKE] * 6) == []
    elsewhere = frame(("smoke", 0.3, (300.0, 100.0, 340.0, 130.0)))
    assert run(SequenceVerifier(SequenceConfig(window=4, min_hits=2), chimney), [elsewhere] * 2) == [(1, "smoke", None)]


def test_a_large_fire_around_a_small_masked_chimney_still_counts() -> None:
    """The share of the box's area decides, not its centre: a field fire whose box centres on a small chimney
    polygon is not dropped, and a box mostly on masked ground is, even with its centre just off it."""
    small_chimney = IgnoreMask.from_lists([[[45, 45], [55, 45], [55, 55], [45, 55]]])
    field_fire = frame(("fire", 0.9, (0.0, 0.0, 100.0, 100.0)))
    rule = SequenceConfig(window=4, min_hits=2)
    assert run(SequenceVerifier(rule, small_chimney), [field_fire] * 2) == [(1, "fire", None)]
    road = [[[0, 0], [100, 0], [100, 40], [0, 40]], [[0, 40], [30, 40], [30, 100], [0, 100]]]  # an L: 58 % of it
    assert not IgnoreMask.from_lists(road).covers((50.0, 50.0, 50.0, 50.0))  # its centre is off the road
    assert IgnoreMask.from_lists(road).covers((0.0, 0.0, 100.0, 100.0))
    assert run(SequenceVerifier(rule, IgnoreMask.from_lists(road)), [field_fire] * 4) == []
    twice = IgnoreMask.from_lists([road[0], road[0]])  # overlapping polygons count once: 40 %
    assert not twice.covers((0.0, 0.0, 100.0, 100.0))
    assert IgnoreMask.from_lists([[[0, 0], [1, 0], [1, 1], [0, 1]]]).covers((0.5, 0.5, 0.5, 0.5))  # no area: centre


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


def test_a_detection_after_a_gap_in_the_frames_starts_a_new_event() -> None:
    """Skipped frames have no support: an event quiet for ``end_after`` of them has ended, and a detection after
    the gap does not stretch it over the gap."""
    verifier = SequenceVerifier(SequenceConfig(window=8, min_hits=4, end_after=5))
    for index in range(4):
        verifier.update(index, SMOKE)
    ended = verifier.update(20, SMOKE)
    assert [(e.start_frame, e.confirm_frame, e.end_frame) for e in ended] == [(0, 3, 3)]
    for index in range(21, 24):
        verifier.update(index, SMOKE)
    assert [(e.start_frame, e.confirm_frame, e.end_frame) for e in verifier.events] == [(0, 3, 3), (20, 23, None)]
    short = SequenceVerifier(SequenceConfig(window=8, min_hits=4, end_after=5))
    for index in [0, 1, 2, 3, 8]:  # frames 4–7 skipped: 4 without support, under end_after
        short.update(index, SMOKE)
    assert [(e.start_frame, e.end_frame) for e in short.events] == [(0, None)]


def test_a_box_over_a_quarter_of_the_frame_is_not_tracked() -> None:
    """A grey screen, overcast sky or fog draws one frame-wide smoke box; persistence used to confirm it."""
    wide = frame(("smoke", 0.9, (0.0, 0.0, 640.0, 480.0)))
    quarter = frame(("smoke", 0.9, (0.0, 0.0, 320.0, 240.0)))  # exactly a quarter: still tracked
    assert run(SequenceVerifier(), [wide] * 8) == []
    assert run(SequenceVerifier(), [quarter] * 4) == [(3, "smoke", None)]
    assert run(SequenceVerifier(SequenceConfig(max_box_fraction=1.0)), [wide] * 4) == [(3, "smoke", None)]
    with pytest.raises(ValueError, match="max_box_fraction"):
        SequenceConfig(max_box_fraction=0.0)
