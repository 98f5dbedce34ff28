"""Reading point CSVs for assignment."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import InputError
from service.regions.points import read_points_csv


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "points.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_any_columns_in_any_order(tmp_path: Path) -> None:
    lon, lat = read_points_csv(write(tmp_path, "id,Longitude,note,Latitude\n1,125.5,x,44.1\n\n2,-1.5,y,-3\n"))
    assert lon.tolist() == [125.5, -1.5]
    assert lat.tolist() == [44.1, -3.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("latitude,longitude\n", "a header but no rows"),
        ("lat,lon\n1,2\n", "no latitude and no longitude column"),
        ("latitude,longitude\n44,125\n44,abc\n", "line 3, field 'longitude': 'abc' is not a number"),
        ("latitude,longitude\n95,125\n", "line 2, field 'latitude': 95 is outside -90..90"),
        ("latitude,longitude\n44,nan\n", "line 2, field 'longitude'"),
        ("latitude,longitude\n44\n", "line 2, field 'longitude': the row is too short"),
    ],
)
def test_bad_rows_are_errors_naming_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        read_points_csv(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
