"""Scores say when they are provisional: each unit's ``open`` fire points (still undecided at ``as_of``) and the
board's ``provisional`` warning, so that a score filed while a fire is open is not taken for final.

An open fire (escalated and never answered, say) costs nothing yet but late responses; decided later it may cost
its unit a fire point and more, so the same period re-scored later gives another score. ``GET /api/v1/stats/
outcomes`` had the count; the scores had nothing to say it.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from service.incidents.states import IncidentState
from service.regions.types import RegionLevel
from service.stats.response import DeadlinePolicy
from service.stats.scoring import score_units
from service.stats.service import provisional_warning
from service.stats.wording import NoteCode
from tests.stats.scenario import CITY, EAST, SOUTH, WEST
from tests.stats.test_scoring_pure import HANDLED, RULES, T0, UNIT, K, fire
from tests.stats.test_stats_api import client, get  # noqa: F401  (the module's API fixture)

S = IncidentState


def test_the_scores_count_each_units_open_fire_points_and_warn(client: TestClient) -> None:  # noqa: F811
    """The recorded scenario: F (西镇, escalated, never answered) and J (南乡, never notified) are open."""
    board = get(client, "eval", "/api/v1/scores", area=CITY)
    assert {u["code"]: u["open"] for u in board["units"]} == {WEST: 1, SOUTH: 1, EAST: 0}
    (note,) = [n for n in board["warning_notes"] if n["code"] == "provisional"]
    assert (note["params"]["n"], note["params"]["units"]) == (2, 2)
    assert note["params"]["as_of"] == board["as_of"].replace("+00:00", "Z")
    assert note["text"] in board["warnings"]
    assert note["text"].startswith("scores are provisional: 2 fire points in 2 units are still open at ")
    assert note["text"].endswith("(UTC+8); deciding them may still change those units' scores")
    # The outcome counts say the same.
    outcomes = get(client, "eval", "/api/v1/stats/outcomes", area=CITY, group_by="township")
    assert {g["key"]: g["open"] for g in outcomes["groups"]} == {u["code"]: u["open"] for u in board["units"]}


def test_a_patrol_user_is_told_of_its_own_units_open_fire_points_only(client: TestClient) -> None:  # noqa: F811
    """东镇 has none open: its board has no provisional warning, though 西镇 (its sibling, ranked with it) has."""
    own = get(client, "east", "/api/v1/scores")
    assert [(u["code"], u["open"]) for u in own["units"]] == [(EAST, 0)]
    assert "provisional" not in {n["code"] for n in own["warning_notes"]}
    county = get(client, "sup_a", "/api/v1/scores")
    assert [n["params"]["n"] for n in county["warning_notes"] if n["code"] == "provisional"] == [1]  # F in 西镇


def test_deciding_an_open_fire_later_changes_the_score_the_warning_announced() -> None:
    """The same period scored before and after the fire is decided: the first board said it was provisional."""
    escalated = fire(1, (K.SATELLITE,), (S.ESCALATED,))
    before = score_units([escalated], [UNIT], RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), T0 + timedelta(days=1))
    (unit,) = before.units
    assert (unit.open, unit.violations) == (1, 0)
    warning = provisional_warning(before.units, T0 + timedelta(days=1))
    assert warning is not None
    assert warning.code is NoteCode.PROVISIONAL
    assert warning.text == (
        "scores are provisional: 1 fire point in 1 unit is still open at 2025-11-04 10:00 (UTC+8); deciding it "
        "may still change that unit's score"
    )
    decided = fire(1, (K.SATELLITE,), (S.ESCALATED, *HANDLED))
    after = score_units([decided], [UNIT], RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), T0 + timedelta(days=2))
    assert (after.units[0].open, after.units[0].violations) == (0, 1)
    assert after.units[0].score < unit.score
    assert provisional_warning(after.units, T0 + timedelta(days=2)) is None
