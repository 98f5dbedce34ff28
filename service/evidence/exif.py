"""Reading where and when a photo was taken from its EXIF (Pillow), and validating the image itself."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from numpy.typing import NDArray
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


_JPEG_EOI = b"\xff\xd9"
_NO_END_MARKER = "truncated: the file ends without a JPEG end-of-image marker"
# Bytes without 0xFF, decoded as picture data where the file's own data stops short.
_FILLER = b"\x5a\xa5" * 512


@dataclass(frozen=True, slots=True)
class _ScanLayout:
    """A single-scan sequential JPEG's picture as coded: its MCUs (the blocks the data is coded in, row by row)."""

    width: int
    height: int
    mcu_width: int
    mcu_height: int
    restart_interval: int
    restart_markers: int

    @property
    def mcus_per_row(self) -> int:
        return -(-self.width // self.mcu_width)

    @property
    def mcus(self) -> int:
        return self.mcus_per_row * -(-self.height // self.mcu_height)


def _jpeg_single_scan(data: bytes) -> _ScanLayout:
    """The layout of a sequential JPEG whose one scan holds every component; anything else (progressive, several
    scans, an unreadable header) is an :class:`ImageCheckError`, since there a file that ends between two scans
    decodes to a partial picture that nothing tells from a whole one."""
    refused = ImageCheckError(f"{_NO_END_MARKER} (and it is not a single-scan sequential JPEG, whose picture data "
                              "could be checked for completeness)")  # fmt: skip
    pos, frame, restart, segment, length = 2, b"", 0, b"", 0
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise refused
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : pos + 2 + length]
        if marker in (0xC0, 0xC1):  # baseline / extended sequential, Huffman
            frame = segment
        elif marker in range(0xC2, 0xD0) and marker not in (0xC4, 0xC8, 0xCC):
            raise refused  # progressive, lossless or arithmetic-coded
        elif marker == 0xDD and len(segment) >= 2:
            restart = int.from_bytes(segment[:2], "big")
        elif marker == 0xDA:
            break
        pos += 2 + length
    if len(frame) < 6 or len(frame) < 6 + 3 * frame[5] or not segment or segment[0] != frame[5]:
        raise refused  # no frame header, or a scan without every component (more scans follow)
    scan_data = data[pos + 2 + length :]
    markers = [scan_data[i + 1] for i in range(len(scan_data) - 1) if scan_data[i] == 0xFF]
    if any(m not in (0x00, 0xFF, *range(0xD0, 0xD8)) for m in markers):
        raise refused  # a marker after the scan: another scan or table, the end of which is not known
    factors = [(frame[7 + 3 * i] >> 4, frame[7 + 3 * i] & 0x0F) for i in range(frame[5])]
    h_max, v_max = (1, 1) if frame[5] == 1 else (max(h for h, _ in factors), max(v for _, v in factors))
    return _ScanLayout(
        width=int.from_bytes(frame[3:5], "big"),
        height=int.from_bytes(frame[1:3], "big"),
        mcu_width=8 * h_max,
        mcu_height=8 * v_max,
        restart_interval=restart,
        restart_markers=sum(1 for m in markers if 0xD0 <= m <= 0xD7),
    )


def _first_missing_mcu(layout: _ScanLayout, whole: NDArray[np.int16], filled: NDArray[np.int16]) -> int:
    """The first MCU (in coding order) whose pixels change when other bytes follow the file's data: the first
    without data of its own. An MCU counts when a quarter of its pixels change (chroma upsampling bleeds a pixel
    into the one before)."""
    changed = np.abs(whole - filled).reshape(whole.shape[0], whole.shape[1], -1).max(axis=2) > 0
    rows, columns = -(-layout.height // layout.mcu_height), layout.mcus_per_row
    padded = np.zeros((rows * layout.mcu_height, columns * layout.mcu_width), dtype=bool)
    padded[: changed.shape[0], : changed.shape[1]] = changed
    blocks = padded.reshape(rows, layout.mcu_height, columns, layout.mcu_width).mean(axis=(1, 3))
    hit = np.flatnonzero(blocks.ravel() >= 0.25)
    return int(hit[0]) if len(hit) else layout.mcus


def _only_the_end_marker_missing(data: bytes) -> None:
    """Return when a JPEG that Pillow found truncated lacks only its end-of-image marker, with every pixel's data
    there; else an :class:`ImageCheckError` saying it is truncated and how much of the picture has no data.

    Decision: a file missing only the end marker is accepted and stored as sent: the picture is whole (OpenCV, the
    ray projection and browsers read it). Pillow's ``LOAD_TRUNCATED_IMAGES`` is not used: it is a process-wide
    switch that would also let a file cut in the middle of its picture through, grey at the bottom. A file whose
    picture data stops short is refused, whatever is missing: it is evidence, and its uploader can send the whole
    file. "Every pixel's data is there" is measured: the file has one sequential scan (not progressive), as many
    restart markers as its restart interval needs for its MCUs, and it decodes the same with the end marker put
    right after its data as with other bytes in between (data cut short takes those bytes as its next MCUs).

    The Zenmuse XT sample ``DJI_XTS.jpg`` measured this way is cut short, not only unterminated: all 15 restart
    markers are there, but the data of the last interval stops inside its 15th of 20 MCUs, and the last 5 (80×16
    pixels at the bottom-right corner) decode flat grey: 6 of 1280 MCUs, 0.5 % of the picture, have no data of
    their own. So it is refused, with that said.
    """
    layout = _jpeg_single_scan(data)
    decoded = []
    for ending in (_JPEG_EOI, _FILLER + _JPEG_EOI):
        try:
            with pil_open(io.BytesIO(data + ending)) as image:
                decoded.append(np.asarray(image, dtype=np.int16))
        except (OSError, ValueError):
            raise ImageCheckError(f"{_NO_END_MARKER}, and it does not decode with one") from None
    first_missing = _first_missing_mcu(layout, decoded[0], decoded[1])
    if layout.restart_interval and layout.restart_markers < -(-layout.mcus // layout.restart_interval) - 1:
        # Cut at the end of an interval: the decoder skips the bytes after it looking for the next restart marker.
        first_missing = min(first_missing, layout.restart_interval * (layout.restart_markers + 1))
    if first_missing >= layout.mcus:
        return
    missing = layout.mcus - first_missing
    raise ImageCheckError(
        f"{_NO_END_MARKER}, before the end of its picture data: its last {missing} of {layout.mcus} blocks "
        f"({layout.mcu_width}×{layout.mcu_height} pixels, {100 * missing / layout.mcus:.1f} % of the picture) "
        "have no data; send the whole file"
    )


def inspect_photo(data: bytes) -> PhotoFacts:
    """Check that ``data`` is a whole, decodable image of an allowed type; read its EXIF time and GPS."""
    if not data:
        # Said as such (Pillow's "UnidentifiedImageError" told a team nothing): a phone app that lost the file's
        # content, or sent a placeholder, must send the photo itself again.
        raise ImageCheckError("not a readable image: an empty file (0 bytes)")
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
            try:
                image.load()  # decodes everything: a truncated file fails here, not later in someone's browser
            except OSError:
                if kind not in ("JPEG", "MPO") or data.endswith(_JPEG_EOI):
                    raise
                _only_the_end_marker_missing(data)  # refuses the file, saying how, unless all its pixels are there
    except ImageCheckError:
        raise  # already says what is wrong (a ValueError, which the next clause would make "not a readable image")
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
