"""Ignore-mask suggestions for a camera preset, from the boxes of its false alarms.

Why: a fixed camera position fails the same way again and again (a chimney's plume, a dusty road, a reflective
roof), and every repeat sends a township team across the fields for nothing and teaches it to ignore the next
alert. Pyronear's users and the field notes (``../shared/reference/cameras-and-drones.md`` § 5.6: "seed masks
automatically from recurring false-positive clusters") point at the remedy: find the places in the frame where
incidents closed as false alarms keep coming from, and offer them to an administrator as mask polygons. Nothing
is masked automatically: a mask hides real fires too, so a person decides (``strawfire camera suggest-masks``,
``GET /api/v1/cameras/mask-suggestions``).

The rule: boxes of one preset link when they overlap by at least ``min_overlap`` of the smaller box (the sequence
verifier's link, ``detector.sequence.overlap``); a group of linked boxes from at least ``min_incidents``
different incidents is a suggestion, the rectangle around its boxes grown by ``margin`` of its size on each side.
Groups already covered by the preset's mask, and rectangles larger than ``max_frame_fraction`` of the frame's
area (a mask that large is a sign to fix the preset or the model, not to blind the camera), are reported as such
rather than offered. The pairwise linking grows with the square of the boxes of one preset: thousands of false
alarms a preset, fine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from detector.sequence import DEFAULT_SEQUENCE_CONFIG, IgnoreMask, overlap

__all__ = ["DEFAULT_MIN_INCIDENTS", "FalseAlarmBox", "MaskSuggestion", "suggest_masks"]

Box = tuple[float, float, float, float]
#: Three separate false alarms from one place: two can be chance, three is a pattern worth a look.
DEFAULT_MIN_INCIDENTS: Final = 3


@dataclass(frozen=True)
class FalseAlarmBox:
    """The box a false alarm's sighting was located from, in frame pixels; ``frame_size`` (w, h) when known."""

    incident_id: int
    box: Box
    frame_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class MaskSuggestion:
    """A place in one preset's frame that false alarms keep coming from.

    ``status``: ``suggested`` (add ``polygon`` to the preset's ``ignore_mask``), ``masked`` (the preset's mask
    already covers it: the alarms predate the mask), ``too_large`` (wider than the limit; look at the preset).
    """

    polygon: tuple[tuple[float, float], ...]  # a rectangle, clockwise from the top-left, in frame_size's pixels
    incidents: tuple[int, ...]
    boxes: int
    frame_size: tuple[int, int] | None  # (w, h) of the frames the polygon is in; None when no sighting said
    frame_fraction: float | None  # the rectangle's share of the frame, when the frame size is known
    status: Literal["suggested", "masked", "too_large"]


def _groups(boxes: Sequence[Box], min_overlap: float) -> list[list[int]]:
    """Indices of ``boxes`` in linked groups (union-find over pairwise links), each group in input order."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if overlap(boxes[i], boxes[j]) >= min_overlap:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _reference_size(alarms: Sequence[FalseAlarmBox]) -> tuple[int, int] | None:
    """The frame size most alarms were seen at (the larger on a tie); None when none is known."""
    sizes = Counter(a.frame_size for a in alarms if a.frame_size is not None)
    if not sizes:
        return None
    return max(sizes, key=lambda size: (sizes[size], size[0] * size[1]))


def _in_reference(alarm: FalseAlarmBox, reference: tuple[int, int] | None) -> Box:
    """The alarm's box in the reference frame's pixels (a sub-stream's boxes scaled up to the main stream's)."""
    if reference is None or alarm.frame_size is None or alarm.frame_size == reference:
        return alarm.box
    sx, sy = reference[0] / alarm.frame_size[0], reference[1] / alarm.frame_size[1]
    x1, y1, x2, y2 = alarm.box
    return x1 * sx, y1 * sy, x2 * sx, y2 * sy


def suggest_masks(
    alarms: Sequence[FalseAlarmBox],
    *,
    mask: IgnoreMask | None = None,
    min_incidents: int = DEFAULT_MIN_INCIDENTS,
    min_overlap: float = 0.2,
    margin: float = 0.1,
    # One rule for "too large to locate": the share over which sequence verification does not track a box.
    max_frame_fraction: float = DEFAULT_SEQUENCE_CONFIG.max_box_fraction,
) -> list[MaskSuggestion]:
    """Suggestions for one preset from its false alarms' boxes, most incidents first (see the module docstring).

    Boxes are compared in the pixels of the frame size most of them were seen at (``MaskSuggestion.frame_size``;
    boxes from a sub-stream are scaled to it), and boxes larger than ``max_frame_fraction`` of the frame link only
    with each other: linked by their overlap with the smaller box, one haze box over half the frame would
    otherwise merge every place under it into one group too large to offer.
    """
    if min_incidents < 1:
        raise ValueError(f"min_incidents must be ≥ 1, got {min_incidents}")
    mask = mask or IgnoreMask()
    reference = _reference_size(alarms)
    boxes = [_in_reference(a, reference) for a in alarms]
    frame_area = reference[0] * reference[1] if reference else None

    def large(box: Box) -> bool:
        return frame_area is not None and (box[2] - box[0]) * (box[3] - box[1]) > max_frame_fraction * frame_area

    groups: list[list[int]] = []
    for part in ([i for i, b in enumerate(boxes) if not large(b)], [i for i, b in enumerate(boxes) if large(b)]):
        groups += [[part[j] for j in group] for group in _groups([boxes[i] for i in part], min_overlap)]
    out: list[MaskSuggestion] = []
    for group in groups:
        incidents = tuple(sorted({alarms[i].incident_id for i in group}))
        if len(incidents) < min_incidents:
            continue
        x1 = min(boxes[i][0] for i in group)
        y1 = min(boxes[i][1] for i in group)
        x2 = max(boxes[i][2] for i in group)
        y2 = max(boxes[i][3] for i in group)
        grow_x, grow_y = margin * (x2 - x1), margin * (y2 - y1)
        x1, y1, x2, y2 = max(0.0, x1 - grow_x), max(0.0, y1 - grow_y), x2 + grow_x, y2 + grow_y
        fraction = None
        if reference is not None and frame_area is not None:
            x2, y2 = min(x2, float(reference[0])), min(y2, float(reference[1]))
            fraction = (x2 - x1) * (y2 - y1) / frame_area
        status: Literal["suggested", "masked", "too_large"] = "suggested"
        if all(mask.covers(boxes[i]) for i in group):
            status = "masked"
        elif fraction is not None and fraction > max_frame_fraction:
            status = "too_large"
        polygon = ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
        out.append(MaskSuggestion(polygon, incidents, len(group), reference, fraction, status))
    out.sort(key=lambda s: (-len(s.incidents), s.polygon[0]))
    return out
