"""Default locations, in a module that imports nothing heavy (the CLI reads them at import time)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_MODELS_DIR", "REPO_ROOT"]

#: The checkout this package lives in: paths derived from it work from any working directory.
REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[1]
#: ``models/`` of this checkout (weights, ``manifest.json``, model card).
DEFAULT_MODELS_DIR: Final[Path] = REPO_ROOT / "models"
