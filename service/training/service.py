"""Frames the field has judged, as YOLO folders to review and train on: ``strawfire training export-frames OUT``.

Why: every camera or drone sighting the service receives keeps its frame as evidence, and the township team's
report says what was there. Those frames are the deployment's own hard cases: look-alikes that sent a patrol out
for nothing, and fires the model found. Reviewed in a labelling tool and added to the training set
(``strawfire detector dataset build --extra-sets OUT/extra_sets.toml``), they teach the model the deployment's
own towers, fields and haze, which the public sets behind it do not show.

What an outcome says about a frame (:func:`judged_outcome`), by decision:

* ``seen``: a crew put a fire out (even if the incident was reopened, or called a false alarm, later: the frames
  before showed it), or the incident was verified or closed as handled, or it stands as a false alarm for a
  reason that means something *was* there (a chimney's heat, a permitted or non-straw fire, a duplicate of another
  incident, a fire outside the area). Its label file holds the detector's own boxes as a draft, to check: they are
  model output, not ground truth, and training on them unchecked would teach the model its own mistakes.
* ``nothing``: the incident stands as a false alarm with nothing found on site (``not_found``), not reopened since,
  and no fire was ever put out: the frame shows no fire or smoke. Its label file is empty: a negative.
* an incident not judged yet (suspected, notified, on the way, on site, reopened, escalated, with no fire put out)
  is left out.

All frames go into one YOLO folder (``images/`` + ``labels/``), so that the dataset's ``sequence`` split keeps each
position's frames on one side of the train/validation cut whatever their outcome; ``frames.csv`` says which
labels are drafts. Frames are copied, not linked (the export usually travels to another machine for labelling),
and named ``<camera>-<preset>_<UTC time>`` or ``<drone>_<UTC time>``. Boxes are normalised by the frame's size
after its EXIF orientation, as the detector saw it. OUT must be new or empty: an earlier export may hold labels
someone corrected.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from detector.dataset import CLASS_NAMES, Box
from detector.images import ImageLoadError, image_size
from service.incidents.fusion import ObservationKind
from service.incidents.states import FalseAlarmReason, IncidentState
from service.incidents.tables import Incident, Observation

__all__ = ["ExportSummary", "JudgedFrame", "Outcome", "export_frames", "judged_frames", "judged_outcome"]

Outcome = Literal["seen", "nothing"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("seen", "nothing")
#: The set name the written extra_sets.toml gives the folder (the images' source prefix in a built dataset).
SET_NAME: Final[str] = "field_frames"
DRAFT_NOTE: Final[str] = (
    "sighting frames judged in the field: labels of frames where something was seen are the detector's own boxes, "
    "checked before training (frames.csv: draft_label); frames with nothing found on site are negatives"
)
_HANDLED: Final = frozenset(
    {IncidentState.EXTINGUISHED, IncidentState.FEEDBACK, IncidentState.VERIFIED, IncidentState.CLOSED}
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # kept: what camera ids are made of; "cam.1" and "cam_1" stay apart


def judged_outcome(incident: Incident) -> Outcome | None:
    """What the field found for ``incident`` (module docstring), None while it is not judged. Pure."""
    if incident.extinguished_at is not None:  # a fire was put out: whatever came after, the frames showed it
        return "seen"
    standing_false_alarm = (
        incident.false_alarm_reason is not None
        and incident.false_alarm_at is not None
        and (incident.reopened_at is None or incident.reopened_at < incident.false_alarm_at)
        and incident.state in (IncidentState.FALSE_ALARM, IncidentState.CLOSED)
    )
    if standing_false_alarm:
        return "nothing" if incident.false_alarm_reason == FalseAlarmReason.NOT_FOUND else "seen"
    return "seen" if incident.state in _HANDLED else None


@dataclass(frozen=True)
class JudgedFrame:
    """One sighting's evidence frame with its incident's outcome and the detector's boxes (evidence pixels)."""

    observation_id: int
    incident_id: int
    kind: str  # camera or drone
    position: str  # "<camera>-<preset>" or the drone's id
    observed_at: datetime
    outcome: Outcome
    state: str
    false_alarm_reason: str | None
    evidence_sha256: str
    boxes: tuple[tuple[str, float, tuple[float, float, float, float]], ...]  # class, confidence, xyxy
    model: str  # "<name> <version>" of the detector that found it


def _boxes(details: dict[str, Any]) -> tuple[tuple[str, float, tuple[float, float, float, float]], ...]:
    out = []
    for box in details.get("boxes") or []:
        x1, y1, x2, y2 = (float(v) for v in box["xyxy"])
        out.append((str(box["class_name"]), float(box["confidence"]), (x1, y1, x2, y2)))
    return tuple(out)


def judged_frames(session: Session, *, since: datetime) -> list[JudgedFrame]:
    """The camera and drone sightings observed since ``since`` whose incident has been judged, oldest first."""
    rows = session.execute(
        select(Observation, Incident)
        .join(Incident, Incident.id == Observation.incident_id)
        .where(
            Observation.kind.in_((ObservationKind.CAMERA.value, ObservationKind.DRONE.value)),
            Observation.observed_at >= since,
        )
        .order_by(Observation.observed_at, Observation.id)
    ).all()
    frames: list[JudgedFrame] = []
    for observation, incident in rows:
        outcome = judged_outcome(incident)
        details = json.loads(observation.details)
        sha256 = details.get("evidence_sha256")
        if outcome is None or not sha256:
            continue  # not judged yet, or not a posted sighting (the demo scenario's carry no frame)
        if observation.kind == ObservationKind.CAMERA.value:
            position = f"{details.get('camera_id', '?')}-{details.get('preset_id', '?')}"
        else:
            position = str(details.get("drone_id", "drone"))
        model = details.get("model") or {}
        frames.append(
            JudgedFrame(
                observation_id=observation.id,
                incident_id=incident.id,
                kind=observation.kind,
                position=position,
                observed_at=observation.observed_at,
                outcome=outcome,
                state=incident.state,
                false_alarm_reason=incident.false_alarm_reason,
                evidence_sha256=sha256,
                boxes=_boxes(details),
                model=f"{model.get('name', '?')} {model.get('version', '?')}",
            )
        )
    return frames


@dataclass
class ExportSummary:
    """What :func:`export_frames` wrote."""

    written: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    problems: list[str] = field(default_factory=list)  # frames left out, and why
    extra_sets: Path | None = None  # the TOML file for ``dataset build --extra-sets``; None when nothing written


def _yolo_lines(boxes: Sequence[tuple[str, float, tuple[float, float, float, float]]], size: tuple[int, int]) -> str:
    """The boxes as YOLO label lines (project class ids), clipped to the frame; other classes left out."""
    width, height = size
    ids: dict[str, int] = {name: index for index, name in enumerate(CLASS_NAMES)}
    lines = []
    for class_name, _, (x1, y1, x2, y2) in boxes:
        if class_name not in ids:
            continue
        x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
        y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            continue
        box = Box(ids[class_name], (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
        lines.append(box.to_line() + "\n")  # the dataset's own label format
    return "".join(lines)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def export_frames(
    frames: Sequence[JudgedFrame],
    out: Path,
    *,
    evidence_path: Callable[[str], Path],
    licence: str,
    attribution: str,
    exported_on: date,
) -> ExportSummary:
    """Copy ``frames``' evidence (found by ``evidence_path(sha256)``) into the YOLO folder ``out`` (module
    docstring), with ``frames.csv`` (one row per frame: file, outcome, whether its label is a draft to check,
    incident, state, reason, time, position, model, boxes) and ``extra_sets.toml`` for ``dataset build
    --extra-sets``. A frame whose file is missing or unreadable is left out and reported."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder (an earlier export may hold corrected labels)")
    summary = ExportSummary()
    used: set[str] = set()
    rows: list[list[str]] = []
    copied: set[str] = set()
    for frame in frames:
        if frame.evidence_sha256 in copied:
            continue  # the same picture posted twice: once is enough
        source = evidence_path(frame.evidence_sha256)
        try:
            size = image_size(source, name=f"incident {frame.incident_id}, frame {frame.evidence_sha256[:12]}")
        except ImageLoadError as exc:
            summary.problems.append(str(exc))
            continue
        copied.add(frame.evidence_sha256)
        stem = f"{_UNSAFE.sub('-', frame.position).strip('-') or 'frame'}_{frame.observed_at:%Y%m%d%H%M%S}"
        name, copy = stem, 1
        while name in used:  # two frames in the same second: a copy marker the dataset's split ignores
            copy += 1
            name = f"{stem}--{copy}-"
        used.add(name)
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out / "images" / f"{name}.jpg")
        label = _yolo_lines(frame.boxes, size) if frame.outcome == "seen" else ""
        (out / "labels" / f"{name}.txt").write_text(label, encoding="utf-8")
        summary.written[frame.outcome] += 1
        rows.append(
            [
                f"images/{name}.jpg",
                frame.outcome,
                "yes" if frame.outcome == "seen" else "no",
                str(frame.incident_id),
                frame.state,
                frame.false_alarm_reason or "",
                frame.observed_at.isoformat(),
                frame.kind,
                frame.position,
                frame.model,
                str(len(frame.boxes)),
                frame.evidence_sha256,
            ]
        )
    if not rows:
        return summary
    with (out / "frames.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["file", "outcome", "draft_label", "incident", "state", "false_alarm_reason", "observed_at", "kind",
             "position", "model", "boxes", "evidence_sha256"]
        )  # fmt: skip
        writer.writerows(rows)
    summary.extra_sets = out / "extra_sets.toml"
    summary.extra_sets.write_text(
        f"# Written by `strawfire training export-frames` on {exported_on.isoformat()}: frames judged in the field.\n"
        "# Use with `strawfire detector dataset build --extra-sets <this file>` once the draft labels (frames.csv,\n"
        "# draft_label = yes: the detector's own boxes) are checked.\n\n"
        "[[set]]\n"
        f"name = {_toml_string(SET_NAME)}\n"
        'path = "."\n'
        'names = ["fire", "smoke"]\n'
        f"licence = {_toml_string(licence)}\n"
        f"attribution = {_toml_string(attribution)}\n"
        'split = "sequence"\n'
        f"note = {_toml_string(DRAFT_NOTE)}\n",
        encoding="utf-8",
    )
    return summary
