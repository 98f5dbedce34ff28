"""Regions in the database, on SQLite and PostgreSQL: migrations, atomic re-import, cached indexes."""

from __future__ import annotations

import pytest
import shapely
from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from service.db import make_session_factory, transaction
from service.regions.crs import parse_crs
from service.regions.loader import ReadReport, Repair
from service.regions.service import RegionIndexCache, import_units, list_regions, load_units
from service.regions.tables import Region, RegionImport
from service.regions.types import RegionLevel, RegionUnit

WGS = parse_crs("wgs84")


def units(prefix: str, n: int) -> list[RegionUnit]:
    return [
        RegionUnit(
            f"{prefix}{i}",
            f"镇 {i}",
            RegionLevel.TOWNSHIP,
            shapely.box(125 + i * 0.1, 44, 125.1 + i * 0.1, 44.1),
            "C1",
        )
        for i in range(n)
    ]


def test_migrations_create_the_schema(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"regions", "region_imports", "alembic_version"} <= tables


def test_import_round_trips_geometry_and_records_the_report(engine: Engine) -> None:
    factory = make_session_factory(engine)
    report = ReadReport("towns.geojson", repairs=[Repair(2, "T1", "Self-intersection")], warnings=["w"])
    with transaction(factory) as session:
        summary = import_units(session, units("T", 3), level=RegionLevel.TOWNSHIP, crs=WGS, report=report)
    assert (summary.unit_count, summary.replaced, summary.repaired) == (3, 0, 1)
    with factory() as session:
        loaded = load_units(session, RegionLevel.TOWNSHIP)
        assert [u.code for u in loaded] == ["T0", "T1", "T2"]
        assert shapely.equals_exact(loaded[1].geometry, units("T", 3)[1].geometry, tolerance=0)
        assert list_regions(session)[0].area_ha == pytest.approx(8900, rel=0.02)  # 0.1° × 0.1° at 44° N
        record = session.scalars(select(RegionImport)).one()
        assert "Self-intersection" in record.report
        assert record.imported_at.tzinfo is not None


def test_reimport_replaces_a_level_atomically(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        import_units(session, units("T", 3), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("a"))
        import_units(
            session,
            [RegionUnit("C1", "县", RegionLevel.COUNTY, shapely.box(125, 44, 126, 45))],
            level=RegionLevel.COUNTY,
            crs=WGS,
            report=ReadReport("c"),
        )
    # A failing re-import (duplicate codes reach the database) leaves the old units in place.
    broken = units("N", 2) + units("N", 1)
    with pytest.raises(IntegrityError), transaction(factory) as session:
        import_units(session, broken, level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("b"))
    with factory() as session:
        assert [u.code for u in load_units(session, RegionLevel.TOWNSHIP)] == ["T0", "T1", "T2"]
    with transaction(factory) as session:
        summary = import_units(session, units("N", 2), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("b"))
    assert summary.replaced == 3
    with factory() as session:
        assert [u.code for u in load_units(session, RegionLevel.TOWNSHIP)] == ["N0", "N1"]
        assert [u.code for u in load_units(session, RegionLevel.COUNTY)] == ["C1"]  # other levels untouched
        assert session.scalar(select(Region.level).where(Region.code == "C1")) == "county"


def test_index_cache_follows_reimports(engine: Engine) -> None:
    factory = make_session_factory(engine)
    cache = RegionIndexCache(tolerance_m=500)
    with transaction(factory) as session:
        import_units(session, units("T", 2), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("a"))
    with factory() as session:
        first = cache.get(session, RegionLevel.TOWNSHIP)
        assert cache.get(session, RegionLevel.TOWNSHIP) is first
        assert first.assign_point(125.05, 44.05).code == "T0"
    with transaction(factory) as session:
        import_units(session, units("X", 2), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("b"))
    with factory() as session:
        assert cache.get(session, RegionLevel.TOWNSHIP).assign_point(125.05, 44.05).code == "X0"
