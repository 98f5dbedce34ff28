"""Period forms and their UTC+8 boundaries; which codes an area covers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from service.errors import InputError
from service.regions.types import RegionLevel
from service.stats.areas import Area, code_prefix
from service.stats.periods import local_date, parse_period
from service.stats.records import Unit


@pytest.mark.parametrize(
    ("text", "label", "first", "last"),
    [
        ("2025", "2025", date(2025, 1, 1), date(2025, 12, 31)),
        ("2025-q4", "2025-Q4", date(2025, 10, 1), date(2025, 12, 31)),
        ("2025-Q1", "2025-Q1", date(2025, 1, 1), date(2025, 3, 31)),
        ("2025-11", "2025-11", date(2025, 11, 1), date(2025, 11, 30)),
        ("2024-2", "2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2025-W45", "2025-W45", date(2025, 11, 3), date(2025, 11, 9)),
        ("2026-W01", "2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        ("2025-11-03", "2025-11-03", date(2025, 11, 3), date(2025, 11, 3)),
        (" 2025-11-01..2025-11-15 ", "2025-11-01..2025-11-15", date(2025, 11, 1), date(2025, 11, 15)),
    ],
)
def test_period_forms(text: str, label: str, first: date, last: date) -> None:
    period = parse_period(text)
    assert (period.label, period.first_day, period.last_day) == (label, first, last)


def test_boundaries_are_beijing_midnights_in_utc() -> None:
    november = parse_period("2025-11")
    assert november.start == datetime(2025, 10, 31, 16, 0, tzinfo=UTC)
    assert november.end == datetime(2025, 11, 30, 16, 0, tzinfo=UTC)
    assert november.contains(datetime(2025, 10, 31, 16, 0, tzinfo=UTC))  # 00:00 on Nov 1 in Beijing
    assert not november.contains(datetime(2025, 10, 31, 15, 59, tzinfo=UTC))
    assert not november.contains(november.end)
    assert local_date(datetime(2025, 11, 2, 17, 0, tzinfo=UTC)) == date(2025, 11, 3)
    assert len(november.days()) == 30


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-13", "month must be 1–12"),
        ("2025-W53", "2025 has no ISO week 53"),
        ("2025-02-30", "day is out of range"),
        ("2025-11-05..2025-11-01", "ends before it starts"),
        ("last month", "is not a period"),
        # years whose local midnights Python's dates cannot hold in UTC: a 500 from the API before
        ("0000", "years 1970–9998 only, not 0"),
        ("0001-Q1", "years 1970–9998 only, not 1"),
        ("9999", "years 1970–9998 only, not 9999"),
        ("2025-01-01..9999-12-31", "years 1970–9998 only, not 9999"),
    ],
)
def test_bad_periods_say_why(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_period(text)
    assert info.value.field == "period"


def test_code_prefix_of_division_codes() -> None:
    assert code_prefix("220100") == "2201"
    assert code_prefix("220000") == "22"
    assert code_prefix("220102") == "220102"
    assert code_prefix("220102100") == "220102100"  # township codes are their own prefix
    assert code_prefix("DEMO00") == "DEMO00"


def test_area_by_prefix_and_by_parent_chain() -> None:
    units = [
        Unit("DEMO00", "县", RegionLevel.COUNTY, None, 1.0),
        Unit("DEMO01", "镇", RegionLevel.TOWNSHIP, "DEMO00", 1.0),
        Unit("X1", "村", RegionLevel.VILLAGE, "DEMO01", 1.0),
    ]
    city = Area.of("220100", units)
    assert city.contains("220102")
    assert city.contains("220102001")
    assert city.contains("220100")
    assert not city.contains("220200")
    assert not city.contains(None)
    demo = Area.of("DEMO00", units)
    assert demo.contains("DEMO01")
    assert demo.contains("X1")
    assert not Area.of("DEMO01", units).contains("DEMO00")
    assert Area.of(None, units).contains(None)
    assert Area.of("220102001", units).contains_any(None, "220102001")
    assert not Area.of("220102001", units).contains_any("220102002", "220102")
