"""Reading where and when a photo was taken from its EXIF (Pillow), and validating the image itself."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from detector.images import pil_open

register_heif_opener()  # HEIC/HEIF photos (iPhones' default) decode like any other

# Phones in China write local time without an offset; China has used UTC+8 all year since 1991.
CHINA_TIME = timezone(timedelta(hours=8))
# MPO is the multi-picture JPEG that DJI and many phones write (a JPEG with extra frames).
ALLOWED_FORMATS = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}
MAX_PIXELS = 60_000_000  # a 60 MP phone photo; larger is refused before decoding


class ImageCheckError(ValueError):
    """The upload is not an acceptable image."""


@dataclass(frozen=True, slots=True)
class PhotoFacts:
    """What the file says about itself."""

    content_type: str
    width: int
    height: int
    taken_at: datetime | None
    latitude: float | None
    longitude: float | None


def _ratio(value: object) -> float:
    return float(value)  # type: ignore[arg-type]  # PIL's IFDRational and tuples both convert


def _dms(values: object, ref: object) -> float | None:
    try:
        d, m, s = (_ratio(v) for v in values)  # type: ignore[attr-defined]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    sign = -1.0 if str(ref).upper() in ("S", "W") else 1.0
    return sign * (d + m / 60 + s / 3600)


def _zone(raw: object) -> timezone | None:
    """The zone an EXIF offset tag names (``OffsetTimeOriginal``/``OffsetTime``: ``+08:00``, ``-04:00``), None
    when absent or unreadable: then the photo's time is taken as China time."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":" or not (text[1:3] + text[4:]).isdigit():
        return None
    minutes = int(text[1:3]) * 60 + int(text[4:])
    return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes)) if minutes <= 14 * 60 else None


def inspect_photo(data: bytes) -> PhotoFacts:
    """Check that ``data`` is a whole, decodable image of an allowed type; read its EXIF time and GPS."""
    try:
        # Pillow's own opener: ultralytics, when loaded, replaces Image.open with one that tries to pip-install.
        with pil_open(io.BytesIO(data)) as image:
            kind = image.format or ""
            if kind not in ALLOWED_FORMATS:
                raise ImageCheckError(f"{kind or 'unknown'} images are not accepted (JPEG, PNG, WebP, HEIF, AVIF)")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageCheckError(f"the image is {width}×{height}: more than {MAX_PIXELS:,} pixels")
            exif = image.getexif()
            image.load()  # decodes everything: a truncated file fails here, not later in someone's browser
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        # SyntaxError: Pillow's answer to a PNG cut short before an unknown chunk
        raise ImageCheckError(f"not a readable image ({type(exc).__name__})") from None
    taken_at = None
    exif_ifd = exif.get_ifd(0x8769)
    raw_time = exif_ifd.get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, else DateTime
    if isinstance(raw_time, str):
        try:
            zone = _zone(exif_ifd.get(0x9011) if exif_ifd.get(0x9003) else exif_ifd.get(0x9010))
            taken_at = datetime.strptime(raw_time.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=zone or CHINA_TIME)
            taken_at = taken_at.astimezone(UTC)
        except ValueError:
            taken_at = None
    gps = exif.get_ifd(0x8825)
    latitude = _dms(gps[2], gps.get(1, "N")) if 2 in gps else None
    longitude = _dms(gps[4], gps.get(3, "E")) if 4 in gps else None
    if (latitude is not None and not -90 <= latitude <= 90) or (longitude is not None and not -180 <= longitude <= 180):
        latitude = longitude = None
    return PhotoFacts(ALLOWED_FORMATS[kind], width, height, taken_at, latitude, longitude)
