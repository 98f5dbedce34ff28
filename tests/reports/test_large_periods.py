"""A year's report must not look at every fire point once per day of the period (days × points)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from service.reports import tables
from service.reports.data import ReportData
from service.stats.outcomes import outcome_table
from service.stats.periods import local_time, parse_period
from service.stats.response import GroupBy


def test_daily_rows_look_at_each_fire_point_once(november: ReportData, monkeypatch: pytest.MonkeyPatch) -> None:
    year = parse_period("2025")
    data = replace(november, period=year, daily=outcome_table(november.points, GroupBy.DAY))
    expected = list(tables.daily_rows(data))
    assert len(expected) == 365
    by_day = {row[0]: row[1:] for row in expected}
    assert by_day["2025-11-03"] == [6, 3, 1, 1, 1, 3, 3, 1, 0]  # the November sheet's figures, in the year's sheet
    assert by_day["2025-01-01"] == [0] * 9

    calls = 0

    def counting(at: datetime) -> datetime:
        nonlocal calls
        calls += 1
        return local_time(at)

    monkeypatch.setattr(tables, "local_time", counting)
    assert list(tables.daily_rows(data)) == expected
    # once per fire point (8), not once per fire point per day (8 × 365 = 2,920)
    assert calls <= len(data.points), calls
