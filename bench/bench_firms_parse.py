"""Benchmark: parse the real FIRMS MODIS global 24-hour CSV (16,017 rows) with strawfire and with pandas.

strawfire's ``read_firms_csv`` (validated, normalised, immutable ``Hotspot`` records plus rejected-row reports)
against ``pandas.read_csv`` (typed columns only: no validation, no normalisation, no per-row objects) on the same
bytes, in the same run, alternating the two so that machine load affects both alike. Both read from memory, so
disk speed is not measured. Prints rows/s (best and median of the runs) for each and the ratio.

For context it also times the floor of any reader that returns one Python record per row: building the same
records with ``tuple.__new__`` from ready-made Python lists, which every such reader pays on top of parsing.

    .venv/bin/python bench/bench_firms_parse.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from itertools import repeat
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from satellite.firms import read_firms_csv  # noqa: E402
from satellite.hotspot import Hotspot  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "firms" / "MODIS_C6_1_Global_24h_2025-04-23_full.csv"


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def line(label: str, rows: int, times: list[float]) -> str:
    best, median = min(times), statistics.median(times)
    return (
        f"{label:<34} best {best * 1e3:7.2f} ms = {rows / best:>10,.0f} rows/s   "
        f"median {median * 1e3:7.2f} ms = {rows / median:>10,.0f} rows/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30, help="runs of each reader (default 30)")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} is missing (../shared/data is not checked out)")
        return
    try:
        import pandas as pd
    except ImportError:
        print("skipped: pandas is not installed (pip install -e '.[dev]')")
        return

    data = DATA.read_bytes()
    result = read_firms_csv(data, source_name=DATA.name)
    frame = pd.read_csv(io.BytesIO(data))
    rows = len(result.hotspots)
    if result.rejected or rows != len(frame):
        print(f"error: strawfire read {rows} rows ({len(result.rejected)} rejected), pandas {len(frame)}")
        sys.exit(1)

    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(max(1, args.repeat)):
        ours.append(timed(lambda: read_firms_csv(data, source_name=DATA.name)))
        theirs.append(timed(lambda: pd.read_csv(io.BytesIO(data))))

    columns = [list(col) for col in zip(*result.hotspots, strict=True)]
    new = tuple.__new__
    floor = [
        timed(lambda: list(map(new, repeat(Hotspot), zip(*columns, strict=True)))) for _ in range(max(1, args.repeat))
    ]

    print(f"{DATA.name}: {len(data):,} bytes, {rows:,} rows, {args.repeat} runs each (Python {sys.version.split()[0]})")
    print(line("strawfire read_firms_csv", rows, ours))
    print(line("pandas.read_csv", rows, theirs))
    print(line("floor: build records from lists", rows, floor))
    print(
        f"ratio strawfire/pandas (rows/s): best {min(theirs) / min(ours):.2f}, "
        f"median {statistics.median(theirs) / statistics.median(ours):.2f}  (>1 means strawfire is faster)"
    )


if __name__ == "__main__":
    main()
