"""Storing evidence photos: content-addressed files, EXIF checks against the incident, an event per upload."""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import timedelta
from pathlib import Path

from pyproj import Geod
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.config import Settings
from service.db import utcnow
from service.errors import InputError, NotFoundError
from service.evidence.exif import ImageCheckError, inspect_photo
from service.evidence.tables import Evidence
from service.incidents.service import record_event
from service.incidents.tables import Incident

_GEOD = Geod(ellps="WGS84")
# A photo taken more than this before the first detection, or after "now", is suspicious (the audit risk the
# field notes describe: old photos, or photos of another fire).
_EARLY = timedelta(days=1)
_SKEW = timedelta(minutes=10)


def evidence_dir(settings: Settings) -> Path:
    """The folder evidence files live in."""
    return settings.evidence.directory or settings.data_dir / "evidence"


def path_of(settings: Settings, sha256: str) -> Path:
    """Where a file with this hash is stored (two-level fan-out keeps folders small)."""
    return evidence_dir(settings) / sha256[:2] / sha256


def store_evidence(
    session: Session,
    incident: Incident,
    data: bytes,
    *,
    filename: str,
    actor: Principal,
    settings: Settings,
    from_device: bool = False,
) -> Evidence:
    """Validate, store and record one photo for ``incident`` (idempotent per incident and content).

    Frames from cameras and drones (``from_device``) are not checked for phone GPS: their position is the
    sighting's own geometry.
    """
    try:
        facts = inspect_photo(data)
    except ImageCheckError as exc:
        raise InputError(str(exc), source=filename) from None
    digest = hashlib.sha256(data).hexdigest()
    existing = session.scalar(select(Evidence).where(Evidence.incident_id == incident.id, Evidence.sha256 == digest))
    if existing is not None:
        return existing
    target = path_of(settings, digest)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves a half file under the final name.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(target)
    flags: list[str] = []
    distance = None
    if facts.latitude is None or facts.longitude is None:
        if not from_device:
            flags.append("no GPS position in the photo")
    else:
        _, _, distance = _GEOD.inv(incident.longitude, incident.latitude, facts.longitude, facts.latitude)
        if distance > settings.evidence.max_distance_m:
            flags.append(f"taken {distance:,.0f} m from the incident")
    if facts.taken_at is not None:
        if facts.taken_at < incident.first_observed_at - _EARLY:
            flags.append("taken more than a day before the fire was detected")
        if facts.taken_at > utcnow() + _SKEW:  # a phone's clock may run a little fast; more is not a photo of now
            flags.append("taken in the future")
    evidence = Evidence(
        incident_id=incident.id,
        sha256=digest,
        content_type=facts.content_type,
        size_bytes=len(data),
        filename=Path(filename).name[:200],
        uploaded_by=actor.username,
        taken_at=facts.taken_at,
        latitude=facts.latitude,
        longitude=facts.longitude,
        distance_m=distance,
        flags="; ".join(flags),
    )
    session.add(evidence)
    session.flush()
    record_event(
        session,
        incident,
        actor,
        "evidence",
        note=evidence.filename,
        evidence_sha256=digest,
        data={"flags": flags, "distance_m": distance},
    )
    return evidence


def evidence_of(session: Session, incident: Incident) -> list[Evidence]:
    """An incident's photos, oldest first."""
    return list(session.scalars(select(Evidence).where(Evidence.incident_id == incident.id).order_by(Evidence.id)))


def get_evidence(session: Session, incident: Incident, sha256: str) -> Evidence:
    """One photo of the incident by hash, or :class:`NotFoundError`."""
    row = session.scalar(select(Evidence).where(Evidence.incident_id == incident.id, Evidence.sha256 == sha256))
    if row is None:
        raise NotFoundError(f"no evidence {sha256[:12]}… for incident {incident.id}")
    return row


def require_evidence(session: Session, incident: Incident, sha256: str | None) -> None:
    """A transition that cites evidence must cite a photo uploaded for this incident."""
    if sha256 is not None:
        try:
            get_evidence(session, incident, sha256)
        except NotFoundError:
            raise InputError(
                f"evidence {sha256[:12]}… was not uploaded for incident {incident.id}", field="evidence_sha256"
            ) from None
