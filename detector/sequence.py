"""Sequence verification for fixed cameras: a fire is confirmed only when it persists at the same place.

Why: a single frame fools any detector (a dust cloud behind a tractor, a sun glint, a red roof at dusk); a real
straw fire keeps burning and smoking for minutes at one spot. Following Pyronear's engine, each frame is searched
with a *low* per-frame threshold, and an event is confirmed when at least ``min_hits`` of the last ``window``
frames from the same camera position have an overlapping detection (defaults: 4 of 8, "at least half of 6–8
frames"). Detections lying mostly in the ignore polygons of that position (a chimney, a road with dust, the
sun's path; :data:`MASKED_FRACTION` of the box's area or more) never count. An event ends after ``end_after``
consecutive frames without support.

One place, one track, whatever the class and however many boxes: a distant straw fire is often seen as fire in one
frame and smoke in the next, and a plume is often cut into several boxes (whole frame and tiles, or a fragment
inside a larger box). So every detection of a frame that overlaps a track supports it (once per frame), new
tracks included; a detection overlapping several tracks supports a confirmed one first (an ongoing event keeps its
plume instead of handing it to a newcomer that would end it and start a second event), then the one it overlaps
most, then the oldest; and an event's class is the one most of its supporting frames had when it was confirmed
(fire on a tie: the more urgent), kept for the rest of the event so that its reports agree. Pyronear's engine
has a single class; per-class tracks here would never confirm a spot seen as fire, smoke, nothing, fire, smoke,
nothing… (5–6 of 8 frames with a detection, 2–3 of each class).

The per-frame threshold belongs to the model, not to the rule: confidence scales differ from one trained model to
the next (the 320 px model's F1-best operating threshold was 0.30, the first 640 px one's 0.45), so a fixed 0.15 is
"low" for one and near the noise floor of a scene feature for the other. :func:`frame_threshold_for` therefore
runs the verifier at half the model's operating threshold (0.15 for the 320 px model, as before; 0.25 for the
weights-free rules, whose 0.5 is a colour/motion score rather than a probability). Measured on the FIgLib tower
clip with that first 640 px int8 model (20261129-e215): at a fixed 0.15 a hazy ridge at the plume's later spot,
scored 0.08–0.17 from 20 min *before* ignition, was confirmed a minute before ignition; at half its operating threshold
(0.225) nothing is confirmed before ignition and the plume is confirmed 9 min after it.

Everything here is pure (no I/O, no clock): frames are identified by their index, so the same code serves a
recorded clip, a live camera and the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Final

from detector.detections import Detections

__all__ = [
    "DEFAULT_SEQUENCE_CONFIG",
    "MASKED_FRACTION",
    "Event",
    "IgnoreMask",
    "PositionVerifiers",
    "SequenceConfig",
    "SequenceVerifier",
    "frame_threshold_for",
    "overlap",
    "point_in_polygon",
]

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class SequenceConfig:
    """Thresholds of the persistence rule, all configurable (``strawfire detector watch`` exposes them)."""

    # Per-frame confidence: low, persistence does the filtering. 0.15 when no model is known; callers with a model
    # use frame_threshold_for(its operating threshold).
    frame_threshold: float = 0.15
    window: int = 8  # M: frames looked back over
    min_hits: int = 4  # N: frames of the window with a supporting detection needed to confirm
    min_overlap: float = 0.2  # intersection over the smaller box to link a detection to a track
    end_after: int = 5  # K: frames without support that end an event
    classes: tuple[str, ...] = ("fire", "smoke")
    # A box over this share of the frame locates nothing and is not tracked: a fixed camera's fire starts small
    # (the FIgLib plume: 0.12 % of the frame), while a grey "no video" screen, an overcast sky or dense fog draws
    # one frame-wide smoke box at 0.6–0.98 (the CCTV close-ups the model learned from have smoke filling the
    # frame), which persistence then confirmed: grey frames at frame 3, fogged pre-ignition frames (a box of 41 %
    # of the frame) at frame 6. A quarter; ``video.mask_suggestions`` takes this share too (a box too large to mask).
    max_box_fraction: float = 0.25

    def __post_init__(self) -> None:
        if not 1 <= self.min_hits <= self.window:
            raise ValueError(f"min_hits must be in 1..window ({self.window}), got {self.min_hits}")
        if self.end_after < 1:
            raise ValueError(f"end_after must be ≥ 1, got {self.end_after}")
        if not 0.0 <= self.frame_threshold <= 1.0 or not 0.0 < self.min_overlap <= 1.0:
            raise ValueError("frame_threshold must be in [0, 1] and min_overlap in (0, 1]")
        if not 0.0 < self.max_box_fraction <= 1.0:
            raise ValueError(f"max_box_fraction must be in (0, 1], got {self.max_box_fraction}")

    def for_model(self, operating_threshold: float) -> SequenceConfig:
        """This rule at the per-frame threshold of a model operating at ``operating_threshold``
        (:func:`frame_threshold_for`)."""
        return replace(self, frame_threshold=frame_threshold_for(operating_threshold))


DEFAULT_SEQUENCE_CONFIG: Final[SequenceConfig] = SequenceConfig()

#: The per-frame threshold as a fraction of the model's operating threshold (see the module docstring).
FRAME_THRESHOLD_RATIO: Final[float] = 0.5


def frame_threshold_for(operating_threshold: float) -> float:
    """Per-frame threshold for sequence verification with a model that operates at ``operating_threshold``."""
    if not 0.0 <= operating_threshold <= 1.0:
        raise ValueError(f"operating threshold must be in [0, 1], got {operating_threshold}")
    return round(FRAME_THRESHOLD_RATIO * operating_threshold, 4)


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Even–odd ray casting; points exactly on an edge may fall either side."""
    x, y = point
    inside = False
    count = len(polygon)
    for i in range(count):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % count]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


#: Share of a detection's box inside a position's ignore polygons from which it is ignored.
MASKED_FRACTION: Final[float] = 0.5


@dataclass(frozen=True)
class IgnoreMask:
    """Polygons where detections are ignored, in pixels of the camera position's frames (of its first frame, when
    frames of several sizes come: see :class:`SequenceVerifier`)."""

    polygons: tuple[tuple[Point, ...], ...] = ()

    @classmethod
    def from_lists(cls, polygons: Iterable[Iterable[Sequence[float]]]) -> IgnoreMask:
        """Build from JSON-like ``[[[x, y], ...], ...]``; each polygon needs at least three points."""
        parsed: list[tuple[Point, ...]] = []
        for polygon in polygons:
            points = tuple((float(p[0]), float(p[1])) for p in polygon)
            if len(points) < 3:
                raise ValueError(f"an ignore polygon needs at least 3 points, got {len(points)}")
            parsed.append(points)
        return cls(tuple(parsed))

    def covers(self, box: Box) -> bool:
        """Whether at least :data:`MASKED_FRACTION` of the box's area lies in the polygons (their union: overlapping
        polygons count once). A box without area is covered when its centre lies in a polygon.

        Why area, not the box's centre: a large field-fire box whose centre happens to fall on a small chimney
        polygon would be dropped, a fire missed; and a box mostly on a masked road would count because its centre
        is just off it.
        """
        if not self.polygons:
            return False
        import shapely

        area = (box[2] - box[0]) * (box[3] - box[1])
        if area <= 0:
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            return any(point_in_polygon(centre, polygon) for polygon in self.polygons)
        inside = shapely.box(*box).intersection(self._region).area
        return bool(inside >= MASKED_FRACTION * area)

    @cached_property
    def _region(self) -> Any:
        """The union of the polygons (shapely), built once per mask; invalid rings (self-crossing) are repaired."""
        import shapely

        return shapely.union_all([shapely.make_valid(shapely.Polygon(polygon)) for polygon in self.polygons])


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area: a growing plume keeps overlapping its earlier, smaller box."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


@dataclass(frozen=True)
class Event:
    """A confirmed fire or smoke event. ``end_frame`` is its last supporting frame, None while it goes on."""

    class_name: str
    start_frame: int  # first frame of the track that became the event
    confirm_frame: int
    end_frame: int | None
    box: Box  # the detection that confirmed it, in pixels of the frame that confirmed it
    max_confidence: float


@dataclass
class _Track:
    box: Box
    # Frame indices with a supporting detection: the first, then at most ``window`` recent ones (all the rule
    # reads), so a fire watched for days keeps a small state.
    hits: list[int] = field(default_factory=list)
    support: dict[str, int] = field(default_factory=dict)  # supporting frames per class
    confirmed_at: int | None = None
    confirm_box: Box | None = None
    confirmed_class: str | None = None
    max_confidence: float = 0.0

    def class_name(self, classes: Sequence[str]) -> str:
        """The class most supporting frames had; on a tie, the first in ``classes`` (fire before smoke)."""
        rank = {name: i for i, name in enumerate(classes)}
        return max(self.support, key=lambda name: (self.support[name], -rank.get(name, len(rank))))

    def hits_in_window(self, frame: int, window: int) -> int:
        return sum(1 for f in self.hits if f > frame - window)

    def add_hit(self, frame: int, classes: Iterable[str], window: int) -> None:
        """Count ``frame`` once, and each of ``classes`` (those of its boxes on this track) once."""
        self.hits.append(frame)
        if len(self.hits) > window + 1:
            del self.hits[1:-window]
        for name in classes:
            self.support[name] = self.support.get(name, 0) + 1

    def to_event(self, ended: bool) -> Event:
        assert self.confirmed_at is not None
        assert self.confirm_box is not None
        assert self.confirmed_class is not None
        return Event(
            self.confirmed_class,
            self.hits[0],
            self.confirmed_at,
            self.hits[-1] if ended else None,
            self.confirm_box,
            self.max_confidence,
        )


class SequenceVerifier:
    """Persistence rule for one camera position. Feed it every frame in order with :meth:`update`.

    Frames of one position may come in more than one size (a camera switched to its sub-stream, frames saved at
    another resolution): tracks and the ignore mask are kept in pixels of the first frame, and each frame's boxes
    are scaled to it before they are compared, so one fire stays one event. An event's ``box`` is in pixels of the
    frame that confirmed it, like that frame's own detections.
    """

    def __init__(self, config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG, mask: IgnoreMask | None = None) -> None:
        self.config = config
        self.mask = mask or IgnoreMask()
        self._tracks: list[_Track] = []
        self._ended: list[Event] = []
        self._last_frame: int | None = None
        self._frame_size: tuple[int, int] | None = None  # (width, height) of the first frame: the tracks' pixels

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the first frame with a size: tracks and the ignore mask are in its pixels."""
        return self._frame_size

    def _to_track_pixels(self, image_size: tuple[int, int]) -> Callable[[Box], Box]:
        """The map from a frame of ``image_size``'s pixels to the tracks' (the first frame's)."""
        width, height = image_size
        if width <= 0 or height <= 0:  # an undecodable frame: no boxes to map
            return lambda box: box
        if self._frame_size is None:
            self._frame_size = (width, height)
        sx, sy = self._frame_size[0] / width, self._frame_size[1] / height
        if sx == sy == 1.0:
            return lambda box: box
        return lambda box: (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)

    def update(self, frame: int, detections: Detections) -> list[Event]:
        """Account for one frame; return the events confirmed or ended at this frame.

        Frames must come in increasing order (gaps are allowed: a skipped frame simply has no support).
        """
        if self._last_frame is not None and frame <= self._last_frame:
            raise ValueError(f"frame {frame} after frame {self._last_frame}: frames must increase")
        self._last_frame = frame
        cfg = self.config
        width, height = detections.image_size
        largest = cfg.max_box_fraction * width * height
        to_tracks = self._to_track_pixels(detections.image_size)
        candidates = [
            (d, to_tracks(d.box))
            for d in detections
            if d.confidence >= cfg.frame_threshold
            and d.class_name in cfg.classes
            and (cfg.max_box_fraction >= 1.0 or _area(d.box) <= largest)
        ]
        candidates = [(d, box) for d, box in candidates if not self.mask.covers(box)]
        # Frames skipped since the last one had no support: what they would have ended is ended first, so that a
        # detection after a gap starts a new event instead of extending one that went quiet.
        changed = self._expire(frame - 1)
        # tracks with a detection in this frame, in the order they got it, with the classes of their boxes
        supported: dict[int, set[str]] = {}
        placed_by: dict[int, Box] = {}  # per track, the frame's strongest box on it, in this frame's pixels
        for det, box in sorted(candidates, key=lambda c: -c[0].confidence):
            matches = [  # tracks are kept in the order they started: a lower index is an older track
                (track.confirmed_at is not None, score, -index)
                for index, track in enumerate(self._tracks)
                if (score := overlap(track.box, box)) >= cfg.min_overlap
            ]
            if matches:
                best = -max(matches)[2]
            else:
                self._tracks.append(_Track(box))
                best = len(self._tracks) - 1
            track = self._tracks[best]
            if best not in supported:  # the frame's strongest box on this track places it
                track.box = box
                placed_by[best] = det.box
            supported.setdefault(best, set()).add(det.class_name)
            track.max_confidence = max(track.max_confidence, det.confidence)
        for index, classes in supported.items():  # once the whole frame has counted, whatever its boxes' order
            track = self._tracks[index]
            track.add_hit(frame, classes, cfg.window)
            if track.confirmed_at is None and track.hits_in_window(frame, cfg.window) >= cfg.min_hits:
                track.confirmed_at, track.confirm_box = frame, placed_by[index]
                track.confirmed_class = track.class_name(cfg.classes)
                changed.append(track.to_event(ended=False))

        changed += self._expire(frame)
        return changed

    def _expire(self, frame: int) -> list[Event]:
        """End the events whose last support is ``end_after`` frames before ``frame`` and drop the tracks too old
        to confirm; return the ended events."""
        cfg = self.config
        ended: list[Event] = []
        kept: list[_Track] = []
        for track in self._tracks:
            idle = frame - track.hits[-1]
            if track.confirmed_at is not None and idle >= cfg.end_after:
                event = track.to_event(ended=True)
                self._ended.append(event)
                ended.append(event)
            elif track.confirmed_at is None and idle >= cfg.window:
                continue  # too old to ever reach min_hits inside the window
            else:
                kept.append(track)
        self._tracks = kept
        return ended

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-able data, so a verifier can move between processes (Celery workers).

        Ended events are left out (they were reported when they ended); a track's hits are its first and at most
        ``window`` recent ones (see ``_Track.hits``).
        """
        return {
            "last_frame": self._last_frame,
            "frame_size": None if self._frame_size is None else list(self._frame_size),
            "tracks": [
                {
                    "support": dict(t.support),
                    "confirmed_class": t.confirmed_class,
                    "box": list(t.box),
                    "hits": list(t.hits),
                    "confirmed_at": t.confirmed_at,
                    "confirm_box": None if t.confirm_box is None else list(t.confirm_box),
                    "max_confidence": t.max_confidence,
                }
                for t in self._tracks
            ],
        }

    @classmethod
    def restore(
        cls, data: Mapping[str, Any], config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG, mask: IgnoreMask | None = None
    ) -> SequenceVerifier:
        """A verifier continuing from :meth:`snapshot` data (with the current config and mask)."""

        def box(values: Sequence[float]) -> Box:
            x1, y1, x2, y2 = (float(v) for v in values)
            return x1, y1, x2, y2

        def track(data: Mapping[str, Any]) -> _Track:
            hits = [int(h) for h in data["hits"]]
            if "support" in data:
                support = {str(name): int(count) for name, count in data["support"].items()}
            else:  # a snapshot from before tracks were class-agnostic: one class, every hit
                support = {str(data["class_name"]): len(hits)}
            restored = _Track(
                box=box(data["box"]),
                hits=hits[:1] + hits[1:][-config.window :],
                support=support,
                confirmed_at=None if data["confirmed_at"] is None else int(data["confirmed_at"]),
                confirm_box=None if data["confirm_box"] is None else box(data["confirm_box"]),
                max_confidence=float(data["max_confidence"]),
            )
            if restored.confirmed_at is not None:
                restored.confirmed_class = str(data.get("confirmed_class") or restored.class_name(config.classes))
            return restored

        verifier = cls(config, mask)
        verifier._last_frame = None if data["last_frame"] is None else int(data["last_frame"])
        if data.get("frame_size"):  # snapshots from before frames were scaled: taken from the next frame
            width, height = (int(v) for v in data["frame_size"])
            verifier._frame_size = (width, height)
        verifier._tracks = [track(t) for t in data["tracks"]]
        return verifier

    @property
    def events(self) -> list[Event]:
        """All confirmed events so far, ended or ongoing, in the order they were confirmed (then started)."""
        ongoing = [t.to_event(ended=False) for t in self._tracks if t.confirmed_at is not None]
        return sorted(self._ended + ongoing, key=lambda e: (e.confirm_frame, e.start_frame))


class PositionVerifiers:
    """One :class:`SequenceVerifier` per camera position (PTZ preset), each with its own ignore mask."""

    def __init__(
        self, config: SequenceConfig = DEFAULT_SEQUENCE_CONFIG, masks: Mapping[str, IgnoreMask] | None = None
    ) -> None:
        self.config = config
        self.masks = dict(masks or {})
        self._verifiers: dict[str, SequenceVerifier] = {}

    def update(self, position: str, frame: int, detections: Detections) -> list[Event]:
        """:meth:`SequenceVerifier.update` for the verifier of ``position`` (created on first use)."""
        verifier = self._verifiers.get(position)
        if verifier is None:
            verifier = self._verifiers[position] = SequenceVerifier(self.config, self.masks.get(position))
        return verifier.update(frame, detections)

    def events(self, position: str) -> list[Event]:
        """All events of one position so far."""
        verifier = self._verifiers.get(position)
        return verifier.events if verifier else []
