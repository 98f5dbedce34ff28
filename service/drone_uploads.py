"""Drone image batches uploaded to the service: detect, locate each box by ray projection, fuse as sightings.

A drone team lands and uploads the flight's images; each goes through the same functions as the patrol
pipeline (``video.patrol.drone_sightings``: the detector, then ``video.drone`` ray projection from the DJI
metadata) and every located box is ingested like a posted drone sighting. One image without metadata is reported
and the rest go on. The detector is loaded once per process (ONNX Runtime by default, the colour rules when no
model is installed); with ``detector.second_opinion`` it is the model with the flame rule's second opinion, loaded
when the service starts, and a missing model stops the start instead of failing the first flight's upload.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from detector.detections import Detector
from service.auth.service import Principal
from service.config import Settings
from service.errors import ConfigError
from service.flows import ingest_sighting
from service.regions.service import RegionIndexCache
from video.errors import VideoError
from video.patrol import drone_sightings

_lock = threading.Lock()
_detectors: dict[bool, Detector] = {}


def shared_detector(second_opinion: bool = False) -> Detector:
    """The process's detector (loaded on first use), with the flame rule's second opinion on its fire boxes when
    ``second_opinion`` (``STRAWFIRE_DETECTOR__SECOND_OPINION``; then a model that does not load is a
    :class:`ConfigError`, not a fallback to the rules)."""
    with _lock:
        if second_opinion not in _detectors:
            from detector.backends import load_detector
            from detector.manifest import ModelError

            try:
                _detectors[second_opinion] = load_detector("auto", second_opinion=second_opinion)
            except ModelError as exc:
                raise ConfigError(f"detector.second_opinion is on, but {exc}") from None
        return _detectors[second_opinion]


@dataclass(slots=True)
class ImageResult:
    """One uploaded image: the sightings it gave and their incidents, or why it gave none."""

    image: str
    sightings: int = 0
    incidents: list[int] = field(default_factory=list)
    error: str | None = None


def ingest_drone_images(
    session: Session,
    images: list[tuple[str, bytes]],
    *,
    drone_id: str,
    detector: Detector,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
) -> list[ImageResult]:
    """Detect, locate and ingest every image (inside the caller's transaction)."""
    results: list[ImageResult] = []
    with tempfile.TemporaryDirectory(prefix="strawfire-drone-") as folder:
        for name, data in images:
            result = ImageResult(Path(name).name)
            # The drone metadata readers take a file: write it under its own (sanitised) name.
            path = Path(folder) / (Path(name).name or "image.jpg")
            path.write_bytes(data)
            try:
                uploads = drone_sightings(path, detector, drone_id=drone_id)
            except VideoError as exc:
                result.error = str(exc).replace(folder + "/", "")
                results.append(result)
                continue
            for upload in uploads:
                outcome = ingest_sighting(
                    session, upload.sighting, upload.evidence_jpeg, indexes=indexes, settings=settings, actor=actor
                )
                result.sightings += 1
                if outcome.incident_id is not None and outcome.incident_id not in result.incidents:
                    result.incidents.append(outcome.incident_id)
            results.append(result)
    return results
