"""Read camera and drone images safely: one bad file is one clear error, never a crash or a memory blow-up.

Why this is not just ``cv2.imread``: OpenCV silently returns ``None`` for unreadable files and silently decodes a
truncated JPEG into a half-grey picture (printing a warning on stderr), and it decodes a 20000×20000 image into a
1.2 GB array before anyone can look at its size. Pillow reads the header first, so the size is checked *before*
decoding; huge JPEGs are decoded directly at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, no full-size buffer);
other huge formats are refused. Truncated data raises instead of being padded. Grayscale, palette, 16-bit and
RGBA images are converted to RGB, and the EXIF orientation is applied as OpenCV (and so ultralytics' training
pipeline) does.
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

import numpy as np

from detector.detections import ImageArray

__all__ = ["MAX_DECODE_PIXELS", "ImageLoadError", "LoadedImage", "image_size", "load_image"]

#: Largest image decoded at full resolution (48 MP: a 8000×6000 drone photo). Larger JPEGs are decoded at a
#: reduced scale, other formats refused; the detector's input is 320–1280 px anyway.
MAX_DECODE_PIXELS: Final[int] = 48_000_000

_JPEG_MAGIC: Final[bytes] = b"\xff\xd8\xff"
_ROTATING_ORIENTATIONS: Final[frozenset[int]] = frozenset({5, 6, 7, 8})  # EXIF orientations that swap w and h


class ImageLoadError(ValueError):
    """An image cannot be used: empty, not an image, truncated, too large. The message says which and why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class LoadedImage:
    """Decoded RGB pixels plus the size of the original image, which can be larger when decoded at a reduced scale.

    Boxes found on ``pixels`` are multiplied by ``scale`` to land in original-image coordinates.
    """

    pixels: ImageArray
    original_size: tuple[int, int]  # (width, height) after EXIF orientation

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) factors from ``pixels`` coordinates to original-image coordinates (1.0 unless downscaled)."""
        height, width = self.pixels.shape[:2]
        return self.original_size[0] / width, self.original_size[1] / height


def load_image(source: Path | bytes, *, max_pixels: int = MAX_DECODE_PIXELS, name: str | None = None) -> LoadedImage:
    """Decode an image file (or its bytes) to RGB ``uint8``; raise :class:`ImageLoadError` on anything unusable.

    A file is read as Pillow needs it, never whole up front: a folder of photos may hold multi-GB video clips
    (DJI cards keep .MP4 next to .JPG), and refusing one as "not an image" must read its header, not gigabytes.
    """
    from PIL import Image

    label = name or (str(source) if isinstance(source, Path) else "<bytes>")
    with _opened(source, label) as stream:
        image = _open_header(stream, label)
        width, height = image.size
        pixels = width * height
        if pixels > max_pixels:
            # MPO (DJI and phone JPEGs with a second picture) is a JPEG too, decoded the same way
            if image.format not in ("JPEG", "MPO") or pixels > 64 * max_pixels:  # 1/8 scale is libjpeg's smallest
                raise ImageLoadError(
                    label,
                    f"image is {width}×{height} ({pixels / 1e6:.0f} MP), above the {max_pixels / 1e6:.0f} MP "
                    "limit; downscale it before detection",
                )
            factor = next(f for f in (2, 4, 8) if pixels / (f * f) <= max_pixels)
            image.draft("RGB", (width // factor, height // factor))  # libjpeg decodes at 1/factor scale directly

        orientation = _exif_orientation(image)
        try:
            image.load()
            rgb = _to_rgb(_upright(image, orientation))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageLoadError(label, f"corrupt or truncated image data ({exc})") from exc
        except Exception as exc:  # whatever else a decoder raises for one bad file must not end a whole batch
            raise ImageLoadError(label, f"cannot decode the image ({type(exc).__name__}: {exc})") from exc

    original = (height, width) if orientation in _ROTATING_ORIENTATIONS else (width, height)
    return LoadedImage(rgb, original)


@contextmanager
def _opened(source: Path | bytes, label: str) -> Iterator[IO[bytes]]:
    """A binary stream of the file (closed afterwards) or of the bytes; :class:`ImageLoadError` when the file
    cannot be opened or is empty."""
    if not isinstance(source, Path):
        if not source:
            raise ImageLoadError(label, "empty file (0 bytes)")
        yield io.BytesIO(source)
        return
    try:
        stream = source.open("rb")
    except OSError as exc:  # missing, a folder, no permission
        raise ImageLoadError(label, f"cannot read the file ({exc.strerror or exc})") from exc
    with stream:
        try:
            empty = not stream.read(1)
            stream.seek(0)
        except OSError as exc:
            raise ImageLoadError(label, f"cannot read the file ({exc.strerror or exc})") from exc
        if empty:
            raise ImageLoadError(label, "empty file (0 bytes)")
        yield stream


def _open_header(stream: IO[bytes], label: str) -> Any:
    """The image opened by Pillow from ``stream`` (header read, pixels not yet decoded); :class:`ImageLoadError`
    when it cannot be read, is no image, or has an impossible size. A JPEG over Pillow's pixel limit still opens
    (its size decides later); any other format over it is refused."""
    from PIL import Image, JpegImagePlugin, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 MP and raises above ~179 MP; callers apply their own, lower limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _genuine_pil_open()(stream)
    except Image.DecompressionBombError:
        try:
            stream.seek(0)
            is_jpeg = stream.read(len(_JPEG_MAGIC)) == _JPEG_MAGIC
            stream.seek(0)
        except OSError as exc:
            raise ImageLoadError(label, f"cannot read the file ({exc.strerror or exc})") from exc
        if not is_jpeg:
            raise ImageLoadError(label, "image dimensions exceed Pillow's safety limit; refused") from None
        image = JpegImagePlugin.JpegImageFile(stream)  # header only: the caller's size check decides
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not an image file (unknown format)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(label, f"unreadable image header ({exc})") from exc
    except Exception as exc:  # a plugin's own (NotImplementedError for an unknown DDS format): still one file's
        raise ImageLoadError(label, f"unreadable image header ({type(exc).__name__}: {exc})") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(label, f"invalid image size {width}×{height}")
    return image


def image_size(source: Path | bytes, *, name: str | None = None) -> tuple[int, int]:
    """(width, height) of an image file as :func:`load_image` would decode it (after EXIF orientation), from its
    header only; :class:`ImageLoadError` as for :func:`load_image`."""
    label = name or (str(source) if isinstance(source, Path) else "<bytes>")
    with _opened(source, label) as stream:
        image = _open_header(stream, label)
        width, height = image.size
        rotated = _exif_orientation(image) in _ROTATING_ORIENTATIONS
    return (height, width) if rotated else (width, height)


def _genuine_pil_open() -> Callable[[IO[bytes]], Any]:
    """Pillow's own ``Image.open``, even after ultralytics replaced it.

    ultralytics' import swaps ``PIL.Image.open`` for a wrapper that, on any file Pillow cannot identify, calls its
    ``check_requirements("pi-heif")`` (a pip install attempt) and then imports a module that is not installed. A
    non-image file must be a plain per-image error, offline, so the original function is used.
    """
    from PIL import Image

    opener: Any = Image.open
    module = sys.modules.get(getattr(opener, "__module__", "PIL.Image") or "PIL.Image")
    original = getattr(module, "_image_open", None) if module is not None and module.__name__ != "PIL.Image" else None
    return cast(Callable[[IO[bytes]], Any], original if callable(original) else opener)


def pil_open(fp: IO[bytes]) -> Any:
    """``PIL.Image.open`` as Pillow ships it (for other packages that open untrusted images in this process)."""
    return _genuine_pil_open()(fp)


def _exif_orientation(image: object) -> int:
    """The EXIF orientation tag (1 when absent or unreadable)."""
    try:
        getexif = getattr(image, "getexif", None)
        return int(getexif().get(0x0112, 1)) if getexif is not None else 1
    except Exception:  # a corrupt EXIF block: no orientation, like OpenCV
        return 1


def _upright(image: Any, orientation: int) -> Any:
    """The image as displayed: turned/flipped by its EXIF orientation, as OpenCV and ``ImageOps.exif_transpose``
    do. Not ``exif_transpose`` itself: it also writes the EXIF block back, and a corrupt tag there (one OpenCV
    ignores) fails that write and would lose the image."""
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image if method is None else image.transpose(method)


def _to_rgb(image: object) -> ImageArray:
    """Convert any Pillow mode to an RGB ``uint8`` array (16-bit and float images are scaled, alpha is dropped)."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if top > 255.0:
            values = values * (255.0 / (65535.0 if top <= 65535.0 else top))
        gray = np.clip(values, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
