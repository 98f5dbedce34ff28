"""Himawari reader defects found in an audit, each reproduced here first."""

from __future__ import annotations

import pytest

from satellite.himawari import read_himawari_csv

H09 = "H09_20250423_0420_L2WLF010_FLDK.06001_06001.csv"
TIMES = "# 2025  4 23  4 20 UTC  2025  4 23  4 52 UTC"
HEADER = "# ID,Year,Month,Day,Time(UTC),Lat,Lon,Area(km^2),Volcano,Level,Reliability,FRP(Wm^-2),QF,Hot(ID)"
ROW = "1,2025,4,23,422,45.12,124.82,3.50,0,2,3,4.21,0,2"


@pytest.mark.parametrize(
    ("lat", "lon", "field"),
    [
        ("61.00", "124.82", "lat"),  # north of the full disk: the latitude is what is wrong
        ("-60.02", "124.82", "lat"),
        ("45.12", "20.00", "lon"),  # west of the disk
        ("45.12", "-150.00", "lon"),  # east of the disk
    ],
)
def test_a_row_outside_the_full_disk_names_the_offending_coordinate(lat: str, lon: str, field: str) -> None:
    """A latitude beyond 60° was reported as a bad ``lon``, sending whoever fixes the file to the wrong column."""
    row = ROW.replace("45.12", lat).replace("124.82", lon)
    result = read_himawari_csv("\n".join([TIMES, HEADER, ROW, row]), source_name=H09)
    assert len(result.hotspots) == 1
    (rejected,) = result.rejected
    assert (rejected.line, rejected.field) == (4, field)
    assert "full disk" in rejected.reason
