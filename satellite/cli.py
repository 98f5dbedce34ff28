"""``strawfire satellite ...``: run the active-fire rules on local satellite scenes.

A Typer sub-app; the service mounts it as ``strawfire satellite``. Heavy libraries (numpy, rasterio, pyproj,
OpenCV) are imported only when a command runs, so ``strawfire --help`` stays fast. Bad input is one line on stderr
and exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from satellite.raster import SceneScan

__all__ = ["app", "parse_bands"]

app = typer.Typer(
    help="Satellite scenes: find active fires in local rasters (Landsat-8/9, Sentinel-2, Sentinel-3 SLSTR).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _satellite() -> None:
    """Satellite scenes: find active fires in local rasters."""


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def parse_bands(text: str, known: tuple[str, ...]) -> dict[str, int]:
    """Read ``--bands``: the file's band order as names, or ``NAME=INDEX`` pairs (1-based).

    In the order form, names the rule does not use (and ``-`` placeholders) just take up their position, so a
    whole file's band list can be given as is. Raises ``ValueError`` with a one-line reason.
    """
    items = [item.strip() for item in text.split(",")]
    if not items or any(not item for item in items):
        raise ValueError(f"--bands {text!r} has an empty item")
    pairs = [item for item in items if "=" in item]
    if pairs and len(pairs) != len(items):
        raise ValueError("--bands mixes NAME=INDEX pairs with plain names; use one form")
    result: dict[str, int] = {}
    if pairs:
        for item in pairs:
            name, _, index = item.partition("=")
            key = name.strip().upper()
            try:
                number = int(index.strip())
            except ValueError:
                raise ValueError(f"--bands {item!r}: the index must be an integer") from None
            if key in result:
                raise ValueError(f"--bands names {key} twice")
            result[key] = number
        return result
    for position, item in enumerate(items, start=1):
        key = item.upper()
        if key in known:
            if key in result:
                raise ValueError(f"--bands names {key} twice")
            result[key] = position
    return result


@app.command()
def scan(
    scene: Annotated[Path, typer.Argument(help="Multi-band GeoTIFF (or any GDAL raster) with a CRS.")],
    sensor: Annotated[str, typer.Option(help="landsat8, landsat9, sentinel2 or slstr.")],
    bands: Annotated[
        str | None,
        typer.Option(
            help="File band order as names (e.g. B02,B03,B04,B08,B11,B12) or NAME=INDEX pairs (e.g. B12=6,B11=5). "
            "Default: band descriptions, else landsat B01..B07; sentinel2 B02,B03,B04,B11,B12; slstr F1,S7[,S1,S5,S6]."
        ),
    ] = None,
    scale: Annotated[
        float | None, typer.Option(help="Value = DN x scale + offset, for integer files (S2 L1C: 0.0001).")
    ] = None,
    offset: Annotated[float, typer.Option(help="See --scale (S2 L1C baseline >= 04.00: -0.1).")] = 0.0,
    night: Annotated[bool, typer.Option("--night", help="SLSTR night pass: 320 K instead of 360 K.")] = False,
    swir: Annotated[bool, typer.Option("--swir", help="SLSTR: add the daytime SWIR rule (needs S1, S5, S6).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list, one object per fire point.")] = False,
) -> None:
    """Find fires in one scene: one line per 8-connected cluster of fire pixels."""
    from satellite.errors import SatelliteError
    from satellite.raster import BAND_ORDER, Sensor, scan_scene

    try:
        sens = Sensor.parse(sensor)
    except ValueError as exc:
        _fail(str(exc))
    band_map = None
    if bands is not None:
        try:
            band_map = parse_bands(bands, BAND_ORDER[sens.ruleset])
        except ValueError as exc:
            _fail(str(exc))
    try:
        result = scan_scene(scene, sens, band_map, scale=scale, offset=offset, daytime=not night, swir=swir)
    except SatelliteError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in result.fire_points], ensure_ascii=False))
        return
    _print_table(result)


def _print_table(result: SceneScan) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("lat", "lon", "pixels", "area m2", f"max ({result.value_unit})", "max lat", "max lon")
    for p in result.fire_points:
        table.add_row(
            f"{p.latitude:.6f}",
            f"{p.longitude:.6f}",
            str(p.pixel_count),
            f"{p.area_m2:,.0f}",
            f"{p.max_value:.4g}",
            f"{p.max_latitude:.6f}",
            f"{p.max_longitude:.6f}",
        )
    console = Console(markup=False)  # numbers only today; never a style from data
    console.print(table)
    console.print(
        f"{len(result.fire_points)} fire point(s), {result.fire_pixels} fire pixel(s) of {result.valid_pixels} "
        f"valid ({result.sensor.value}; cloud {result.cloud_pixels}, water {result.water_pixels})",
        highlight=False,
    )
