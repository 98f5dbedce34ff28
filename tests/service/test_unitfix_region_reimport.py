"""Re-importing a level with other codes: the units still in use are listed and the import refused without
``--yes``; unknown parent codes (which escalations climb to find supervisors) are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from sqlalchemy import select
from sqlalchemy.engine import Engine

from service.alerts.service import create_recipient
from service.alerts.tables import Channel
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo, load_demo_scenario
from service.errors import ConflictError
from service.incidents.states import OPEN_STATES
from service.incidents.tables import Incident
from service.regions.crs import parse_crs
from service.regions.loader import ReadReport
from service.regions.service import RegionIndexCache, import_units, load_units
from service.regions.tables import RegionImport
from service.regions.types import RegionLevel, RegionUnit
from tests.service.test_unitfix_known_units import Strawfire, strawfire  # noqa: F401  (the fixture)

WGS = parse_crs("wgs84")


def townships_file(tmp_path: Path, parent: str, codes: tuple[str, ...] = ("T1", "T2")) -> Path:
    """Two new townships over the DEMO county's area, under ``parent``."""
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, "name": f"新镇{i}", "parent": parent},
            "geometry": shapely.geometry.mapping(shapely.box(125.5 + i * 0.1, 44.2, 125.6 + i * 0.1, 44.4)),
        }
        for i, code in enumerate(codes)
    ]
    path = tmp_path / f"towns-{parent}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def open_incidents(engine: Engine, township: str) -> list[int]:
    with make_session_factory(engine)() as session:
        return list(
            session.scalars(
                select(Incident.id)
                .where(Incident.township_code == township, Incident.state.in_([s.value for s in OPEN_STATES]))
                .order_by(Incident.id)
            )
        )


@pytest.fixture
def demo(engine: Engine) -> Engine:
    """The DEMO region and scenario (open incidents in its townships, demo-patrol on DEMO01, demo-supervisor on
    DEMO00) and a township alert recipient on DEMO02."""
    with transaction(make_session_factory(engine)) as session:
        load_demo(session)
        load_demo_scenario(session, Settings(), RegionIndexCache(500))
        create_recipient(
            session, name="东河乡群", unit_code="DEMO02", channel=Channel.WEBHOOK, target="https://x.test/h"
        )
    return engine


def new_townships() -> list[RegionUnit]:
    return [
        RegionUnit("T1", "新镇1", RegionLevel.TOWNSHIP, shapely.box(125.5, 44.2, 125.6, 44.4), "DEMO00"),
        RegionUnit("T2", "新镇2", RegionLevel.TOWNSHIP, shapely.box(125.6, 44.2, 125.7, 44.4), "DEMO00"),
    ]


def test_a_reimport_leaving_out_units_in_use_is_refused_and_names_what_uses_them(demo: Engine) -> None:
    factory = make_session_factory(demo)
    incidents = open_incidents(demo, "DEMO01")
    assert incidents  # the scenario has open fires in 北岗镇
    with pytest.raises(ConflictError) as refused, transaction(factory) as session:
        import_units(session, new_townships(), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("t"))
    message = str(refused.value)
    shown = ", ".join(str(i) for i in incidents[:5])
    assert f"DEMO01: {len(incidents)} open incident{'s' if len(incidents) > 1 else ''} ({shown}" in message
    assert "user demo-patrol" in message
    assert "alert recipient 东河乡群" in message
    assert "import with --yes" in message
    with factory() as session:  # nothing changed
        assert [u.code for u in load_units(session, RegionLevel.TOWNSHIP)] == ["DEMO01", "DEMO02", "DEMO03", "DEMO04"]
        assert session.scalar(select(RegionImport.id).where(RegionImport.source == "t")) is None


def test_with_replace_in_use_the_import_goes_ahead_and_says_what_it_orphaned(demo: Engine) -> None:
    factory = make_session_factory(demo)
    incidents = open_incidents(demo, "DEMO01")
    with transaction(factory) as session:
        summary = import_units(
            session, new_townships(), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("t"), replace_in_use=True
        )
    orphaned = {use.code: use for use in summary.removed_in_use}
    assert orphaned["DEMO01"].open_incidents == tuple(incidents)
    assert orphaned["DEMO01"].users == ("demo-patrol",)
    assert orphaned["DEMO02"].recipients == ("东河乡群",)
    assert any(w.startswith("DEMO01 was replaced while still in use") for w in summary.warnings)
    with factory() as session:
        assert [u.code for u in load_units(session, RegionLevel.TOWNSHIP)] == ["T1", "T2"]
        record = session.scalars(select(RegionImport).where(RegionImport.source == "t")).one()
        assert "DEMO01 was replaced while still in use" in record.report  # the import's record keeps it


def test_units_no_one_uses_are_replaced_without_a_word(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)  # the region only: no incidents, users or recipients
        summary = import_units(session, new_townships(), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("t"))
    assert (summary.replaced, summary.removed_in_use, summary.warnings) == (4, (), ())


def test_parent_codes_that_name_no_unit_and_children_of_a_removed_unit_are_named(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
        typo = [RegionUnit(u.code, u.name, u.level, u.geometry, "DEMO0") for u in new_townships()]
        summary = import_units(session, typo, level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("t"))
        assert summary.warnings == (
            "2 township units name a parent code that no imported unit has, though county units are imported: "
            "DEMO0 (escalations climb the parent codes to find supervisors, and a township's county is its parent: "
            "correct the codes, or import the missing parents)",
        )
        county = RegionUnit("C1", "新县", RegionLevel.COUNTY, shapely.box(125.5, 44.2, 125.7, 44.4))
        import_units(session, new_townships(), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("t2"))
        summary = import_units(session, [county], level=RegionLevel.COUNTY, crs=WGS, report=ReadReport("c"))
    assert summary.warnings == (
        "2 units of other levels name a removed county as their parent: T1 (township), T2 (township) "
        "(re-import them with the new parent codes)",
    )


def test_the_cli_refuses_without_yes_then_imports_with_it(strawfire: Strawfire, tmp_path: Path) -> None:  # noqa: F811
    assert strawfire("demo", "load").exit_code == 0
    geo = townships_file(tmp_path, "DEMO00")
    refused = strawfire("regions", "import", str(geo), "--level", "township", "--crs", "wgs84")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: the new township units leave out 4 units still in use (DEMO01: ")
    assert "user demo-patrol" in refused.stderr
    assert "\n" not in refused.stderr.strip()  # one line, as every CLI error
    listing = strawfire("regions", "list", "--level", "township")
    assert "DEMO01" in listing.stdout
    done = strawfire("regions", "import", str(geo), "--level", "township", "--crs", "wgs84", "--yes")
    assert done.exit_code == 0, done.stderr
    assert "imported 2 township units" in done.stdout
    assert "warning: DEMO01 was replaced while still in use" in done.stderr
    typo = townships_file(tmp_path, "DEMO0")
    again = strawfire("regions", "import", str(typo), "--level", "township", "--crs", "wgs84")
    assert again.exit_code == 0, again.stderr  # T1 and T2 are replaced by themselves: nothing is removed
    assert "warning: 2 township units name a parent code that no imported unit has, though county" in again.stderr
    assert "are imported: DEMO0 (" in again.stderr


def test_parents_above_every_imported_level_are_not_warned_about(engine: Engine) -> None:
    """Counties whose city is not imported (Changchun's all name 220100), or townships imported before their
    counties: a normal state, not a typo."""
    factory = make_session_factory(engine)
    county = RegionUnit("C1", "新县", RegionLevel.COUNTY, shapely.box(125.5, 44.2, 125.7, 44.4), "220100")
    with transaction(factory) as session:
        townships = import_units(session, new_townships(), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("t"))
        counties = import_units(session, [county], level=RegionLevel.COUNTY, crs=WGS, report=ReadReport("c"))
    assert (townships.warnings, counties.warnings) == ((), ())
