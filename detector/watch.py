"""Watch one fixed camera position: frames → detections → sequence verification → events.

Why separate from :mod:`detector.sequence`: this is the I/O side (a video file or a folder of frames, decoding,
running a detector); the rules themselves stay pure. A frame that cannot be decoded still counts as a frame
(without detections), so frame indices keep matching the source's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from detector.detections import Detections, Detector, ImageArray, detect_frame
from detector.evaluate import IMAGE_SUFFIXES, decoded, image_files, rescale
from detector.images import ImageLoadError, LoadedImage
from detector.sequence import DEFAULT_SEQUENCE_CONFIG, Event, IgnoreMask, SequenceConfig, SequenceVerifier

__all__ = ["MAX_UNREADABLE_FRAMES", "WatchResult", "frame_count", "iter_frames", "load_mask", "watch"]


@dataclass(frozen=True)
class WatchResult:
    """What ``strawfire detector watch --json`` prints, plus the per-frame errors."""

    frames: int
    events: list[Event]
    errors: list[str]
    frame_size: tuple[int, int] | None = None  # (width, height) of the last decoded frame
    # Said about the source without being an error: frames of another size than the first (scaled to it).
    notes: list[str] = field(default_factory=list)

    def event_dicts(self) -> list[dict[str, Any]]:
        """The events as JSON objects: class, start/confirm/end frame (0-based), box, max confidence."""
        return [
            {
                "class": e.class_name,
                "start_frame": e.start_frame,
                "confirm_frame": e.confirm_frame,
                "end_frame": e.end_frame,
                "box": [round(v, 1) for v in e.box],
                "max_confidence": round(e.max_confidence, 4),
            }
            for e in self.events
        ]

    def to_json(self) -> dict[str, Any]:
        """``{"frames": N, "events": [...], "errors": [...], "notes": [...]}``, the output of ``strawfire detector
        watch --json``; events in the order they were confirmed."""
        return {"frames": self.frames, "events": self.event_dicts(), "errors": self.errors, "notes": self.notes}


#: Reads in a row that may fail before a video is taken to end there. A damaged stretch in the middle of a file is
#: skipped (OpenCV goes on with the next frame it can decode); a file cut short fails on every read to the end.
MAX_UNREADABLE_FRAMES: Final[int] = 250


def iter_frames(source: Path, problems: list[str] | None = None) -> Iterator[LoadedImage | ImageLoadError]:
    """Frames of a video file, or the images of a folder sorted by file name (:func:`image_files`), in order.

    A frame that cannot be decoded is an :class:`ImageLoadError` in its place. A video whose data ends before the
    frames its container announces (a file cut short) ends there; that is reported in ``problems``, not as frames.
    A single image is not a sequence: ValueError.
    """
    if source.is_dir():
        for _, loaded in decoded(image_files(source), workers=0, ahead=0):
            yield loaded
        return
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such video file or frame folder")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"{source} is one image: give a video file or a folder of frames")
    import cv2

    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise ValueError(f"{source}: OpenCV cannot open this as a video")
    announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # from the container; 0 or less when unknown
    index, unread = 0, 0
    try:
        while True:
            ok, frame = capture.read()
            if ok:
                for _ in range(unread):  # damaged frames, now known to be followed by more
                    yield ImageLoadError(str(source), "cannot be decoded (damaged video data)")
                unread = 0
                rgb = np.ascontiguousarray(frame[:, :, ::-1], dtype=np.uint8)  # OpenCV decodes to BGR
                yield LoadedImage(rgb, (rgb.shape[1], rgb.shape[0]))
            elif index < announced and unread < MAX_UNREADABLE_FRAMES:
                unread += 1  # maybe a damaged stretch: try the next frame
            else:
                break
            index += 1
    finally:
        capture.release()
    if unread and problems is not None:
        first = index - unread
        if index < announced:  # gave up on a damaged stretch before the end
            problems.append(
                f"{source}: frames {first}–{index - 1} could not be decoded, {unread} in a row; stopped there, "
                f"{announced - index} of the {announced} frames its container announces left unread"
            )
        elif first == 0:
            problems.append(f"{source}: none of the {announced} frames its container announces could be decoded")
        else:
            problems.append(
                f"{source}: the video data ends after frame {first - 1}, but its container announces {announced} "
                f"frames: frames {first}–{announced - 1} could not be read (a file cut short?)"
            )


def load_mask(path: Path) -> IgnoreMask:
    """An ignore mask from JSON: ``[[[x, y], ...], ...]`` or ``{"polygons": [...]}`` in frame pixels."""
    data = json.loads(path.read_text(encoding="utf-8"))
    polygons = data.get("polygons", []) if isinstance(data, dict) else data
    return IgnoreMask.from_lists(polygons)


def watch(
    detector: Detector,
    source: Path,
    *,
    config: SequenceConfig | None = None,
    mask: IgnoreMask | None = None,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> WatchResult:
    """Run ``detector`` frame after frame over ``source`` (one camera position) and verify persistence.

    Without ``config`` the default rule runs at the model's own per-frame threshold (:func:`frame_threshold_for`).
    ``on_frame`` is called after each frame with the frames done and the total (:func:`frame_count`), for a
    progress bar.

    Frames of another size than the first are verified in the first frame's pixels (the mask too; see
    :class:`SequenceVerifier`), and each change of size is a note; the motion test restarts after one.
    """
    if config is None:
        config = DEFAULT_SEQUENCE_CONFIG.for_model(detector.info.operating_threshold)
    verifier = SequenceVerifier(config, mask)
    errors: list[str] = []
    notes: list[str] = []
    previous: ImageArray | None = None
    frames = 0
    size: tuple[int, int] | None = None
    conf = min(config.frame_threshold, 0.05)
    total = frame_count(source) if on_frame is not None else None
    for index, frame in enumerate(iter_frames(source, errors)):
        frames = index + 1
        if isinstance(frame, ImageLoadError):
            errors.append(f"frame {index}: {frame}")
            found = Detections((0, 0), detector.info.name, detector.info.version)
            previous = None
        else:
            if size is not None and frame.original_size != size:
                notes.append(
                    f"frame {index}: {_size_text(frame.original_size)} after {_size_text(size)} frames: its boxes are "
                    f"compared in pixels of the first frame ({_size_text(verifier.frame_size or size)})"
                )
                previous = None  # motion needs two frames of one size
            found = rescale(detect_frame(detector, frame.pixels, previous, conf=conf), frame)
            previous = frame.pixels
            size = frame.original_size
        verifier.update(index, found)
        if on_frame is not None:
            on_frame(frames, total)
    return WatchResult(frames, verifier.events, errors, size, notes)


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def frame_count(source: Path) -> int | None:
    """How many frames :func:`iter_frames` will read from ``source``, when that is known beforehand (a folder's
    images, or the count a video's container announces)."""
    if source.is_dir():
        return len(image_files(source))
    import cv2

    capture = cv2.VideoCapture(str(source))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    return count if count > 0 else None
