"""A fire a township patrol found is a ``patrol`` source (巡查), not a camera (视频): weighed by the rules' patrol
point (``fire_points.patrol``, else ``drone``: −3 in the example rules, where a camera point is −5), counted and
grouped under its own name — on hand-made records, then through the real API on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.regions.types import RegionLevel
from service.stats.records import SOURCE_ORDER, Source, source_of
from service.stats.response import DeadlinePolicy, GroupBy, response_table
from service.stats.rules import RuleBook, ScoringRules
from service.stats.scoring import UnitScore, charged_source, score_units
from tests.stats.patrol_found import (
    AREA,
    DATABASES,
    REPO,
    call,
    empty_database_url,
    patrol_app,
    period_of,
    report_across_the_boundary,
)
from tests.stats.scenario import EAST, WEST
from tests.stats.test_scoring_pure import RULES, T0, UNIT, K, fire

EXAMPLES = RuleBook.load(REPO / "rules")


def scored(rules: ScoringRules, *kinds: K, reporter: str | None = None) -> UnitScore:
    """The unit's score for one violation seen by ``kinds`` (the first is the earliest)."""
    point = fire(1, kinds, reporter=reporter)
    return score_units([point], [UNIT], RegionLevel.TOWNSHIP, rules, DeadlinePolicy(), T0).units[0]


def fire_point_items(unit: UnitScore) -> list[tuple[str, float]]:
    return [(i.rule, i.points) for i in unit.items if i.rule.startswith("fire_point")]


def test_a_patrol_report_is_its_own_source_listed_last() -> None:
    assert source_of(K.PATROL) is Source.PATROL
    assert [source_of(k) for k in (K.CAMERA, K.TRIANGULATED)] == [Source.CAMERA, Source.CAMERA]
    assert SOURCE_ORDER == (Source.SATELLITE, Source.CAMERA, Source.DRONE, Source.PATROL)


@pytest.mark.parametrize("version", ["example-v1", "example-v2"])
def test_example_rules_without_a_patrol_weight_charge_a_patrol_point_as_a_drone_point(version: str) -> None:
    """The example rules predate patrol reports: a patrol point weighs their drone weight, the township patrol point
    (−3) of the published rules — not the camera's −5 it was charged before."""
    rules = EXAMPLES.by_version(version).rules
    assert rules.fire_points.patrol is None
    assert rules.fire_points.weight(Source.PATROL) == rules.fire_points.drone == 3.0
    unit = scored(rules, K.PATROL, reporter="T9")  # another township's patrol found it
    assert fire_point_items(unit) == [("fire_point:patrol", -3.0)]
    assert unit.violations_by_source == {"satellite": 0, "camera": 0, "drone": 0, "patrol": 1}
    assert (unit.self_found, unit.unreported) == (0, 0)


def test_an_explicit_patrol_weight_is_charged() -> None:
    rules = RULES.model_copy(update={"fire_points": RULES.fire_points.model_copy(update={"patrol": 4.0})})
    # −4, and density 1 per 2,000 ha × 10 = −5
    unit = scored(rules, K.PATROL)
    assert fire_point_items(unit) == [("fire_point:patrol", -4.0)]
    assert unit.score == 91.0
    # The heaviest source is charged, ties in SOURCE_ORDER: camera (5) over patrol (4); patrol (4) over drone (3).
    assert charged_source(fire(1, (K.PATROL, K.CAMERA)), rules) is Source.CAMERA
    assert charged_source(fire(1, (K.PATROL, K.DRONE)), rules) is Source.PATROL
    # Without the key (patrol = drone = 3) the drone, listed first, is charged for that pair.
    assert charged_source(fire(1, (K.PATROL, K.DRONE)), RULES) is Source.DRONE
    with pytest.raises(ValidationError):
        RULES.fire_points.model_validate({**RULES.fire_points.model_dump(), "patrol": -1})


def test_the_townships_own_patrol_report_stays_self_found_and_self_found_sources_may_not_name_patrol() -> None:
    """The township's own report is credited through its reporter_unit; listing ``patrol`` as a self-found source
    would credit a neighbouring township's (T9's) or an admin's report as the township's own find: refused."""
    own = scored(RULES, K.PATROL, reporter="T1")
    assert (own.self_found, fire_point_items(own)) == (1, [])
    neighbours = scored(RULES, K.PATROL, reporter="T9")
    assert (neighbours.self_found, fire_point_items(neighbours)) == (0, [("fire_point:patrol", -3.0)])
    with pytest.raises(ValidationError, match="reporter_unit"):
        ScoringRules.model_validate({**RULES.model_dump(), "reporting": {"self_found_sources": ["patrol"]}})


def test_response_times_by_source_have_a_patrol_row() -> None:
    table = response_table([fire(1, (K.PATROL,)), fire(2, (K.CAMERA,))], GroupBy.SOURCE, DeadlinePolicy(), T0)
    assert [(g.key, g.incidents) for g in table.groups] == [("camera", 1), ("patrol", 1)]


# --- through the API --------------------------------------------------------------------------------------------


@pytest.fixture(params=DATABASES)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    with patrol_app(tmp_path / "var", empty_database_url(request.param)) as test_client:
        yield test_client


def test_a_fire_another_townships_patrol_found_is_scored_and_counted_as_a_patrol_point(client: TestClient) -> None:
    incident = report_across_the_boundary(client)
    params = {"period": period_of(client, incident), "area": AREA}

    board = call(client, "admin", "GET", "/api/v1/scores", params=params)
    units: dict[str, Any] = {u["code"]: u for u in board["units"]}
    west = units[WEST]
    assert board["rules"]["version"] == "example-v2"  # no fire_points.patrol: weighs as drone, −3
    assert (west["violations"], west["self_found"], west["unreported"]) == (1, 0, 0)
    assert west["violations_by_source"] == {"satellite": 0, "camera": 0, "drone": 0, "patrol": 1}
    fire_items = [(i["incident_id"], i["rule"], i["points"]) for i in west["items"] if i["incident_id"]]
    assert fire_items == [(incident, "fire_point:patrol", -3.0)]
    assert units[EAST]["violations"] == 0  # the reporting township's score is untouched

    for path in ("/api/v1/stats/response-times", "/api/v1/stats/outcomes"):
        by_source = call(client, "admin", "GET", path, params={**params, "group_by": "source"})
        assert [g["key"] for g in by_source["groups"]] == ["patrol"], path
    outcomes = call(client, "admin", "GET", "/api/v1/stats/outcomes", params={**params, "group_by": "source"})
    assert outcomes["groups"][0]["violations"] == 1
