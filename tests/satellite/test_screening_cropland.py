"""The ``non_crop`` rule (reference satellite.md S4: cropland fraction of the footprint < 0.5 ⇒ ``non_crop``; never
delete — classify): fractions are of true areas of the pixel footprint, holes and MultiPolygons honoured, and the
rule's place among the others."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from pyproj import Geod

from satellite.himawari import FireLevel, HimawariHotspot, HimawariSatellite, QualityFlag, Reliability
from satellite.hotspot import Hotspot
from satellite.screening import (
    BurnPermit,
    PersistenceMap,
    Screener,
    ScreeningConfig,
    ScreeningStatus,
    Site,
    Zone,
    ZoneKind,
    cropland_fractions,
    read_cropland_geojson,
)
from tests.satellite.test_screening_gaps import hotspot

T0 = datetime(2025, 4, 24, 5, 55, tzinfo=UTC)
LON, LAT = 125.3, 44.0


def pixel(lon: float = LON, lat: float = LAT, when: datetime = T0) -> Hotspot:
    """A 1 km × 1 km MODIS pixel centred at the point."""
    return hotspot(lon, lat, scan=1.0, track=1.0)._replace(acq_utc=when)


def east_part(footprint: shapely.Polygon, share: float) -> shapely.Polygon:
    """A field covering the eastern ``share`` of the footprint's width, and beyond it in the other directions."""
    west, south, east, north = footprint.bounds
    return shapely.box(east - share * (east - west), south - 0.002, east + 0.002, north + 0.002)


def test_half_on_a_field_is_half_cropland() -> None:
    h = pixel()
    (fraction,) = cropland_fractions([h], [east_part(h.footprint(), 0.5)])
    assert fraction == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(("share", "status"), [(0.3, ScreeningStatus.NON_CROP), (0.7, ScreeningStatus.ACCEPTED)])
def test_non_crop_below_half_accepted_above(share: float, status: ScreeningStatus) -> None:
    h = pixel()
    (decision,) = Screener(cropland=[east_part(h.footprint(), share)]).screen([h])
    assert decision.status is status
    assert decision.cropland_fraction == pytest.approx(share, abs=2e-3)
    assert f"cropland fraction {share:.2f}" in decision.reason
    if status is ScreeningStatus.NON_CROP:
        assert "1 × 1 km pixel footprint" in decision.reason
        assert "below 0.50" in decision.reason
        assert decision.violation is False


def test_fractions_are_ratios_of_geodesic_areas() -> None:
    # A MODIS edge-of-swath pixel (4.8 × 2.0 km) at 60° N and a parcel of 0.02° × 0.01° inside it.
    geod = Geod(ellps="WGS84")
    h = hotspot(125.0, 60.0, scan=4.8, track=2.0)
    field = shapely.box(125.0 - 0.01, 60.0 - 0.005, 125.0 + 0.01, 60.0 + 0.005)
    expected = abs(geod.geometry_area_perimeter(field)[0]) / abs(geod.geometry_area_perimeter(h.footprint())[0])
    (fraction,) = cropland_fractions([h], [field])
    assert fraction == pytest.approx(expected, rel=1e-4)
    assert 0.12 < fraction < 0.14  # 1.11 km × 1.12 km of 9.6 km²


def test_a_hole_in_the_cropland_is_not_cropland() -> None:
    # A village (the hole) in the middle of a field: 0.8 km × 0.8 km of the 1 km² pixel is not cropland.
    h = pixel()
    west, south, east, north = h.footprint().bounds
    dx, dy = (east - west) * 0.4, (north - south) * 0.4
    village = shapely.box(LON - dx, LAT - dy, LON + dx, LAT + dy)
    field = shapely.Polygon(shapely.box(west - 0.1, south - 0.1, east + 0.1, north + 0.1).exterior, [village.exterior])
    (fraction,) = cropland_fractions([h], [field])
    assert fraction == pytest.approx(1 - 0.64, abs=5e-3)
    (decision,) = Screener(cropland=[field]).screen([h])
    assert decision.status is ScreeningStatus.NON_CROP


def test_multipolygon_parts_and_separate_parcels_add_up() -> None:
    h = pixel()
    west, south, east, north = h.footprint().bounds
    width = east - west
    # Two strips of 30 % each as one MultiPolygon, plus a separate parcel of 20 %: 80 % cropland.
    strips = shapely.MultiPolygon(
        [
            shapely.box(west - 0.1, south - 0.1, west + 0.3 * width, north + 0.1),
            shapely.box(west + 0.4 * width, south - 0.1, west + 0.7 * width, north + 0.1),
        ]
    )
    parcel = shapely.box(east - 0.2 * width, south - 0.1, east + 0.1, north + 0.1)
    assert cropland_fractions([h], [strips]) == [pytest.approx(0.6, abs=2e-3)]
    assert cropland_fractions([h], [strips, parcel]) == [pytest.approx(0.8, abs=2e-3)]
    document = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"DLMC": "旱地"}, "geometry": shapely.geometry.mapping(strips)}],
    }
    assert read_cropland_geojson(json.dumps(document, ensure_ascii=False))[0].equals(strips)


def test_records_without_pixel_size_are_tested_at_their_centre() -> None:
    class Point:
        def __init__(self, lon: float, lat: float) -> None:
            self.key, self.longitude, self.latitude, self.acq_utc, self.frp_mw = f"{lon}", lon, lat, T0, 5.0

    field = shapely.box(LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01)
    inside, outside = Point(LON, LAT), Point(LON + 0.05, LAT)
    assert cropland_fractions([inside, outside], [field]) == [1.0, 0.0]
    decisions = Screener(cropland=[field]).screen([inside, outside])
    assert [d.status for d in decisions] == [ScreeningStatus.ACCEPTED, ScreeningStatus.NON_CROP]
    assert "centre lies on no cropland polygon" in decisions[1].reason


def test_himawari_is_weighed_on_its_grid_cell() -> None:
    h = HimawariHotspot(
        HimawariSatellite.HIMAWARI_9,
        T0,
        LAT,
        LON,
        3.9,
        0,
        FireLevel.FLAMING,
        Reliability.HIGH,
        5.0,
        QualityFlag.NORMAL,
        1,
        1,
    )
    field = shapely.box(LON - 0.01, LAT - 0.01, LON + 0.004, LAT + 0.01)  # 70 % of the 0.02° cell's width
    (fraction,) = cropland_fractions([h], [field])
    assert fraction == pytest.approx(0.7, abs=2e-3)


def test_a_batch_is_computed_together_in_input_order() -> None:
    hotspots = [pixel(LON + 0.1 * i) for i in range(5)]
    fields = [east_part(h.footprint(), share) for h, share in zip(hotspots, (0.1, 0.9, 0.0, 0.5, 1.0), strict=True)]
    # A share of 0 is a field just east of the pixel: touching is not overlapping.
    fractions = cropland_fractions(hotspots, fields)
    assert fractions == pytest.approx([0.1, 0.9, 0.0, 0.5, 1.0], abs=2e-3)
    assert [d.status for d in Screener(cropland=fields).screen(hotspots)] == [
        ScreeningStatus.NON_CROP,
        ScreeningStatus.ACCEPTED,
        ScreeningStatus.NON_CROP,
        ScreeningStatus.ACCEPTED,  # exactly half is not "less than half"
        ScreeningStatus.ACCEPTED,
    ]


def test_the_threshold_is_configurable() -> None:
    h = pixel()
    field = east_part(h.footprint(), 0.6)
    strict = Screener(ScreeningConfig(min_cropland_fraction=0.8), cropland=[field])
    assert strict.screen([h])[0].status is ScreeningStatus.NON_CROP
    assert "below 0.80" in strict.screen([h])[0].reason
    with pytest.raises(ValueError, match="min_cropland_fraction"):
        ScreeningConfig(min_cropland_fraction=0.0)


def test_off_by_default_and_an_empty_layer_is_refused() -> None:
    h = pixel()
    (decision,) = Screener().screen([h])  # over no cropland at all
    assert decision.status is ScreeningStatus.ACCEPTED
    assert decision.cropland_fraction is None
    assert "cropland" not in decision.reason
    with pytest.raises(ValueError, match="empty"):
        Screener(cropland=[])
    with pytest.raises(ValueError, match="not a valid polygon"):
        Screener(cropland=[shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])])


# --- precedence ----------------------------------------------------------------------------------------------


def town(h: Hotspot) -> list[shapely.Polygon]:
    """Cropland that misses the pixel (a town there)."""
    west, _, _, _ = h.footprint().bounds
    return [shapely.box(west - 0.2, LAT - 0.2, west - 0.1, LAT + 0.2)]


def square(h: Hotspot, half: float = 0.01) -> shapely.Polygon:
    return shapely.box(h.longitude - half, h.latitude - half, h.longitude + half, h.latitude + half)


def test_non_crop_beats_permits_and_zones() -> None:
    h = pixel()
    permit = BurnPermit("P-1", square(h), T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    zone = Zone("R-1", ZoneKind.RESTRICTED, "", square(h))
    (decision,) = Screener(zones=[zone], permits=[permit], cropland=town(h)).screen([h])
    assert decision.status is ScreeningStatus.NON_CROP
    assert [f.status for f in decision.findings] == [ScreeningStatus.NON_CROP, ScreeningStatus.PERMITTED]
    assert (decision.zone, decision.permit_id, decision.violation) == (ZoneKind.RESTRICTED, None, False)
    no_burn = Zone("NB-1", ZoneKind.NO_BURN, "", square(h))
    (decision,) = Screener(zones=[no_burn], cropland=town(h)).screen([h])
    assert (decision.status, decision.violation) == (ScreeningStatus.NON_CROP, False)


def test_non_crop_beats_low_confidence() -> None:
    h = hotspot(LON, LAT, scan=1.0, track=1.0, confidence="10")
    (decision,) = Screener(ScreeningConfig(min_confidence=0.3), cropland=town(h)).screen([h])
    assert [f.status for f in decision.findings] == [ScreeningStatus.NON_CROP, ScreeningStatus.LOW_CONFIDENCE]


def test_static_sources_and_sites_outrank_non_crop() -> None:
    h = pixel()
    history = PersistenceMap.from_hotspots(pixel(when=T0 - timedelta(days=d)) for d in range(1, 12))
    (decision,) = Screener(persistence=history, cropland=town(h)).screen([h])
    assert [f.status for f in decision.findings] == [ScreeningStatus.STATIC_SOURCE, ScreeningStatus.NON_CROP]
    assert decision.status is ScreeningStatus.STATIC_SOURCE
    (decision,) = Screener(sites=[Site("S-1", "热电厂", square(h))], cropland=town(h)).screen([h])
    assert decision.status is ScreeningStatus.INDUSTRIAL_SITE
    assert ScreeningStatus.NON_CROP in {f.status for f in decision.findings}
    assert math.isclose(decision.cropland_fraction or 0.0, 0.0)
