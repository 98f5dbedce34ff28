"""Bad inputs give one clear error per image, never a crash or a huge allocation; odd modes become RGB."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.images import ImageLoadError, image_size, load_image

REPO_ROOT = Path(__file__).resolve().parents[2]


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def noisy(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_with_header_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR claims another size (CRC fixed): only the header is big."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21])) & 0xFFFFFFFF
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


def jpeg_with_header_size(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 marker claims another size."""
    data = bytearray(encode(noisy(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(path)


def test_non_image_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="cannot read"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="cannot read"):
        load_image(tmp_path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = encode(noisy(), "JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(path)


def test_huge_png_header_is_refused_before_decoding() -> None:
    with pytest.raises(ImageLoadError, match=r"20000×20000|limit"):
        load_image(png_with_header_size(20000, 20000))
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(png_with_header_size(9000, 9000))  # below Pillow's own limit, above ours


def test_huge_images_never_allocate_gigabytes() -> None:
    """In a child process capped at 1.5 GB of address space: a 20000×20000 decode would need 1.2 GB of pixels
    on top of the interpreter, so anything but the header check would fail with MemoryError here."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from tests.detector.test_images import png_with_header_size, jpeg_with_header_size
from detector.images import ImageLoadError, load_image
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
for data in (png_with_header_size(20000, 20000), jpeg_with_header_size(20000, 20000)):
    try:
        image = load_image(data)
        assert image.original_size == (20000, 20000), image.original_size
        assert image.pixels.size <= 3 * 48_000_000
        print("downscaled", image.pixels.shape)
    except ImageLoadError as exc:
        print("refused", exc.reason)
# VmHWM is this process image's own peak (ru_maxrss would include the forking pytest process).
peak_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print("peak MB", peak_kb // 1024)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("refused")
    assert int(lines[-1].split()[-1]) < 600


def test_large_jpeg_is_decoded_at_reduced_scale_with_original_size() -> None:
    data = encode(noisy(800, 600), "JPEG")
    image = load_image(data, max_pixels=40_000)  # 480 000 px: needs 1/4 scale to fit
    assert image.original_size == (800, 600)
    assert image.pixels.shape == (150, 200, 3)
    assert image.scale == (4.0, 4.0)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG"), ("L", "JPEG")],
)
def test_other_modes_become_rgb_uint8(mode: str, fmt: str) -> None:
    source = noisy(40, 30)
    if mode == "I;16":
        source = Image.fromarray((np.asarray(source.convert("L"), np.uint16) * 257).astype(np.uint16))
    else:
        source = source.convert(mode)
    image = load_image(encode(source, fmt))
    assert image.pixels.shape == (30, 40, 3)
    assert image.pixels.dtype == np.uint8
    assert image.original_size == (40, 30)
    if mode == "I;16":  # 16-bit values are scaled to 8 bit, not clipped to white
        assert 0 < image.pixels.mean() < 255


def test_exif_orientation_is_applied_like_opencv() -> None:
    source = noisy(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    image = load_image(encode(source, "JPEG", exif=exif.tobytes()))
    assert image.pixels.shape == (40, 30, 3)
    assert image.original_size == (30, 40)
    # The header alone gives the same size (labels of a rotated photo are normalised by it).
    assert image_size(encode(source, "JPEG", exif=exif.tobytes())) == (30, 40)
    assert image_size(encode(source, "PNG")) == (40, 30)
    with pytest.raises(ImageLoadError, match="not an image"):
        image_size(b"plain text", name="notes.txt")


def test_boxes_on_a_downscaled_decode_are_mapped_to_original_pixels() -> None:
    from detector.detections import Detections
    from detector.evaluate import rescale
    from detector.images import LoadedImage

    image = LoadedImage(np.zeros((150, 200, 3), np.uint8), (800, 600))
    found = Detections(
        (200, 150),
        "m",
        "1",
        xyxy=np.array([[10, 10, 20, 30]], np.float32),
        confidence=np.array([0.5], np.float32),
        class_id=np.array([0], np.int64),
    )
    mapped = rescale(found, image)
    assert mapped.image_size == (800, 600)
    np.testing.assert_allclose(mapped.xyxy, [[40, 40, 80, 120]])


def _decode_folder(tmp_path: Path) -> list[Path]:
    """Six files in name order: good images with a zero-byte file and a non-image among them."""
    paths = []
    for index in range(6):
        path = tmp_path / f"{index}.png"
        if index == 2:
            path.write_bytes(b"")
        elif index == 4:
            path.write_bytes(b"not an image at all")
        else:
            path.write_bytes(encode(noisy(16 + index, 12), "PNG"))
        paths.append(path)
    return paths


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_decoded_keeps_order_and_reports_bad_files_in_place(tmp_path: Path, workers: int) -> None:
    from detector.evaluate import decoded

    paths = _decode_folder(tmp_path)
    results = list(decoded(paths, workers=workers, ahead=2))
    assert [path for path, _ in results] == paths
    assert [type(loaded).__name__ for _, loaded in results] == [
        "LoadedImage",
        "LoadedImage",
        "ImageLoadError",
        "LoadedImage",
        "ImageLoadError",
        "LoadedImage",
    ]
    widths = [loaded.pixels.shape[1] for _, loaded in results if not isinstance(loaded, ImageLoadError)]
    assert widths == [16, 17, 19, 21]  # each image is its own file's, not a neighbour's


def test_decoded_reads_at_most_ahead_files_beyond_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge folder must not be decoded into memory ahead of the network: the look-ahead is bounded."""
    import threading
    import time

    import detector.evaluate as evaluate

    lock, started = threading.Lock(), [0]
    image = evaluate.LoadedImage(np.zeros((4, 4, 3), np.uint8), (4, 4))

    def counting_load(path: Path) -> evaluate.LoadedImage:
        with lock:
            started[0] += 1
        return image

    monkeypatch.setattr(evaluate, "load_image", counting_load)
    stream = evaluate.decoded([tmp_path / f"{i}.jpg" for i in range(100)], workers=2, ahead=4)

    def settled(count: int) -> int:
        """The number of loads started once the pool has run at least ``count`` and then had time for more."""
        deadline = time.monotonic() + 30
        while started[0] < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        return started[0]

    next(stream)
    assert settled(5) == 5  # the one handed out plus four ahead, not the other 95
    next(stream)
    assert settled(6) == 6
    stream.close()  # stopping early neither hangs nor decodes the rest
    assert started[0] <= 10


def test_decoded_raises_an_unexpected_error_from_the_file_that_raised_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import detector.evaluate as evaluate

    def failing_load(path: Path) -> evaluate.LoadedImage:
        if path.name == "1.jpg":
            raise MemoryError("out of memory decoding 1.jpg")
        return evaluate.LoadedImage(np.zeros((4, 4, 3), np.uint8), (4, 4))

    monkeypatch.setattr(evaluate, "load_image", failing_load)
    stream = evaluate.decoded([tmp_path / f"{i}.jpg" for i in range(5)], workers=2, ahead=3)
    assert next(stream)[0].name == "0.jpg"
    with pytest.raises(MemoryError, match=r"1\.jpg"):
        next(stream)
