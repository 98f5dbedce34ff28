"""Featureless negatives for the next training: frames with nothing in them, generated.

Why: the network draws one frame-wide smoke box (0.66–0.96) on a flat grey or white frame, an even overcast sky or
a brightness ramp, and a fire box on a blue "no signal" screen, because the CCTV set labels smoke-filled rooms,
whose only structure is an overlay text, as smoke (docs/detector.md, *Featureless frames*). Inference leaves such
boxes out (:mod:`detector.featureless`); the lasting cure is to train on frames like them as negatives, which no
shared set holds. ``strawfire detector dataset featureless OUT`` writes them as an extra set (images, empty labels
and the ``[[set]]`` file) for ``dataset build --extra-sets OUT/extra_sets.toml``.

Five kinds, drawn in turn from one seeded generator (the same seed writes the same files):

* ``flat``: one colour, grey to white or a dull tint, as a lens cap, a covered dome or dense cloud shows;
* ``overcast``: a sky-like ramp in a random direction with faint sensor noise;
* ``noise``: a flat level under σ 2–8 sensor noise (night gain);
* ``screen``: the blue, black or green screen of a video encoder without a signal, with or without a lighter
  message box;
* ``fog``: a horizon scene (sky ramp, a darker ground band with coarse texture) drawn 85–97 % into grey-white fog,
  as the tower frames under fog that drew 0.4–0.65 smoke boxes.

Pure apart from :func:`write_featureless_set`; JPEG-encoded like camera frames (quality 85–95), so the network
sees compression blocks, not perfectly smooth planes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np
from PIL import Image

from detector.detections import ImageArray

__all__ = [
    "EXTRA_SET_FILE",
    "KINDS",
    "SET_NAME",
    "FeaturelessKind",
    "featureless_frame",
    "featureless_frames",
    "write_featureless_set",
]

FeaturelessKind = Literal["flat", "overcast", "noise", "screen", "fog"]
KINDS: Final[tuple[FeaturelessKind, ...]] = get_args(FeaturelessKind)

#: The extra set's name (its images' source prefix in the dataset) and the ``[[set]]`` file written beside it.
SET_NAME: Final[str] = "featureless_synthetic"
EXTRA_SET_FILE: Final[str] = "extra_sets.toml"

#: Screens of video encoders and NVRs without a signal: RGB.
_SCREEN_COLOURS: Final[tuple[tuple[int, int, int], ...]] = ((0, 0, 255), (16, 40, 190), (0, 0, 0), (0, 96, 48))


def _ramp(rng: np.random.Generator, height: int, width: int, low: float, high: float) -> np.ndarray:
    """A linear ramp from ``low`` to ``high`` across the frame in a random direction (float, one channel)."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    along = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-9)
    ramp: np.ndarray = low + (high - low) * along
    return ramp


def _tinted(level: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """A grey level plane as RGB, each channel shifted by up to ``spread`` grey levels (a dull tint)."""
    shift = rng.uniform(-spread, spread, size=3)
    return level[..., None] + shift[None, None, :]


def _coarse_texture(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth random texture in −1..1: a ``cells``-wide random grid upscaled bilinearly."""
    grid = rng.uniform(-1.0, 1.0, size=(cells, max(2, cells * width // height)))
    image = Image.fromarray(((grid + 1.0) * 127.5).astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, np.float64) / 127.5 - 1.0


def featureless_frame(
    kind: FeaturelessKind, rng: np.random.Generator, size: tuple[int, int] = (640, 480)
) -> ImageArray:
    """One RGB frame of ``kind`` at ``size`` (width, height), drawn from ``rng``."""
    width, height = size
    if kind == "flat":
        level = np.full((height, width), rng.uniform(30.0, 250.0))
        pixels = _tinted(level, rng, 12.0)
    elif kind == "overcast":
        top = rng.uniform(150.0, 245.0)
        level = _ramp(rng, height, width, top, top - rng.uniform(10.0, 70.0))
        pixels = _tinted(level, rng, 8.0) + rng.normal(0.0, rng.uniform(0.0, 3.0), size=(height, width, 1))
    elif kind == "noise":
        level = np.full((height, width), rng.uniform(20.0, 200.0))
        pixels = _tinted(level, rng, 6.0) + rng.normal(0.0, rng.uniform(2.0, 8.0), size=(height, width, 3))
    elif kind == "screen":
        colour = np.asarray(_SCREEN_COLOURS[int(rng.integers(len(_SCREEN_COLOURS)))], np.float64)
        pixels = np.broadcast_to(colour, (height, width, 3)).copy()
        if rng.random() < 0.5:  # the encoder's message box: a lighter rectangle in the middle
            bw, bh = int(width * rng.uniform(0.2, 0.4)), int(height * rng.uniform(0.06, 0.12))
            x0, y0 = (width - bw) // 2, (height - bh) // 2
            pixels[y0 : y0 + bh, x0 : x0 + bw] = np.minimum(colour + 60.0, 255.0)
    else:  # fog over a horizon scene
        horizon = int(height * rng.uniform(0.35, 0.65))
        scene = _ramp(rng, height, width, rng.uniform(150.0, 220.0), rng.uniform(120.0, 200.0))
        ground = rng.uniform(50.0, 110.0) + 25.0 * _coarse_texture(rng, height, width, 8)
        scene[horizon:] = ground[horizon:]
        fog_level, density = rng.uniform(175.0, 235.0), rng.uniform(0.85, 0.97)
        pixels = _tinted(density * fog_level + (1.0 - density) * scene, rng, 5.0)
        pixels += rng.normal(0.0, 1.5, size=(height, width, 1))
    frame: ImageArray = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return frame


def featureless_frames(
    count: int, *, seed: int = 0, size: tuple[int, int] = (640, 480)
) -> Iterator[tuple[str, ImageArray]]:
    """``count`` frames, the kinds in turn, named ``<kind>_<n>`` (n counts all frames from 0)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        yield f"{kind}_{index:05d}", featureless_frame(kind, rng, size)


def _jpeg(pixels: ImageArray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_featureless_set(out: Path, count: int, *, seed: int = 0, size: tuple[int, int] = (640, 480)) -> Path:
    """Write ``count`` frames to ``out/images`` (JPEG), an empty label file each to ``out/labels`` and the
    ``[[set]]`` file for ``dataset build --extra-sets``; return that file's path.

    Refuses a folder that holds other files than an earlier set of its own (never wipes anyone's data); an earlier
    set is replaced whole, so a smaller ``count`` leaves no stale frames behind.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    spec = out / EXTRA_SET_FILE
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder")
        foreign = [p.name for p in out.iterdir() if p.name not in {"images", "labels", EXTRA_SET_FILE}]
        if foreign or (any(out.iterdir()) and not spec.is_file()):
            raise FileExistsError(f"{out} holds files that are not a featureless set of ours: refusing to write there")
    images, labels = out / "images", out / "labels"
    for folder in (images, labels):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            stale.unlink()
    rng = np.random.default_rng(seed + 1)  # JPEG qualities, apart from the frames' own draws
    for name, pixels in featureless_frames(count, seed=seed, size=size):
        (images / f"{name}.jpg").write_bytes(_jpeg(pixels, int(rng.integers(85, 96))))
        (labels / f"{name}.txt").write_text("", encoding="utf-8")
    spec.write_text(
        "# Written by `strawfire detector dataset featureless`; add with `dataset build --extra-sets` this file.\n"
        "[[set]]\n"
        f'name = "{SET_NAME}"\n'
        'path = "."\n'
        'names = ["fire", "smoke"]\n'
        'licence = "AGPL-3.0-or-later (generated by strawfire)"\n'
        f'attribution = "strawfire detector/synthetic_negatives.py, {count} frames, seed {seed}, {size[0]}x{size[1]}"\n'
        'split = "train"\n'
        'note = "Featureless negatives: flat, overcast, noise, no-signal screens, fog over a horizon."\n',
        encoding="utf-8",
    )
    return spec
