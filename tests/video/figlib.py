"""The real FIgLib tower fire (HPWREN wc-s-mobo-c, 2019-09-25) for the patrol tests: frames, labels, a registry.

``figlib_labelled_detector`` is a *test double* of the detector: it recognises which frame of the clip it is given
(nearest 32×22 grey thumbnail, robust to JPEG re-encoding) and returns that frame's hand-labelled smoke box from
``tower_sequences/…/labels``. It makes the pipeline's output exact and known — confirmation 3 min after ignition,
end 5 frames after the last labelled box — so the tests check the pipeline, not whichever model is committed
today (its results on this 0.1 %-of-the-frame plume change with every training run). It is importable by a
Celery worker as ``tests.video.figlib:figlib_labelled_detector``.

The camera geometry in :func:`figlib_registry` is illustrative (a 40 m mast near Changchun looking 1° down), not
HPWREN's real site: the tests check that geometry flows through, the geometry modules have their own truth tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.detections import Detections, ImageArray, ModelInfo
from video.camera import CameraSite, ZoomLens
from video.registry import CameraRecord, CameraRegistry, PresetRecord

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
VIDEO = SHARED / "videos" / "figlib_20190925_FIRE_wc-s-mobo-c_-20to+20min_1frame-per-min_4fps.mp4"
SEQUENCE = SHARED / "tower_sequences" / "20190925_FIRE_wc-s-mobo-c"
#: Frame i of the clip is (i − 20) minutes from ignition; ignition is at this instant (epoch of ``+00000``).
IGNITION = datetime.fromtimestamp(1569442402, UTC)
CLIP_START = datetime.fromtimestamp(1569442402 - 20 * 60, UTC)
FRAMES = 41
#: Clip frames with a labelled box: +0…+12 min and +15 min (+13 and +14 have no label file).
LABELLED = (*range(20, 33), 35)
CONFIRM_FRAME = 23  # the 4th labelled frame within 8 (SequenceConfig defaults)
END_FRAME = 40  # 5 frames after the last labelled one

LABELS_INFO = ModelInfo(
    name="figlib-labels",
    version="1",
    classes=("fire", "smoke"),
    input_size=0,
    operating_threshold=0.5,
    backend="labels",
)


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (../shared/data is not checked out)")
    return path


@lru_cache(maxsize=1)
def _clip_frames() -> tuple[np.ndarray, ...]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return tuple(frames)


def clip_frames() -> tuple[np.ndarray, ...]:
    """The 41 BGR frames of the clip (skips the test when the data is absent)."""
    require(VIDEO)
    frames = _clip_frames()
    assert len(frames) == FRAMES
    return frames


def _thumb(image_gray: np.ndarray) -> np.ndarray:
    return cv2.resize(image_gray, (32, 22), interpolation=cv2.INTER_AREA).astype(np.float32)


@lru_cache(maxsize=1)
def labelled_boxes() -> dict[int, tuple[float, float, float, float]]:
    """Clip frame index → labelled smoke box in clip pixels (1280 × 854)."""
    boxes: dict[int, tuple[float, float, float, float]] = {}
    for path in sorted(require(SEQUENCE / "labels").glob("*.txt")):
        offset = int(path.stem.split("_")[1])
        index = 20 + round(offset / 60)
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        if not rows or not 0 <= index < FRAMES:
            continue
        _, cx, cy, w, h = (float(v) for v in rows[0])
        boxes[index] = ((cx - w / 2) * 1280, (cy - h / 2) * 854, (cx + w / 2) * 1280, (cy + h / 2) * 854)
    return boxes


class FiglibLabelledDetector:
    """Returns the labelled box of whichever clip frame it is shown (see the module docstring)."""

    def __init__(self) -> None:
        self._thumbs = np.stack([_thumb(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)) for f in clip_frames()])
        self._boxes = labelled_boxes()

    @property
    def info(self) -> ModelInfo:
        return LABELS_INFO

    def frame_index(self, image_rgb: ImageArray) -> int:
        thumb = _thumb(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
        return int(np.abs(self._thumbs - thumb).mean(axis=(1, 2)).argmin())

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            box = self._boxes.get(self.frame_index(image))
            sx, sy = image.shape[1] / 1280, image.shape[0] / 854
            xyxy = (
                np.zeros((0, 4), np.float32)
                if box is None
                else np.array([[box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]], np.float32)
            )
            n = len(xyxy)
            out.append(
                Detections(
                    (image.shape[1], image.shape[0]),
                    LABELS_INFO.name,
                    LABELS_INFO.version,
                    LABELS_INFO.classes,
                    xyxy,
                    np.full(n, 0.6, np.float32),
                    np.ones(n, np.int64),
                )
            )
        return out


def figlib_labelled_detector() -> FiglibLabelledDetector:
    """Factory for ``STRAWFIRE_VIDEO__DETECTOR=tests.video.figlib:figlib_labelled_detector``."""
    return FiglibLabelledDetector()


def figlib_camera(*, source: str = "", kind: str | None = None, presets: Sequence[str] = ("p1",)) -> CameraRecord:
    lens = ZoomLens(1280, 854, ((1.0, 60.0), (10.0, 6.5)))
    site = CameraSite(latitude=44.3, longitude=125.3, mast_height_m=40.0, ground_elevation_m=190.0)
    return CameraRecord(
        id="figlib-mobo-c",
        site=site,
        lens=lens,
        name="FIgLib wc-s-mobo-c (illustrative site)",
        presets=tuple(
            PresetRecord(
                id=preset_id,
                pan_deg=250.0 + 30.0 * i,
                tilt_deg=-1.0,
                source=source,
                source_kind=kind,  # type: ignore[arg-type]
                cadence_s=60.0,
            )
            for i, preset_id in enumerate(presets)
        ),
    )


def figlib_registry(**options: object) -> CameraRegistry:
    return CameraRegistry((figlib_camera(**options),))  # type: ignore[arg-type]
