"""Satellite fire hotspots: FIRMS, Himawari and Sentinel Hub sources, raster fire rules and screening.

This package never imports ``service``.
"""
