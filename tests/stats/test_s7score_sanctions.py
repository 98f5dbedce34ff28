"""The sanction ladder counts the violations charged to a unit: a fire its own patrol found (自查自报: no deduction,
+2, closed-loop.md §3, XX镇 2021) is not one (service.stats.scoring, "Sanctions").

The audit's case (德惠市): a fire another township's patrol found in the unit (a charged patrol point) and one the
unit's own patrol found and handled: two violations, so the example rules' second step "全市通报批评，取消评优资格"
(from 2 violations) — on a score of 97, 优秀 — for a unit whose second fire earned it a credit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.regions.types import RegionLevel
from service.stats.response import DeadlinePolicy
from service.stats.scoring import score_units
from tests.stats.patrol_found import (
    AREA,
    DATABASES,
    call,
    empty_database_url,
    patrol_app,
    period_of,
    report_across_the_boundary,
)
from tests.stats.scenario import WEST
from tests.stats.test_scoring_pure import RULES, T0, UNIT, K, fire

OWN_FIRE_IN_WEST = (44.02, 125.18)  # (lat, lon): 西镇, ~4 km from the fire 东镇's patrol reports


@pytest.fixture(params=DATABASES)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    with patrol_app(tmp_path / "var", empty_database_url(request.param)) as test_client:
        yield test_client


def report_own_fire(client: TestClient) -> int:
    """西镇's patrol reports a fire in 西镇 from the spot (taken on: on site), puts it out and feeds it back."""
    body = {"latitude": OWN_FIRE_IN_WEST[0], "longitude": OWN_FIRE_IN_WEST[1], "accuracy_m": 8.0}
    out = call(client, "west", "POST", "/api/v1/observations/patrol", json=body)
    assert (out["township_code"], out["taken_on"]) == (WEST, True)
    incident: int = out["incident_id"]
    call(client, "west", "POST", f"/api/v1/incidents/{incident}/transitions", json={"to": "extinguished"})
    feedback = {"to": "feedback", "feedback": {"cause": "straw", "burned_area_m2": 40}}
    call(client, "west", "POST", f"/api/v1/incidents/{incident}/transitions", json=feedback)
    return incident


def test_a_self_found_fire_does_not_count_toward_the_sanction_ladder(client: TestClient) -> None:
    charged = report_across_the_boundary(client)  # 东镇's patrol found it in 西镇: a patrol point, −3
    own = report_own_fire(client)
    board = call(client, "admin", "GET", "/api/v1/scores", params={"period": period_of(client, own), "area": AREA})
    west: dict[str, Any] = next(u for u in board["units"] if u["code"] == WEST)
    assert (west["violations"], west["self_found"], west["violations_by_source"]["patrol"]) == (2, 1, 1)
    assert {(i["incident_id"], i["rule"], i["points"]) for i in west["items"] if i["incident_id"]} == {
        (charged, "fire_point:patrol", -3.0),
        (own, "self_found", 2.0),
    }
    # 100 − 3 − density (2 per 2,000 ha of cropland × 2 = 2) + 2.
    assert (west["score"], west["grade"]) == (97.0, "优秀")
    # One charged violation: the first step (was the second, "全市通报批评，取消评优资格", counting the own fire).
    assert west["sanction"] == "书面警告"


def test_only_self_found_fires_reach_no_step_but_the_score_steps_still_apply() -> None:
    """Self-found fires alone reach no ``min_violations`` step; a ``below_score`` step still reads the score."""
    own = [fire(i, (K.DRONE,)) for i in range(4)]  # four self-found violations (the township's drones)
    unit = score_units(own, [UNIT], RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), T0 + timedelta(days=1)).units[0]
    assert (unit.violations, unit.self_found, unit.sanction) == (4, 4, None)  # RULES: "warning" from 2
    ladder = [{"min_violations": 2, "name": "warning"}, {"below_score": 90, "name": "low"}]
    failing = RULES.model_validate(RULES.model_dump() | {"sanctions": ladder})
    # 4 × 2 credited, capped at 3; density 4 per 2,000 ha × 10 = −20: 83, below 90.
    low = score_units(own, [UNIT], RegionLevel.TOWNSHIP, failing, DeadlinePolicy(), T0 + timedelta(days=1)).units[0]
    assert (low.score, low.sanction) == (83.0, "low")
    charged = fire(9, (K.CAMERA,))  # one camera point, charged: with the four own fires, still one charged
    mixed = score_units([*own, charged], [UNIT], RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), T0).units[0]
    assert (mixed.violations, mixed.self_found, mixed.sanction) == (5, 4, None)
    two = score_units([*own, charged, fire(10, (K.CAMERA,))], [UNIT], RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), T0)
    assert two.units[0].sanction == "warning"
