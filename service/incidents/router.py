"""HTTP API of incidents and observations."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUploadFile

from service import flows
from service.alerts.escalation import moved_at
from service.auth.service import Principal
from service.config import Settings
from service.db import utcnow
from service.deps import (
    Actor,
    ObservationPoster,
    Reader,
    RegionIndexesDep,
    SessionDep,
    SettingsDep,
    Supervisor,
    require,
)
from service.errors import InputError
from service.evidence.service import position_record, require_evidence
from service.incidents import service
from service.incidents.freshness import OLD_ROWS_AFTER, old_new_rows, old_rows_warning
from service.incidents.patrol_reports import PatrolReportIn, report_fire
from service.incidents.schemas import (
    EventRead,
    IncidentDetail,
    IncidentRead,
    IngestOut,
    OldRowsOut,
    ReassignIn,
    RejectedRowOut,
    TransitionIn,
)
from service.incidents.states import IncidentState, Role, allowed_targets
from service.regions.service import RegionIndexCache

if TYPE_CHECKING:
    from satellite.hotspot import Hotspot

router = APIRouter(prefix="/api/v1", tags=["incidents"])
# Database ids are 64-bit; a larger number is a client error, not a crash in the driver.
IncidentId = Annotated[int, Path(ge=1, le=2**62)]
_CHUNK = 1 << 20


async def read_limited(upload: UploadFile, limit_mb: float) -> bytes:
    """The upload's bytes, refusing anything over ``limit_mb`` without reading it all into memory first."""
    limit = int(limit_mb * (1 << 20))
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise InputError(f"the upload is larger than the {limit_mb:g} MB limit", source=upload.filename)
        parts.append(chunk)
    return b"".join(parts)


#: Field names quoted in a refusal are cut to this many characters (a client may send anything as a name).
_NAME_CHARS = 80


def _misplaced_files(form: FormData) -> str | None:
    """What is wrong with the files of a satellite upload's form, or None when it holds one file under ``file``
    (or none: FastAPI's own 422 says that ``file`` is missing)."""
    counts: dict[str, int] = {}
    for key, value in form.multi_items():
        if isinstance(value, StarletteUploadFile):  # FastAPI's UploadFile is a subclass; text fields are let be
            counts[key] = counts.get(key, 0) + 1
    if all(key == "file" and count == 1 for key, count in counts.items()):
        return None
    named = [f"{count} file{'s' if count > 1 else ''} under {key[:_NAME_CHARS]!r}" for key, count in counts.items()]
    # A form may hold up to 1,000 files: the first few fields are enough to see what the client did.
    held = ", ".join(named[:5]) + (f" and {len(named) - 5} more fields" if len(named) > 5 else "")
    return f"send one FIRMS CSV per request, under 'file': this request has {held}; nothing was ingested"


#: What the upload's old-rows warning says to do instead (``firms ingest`` names the file in its own hint).
_HISTORY_HINT = (
    "For history only (fixed heat sources; no incidents, no alerts) import such files with `strawfire firms history`."
)


@router.post("/observations/satellite")
async def post_satellite(
    principal: ObservationPoster,
    session: SessionDep,
    settings: SettingsDep,
    indexes: RegionIndexesDep,
    request: Request,
    file: Annotated[UploadFile, File(description="One FIRMS CSV (MODIS or VIIRS, any published layout)")],
) -> IngestOut:
    """Ingest one FIRMS CSV: bad rows are skipped and reported, the rest lands in one transaction.

    **One file per request.** A request with several files under `file`, or with a file under any other field, is
    refused with a 422 naming each field and how many files it held, and nothing is ingested (the form parser kept
    the last `file` only and dropped the others without a word). Several files are not taken, by decision: each
    file is one transaction with one answer, this one, which a client re-sends alone when it failed; the request
    body may be one file's limit (`incidents.max_upload_mb`) plus 1 MB of framing, so several files would carry no
    more in one request anyway; and `strawfire firms ingest FILE...` takes many files at once. Send one request per
    file.

    **Old rows.** Ingested rows are new fires whatever their age: they open incidents and alert their townships
    now. New rows inside the units observed more than 2 days before the upload (an old download, a sample file,
    history: `strawfire firms history` imports archives without incidents or alerts) are ingested all the same, as
    a client cannot be asked first the way `strawfire firms ingest` asks on a terminal, and the answer says so:
    `old_rows` (their count and the oldest acquisition) and a sentence in `warnings`. Rows stored before (a file
    sent again) and rows outside the units are not counted; `old_rows` is null when none is left.
    """
    from satellite.errors import SatelliteError
    from satellite.firms import FirmsReadResult, read_firms_csv

    # FastAPI read the whole form before this route ran; the same request gives it back without reading it again.
    misplaced = _misplaced_files(await request.form())
    if misplaced is not None:
        raise InputError(misplaced)
    name = file.filename or "upload.csv"
    data = await read_limited(file, settings.incidents.max_upload_mb)

    def ingest() -> tuple[FirmsReadResult, service.IngestSummary, list[Hotspot]]:
        # Rows that cannot reach the units are counted as they are read, never built into records: a global daily
        # file is ~99 % outside any county (a 20 MB VIIRS day took 1.8 GB and 3.5 min when they were kept).
        box = flows.coverage_box(session, settings, indexes)
        try:
            parsed = read_firms_csv(data, source_name=name, within=box)
        except SatelliteError as exc:
            raise InputError(str(exc)) from exc
        # Before the ingest, which stores the rows: afterwards every one of them is "stored before".
        old = old_new_rows(
            session, parsed.hotspots, indexes, utcnow(), in_units_only=settings.screening.coverage_from_regions
        )
        summary = flows.ingest_hotspots(
            session,
            parsed.hotspots,
            indexes=indexes,
            settings=settings,
            actor=principal,
            outside_coverage=parsed.outside,
        )
        session.commit()
        return parsed, summary, old

    # Parsing and screening a daily global file takes seconds (and waiting for SQLite's write lock up to 10 s): in a
    # worker thread, or every other request (health checks, the dashboard, sightings) waits for the whole file.
    parsed, summary, old = await run_in_threadpool(ingest)
    old_rows = (
        OldRowsOut(
            count=len(old),
            oldest=min(h.acq_utc for h in old),
            older_than_days=OLD_ROWS_AFTER / timedelta(days=1),
        )
        if old
        else None
    )
    return IngestOut(
        source=name,
        rows=len(parsed.hotspots) + len(parsed.rejected) + parsed.outside,
        new=summary.new,
        duplicates=summary.duplicates,
        rejected=[RejectedRowOut(line=r.line, field=r.field, reason=r.reason) for r in parsed.rejected],
        new_incidents=summary.new_incidents,
        updated_incidents=summary.updated_incidents,
        merged_incidents=summary.merged_incidents,
        held=summary.held,
        fire_points=summary.fire_points,
        repeats=summary.repeats,
        repeat_at_site=summary.repeat_at_site,
        old_rows=old_rows,
        warnings=[f"{old_rows_warning(old)} {_HISTORY_HINT}"] if old else [],
    )


class SightingOut(BaseModel):
    """What a posted sighting did."""

    duplicate: bool
    incident_id: int | None
    triangulated: bool


async def _post_sighting(
    kind: str,
    principal: Principal,
    session: Session,
    settings: Settings,
    indexes: RegionIndexCache,
    sighting: str,
    evidence: UploadFile,
) -> SightingOut:
    from video.errors import VideoError
    from video.sighting import check_evidence, parse_sighting

    jpeg = await read_limited(evidence, settings.evidence.max_upload_mb)
    try:
        record = parse_sighting(sighting)
        if record.kind != kind:
            raise InputError(f"a {record.kind} sighting was posted to the {kind} endpoint", field="kind")
        check_evidence(record, jpeg)
    except VideoError as exc:
        raise InputError(str(exc), source="sighting") from None
    # Off the event loop: fusion, evidence storage and triangulation are blocking work.
    result = await run_in_threadpool(
        flows.ingest_sighting, session, record, jpeg, indexes=indexes, settings=settings, actor=principal
    )
    session.commit()
    return SightingOut(duplicate=result.duplicate, incident_id=result.incident_id, triangulated=result.triangulated)


@router.post("/observations/camera")
async def post_camera_sighting(
    principal: ObservationPoster,
    session: SessionDep,
    settings: SettingsDep,
    indexes: RegionIndexesDep,
    sighting: Annotated[str, Form(description="JSON: a camera sighting (video.sighting.CameraSighting)")],
    evidence: Annotated[UploadFile, File(description="The JPEG frame the sighting describes")],
) -> SightingOut:
    """A tower camera's confirmed event: fused, kept as evidence, crossed with other towers' bearings."""
    return await _post_sighting("camera", principal, session, settings, indexes, sighting, evidence)


@router.post("/observations/drone")
async def post_drone_sighting(
    principal: ObservationPoster,
    session: SessionDep,
    settings: SettingsDep,
    indexes: RegionIndexesDep,
    sighting: Annotated[str, Form(description="JSON: a drone sighting (video.sighting.DroneSighting)")],
    evidence: Annotated[UploadFile, File(description="The drone image (unchanged)")],
) -> SightingOut:
    """A drone image's detection, located by ray projection from the drone's pose."""
    return await _post_sighting("drone", principal, session, settings, indexes, sighting, evidence)


# A township team reports what it found; an admin may post one too (never credited to a unit). Supervisors,
# evaluators and devices may not (service.incidents.patrol_reports).
PatrolReporter = Annotated[Principal, Depends(require(Role.PATROL, Role.ADMIN))]


class PatrolReportOut(BaseModel):
    """What a patrol's report did: its incident (with the unit it was assigned to by the reported position), whether
    it was a re-send of an earlier report, whether the reporter's team took it on (now ``on_site``), and whether a
    new-fire alert to its township was queued (another township's fire, or an admin's report)."""

    duplicate: bool
    incident_id: int | None
    state: IncidentState | None
    township_code: str | None
    township_name: str | None
    county_code: str | None
    county_name: str | None
    taken_on: bool
    alerted: bool


@router.post("/observations/patrol")
def post_patrol_report(
    body: PatrolReportIn,
    principal: PatrolReporter,
    session: SessionDep,
    settings: SettingsDep,
    indexes: RegionIndexesDep,
) -> PatrolReportOut:
    """A fire the township patrol found itself (巡查发现), reported from the phone at the fire: fused like any
    observation, credited to the reporter's unit (never to a unit named in the body), taken on by the team when the
    fire is its own unit's (acknowledged and on site at once, no alert to itself), alerted to the township it is in
    otherwise. Photos go to ``POST /api/v1/incidents/{incident_id}/evidence`` afterwards."""
    try:
        result = report_fire(session, body, principal, indexes=indexes, settings=settings)
        session.commit()
    except IntegrityError:
        # The same report landed from another request meanwhile (a phone resending a report still in flight): both
        # passed the stored-key check and this insert broke the unique (kind, source_key). Run again: the report is
        # stored now and is answered as a re-send with its incident (it was a 500). Anything else that broke an
        # insert breaks it again, and is raised.
        session.rollback()
        result = report_fire(session, body, principal, indexes=indexes, settings=settings)
        session.commit()
    incident = result.incident
    return PatrolReportOut(
        duplicate=result.duplicate,
        incident_id=incident.id if incident else None,
        state=IncidentState(incident.state) if incident else None,
        township_code=incident.township_code if incident else None,
        township_name=incident.township_name if incident else None,
        county_code=incident.county_code if incident else None,
        county_name=incident.county_name if incident else None,
        taken_on=result.taken_on,
        alerted=result.alerted,
    )


class DroneImageOut(BaseModel):
    """One uploaded drone image."""

    image: str
    sightings: int
    incidents: list[int]
    error: str | None


@router.post(
    "/drone/images",
    responses={
        503: {
            "description": "SQLite stayed locked by another writer: the per-image answers, those marked not stored to "
            "be sent again (Retry-After)",
            "model": list[DroneImageOut],
        }
    },
)
async def post_drone_images(
    principal: ObservationPoster,
    session: SessionDep,
    settings: SettingsDep,
    indexes: RegionIndexesDep,
    drone_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")],
    images: Annotated[list[UploadFile], File(description="DJI images of one flight (JPEG with XMP/EXIF)")],
) -> list[DroneImageOut]:
    """A flight's images: detected and located here, each box ingested as a drone sighting (max 50 per request)."""
    from service.drone_uploads import ingest_drone_images, shared_detector

    if len(images) > 50:
        raise InputError(f"{len(images)} images in one request; send at most 50", field="images")
    batch = [
        (upload.filename or "image.jpg", await read_limited(upload, settings.evidence.max_upload_mb))
        for upload in images
    ]
    # Detection takes seconds per image: in a worker thread, or every other request (camera sightings, the
    # dashboard) would wait for the whole flight.
    results = await run_in_threadpool(
        ingest_drone_images,
        session,
        batch,
        drone_id=drone_id,
        detector=shared_detector(settings.detector.second_opinion),
        indexes=indexes,
        settings=settings,
        actor=principal,
    )
    session.commit()
    answers = [
        DroneImageOut(image=r.image, sightings=r.sightings, incidents=r.incidents, error=r.error) for r in results
    ]
    if any(r.busy for r in results):
        # The images before the busy one are stored; a client that reads only the status must send the batch again
        # (stored images are recognised by content), one that reads the body resends the images marked not stored.
        return JSONResponse(  # type: ignore[return-value]
            [answer.model_dump() for answer in answers],
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "10"},
        )
    return answers


_CURSOR_PREFIX = "incidents:id<"
_CURSOR = re.compile(re.escape(_CURSOR_PREFIX) + r"([1-9][0-9]{0,18})")
_NEXT_HEADERS = {
    "X-Next-Cursor": {
        "description": "Present when the page is full: send it back as `cursor` (with the same filters) for the "
        "next page; absent on the last page.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page as an RFC 8288 link (`rel="next"`), when there may be one.',
        "schema": {"type": "string"},
    },
}


def encode_cursor(last_id: int) -> str:
    """The opaque cursor that goes on after the incident ``last_id`` (a client only sends it back)."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The incident id a cursor from :func:`encode_cursor` goes on after; anything else is an :class:`InputError`."""
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    match = _CURSOR.fullmatch(text)
    if match is None or not 1 <= int(match[1]) <= 2**62:
        raise InputError("not a cursor this endpoint gave out (send back X-Next-Cursor unchanged)", field="cursor")
    return int(match[1])


@router.get("/incidents", responses={200: {"headers": _NEXT_HEADERS}})
def list_incidents(
    principal: Reader,
    session: SessionDep,
    request: Request,
    response: Response,
    township: str | None = None,
    county: str | None = None,
    state: IncidentState | None = None,
    open_only: Annotated[
        bool, Query(alias="open", description="Only incidents the township still has to act on.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    # Bounded like the ids: no table holds more rows, and a larger number overflowed the drivers' 64-bit integer
    # (a 500 on SQLite and PostgreSQL alike).
    offset: Annotated[
        int, Query(ge=0, le=2**62, description="Rows to skip (kept for old clients; a walk by `cursor` is exact).")
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="The `X-Next-Cursor` of the previous page: the page after it."),
    ] = None,
) -> list[IncidentRead]:
    """Incidents in the caller's scope, newest first (by id: the order of creation).

    Reading every page: follow the cursor. A full page comes with an opaque ``X-Next-Cursor`` header (and a
    ``Link: <…>; rel="next"``); the same request with ``cursor=`` that value returns the page after it, and a page
    without the header is the last. The walk is keyset paging on the incident id, which is unique and never
    changes: every incident that existed when the walk started and still matches the filters is returned exactly
    once, whatever is created, observed again, moved or closed between the requests (the primary key orders it: no
    other index is needed). An incident created during the walk has a higher id than those read and comes on the
    next walk (on PostgreSQL, one whose id was drawn before the walk began but committed during it may come in this
    one, still once); one that leaves the filters before its page is read is not returned. ``offset`` still works,
    on the same order, for old clients; it is exact only on data that does not change: an incident created between
    two requests shifts the rest back by one (one comes twice), one that leaves the filters shifts them forward
    (one is skipped).

    Decided against: paging an order that changes (``last_observed_at``, the order before the cursor, moves with
    every new observation: an incident not yet read jumped ahead of the walk and was never returned, and a cursor
    on it would skip it the same way), and a snapshot kept on the server per client. The body stays the plain list
    it always was; the cursor travels in headers."""
    before_id = None
    if cursor is not None:
        if offset:
            raise InputError("send either cursor or offset, not both", field="offset")
        before_id = decode_cursor(cursor)
    rows = service.list_incidents(
        session,
        principal,
        township=township,
        county=county,
        state=state,
        open_only=open_only,
        limit=limit,
        offset=offset,
        before_id=before_id,
    )
    if len(rows) == limit:
        next_cursor = encode_cursor(rows[-1].id)
        query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "offset")]
        response.headers["X-Next-Cursor"] = next_cursor
        response.headers["Link"] = f'<{request.url.path}?{urlencode([*query, ("cursor", next_cursor)])}>; rel="next"'
    return IncidentRead.of_rows(session, rows)


@router.get("/incidents/{incident_id}")
def get_incident(incident_id: IncidentId, principal: Reader, session: SessionDep) -> IncidentDetail:
    """One incident with its observations and the transitions the caller may make."""
    incident = service.get_incident(session, incident_id, principal)
    allowed = allowed_targets(IncidentState(incident.state), principal.role)
    moved = moved_at(session, [incident.id]).get(incident.id)  # clock_from counts from a move
    return IncidentDetail.of(incident, service.observations_of(session, incident), allowed, moved)


@router.get("/incidents/{incident_id}/events")
def get_events(incident_id: IncidentId, principal: Reader, session: SessionDep) -> list[EventRead]:
    """The incident's append-only record."""
    incident = service.get_incident(session, incident_id, principal)
    return [EventRead.of(e, principal) for e in service.events_of(session, incident)]


@router.post("/incidents/{incident_id}/transitions")
def post_transition(
    incident_id: IncidentId, body: TransitionIn, principal: Actor, session: SessionDep, settings: SettingsDep
) -> IncidentRead:
    """Move the incident in its lifecycle (409 when the move is not allowed from its state or for the caller).

    A ``position`` from the actor's phone is stored in the event with the distance to the fire and the
    ``far_from_fire`` flag (tamper evidence for "on site")."""
    incident = service.get_incident(session, incident_id, principal)
    require_evidence(session, incident, body.evidence_sha256)
    position = None
    if body.position is not None:
        position = position_record(incident, **body.position.model_dump(), settings=settings)
    flows.transition_incident(
        session,
        incident,
        body.to,
        principal,
        note=body.note,
        reason=body.reason,
        feedback=body.feedback,
        evidence_sha256=body.evidence_sha256,
        expected_state=body.expected_state,
        position=position,
    )
    session.commit()
    return IncidentRead.of_rows(session, [incident])[0]


@router.post("/incidents/{incident_id}/assignment")
def post_assignment(
    incident_id: IncidentId,
    body: ReassignIn,
    principal: Supervisor,
    session: SessionDep,
) -> IncidentRead:
    """Reassign the incident to another township/county (supervisors and admins; audited).

    Naming the unit the incident is already in confirms an automatic assignment (near a boundary, or to the nearest
    unit): it becomes an assignment by hand, which later observations no longer move, recorded as a ``reassigned``
    event that is no move (the team's clocks go on). Naming it again once it is assigned there by hand changes
    nothing and is refused (409, nothing recorded): it used to append another ``reassigned`` event each time."""
    incident = service.get_incident(session, incident_id, principal)
    flows.reassign_incident(
        session, incident, principal, township_code=body.township_code, county_code=body.county_code, note=body.note
    )
    session.commit()
    return IncidentRead.of_rows(session, [incident])[0]
