"""Frame sources, camera and drone geometry, and the patrol pipeline.

This package never imports ``service``.
"""
