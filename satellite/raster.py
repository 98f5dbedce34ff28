"""Active-fire rules on satellite bands, and fire masks turned into fire points.

Three rule sets, each a pure function of band arrays (no I/O, no network), written so that the Sentinel Hub
evalscripts (:mod:`satellite.evalscripts`) compute *bit for bit* the same per-pixel result from the same
thresholds:

* **Landsat-8/9 OLI**, daytime: Schroeder et al. 2016 (RSE 185:210-220), eqs. 1-9, on top-of-atmosphere
  reflectance of OLI bands 1-7 — unambiguous fires (eqs. 1-2), potential fires (eqs. 3 and 6) confirmed by the
  contextual test in a 61x61 window (eqs. 4-5), and the water mask (eqs. 7-9). Formulas as implemented in
  ``pereira-gha/activefire:src/landsat/L8_FIRE_ALL_MASKS_v3.py`` (project reference ``satellite.md`` §6.1).
* **Sentinel-2 MSI**, SWIR: the published hot-pixel tests of ``sentinel-hub/custom-scripts`` — Markuse
  ``B11 + B12 > 1.0`` and TIZNEGAR ``(B12 - B11)/(B12 + B11) > 0.4 or B12 > 1`` — accepted only where the Hu et
  al. 2021 (JAG 101:102347) line ``B4 <= a*B12 + b`` holds, which rejects bright non-burning surfaces (desert,
  cloud, snow) and dark noisy ones. Hu 2021 has no coefficients for the temperate biomes around Changchun; the
  boreal line (0.727, -0.11) is the reference's stated fallback (§6.2, S10) until local calibration.
* **Sentinel-3 SLSTR**: the ESA L2 FRP absolute test on the 3.7 um brightness temperature, 360 K by day and
  320 K by night (§6.5), with the 3.7 um value taken from whichever of S7 and F1 reads higher (S7 saturates below
  fire temperatures, F1 is the fire channel); optionally, by day, the TIZNEGAR SWIR rule
  ``(S6 - S5)/(S6 + S5) > 0.05 and S1 < 0.23`` (§5.4).

Every threshold lives in one frozen dataclass per rule set (:class:`LandsatThresholds`,
:class:`Sentinel2Thresholds`, :class:`SlstrThresholds`); the evalscripts are generated from the same instances.
Pixel tests return a ``uint8`` code per pixel (:class:`PixelFlag` bits), the same code the evalscripts return,
and :func:`fire_mask_from_codes` turns codes into the final fire mask (for Landsat, by running the contextual
test, which needs a neighbourhood and therefore cannot run per pixel in an evalscript).

:func:`fire_points` vectorises a mask into one :class:`FirePoint` per 8-connected cluster, in WGS-84, with the
geodesic area of its pixels. :func:`scan_scene` reads a local multi-band GeoTIFF, :func:`scan_bands` takes numpy
bands with a transform and CRS.

Arithmetic is IEEE double (numpy ``float64``), as in JavaScript, so a pixel exactly on a threshold is decided
the same way locally and by Sentinel Hub. Bands are held as ``float32`` (what Sentinel Hub delivers) and
widened block by block.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import IntFlag, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from satellite.errors import RasterBandError, RasterError, RasterReadError

if TYPE_CHECKING:
    from affine import Affine
    from pyproj import CRS

__all__ = [
    "BAND_ORDER",
    "LANDSAT_THRESHOLDS",
    "SENTINEL2_THRESHOLDS",
    "SLSTR_SWIR_BANDS",
    "SLSTR_THRESHOLDS",
    "VALUE_UNITS",
    "FirePoint",
    "LandsatThresholds",
    "PixelFlag",
    "RuleSet",
    "SceneScan",
    "Sensor",
    "Sentinel2Thresholds",
    "SlstrThresholds",
    "Thresholds",
    "fire_mask_from_codes",
    "fire_points",
    "landsat_contextual_test",
    "landsat_pixel_codes",
    "pixel_codes",
    "pixel_thresholds",
    "required_bands",
    "resolve_band_map",
    "scan_bands",
    "scan_codes",
    "scan_scene",
    "sentinel2_pixel_codes",
    "slstr_mir",
    "slstr_pixel_codes",
    "thresholds_for",
]

FloatArray = npt.NDArray[np.floating[Any]]
BoolArray = npt.NDArray[np.bool_]
CodeArray = npt.NDArray[np.uint8]


class RuleSet(StrEnum):
    """Which family of fire rules applies to a sensor's bands."""

    LANDSAT = "landsat"
    SENTINEL2 = "sentinel2"
    SLSTR = "slstr"


class Sensor(StrEnum):
    """A sensor whose scenes strawfire can scan. Landsat-8 and -9 carry the same OLI design and share the rules."""

    LANDSAT8 = "landsat8"
    LANDSAT9 = "landsat9"
    SENTINEL2 = "sentinel2"
    SLSTR = "slstr"

    @property
    def ruleset(self) -> RuleSet:
        """The rule family for this sensor."""
        if self in (Sensor.LANDSAT8, Sensor.LANDSAT9):
            return RuleSet.LANDSAT
        return RuleSet(self.value)

    @classmethod
    def parse(cls, text: str | Sensor) -> Sensor:
        """Read a sensor name, forgiving case, hyphens and the usual short forms (``L8``, ``S2``, ``S3``)."""
        if isinstance(text, Sensor):
            return text
        norm = text.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
        try:
            return _SENSOR_ALIASES[norm]
        except KeyError:
            choices = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown sensor {text.strip()[:30]!r}; use one of {choices}") from None


_SENSOR_ALIASES: Final[dict[str, Sensor]] = {
    **dict.fromkeys(("landsat8", "l8", "lc8", "lc08", "oli"), Sensor.LANDSAT8),
    **dict.fromkeys(("landsat9", "l9", "lc9", "lc09", "oli2"), Sensor.LANDSAT9),
    **dict.fromkeys(("sentinel2", "s2", "msi", "s2a", "s2b", "s2c"), Sensor.SENTINEL2),
    **dict.fromkeys(("slstr", "sentinel3", "s3", "s3slstr", "sentinel3slstr"), Sensor.SLSTR),
}


class PixelFlag(IntFlag):
    """Bits of the per-pixel code returned by the pixel tests and by the evalscripts.

    FIRE: the pixel passes the rule set's fire test on its own (Landsat: unambiguous, eqs. 1-2).
    CANDIDATE: Landsat potential fire (eqs. 3 and 6) awaiting the contextual test.
    WATER: Landsat water (eqs. 7-9); excluded from fires and from the contextual background.
    CLOUD: Sentinel-2 cloud (TIZNEGAR blue/NGDR test) — reported as unobserved area, never used to drop a fire,
        because thick smoke over a burning field passes the same test.
    NODATA: no valid data; no other bit is set.
    """

    FIRE = 1
    CANDIDATE = 2
    WATER = 4
    CLOUD = 8
    NODATA = 16


_FIRE: Final = np.uint8(PixelFlag.FIRE)
_CANDIDATE: Final = np.uint8(PixelFlag.CANDIDATE)
_WATER: Final = np.uint8(PixelFlag.WATER)
_CLOUD: Final = np.uint8(PixelFlag.CLOUD)
_NODATA: Final = np.uint8(PixelFlag.NODATA)


def _rule(value: float, source: str) -> Any:
    """A threshold used by the per-pixel test (and therefore by the evalscript)."""
    return field(default=value, metadata={"source": source, "pixel": True})


def _context(value: float, source: str) -> Any:
    """A threshold of a neighbourhood test, which only the numpy side runs."""
    return field(default=value, metadata={"source": source, "pixel": False})


@dataclass(frozen=True, slots=True)
class LandsatThresholds:
    """Schroeder et al. 2016 daytime thresholds on OLI TOA reflectance (rho_i = band i; R75 = rho7/rho5).

    Unambiguous (eq. 1): rho7 > 0.5 and R75 > 2.5 and rho7 - rho5 > 0.3;
    or (eq. 2, saturated/folded SWIR): rho6 > 0.8 and rho1 < 0.2 and (rho5 > 0.4 or rho7 < 0.1).
    Potential (eqs. 3, 6): R75 > 1.8 and rho7 - rho5 > 0.17 and rho7/rho6 > 1.6, confirmed by the contextual
    test (eqs. 4-5) in a 61x61 window: R75 > mean + max(3 sd, 0.8) and rho7 > mean + max(3 sd, 0.08).
    Water (eqs. 7-9): rho4 > rho5 > rho6 > rho7 and rho1 - rho7 < 0.2 and (rho3 > rho2 or rho1 > rho2 > rho3 >
    rho4). Values: project reference ``satellite.md`` §6.1.
    """

    unamb_rho7: float = _rule(0.5, "Schroeder 2016 eq. 1")
    unamb_r75: float = _rule(2.5, "Schroeder 2016 eq. 1")
    unamb_d75: float = _rule(0.3, "Schroeder 2016 eq. 1")
    sat_rho6: float = _rule(0.8, "Schroeder 2016 eq. 2")
    sat_rho1: float = _rule(0.2, "Schroeder 2016 eq. 2")
    sat_rho5: float = _rule(0.4, "Schroeder 2016 eq. 2")
    sat_rho7: float = _rule(0.1, "Schroeder 2016 eq. 2")
    cand_r75: float = _rule(1.8, "Schroeder 2016 eq. 3")
    cand_d75: float = _rule(0.17, "Schroeder 2016 eq. 3")
    cand_r76: float = _rule(1.6, "Schroeder 2016 eq. 6")
    water_d17: float = _rule(0.2, "Schroeder 2016 eq. 7")
    ctx_window: int = _context(61, "Schroeder 2016 eqs. 4-5 (61x61 pixels)")
    ctx_r75_k: float = _context(3.0, "Schroeder 2016 eq. 4")
    ctx_r75_floor: float = _context(0.8, "Schroeder 2016 eq. 4")
    ctx_rho7_k: float = _context(3.0, "Schroeder 2016 eq. 5")
    ctx_rho7_floor: float = _context(0.08, "Schroeder 2016 eq. 5")

    def __post_init__(self) -> None:
        if self.ctx_window < 3 or self.ctx_window % 2 == 0:
            raise ValueError(f"ctx_window must be an odd number >= 3, not {self.ctx_window}")


@dataclass(frozen=True, slots=True)
class Sentinel2Thresholds:
    """Sentinel-2 MSI SWIR hot-pixel tests on reflectance (TOA for L1C, which the published rules assume).

    Hot: B11 + B12 > 1.0 (Markuse, fireSensitivity 1) or (B12 - B11)/(B12 + B11) > 0.4 or B12 > 1.0
    (TIZNEGAR ``active_fire_detection``). Fire: hot and B4 <= 0.727*B12 - 0.11 (Hu et al. 2021 criterion C1 with
    the boreal coefficients, the reference's fallback for the uncovered temperate biomes). Cloud (reported only):
    B2 > 0.5, or B2 > 0.2 and (B2 - B3)/(B2 + B3) > 0 (TIZNEGAR's ``Inverse``/NGDR test). Reference §5.4, §6.2.
    """

    markuse_sum: float = _rule(1.0, "Markuse fire1: B11 + B12 > 1.0")
    sahm: float = _rule(0.4, "TIZNEGAR SAHM (B12-B11)/(B12+B11) > 0.4")
    b12_hot: float = _rule(1.0, "TIZNEGAR B12 > 1")
    hu_slope: float = _rule(0.727, "Hu 2021 C1 boreal slope")
    hu_intercept: float = _rule(-0.11, "Hu 2021 C1 boreal intercept")
    cloud_blue_bright: float = _rule(0.5, "TIZNEGAR Inverse > 1, i.e. B2 > 0.5")
    cloud_blue: float = _rule(0.2, "TIZNEGAR Inverse > 0, i.e. B2 > 0.2")
    cloud_ngdr: float = _rule(0.0, "TIZNEGAR NGDR > 0")


@dataclass(frozen=True, slots=True)
class SlstrThresholds:
    """Sentinel-3 SLSTR: ESA L2 FRP absolute test on the 3.7 um BT and the TIZNEGAR daytime SWIR rule.

    Fire: BT(3.7 um) > 360 K by day, > 320 K by night (ESA SLSTR L2 FRP absolute test, reference §6.5); by day
    and when asked, also (S6 - S5)/(S6 + S5) > 0.05 and S1 < 0.23 (reference §5.4). The ESA contextual tests on
    S7/S8 are not implemented: the reference does not give their thresholds.
    """

    abs_day_k: float = _rule(360.0, "ESA SLSTR FRP absolute test, day")
    abs_night_k: float = _rule(320.0, "ESA SLSTR FRP absolute test, night")
    swir_ndi: float = _rule(0.05, "TIZNEGAR SLSTR (S6-S5)/(S6+S5) > 0.05")
    swir_s1_max: float = _rule(0.23, "TIZNEGAR SLSTR S1 < 0.23")


Thresholds = LandsatThresholds | Sentinel2Thresholds | SlstrThresholds

LANDSAT_THRESHOLDS: Final = LandsatThresholds()
SENTINEL2_THRESHOLDS: Final = Sentinel2Thresholds()
SLSTR_THRESHOLDS: Final = SlstrThresholds()

_DEFAULT_THRESHOLDS: Final[dict[RuleSet, Thresholds]] = {
    RuleSet.LANDSAT: LANDSAT_THRESHOLDS,
    RuleSet.SENTINEL2: SENTINEL2_THRESHOLDS,
    RuleSet.SLSTR: SLSTR_THRESHOLDS,
}


def pixel_thresholds(thresholds: Thresholds) -> dict[str, float]:
    """The thresholds the per-pixel test uses, by field name: exactly what the evalscript embeds."""
    return {f.name: getattr(thresholds, f.name) for f in fields(thresholds) if f.metadata["pixel"]}


def thresholds_for(ruleset: RuleSet, thresholds: Thresholds | None) -> Thresholds:
    """``thresholds``, or the rule set's defaults when None; a TypeError when they belong to another rule set."""
    if thresholds is None:
        return _DEFAULT_THRESHOLDS[ruleset]
    expected = type(_DEFAULT_THRESHOLDS[ruleset])
    if not isinstance(thresholds, expected):
        raise TypeError(f"{ruleset} rules need {expected.__name__}, not {type(thresholds).__name__}")
    return thresholds


BAND_ORDER: Final[dict[RuleSet, tuple[str, ...]]] = {
    RuleSet.LANDSAT: ("B01", "B02", "B03", "B04", "B05", "B06", "B07"),
    RuleSet.SENTINEL2: ("B02", "B03", "B04", "B11", "B12"),
    RuleSet.SLSTR: ("F1", "S7", "S1", "S5", "S6"),
}
"""Default band order of a local scene file, band 1 first, and the band names (Sentinel Hub's) the rules use.

* Landsat-8/9: OLI bands 1-7 (coastal, blue, green, red, NIR, SWIR-1, SWIR-2) as TOA reflectance.
* Sentinel-2: B02, B03, B04, B11, B12 as reflectance (L1C TOA for the published rules).
* SLSTR: F1, S7 as brightness temperature (K), then optionally S1, S5, S6 as reflectance for the SWIR rule.
  With only one 3.7 um band, map both ``F1`` and ``S7`` to it.
"""

SLSTR_SWIR_BANDS: Final[tuple[str, ...]] = ("S1", "S5", "S6")

VALUE_UNITS: Final[dict[RuleSet, str]] = {
    RuleSet.LANDSAT: "B07 reflectance",
    RuleSet.SENTINEL2: "B12 reflectance",
    RuleSet.SLSTR: "3.7um brightness temperature K",
}
"""What :attr:`FirePoint.max_value` measures for each rule set: the brightest-pixel ranking quantity."""


def required_bands(ruleset: RuleSet, *, swir: bool = False) -> tuple[str, ...]:
    """Band names the rule set needs (SLSTR: F1 and S7, plus S1/S5/S6 when the SWIR rule is on)."""
    if ruleset is RuleSet.SLSTR:
        return ("F1", "S7", *SLSTR_SWIR_BANDS) if swir else ("F1", "S7")
    return BAND_ORDER[ruleset]


_BLOCK_ROWS: Final = 512
"""Rows widened to float64 at a time: bounds the temporaries to ~30 MB per array for an 8,000-column scene."""


def _row_blocks(n_rows: int) -> Iterator[slice]:
    for start in range(0, n_rows, _BLOCK_ROWS):
        yield slice(start, min(start + _BLOCK_ROWS, n_rows))


def _take(bands: Mapping[str, npt.ArrayLike], names: Sequence[str], source_name: str) -> list[np.ndarray]:
    arrays: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None
    for name in names:
        if name not in bands:
            raise RasterBandError("missing (needed by the fire rule)", source_name=source_name, band=name)
        arr = np.asarray(bands[name])
        if arr.dtype.kind != "f":
            raise RasterBandError(
                f"dtype {arr.dtype} is not floating point; the rules need reflectance or brightness temperature",
                source_name=source_name,
                band=name,
            )
        if arr.ndim == 0:
            raise RasterBandError("is a scalar, not an array of pixels", source_name=source_name, band=name)
        if shape is None:
            shape = arr.shape
        elif arr.shape != shape:
            raise RasterBandError(
                f"shape {arr.shape} differs from {names[0]}'s {shape}", source_name=source_name, band=name
            )
        arrays.append(arr)
    return arrays


def _valid_block(valid: npt.NDArray[np.bool_] | None, sl: slice, shape: tuple[int, ...]) -> BoolArray:
    """A fresh (writable, never a view of the caller's array) validity block."""
    if valid is None:
        return np.ones((sl.stop - sl.start, *shape[1:]), dtype=bool)
    return np.array(valid[sl], dtype=bool)


def _check_valid(valid: npt.ArrayLike | None, shape: tuple[int, ...], source_name: str) -> BoolArray | None:
    if valid is None:
        return None
    arr = np.asarray(valid)
    if arr.shape != shape:
        raise RasterBandError(
            f"shape {arr.shape} differs from the bands' {shape}", source_name=source_name, band="valid"
        )
    return arr.astype(bool, copy=False)


def landsat_pixel_codes(
    bands: Mapping[str, npt.ArrayLike],
    *,
    valid: npt.ArrayLike | None = None,
    thresholds: LandsatThresholds = LANDSAT_THRESHOLDS,
    source_name: str = "bands",
) -> CodeArray:
    """Per-pixel Schroeder et al. 2016 tests on OLI TOA reflectance ``B01``..``B07``: a :class:`PixelFlag` code.

    FIRE marks eqs. 1-2 (unambiguous), CANDIDATE eqs. 3 and 6 (potential, not unambiguous), WATER eqs. 7-9.
    A pixel with a non-finite band or ``valid`` False is NODATA. Division by zero follows IEEE (as in the
    evalscript): ``x/0`` is infinite and passes a ratio test, ``0/0`` is NaN and passes none.
    """
    arrays = _take(bands, BAND_ORDER[RuleSet.LANDSAT], source_name)
    shape = arrays[0].shape
    ok_mask = _check_valid(valid, shape, source_name)
    out = np.empty(shape, dtype=np.uint8)
    t = thresholds
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for sl in _row_blocks(shape[0]):
            b1, b2, b3, b4, b5, b6, b7 = (np.asarray(a[sl], dtype=np.float64) for a in arrays)
            ok = _valid_block(ok_mask, sl, shape)
            for b in (b1, b2, b3, b4, b5, b6, b7):
                ok &= np.isfinite(b)
            r75 = b7 / b5
            d75 = b7 - b5
            r76 = b7 / b6
            unamb = ((b7 > t.unamb_rho7) & (r75 > t.unamb_r75) & (d75 > t.unamb_d75)) | (
                (b6 > t.sat_rho6) & (b1 < t.sat_rho1) & ((b5 > t.sat_rho5) | (b7 < t.sat_rho7))
            )
            cand = ~unamb & (r75 > t.cand_r75) & (d75 > t.cand_d75) & (r76 > t.cand_r76)
            water = (
                (b4 > b5)
                & (b5 > b6)
                & (b6 > b7)
                & ((b1 - b7) < t.water_d17)
                & ((b3 > b2) | ((b1 > b2) & (b2 > b3) & (b3 > b4)))
            )
            code = unamb * _FIRE | cand * _CANDIDATE | water * _WATER
            out[sl] = np.where(ok, code, _NODATA)
    return out


def sentinel2_pixel_codes(
    bands: Mapping[str, npt.ArrayLike],
    *,
    valid: npt.ArrayLike | None = None,
    thresholds: Sentinel2Thresholds = SENTINEL2_THRESHOLDS,
    source_name: str = "bands",
) -> CodeArray:
    """Sentinel-2 SWIR hot-pixel tests on ``B02, B03, B04, B11, B12`` reflectance: a :class:`PixelFlag` code.

    FIRE = hot (Markuse or TIZNEGAR) and on the fire side of the Hu 2021 line; CLOUD = TIZNEGAR cloud test.
    """
    arrays = _take(bands, BAND_ORDER[RuleSet.SENTINEL2], source_name)
    shape = arrays[0].shape
    ok_mask = _check_valid(valid, shape, source_name)
    out = np.empty(shape, dtype=np.uint8)
    t = thresholds
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for sl in _row_blocks(shape[0]):
            b2, b3, b4, b11, b12 = (np.asarray(a[sl], dtype=np.float64) for a in arrays)
            ok = _valid_block(ok_mask, sl, shape)
            for b in (b2, b3, b4, b11, b12):
                ok &= np.isfinite(b)
            hot = ((b11 + b12) > t.markuse_sum) | (((b12 - b11) / (b12 + b11)) > t.sahm) | (b12 > t.b12_hot)
            line = b4 <= t.hu_slope * b12 + t.hu_intercept
            cloud = (b2 > t.cloud_blue_bright) | ((b2 > t.cloud_blue) & (((b2 - b3) / (b2 + b3)) > t.cloud_ngdr))
            code = (hot & line) * _FIRE | cloud * _CLOUD
            out[sl] = np.where(ok, code, _NODATA)
    return out


def slstr_mir(f1: npt.ArrayLike, s7: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The 3.7 um brightness temperature (K) per pixel: the larger of S7 and F1 where both are present.

    S7 saturates far below fire temperatures and then reads low, F1 is the fire channel; over non-burning
    ground the two agree to within noise, far below the 320/360 K thresholds. A band is present where finite
    and positive (0 K is a fill value). NaN where neither is present.
    """
    a = np.asarray(f1, dtype=np.float64)
    b = np.asarray(s7, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        has_a = np.isfinite(a) & (a > 0)
        has_b = np.isfinite(b) & (b > 0)
    both = np.maximum(a, b)
    return np.where(has_a & has_b, both, np.where(has_a, a, np.where(has_b, b, np.nan)))


def slstr_pixel_codes(
    bands: Mapping[str, npt.ArrayLike],
    *,
    valid: npt.ArrayLike | None = None,
    thresholds: SlstrThresholds = SLSTR_THRESHOLDS,
    daytime: bool = True,
    swir: bool = False,
    source_name: str = "bands",
) -> CodeArray:
    """SLSTR absolute 3.7 um test (and, by day with ``swir``, the SWIR rule): a :class:`PixelFlag` code.

    NODATA where neither ``F1`` nor ``S7`` is present. Missing SWIR values only fail the SWIR rule.
    """
    names = required_bands(RuleSet.SLSTR, swir=swir)
    arrays = _take(bands, names, source_name)
    shape = arrays[0].shape
    ok_mask = _check_valid(valid, shape, source_name)
    out = np.empty(shape, dtype=np.uint8)
    t = thresholds
    abs_k = t.abs_day_k if daytime else t.abs_night_k
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for sl in _row_blocks(shape[0]):
            mir = slstr_mir(arrays[0][sl], arrays[1][sl])
            ok = _valid_block(ok_mask, sl, shape) & np.isfinite(mir)
            fire = mir > abs_k
            if daytime and swir:
                s1, s5, s6 = (np.asarray(a[sl], dtype=np.float64) for a in arrays[2:])
                fire |= (((s6 - s5) / (s6 + s5)) > t.swir_ndi) & (s1 < t.swir_s1_max)
            out[sl] = np.where(ok, fire * _FIRE, _NODATA)
    return out


def pixel_codes(
    sensor: Sensor | RuleSet | str,
    bands: Mapping[str, npt.ArrayLike],
    *,
    valid: npt.ArrayLike | None = None,
    thresholds: Thresholds | None = None,
    daytime: bool = True,
    swir: bool = False,
    source_name: str = "bands",
) -> CodeArray:
    """Dispatch to the pixel test of the sensor's rule set (the function each evalscript mirrors)."""
    ruleset = _ruleset(sensor)
    t = thresholds_for(ruleset, thresholds)
    if isinstance(t, LandsatThresholds):
        return landsat_pixel_codes(bands, valid=valid, thresholds=t, source_name=source_name)
    if isinstance(t, Sentinel2Thresholds):
        return sentinel2_pixel_codes(bands, valid=valid, thresholds=t, source_name=source_name)
    return slstr_pixel_codes(bands, valid=valid, thresholds=t, daytime=daytime, swir=swir, source_name=source_name)


def _ruleset(sensor: Sensor | RuleSet | str) -> RuleSet:
    if isinstance(sensor, RuleSet):
        return sensor
    return Sensor.parse(sensor).ruleset


def landsat_contextual_test(
    codes: npt.ArrayLike,
    rho7: npt.ArrayLike,
    rho5: npt.ArrayLike,
    *,
    thresholds: LandsatThresholds = LANDSAT_THRESHOLDS,
) -> BoolArray:
    """Schroeder et al. 2016 eqs. 4-5: which CANDIDATE pixels stand out from their 61x61 neighbourhood.

    A candidate passes when R75 > mean(R75) + max(3 sd(R75), 0.8) and rho7 > mean(rho7) + max(3 sd(rho7), 0.08)
    over the *valid background* of the window centred on it (clipped at the raster edge): pixels that are not
    unambiguous fires, not water, not NODATA, with rho7 > 0 and a finite R75. Candidates (the tested pixel
    included) stay in the background, as in ``L8_FIRE_ALL_MASKS_v3.py``, so a wide area of fire-like but
    uniform surface raises its own background and is rejected. Standard deviations are population ones
    (``numpy.nanstd``). A candidate with no valid background is rejected: a false alarm costs a township a
    fine, while a missed pixel next to detected ones does not hide the fire.

    Window sums come from integral images, one strip of candidate rows at a time (the strip plus half a window
    above and below, across the candidates' columns), so the cost is a few passes over the pixels near
    candidates and the memory is bounded by the strip, not the scene.
    """
    c = np.asarray(codes)
    r7_all = np.asarray(rho7)
    r5_all = np.asarray(rho5)
    if c.ndim != 2 or r7_all.shape != c.shape or r5_all.shape != c.shape:
        raise ValueError(f"codes, rho7 and rho5 must be 2-D and alike, not {c.shape}, {r7_all.shape}, {r5_all.shape}")
    result = np.zeros(c.shape, dtype=bool)
    cand = ((c & _CANDIDATE) != 0) & ((c & _NODATA) == 0)
    for sl in _row_blocks(c.shape[0]):
        ys, xs = np.nonzero(cand[sl])
        if ys.size:
            ys = ys + sl.start
            passed = _context_strip(c, r7_all, r5_all, ys, xs, thresholds)
            result[ys[passed], xs[passed]] = True
    return result


def _context_strip(
    codes: np.ndarray,
    rho7: np.ndarray,
    rho5: np.ndarray,
    ys: npt.NDArray[np.intp],
    xs: npt.NDArray[np.intp],
    t: LandsatThresholds,
) -> BoolArray:
    """Eqs. 4-5 for the candidates at (ys, xs), with integral images over the box their windows cover."""
    half = t.ctx_window // 2
    y0, y1 = max(int(ys.min()) - half, 0), min(int(ys.max()) + half + 1, codes.shape[0])
    x0, x1 = max(int(xs.min()) - half, 0), min(int(xs.max()) + half + 1, codes.shape[1])
    box = (slice(y0, y1), slice(x0, x1))
    sub_codes = codes[box]
    r7 = np.asarray(rho7[box], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r75 = r7 / np.asarray(rho5[box], dtype=np.float64)
        background = ((sub_codes & (_FIRE | _WATER | _NODATA)) == 0) & (r7 > 0) & np.isfinite(r7) & np.isfinite(r75)
    h, w = sub_codes.shape
    ly, lx = ys - y0, xs - x0
    top, bottom = np.maximum(ly - half, 0), np.minimum(ly + half + 1, h)
    left, right = np.maximum(lx - half, 0), np.minimum(lx + half + 1, w)

    def window_sum(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        integral = np.zeros((h + 1, w + 1), dtype=np.float64)
        np.cumsum(np.cumsum(values, axis=0), axis=1, out=integral[1:, 1:])
        return integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]

    n = window_sum(background.astype(np.float64))
    r75_bg = np.where(background, r75, 0.0)
    r7_bg = np.where(background, r7, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_r75 = window_sum(r75_bg) / n
        sd_r75 = np.sqrt(np.maximum(window_sum(r75_bg * r75_bg) / n - mean_r75 * mean_r75, 0.0))
        mean_r7 = window_sum(r7_bg) / n
        sd_r7 = np.sqrt(np.maximum(window_sum(r7_bg * r7_bg) / n - mean_r7 * mean_r7, 0.0))
        passed: BoolArray = (
            (n > 0)
            & (r75[ly, lx] > mean_r75 + np.maximum(t.ctx_r75_k * sd_r75, t.ctx_r75_floor))
            & (r7[ly, lx] > mean_r7 + np.maximum(t.ctx_rho7_k * sd_r7, t.ctx_rho7_floor))
        )
    return passed


def fire_mask_from_codes(
    sensor: Sensor | RuleSet | str,
    codes: npt.ArrayLike,
    value: npt.ArrayLike | None = None,
    aux: npt.ArrayLike | None = None,
    *,
    thresholds: Thresholds | None = None,
) -> BoolArray:
    """The final fire mask from pixel codes (local or returned by an evalscript).

    Landsat: (unambiguous or candidate passing the contextual test) and not water; ``value`` must be rho7 and
    ``aux`` rho5, as the Landsat evalscript returns them. Other rule sets: the FIRE bit.
    """
    ruleset = _ruleset(sensor)
    c = np.asarray(codes, dtype=np.uint8)
    valid: BoolArray = (c & _NODATA) == 0
    fire: BoolArray = ((c & _FIRE) != 0) & valid
    t = thresholds_for(ruleset, thresholds)
    if isinstance(t, LandsatThresholds):
        if value is None or aux is None:
            raise ValueError("the Landsat contextual test needs rho7 (value) and rho5 (aux)")
        fire |= landsat_contextual_test(c, value, aux, thresholds=t)
        fire &= (c & _WATER) == 0
    return fire


@dataclass(frozen=True, slots=True)
class FirePoint:
    """One fire: an 8-connected cluster of fire pixels.

    Fields:
        latitude, longitude: WGS-84 centroid of the cluster's pixel centres.
        pixel_count: number of fire pixels.
        area_m2: geodesic area of the fire pixels on the WGS-84 ellipsoid — the footprint, not the burning area,
            which is usually far smaller than a pixel.
        max_value: the brightest pixel's value (see :data:`VALUE_UNITS`: reflectance or K).
        max_latitude, max_longitude: WGS-84 centre of that brightest pixel (the usual alarm position, as
            activefires-pp picks the max-FRP pixel of a cluster).
        row, col: centroid in 0-based pixel coordinates of pixel centres (row 2.0 = centre of the third row).
        max_row, max_col: the brightest pixel's row and column.
    """

    latitude: float
    longitude: float
    pixel_count: int
    area_m2: float
    max_value: float
    max_latitude: float
    max_longitude: float
    row: float
    col: float
    max_row: int
    max_col: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain values for JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _affine(transform: Affine | Sequence[float]) -> tuple[float, float, float, float, float, float]:
    values = [float(v) for v in tuple(transform)[:6]]
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"transform must have six finite coefficients a, b, c, d, e, f, not {transform!r}")
    a, b, c, d, e, f = values
    if a * e - b * d == 0:
        raise ValueError("transform is singular (zero pixel size)")
    return a, b, c, d, e, f


def fire_points(
    mask: npt.ArrayLike,
    value: npt.ArrayLike,
    transform: Affine | Sequence[float],
    crs: CRS | str | Any,
) -> list[FirePoint]:
    """One :class:`FirePoint` per 8-connected cluster of ``mask``, ordered by the cluster's first pixel (row-major).

    ``transform`` maps (col, row) of pixel *corners* to ``crs`` coordinates (rasterio/GDAL convention: pixel
    (0, 0) spans [0, 1] x [0, 1]); ``crs`` is anything ``pyproj.CRS.from_user_input`` reads (EPSG code, WKT, a
    rasterio CRS). The area of a cluster is its pixel count times the geodesic area of one pixel footprint
    placed at the cluster's centroid: across a cluster of a few km the pixel area of a projected or geographic
    grid changes by less than 1e-4 (geographic grid at mid-latitudes, per km north-south), far below what
    matters for a footprint. Pixels whose ``value`` is NaN are still part of the cluster but never the brightest.
    """
    import cv2
    import pyproj

    m = np.asarray(mask, dtype=bool)
    v = np.asarray(value, dtype=np.float64)
    if m.ndim != 2 or v.shape != m.shape:
        raise ValueError(f"mask and value must be 2-D and alike, not {m.shape} and {v.shape}")
    a, b, c, d, e, f = _affine(transform)
    if not m.any():
        return []
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        m.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    n = count - 1
    pixels = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    cent_col = centroids[1:, 0].astype(np.float64)
    cent_row = centroids[1:, 1].astype(np.float64)

    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    ranked = np.where(np.isnan(v[ys, xs]), -np.inf, v[ys, xs])
    order = np.lexsort((-ranked, lab))
    first = order[np.r_[0, np.flatnonzero(np.diff(lab[order])) + 1]]
    max_row, max_col = ys[first], xs[first]
    max_val = v[max_row, max_col]

    def to_crs(col: FloatArray, row: FloatArray) -> tuple[FloatArray, FloatArray]:
        return a * col + b * row + c, d * col + e * row + f

    src_crs = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    to_wgs84 = _to_wgs84(src_crs)
    # Pixel centres are at (col + 0.5, row + 0.5) in corner coordinates.
    cx, cy = to_crs(cent_col + 0.5, cent_row + 0.5)
    mx, my = to_crs(max_col + 0.5, max_row + 0.5)
    corner_col = (cent_col[:, None] + np.array([0.0, 1.0, 1.0, 0.0])).ravel()
    corner_row = (cent_row[:, None] + np.array([0.0, 0.0, 1.0, 1.0])).ravel()
    qx, qy = to_crs(corner_col, corner_row)
    lon, lat = to_wgs84.transform(np.concatenate([cx, mx, qx]), np.concatenate([cy, my, qy]))
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ValueError("fire pixels fall outside the valid area of the raster's CRS")
    geod = pyproj.Geod(ellps="WGS84")
    quad_lon = lon[2 * n :].reshape(n, 4)
    quad_lat = lat[2 * n :].reshape(n, 4)
    # OpenCV numbers components as its block-based scan meets them, not by their first pixel in row-major order
    # (a cluster starting at row 1, column 0 can come before one starting at row 0, column 5): sort explicitly.
    # ys/xs come from np.nonzero, i.e. in row-major order, so a label's first occurrence is its first pixel.
    _, first_pixel = np.unique(lab, return_index=True)
    points: list[FirePoint] = []
    for i in np.argsort(first_pixel, kind="stable").tolist():
        pixel_area, _ = geod.polygon_area_perimeter(quad_lon[i], quad_lat[i])
        points.append(
            FirePoint(
                latitude=float(lat[i]),
                longitude=float(lon[i]),
                pixel_count=int(pixels[i]),
                area_m2=abs(float(pixel_area)) * int(pixels[i]),
                max_value=float(max_val[i]),
                max_latitude=float(lat[n + i]),
                max_longitude=float(lon[n + i]),
                row=float(cent_row[i]),
                col=float(cent_col[i]),
                max_row=int(max_row[i]),
                max_col=int(max_col[i]),
            )
        )
    return points


@dataclass(frozen=True)
class SceneScan:
    """The result of running a rule set over one scene.

    Fields:
        source_name: the file, scene id or caller's name.
        sensor: the sensor whose rules ran; ``daytime``/``swir``: the SLSTR options used (Landsat and
            Sentinel-2 rules are daytime-only).
        fire_points: one per 8-connected fire cluster.
        fire_pixels, valid_pixels, cloud_pixels, water_pixels: pixel counts (cloud: Sentinel-2 only; water:
            Landsat only) — cloud-covered pixels are *unobserved*, not fire-free.
        shape: (rows, cols); crs_wkt and transform: the grid.
        value_unit: what ``max_value`` measures.
        mask, codes: the final fire mask and the pixel codes (kept out of ``repr`` and equality).
    """

    source_name: str
    sensor: Sensor
    daytime: bool
    swir: bool
    fire_points: tuple[FirePoint, ...]
    fire_pixels: int
    valid_pixels: int
    cloud_pixels: int
    water_pixels: int
    shape: tuple[int, int]
    crs_wkt: str = field(repr=False)
    transform: tuple[float, float, float, float, float, float]
    value_unit: str
    mask: BoolArray = field(repr=False, compare=False)
    codes: CodeArray = field(repr=False, compare=False)


def _crs_wkt(crs: CRS | str | Any, source_name: str) -> tuple[Any, str]:
    import pyproj
    from pyproj.exceptions import CRSError

    try:
        parsed = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    except CRSError as exc:
        raise RasterError(f"unusable CRS {str(crs)[:60]!r}: {exc}", source_name=source_name) from None
    try:
        _to_wgs84(parsed)
    except ValueError as exc:
        # Checked whether or not the scene has fires, so a file in such a CRS never passes as "no fires".
        raise RasterError(str(exc), source_name=source_name) from None
    return parsed, parsed.to_wkt()


def _to_wgs84(crs: Any) -> Any:
    """The ``pyproj.Transformer`` from ``crs`` to WGS-84 lon/lat; ValueError when there is none.

    An engineering (local) CRS, for one, parses but cannot be converted, and pyproj then raises ProjError.
    """
    import pyproj
    from pyproj.exceptions import ProjError

    try:
        return pyproj.Transformer.from_crs(crs, pyproj.CRS.from_epsg(4326), always_xy=True)
    except ProjError:
        name = getattr(crs, "name", None) or str(crs)[:60]
        raise ValueError(
            f"the CRS {name!r} cannot be converted to WGS-84 longitude/latitude, which fire points need"
        ) from None


def scan_codes(
    sensor: Sensor | str,
    codes: npt.ArrayLike,
    value: npt.ArrayLike,
    *,
    aux: npt.ArrayLike | None = None,
    transform: Affine | Sequence[float],
    crs: CRS | str | Any,
    thresholds: Thresholds | None = None,
    daytime: bool = True,
    swir: bool = False,
    source_name: str = "bands",
) -> SceneScan:
    """Final mask, fire points and counts from pixel codes and the value band (and rho5 for Landsat).

    The step shared by local scenes (:func:`scan_bands`) and Sentinel Hub responses, so both end identically.
    """
    sens = Sensor.parse(sensor)
    c = np.asarray(codes, dtype=np.uint8)
    v = np.asarray(value)
    if c.ndim != 2 or v.shape != c.shape:
        raise RasterBandError(f"codes {c.shape} and value {v.shape} must be 2-D and alike", source_name=source_name)
    if aux is not None and np.shape(aux) != c.shape:
        raise RasterBandError(f"aux {np.shape(aux)} differs from codes {c.shape}", source_name=source_name)
    try:
        coeffs = _affine(transform)
    except ValueError as exc:
        raise RasterError(str(exc), source_name=source_name) from None
    parsed_crs, wkt = _crs_wkt(crs, source_name)
    mask = fire_mask_from_codes(sens, c, v, aux, thresholds=thresholds)
    try:
        points = fire_points(mask, v, coeffs, parsed_crs)
    except ValueError as exc:
        raise RasterError(str(exc), source_name=source_name) from None
    valid = (c & _NODATA) == 0
    return SceneScan(
        source_name=source_name,
        sensor=sens,
        daytime=daytime,
        swir=swir,
        fire_points=tuple(points),
        fire_pixels=int(mask.sum()),
        valid_pixels=int(valid.sum()),
        cloud_pixels=int((((c & _CLOUD) != 0) & valid).sum()),
        water_pixels=int((((c & _WATER) != 0) & valid).sum()),
        shape=(int(c.shape[0]), int(c.shape[1])),
        crs_wkt=wkt,
        transform=coeffs,
        value_unit=VALUE_UNITS[sens.ruleset],
        mask=mask,
        codes=c,
    )


def scan_bands(
    bands: Mapping[str, npt.ArrayLike],
    transform: Affine | Sequence[float],
    crs: CRS | str | Any,
    sensor: Sensor | str,
    *,
    valid: npt.ArrayLike | None = None,
    thresholds: Thresholds | None = None,
    daytime: bool = True,
    swir: bool = False,
    source_name: str = "bands",
) -> SceneScan:
    """Run a sensor's fire rules on 2-D numpy bands (names as in :data:`BAND_ORDER`) and vectorise the result.

    Bands must be floating point in the rule's units (reflectance 0-1, brightness temperature in K); NaN marks
    no data, as does ``valid`` False. Extra bands are ignored. Errors name ``source_name`` and the band.
    """
    sens = _parse_sensor(sensor, source_name)
    ruleset = sens.ruleset
    for name in required_bands(ruleset, swir=swir):
        if name in bands and np.ndim(bands[name]) != 2:
            raise RasterBandError(
                f"must be a 2-D array, not {np.ndim(bands[name])}-D", source_name=source_name, band=name
            )
    codes = pixel_codes(
        sens, bands, valid=valid, thresholds=thresholds, daytime=daytime, swir=swir, source_name=source_name
    )
    aux: np.ndarray | None = None
    if ruleset is RuleSet.LANDSAT:
        value: np.ndarray = np.asarray(bands["B07"])
        aux = np.asarray(bands["B05"])
    elif ruleset is RuleSet.SENTINEL2:
        value = np.asarray(bands["B12"])
    else:
        value = slstr_mir(bands["F1"], bands["S7"])
    return scan_codes(
        sens,
        codes,
        value,
        aux=aux,
        transform=transform,
        crs=crs,
        thresholds=thresholds,
        daytime=daytime,
        swir=swir,
        source_name=source_name,
    )


def _parse_sensor(sensor: Sensor | str, source_name: str) -> Sensor:
    try:
        return Sensor.parse(sensor)
    except ValueError as exc:
        raise RasterError(str(exc), source_name=source_name) from None


def resolve_band_map(
    sensor: Sensor | str,
    band_map: Mapping[str, int | str] | None,
    *,
    count: int,
    descriptions: Sequence[str | None] = (),
    swir: bool = False,
    source_name: str = "scene",
) -> dict[str, int]:
    """Which 1-based file band holds each band the rule needs.

    With ``band_map`` (rule band name -> 1-based index or the file's band description), exactly that, and it
    must name every needed band. Without it: the file's band descriptions when they name every needed band
    (case-insensitive, ``B2`` read as ``B02``), else the default order of :data:`BAND_ORDER` — unless a
    description names a different band at a position that order would use, which is an error asking for a map.
    """
    ruleset = _parse_sensor(sensor, source_name).ruleset
    needed = required_bands(ruleset, swir=swir)
    known = BAND_ORDER[ruleset]
    by_description = {_band_key(d): i + 1 for i, d in enumerate(descriptions) if d and d.strip()}
    if band_map is not None:
        resolved: dict[str, int] = {}
        for name, where in band_map.items():
            key = name.strip().upper()
            if key not in known:
                raise RasterBandError(
                    f"is not a band of the {ruleset} rules; use {', '.join(known)}", source_name=source_name, band=name
                )
            if isinstance(where, bool) or not isinstance(where, int | str):
                raise RasterBandError(f"maps to {where!r}; give a 1-based index", source_name=source_name, band=key)
            if isinstance(where, str):
                index = by_description.get(_band_key(where))
                if index is None:
                    raise RasterBandError(f"no file band is described as {where!r}", source_name=source_name, band=key)
            else:
                index = where
            if not 1 <= index <= count:
                raise RasterBandError(
                    f"band index {index} is outside 1..{count} of the file", source_name=source_name, band=key
                )
            resolved[key] = index
        missing = [name for name in needed if name not in resolved]
        if missing:
            raise RasterBandError(
                f"missing from the band map (the rule needs {', '.join(needed)})",
                source_name=source_name,
                band=missing[0],
            )
        return {name: resolved[name] for name in needed}
    if all(name in by_description for name in needed):
        return {name: by_description[name] for name in needed}
    positional = {name: i + 1 for i, name in enumerate(known) if i < count}
    missing = [name for name in needed if name not in positional]
    if missing:
        name = missing[0]
        raise RasterBandError(
            f"missing: the file has {count} band(s) and the default {ruleset} order is {', '.join(known)} "
            f"({name} would be band {known.index(name) + 1}); give a band map",
            source_name=source_name,
            band=name,
        )
    # Descriptions that name bands but not every band the rule needs: the default order is only a guess, and a
    # guess the file itself contradicts (reading the band described as B08 as B11) would give wrong fires silently.
    for name in needed:
        index = positional[name]
        described = descriptions[index - 1] if index <= len(descriptions) else None
        if described and _BAND_NAME.fullmatch(_band_key(described)) and _band_key(described) != name:
            raise RasterBandError(
                f"the default {ruleset} order puts it in file band {index}, which is described as "
                f"{_band_key(described)!r}; give a band map",
                source_name=source_name,
                band=name,
            )
    return {name: positional[name] for name in needed}


_BAND_NAME: Final = re.compile(r"B\d{2}|B8A|[SF]\d")
"""What a band description naming a Landsat, Sentinel-2 or SLSTR band looks like once normalised by _band_key."""

_UNPADDED_BAND: Final = re.compile(r"B0*(\d{1,2})(A?)")


def _band_key(text: str) -> str:
    """A band description or name as the rules spell band names: trimmed, upper case, ``B2`` -> ``B02``.

    Files exported from Google Earth Engine (and many scripts) describe Sentinel-2 and Landsat bands without the
    zero padding (``B2``, ``B8A``, ``B11``); Sentinel Hub, and therefore the rules, write ``B02``, ``B8A``, ``B11``.
    """
    key = text.strip().upper()
    match = _UNPADDED_BAND.fullmatch(key)
    if match is None:
        return key
    number, suffix = int(match.group(1)), match.group(2)
    return f"B{number}A" if suffix else f"B{number:02d}"


def scan_scene(
    path: str | Path,
    sensor: Sensor | str,
    band_map: Mapping[str, int | str] | None = None,
    *,
    scale: float | None = None,
    offset: float = 0.0,
    thresholds: Thresholds | None = None,
    daytime: bool = True,
    swir: bool = False,
) -> SceneScan:
    """Read a local multi-band GeoTIFF (any GDAL raster) and run the sensor's fire rules on it.

    Bands are found by ``band_map``, the file's band descriptions or :data:`BAND_ORDER` (see
    :func:`resolve_band_map`). Values must be reflectance / brightness temperature; integer digital numbers are
    accepted only with ``scale`` (value = DN * scale + offset, e.g. Sentinel-2 L1C from baseline 04.00:
    ``scale=0.0001, offset=-0.1``). The file's nodata value and masks become NODATA. Every problem raises a
    :class:`~satellite.errors.RasterError` naming the file and, where it applies, the band.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    name = str(path)
    sens = _parse_sensor(sensor, name)
    if scale is not None and not (math.isfinite(scale) and scale != 0):
        raise RasterError(f"scale must be a finite non-zero number, not {scale!r}", source_name=name)
    if not math.isfinite(offset):
        raise RasterError(f"offset must be finite, not {offset!r}", source_name=name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise RasterReadError(f"cannot be opened as a raster: {_first_line(exc)}", source_name=name) from None
    with src:
        if src.crs is None:
            raise RasterReadError("has no CRS; fire points need a georeferenced raster", source_name=name)
        mapping = resolve_band_map(
            sens, band_map, count=src.count, descriptions=src.descriptions, swir=swir, source_name=name
        )
        cache: dict[int, np.ndarray] = {}
        bands: dict[str, np.ndarray] = {}
        for band_name, index in mapping.items():
            if index not in cache:
                cache[index] = _read_band(src, index, band_name, name, scale, offset)
            bands[band_name] = cache[index]
        transform = src.transform
        crs_wkt = src.crs.to_wkt()
    return scan_bands(
        bands, transform, crs_wkt, sens, thresholds=thresholds, daytime=daytime, swir=swir, source_name=name
    )


def _read_band(src: Any, index: int, band: str, name: str, scale: float | None, offset: float) -> np.ndarray:
    from rasterio.errors import RasterioError

    dtype = np.dtype(src.dtypes[index - 1])
    if dtype.kind in "iu":
        if scale is None:
            raise RasterBandError(
                f"(file band {index}) holds integer values ({dtype}); give a scale (and offset) to turn them into "
                "reflectance or brightness temperature",
                source_name=name,
                band=band,
            )
    elif dtype.kind != "f":
        raise RasterBandError(f"(file band {index}) has unusable dtype {dtype}", source_name=name, band=band)
    try:
        data = src.read(index, masked=True)
    except (RasterioError, OSError) as exc:
        raise RasterReadError(
            f"(file band {index}) cannot be read: {_first_line(exc)}", source_name=name, band=band
        ) from None
    values = np.asarray(data.data, dtype=np.float64)
    if scale is not None:
        values = values * scale + offset
    elif offset:
        values = values + offset
    out = values.astype(np.float32)
    out[np.ma.getmaskarray(data)] = np.nan
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
