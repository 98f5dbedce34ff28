"""Turning each package's typed records into observations (the service composes the sensing packages)."""

from __future__ import annotations

from datetime import timedelta

from satellite.hotspot import Hotspot
from service.config import IncidentSettings
from service.incidents.fusion import FusionWindows, ObservationIn, ObservationKind


def hotspot_observation(hotspot: Hotspot) -> ObservationIn:
    """A satellite hotspot: its uncertainty region is the pixel footprint (scan × track km)."""
    return ObservationIn(
        kind=ObservationKind.SATELLITE,
        source_key=hotspot.key,
        observed_at=hotspot.acq_utc,
        latitude=hotspot.latitude,
        longitude=hotspot.longitude,
        region=hotspot.footprint(),
        confidence=hotspot.confidence,
        frp_mw=hotspot.frp_mw,
        details={
            "product": hotspot.product.value,
            "satellite": hotspot.satellite.value,
            "instrument": hotspot.instrument.value,
            "scan_km": hotspot.scan_km,
            "track_km": hotspot.track_km,
            "bright_mir_k": hotspot.bright_mir_k,
            "bright_tir_k": hotspot.bright_tir_k,
            "confidence_raw": hotspot.confidence_raw,
            "daynight": hotspot.daynight.value,
            "version": hotspot.version,
        },
    )


def fusion_windows(settings: IncidentSettings) -> FusionWindows:
    """The fusion windows configured for this deployment."""
    return FusionWindows(
        ground=timedelta(hours=settings.ground_window_h),
        satellite=timedelta(hours=settings.satellite_window_h),
        buffer_m=settings.link_buffer_m,
    )
