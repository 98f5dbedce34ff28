"""Himawari files through the service's ingest: fire points and repeats across files that arrive out of order."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from satellite.himawari import read_himawari_csv
from service.auth.service import Principal
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.flows import ingest_hotspots
from service.incidents.states import Role
from service.regions.service import RegionIndexCache

ADMIN = Principal("admin", Role.ADMIN)
HEADER = "# ID,Year,Month,Day,Time(UTC),Lat,Lon,Area(km^2),Volcano,Level,Reliability,FRP(Wm^-2),QF,Hot(ID)"


def himawari_file(hhmm: str, row_minute: str) -> list:
    """One 10-minute file of 2025-10-20 with one cell on a field near Changchun (in the demo's coverage)."""
    name = f"H09_20251020_{hhmm}_L2WLF010_FLDK.06001_06001.csv"
    times = f"# 2025 10 20  {int(hhmm[:2])} {int(hhmm[2:])} UTC  2025 10 20  {int(hhmm[:2])} 59 UTC"
    row = f"1,2025,10,20,{row_minute},44.34,125.56,3.88,0,2,5,6.20,0,1"
    return read_himawari_csv("\n".join([times, HEADER, row]), source_name=name).hotspots


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_earlier_file_ingested_after_a_later_one_is_a_repeat(engine: Engine) -> None:
    """Clustering treats a later fire point as history too (FIRMS and P-Tree files arrive out of order, and a
    CLI run takes files in the order given), but the service loaded history only from *before* the batch: the
    04:10 scan of a fire already alarmed at 04:20 was counted as a second new fire point."""
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    indexes, settings = RegionIndexCache(500), Settings()
    with transaction(factory) as session:
        later = ingest_hotspots(session, himawari_file("0420", "423"), indexes=indexes, settings=settings, actor=ADMIN)
    assert (later.new, later.fire_points, later.repeats) == (1, 1, 0)
    with transaction(factory) as session:
        earlier = ingest_hotspots(
            session, himawari_file("0410", "413"), indexes=indexes, settings=settings, actor=ADMIN
        )
    assert (earlier.new, earlier.fire_points, earlier.repeats) == (1, 0, 1)
    with transaction(factory) as session:
        next_scan = ingest_hotspots(
            session, himawari_file("0430", "433"), indexes=indexes, settings=settings, actor=ADMIN
        )
    assert (next_scan.new, next_scan.fire_points, next_scan.repeats) == (1, 0, 1)
