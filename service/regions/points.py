"""Read WGS-84 points from any CSV with ``latitude`` and ``longitude`` columns (other columns are ignored)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.errors import InputError


def read_points_csv(path: Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return (longitude, latitude) arrays in file order; any bad row is an error naming its line."""
    source = str(path)
    try:
        # Only the two number columns are read: text in other columns need not be UTF-8 (Excel on a Chinese Windows
        # writes GBK), and a stray byte in a coordinate still fails as "not a number" on its line.
        handle = path.open(encoding="utf-8-sig", errors="replace", newline="")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", source=source) from exc
    lons: list[float] = []
    lats: list[float] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError("the file is empty", source=source) from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"not a readable CSV: {exc}", source=source, location="line 1") from exc
        columns = {name.strip().lower(): i for i, name in enumerate(header)}
        missing = [name for name in ("latitude", "longitude") if name not in columns]
        if missing:
            raise InputError(
                f"no {' and no '.join(missing)} column (header: {', '.join(header)})",
                source=source,
                location="line 1",
            )
        lat_col, lon_col = columns["latitude"], columns["longitude"]
        try:
            for record in reader:
                line = f"line {reader.line_num}"
                if not record or all(not cell.strip() for cell in record):
                    continue
                values = []
                for name, col, limit in (("latitude", lat_col, 90.0), ("longitude", lon_col, 180.0)):
                    if col >= len(record):
                        raise InputError("the row is too short", source=source, location=line, field=name)
                    text = record[col].strip()
                    try:
                        value = float(text)
                    except ValueError:
                        raise InputError(
                            f"{text!r} is not a number", source=source, location=line, field=name
                        ) from None
                    if not math.isfinite(value) or abs(value) > limit:
                        raise InputError(
                            f"{text} is outside -{limit:g}..{limit:g}",
                            source=source,
                            location=line,
                            field=name,
                        )
                    values.append(value)
                lats.append(values[0])
                lons.append(values[1])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"not a readable CSV: {exc}", source=source, location=f"line {reader.line_num}") from exc
    if not lats:
        raise InputError("the file has a header but no rows", source=source)
    return np.array(lons, dtype=np.float64), np.array(lats, dtype=np.float64)
