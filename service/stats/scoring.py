"""Accountability scoring (考核) of units for a period under one version of the rules (pure).

For each unit of the scored level (townships by default) every fire point assigned to it is looked at::

    score = base
            − Σ violations not found by the unit itself   weight(heaviest source) × k_area × k_reopened × k_repeat
            − Σ missed deadlines                          late_acknowledge / late_on_site / late_feedback
            − Σ unreported violations                     unreported
            − Σ concealed violations                      concealed
            − density × points_per_fire_per_1000ha
            + Σ self-found violations                     self_found_credit   (capped at max_credit)
    then floored at ``floor``.

Definitions, with the data the record holds:

* **Violation** — a fire point whose outcome is a violation (:mod:`service.stats.lifecycle`). Open fire points and
  false alarms (permitted burns included) cost nothing but late responses.
* **Heaviest source** — a fire seen by a satellite and a camera is charged as a satellite point: the higher
  authority's list includes it whoever saw it first (the published rules weigh satellite points −20/−30 against
  −5 for a city camera). A fire only a patrol report saw — another township's patrol found it — is a ``patrol``
  point (the township patrol point, −3; ``fire_points.patrol``, falling back to ``drone``).
* **k_area** — ``large_area_factor`` when the feedback's ``burned_area_m2`` exceeds ``large_area_m2`` (荆门: doubled
  above 300 m²). **k_reopened** — ``reopened_factor`` when the handling failed verification (reopened after
  feedback), the record's nearest equivalent of "not stopped on site". **k_repeat** — ``repeat_site_factor``
  (default 1.0: none) when the violation is a fire again at the place of an earlier real fire
  (``repeat_at_site``, :mod:`service.incidents.repeat_site`): burning that recurs weighs more (Changchun 2022).
* **Repeats** — ``repeat_at_site`` counts the unit's fire points flagged so, whatever their outcome (an open or
  false-alarm one included), as the accountability count; only violations are multiplied.
* **Self-found** (自查自报) — the first observation the service received (not the earliest observed: a satellite
  pass published or back-filled after the township's report did not find the fire first; see
  :mod:`service.stats.queries`) is the unit's own: its source is one of ``reporting.self_found_sources`` (e.g. the
  township patrol's drones; the rules loader refuses ``satellite`` and ``patrol``, which would credit a
  neighbouring township's or an admin's report), or the observation's ``details.reporter_unit`` is the unit's code
  (the township's own patrol reports). Such a violation costs no source points and earns ``self_found_credit``
  (XX镇: "found by the village itself, put out, punished and reported: no deduction, +2").
* **Unreported** (漏报) — a violation whose first observation received is a satellite's: nobody on the ground had
  reported it before the satellite pass reached the service.
* **Concealed** (瞒报) — a violation the team had earlier declared a false alarm (reopened and then fed back).
* **Late** — each missed acknowledge and on-site deadline (:mod:`service.stats.response`), on any fire point; and,
  when the rules set ``responses.feedback_within_h``, each fire point not fed back (or declared a false alarm)
  within that many hours of notification (``late_feedback``; 荆门: 24 小时接报处置), still open ones included.
* **Edge fire points** — ``edge`` counts the unit's fire points assigned to it as the nearest unit (their location
  outside every unit, within the tolerance of this one: :attr:`~service.stats.records.FirePoint.edge`), whatever
  their outcome. Decided so: such a fire is the unit's like any other — it was assigned and alerted to the unit,
  whose team closes it ``out_of_area`` when it finds the fire beyond the boundary — so it is scored like any other;
  the count (and the mark in the reports' fire-point lists) is for review, so that an evaluator can check or
  contest the border cases. It changes no score.
* **Density** — violations per 1,000 ha of the unit's cropland; units imported without ``cropland_ha`` fall back to
  their total area, flagged ``density_basis = "area"``.
* **Open** — ``open`` counts the unit's fire points still undecided at ``as_of`` (no feedback or false alarm yet, or
  a false alarm reopened since: :class:`~service.stats.lifecycle.OutcomeKind`). They cost nothing but late
  responses now, and each may still cost the unit a fire point's deduction (and unreported, concealed, late
  feedback) when it is decided, so the same period scores differently later: the board's ``provisional`` warning
  (:mod:`service.stats.service`) says how many there are, in how many units.
* **Sanctions** — the ladder's ``min_violations`` counts the unit's *charged* violations: every violation except the
  self-found ones (``violations − self_found``, the sum of ``violations_by_source``); ``below_score`` reads the
  score. Decided so because a self-found fire is not charged to the unit: XX镇 2021 gives a fire "found by the village
  itself, put out, punished and reported" no deduction and +2, so it cannot also be the incident that earns the
  township a written warning or a city-wide criticism — a township that reports its own fire would then be punished
  for reporting it, the opposite of what the credit is for. The violation still counts in ``violations`` and the
  density (the fire burned), and in the ranking's tie-break.

Ranking: higher score first, then fewer violations, then lower density; equal keys share a rank.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from service.regions.types import RegionLevel
from service.stats.lifecycle import OutcomeKind, outcome, reopened_after_feedback, was_concealed
from service.stats.records import SOURCE_ORDER, FirePoint, Source, Unit
from service.stats.response import Compliance, DeadlinePolicy, feedback_compliance, response_of
from service.stats.rules import ScoringRules
from service.stats.wording import Note, NoteCode

DensityBasis = Literal["cropland", "area"]


@dataclass(frozen=True, slots=True)
class ScoreItem:
    """One line of a unit's score: which fire point (None for the unit's density), which rule, how many points, and
    the notes that explain the figure (a multiplier, the density's basis)."""

    incident_id: int | None
    rule: str
    points: float  # negative: deducted; positive: credited
    notes: tuple[Note, ...] = ()

    @property
    def note(self) -> str:
        """The notes in English, one sentence ("burned 500 m² > 300 m² ×2; failed verification ×2")."""
        return "; ".join(n.text for n in self.notes)


@dataclass(frozen=True, slots=True)
class UnitScore:
    """A unit's score for the period with the counts behind it and every item, for audit."""

    code: str
    name: str
    parent_code: str | None
    rank: int
    score: float
    grade: str | None
    sanction: str | None
    fire_points: int
    violations: int
    violations_by_source: Mapping[str, int]  # by the source each violation was charged as
    self_found: int
    unreported: int
    concealed: int
    late_acknowledge: int
    late_on_site: int
    density_per_1000ha: float | None
    density_basis: DensityBasis | None
    basis_ha: float | None
    deductions: float
    credits: float
    items: tuple[ScoreItem, ...]
    late_feedback: int = 0
    repeat_at_site: int = 0
    edge: int = 0  # fire points assigned as the nearest unit (for review; they score like any other)
    open: int = 0  # fire points still undecided at as_of: the score may still change (see the module docstring)


@dataclass(frozen=True, slots=True)
class ScoreBoard:
    """The ranked units of one level, and the fire points that could not be scored (no unit at this level)."""

    level: RegionLevel
    rules: ScoringRules
    units: list[UnitScore]
    unscored: int


def charged_source(point: FirePoint, rules: ScoringRules) -> Source:
    """The heaviest source that saw the fire (ties in the order of :data:`SOURCE_ORDER`: satellite, camera, drone,
    patrol)."""
    seen = [s for s in SOURCE_ORDER if s in point.sources] or [Source.CAMERA]
    return max(seen, key=lambda s: (rules.fire_points.weight(s), -SOURCE_ORDER.index(s)))


def is_self_found(point: FirePoint, unit_code: str, rules: ScoringRules) -> bool:
    """Whether the unit found the fire itself (see the module docstring)."""
    first = point.first_sighting
    if first is None or first.source is Source.SATELLITE:
        return False
    return first.source in rules.reporting.self_found_sources or first.reporter_unit == unit_code


def density_basis(unit: Unit) -> tuple[float | None, DensityBasis | None]:
    """Hectares density is measured against: cropland when imported, else the unit's area (flagged)."""
    if unit.cropland_ha is not None and unit.cropland_ha > 0:
        return unit.cropland_ha, "cropland"
    if unit.area_ha > 0:
        return unit.area_ha, "area"
    return None, None


def _score_unit(
    unit: Unit, points: Sequence[FirePoint], rules: ScoringRules, deadlines: DeadlinePolicy, as_of: datetime
) -> UnitScore:
    items: list[ScoreItem] = []
    by_source: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    fire_points = [p for p in points if outcome(p.transitions).kind is not OutcomeKind.DUPLICATE]
    weights = rules.fire_points
    within_h = rules.responses.feedback_within_h
    for point in fire_points:
        kind = outcome(point.transitions).kind
        if point.repeat_of is not None:
            counts["repeat_at_site"] += 1
        if kind is OutcomeKind.OPEN:
            counts["open"] += 1
        if point.edge:
            counts["edge"] += 1
        response = response_of(point, deadlines.for_county(point.county_code), as_of)
        if response is not None and response.acknowledge is Compliance.MISSED:
            counts["late_acknowledge"] += 1
            items.append(ScoreItem(point.id, "late_acknowledge", -rules.responses.late_acknowledge))
        if response is not None and response.on_site is Compliance.MISSED:
            counts["late_on_site"] += 1
            items.append(ScoreItem(point.id, "late_on_site", -rules.responses.late_on_site))
        if within_h is not None and feedback_compliance(point, timedelta(hours=within_h), as_of) is Compliance.MISSED:
            counts["late_feedback"] += 1
            late = Note(NoteCode.NOT_FED_BACK_WITHIN, f"not fed back within {within_h:g} h", {"hours": within_h})
            items.append(ScoreItem(point.id, "late_feedback", -rules.responses.late_feedback, (late,)))
        if kind is not OutcomeKind.VIOLATION:
            continue
        counts["violations"] += 1
        if is_self_found(point, unit.code, rules):
            counts["self_found"] += 1
            items.append(ScoreItem(point.id, "self_found", rules.reporting.self_found_credit))
        else:
            source = charged_source(point, rules)
            by_source[source.value] += 1
            factor, notes = 1.0, []
            large = weights.large_area_m2
            burned = point.burned_area_m2
            if large is not None and burned is not None and burned > large:
                factor *= weights.large_area_factor
                notes.append(
                    Note(
                        NoteCode.LARGE_AREA,
                        f"burned {burned:g} m² > {large:g} m² ×{weights.large_area_factor:g}",
                        {"burned_m2": burned, "limit_m2": large, "factor": weights.large_area_factor},
                    )
                )
            if reopened_after_feedback(point):
                factor *= weights.reopened_factor
                notes.append(
                    Note(
                        NoteCode.FAILED_VERIFICATION,
                        f"failed verification ×{weights.reopened_factor:g}",
                        {"factor": weights.reopened_factor},
                    )
                )
            if point.repeat_of is not None and weights.repeat_site_factor != 1.0:
                factor *= weights.repeat_site_factor
                notes.append(
                    Note(
                        NoteCode.REPEAT_AT_SITE,
                        f"fire again at the place of incident {point.repeat_of} ×{weights.repeat_site_factor:g}",
                        {"incident": point.repeat_of, "factor": weights.repeat_site_factor},
                    )
                )
            items.append(
                ScoreItem(point.id, f"fire_point:{source.value}", -weights.weight(source) * factor, tuple(notes))
            )
        first = point.first_sighting
        if first is not None and first.source is Source.SATELLITE:
            counts["unreported"] += 1
            items.append(ScoreItem(point.id, "unreported", -rules.reporting.unreported))
        if was_concealed(point):
            counts["concealed"] += 1
            items.append(ScoreItem(point.id, "concealed", -rules.reporting.concealed))
    basis_ha, basis = density_basis(unit)
    density = counts["violations"] / basis_ha * 1000.0 if basis_ha else None
    if basis_ha and basis and density is not None and rules.density.points_per_fire_per_1000ha and counts["violations"]:
        basis_note = Note(
            NoteCode.DENSITY,
            f"{counts['violations']} per {basis_ha:,.0f} ha of {basis}",
            {"violations": counts["violations"], "basis_ha": basis_ha, "basis": basis},
        )
        items.append(ScoreItem(None, "density", -rules.density.points_per_fire_per_1000ha * density, (basis_note,)))
    deductions = -sum(i.points for i in items if i.points < 0)
    credited = sum(i.points for i in items if i.points > 0)
    if rules.max_credit is not None:
        credited = min(credited, rules.max_credit)
    score = rules.base - deductions + credited
    if rules.floor is not None:
        score = max(rules.floor, score)
    score = round(score, 2)
    return UnitScore(
        code=unit.code,
        name=unit.name,
        parent_code=unit.parent_code,
        rank=0,
        score=score,
        grade=rules.grade(score),
        sanction=rules.sanction(counts["violations"] - counts["self_found"], score),  # charged violations only
        fire_points=len(fire_points),
        violations=counts["violations"],
        violations_by_source={s.value: by_source[s.value] for s in SOURCE_ORDER},
        self_found=counts["self_found"],
        unreported=counts["unreported"],
        concealed=counts["concealed"],
        late_acknowledge=counts["late_acknowledge"],
        late_on_site=counts["late_on_site"],
        density_per_1000ha=density,
        density_basis=basis,
        basis_ha=basis_ha,
        deductions=round(deductions, 4),
        credits=round(credited, 4),
        items=tuple(items),
        late_feedback=counts["late_feedback"],
        repeat_at_site=counts["repeat_at_site"],
        edge=counts["edge"],
        open=counts["open"],
    )


def _rank_key(unit: UnitScore) -> tuple[float, int, float]:
    return (-unit.score, unit.violations, unit.density_per_1000ha or 0.0)


def score_units(
    points: Iterable[FirePoint],
    units: Iterable[Unit],
    level: RegionLevel,
    rules: ScoringRules,
    deadlines: DeadlinePolicy,
    as_of: datetime,
) -> ScoreBoard:
    """Score and rank every unit in ``units`` (all of ``level``) on the fire points assigned to it."""
    by_unit: dict[str, list[FirePoint]] = {}
    scored_units = sorted(units, key=lambda u: u.code)
    codes = {u.code for u in scored_units}
    unscored = 0
    for point in points:
        code = point.unit_code(level)
        if code in codes:
            by_unit.setdefault(code or "", []).append(point)
        elif outcome(point.transitions).kind is not OutcomeKind.DUPLICATE:
            unscored += 1
    scores = [_score_unit(u, by_unit.get(u.code, []), rules, deadlines, as_of) for u in scored_units]
    scores.sort(key=lambda s: (*_rank_key(s), s.code))
    ranked: list[UnitScore] = []
    for position, score in enumerate(scores, start=1):
        tied = bool(ranked) and _rank_key(ranked[-1]) == _rank_key(score)
        ranked.append(replace(score, rank=ranked[-1].rank if tied else position))
    return ScoreBoard(level, rules, ranked, unscored)
