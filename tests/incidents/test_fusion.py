"""Fusion rules: overlap + time windows per kind pair, transitivity, noisy-OR, location precedence."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import shapely

from service.incidents.fusion import (
    FusionWindows,
    Located,
    ObservationIn,
    ObservationKind,
    best_location,
    combined_confidence,
    linked_incidents,
)

T0 = datetime(2025, 4, 23, 3, 0, tzinfo=UTC)
K = ObservationKind


def obs(
    kind: ObservationKind,
    region: shapely.Geometry,
    minutes: float = 0,
    confidence: float = 0.5,
    frp: float | None = None,
    key: str = "k",
) -> ObservationIn:
    c = region.centroid
    return ObservationIn(kind, key, T0 + timedelta(minutes=minutes), c.y, c.x, region, confidence, frp)


def located(incident: int, kind: ObservationKind, region: shapely.Geometry, minutes: float = 0) -> Located:
    return Located(incident, kind, T0 + timedelta(minutes=minutes), region)


PIXEL = shapely.box(125.40, 44.00, 125.41, 44.01)
WEDGE = shapely.Polygon([(125.3, 43.95), (125.45, 44.02), (125.45, 44.03)])


def test_overlap_and_time_windows_per_pair_of_kinds() -> None:
    w = FusionWindows()
    camera = obs(K.CAMERA, WEDGE, minutes=0)
    assert linked_incidents(camera, [located(1, K.CAMERA, WEDGE, minutes=-110)], w) == [1]
    assert linked_incidents(camera, [located(1, K.CAMERA, WEDGE, minutes=-130)], w) == []  # > 2 h
    assert linked_incidents(camera, [located(1, K.SATELLITE, PIXEL, minutes=-350)], w) == [1]  # < 6 h
    assert linked_incidents(camera, [located(1, K.SATELLITE, PIXEL, minutes=-370)], w) == []
    far = shapely.box(125.6, 44.2, 125.61, 44.21)
    assert linked_incidents(camera, [located(1, K.CAMERA, far)], w) == []


def test_one_observation_links_several_incidents_transitively() -> None:
    a = shapely.box(125.40, 44.00, 125.41, 44.01)
    b = shapely.box(125.412, 44.00, 125.42, 44.01)
    bridge = shapely.box(125.405, 44.00, 125.415, 44.01)
    got = linked_incidents(
        obs(K.SATELLITE, bridge), [located(7, K.SATELLITE, b), located(3, K.SATELLITE, a)], FusionWindows()
    )
    assert got == [3, 7]


def test_buffer_links_regions_that_nearly_touch() -> None:
    a = shapely.box(125.40, 44.00, 125.41, 44.01)
    b = shapely.box(125.4105, 44.00, 125.42, 44.01)  # ~40 m gap
    assert linked_incidents(obs(K.SATELLITE, b), [located(1, K.SATELLITE, a)], FusionWindows()) == []
    assert linked_incidents(obs(K.SATELLITE, b), [located(1, K.SATELLITE, a)], FusionWindows(buffer_m=50)) == [1]


def test_noisy_or() -> None:
    assert combined_confidence([0.5, 0.5]) == pytest.approx(0.75)
    assert combined_confidence([0.9, 0.7, 0.4]) == pytest.approx(1 - 0.1 * 0.3 * 0.6)
    assert combined_confidence([]) == 0.0


def test_location_precedence() -> None:
    drone = obs(K.DRONE, shapely.Point(125.405, 44.005), confidence=0.3, key="d")
    tri = obs(K.TRIANGULATED, PIXEL, confidence=0.9, key="t")
    sat_low = obs(K.SATELLITE, PIXEL, confidence=0.8, frp=5, key="s1")
    sat_high = obs(K.SATELLITE, PIXEL, confidence=0.8, frp=50, key="s2")
    cam = obs(K.CAMERA, WEDGE, confidence=0.99, key="c")
    assert best_location([cam, sat_low, tri, drone]).source_key == "d"
    assert best_location([cam, sat_low, tri]).source_key == "t"
    assert best_location([cam, sat_low, sat_high]).source_key == "s2"
    assert best_location([cam]).source_key == "c"


def test_a_drone_whose_ray_found_no_ground_locates_no_better_than_a_camera() -> None:
    """Its region is a bearing wedge kilometres long (or a disc round the drone): ranked first, it had made the
    incident's point that wedge's middle, over a satellite pixel of the same fire."""
    sat = obs(K.SATELLITE, PIXEL, confidence=0.5, key="s")
    wedge = dataclasses.replace(
        obs(K.DRONE, WEDGE, confidence=0.9, key="d"), details={"ground_status": "above_horizon"}
    )
    hit = dataclasses.replace(wedge, details={"ground_status": "hit"}, source_key="h")
    cam = obs(K.CAMERA, WEDGE, confidence=0.95, key="c")
    assert best_location([wedge, sat]).source_key == "s"
    assert best_location([wedge, cam]).source_key == "c"  # then by confidence, as among cameras
    assert best_location([wedge, sat, hit]).source_key == "h"
    assert best_location([wedge]).source_key == "d"


def test_observation_validation() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ObservationIn(K.DRONE, "x", datetime(2025, 1, 1), 44, 125, shapely.Point(125, 44), 0.5)
    with pytest.raises(ValueError, match="confidence"):
        ObservationIn(K.DRONE, "x", T0, 44, 125, shapely.Point(125, 44), 1.5)


def test_batch_plan_equals_pairwise_linking_and_joins_existing_incidents() -> None:
    from service.incidents.fusion import plan_batch

    w = FusionWindows()
    a = obs(K.SATELLITE, shapely.box(125.40, 44.00, 125.41, 44.01), key="a")
    b = obs(K.SATELLITE, shapely.box(125.409, 44.00, 125.419, 44.01), key="b")  # overlaps a
    c = obs(K.SATELLITE, shapely.box(125.418, 44.00, 125.428, 44.01), key="c")  # overlaps b only: chain
    far = obs(K.SATELLITE, shapely.box(126.0, 44.5, 126.01, 44.51), key="far")
    late = obs(K.CAMERA, WEDGE, minutes=400, key="late")  # crosses a's pixel, but 6 h 40 min later
    existing = [located(9, K.SATELLITE, shapely.box(125.427, 44.00, 125.437, 44.01), minutes=-60)]
    groups = plan_batch([a, b, c, far, late], existing, w)
    as_sets = sorted((g.observations, g.incidents) for g in groups)
    assert ((0, 1, 2), (9,)) in as_sets  # a–b–c chain reaches incident 9 through c
    assert ((3,), ()) in as_sets
    assert ((4,), ()) in as_sets
    assert sum(len(g.observations) for g in groups) == 5
    # A camera observation 5 h after a camera-only incident does not link (2 h window) …
    old_camera = [located(4, K.CAMERA, WEDGE, minutes=-300)]
    assert plan_batch([obs(K.CAMERA, WEDGE, key="x")], old_camera, w)[0].incidents == ()
    # … but within 6 h of a satellite observation it does.
    old_sat = [located(5, K.SATELLITE, PIXEL, minutes=-300)]
    assert plan_batch([obs(K.CAMERA, WEDGE, key="y")], old_sat, w)[0].incidents == (5,)


def test_a_camera_wedge_never_bridges_two_fires() -> None:
    """A wedge is kilometres long: two satellite fires 8 km apart inside one tower's wedge stay two fires (the
    wedge had merged them, closing one as a duplicate). The camera joins the one nearest its point."""
    from service.incidents.fusion import plan_batch

    w = FusionWindows()
    long_wedge = shapely.Polygon([(125.30, 44.00), (125.50, 44.004), (125.50, 44.006), (125.30, 44.01)])
    near = shapely.box(125.34, 44.003, 125.35, 44.008)
    far = shapely.box(125.44, 44.003, 125.45, 44.008)
    existing = [located(1, K.SATELLITE, near, minutes=-30), located(2, K.SATELLITE, far, minutes=-30)]
    camera = ObservationIn(K.CAMERA, "cam", T0, 44.005, 125.445, long_wedge, 0.7)  # its ground fix: by the far fire
    [group] = plan_batch([camera], existing, w)
    assert group.incidents == (2,)
    # Without a ground fix (its point the wedge's middle, nearer the first fire) it joins that one, still one only.
    unlocated = ObservationIn(K.CAMERA, "cam2", T0, 44.005, 125.36, long_wedge, 0.7)
    assert plan_batch([unlocated], existing, w)[0].incidents == (1,)


def test_a_pixel_joins_through_a_wedge_only_a_fire_no_pixel_has_placed() -> None:
    from service.incidents.fusion import plan_batch

    w = FusionWindows()
    long_wedge = shapely.Polygon([(125.30, 44.00), (125.50, 44.004), (125.50, 44.006), (125.30, 44.01)])
    in_wedge = shapely.box(125.44, 44.003, 125.45, 44.008)
    pixel = obs(K.SATELLITE, in_wedge, key="p")
    # A camera-only fire: the pixel in its wedge is that fire, placed at last.
    assert plan_batch([pixel], [located(3, K.CAMERA, long_wedge, minutes=-20)], w)[0].incidents == (3,)
    # A fire a pixel already placed 8 km away along the wedge: this pixel is another fire.
    elsewhere = [
        located(4, K.CAMERA, long_wedge, minutes=-20),
        located(4, K.SATELLITE, shapely.box(125.34, 44.003, 125.35, 44.008), minutes=-20),
    ]
    assert plan_batch([pixel], elsewhere, w)[0].incidents == ()
    # A pixel overlapping a placed fire's pixel joins it, and not the other fire whose wedge it also touches.
    touching = [*elsewhere, located(5, K.SATELLITE, shapely.box(125.445, 44.003, 125.455, 44.008), minutes=-20)]
    assert plan_batch([pixel], touching, w)[0].incidents == (5,)


def test_a_fire_placed_before_the_window_is_still_placed() -> None:
    from service.incidents.fusion import plan_batch

    long_wedge = shapely.Polygon([(125.30, 44.00), (125.50, 44.004), (125.50, 44.006), (125.30, 44.01)])
    pixel = obs(K.SATELLITE, shapely.box(125.44, 44.003, 125.45, 44.008), key="p")
    camera_only = [located(6, K.CAMERA, long_wedge, minutes=-20)]  # its placing pixel is older than the window
    assert plan_batch([pixel], camera_only, FusionWindows())[0].incidents == (6,)
    assert plan_batch([pixel], camera_only, FusionWindows(), placed_before={6})[0].incidents == ()


def test_a_satellite_pass_6_to_24_h_later_at_the_same_spot_joins_the_incident() -> None:
    """§2.4 step 3: the next overpasses over a fire not yet 销号 belong to it (the caller offers only incidents
    that are not closed or false alarms). The 6 h window alone opened a second incident for the same field."""
    from service.incidents.fusion import plan_batch

    w = FusionWindows()
    pixel = obs(K.SATELLITE, PIXEL, minutes=12 * 60)
    assert linked_incidents(pixel, [located(1, K.SATELLITE, PIXEL)], w) == [1]
    assert linked_incidents(pixel, [located(1, K.DRONE, shapely.Point(125.405, 44.005))], w) == [1]
    assert plan_batch([pixel], [located(1, K.SATELLITE, PIXEL)], w)[0].incidents == (1,)
    # Beyond 24 h, elsewhere, or through a camera's wedge (kilometres long) it is not the same spot.
    assert linked_incidents(obs(K.SATELLITE, PIXEL, minutes=25 * 60), [located(1, K.SATELLITE, PIXEL)], w) == []
    elsewhere = shapely.box(125.6, 44.2, 125.61, 44.21)
    assert linked_incidents(obs(K.SATELLITE, elsewhere, minutes=12 * 60), [located(1, K.SATELLITE, PIXEL)], w) == []
    assert linked_incidents(pixel, [located(1, K.CAMERA, WEDGE)], w) == []
    assert plan_batch([pixel], [located(1, K.CAMERA, WEDGE)], w)[0].incidents == ()
    # Cameras keep their own windows; a repass window shorter than the satellite window changes nothing.
    assert w.window(K.CAMERA, K.CAMERA) == timedelta(hours=2)
    assert w.window(K.SATELLITE, K.CAMERA) == timedelta(hours=6)
    assert w.window(K.SATELLITE, K.TRIANGULATED) == timedelta(hours=24)
    assert FusionWindows(satellite_repass=timedelta(hours=1)).window(K.SATELLITE, K.SATELLITE) == timedelta(hours=6)
    assert w.reach == timedelta(hours=24)


def test_a_pass_hours_after_a_fire_was_put_out_is_a_fire_again_not_part_of_the_old_incident() -> None:
    """A fire reported put out (extinguished, fed back, verified) takes no 6–24 h repass: joining it would have
    told no one that the field burns again; a new incident alerts the township. Within 6 h it still joins."""
    from service.incidents.fusion import Located, plan_batch

    w = FusionWindows()
    handled = Located(1, K.SATELLITE, T0, PIXEL, takes_repass=False)
    assert linked_incidents(obs(K.SATELLITE, PIXEL, minutes=12 * 60), [handled], w) == []
    assert plan_batch([obs(K.SATELLITE, PIXEL, minutes=12 * 60)], [handled], w)[0].incidents == ()
    assert linked_incidents(obs(K.SATELLITE, PIXEL, minutes=5 * 60), [handled], w) == [1]
    assert plan_batch([obs(K.SATELLITE, PIXEL, minutes=5 * 60)], [handled], w)[0].incidents == (1,)
