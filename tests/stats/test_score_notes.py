"""Score lines' notes and score boards' warnings carry a stable code and their figures besides the English text, so
the dashboard can say them in its reader's language (it showed them in English, even in Chinese): every code
through the real scoring, then through the API (the old English fields stay as they were)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from service.incidents.states import IncidentState
from service.regions.types import RegionLevel
from service.stats.areas import Area
from service.stats.periods import parse_period
from service.stats.records import Unit
from service.stats.response import DeadlinePolicy
from service.stats.rules import RuleBook
from service.stats.schemas import NoteOut
from service.stats.scoring import score_units
from service.stats.service import score_board
from service.stats.wording import Note, NoteCode
from tests.stats.scenario import EAST
from tests.stats.test_scoring_pure import HANDLED, RULES, T0, UNIT, K, fire
from tests.stats.test_stats_api import client, get  # noqa: F401  (the module's API fixture)

SHIPPED = Path(__file__).resolve().parents[2] / "rules"
S = IncidentState


def every_note() -> list[Note]:
    """One note of every code, made by the code that writes them."""
    rules = RULES.model_copy(
        update={
            "fire_points": RULES.fire_points.model_copy(update={"repeat_site_factor": 2.0}),
            "responses": RULES.responses.model_copy(update={"feedback_within_h": 24.0, "late_feedback": 1.0}),
        }
    )
    # Burned 500 m² (> 300), failed verification, at the place of incident 7; and a fire never fed back.
    heavy = replace(fire(1, (K.CAMERA,), (*HANDLED, S.REOPENED, S.ACKNOWLEDGED, S.FEEDBACK), area=500), repeat_of=7)
    never_fed_back = fire(2, (K.CAMERA,), (S.ACKNOWLEDGED,))
    board = score_units(
        [heavy, never_fed_back], [UNIT], RegionLevel.TOWNSHIP, rules, DeadlinePolicy(), T0 + timedelta(days=2)
    )
    notes = [note for item in board.units[0].items for note in item.notes]
    # The year 2025 is scored with example-v1 (in force on 1 January); example-v2 took effect on 1 September.
    year = parse_period("2025")
    notes += RuleBook.load(SHIPPED).select(year).notes
    # Only counties imported: the county is scored instead; a fire point with no county is left out.
    county = Unit("C1", "一县", RegionLevel.COUNTY, None, 1000.0)
    nowhere = replace(fire(3, (K.CAMERA,)), township_code=None, county_code=None)
    # And a fire of the county still open at as_of: the scores are provisional.
    undecided = fire(4, (K.CAMERA,), ())
    _, warnings = score_board(
        None,  # type: ignore[arg-type]  # the points are given: no query
        parse_period("2025-11"),
        Area.of("C1", [county]),
        [county],
        RuleBook.load(SHIPPED).select(parse_period("2025-11")),
        DeadlinePolicy(),
        T0,
        points=[nowhere, undecided],
    )
    return notes + warnings


def test_every_note_has_a_code_its_figures_and_the_english_it_always_had() -> None:
    notes = {n.code: n for n in every_note()}
    assert set(notes) == set(NoteCode)
    assert [(n.text, dict(n.params)) for n in notes.values()] == [
        ("burned 500 m² > 300 m² ×2", {"burned_m2": 500.0, "limit_m2": 300.0, "factor": 2.0}),
        ("failed verification ×1.5", {"factor": 1.5}),
        ("fire again at the place of incident 7 ×2", {"incident": 7, "factor": 2.0}),
        ("not fed back within 24 h", {"hours": 24.0}),
        ("1 per 2,000 ha of cropland", {"violations": 1, "basis_ha": 2000.0, "basis": "cropland"}),
        (
            "rules example-v2 (scoring-example-v2.toml) took effect during the period on 2025-09-01; the period is "
            "scored with example-v1, in force on its first day",
            {
                "version": "example-v2",
                "file": "scoring-example-v2.toml",
                "effective_from": "2025-09-01",
                "scored_with": "example-v1",
                "first_day": 1,
            },
        ),
        ("no township units in the area: scored county units instead", {"preferred": "township", "chosen": "county"}),
        ("1 fire point in the area has no county and is not scored", {"n": 1, "level": "county"}),
        (
            "scores are provisional: 1 fire point in 1 unit is still open at 2025-11-03 10:00 (UTC+8); deciding it "
            "may still change that unit's score",
            {"n": 1, "units": 1, "as_of": "2025-11-03T02:00:00Z"},
        ),
    ]


def test_a_score_line_joins_its_notes_in_english() -> None:
    heavy = fire(1, (K.CAMERA,), (*HANDLED, S.REOPENED, S.ACKNOWLEDGED, S.FEEDBACK), area=500)
    unit = score_units([heavy], [UNIT], RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), T0).units[0]
    (item,) = [i for i in unit.items if i.rule.startswith("fire_point")]
    assert [n.code for n in item.notes] == [NoteCode.LARGE_AREA, NoteCode.FAILED_VERIFICATION]
    assert item.note == "burned 500 m² > 300 m² ×2; failed verification ×1.5"
    assert NoteOut.of(item.notes[0]).model_dump(mode="json") == {
        "code": "large_area",
        "params": {"burned_m2": 500.0, "limit_m2": 300.0, "factor": 2.0},
        "text": "burned 500 m² > 300 m² ×2",
    }


def test_the_api_sends_codes_beside_the_english(client: TestClient) -> None:  # noqa: F811
    board = get(client, "eval", "/api/v1/scores")  # November 2025 of the recorded scenario
    east = next(u for u in board["units"] if u["code"] == EAST)
    for item in east["items"]:
        assert item["note"] == "; ".join(n["text"] for n in item["notes"])
    large = [n for i in east["items"] for n in i["notes"] if n["code"] == "large_area"]
    assert large == [
        {
            "code": "large_area",
            "params": {"burned_m2": 500.0, "limit_m2": 300.0, "factor": 2.0},
            "text": "burned 500 m² > 300 m² ×2",
        }
    ]  # fire A: 500 m² under example-v2
    (density,) = [i for i in east["items"] if i["rule"] == "density"]
    assert [(n["code"], n["params"]["basis"]) for n in density["notes"]] == [("density", "cropland")]
    # F and J are still open: the one warning is that the scores are provisional.
    assert [n["text"] for n in board["warning_notes"]] == board["warnings"]
    assert [(n["code"], n["params"]["n"], n["params"]["units"]) for n in board["warning_notes"]] == [
        ("provisional", 2, 2)
    ]

    year = get(client, "eval", "/api/v1/scores", period="2025")
    assert [n["text"] for n in year["warning_notes"]] == year["warnings"]
    assert [(n["code"], n["params"].get("version")) for n in year["warning_notes"]] == [
        ("rules_changed", "example-v2"),
        ("provisional", None),
    ]
    # A patrol user's board leaves the area's unscored fire points out, in both forms alike.
    own = get(client, "east", "/api/v1/scores", period="2025")
    assert [n["text"] for n in own["warning_notes"]] == own["warnings"]
    assert "unscored" not in {n["code"] for n in own["warning_notes"]}
