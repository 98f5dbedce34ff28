"""Re-check of issue #4's CLI contract and bad-input list: defects found by running the commands as the acceptance
tester will (large non-image files in a drone folder, non-finite label values, label files with an upper-case
suffix, subfolders predict skips without a word, a network attempt anywhere in a CLI process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from detector.cli import app
from detector.dataset import DatasetError, parse_label_text
from detector.evaluate import read_yolo_folder
from tests.detector.conftest import REPO_ROOT, committed_model, flame_image, said
from tests.detector.test_images import encode, png_with_header_size

runner = CliRunner()

#: Sparse files this large cost no disk, but reading one whole needs this much memory.
SPARSE_SIZE = 2 << 30


def jpeg_bytes(image: np.ndarray) -> bytes:
    return encode(Image.fromarray(image), "JPEG", quality=95)


def sparse(path: Path, head: bytes = b"", size: int = SPARSE_SIZE) -> Path:
    """``head`` followed by zeros up to ``size`` bytes, without writing them."""
    path.write_bytes(head)
    os.truncate(path, size)
    return path


def test_a_large_file_in_an_image_folder_is_never_read_whole(tmp_path: Path) -> None:
    """A DJI card folder holds multi-GB .MP4 clips next to its JPEGs, and ``predict`` tries every file: deciding
    that a 2 GB file is no image (or a 20000×20000 one) must read its header, not the 2 GB. A child process capped
    at 1.5 GB of address space: reading any of these files whole fails with MemoryError."""
    clip = sparse(tmp_path / "DJI_0002.MP4")
    huge = sparse(tmp_path / "huge.png", png_with_header_size(20000, 20000))
    trailing = sparse(tmp_path / "DJI_0003.JPG", jpeg_bytes(flame_image()))  # a JPEG, then 2 GB of other data
    code = f"""
import resource, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from pathlib import Path
from detector.images import ImageLoadError, image_size, load_image
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
for name in ({clip.name!r}, {huge.name!r}, {trailing.name!r}):
    path = Path({str(tmp_path)!r}) / name
    try:
        print(name, "decoded", load_image(path).pixels.shape, image_size(path))
    except ImageLoadError as exc:
        print(name, "refused", exc.reason)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "DJI_0002.MP4 refused not an image file (unknown format)"
    assert lines[1].startswith("huge.png refused")
    assert "limit" in lines[1]
    assert lines[2] == "DJI_0003.JPG decoded (64, 96, 3) (96, 64)"


def test_the_file_is_closed_and_errors_stay_per_image(tmp_path: Path) -> None:
    """Reading from the file instead of from its bytes keeps every per-image error of the bad-input list."""
    from detector.images import ImageLoadError, load_image

    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes(flame_image()))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:300])
    (tmp_path / "folder.jpg").mkdir()
    handles = Path("/proc/self/fd")
    before = len(list(handles.iterdir()))
    for name, reason in [
        ("empty.jpg", "empty file"),
        ("cut.jpg", "(?i)truncated"),
        ("folder.jpg", "cannot read"),
        ("missing.jpg", "cannot read"),
    ]:
        with pytest.raises(ImageLoadError, match=reason):
            load_image(tmp_path / name)
    assert load_image(good).pixels.shape == (64, 96, 3)
    assert len(list(handles.iterdir())) == before  # no file handle left open


@pytest.mark.parametrize(
    "line",
    [
        "0 nan 0.5 0.1 0.1",
        "0 0.5 nan 0.1 0.1",
        "0 0.5 0.5 nan 0.1",
        "0 0.5 0.5 inf 0.2",
        "0 -inf 0.5 inf 0.1",
        "0 nan nan nan nan",
        "0 0.1 0.1 nan 0.2 0.3 0.3",  # a polygon with a NaN vertex
        "0 0.1 0.1 0.2 inf 0.3 0.3",
    ],
)
def test_a_label_line_with_non_finite_values_is_left_out_not_widened(tmp_path: Path, line: str) -> None:
    """``nan``/``inf`` in a label line are malformed: eval must leave the line out and name it, not clip it into a
    box across the whole image width (which then counts as a missed fire); the dataset builder refuses it."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(flame_image()).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels" / "a.txt").write_text(f"{line}\n1 0.5 0.5 0.2 0.2\n")
    [sample], unlabelled = read_yolo_folder(tmp_path, "fire,smoke")
    assert not unlabelled
    assert sample.truth is not None
    assert sample.truth.class_id.tolist() == [1]  # only the good smoke box
    assert len(sample.left_out) == 1
    assert "a.txt:1" in sample.left_out[0]
    with pytest.raises(DatasetError, match=r"a\.txt:1"):
        parse_label_text(line, where="a.txt")


def test_a_label_file_with_an_upper_case_suffix_is_read(tmp_path: Path) -> None:
    """Sets labelled on Windows may carry ``IMG_1.TXT``: the fire boxes in it must not turn the image into a
    negative (a false-positive image and a missed fire at once). The exact ``.txt`` wins when both exist."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for stem in ("IMG_1", "IMG_2"):
        Image.fromarray(flame_image()).save(tmp_path / "images" / f"{stem}.JPG")
    (tmp_path / "labels" / "IMG_1.TXT").write_text("0 0.4167 0.4688 0.2083 0.3125\n")
    (tmp_path / "labels" / "IMG_2.Txt").write_text("0 0.4167 0.4688 0.2083 0.3125\n")
    (tmp_path / "labels" / "IMG_2.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    samples, unlabelled = read_yolo_folder(tmp_path, "fire,smoke")
    assert unlabelled == []
    by_name = {s.path.name: [] if s.truth is None else s.truth.class_id.tolist() for s in samples}
    assert by_name == {"IMG_1.JPG": [0], "IMG_2.JPG": [1]}


def test_predict_says_which_subfolders_it_did_not_search(tmp_path: Path) -> None:
    """A folder named like an image (``dir.jpg``), or a subfolder of more photos, is not searched: say so on
    stderr rather than leave it out without a word; the JSON and the exit status stay as they were."""
    folder = tmp_path / "images"
    (folder / "dir.jpg").mkdir(parents=True)
    (folder / "100MEDIA").mkdir()
    Image.fromarray(flame_image()).save(folder / "100MEDIA" / "b.jpg")
    Image.fromarray(flame_image()).save(folder / "a.jpg")
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["predict", str(folder), "--json", str(out), "--backend", "rules"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())) == ["a.jpg"]
    assert said("not searched: 100MEDIA, dir.jpg") in said(result.stderr)


_NO_NETWORK = """
import runpy, sys
attempts = []
def hook(event, args):
    if event in {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                 "socket.sendto", "socket.sendmsg", "urllib.Request"}:
        attempts.append((event, repr(args)[:200]))
        raise OSError("network disabled for this process")
sys.addaudithook(hook)
sys.argv = ["strawfire", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("service.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
if attempts:
    print("network attempts:", attempts, file=sys.stderr)
    sys.exit(99)
sys.exit(code)
"""


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_the_cli_loads_and_runs_the_model_with_networking_disabled_for_the_process(
    tmp_path: Path, backend: str
) -> None:
    """The whole CLI process (imports of ultralytics and torch included, not only ``load_detector``) under an
    audit hook that refuses and records every connection or name lookup: none may be attempted, even one that a
    library would catch and ignore."""
    models = committed_model()
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(flame_image()).save(folder / "a.jpg")
    (folder / "notes.jpg").write_text("not an image")  # ultralytics' Image.open wrapper would try pip here
    for args in (
        ["detector", "info", "--json"],
        ["detector", "predict", str(folder), "--json", "-", "--threads", "1"],
    ):
        command = [sys.executable, "-c", _NO_NETWORK, *args, "--backend", backend, "--models-dir", str(models)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        json.loads(result.stdout)  # stdout is the JSON alone


def dds_with_unknown_pixel_format() -> bytes:
    """A DDS texture whose pixel-format flags are unknown: Pillow raises NotImplementedError, not OSError (found
    by mutating small images of every format Pillow reads)."""
    data = bytearray(encode(Image.fromarray(np.zeros((8, 8, 3), np.uint8)), "DDS"))
    data[80:84] = (0x40000000).to_bytes(4, "little")  # DDS_PIXELFORMAT.dwFlags
    return bytes(data)


def test_an_image_that_makes_pillow_raise_something_unusual_is_one_per_image_error(tmp_path: Path) -> None:
    """``predict`` tries every file of the folder: whatever a decoder raises for one corrupt file (here
    NotImplementedError) is that file's error, and the batch goes on."""
    from detector.images import ImageLoadError, image_size, load_image

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a_odd.jpg").write_bytes(dds_with_unknown_pixel_format())
    Image.fromarray(flame_image()).save(folder / "b_flame.jpg")
    for read in (load_image, image_size):
        with pytest.raises(ImageLoadError, match=r"a_odd\.jpg: unreadable image header \(NotImplementedError"):
            read(folder / "a_odd.jpg")
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["predict", str(folder), "--json", str(out), "--backend", "rules"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())) == ["b_flame.jpg"]
    assert said("skipped a_odd.jpg") in said(result.stderr)


def jpeg_with_a_corrupt_exif_tag(orientation: int = 6) -> bytes:
    """A 64×48 JPEG stored on its side (EXIF orientation 6) whose Make tag's id was flipped to ImageWidth while its
    value stays text: Pillow reads the orientation, but ``ImageOps.exif_transpose`` fails writing the EXIF back
    (struct.error) — one of 11 in 3000 random EXIF byte flips did."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "DJI"
    data = bytearray(encode(Image.fromarray(flame_image(64, 48)), "JPEG", exif=exif.tobytes()))
    tiff = data.index(b"Exif\x00\x00") + 6
    assert data[tiff + 10 : tiff + 12] == b"\x01\x0f"  # big-endian TIFF: the first IFD entry's tag, Make
    data[tiff + 11] = 0x00  # 0x0100 ImageWidth, type ASCII
    return bytes(data)


def test_a_corrupt_exif_block_does_not_lose_the_image(tmp_path: Path) -> None:
    """OpenCV (and so the training pipeline) decodes such a frame; so must we, upright by its orientation, boxes in
    the displayed frame's pixels. Before, the struct.error escaped and ended the whole predict batch."""
    from detector.images import image_size, load_image

    path = tmp_path / "DJI_0004.JPG"
    path.write_bytes(jpeg_with_a_corrupt_exif_tag())
    loaded = load_image(path)
    assert loaded.pixels.shape == (64, 48, 3)  # turned upright: 48 wide, 64 high
    assert loaded.original_size == (48, 64) == image_size(path)
    upright = np.rot90(flame_image(64, 48), k=-1)  # orientation 6: rotate 90° clockwise to display
    assert np.abs(loaded.pixels.astype(int) - upright.astype(int)).mean() < 8  # JPEG noise only


def test_an_unreadable_file_is_one_per_image_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the process may not read (chmod 000; as root, where chmod does not stop reads, its open raises as
    it would for anyone else) is skipped and named; the other images are still detected."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a_locked.jpg", "b_flame.jpg"):
        Image.fromarray(flame_image()).save(folder / name)
    (folder / "a_locked.jpg").chmod(0)
    real_open = Path.open

    def guarded(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "a_locked.jpg":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", guarded)
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["predict", str(folder), "--json", str(out), "--backend", "rules"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())) == ["b_flame.jpg"]
    assert said("skipped a_locked.jpg: cannot read the file (Permission denied)") in said(result.stderr)


@pytest.mark.parametrize("line", ["0 459 205 80 121", "0 0.478 0.379 0.083 0.224 0.9 x"])
def test_an_image_none_of_whose_label_lines_can_be_read_is_no_negative(tmp_path: Path, line: str) -> None:
    """Boxes written in pixels by mistake (or with stray columns): the image is not known to be free of fire, so it
    is left out and named. Counted as a negative, a fire found on it was a false alarm (fp_image_rate 1.0 here)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for stem in ("a", "b"):
        Image.fromarray(flame_image()).save(tmp_path / "images" / f"{stem}.png")
    (tmp_path / "labels" / "a.txt").write_text("0 0.4167 0.4688 0.2083 0.3125\n")
    (tmp_path / "labels" / "b.txt").write_text(f"{line}\n")
    result = runner.invoke(app, ["eval", str(tmp_path), "--names", "fire,smoke", "--backend", "rules", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["images"], report["evaluated"], report["negatives"]) == (2, 1, 0)
    assert report["fp_image_rate"] is None
    [error] = report["errors"]
    assert "b.txt: no fire or smoke box read, image not evaluated" in error
    assert "b.txt:1" in error


def test_eval_on_an_export_with_a_folder_per_split(tmp_path: Path) -> None:
    """Roboflow exports put each split in its own folder (DATA_DIR/test/images): one is evaluated, several are
    named; the images folder given itself points at its parent."""
    for split in ("test", "valid"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir()
        Image.fromarray(flame_image()).save(tmp_path / split / "images" / "a.png")
        (tmp_path / split / "labels" / "a.txt").write_text("0 0.4167 0.4688 0.2083 0.3125\n")
    args = ["--names", "fire,smoke", "--backend", "rules", "--json"]
    both = runner.invoke(app, ["eval", str(tmp_path), *args])
    assert both.exit_code == 2
    assert said("holds split folders (test, valid), each with images/ and labels/") in said(both.stderr)
    itself = runner.invoke(app, ["eval", str(tmp_path / "test" / "images"), *args])
    assert itself.exit_code == 2
    assert said(f"give its parent, {tmp_path / 'test'}, as DATA_DIR") in said(itself.stderr)
    for child in (tmp_path / "valid").rglob("*"):
        if child.is_file():
            child.unlink()
    for folder in ("images", "labels", ""):
        (tmp_path / "valid" / folder).rmdir()
    one = runner.invoke(app, ["eval", str(tmp_path), *args])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["per_class"]["fire"]["gt_boxes"] == 1


def test_eval_warns_about_an_empty_images_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    result = runner.invoke(app, ["eval", str(tmp_path), "--backend", "rules", "--json"])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'images'}: no images to evaluate" in caplog.messages
