"""Multi-tower WLS triangulation on simulated towers with a known fire position."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely import Point

from video.camera import GEOD
from video.errors import InputError, TriangulationError
from video.triangulate import BearingObservation, chi2_sf, triangulate

LAT, LON = 43.9, 125.3  # Changchun


def towers_and_fire(baseline_m: float, crossing_deg: float) -> tuple[list[tuple[float, float]], tuple[float, float]]:
    """Two towers ``baseline_m`` apart east-west and a fire north of them seen at ``crossing_deg``."""
    west = GEOD.fwd(LON, LAT, 270.0, baseline_m / 2.0)[:2]
    east = GEOD.fwd(LON, LAT, 90.0, baseline_m / 2.0)[:2]
    north = (baseline_m / 2.0) / math.tan(math.radians(crossing_deg / 2.0))
    fire = GEOD.fwd(LON, LAT, 0.0, north)[:2]
    return [(float(west[0]), float(west[1])), (float(east[0]), float(east[1]))], (float(fire[0]), float(fire[1]))


def true_bearing(tower: tuple[float, float], fire: tuple[float, float]) -> float:
    return float(GEOD.inv(tower[0], tower[1], fire[0], fire[1])[0])


def observe(
    towers: list[tuple[float, float]], fire: tuple[float, float], sigma_deg: float, noise: np.ndarray | None = None
) -> list[BearingObservation]:
    offsets = np.zeros(len(towers)) if noise is None else noise
    return [
        BearingObservation(lat, lon, true_bearing((lon, lat), fire) + float(dn), sigma_deg, height_m=40.0)
        for (lon, lat), dn in zip(towers, offsets, strict=True)
    ]


def error_m(result_lat: float, result_lon: float, fire: tuple[float, float]) -> float:
    return float(GEOD.inv(result_lon, result_lat, fire[0], fire[1])[2])


def test_noise_free_bearings_recover_the_fire() -> None:
    towers, fire = towers_and_fire(4000.0, 60.0)
    towers.append(GEOD.fwd(LON, LAT, 200.0, 5000.0)[:2])
    result = triangulate(observe(towers, fire, 0.5))
    assert error_m(result.latitude, result.longitude, fire) < 0.01
    assert result.accepted
    assert result.reasons == ()
    assert result.dof == 1
    assert result.chi2 < 1e-6
    assert result.crossing_angle_deg >= 59.99


def test_two_towers_4_km_apart_60_degree_crossing_half_degree_noise() -> None:
    towers, fire = towers_and_fire(4000.0, 60.0)
    truth = observe(towers, fire, 0.5)
    base = triangulate(truth)
    assert base.crossing_angle_deg == pytest.approx(60.0, abs=0.01)
    assert base.ranges_m == pytest.approx((4000.0, 4000.0), abs=1.0)
    # closed-loop.md § 1.3: σ_pos ≈ √((rσ)² + (rσ)²)/sin γ ≈ 57 m for r = 4 km, σ = 0.5°, γ = 60°.
    assert base.sigma_position_m == pytest.approx(57.0, abs=1.0)
    # Symmetric geometry: the long axis points along the bisector (north), σ ratio 1/tan(30°).
    assert base.orientation_deg == pytest.approx(0.0, abs=0.01) or base.orientation_deg == pytest.approx(180.0)
    assert base.sigma_major_m / base.sigma_minor_m == pytest.approx(math.sqrt(3.0), rel=1e-3)

    rng = np.random.default_rng(20240923)
    trials = 1000
    errors = np.empty(trials)
    for i in range(trials):
        result = triangulate(observe(towers, fire, 0.5, rng.normal(0.0, 0.5, size=2)))
        errors[i] = error_m(result.latitude, result.longitude, fire)
    median = float(np.median(errors))
    assert median <= 60.0

    # The WLS bound: the median distance of a Gaussian with the reported covariance.
    covariance = np.array(base.covariance_m2)
    bound_samples = np.random.default_rng(7).multivariate_normal([0.0, 0.0], covariance, size=200_000)
    bound_median = float(np.median(np.hypot(bound_samples[:, 0], bound_samples[:, 1])))
    assert median == pytest.approx(bound_median, rel=0.10)


@pytest.mark.parametrize(("crossing", "sigma", "expected"), [(90.0, 0.5, 49.0), (30.0, 0.5, 99.0), (20.0, 0.5, 144.0)])
def test_covariance_matches_reference_table(crossing: float, sigma: float, expected: float) -> None:
    """closed-loop.md § 1.3 at r = 4 km (the tower baseline is chosen so both ranges are 4 km)."""
    baseline = 2.0 * 4000.0 * math.sin(math.radians(crossing / 2.0))
    towers, fire = towers_and_fire(baseline, crossing)
    result = triangulate(observe(towers, fire, sigma), min_crossing_deg=0.0)
    assert result.ranges_m == pytest.approx((4000.0, 4000.0), abs=1.0)
    assert result.sigma_position_m == pytest.approx(expected, rel=0.02)


def test_monte_carlo_three_towers_uneven_sigmas_matches_bound() -> None:
    towers, fire = towers_and_fire(5000.0, 70.0)
    towers.append(GEOD.fwd(LON, LAT, 160.0, 3000.0)[:2])
    sigmas = np.array([0.3, 0.8, 0.5])
    base = triangulate(
        [
            BearingObservation(o.latitude, o.longitude, o.bearing_deg, s)
            for o, s in zip(observe(towers, fire, 1.0), sigmas, strict=True)
        ]
    )
    rng = np.random.default_rng(11)
    errors, rejected = [], 0
    for _ in range(600):
        noise = rng.normal(0.0, sigmas)
        obs = [
            BearingObservation(o.latitude, o.longitude, o.bearing_deg, s)
            for o, s in zip(observe(towers, fire, 1.0, noise), sigmas, strict=True)
        ]
        result = triangulate(obs)
        errors.append(error_m(result.latitude, result.longitude, fire))
        rejected += not result.accepted
    bound = np.random.default_rng(3).multivariate_normal([0.0, 0.0], np.array(base.covariance_m2), size=100_000)
    assert float(np.median(errors)) == pytest.approx(float(np.median(np.hypot(*bound.T))), rel=0.10)
    assert rejected / 600 == pytest.approx(0.01, abs=0.015)  # the χ² test rejects ≈ alpha of consistent data


def test_inconsistent_bearings_are_rejected_by_chi_square() -> None:
    towers, fire = towers_and_fire(4000.0, 60.0)
    towers.append(GEOD.fwd(LON, LAT, 180.0, 3000.0)[:2])
    obs = observe(towers, fire, 0.5)
    # The third tower saw a different fire: its bearing is 5° (10 σ) off.
    obs[2] = BearingObservation(obs[2].latitude, obs[2].longitude, obs[2].bearing_deg + 5.0, 0.5)
    result = triangulate(obs)
    assert not result.accepted
    assert result.p_value is not None
    assert result.p_value < 1e-6
    assert any("inconsistent" in reason for reason in result.reasons)
    assert max(abs(r) for r in result.residuals_m) > 100.0


def test_point_behind_a_camera_is_rejected() -> None:
    towers, fire = towers_and_fire(4000.0, 60.0)
    obs = observe(towers, fire, 0.5)
    # Tower 0 looks the opposite way: the lines still cross, behind it.
    obs[0] = BearingObservation(obs[0].latitude, obs[0].longitude, obs[0].bearing_deg + 180.0, 0.5)
    result = triangulate(obs)
    assert not result.accepted
    assert any(reason.startswith("behind camera 0") for reason in result.reasons)
    assert result.ranges_m[0] < 0.0


def test_narrow_crossing_is_rejected_and_parallel_raises() -> None:
    towers, fire = towers_and_fire(1000.0, 8.0)
    result = triangulate(observe(towers, fire, 0.5))
    assert not result.accepted
    assert any("crossing angle" in reason for reason in result.reasons)
    assert result.crossing_angle_deg == pytest.approx(8.0, abs=0.01)
    assert triangulate(observe(towers, fire, 0.5), min_crossing_deg=5.0).accepted

    west = towers[0]
    parallel = [BearingObservation(west[1], west[0], 0.0, 0.5), BearingObservation(west[1], west[0], 180.0, 0.5)]
    with pytest.raises(TriangulationError, match="parallel"):
        triangulate(parallel)
    with pytest.raises(TriangulationError, match="at least 2"):
        triangulate(parallel[:1])


def test_max_range_rejection_and_ellipse() -> None:
    towers, fire = towers_and_fire(4000.0, 60.0)
    result = triangulate(observe(towers, fire, 0.5), max_range_m=3000.0)
    assert not result.accepted
    assert sum("beyond 3000 m" in reason for reason in result.reasons) == 2
    ellipse = result.ellipse()
    assert ellipse.is_valid
    assert ellipse.contains(Point(result.longitude, result.latitude))
    # 2.4477 σ along the major axis (north here) is inside, 2.6 σ is not.
    inside = GEOD.fwd(result.longitude, result.latitude, 0.0, 2.4 * result.sigma_major_m)[:2]
    outside = GEOD.fwd(result.longitude, result.latitude, 0.0, 2.6 * result.sigma_major_m)[:2]
    assert ellipse.contains(Point(*inside))
    assert not ellipse.contains(Point(*outside))


def test_chi2_survival_function_known_quantiles() -> None:
    # 99th and 95th percentiles from standard tables.
    for x, dof, p in [
        (6.635, 1, 0.01),
        (9.210, 2, 0.01),
        (11.345, 3, 0.01),
        (13.277, 4, 0.01),
        (3.841, 1, 0.05),
        (7.815, 3, 0.05),
        (11.070, 5, 0.05),
        (18.307, 10, 0.05),
    ]:
        assert chi2_sf(x, dof) == pytest.approx(p, rel=2e-3)
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(1e6, 4) == 0.0


def test_observation_validation_names_the_field() -> None:
    with pytest.raises(InputError, match="bearing_sigma_deg"):
        BearingObservation(43.9, 125.3, 10.0, 0.0)
    with pytest.raises(InputError, match="latitude"):
        BearingObservation(95.0, 125.3, 10.0, 0.5)
    with pytest.raises(InputError, match="longitude"):
        BearingObservation(43.9, math.inf, 10.0, 0.5)
