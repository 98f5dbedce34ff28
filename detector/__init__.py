"""Fire and smoke detection in camera and drone frames: training, inference and evaluation.

This package never imports ``service``, ``satellite`` or ``video``.
"""
