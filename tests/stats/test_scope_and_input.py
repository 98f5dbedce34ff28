"""Who may see which area, and odd input that must be a 4xx naming the field, not a 500 or a wrong board."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.auth.service import Principal
from service.errors import InputError
from service.incidents.fusion import ObservationKind
from service.incidents.states import IncidentState, Role
from service.regions.types import RegionLevel
from service.stats.areas import Area
from service.stats.periods import parse_period
from service.stats.records import FirePoint, Sighting, Transition, Unit
from service.stats.response import DeadlinePolicy
from service.stats.rules import RuleBook
from service.stats.service import ScopeError, resolve_area, score_board
from tests.stats.test_scoring_pure import fire
from tests.stats.test_stats_api import client, login  # noqa: F401  (the module's API fixture)

SHIPPED = Path(__file__).resolve().parents[2] / "rules"
T0 = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)

# Codes that do not follow GB/T 2260 (a county's own numbering, like the DEMO units): "C1" is not "C10"'s parent.
UNITS = [
    Unit("C1", "一县", RegionLevel.COUNTY, "CITY", 1000.0),
    Unit("C1-T1", "一县甲镇", RegionLevel.TOWNSHIP, "C1", 500.0),
    Unit("C10", "十县", RegionLevel.COUNTY, "CITY", 1000.0),
    Unit("C10-T1", "十县甲镇", RegionLevel.TOWNSHIP, "C10", 500.0),
]


def test_a_non_numeric_code_does_not_contain_codes_that_merely_start_with_it() -> None:
    one = Area.of("C1", UNITS)
    assert one.contains("C1")
    assert one.contains("C1-T1")  # by the parent chain
    assert not one.contains("C10")
    assert not one.contains("C10-T1")
    assert Area.of("CITY", UNITS).contains("C10-T1")  # parents still decide
    assert Area.of("220100", UNITS).contains("220102001")  # GB/T 2260 prefixes still apply


def test_a_supervisor_cannot_read_a_county_whose_code_starts_with_theirs() -> None:
    supervisor = Principal("sup-c1", Role.SUPERVISOR, "C1")
    with pytest.raises(ScopeError):
        resolve_area(supervisor, "C10", UNITS)
    own = resolve_area(supervisor, None, UNITS)
    fire = FirePoint(
        id=1,
        latitude=44.0,
        longitude=125.0,
        township_code="C10-T1",
        township_name=None,
        county_code="C10",
        county_name=None,
        first_observed_at=T0,
        state=IncidentState.FEEDBACK,
        sightings=(Sighting(ObservationKind.CAMERA, T0),),
        transitions=(Transition(T0, IncidentState.NOTIFIED), Transition(T0, IncidentState.FEEDBACK)),
    )
    period = parse_period("2025-11")
    selection = RuleBook.load(SHIPPED).select(period)
    board, _ = score_board(
        None,  # type: ignore[arg-type]  # the points are given: no query
        period,
        own,
        UNITS,
        selection,
        DeadlinePolicy(),
        T0 + timedelta(days=1),
        points=[p for p in [fire] if own.contains_any(p.township_code, p.county_code)],
    )
    assert [u.code for u in board.units] == ["C1-T1"]  # C10's township is not on C1's board


def test_periods_with_digits_int_cannot_read_are_input_errors() -> None:
    for text in ("²025", "²025-11", "2⁰25-W01"):
        with pytest.raises(InputError) as info:
            parse_period(text)
        assert info.value.field == "period"


def test_only_townships_and_counties_are_scored() -> None:
    city = Unit("CITY", "市", RegionLevel.CITY, None, 2000.0)
    period = parse_period("2025-11")
    selection = RuleBook.load(SHIPPED).select(period)
    with pytest.raises(InputError) as info:
        score_board(
            None,  # type: ignore[arg-type]
            period,
            Area.of(None, UNITS),
            [city, *UNITS],
            selection,
            DeadlinePolicy(),
            T0,
            RegionLevel.CITY,
            points=[],
        )
    assert info.value.field == "level"


def test_the_api_names_the_field(client: TestClient) -> None:  # noqa: F811
    headers = login(client, "eval")
    response = client.get("/api/v1/scores", params={"period": "²025-11"}, headers=headers)
    assert response.status_code == 422, response.text
    assert "field 'period'" in response.json()["detail"]
    response = client.get("/api/v1/scores", params={"period": "2025-11", "level": "grid"}, headers=headers)
    assert response.status_code == 422, response.text
    assert "field 'level'" in response.json()["detail"]


def test_the_unscored_warning_counts_in_english() -> None:
    """ "1 fire point(s) in the area have no township": one fire point has, and is not scored."""
    period = parse_period("2025-11")
    selection = RuleBook.load(SHIPPED).select(period)

    def warnings(count: int) -> list[str]:
        _, said = score_board(
            None,  # type: ignore[arg-type]  # the points are given: no query
            period,
            Area.of("C1", UNITS),
            UNITS,
            selection,
            DeadlinePolicy(),
            T0 + timedelta(days=1),
            # Notified fires in C1, in none of its townships.
            points=[fire(i, (ObservationKind.CAMERA,), (), township=None) for i in range(1, count + 1)],
        )
        return [w.text for w in said if "not scored" in w.text]

    assert warnings(1) == ["1 fire point in the area has no township and is not scored"]
    assert warnings(2) == ["2 fire points in the area have no township and are not scored"]
