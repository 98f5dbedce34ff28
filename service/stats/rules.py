"""Scoring rules as versioned TOML files, and picking the version in force for a period.

Local 考核办法 differ county by county and change from season to season, so the weights are data: every file in the
rules folder (``*.toml``) is one version with ``version``, ``effective_from`` and optionally ``effective_to`` (both
inclusive local dates). A version without ``effective_to`` stays in force until the next version's
``effective_from``. Versions must not overlap; a folder that breaks this is refused as a whole, naming the files.

A period is scored with the version in force on its **first day**, so a past month keeps the score it had when it
was assessed however the rules change later. A period that spans a change of rules (a year, say) is still scored
with one version, and the selection lists the other versions in force during it as a warning.

A period whose first day no version covers (a year that starts before the first rules file took effect, an ISO week
that starts in the old year) is scored with the **first version that comes into force during it**, and a
``rules_changed`` warning names the days no version covered: the fires of those days are still scored (a fire
does not stop counting because the rules were published on the 5th), by the version that was in force for the rest
of the period. The same warning names the days after the last version's ``effective_to`` or between two versions,
which were scored silently before. Only a period that **no** version covers on any day is refused
(:class:`NotFoundError`, HTTP 404): it has no rules at all to be scored by.

``rules/scoring-example-v1.toml`` documents every key.

Keys added later are optional, so that a rules file written before them still loads and still scores as it was
published:

* ``[fire_points] patrol`` — the deduction for a violation a township patrol reported (source ``patrol``, a fire
  another township's patrol found: the burning township's own report is self-found and costs none). Without it a
  patrol point weighs ``drone``: the example rules' drone weight is the township patrol point (−3) of the
  published rules, and until patrol reports existed the drone weight was the only patrol-like weight a file set.
  A file that wants patrol finds weighed otherwise sets ``patrol`` (a new version, so past periods keep their
  scores).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.errors import InputError, NotFoundError
from service.stats.periods import Period
from service.stats.records import Source
from service.stats.wording import Note, NoteCode


class FirePointRules(BaseModel):
    """Points deducted per violation, by the heaviest source that saw it, and the multipliers."""

    model_config = ConfigDict(extra="forbid")

    satellite: float = Field(ge=0)
    camera: float = Field(ge=0)
    drone: float = Field(ge=0)
    # Optional (see the module docstring): None weighs a patrol point as a drone point.
    patrol: float | None = Field(None, ge=0)
    large_area_m2: float | None = Field(None, gt=0)
    large_area_factor: float = Field(1.0, ge=1)
    reopened_factor: float = Field(1.0, ge=1)
    # A violation flagged repeat_at_site (fire again at the place of an earlier real fire, 同一地点再次起火) has its
    # deduction multiplied by this ("quantitative accountability for areas where burning recurs"); 1.0: no effect.
    repeat_site_factor: float = Field(1.0, ge=1)

    @property
    def patrol_weight(self) -> float:
        """The deduction for a patrol point: ``patrol`` when the file sets it, else ``drone``."""
        return self.drone if self.patrol is None else self.patrol

    def weight(self, source: Source) -> float:
        """The deduction for one violation seen by ``source``."""
        return {
            Source.SATELLITE: self.satellite,
            Source.CAMERA: self.camera,
            Source.DRONE: self.drone,
            Source.PATROL: self.patrol_weight,
        }[source]


class ResponseRules(BaseModel):
    """Points deducted per missed response deadline.

    ``feedback_within_h``: the hours from notification within which the township must have handled the fire and
    fed it back (反馈), or answered that it was a false alarm (荆门: 24 小时接报处置); each fire point that misses it
    costs ``late_feedback``. Without it a fire the team never fed back cost nothing at all (an open fire point is
    not a violation), so leaving a fire open was cheaper than reporting it.
    """

    model_config = ConfigDict(extra="forbid")

    late_acknowledge: float = Field(0.0, ge=0)
    late_on_site: float = Field(0.0, ge=0)
    feedback_within_h: float | None = Field(None, gt=0, le=24 * 366)
    late_feedback: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _feedback_deadline(self) -> ResponseRules:
        if self.late_feedback and self.feedback_within_h is None:
            raise ValueError("late_feedback needs feedback_within_h (the hours from notification to feedback)")
        return self


class ReportingRules(BaseModel):
    """Unreported and concealed fires, and the credit for fires a township found itself."""

    model_config = ConfigDict(extra="forbid")

    unreported: float = Field(0.0, ge=0)
    concealed: float = Field(0.0, ge=0)
    self_found_sources: list[Source] = Field(default_factory=list)
    self_found_credit: float = Field(0.0, ge=0)

    @field_validator("self_found_sources")
    @classmethod
    def _only_the_townships_own_sources(cls, value: list[Source]) -> list[Source]:
        if Source.SATELLITE in value:
            raise ValueError("a satellite is never the township's own finding")
        # A patrol report is the township's own only when its own patrol made it, which its reporter_unit says
        # (credited already, service.stats.scoring.is_self_found); listing the source would credit a neighbouring
        # township's or an admin's report as the township's own.
        if Source.PATROL in value:
            raise ValueError(
                "a patrol report is the township's own only when its own patrol made it, and is credited so already "
                "(its reporter_unit); listing patrol would credit another township's or an admin's report"
            )
        return value


class DensityRules(BaseModel):
    """Points deducted per violation per 1,000 ha of cropland."""

    model_config = ConfigDict(extra="forbid")

    points_per_fire_per_1000ha: float = Field(0.0, ge=0)


class Grade(BaseModel):
    """A score band: the best grade whose ``min_score`` the score reaches."""

    model_config = ConfigDict(extra="forbid")

    min_score: float
    name: str = Field(min_length=1)


class Sanction(BaseModel):
    """A step of the sanction ladder: it applies from ``min_violations`` violations, or below ``below_score``.

    ``min_violations`` counts the violations charged to the unit: a fire it found itself (自查自报, no deduction and
    a credit) is not one (see "Sanctions" in :mod:`service.stats.scoring`). Steps are listed mildest first; the
    last step that applies is the unit's sanction.
    """

    model_config = ConfigDict(extra="forbid")

    min_violations: int | None = Field(None, ge=1)
    below_score: float | None = None
    name: str = Field(min_length=1)

    @model_validator(mode="after")
    def _has_condition(self) -> Sanction:
        if self.min_violations is None and self.below_score is None:
            raise ValueError("a sanction needs min_violations, below_score or both")
        return self

    def applies(self, violations: int, score: float) -> bool:
        """Whether this step is reached with ``violations`` charged violations and ``score``."""
        by_count = self.min_violations is not None and violations >= self.min_violations
        by_score = self.below_score is not None and score < self.below_score
        return by_count or by_score


class ScoringRules(BaseModel):
    """One version of the scoring rules (see ``rules/scoring-example-v1.toml``)."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=100)
    title: str = ""
    effective_from: date
    effective_to: date | None = None
    unit_level: Literal["township", "county"] = "township"
    base: float = 100.0
    floor: float | None = 0.0
    max_credit: float | None = Field(None, ge=0)
    fire_points: FirePointRules
    responses: ResponseRules = Field(default_factory=ResponseRules)
    reporting: ReportingRules = Field(default_factory=ReportingRules)
    density: DensityRules = Field(default_factory=DensityRules)
    grades: list[Grade] = Field(default_factory=list)
    sanctions: list[Sanction] = Field(default_factory=list)

    @model_validator(mode="after")
    def _dates(self) -> ScoringRules:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self

    def grade(self, score: float) -> str | None:
        """The grade of a score (None when no band applies)."""
        bands = sorted(self.grades, key=lambda g: g.min_score, reverse=True)
        return next((g.name for g in bands if score >= g.min_score), None)

    def sanction(self, violations: int, score: float) -> str | None:
        """The heaviest (last listed) sanction that applies to ``violations`` charged violations (self-found ones
        not counted) and ``score``; None when none does."""
        return next((s.name for s in reversed(self.sanctions) if s.applies(violations, score)), None)


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """A loaded rules file: its rules, where it came from, and the last day it is in force (None: open)."""

    rules: ScoringRules
    path: Path
    last_day: date | None

    def in_force(self, day: date) -> bool:
        """Whether the version applies on ``day``."""
        return self.rules.effective_from <= day and (self.last_day is None or day <= self.last_day)


DaySpan = tuple[date, date]
"""First and last day (inclusive) of a run of days."""


def spans_text(spans: tuple[DaySpan, ...]) -> str:
    """Runs of days as people write them: ``2026-01-01…2026-01-04, 2026-03-01`` (one day: the day alone)."""
    return ", ".join(str(first) if first == last else f"{first}…{last}" for first, last in spans)


@dataclass(frozen=True, slots=True)
class Selection:
    """The version that scores a period, any other version in force during it, and the days of the period no
    version covered (``uncovered``: empty when rules were in force on every day)."""

    version: RuleVersion
    also_in_force: tuple[RuleVersion, ...]
    uncovered: tuple[DaySpan, ...] = ()

    @property
    def covers_first_day(self) -> bool:
        """Whether the chosen version is in force on the period's first day (not when the period starts in days no
        version covered, and is scored with the first version that came into force during it)."""
        return not any(last < self.version.rules.effective_from for _, last in self.uncovered)

    @property
    def notes(self) -> list[Note]:
        """Warnings about the selection: the days no version covered, then each other version that took effect
        during the period (all ``rules_changed``; the uncovered days are its ``uncovered`` parameter)."""
        chosen = self.version
        why = "in force on its first day" if self.covers_first_day else "the first version in force during it"
        notes = []
        if self.uncovered:
            days = sum((last - first).days + 1 for first, last in self.uncovered)
            notes.append(
                Note(
                    NoteCode.RULES_CHANGED,
                    f"no scoring rules were in force on {spans_text(self.uncovered)} ({days} "
                    f"day{'' if days == 1 else 's'} of the period); the period is scored with {chosen.rules.version} "
                    f"({chosen.path.name}, in force from {chosen.rules.effective_from}), {why}",
                    {
                        "version": chosen.rules.version,
                        "file": chosen.path.name,
                        "effective_from": chosen.rules.effective_from.isoformat(),
                        "scored_with": chosen.rules.version,
                        "uncovered": spans_text(self.uncovered),
                        "uncovered_days": days,
                        "first_day": int(self.covers_first_day),
                    },
                )
            )
        notes += [
            Note(
                NoteCode.RULES_CHANGED,
                f"rules {other.rules.version} ({other.path.name}) took effect during the period on "
                f"{other.rules.effective_from}; the period is scored with {chosen.rules.version}, {why}",
                {
                    "version": other.rules.version,
                    "file": other.path.name,
                    "effective_from": other.rules.effective_from.isoformat(),
                    "scored_with": chosen.rules.version,
                    "first_day": int(self.covers_first_day),
                },
            )
            for other in self.also_in_force
        ]
        return notes

    @property
    def warnings(self) -> list[str]:
        """:attr:`notes` in English."""
        return [note.text for note in self.notes]


def read_rules(path: Path) -> ScoringRules:
    """Parse and validate one rules file; :class:`InputError` names the file and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the rules file: {exc}", source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", source=str(path)) from None
    try:
        return ScoringRules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors(include_input=False)
        )
        raise InputError(problems, source=str(path)) from None


@dataclass(frozen=True, slots=True)
class RuleBook:
    """Every version in a rules folder, oldest first, checked not to overlap."""

    versions: tuple[RuleVersion, ...]

    @classmethod
    def load(cls, folder: Path) -> RuleBook:
        """Read every ``*.toml`` in ``folder``."""
        if not folder.is_dir():
            raise NotFoundError(f"no scoring rules folder at {folder}")
        loaded = sorted(
            ((read_rules(path), path) for path in sorted(folder.glob("*.toml"))),
            key=lambda item: item[0].effective_from,
        )
        if not loaded:
            raise NotFoundError(f"no scoring rules (*.toml) in {folder}")
        versions: list[RuleVersion] = []
        seen: dict[str, Path] = {}
        for i, (rules, path) in enumerate(loaded):
            if rules.version in seen:
                raise InputError(f"version {rules.version!r} is also in {seen[rules.version].name}", source=str(path))
            seen[rules.version] = path
            following = loaded[i + 1] if i + 1 < len(loaded) else None
            last_day = rules.effective_to
            if following is not None:
                next_rules, next_path = following
                if next_rules.effective_from == rules.effective_from:
                    # Both in force from the same day: without this, an open version would be given a last day
                    # before its first, never be in force, and the file name would decide which rules score.
                    raise InputError(
                        f"version {rules.version} overlaps version {next_rules.version} in {next_path.name}: both "
                        f"take effect on {rules.effective_from}",
                        source=str(path),
                    )
                if last_day is None:
                    last_day = next_rules.effective_from - timedelta(days=1)
                if last_day >= next_rules.effective_from:
                    raise InputError(
                        f"version {rules.version} (in force {rules.effective_from}…{last_day}) overlaps version "
                        f"{next_rules.version} in {next_path.name} (from {next_rules.effective_from})",
                        source=str(path),
                    )
            versions.append(RuleVersion(rules, path, last_day))
        return cls(tuple(versions))

    def in_force(self, day: date) -> RuleVersion:
        """The version in force on ``day``; :class:`NotFoundError` when none is."""
        found = next((v for v in self.versions if v.in_force(day)), None)
        if found is None:
            spans = ", ".join(f"{v.rules.version}: {v.rules.effective_from}…{v.last_day or ''}" for v in self.versions)
            raise NotFoundError(f"no scoring rules in force on {day} (versions: {spans})")
        return found

    def select(self, period: Period) -> Selection:
        """The version for ``period`` and the others in force during it, with the days no version covered.

        The version is the one in force on the period's first day or, when no version is, the first that comes
        into force during the period (see the module docstring); :class:`NotFoundError` when no version is in
        force on any day of the period.
        """
        during = [
            v
            for v in self.versions
            if v.rules.effective_from <= period.last_day and (v.last_day is None or v.last_day >= period.first_day)
        ]
        if not during:
            days = spans_text(((period.first_day, period.last_day),))
            spans = ", ".join(f"{v.rules.version}: {v.rules.effective_from}…{v.last_day or ''}" for v in self.versions)
            raise NotFoundError(f"no scoring rules in force on {days} (versions: {spans})")
        chosen, *others = during  # oldest first: the one in force on the first day, else the first to start
        return Selection(chosen, tuple(others), self._uncovered(period, during))

    @staticmethod
    def _uncovered(period: Period, during: list[RuleVersion]) -> tuple[DaySpan, ...]:
        """The runs of days of ``period`` that none of ``during`` (the versions in force in it, oldest first)
        covers: before the first, between two, after the last one's ``effective_to``."""
        spans: list[DaySpan] = []
        day = period.first_day  # the first day not yet known to be covered
        for v in during:
            if v.rules.effective_from > day:
                spans.append((day, v.rules.effective_from - timedelta(days=1)))
            if v.last_day is None or v.last_day >= period.last_day:
                return tuple(spans)
            day = v.last_day + timedelta(days=1)  # below period.last_day, so no date overflow
        spans.append((day, period.last_day))
        return tuple(spans)

    def by_version(self, version: str) -> RuleVersion:
        """A version by its name (to re-score a period under other rules on purpose)."""
        found = next((v for v in self.versions if v.rules.version == version), None)
        if found is None:
            raise NotFoundError(
                f"no scoring rules version {version!r}; have " + ", ".join(v.rules.version for v in self.versions)
            )
        return found
