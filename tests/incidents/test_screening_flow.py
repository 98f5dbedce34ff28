"""Screening inside the service: zones and permits from files (GCJ-02), static sources from history, coverage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import prcoords
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from satellite.firms import read_firms_csv
from service.auth.service import Principal
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.flows import ingest_hotspots
from service.incidents.states import Role
from service.incidents.tables import Incident, Observation
from service.regions.service import RegionIndexCache

ADMIN = Principal("admin", Role.ADMIN)
HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n"
)


def firms(rows: list[tuple[float, float, datetime]]) -> list:
    text = HEADER + "".join(
        f"{lat},{lon},330.5,1.0,1.0,{t:%Y-%m-%d},{t:%H%M},T,80,6.1NRT,290.0,15.2,D\n" for lat, lon, t in rows
    )
    return read_firms_csv(text).hotspots


def gcj_square(lon: float, lat: float, half: float) -> list[list[float]]:
    """A square around a WGS-84 point, written in GCJ-02 as a phone map would."""
    ring = []
    for dx, dy in ((-half, -half), (half, -half), (half, half), (-half, half), (-half, -half)):
        g = prcoords.wgs_gcj(prcoords.Coords(lat + dy, lon + dx), False)
        ring.append([g.lon, g.lat])
    return ring


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_zones_permits_history_and_coverage(engine: Engine, tmp_path: Path) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    t = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
    permitted_at = (125.53, 44.33)
    zones = tmp_path / "zones.geojson"
    zones.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"kind": "限烧区", "name": "北岗限烧区"},
                        "geometry": {"type": "Polygon", "coordinates": [gcj_square(125.55, 44.33, 0.05)]},
                    },
                    {
                        "type": "Feature",
                        "properties": {"kind": "禁烧区", "name": "东河禁烧区"},
                        "geometry": {"type": "Polygon", "coordinates": [gcj_square(125.72, 44.33, 0.03)]},
                    },
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    permits = tmp_path / "permits.geojson"
    permits.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {
                            "permit_id": "P-2025-17",
                            "start": "2025-10-20T08:00+08:00",
                            "end": "2025-10-20T18:00+08:00",
                        },
                        "geometry": {"type": "Polygon", "coordinates": [gcj_square(*permitted_at, 0.004)]},
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    settings = Settings(
        data_dir=tmp_path,
        screening={"zones_file": zones, "permits_file": permits, "layers_crs": "gcj02", "static_min_days": 3},
    )
    # History: the same ~1 km cell hot on 3 earlier days → a static heat source (a boiler, say).
    static_at = (125.60, 44.20)
    history = firms([(static_at[1], static_at[0], t - timedelta(days=d)) for d in (3, 20, 41)])
    indexes = RegionIndexCache(500)
    with transaction(factory) as session:
        ingest_hotspots(session, history, indexes=indexes, settings=Settings(data_dir=tmp_path), actor=ADMIN)
    batch = firms(
        [
            (permitted_at[1], permitted_at[0], t),  # inside the permit, within its window
            (permitted_at[1], permitted_at[0], t + timedelta(hours=12)),  # same place, after the window
            (44.33, 125.72, t),  # in the no-burn zone
            (static_at[1] + 0.001, static_at[0], t),  # the static source again
            (45.5, 125.0, t),  # far outside the demo county
        ]
    )
    with transaction(factory) as session:
        summary = ingest_hotspots(session, batch, indexes=indexes, settings=settings, actor=ADMIN)
    assert summary.held == {"permitted": 1, "static_source": 1, "outside_coverage": 1}
    assert summary.new == 2
    with factory() as session:
        rows = {
            o.source_key: json.loads(o.details)["screening"]
            for o in session.scalars(select(Observation).where(Observation.observed_at >= t))
        }
        by_status = {v["status"]: v for v in rows.values()}
        assert by_status["permitted"]["permit_id"] == "P-2025-17"
        assert "P-2025-17" in by_status["permitted"]["reason"]
        accepted_zones = sorted(str(v["zone"]) for v in rows.values() if v["status"] == "accepted")
        assert accepted_zones == ["no_burn", "restricted"]  # after the permit window, it is a violation again
        held = session.scalars(
            select(Observation).where(Observation.incident_id.is_(None), Observation.observed_at >= t)
        ).all()
        # The permitted and the static source are stored with their decision; the one outside the county is
        # counted only (service.flows.ingest_screened: a global file is ~99 % outside, nobody looks those up).
        assert sorted(json.loads(o.details)["screening"]["status"] for o in held) == ["permitted", "static_source"]
        assert len(session.scalars(select(Incident)).all()) == 3 + 2  # one per history day (days apart) + two new


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_row_repeated_in_a_file_is_a_duplicate_and_a_reingest_reports_no_new_fire_point(engine: Engine) -> None:
    """A file with a line twice used to abort as a whole (the clustering refused the repeated key); re-ingesting
    a file reported its fire points as new again."""
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    t = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
    rows = firms([(44.33, 125.55, t), (44.33, 125.55, t), (44.30, 125.70, t)])
    indexes, settings = RegionIndexCache(500), Settings()
    with transaction(factory) as session:
        first = ingest_hotspots(session, rows, indexes=indexes, settings=settings, actor=ADMIN)
    assert (first.received, first.new, first.duplicates, first.fire_points) == (3, 2, 1, 2)
    with transaction(factory) as session:
        again = ingest_hotspots(session, rows, indexes=indexes, settings=settings, actor=ADMIN)
    assert (again.new, again.duplicates, again.fire_points, again.repeats, again.new_incidents) == (0, 3, 0, 0, [])


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_layers_in_a_projected_crs_and_permits_named_valid_from(engine: Engine, tmp_path: Path) -> None:
    """Zone files in a CGCS2000 Gauss-Krüger zone (metres) failed every ingest: the reader checked lon/lat ranges
    before the service converted them. Permits with valid_from/valid_to (the names the settings document) were
    refused."""
    from pyproj import Transformer

    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    to_zone42 = Transformer.from_crs("EPSG:4326", "EPSG:4530", always_xy=True)  # CGCS2000 3° GK zone 42 (126°E)

    def square_in_metres(lon: float, lat: float, half: float) -> list[list[float]]:
        corners = [(-half, -half), (half, -half), (half, half), (-half, half), (-half, -half)]
        return [list(to_zone42.transform(lon + dx, lat + dy)) for dx, dy in corners]

    zones, permits = tmp_path / "zones.geojson", tmp_path / "permits.geojson"
    zones.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {"kind": "禁烧区"},
                "geometry": {"type": "Polygon", "coordinates": [square_in_metres(125.72, 44.33, 0.03)]},
            }
        ),
        encoding="utf-8",
    )
    permits.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {
                    "permit_id": "P-9",
                    "valid_from": "2025-10-20T08:00+08:00",
                    "valid_to": "2025-10-20T18:00+08:00",
                },
                "geometry": {"type": "Polygon", "coordinates": [square_in_metres(125.53, 44.33, 0.004)]},
            }
        ),
        encoding="utf-8",
    )
    settings = Settings(
        data_dir=tmp_path, screening={"zones_file": zones, "permits_file": permits, "layers_crs": "epsg:4530"}
    )
    t = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
    with transaction(factory) as session:
        summary = ingest_hotspots(
            session, firms([(44.33, 125.72, t), (44.33, 125.53, t)]), indexes=RegionIndexCache(500),
            settings=settings, actor=ADMIN,
        )  # fmt: skip
    assert summary.held == {"permitted": 1}
    with factory() as session:
        screened = [json.loads(o.details)["screening"] for o in session.scalars(select(Observation))]
    assert sorted(str(s.get("zone")) for s in screened if s["status"] == "accepted") == ["no_burn"]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_standard_processing_of_a_handled_fire_opens_nothing(engine: Engine) -> None:
    """SP files come weeks after the NRT data the townships acted on. Keyed apart on purpose, an SP row of an
    already ingested NRT pixel opened a second incident and alerted again; it is now recorded as superseded."""
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    header = "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
    header += "bright_ti5,frp,daynight"
    nrt = read_firms_csv(f"{header}\n44.33012,125.55031,333.1,0.39,0.36,2025-10-20,530,N,VIIRS,n,2.0NRT,291.4,4.1,D\n")
    sp = read_firms_csv(
        f"{header},type\n"
        "44.33020,125.55040,333.1,0.39,0.36,2025-10-20,530,N,VIIRS,n,2,291.4,4.1,D,0\n"  # the same pixel, refined
        "44.30000,125.70000,333.1,0.39,0.36,2025-10-20,530,N,VIIRS,n,2,291.4,4.1,D,0\n"  # a fire NRT missed
    )
    indexes, settings = RegionIndexCache(500), Settings()
    with transaction(factory) as session:
        first = ingest_hotspots(session, nrt.hotspots, indexes=indexes, settings=settings, actor=ADMIN)
    assert len(first.new_incidents) == 1
    with transaction(factory) as session:
        later = ingest_hotspots(session, sp.hotspots, indexes=indexes, settings=settings, actor=ADMIN)
    assert later.held == {"superseded": 1}
    assert (later.received, later.new, later.duplicates) == (2, 1, 0)  # each row one outcome
    assert len(later.new_incidents) == 1  # only the fire the NRT data missed
    with factory() as session:
        superseded = [
            json.loads(o.details)["screening"]
            for o in session.scalars(select(Observation).where(Observation.incident_id.is_(None)))
        ]
    assert [s["superseded"] for s in superseded] == [nrt.hotspots[0].key]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_low_confidence_hotspots_are_held_only_when_the_setting_asks(engine: Engine, tmp_path: Path) -> None:
    """``screening.min_confidence`` reaches the screener: off by default (a low-class MODIS pixel opens an
    incident), 0.30 holds it as ``low_confidence`` with its reason."""
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    t = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
    low = HEADER + f"44.33,125.55,330.5,1.0,1.0,{t:%Y-%m-%d},{t:%H%M},T,20,6.1NRT,290.0,15.2,D\n"
    later = t + timedelta(days=3)
    low_later = HEADER + f"44.33,125.55,330.5,1.0,1.0,{later:%Y-%m-%d},{later:%H%M},T,20,6.1NRT,290.0,15.2,D\n"
    indexes = RegionIndexCache(500)
    with transaction(factory) as session:
        summary = ingest_hotspots(
            session, read_firms_csv(low).hotspots, indexes=indexes, settings=Settings(data_dir=tmp_path), actor=ADMIN
        )
    assert summary.new == 1
    assert not summary.held
    holding = Settings(data_dir=tmp_path, screening={"min_confidence": 0.30})
    with transaction(factory) as session:
        summary = ingest_hotspots(
            session, read_firms_csv(low_later).hotspots, indexes=indexes, settings=holding, actor=ADMIN
        )
    assert summary.held == {"low_confidence": 1}
    assert summary.new == 0


def gcj_field_around_a_town(town: tuple[float, float]) -> dict[str, object]:
    """A GCJ-02 cropland layer: one 0.1° field with the town cut out of it (a hole of 0.02°), and a detached
    parcel further east, as one MultiPolygon feature and one Polygon."""
    field = {"type": "Polygon", "coordinates": [gcj_square(*town, 0.05), gcj_square(*town, 0.01)[::-1]]}
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"DLMC": "旱地"}, "geometry": field},
            {
                "type": "Feature",
                "properties": {"DLMC": "水田"},
                "geometry": {"type": "MultiPolygon", "coordinates": [[gcj_square(125.72, 44.30, 0.02)]]},
            },
        ],
    }


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_cropland_layer_holds_a_hotspot_over_a_town_as_non_crop(engine: Engine, tmp_path: Path) -> None:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    t = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
    town = (125.53, 44.33)
    cropland = tmp_path / "gengdi.geojson"
    cropland.write_text(json.dumps(gcj_field_around_a_town(town), ensure_ascii=False), encoding="utf-8")
    settings = Settings(data_dir=tmp_path, screening={"cropland_file": cropland, "layers_crs": "gcj02"})
    batch = firms([(town[1], town[0], t), (44.33, 125.57, t), (44.30, 125.72, t)])  # town, field, parcel
    with transaction(factory) as session:
        summary = ingest_hotspots(session, batch, indexes=RegionIndexCache(500), settings=settings, actor=ADMIN)
    assert summary.held == {"non_crop": 1}
    assert summary.new == 2
    with factory() as session:
        observations = session.scalars(select(Observation).where(Observation.observed_at >= t)).all()
        by_lon = {round(o.longitude, 2): o for o in observations}
        town_row = by_lon[town[0]]
        screening = json.loads(town_row.details)["screening"]
        assert screening["status"] == "non_crop"
        # GCJ-02 converted: without it the ~0.5 km offset would put part of the pixel on the field.
        assert "cropland fraction 0.00" in screening["reason"]
        assert town_row.incident_id is None
        assert by_lon[125.57].incident_id is not None
        assert by_lon[125.72].incident_id is not None
        assert "cropland fraction 1.00" in json.loads(by_lon[125.57].details)["screening"]["reason"]
        assert len(session.scalars(select(Incident)).all()) == 2


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_cropland_from_a_projected_shapefile_and_off_without_a_file(engine: Engine, tmp_path: Path) -> None:
    """三调 data come as CGCS2000 Gauss-Krüger shapefiles: `cropland_crs` names it apart from the other layers."""
    shapefile = pytest.importorskip("shapefile")
    from pyproj import Transformer

    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    t = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
    to_gk = Transformer.from_crs("EPSG:4326", "EPSG:4551", always_xy=True)  # CGCS2000 3° GK, CM 126° E
    ring = [to_gk.transform(x, y) for x, y in ((125.52, 44.32), (125.62, 44.32), (125.62, 44.38), (125.52, 44.38))]
    with shapefile.Writer(str(tmp_path / "gengdi"), shapeType=shapefile.POLYGON, encoding="utf-8") as writer:
        writer.field("DLMC", "C", size=20)
        writer.poly([[*ring[::-1], ring[-1]]])  # a shapefile's outer ring runs clockwise
        writer.record("旱地")
    (tmp_path / "gengdi.cpg").write_text("UTF-8")
    batch = firms([(44.35, 125.57, t), (44.30, 125.72, t)])  # on the field, off it
    settings = Settings(
        data_dir=tmp_path,
        screening={"cropland_file": tmp_path / "gengdi.shp", "cropland_crs": "epsg:4551", "layers_crs": "gcj02"},
    )
    with transaction(factory) as session:
        summary = ingest_hotspots(session, batch, indexes=RegionIndexCache(500), settings=settings, actor=ADMIN)
    assert (summary.held, summary.new) == ({"non_crop": 1}, 1)
    later = firms([(44.30, 125.72, t + timedelta(days=3))])  # the same place off the field, no layer: no rule
    with transaction(factory) as session:
        summary = ingest_hotspots(
            session, later, indexes=RegionIndexCache(500), settings=Settings(data_dir=tmp_path), actor=ADMIN
        )
    assert (summary.held, summary.new) == ({}, 1)


def test_the_cropland_layer_is_read_once_per_file_version(tmp_path: Path) -> None:
    from service.screening import cropland_layer

    path = tmp_path / "gengdi.geojson"
    path.write_text(json.dumps(gcj_field_around_a_town((125.53, 44.33))), encoding="utf-8")
    first = cropland_layer(path, "gcj02")
    assert cropland_layer(path, "gcj02") is first  # cached
    assert len(first) == 2
    assert len(first[0].interiors) == 1  # the town's hole survived the conversion
    document = gcj_field_around_a_town((125.53, 44.33))
    document["features"] = document["features"][:1]  # type: ignore[index]
    path.write_text(json.dumps(document), encoding="utf-8")
    assert len(cropland_layer(path, "gcj02")) == 1  # a new version of the file is read again
    assert cropland_layer(path, "wgs84") is not cropland_layer(path, "gcj02")
