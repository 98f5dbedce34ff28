"""Sequence-level evaluation: tower clips through sequence verification, scored the way the issue's acceptance
reads — no confirmed event on clips without fire or before ignition, the fire confirmed within N minutes of it.

Why a tool of its own: per-image AP says little about what a township team sees from a fixed camera, which is
confirmed events. Pyronear's leaderboard scores whole sequences for the same reason (precision, recall and time
to detection per sequence; ``../shared/reference/cameras-and-drones.md``). One clip is one fixed camera position
(a video file, or a folder of frames in name order, as ``strawfire detector watch`` reads it).

The clip list is a CSV file (``strawfire detector eval-clips CLIPS.csv``), one row per clip; paths are relative
to the CSV's folder::

    clip,ignition_frame,minutes_per_frame,fire_region,mask
    figlib_mobo_c.mp4,20,1,"0,0.30,0.15,0.55",figlib_mask.json
    dfire_aof_frames/,,1,,

* ``ignition_frame``: the 0-based frame at which the fire starts; empty for a clip without fire.
* ``minutes_per_frame``: the time between frames (default 1), for the time to detection in minutes.
* ``fire_region``: optional ``x1,y1,x2,y2`` as fractions of the frame: an event confirmed after ignition counts as
  the fire only if its box overlaps the region (elsewhere it is a false event); without a region, any.
* ``mask``: optional ignore-mask JSON for that position (``watch --mask``).

Scoring (:func:`score_events`): an event *confirmed* before the ignition frame is a false event, whatever it
became later (the alert would have gone out); the first confirmation at or after ignition on the fire region is
the detection; other confirmations after ignition are false events away from the fire.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.detections import Detector
from detector.sequence import Event, IgnoreMask, SequenceConfig, overlap

if TYPE_CHECKING:
    from detector.watch import WatchResult

__all__ = [
    "ClipReport",
    "ClipScore",
    "ClipSpec",
    "ClipsSummary",
    "evaluate_clips",
    "read_clip_list",
    "score_events",
    "score_watch",
]

Region = tuple[float, float, float, float]
_COLUMNS = ("clip", "ignition_frame", "minutes_per_frame", "fire_region", "mask")


@dataclass(frozen=True)
class ClipSpec:
    """One row of the clip list (see the module docstring)."""

    clip: Path
    ignition_frame: int | None = None
    minutes_per_frame: float = 1.0
    fire_region: Region | None = None
    mask: Path | None = None
    name: str = ""  # as the list gives it (the path relative to the list); the file name when empty

    @property
    def label(self) -> str:
        """How reports name the clip."""
        return self.name or self.clip.name


@dataclass(frozen=True)
class ClipScore:
    """How a clip's confirmed events read against its ignition frame."""

    detection_frame: int | None  # the first confirmation of the fire, None when missed (or no fire)
    false_before_ignition: int  # confirmed before ignition (all of them, in a clip without fire)
    false_after_ignition: int  # confirmed after ignition away from the fire region


@dataclass(frozen=True)
class ClipReport:
    """One clip's result: its events and their score."""

    clip: str
    frames: int
    ignition_frame: int | None
    minutes_per_frame: float
    events: list[dict[str, Any]]
    score: ClipScore
    errors: list[str] = field(default_factory=list)
    readable: bool = True  # False: no frame could be read, or the ignition frame lies beyond the clip

    @property
    def minutes_to_detection(self) -> float | None:
        """Minutes from ignition to the fire's first confirmation."""
        if self.score.detection_frame is None or self.ignition_frame is None:
            return None
        return (self.score.detection_frame - self.ignition_frame) * self.minutes_per_frame

    def to_json(self) -> dict[str, Any]:
        """The clip's JSON object in ``eval-clips --json``."""
        return {
            "clip": self.clip,
            "frames": self.frames,
            "ignition_frame": self.ignition_frame,
            "detection_frame": self.score.detection_frame,
            "minutes_to_detection": self.minutes_to_detection,
            "false_events_before_ignition": self.score.false_before_ignition,
            "false_events_after_ignition": self.score.false_after_ignition,
            "readable": self.readable,
            "events": self.events,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class ClipsSummary:
    """The acceptance figures over the clips that could be read (``unreadable`` counts the others, which are in no
    other figure); ``within_minutes`` is the detection deadline."""

    within_minutes: float
    unreadable: int
    fire_clips: int
    detected: int
    detected_within: int
    median_minutes_to_detection: float | None
    fire_clips_with_false_event: int  # before ignition or away from the fire
    clips_without_fire: int
    clips_without_fire_with_event: int

    @classmethod
    def of(cls, reports: Sequence[ClipReport], within_minutes: float) -> ClipsSummary:
        """The summary of ``reports``."""
        read = [r for r in reports if r.readable]
        fire = [r for r in read if r.ignition_frame is not None]
        delays = [d for r in fire if (d := r.minutes_to_detection) is not None]
        return cls(
            within_minutes=within_minutes,
            unreadable=len(reports) - len(read),
            fire_clips=len(fire),
            detected=len(delays),
            detected_within=sum(d <= within_minutes for d in delays),
            median_minutes_to_detection=statistics.median(delays) if delays else None,
            fire_clips_with_false_event=sum(
                r.score.false_before_ignition + r.score.false_after_ignition > 0 for r in fire
            ),
            clips_without_fire=len(read) - len(fire),
            clips_without_fire_with_event=sum(
                r.score.false_before_ignition > 0 for r in read if r.ignition_frame is None
            ),
        )


def score_events(events: Sequence[Event], ignition_frame: int | None, fire_box: Region | None) -> ClipScore:
    """Score confirmed events against the ignition frame and the fire's box (pixels; None: anywhere). Pure."""
    if ignition_frame is None:
        return ClipScore(None, len(events), 0)
    before = [e for e in events if e.confirm_frame < ignition_frame]
    after = [e for e in events if e.confirm_frame >= ignition_frame]
    on_fire = [e.confirm_frame for e in after if fire_box is None or overlap(e.box, fire_box) > 0.0]
    return ClipScore(min(on_fire) if on_fire else None, len(before), len(after) - len(on_fire))


def score_watch(result: WatchResult, ignition_frame: int | None, fire_region: Region | None) -> ClipScore:
    """:func:`score_events` for what ``watch`` saw, the fire's region given as fractions of its frame."""
    fire_box = None
    if fire_region is not None and result.frame_size is not None:
        width, height = result.frame_size
        x1, y1, x2, y2 = fire_region
        fire_box = (x1 * width, y1 * height, x2 * width, y2 * height)
    return score_events(result.events, ignition_frame, fire_box)


def _number(text: str, where: str, kind: Callable[[str], Any], what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{where}: {what} must be a number, got {text!r}") from None


def _read_mask(path: Path) -> IgnoreMask:
    """The position's ignore mask; a ValueError naming the file when it cannot be read or is not polygons."""
    from detector.watch import load_mask

    try:
        return load_mask(path)
    except OSError as exc:
        raise ValueError(f"mask {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise ValueError(f"mask {path}: not [[[x, y], ...], ...] polygons ({exc})") from None


def read_clip_list(path: Path) -> list[ClipSpec]:
    """The clips of a CSV clip list (module docstring), masks checked; a ValueError names the line and column of a
    bad value."""
    base = path.parent
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        if reader.fieldnames is None or "clip" not in reader.fieldnames:
            raise ValueError(f"{path}: the first line must name the columns, at least 'clip' ({', '.join(_COLUMNS)})")
        unknown = [name for name in reader.fieldnames if name not in _COLUMNS]
        repeated = {name for name in reader.fieldnames if reader.fieldnames.count(name) > 1}
        if unknown or repeated:
            problem = f"unknown column(s) {', '.join(repr(n) for n in unknown)}" if unknown else "repeated column(s)"
            raise ValueError(f"{path}: {problem} {', '.join(sorted(repeated))} (columns: {', '.join(_COLUMNS)})")
        specs: list[ClipSpec] = []
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if None in row:
                raise ValueError(f'{where}: more values than columns (quote a fire_region: "x1,y1,x2,y2")')
            clip = (row.get("clip") or "").strip()
            if not clip:
                raise ValueError(f"{where}: column 'clip' is empty")
            ignition = (row.get("ignition_frame") or "").strip()
            minutes = (row.get("minutes_per_frame") or "").strip()
            region_text = (row.get("fire_region") or "").strip()
            mask_text = (row.get("mask") or "").strip()
            ignition_frame = _number(ignition, where, int, "ignition_frame") if ignition else None
            if ignition_frame is not None and ignition_frame < 0:
                raise ValueError(f"{where}: ignition_frame must be ≥ 0, got {ignition_frame}")
            minutes_per_frame = _number(minutes, where, float, "minutes_per_frame") if minutes else 1.0
            if not (math.isfinite(minutes_per_frame) and minutes_per_frame > 0):
                raise ValueError(f"{where}: minutes_per_frame must be a finite number > 0, got {minutes}")
            region: Region | None = None
            if region_text:
                values = [_number(v, where, float, "fire_region") for v in region_text.split(",")]
                if len(values) != 4 or not (0 <= values[0] < values[2] <= 1 and 0 <= values[1] < values[3] <= 1):
                    raise ValueError(
                        f"{where}: fire_region is x1,y1,x2,y2 as fractions of the frame, got {region_text!r}"
                    )
                region = (values[0], values[1], values[2], values[3])
            if region is not None and ignition_frame is None:
                raise ValueError(f"{where}: a fire_region needs an ignition_frame")
            mask = base / mask_text if mask_text else None
            if mask is not None:
                try:
                    _read_mask(mask)  # checked now, before a model loads for the clips
                except ValueError as exc:
                    raise ValueError(f"{where}: {exc}") from None
            specs.append(ClipSpec(base / clip, ignition_frame, minutes_per_frame, region, mask, clip))
    if not specs:
        raise ValueError(f"{path}: no clips listed")
    return specs


def evaluate_clips(
    detector: Detector,
    specs: Sequence[ClipSpec],
    *,
    config: SequenceConfig | None = None,
    on_clip: Callable[[int, int], None] | None = None,
) -> list[ClipReport]:
    """Watch every clip with ``detector`` (``detector.watch.watch``: the model's own per-frame threshold unless
    ``config`` says otherwise) and score it. A clip that cannot be read is a report with its error, not an abort."""
    reports: list[ClipReport] = []
    for done, spec in enumerate(specs, start=1):
        reports.append(_clip_report(detector, spec, config))
        if on_clip is not None:
            on_clip(done, len(specs))
    return reports


def _clip_report(detector: Detector, spec: ClipSpec, config: SequenceConfig | None) -> ClipReport:
    from detector.watch import watch

    def unreadable(errors: list[str]) -> ClipReport:
        return ClipReport(spec.label, 0, spec.ignition_frame, spec.minutes_per_frame, [], ClipScore(None, 0, 0),
                          errors, readable=False)  # fmt: skip

    try:
        result = watch(detector, spec.clip, config=config, mask=_read_mask(spec.mask) if spec.mask else None)
    except (OSError, ValueError) as exc:
        return unreadable([str(exc)])
    if not result.frames:
        return unreadable(["no frame could be read", *result.errors])
    errors = list(result.errors)
    beyond = spec.ignition_frame is not None and spec.ignition_frame >= result.frames
    if beyond:
        errors.append(f"ignition_frame {spec.ignition_frame} lies beyond the clip's {result.frames} frames")
    score = score_watch(result, spec.ignition_frame, spec.fire_region)
    return ClipReport(
        spec.label, result.frames, spec.ignition_frame, spec.minutes_per_frame, result.event_dicts(), score, errors,
        readable=not beyond,
    )  # fmt: skip
