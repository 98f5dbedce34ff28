"""Storing evidence photos: content-addressed files, EXIF checks against the incident, an event per upload."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pyproj import Geod
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.config import Settings
from service.db import utcnow
from service.errors import InputError, NotFoundError, StorageError
from service.evidence.exif import ImageCheckError, inspect_photo
from service.evidence.tables import Evidence
from service.incidents.service import record_event
from service.incidents.tables import Incident

log = logging.getLogger(__name__)

_GEOD = Geod(ellps="WGS84")
# A photo taken more than this before the first detection, or after "now", is suspicious (the audit risk the
# field notes describe: old photos, or photos of another fire).
_EARLY = timedelta(days=1)
#: How far ahead of the server clock a phone's clock may run: a photo's EXIF time, or the time of a position sent
#: with a transition, later than this is not of "now".
CLOCK_SKEW = timedelta(minutes=10)
#: How old a position sent with a transition may be and still say where the actor was at the move: an older fix
#: (a cached one, or a draft sent long after) is ``stale`` and proves nothing either way.
POSITION_MAX_AGE = timedelta(minutes=30)


class PhotoFlag(StrEnum):
    """Why a photo is suspicious, as a stable code the dashboard words in its reader's language
    (``evidence.flag.<code>`` in i18n.js). A code's parameters are fixed (see :func:`flag_note`); a new kind of flag
    is a new code, which an older dashboard shows in the English ``text``."""

    NO_GPS = "no_gps"  # no parameters
    FAR_FROM_INCIDENT = "far_from_incident"  # distance_m (rounded to the metre)
    BEFORE_DETECTION = "before_detection"  # no parameters
    IN_FUTURE = "in_future"  # no parameters
    OTHER = "other"  # a stored sentence this version does not know: only its text


# The English sentences, as stored in ``Evidence.flags`` ("; "-joined) since the first version: the row keeps no
# codes (no schema change), so the codes are read back from these sentences, for old photos as for new ones.
_FLAG_TEXTS = {
    PhotoFlag.NO_GPS: "no GPS position in the photo",
    PhotoFlag.BEFORE_DETECTION: "taken more than a day before the fire was detected",
    PhotoFlag.IN_FUTURE: "taken in the future",
}
_FAR_TEXT = re.compile(r"^taken ([0-9,]+) m from the incident$")


def flag_note(code: PhotoFlag, *, distance_m: float | None = None) -> dict[str, Any]:
    """A photo flag as the API gives it: ``{"code", "params", "text"}``, ``text`` its English sentence."""
    if code is PhotoFlag.FAR_FROM_INCIDENT:
        metres = round(distance_m or 0.0)
        return {"code": code.value, "params": {"distance_m": metres}, "text": f"taken {metres:,} m from the incident"}
    return {"code": code.value, "params": {}, "text": _FLAG_TEXTS[code]}


def flag_notes(flags: str, distance_m: float | None) -> list[dict[str, Any]]:
    """The flags stored on a photo (``Evidence.flags``) as coded notes, in the same order; ``distance_m`` the
    photo's stored distance (the far flag's figure, read from its sentence when the distance is missing)."""
    notes: list[dict[str, Any]] = []
    for sentence in filter(None, (part.strip() for part in flags.split(";"))):
        known = next((code for code, text in _FLAG_TEXTS.items() if text == sentence), None)
        far = _FAR_TEXT.match(sentence)
        if known is not None:
            notes.append(flag_note(known))
        elif far is not None:
            distance = distance_m if distance_m is not None else float(far.group(1).replace(",", ""))
            notes.append(flag_note(PhotoFlag.FAR_FROM_INCIDENT, distance_m=distance))
        else:
            notes.append({"code": PhotoFlag.OTHER.value, "params": {}, "text": sentence})
    return notes


def distance_from_incident(incident: Incident, latitude: float, longitude: float) -> float:
    """Geodesic distance (m, WGS-84 ellipsoid) from the incident's location to a reported point."""
    _, _, distance = _GEOD.inv(incident.longitude, incident.latitude, longitude, latitude)
    return float(distance)


def position_record(
    incident: Incident,
    *,
    latitude: float,
    longitude: float,
    accuracy_m: float,
    at: datetime,
    settings: Settings,
) -> dict[str, Any]:
    """What a transition stores about the position the actor's phone reported (tamper evidence, 虚假到场).

    The distance is the server's, to the incident's location at the time of the move. ``far_from_fire`` when
    even the nearest point the phone's own accuracy allows is farther than ``evidence.max_distance_m`` (the
    photo rule's distance); ``imprecise`` when the accuracy alone is larger than that distance, so the position
    proves nothing either way. A client time later than the server clock plus :data:`CLOCK_SKEW` is refused
    (:class:`InputError` naming ``position.at``); an older one is kept with its age (a draft sent after
    signing in again, or a cached fix), and one older than :data:`POSITION_MAX_AGE` is ``stale``: where the phone
    was then is not where the team was at the move, so it is never ``far_from_fire`` (nor evidence of being near).
    """
    now = utcnow()
    if at > now + CLOCK_SKEW:
        raise InputError(
            f"the position's time {at.isoformat()} is more than {CLOCK_SKEW.seconds // 60} minutes ahead of the "
            "server clock",
            field="position.at",
        )
    limit = settings.evidence.max_distance_m
    distance = distance_from_incident(incident, latitude, longitude)
    stale = now - at > POSITION_MAX_AGE
    return {
        "latitude": latitude,
        "longitude": longitude,
        "accuracy_m": accuracy_m,
        "at": at.isoformat(),
        "age_s": round((now - at).total_seconds(), 1),
        "distance_m": round(distance, 1),
        "max_distance_m": limit,
        "far_from_fire": not stale and distance - accuracy_m > limit,
        "imprecise": accuracy_m > limit,
        "stale": stale,
    }


#: The file name extensions of each stored photo type; the first is the one a name is given.
EXTENSIONS = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "image/heif": (".heic", ".heif"),
    "image/avif": (".avif",),
}
# Characters a shown photo name keeps besides letters and digits (any script): nothing markup, a shell, a path or a
# spreadsheet formula gives a meaning to.
_NAME_PUNCTUATION = frozenset(" ._-()")
_NAME_CHARS = 120


def display_name(filename: str, content_type: str) -> str:
    """The name a photo is listed under (``Evidence.filename``, the API's ``filename``, the upload event's note):
    the phone's own name (``IMG_2034.jpg``) made harmless wherever it is shown, by decision.

    Its last path part only (``/`` and ``\\`` both separate), every character but letters, digits and `` ._-()``
    replaced by ``_``, starting with a letter or digit (no ``=`` formula in a spreadsheet, no hidden ``.`` file), at
    most 120 characters, and ending with an extension of the photo's real type (``.html`` typed on a JPEG becomes
    ``.jpg``): ``../../etc/<script>x</script>.html`` is listed as ``script.jpg``. The file itself is downloaded
    under :func:`download_name`."""
    base = re.split(r"[/\\]", filename)[-1]
    stem, dot, typed = base.rpartition(".")
    if not dot:
        stem, typed = base, ""
    extensions = EXTENSIONS.get(content_type, (".bin",))
    # As the phone wrote it when it is one of the type's (IMG_1.JPG stays); a known extension is plain ASCII.
    extension = f".{typed}" if f".{typed.lower()}" in extensions else extensions[0]
    # isalnum: letters and digits of any script (Unicode categories L* and N*), nothing else
    cleaned = "".join(ch if ch.isalnum() or ch in _NAME_PUNCTUATION else "_" for ch in stem)
    return (cleaned.lstrip(" ._-()")[: _NAME_CHARS - len(extension)].rstrip(" ._-(") or "photo") + extension


def download_name(row: Evidence) -> str:
    """The name a photo is downloaded under (``Content-Disposition``): its sha256 and its real type's extension,
    never what was typed at upload (a name like ``x.html`` saved a photo as a page the browser would open)."""
    return row.sha256 + EXTENSIONS.get(row.content_type, (".bin",))[0]


def evidence_dir(settings: Settings) -> Path:
    """The folder evidence files live in."""
    return settings.evidence.directory or settings.data_dir / "evidence"


def path_of(settings: Settings, sha256: str) -> Path:
    """Where a file with this hash is stored (two-level fan-out keeps folders small)."""
    return evidence_dir(settings) / sha256[:2] / sha256


def _write_file(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and a rename: a crash never leaves a half file under the
    final name. A disk that is full or mounted read-only is a :class:`StorageError` (HTTP 507: the request was fine,
    nothing is stored) with the folder in the log, not in the answer: a traceback and a 500 told the team nothing."""
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        log.error("cannot store evidence in %s: %s", target.parent, exc.strerror or exc)
        raise StorageError(
            "the service cannot store photos now (its evidence folder is full or not writable): nothing was stored; "
            "tell the administrator, then send the photo again"
        ) from None


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
        _write_file(target, data)
    notes: list[dict[str, Any]] = []
    distance = None
    if facts.latitude is None or facts.longitude is None:
        if not from_device:
            notes.append(flag_note(PhotoFlag.NO_GPS))
    else:
        distance = distance_from_incident(incident, facts.latitude, facts.longitude)
        if distance > settings.evidence.max_distance_m:
            notes.append(flag_note(PhotoFlag.FAR_FROM_INCIDENT, distance_m=distance))
    if facts.taken_at is not None:
        if facts.taken_at < incident.first_observed_at - _EARLY:
            notes.append(flag_note(PhotoFlag.BEFORE_DETECTION))
        if facts.taken_at > utcnow() + CLOCK_SKEW:  # a phone's clock may run a little fast; more is not a photo of now
            notes.append(flag_note(PhotoFlag.IN_FUTURE))
    flags = [note["text"] for note in notes]
    evidence = Evidence(
        incident_id=incident.id,
        sha256=digest,
        content_type=facts.content_type,
        size_bytes=len(data),
        filename=display_name(filename, facts.content_type),
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
        # flag_notes: the flags as codes with their figures (the English `flags` kept for older clients).
        data={"flags": flags, "flag_notes": notes, "distance_m": distance},
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
