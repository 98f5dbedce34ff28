"""The ``strawfire`` command: one Typer app with a sub-command group per area.

Errors strawfire raises on purpose are printed as one line on stderr (exit status 2); they name the file,
line and field, and never contain secrets.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from detector.cli import app as detector_app
from service.config import get_settings
from service.errors import InputError, StrawfireError
from service.regions.types import RegionLevel

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="strawfire: find straw burning and drive the response to it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
regions_app = typer.Typer(help="Administrative units: import, list, assign places to them.", no_args_is_help=True)
demo_app = typer.Typer(help="The generated DEMO region and scenario.", no_args_is_help=True)
users_app = typer.Typer(help="Users, roles and device tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(regions_app, name="regions")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(detector_app, name="detector")

err = Console(stderr=True)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn strawfire's own errors into a one-line message and exit status 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except StrawfireError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _session_factory() -> sessionmaker[Session]:
    from service.db import make_engine, make_session_factory, upgrade

    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    return make_session_factory(engine)


@app.command()
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings: 8000).")] = None,
    demo: Annotated[
        bool | None, typer.Option("--demo/--no-demo", help="Load the DEMO region when no real one exists.")
    ] = None,
) -> None:
    """Start the service on the configured database (migrations are applied at start)."""
    import uvicorn

    from service.main import create_app

    settings = get_settings()
    if demo is not None:
        settings = settings.model_copy(update={"demo": demo})
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations."""
    from service.db import make_engine, upgrade

    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine, revision)
    typer.echo(f"database at {revision} ({engine.url.render_as_string(hide_password=True)})")


@regions_app.command("import")
@friendly_errors
def regions_import(
    path: Annotated[Path, typer.Argument(help="GeoJSON, Shapefile (.shp) or zipped Shapefile.")],
    level: Annotated[str, typer.Option(help="county, township, village, grid, city or province.")],
    crs: Annotated[str, typer.Option(help="wgs84, cgcs2000, gcj02, bd09 or epsg:NNNN.")],
    codes: Annotated[Path | None, typer.Option(help="Official code list CSV to fill codes/names.")] = None,
    code_field: Annotated[str | None, typer.Option(help="Attribute holding the unit code.")] = None,
    name_field: Annotated[str | None, typer.Option(help="Attribute holding the unit name.")] = None,
    parent_field: Annotated[str | None, typer.Option(help="Attribute holding the parent code.")] = None,
) -> None:
    """Import (or atomically replace) every unit of one level."""
    from service.db import transaction
    from service.regions.crs import parse_crs
    from service.regions.loader import CodeList, read_units
    from service.regions.service import import_units

    region_level = _parse_level(level)
    source_crs = parse_crs(crs)
    code_list = CodeList.read(codes) if codes else None
    units, report = read_units(
        path,
        level=region_level,
        crs=source_crs,
        codes=code_list,
        code_field=code_field,
        name_field=name_field,
        parent_field=parent_field,
    )
    with transaction(_session_factory()) as session:
        summary = import_units(session, units, level=region_level, crs=source_crs, report=report)
    for repair in report.repairs:
        err.print(f"repaired feature {repair.row} ({repair.code}): {repair.reason}", highlight=False)
    for warning in report.warnings:
        err.print(f"warning: {warning}", highlight=False)
    typer.echo(
        f"imported {summary.unit_count} {RegionLevel(region_level).value} units from {path} "
        f"(replaced {summary.replaced}, repaired {summary.repaired})"
    )


def _parse_level(level: str) -> RegionLevel:
    try:
        return RegionLevel(level.strip().lower())
    except ValueError:
        raise InputError(f"unknown level {level!r}; use one of " + ", ".join(v.value for v in RegionLevel)) from None


@regions_app.command("list")
@friendly_errors
def regions_list(level: Annotated[str | None, typer.Option(help="Only this level.")] = None) -> None:
    """List imported units."""
    from service.regions.service import list_regions

    with _session_factory()() as session:
        rows = list_regions(session, _parse_level(level) if level else None)
    table = Table("level", "code", "name", "parent", "area ha")
    for r in rows:
        table.add_row(r.level, r.code, r.name, r.parent_code or "", f"{r.area_ha:,.0f}")
    Console().print(table)


@regions_app.command("assign")
@friendly_errors
def regions_assign(
    points: Annotated[Path, typer.Argument(help="CSV with latitude and longitude columns (WGS-84).")],
    regions: Annotated[Path | None, typer.Option(help="Boundary file; without it, the database's units.")] = None,
    regions_crs: Annotated[str, typer.Option(help="CRS of --regions.")] = "wgs84",
    level: Annotated[str, typer.Option(help="Level of the units.")] = "county",
    tolerance_m: Annotated[float | None, typer.Option(help="Nearest-unit tolerance (default 500 m).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list (one object per row).")] = False,
) -> None:
    """Assign each point to a unit: inside, nearest within the tolerance, or outside."""
    from service.regions.crs import parse_crs
    from service.regions.index import RegionIndex
    from service.regions.loader import read_units
    from service.regions.points import read_points_csv
    from service.regions.service import load_units

    region_level = _parse_level(level)
    tolerance = tolerance_m if tolerance_m is not None else get_settings().regions.tolerance_m
    if regions is not None:
        units, _ = read_units(regions, level=region_level, crs=parse_crs(regions_crs))
    else:
        with _session_factory()() as session:
            units = load_units(session, region_level)
        if not units:
            from service.errors import NotFoundError

            raise NotFoundError(f"no {region_level.value} units in the database; give --regions")
    lon, lat = read_points_csv(points)
    index = RegionIndex(units, tolerance_m=tolerance)
    result = index.assign_points(lon, lat, measure_outside=True)
    out = []
    for i in range(len(result)):
        a = index.describe(result, i)
        out.append(
            {
                "latitude": float(lat[i]),
                "longitude": float(lon[i]),
                "region_code": a.code,
                "region_name": a.name,
                "status": a.status.value,
                "distance_m": None if a.distance_m is None else round(a.distance_m, 1),
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    table = Table("latitude", "longitude", "code", "name", "status", "distance m")
    for row in out:
        table.add_row(
            f"{row['latitude']:.5f}",
            f"{row['longitude']:.5f}",
            str(row["region_code"] or ""),
            str(row["region_name"] or ""),
            str(row["status"]),
            str(row["distance_m"]),
        )
    Console().print(table)


@demo_app.command("load")
@friendly_errors
def demo_load() -> None:
    """Load the generated DEMO region (skipped when real regions are present)."""
    from service.db import transaction
    from service.demo import load_demo

    with transaction(_session_factory()) as session:
        loaded = load_demo(session)
    typer.echo("DEMO region loaded" if loaded else "real regions present: DEMO region not loaded")


@users_app.command("add")
@friendly_errors
def users_add(
    name: Annotated[str, typer.Argument(help="Username.")],
    role: Annotated[str, typer.Option(help="patrol, supervisor, evaluator, admin or device.")],
    unit: Annotated[str | None, typer.Option(help="Township or county code the user answers for.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a user. The password is read from stdin (--password-stdin) or prompted for, never an argument."""
    from service.auth.service import create_user
    from service.db import transaction
    from service.incidents.states import Role

    try:
        user_role = Role(role.strip().lower())
    except ValueError:
        raise InputError(f"unknown role {role!r}; use patrol, supervisor, evaluator, admin or device") from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with transaction(_session_factory()) as session:
        user = create_user(session, name, password, user_role, unit)
    typer.echo(f"user {user.username} ({user.role}{', unit ' + user.unit_code if user.unit_code else ''}) created")


if __name__ == "__main__":
    app()
