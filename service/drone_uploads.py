"""Drone image batches uploaded to the service: detect, locate each box by ray projection, fuse as sightings.

A drone team lands and uploads the flight's images; each goes through the same functions as the patrol
pipeline (``video.patrol.drone_sightings``: the detector, then ``video.drone`` ray projection from the DJI
metadata) and every located box is ingested like a posted drone sighting. One image without metadata is reported
and the rest go on. The detector is loaded once per process (ONNX Runtime by default, the colour rules when no
model is installed); with ``detector.second_opinion`` it is the model with the flame rule's second opinion, loaded
when the service starts, and a missing model stops the start instead of failing the first flight's upload.
"""

from __future__ import annotations

import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from detector.detections import Detector
from service.auth.service import Principal
from service.body_limit import shortened_file_name
from service.config import Settings
from service.db import DatabaseBusyError, write_savepoint
from service.errors import ConfigError, StrawfireError
from service.evidence.exif import ImageCheckError, inspect_photo
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


def shown_name(name: str) -> str:
    """The name an uploaded image is answered and recorded under (``image_name`` of its sightings), by decision:
    the name as sent, but only its last path part (``/`` and ``\\`` both separate: a Windows app may send
    ``C:\\DJI\\DJI_0001.JPG``), control characters (a NUL, a line break) written as ``_``, and at most 255
    characters (:func:`~service.body_limit.shortened_file_name`, the extension kept; a longer one failed the
    whole batch with a 500). ``..`` stays ``..`` (it is only reported); an empty name is ``image.jpg``."""
    base = re.split(r"[/\\]", name)[-1]
    cleaned = "".join("_" if unicodedata.category(ch) == "Cc" else ch for ch in base)
    return shortened_file_name(cleaned) if cleaned.strip() else "image.jpg"


@dataclass(slots=True)
class ImageResult:
    """One uploaded image: the sightings it gave and their incidents, or why it gave none (``busy``: not stored
    because the database stayed locked by another writer; the same image can be sent again)."""

    image: str
    sightings: int = 0
    incidents: list[int] = field(default_factory=list)
    error: str | None = None
    busy: bool = False


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
    """Detect, locate and ingest every image (inside the caller's transaction), each on its own: an image that
    cannot be used (no metadata, refused as evidence) gets its error, named by its file, and the others land.

    Each image is written to a temporary file under a name of the service's own (``3.jpg``): an uploaded name may
    be ``..`` or longer than a file system takes; the name is only reported (:func:`shown_name`).

    Each image's sightings go through a savepoint (:func:`~service.db.write_savepoint`). On PostgreSQL the request
    commits them together; on the embedded SQLite each image's sightings are committed on their own, by decision:
    an image that is in stays in, and a batch sent again after a failure adds nothing for those images, whose
    sightings are keyed by content. There an image waits for another writer's lock (the alert worker's pass) up to
    the busy timeout; when the lock is not had in time, that image and the rest of the batch are answered "not
    stored: … send this image again" (:attr:`ImageResult.busy`), nothing of them written, and the images before
    them stay stored: the next images would only wait as long again."""
    results: list[ImageResult] = []
    busy = False
    with tempfile.TemporaryDirectory(prefix="strawfire-drone-") as folder:
        for number, (name, data) in enumerate(images):
            shown = shown_name(name)
            result = ImageResult(shown)
            results.append(result)
            if busy:
                result.busy = True
                result.error = f"{shown}: not stored: the database was busy with another writer; send this image again"
                continue
            try:
                inspect_photo(data)  # the evidence check, before anything is stored: refused here, not mid-batch
            except ImageCheckError as exc:
                result.error = f"{shown}: {exc}"
                continue
            path = Path(folder) / f"{number}.jpg"
            path.write_bytes(data)
            try:
                uploads = drone_sightings(path, detector, drone_id=drone_id, image_name=shown)
            except VideoError as exc:
                message = str(exc).replace(str(path), shown).removeprefix(f"{shown}: ")  # the reader names the file
                result.error = f"{shown}: {message}"
                continue
            try:
                with write_savepoint(session):  # this image's sightings land together, or not at all
                    for upload in uploads:
                        outcome = ingest_sighting(
                            session, upload.sighting, upload.evidence_jpeg, indexes=indexes, settings=settings,
                            actor=actor,
                        )  # fmt: skip
                        result.sightings += 1
                        if outcome.incident_id is not None and outcome.incident_id not in result.incidents:
                            result.incidents.append(outcome.incident_id)
            except DatabaseBusyError as exc:
                result.sightings, result.incidents, result.busy, busy = 0, [], True, True
                result.error = f"{shown}: not stored: {exc}; send this image again"
            except StrawfireError as exc:
                result.sightings, result.incidents = 0, []
                result.error = f"{shown}: {exc}"
    return results
