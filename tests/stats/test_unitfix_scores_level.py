"""``GET /api/v1/scores?level=``: the same validation for every role, and a patrol user's level is its own unit's.

``level=village`` was a 422 for a supervisor and a 200 for a patrol user, whose ``level`` was ignored:
``level=county`` answered the patrol's township row as if it were a county's score."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.stats.scenario import EAST
from tests.stats.test_stats_api import client, login, status  # noqa: F401  (the fixture, with the scenario)


@pytest.mark.parametrize("user", ["east", "sup_a", "eval", "admin"])
@pytest.mark.parametrize("level", ["village", "grid", "city", "province"])
def test_a_level_that_is_not_scored_is_a_422_for_every_role(client: TestClient, user: str, level: str) -> None:  # noqa: F811
    response = client.get("/api/v1/scores", params={"period": "2025-11", "level": level}, headers=login(client, user))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"field 'level': {level} units are not scored; use township or county"


@pytest.mark.parametrize("user", ["east", "sup_a"])
def test_a_level_that_does_not_exist_is_a_422_for_every_role(client: TestClient, user: str) -> None:  # noqa: F811
    response = client.get("/api/v1/scores", params={"period": "2025-11", "level": "bogus"}, headers=login(client, user))
    assert response.status_code == 422, response.text


def test_a_patrol_user_asking_for_the_county_level_is_refused(client: TestClient) -> None:  # noqa: F811
    """Their township's county is their supervisor's unit, outside a patrol user's scope: 403, saying so."""
    response = client.get(
        "/api/v1/scores", params={"period": "2025-11", "level": "county"}, headers=login(client, "east")
    )
    assert response.status_code == 403
    assert response.json()["detail"] == (
        f"a patrol user sees only its own unit's score ({EAST}, at township level): level=county is outside its scope"
    )


def test_a_patrol_user_asking_for_its_own_level_gets_its_row(client: TestClient) -> None:  # noqa: F811
    for params in ({"level": "township"}, {}):
        response = client.get("/api/v1/scores", params={"period": "2025-11", **params}, headers=login(client, "east"))
        assert response.status_code == 200, response.text
        assert (response.json()["level"], [u["code"] for u in response.json()["units"]]) == ("township", [EAST])
    assert status(client, "sup_a", "/api/v1/scores", level="county") == 200
