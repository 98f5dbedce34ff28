"""Ignore-mask suggestions from the boxes of a preset's false alarms (pure)."""

from __future__ import annotations

import pytest

from detector.sequence import IgnoreMask
from video.mask_suggestions import FalseAlarmBox, suggest_masks

FRAME = (1280, 720)
CHIMNEY = [(100.0, 50.0, 140.0, 150.0), (104.0, 40.0, 150.0, 140.0), (98.0, 60.0, 136.0, 160.0)]


def alarms(boxes: list[tuple[float, float, float, float]], first_incident: int = 1) -> list[FalseAlarmBox]:
    return [FalseAlarmBox(first_incident + i, box, FRAME) for i, box in enumerate(boxes)]


def test_a_place_three_false_alarms_came_from_is_suggested() -> None:
    elsewhere = [(900.0, 400.0, 960.0, 450.0), (700.0, 100.0, 720.0, 130.0)]
    [suggestion] = suggest_masks(alarms(CHIMNEY + elsewhere))
    assert suggestion.status == "suggested"
    assert suggestion.incidents == (1, 2, 3)
    assert suggestion.boxes == 3
    # the rectangle round the three boxes (98..150 × 40..160), grown by a tenth of its size on each side
    corners = [value for point in suggestion.polygon for value in point]
    assert corners == pytest.approx([92.8, 28.0, 155.2, 28.0, 155.2, 172.0, 92.8, 172.0])
    assert suggestion.frame_fraction == pytest.approx(62.4 * 144.0 / (1280 * 720))


def test_one_incidents_many_sightings_are_one_incident() -> None:
    same = [FalseAlarmBox(7, box, FRAME) for box in CHIMNEY]  # confirmed, ended, re-confirmed: one incident
    assert suggest_masks(same) == []
    assert len(suggest_masks(same, min_incidents=1)) == 1
    with pytest.raises(ValueError, match="min_incidents"):
        suggest_masks(same, min_incidents=0)


def test_linked_boxes_chain_into_one_place_and_the_rectangle_stays_in_the_frame() -> None:
    # a road: each box overlaps the next, the ends do not overlap each other; at the frame's right edge
    road = [(1100.0, 600.0, 1180.0, 640.0), (1160.0, 605.0, 1240.0, 645.0), (1220.0, 610.0, 1280.0, 650.0)]
    [suggestion] = suggest_masks(alarms(road))
    xs = [x for x, _ in suggestion.polygon]
    assert min(xs) == pytest.approx(1082.0)
    assert max(xs) == 1280.0  # clipped to the frame


def test_already_masked_and_too_large_places_are_reported_not_offered() -> None:
    mask = IgnoreMask.from_lists([[[90, 30], [160, 30], [160, 170], [90, 170]]])
    [masked] = suggest_masks(alarms(CHIMNEY), mask=mask)
    assert masked.status == "masked"
    sky = [(0.0, 0.0, 900.0, 300.0), (50.0, 10.0, 950.0, 320.0), (20.0, 0.0, 880.0, 280.0)]
    [large] = suggest_masks(alarms(sky))
    assert large.status == "too_large"
    assert large.frame_fraction is not None
    assert large.frame_fraction > 0.25
    unknown_size = [FalseAlarmBox(i, box) for i, box in enumerate(sky)]  # sightings stored without a frame size
    [unsized] = suggest_masks(unknown_size)
    assert (unsized.status, unsized.frame_fraction) == ("suggested", None)


def test_most_incidents_first() -> None:
    small = alarms(CHIMNEY)
    big = alarms([(500.0, 500.0, 540.0, 540.0)] * 4, first_incident=10)
    found = suggest_masks(small + big)
    assert [len(s.incidents) for s in found] == [4, 3]


def test_sub_stream_boxes_are_compared_in_the_main_streams_pixels() -> None:
    halved = [(x1 / 2, y1 / 2, x2 / 2, y2 / 2) for x1, y1, x2, y2 in CHIMNEY]
    sub_stream = [FalseAlarmBox(4 + i, box, (640, 360)) for i, box in enumerate(halved[:2])]
    [suggestion] = suggest_masks(alarms(CHIMNEY) + sub_stream)
    assert suggestion.frame_size == FRAME  # three of the five were seen on the main stream
    assert suggestion.incidents == (1, 2, 3, 4, 5)
    assert suggestion.polygon[0] == pytest.approx((92.8, 28.0))  # the sub-stream boxes, doubled, lie inside
    [in_sub_stream] = suggest_masks([FalseAlarmBox(10 + i, box, (640, 360)) for i, box in enumerate(halved)])
    assert in_sub_stream.frame_size == (640, 360)
    assert in_sub_stream.polygon[0] == pytest.approx((46.4, 14.0))


def test_one_huge_box_does_not_swallow_the_places_under_it() -> None:
    road = [(600.0, 600.0, 700.0, 650.0), (610.0, 595.0, 705.0, 655.0), (590.0, 605.0, 690.0, 645.0)]
    haze = [(0.0, 0.0, 1280.0, 500.0)]
    found = suggest_masks(alarms(CHIMNEY + road + haze))
    assert [(s.incidents, s.status) for s in found] == [((1, 2, 3), "suggested"), ((4, 5, 6), "suggested")]
