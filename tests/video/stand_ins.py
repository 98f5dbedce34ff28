"""Detectors for worker processes in tests that must not depend on a model or on ``../shared/data``.

Importable by Celery workers: ``STRAWFIRE_VIDEO__DETECTOR=tests.video.stand_ins:steady_smoke_detector``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detector.detections import Detections, ImageArray, ModelInfo

STEADY_INFO = ModelInfo(
    name="steady-smoke",
    version="1",
    classes=("fire", "smoke"),
    input_size=0,
    operating_threshold=0.5,
    backend="stand-in",
)


class SteadySmokeDetector:
    """One smoke box of score 0.6 at the same relative place of every frame: a plume that never goes away."""

    @property
    def info(self) -> ModelInfo:
        return STEADY_INFO

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        for image in images:
            height, width = image.shape[:2]
            box = [0.45 * width, 0.45 * height, 0.52 * width, 0.52 * height]
            out.append(
                Detections(
                    (width, height),
                    STEADY_INFO.name,
                    STEADY_INFO.version,
                    STEADY_INFO.classes,
                    np.array([box], np.float32),
                    np.array([0.6], np.float32),
                    np.ones(1, np.int64),
                )
            )
        return out


def steady_smoke_detector() -> SteadySmokeDetector:
    """Factory for ``STRAWFIRE_VIDEO__DETECTOR=tests.video.stand_ins:steady_smoke_detector``."""
    return SteadySmokeDetector()
