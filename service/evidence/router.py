"""HTTP API for evidence photos (scoped like the incident they belong to)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from service.deps import Actor, Reader, SessionDep, SettingsDep
from service.errors import NotFoundError
from service.evidence import service
from service.evidence.tables import Evidence
from service.incidents import service as incidents
from service.incidents.router import IncidentId, read_limited

router = APIRouter(prefix="/api/v1/incidents", tags=["evidence"])
Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


class FlagNote(BaseModel):
    """One of a photo's flags as a stable ``code`` (:class:`service.evidence.service.PhotoFlag`) with the ``params``
    it is made of, for a client to word in its reader's language, and ``text``, the same in English."""

    code: str
    params: dict[str, str | int | float]
    text: str


class EvidenceRead(BaseModel):
    """A stored photo and what its EXIF says. ``flags`` is ``flag_notes`` in English, joined with "; " (kept for
    older clients)."""

    model_config = ConfigDict(from_attributes=True)

    sha256: str
    content_type: str
    size_bytes: int
    filename: str
    uploaded_by: str
    uploaded_at: datetime
    taken_at: datetime | None
    latitude: float | None
    longitude: float | None
    distance_m: float | None
    flags: str
    flag_notes: list[FlagNote] = []

    @classmethod
    def of(cls, row: Evidence) -> EvidenceRead:
        """Build from a stored photo."""
        read = cls.model_validate(row)
        read.flag_notes = [FlagNote(**note) for note in service.flag_notes(row.flags, row.distance_m)]
        return read


@router.post("/{incident_id}/evidence", status_code=201)
async def upload_evidence(
    incident_id: IncidentId,
    principal: Actor,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="A photo (JPEG, PNG, WebP, HEIF) taken on site")],
) -> EvidenceRead:
    """Attach a photo; its sha256 can then be cited by a transition (``evidence_sha256``)."""
    incident = incidents.get_incident(session, incident_id, principal)
    data = await read_limited(file, settings.evidence.max_upload_mb)
    try:
        row = service.store_evidence(
            session, incident, data, filename=file.filename or "photo", actor=principal, settings=settings
        )
        session.commit()
    except IntegrityError as exc:
        # The same photo landed from another request meanwhile (a phone retrying an upload still in flight): an
        # upload is idempotent per incident and content, so the answer is the stored photo, as for any re-upload
        # (it was a 500). Anything else that breaks the insert is not this, and is raised.
        session.rollback()
        try:
            row = service.get_evidence(session, incident, hashlib.sha256(data).hexdigest())
        except NotFoundError:
            raise exc from None
    return EvidenceRead.of(row)


@router.get("/{incident_id}/evidence")
def list_evidence(incident_id: IncidentId, principal: Reader, session: SessionDep) -> list[EvidenceRead]:
    """The incident's photos."""
    incident = incidents.get_incident(session, incident_id, principal)
    return [EvidenceRead.of(e) for e in service.evidence_of(session, incident)]


@router.get("/{incident_id}/evidence/{sha256}", response_class=FileResponse)
def get_evidence_file(
    incident_id: IncidentId, sha256: str, principal: Reader, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """The photo itself."""
    incident = incidents.get_incident(session, incident_id, principal)
    row = service.get_evidence(session, incident, sha256.lower())
    path = service.path_of(settings, row.sha256)
    if not path.is_file():
        raise NotFoundError(f"the file of evidence {row.sha256[:12]}… is missing from the evidence folder")
    # Downloaded under its sha256 and real type, whatever name it was uploaded with (service.download_name).
    return FileResponse(path, media_type=row.content_type, filename=service.download_name(row))
