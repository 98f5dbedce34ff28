"""Exceptions of the ``video`` package.

Every error raised on purpose here derives from :class:`VideoError`, so a caller (the CLI, the service's
ingest of camera and drone detections) can catch one type and turn it into a one-line message without also
swallowing programming errors such as ``TypeError``.

The split follows what a caller does next:

* :class:`InputError` and :class:`MetadataError` — the input is wrong or incomplete; fix the input
  (exit status 2 in the CLI).
* :class:`NoGroundIntersectionError` and :class:`TriangulationError` — the input is fine but the geometry has
  no answer (a drone looking at the sky, parallel bearings); the caller falls back to a wedge or waits for
  another observation (exit status 1 in the CLI).
* :class:`DemError` — a DEM file cannot be used.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DemError",
    "InputError",
    "MetadataError",
    "NoGroundIntersectionError",
    "TriangulationError",
    "VideoError",
]


class VideoError(Exception):
    """Root of every deliberate error in the ``video`` package."""


class InputError(VideoError, ValueError):
    """A value given to the geometry is out of range or malformed.

    Also a ``ValueError`` so that generic code that validates arguments keeps working.

    Attributes:
        field: the name of the offending field or argument, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message if field is None else f"{field}: {message}")


class MetadataError(VideoError):
    """A drone image lacks (or has malformed) the metadata needed for what was asked.

    Attributes:
        source_name: the image (file name) concerned.
        missing: the metadata fields that are absent, in the names DJI/EXIF use, so the message tells the
            operator exactly what the firmware did not write.
    """

    def __init__(self, message: str, *, source_name: str, missing: Iterable[str] = ()) -> None:
        self.source_name = source_name
        self.missing: tuple[str, ...] = tuple(missing)
        detail = f" (missing: {', '.join(self.missing)})" if self.missing else ""
        super().__init__(f"{source_name}: {message}{detail}")


class NoGroundIntersectionError(VideoError):
    """A viewing ray does not meet the ground within the range considered.

    Attributes:
        reason: ``"above_horizon"`` (the ray rises, or skims over the curved Earth), ``"beyond_max_range"``
            (it descends but lands farther than the maximum range) or ``"outside_dem"`` (it leaves the DEM
            before landing).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class TriangulationError(VideoError):
    """Bearings that cannot be intersected at all (fewer than two, or all parallel)."""


class DemError(VideoError):
    """A DEM file cannot be opened or read as a single-band elevation raster."""
