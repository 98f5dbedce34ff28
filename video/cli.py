"""``strawfire drone …`` and ``strawfire camera …``: command-line access to the drone and camera geometry.

Mount with ``app.add_typer(drone_app, name="drone")`` and ``app.add_typer(camera_app, name="camera")`` (or the
ready-made :data:`app`, which has both). Exit status: 0 done; 1 the input is fine but the geometry has no answer
(a ray that never meets the ground, bearings that never cross or whose crossing is rejected); 2 bad input (a
missing or unreadable file, malformed JSON, a missing or out-of-range field, a frame without the metadata asked
for). Every failure is one line on stderr that names the file, the item and the field; never a traceback.

NumPy, pyproj, OpenCV, rasterio and Pillow are imported inside the commands, so mounting these apps costs the
``strawfire`` start-up nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, ParamSpec, TypeVar

import typer

from video.errors import InputError, NoGroundIntersectionError, TriangulationError, VideoError

if TYPE_CHECKING:
    from video.drone import DroneFix, DroneMetadata, LrfTarget
    from video.triangulate import BearingObservation, Triangulation

__all__ = ["app", "camera_app", "drone_app"]

P = ParamSpec("P")
R = TypeVar("R")

EXIT_NO_SOLUTION: Final = 1
EXIT_BAD_INPUT: Final = 2
OBSERVATION_FIELDS: Final = ("latitude", "longitude", "height_m", "bearing_deg", "bearing_sigma_deg")
REQUIRED_OBSERVATION_FIELDS: Final = ("latitude", "longitude", "bearing_deg", "bearing_sigma_deg")

app = typer.Typer(help="Camera and drone geometry.", no_args_is_help=True, pretty_exceptions_enable=False)
drone_app = typer.Typer(
    help="Drone frames: locate pixels on the ground from DJI metadata.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
camera_app = typer.Typer(
    help="Tower cameras: the registry, heading calibration, mask suggestions, bearings crossed from several towers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(drone_app, name="drone")
app.add_typer(camera_app, name="camera")


@drone_app.callback()
def _drone() -> None:
    """Drone frames: locate pixels on the ground from DJI metadata."""


@camera_app.callback()
def _camera() -> None:
    """Tower cameras: intersect bearings from several towers."""


def _fail(message: str, status: int) -> typer.Exit:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(status)


def _friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the package's deliberate errors into one stderr line and the documented exit status."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (NoGroundIntersectionError, TriangulationError) as exc:
            raise _fail(str(exc), EXIT_NO_SOLUTION) from None
        except VideoError as exc:
            raise _fail(str(exc), EXIT_BAD_INPUT) from None

    return wrapper


def _json_safe(value: Any) -> Any:
    """NaN/inf (JSON has neither) become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _echo_json(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(_json_safe(payload), ensure_ascii=False, indent=2, allow_nan=False))


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _check_option(name: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"must be within [{low:g}, {high:g}], got {value:g}", field=name)


def _ray_payload(fix: DroneFix) -> dict[str, Any]:
    ground = fix.ground
    assert ground.hit is not None
    return {
        "latitude": fix.latitude,
        "longitude": fix.longitude,
        "altitude_m": fix.altitude_m,
        "method": "ray",
        "terrain": fix.terrain,
        "pixel": list(fix.pixel),
        "bearing_deg": ground.ray.bearing_deg,
        "elevation_deg": ground.ray.elevation_deg,
        "horizontal_range_m": ground.hit.horizontal_range_m,
        "slant_range_m": ground.hit.slant_range_m,
        "near_range_m": ground.near_range_m,
        "far_range_m": ground.far_range_m,
        "far_open": ground.far_open,
        "half_width_deg": ground.half_width_deg,
        "cross_range_m": ground.cross_range_m,
        "yaw_source": fix.yaw_source,
        "intrinsics_source": fix.intrinsics_source,
    }


def _drone_payload(meta: DroneMetadata) -> dict[str, Any]:
    return {
        "model": meta.model,
        "latitude": meta.latitude,
        "longitude": meta.longitude,
        "absolute_altitude_m": meta.absolute_altitude_m,
        "relative_altitude_m": meta.relative_altitude_m,
        "gimbal_pitch_deg": meta.gimbal_pitch_deg,
        "gimbal_yaw_deg": meta.gimbal_yaw_deg,
    }


def _lrf_payload(lrf: LrfTarget | None) -> dict[str, Any] | None:
    if lrf is None:
        return None
    return {
        "latitude": lrf.latitude,
        "longitude": lrf.longitude,
        "abs_altitude_m": lrf.abs_altitude_m,
        "distance_m": lrf.distance_m,
    }


@drone_app.command()
@_friendly
def locate(
    image: Annotated[Path, typer.Argument(help="A DJI JPEG with drone-dji XMP (or EXIF GPS) metadata.")],
    pixel: Annotated[
        tuple[float, float] | None,
        typer.Option(
            metavar="X Y",
            help="Pixel to locate, from the top-left corner of the frame as displayed (EXIF orientation applied); "
            "default: the optical axis.",
        ),
    ] = None,
    use_lrf: Annotated[
        bool, typer.Option("--use-lrf", help="Report the laser-rangefinder target instead of the ray result.")
    ] = False,
    dem: Annotated[
        Path | None, typer.Option(help="DEM GeoTIFF to intersect (default: flat ground at the take-off point).")
    ] = None,
    hfov: Annotated[
        float | None,
        typer.Option(help="Horizontal field of view, degrees, for frames whose metadata lacks a focal length."),
    ] = None,
    sigma_pitch: Annotated[float, typer.Option(help="Gimbal pitch uncertainty, degrees (1σ).")] = 1.0,
    sigma_yaw: Annotated[float, typer.Option(help="Yaw (compass) uncertainty, degrees (1σ).")] = 2.0,
    max_range: Annotated[float, typer.Option(help="Farthest ground point considered, metres.")] = 5000.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Locate the optical axis (or --pixel) of a drone frame on the ground by ray projection.

    The LRF target is never copied into a ray result: with LRF fields present the output carries lrf_check_m,
    the distance between the two. --use-lrf reports the LRF target itself (method "lrf").
    """
    from video.drone import locate as locate_pixel
    from video.drone import lrf_fix, read_drone_metadata

    _check_option("--sigma-pitch", sigma_pitch, 0.0, 45.0)
    _check_option("--sigma-yaw", sigma_yaw, 0.0, 45.0)
    _check_option("--max-range", max_range, 1.0, 1e6)
    meta = read_drone_metadata(image)
    terrain = None
    if dem is not None:
        from video.ground import DemTerrain

        terrain = DemTerrain.from_file(dem)
    intrinsics = None
    if hfov is not None:
        from video.camera import Intrinsics

        _check_option("--hfov", hfov, 0.1, 179.0)
        intrinsics = Intrinsics.from_hfov(meta.width, meta.height, hfov)

    def ray_fix() -> DroneFix:
        return locate_pixel(
            meta,
            pixel,
            terrain=terrain,
            intrinsics=intrinsics,
            sigma_pitch_deg=sigma_pitch,
            sigma_yaw_deg=sigma_yaw,
            max_range_m=max_range,
        )

    if use_lrf:
        lrf = lrf_fix(meta)
        if pixel is not None:
            raise InputError("the LRF measures the optical axis only; drop --pixel or --use-lrf", field="--pixel")
        ray_error = None
        try:
            check = ray_fix().lrf_check_m
        except VideoError as exc:
            check, ray_error = None, str(exc)
        payload: dict[str, Any] = {
            "latitude": lrf.latitude,
            "longitude": lrf.longitude,
            "altitude_m": lrf.abs_altitude_m,
            "method": "lrf",
            "lrf_distance_m": lrf.distance_m,
            "lrf_check_m": _finite_or_none(check),
            "ray_error": ray_error,
        }
    else:
        fix = ray_fix()
        payload = _ray_payload(fix)
        payload["lrf_check_m"] = _finite_or_none(fix.lrf_check_m)
    payload["image"] = str(image)
    payload["drone"] = _drone_payload(meta)
    payload["lrf"] = _lrf_payload(meta.lrf)

    if as_json:
        _echo_json(payload)
        return
    line = f"{payload['latitude']:.7f}, {payload['longitude']:.7f} ({payload['method']}"
    if payload["method"] == "ray":
        line += (
            f", {payload['terrain']}, {payload['horizontal_range_m']:.1f} m at {payload['bearing_deg']:.1f}°; "
            f"range {payload['near_range_m']:.0f}–{payload['far_range_m']:.0f} m"
            f"{'+' if payload['far_open'] else ''}, ±{payload['cross_range_m']:.0f} m across"
        )
    if payload["lrf_check_m"] is not None:
        line += f"; LRF check {payload['lrf_check_m']:.1f} m"
    typer.echo(line + ")")


def _number_field(source: str, index: int, item: dict[str, Any], key: str) -> float:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{source}: item {index}: field {key!r} must be a finite number, got {value!r}")
    return float(value)


def read_observations(path: Path) -> list[BearingObservation]:
    """Parse OBS.json (a list of observation objects); errors name the file, the item (from 1) and the field."""
    from video.triangulate import BearingObservation

    source = str(path)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, list):
        raise InputError(f"{source}: expected a JSON list of observations, got {type(data).__name__}")
    observations = []
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise InputError(f"{source}: item {index}: expected an object, got {type(item).__name__}")
        for key in REQUIRED_OBSERVATION_FIELDS:
            if key not in item:
                raise InputError(f"{source}: item {index}: missing field {key!r}")
        unknown = sorted(set(item) - set(OBSERVATION_FIELDS))
        if unknown:
            raise InputError(f"{source}: item {index}: unknown field {unknown[0]!r}")
        values = {key: _number_field(source, index, item, key) for key in OBSERVATION_FIELDS if key in item}
        try:
            observations.append(BearingObservation(**values))
        except InputError as exc:
            raise InputError(f"{source}: item {index}: {exc}") from None
    if len(observations) < 2:
        raise InputError(f"{source}: triangulation needs at least 2 observations, got {len(observations)}")
    return observations


#: What a rejected crossing's payload gives as null: its position and ellipse are no fire's.
_REJECTED_NULLS: Final = ("latitude", "longitude", "sigma_major_m", "sigma_minor_m", "orientation_deg")


def _triangulation_payload(result: Triangulation, count: int) -> dict[str, Any]:
    return {
        "latitude": result.latitude,
        "longitude": result.longitude,
        "sigma_major_m": result.sigma_major_m,
        "sigma_minor_m": result.sigma_minor_m,
        "orientation_deg": result.orientation_deg,
        "crossing_angle_deg": result.crossing_angle_deg,
        "chi2": result.chi2,
        "dof": result.dof,
        "p_value": result.p_value,
        "accepted": result.accepted,
        "reasons": list(result.reasons),
        "ranges_m": list(result.ranges_m),
        "residuals_m": list(result.residuals_m),
        "n_observations": count,
    }


@camera_app.command()
@_friendly
def triangulate(
    observations_file: Annotated[
        Path,
        typer.Argument(
            metavar="OBS.json",
            help='A JSON list of {"latitude", "longitude", "height_m", "bearing_deg", "bearing_sigma_deg"} '
            "(bearings clockwise from true north; height_m optional).",
        ),
    ],
    min_crossing: Annotated[float, typer.Option(help="Reject crossings narrower than this, degrees.")] = 15.0,
    alpha: Annotated[float, typer.Option(help="Significance of the chi-square consistency test.")] = 0.01,
    max_range: Annotated[
        float | None, typer.Option(help="Reject points farther than this from any camera, metres.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Intersect bearings from two or more towers (weighted least squares, with an error ellipse).

    A rejected crossing (behind a camera, too narrow, inconsistent bearings) has no position: exit status 1, as for
    bearings that cannot be crossed at all, with one line on stderr giving the reasons. With --json the payload
    still goes to stdout for its diagnostics ("accepted": false, the reasons, the crossing angle, chi-square,
    ranges and residuals), but "latitude", "longitude" and the ellipse are null: the least-squares point of a
    rejected crossing (two parallel bearings put it in Greenland) must never be read as a fire's position.
    """
    from video.triangulate import triangulate as solve

    _check_option("--min-crossing", min_crossing, 0.0, 90.0)
    _check_option("--alpha", alpha, 1e-12, 0.5)
    if max_range is not None:
        _check_option("--max-range", max_range, 1.0, 1e6)
    observations = read_observations(observations_file)
    result = solve(observations, min_crossing_deg=min_crossing, alpha=alpha, max_range_m=max_range)
    payload = _triangulation_payload(result, len(observations))
    if not result.accepted:
        payload |= dict.fromkeys(_REJECTED_NULLS)
    if as_json:
        _echo_json(payload)
    if not result.accepted:
        raise _fail(
            f"{observations_file}: the bearings give no accepted crossing (crossing {result.crossing_angle_deg:.1f}°): "
            + "; ".join(result.reasons),
            EXIT_NO_SOLUTION,
        )
    if as_json:
        return
    typer.echo(
        f"{result.latitude:.7f}, {result.longitude:.7f} ±{result.sigma_major_m:.0f}/{result.sigma_minor_m:.0f} m "
        f"(major axis {result.orientation_deg:.0f}°), crossing {result.crossing_angle_deg:.1f}°, accepted"
    )


LANDMARK_FIELDS: Final = (
    "name",
    "latitude",
    "longitude",
    "u",
    "v",
    "preset",
    "pan_deg",
    "tilt_deg",
    "zoom",
    "roll_deg",
    "altitude_m",
)


def read_landmarks(path: Path, camera: Any) -> list[Any]:
    """Parse LANDMARKS.json for ``camera`` (a :class:`video.registry.CameraRecord`): a list of
    ``{"name", "latitude", "longitude", "u", "v", "preset" | "pan_deg"+"tilt_deg"[+"zoom", "roll_deg"],
    "altitude_m"}``; errors name the file, the item (from 1) and the field."""
    from video.calibration import Landmark

    source = str(path)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, list) or not data:
        raise InputError(f"{source}: expected a non-empty JSON list of landmarks")
    marks = []
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise InputError(f"{source}: item {index}: expected an object, got {type(item).__name__}")
        unknown = sorted(set(item) - set(LANDMARK_FIELDS))
        if unknown:
            raise InputError(f"{source}: item {index}: unknown field {unknown[0]!r}")
        for key in ("latitude", "longitude", "u", "v"):
            if key not in item:
                raise InputError(f"{source}: item {index}: missing field {key!r}")
        numbers = {
            key: _number_field(source, index, item, key)
            for key in ("latitude", "longitude", "u", "v", "pan_deg", "tilt_deg", "zoom", "roll_deg", "altitude_m")
            if key in item and item[key] is not None
        }
        if "preset" in item:
            if not isinstance(item["preset"], str):
                raise InputError(f"{source}: item {index}: field 'preset': expected a preset id")
            try:
                pose = camera.pose(item["preset"])
            except InputError as exc:
                raise InputError(f"{source}: item {index}: {exc}") from None
            numbers.update(pan_deg=pose.pan_deg, tilt_deg=pose.tilt_deg, zoom=pose.zoom, roll_deg=pose.roll_deg)
        elif "pan_deg" not in numbers or "tilt_deg" not in numbers:
            raise InputError(f"{source}: item {index}: give 'preset', or 'pan_deg' and 'tilt_deg'")
        marks.append(Landmark(name=str(item.get("name") or f"item {index}"), **numbers))
    return marks


@camera_app.command()
@_friendly
def calibrate(
    registry_file: Annotated[Path, typer.Argument(metavar="CAMERAS.toml", help="The camera registry (TOML or JSON).")],
    camera_id: Annotated[str, typer.Argument(metavar="CAMERA_ID")],
    landmarks_file: Annotated[
        Path,
        typer.Argument(
            metavar="LANDMARKS.json",
            help='A JSON list of {"name", "latitude", "longitude", "u", "v", "preset" (or "pan_deg", "tilt_deg", '
            '"zoom"), "altitude_m" (optional: the marked point\'s height in the site\'s datum)}.',
        ),
    ],
    no_tilt: Annotated[bool, typer.Option("--no-tilt", help="Fit the heading only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fit a camera's heading (north) and tilt offsets to landmarks of known position seen in its frames.

    Prints the offsets to put in the registry's site (it is not changed) and each landmark's residual: a residual
    far from the others is a misidentified landmark; the RMS is the bearing error left (a floor for sigma_pan_deg).
    """
    from video.calibration import calibrate_site
    from video.registry import load_registry

    camera = load_registry(registry_file).camera(camera_id)
    marks = read_landmarks(landmarks_file, camera)
    result = calibrate_site(camera.site, camera.lens, marks, fit_tilt=not no_tilt)
    rows = [
        {"name": m.name, "distance_m": d, "bearing_residual_deg": b, "elevation_residual_deg": e}
        for m, d, b, e in zip(
            marks, result.distances_m, result.bearing_residuals_deg, result.elevation_residuals_deg, strict=True
        )
    ]
    payload: dict[str, Any] = {
        "camera_id": camera.id,
        "heading_offset_deg": result.heading_offset_deg,
        "tilt_offset_deg": result.tilt_offset_deg,
        "tilt_fitted": result.tilt_fitted,
        "previous_heading_offset_deg": camera.site.heading_offset_deg,
        "previous_tilt_offset_deg": camera.site.tilt_offset_deg,
        "rms_bearing_deg": result.rms_bearing_deg,
        "landmarks": rows,
        "warnings": list(result.warnings),
    }
    if as_json:
        _echo_json(payload)
        return
    tilt = f"{result.tilt_offset_deg:.3f}" + ("" if result.tilt_fitted else " (kept)")
    typer.echo(
        f"{camera.id}: heading_offset_deg = {result.heading_offset_deg:.3f} (was {camera.site.heading_offset_deg:g}), "
        f"tilt_offset_deg = {tilt}, bearing RMS {result.rms_bearing_deg:.3f}°"
    )
    for row in rows:
        elevation = row["elevation_residual_deg"]
        extra = "" if elevation is None else f", elevation {elevation:+.3f}°"
        typer.echo(f"  {row['name']}: {row['distance_m']:.0f} m, bearing {row['bearing_residual_deg']:+.3f}°{extra}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
