"""Terrain for the DEM marching tests and bench/bench_ground.py: a real-shaped DEM and the global-bound marcher."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from affine import Affine
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer

from video.ground import DemTerrain

LAT, LON = 43.9, 125.3


def rolling_plain_heights(rows: int, cols: int, *, seed: int, relief_m: float = 60.0) -> NDArray[np.float64]:
    """Heights of a rolling plain like the Songliao plain east of Changchun: 190 m plus ``relief_m`` of fractal
    terrain (spectral synthesis, amplitude ∝ 1/k^1.1 — the power-law spectrum of real terrain), flat-bottomed
    valleys (the 1.6 power), rounded to whole metres as SRTM and Copernicus DEMs are."""
    rng = np.random.default_rng(seed)
    ky, kx = np.fft.fftfreq(rows)[:, None], np.fft.fftfreq(cols)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    spectrum = (rng.normal(size=(rows, cols)) + 1j * rng.normal(size=(rows, cols))) / k**1.1
    spectrum[0, 0] = 0.0
    field = np.real(np.fft.ifft2(spectrum))
    field = (field - field.min()) / (field.max() - field.min())
    return np.asarray(np.round(190.0 + relief_m * field**1.6), dtype=np.float64)


def rolling_plain_dem(heights: NDArray[np.float64], crs: str = "EPSG:32651") -> DemTerrain:
    """``heights`` as a 1-arcsecond-like DEM (30 m in UTM 51N, 1″ in EPSG:4326) centred on (LAT, LON)."""
    rows, cols = heights.shape
    if crs == "EPSG:4326":
        cell = 1.0 / 3600.0
        transform = Affine(cell, 0.0, LON - cols / 2 * cell, 0.0, -cell, LAT + rows / 2 * cell)
    else:
        x0, y0 = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(LON, LAT)
        transform = Affine(30.0, 0.0, x0 - cols / 2 * 30.0, 0.0, -30.0, y0 + rows / 2 * 30.0)
    return DemTerrain(heights, transform, crs)


class GlobalBoundTerrain:
    """A DEM as the marcher saw it before per-block bounds: one global maximum slope everywhere and no height bound
    — the reference the local bounds must agree with."""

    def __init__(self, dem: DemTerrain) -> None:
        self.dem = dem
        self.resolution_m = dem.resolution_m

    def elevation(self, longitude: ArrayLike, latitude: ArrayLike) -> NDArray[np.float64]:
        return self.dem.elevation(longitude, latitude)

    def bounds_near(self, longitude: float, latitude: float, radii_m: Sequence[float]) -> list[tuple[float, float]]:
        return [(np.inf, self.dem.max_slope)] * len(radii_m)


class SampleCounter:
    """Counts the ground points a terrain is asked for (the marcher's work, without timing it)."""

    def __init__(self, dem: DemTerrain) -> None:
        self.points = 0
        self._elevation = dem.elevation
        dem.elevation = self  # type: ignore[method-assign]

    def __call__(self, longitude: ArrayLike, latitude: ArrayLike) -> NDArray[np.float64]:
        heights = self._elevation(longitude, latitude)
        self.points += heights.size
        return heights
