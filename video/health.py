"""Camera health on the patrol host: a feed that keeps showing the same picture is a camera that sees no fire.

Why: a stream that drops or stalls is noticed by :mod:`video.sources` (it reconnects). A feed that *freezes* is
not: a snapshot endpoint serving its cached image, an encoder repeating its last frame, a camera whose sensor
board hung while its web server still answers. Frames keep arriving at the cadence, the detector finds nothing in
them, and the township is unwatched without anyone knowing. Pyronear's camera API runs a stuck-camera detector for
this (a perceptual hash with a fog-variance guard; ``../shared/reference/cameras-and-drones.md`` §§ 1.3, 5.9).

The test here is per pixel rather than a hash: between two frames of a live camera most pixels change (sensor
noise survives JPEG; 44–73 % of the pixels of the FIgLib tower clip change by more than 2 grey levels from one
frame to the next, a minute apart), while a frozen feed repeats its picture exactly, save a ticking on-screen
clock. A frame counts as *unchanged* when under :attr:`FrozenFeedWatch.max_changed_fraction` of its pixels moved
by more than 2 levels. The fog guard: a nearly uniform frame (grey-level standard deviation under
:attr:`FrozenFeedWatch.min_std`: fog, a lens cap, night without IR) legitimately repeats, and neither counts nor
breaks a run. After :attr:`FrozenFeedWatch.after_frames` unchanged frames in a row the feed is reported frozen,
once, and recovered at its first changed frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_FROZEN_AFTER_FRAMES", "FrozenFeedWatch"]

DEFAULT_FROZEN_AFTER_FRAMES: Final = 10  # 5–10 min at the 30–60 s preset cadences
_CHANGE_LEVELS: Final = 2  # grey levels a pixel must move by to count as changed (above re-encoding rounding)

FeedChange = Literal["frozen", "recovered"]


@dataclass
class FrozenFeedWatch:
    """Follows one preset's frames in order; :meth:`update` says when the feed froze and when it recovered."""

    after_frames: int = DEFAULT_FROZEN_AFTER_FRAMES
    max_changed_fraction: float = 0.005
    min_std: float = 5.0
    frozen: bool = False
    unchanged: int = 0  # unchanged frames in a row so far, after the first frame showing the picture
    _previous: NDArray[np.uint8] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.after_frames < 1:
            raise ValueError(f"after_frames must be ≥ 1, got {self.after_frames}")
        if not 0.0 <= self.max_changed_fraction < 1.0:
            raise ValueError(f"max_changed_fraction must be in [0, 1), got {self.max_changed_fraction}")

    def update(self, image: NDArray[np.uint8]) -> FeedChange | None:
        """Account for the next frame (BGR or grey ``uint8``); ``"frozen"`` or ``"recovered"`` when that changed."""
        grey: NDArray[np.uint8] = np.asarray(
            cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image, dtype=np.uint8
        )
        if float(grey.std()) < self.min_std:
            # Fog guard: a flat picture may repeat; it neither counts nor breaks a run, so the next frame is compared
            # with the last textured one (compared with the flat one, any picture would count as changed).
            return None
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return self._changed()
        moved = np.count_nonzero(cv2.absdiff(grey, previous) > _CHANGE_LEVELS)
        if moved > self.max_changed_fraction * grey.size:
            return self._changed()
        self.unchanged += 1
        if not self.frozen and self.unchanged >= self.after_frames:
            self.frozen = True
            return "frozen"
        return None

    @property
    def repeats(self) -> int:
        """How many frames in a row have shown the same picture: the first one and the unchanged ones after it."""
        return self.unchanged + 1 if self.unchanged else 0

    def _changed(self) -> FeedChange | None:
        self.unchanged = 0
        if self.frozen:
            self.frozen = False
            return "recovered"
        return None
