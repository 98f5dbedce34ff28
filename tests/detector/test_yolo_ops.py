"""Letterbox and NMS, implemented once in numpy, against ultralytics' LetterBox and torchvision's NMS."""

from __future__ import annotations

import numpy as np
import pytest

from detector.yolo import (
    REG_MAX,
    Letterbox,
    anchor_grid,
    box_iou,
    decode_dfl,
    decoded_output,
    input_canvas,
    letterbox,
    letterbox_batch,
    network_canvas,
    nms,
    postprocess,
    to_blocks,
)


@pytest.fixture(scope="module")
def ultralytics_letterbox():
    from detector.train import configure_offline

    configure_offline()
    from ultralytics.data.augment import LetterBox

    return LetterBox


@pytest.mark.parametrize(("height", "width"), [(64, 96), (97, 41), (320, 320), (10, 1000), (400, 300)])
def test_letterbox_matches_ultralytics_pixel_for_pixel(ultralytics_letterbox, height: int, width: int) -> None:
    rng = np.random.default_rng(height * width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours, box = letterbox(image, 320)
    theirs = ultralytics_letterbox(new_shape=(320, 320), auto=False)(image=image)
    assert ours.shape == (320, 320, 3)
    np.testing.assert_array_equal(ours, theirs)
    assert box.image_size == (width, height)


@pytest.mark.parametrize(("height", "width"), [(854, 1280), (1080, 1920), (97, 41), (320, 320), (10, 1000)])
def test_trimmed_letterbox_matches_ultralytics_minimal_padding(ultralytics_letterbox, height: int, width: int) -> None:
    rng = np.random.default_rng(height + width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    canvas = network_canvas([image.shape], 320)
    ours, box = letterbox(image, 320, canvas)
    theirs = ultralytics_letterbox(new_shape=(320, 320), auto=True, stride=32)(image=image)
    assert ours.shape == (canvas[1], canvas[0], 3)
    np.testing.assert_array_equal(ours, theirs)
    network = np.array([[box.pad_left, box.pad_top, canvas[0] - box.pad_left, canvas[1] - box.pad_top]], np.float32)
    np.testing.assert_allclose(box.to_image(network), [[0, 0, width, height]], atol=1.0)


def test_network_canvas_holds_every_image_of_a_batch() -> None:
    assert network_canvas([(854, 1280, 3)], 320) == (320, 224)  # a 3:2 tower frame: 30 % fewer pixels
    assert network_canvas([(1080, 1920, 3)], 320) == (320, 192)
    assert network_canvas([(1080, 1920, 3), (1920, 1080, 3)], 320) == (320, 320)  # mixed orientations
    assert network_canvas([(10, 10, 3)], 320) == (320, 320)
    batch, boxes = letterbox_batch(
        [np.zeros((854, 1280, 3), np.uint8), np.zeros((100, 300, 3), np.uint8)], 320, trim=True
    )
    assert batch.shape == (2, 3, 224, 320)
    assert [(b.pad_left, b.pad_top) for b in boxes] == [(0, 5), (0, 58)]
    with pytest.raises(ValueError, match="smaller than the resized image"):
        letterbox(np.zeros((854, 1280, 3), np.uint8), 320, (320, 192))


def test_letterbox_box_mapping_round_trips() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    _, box = letterbox(image, 320)
    assert (box.gain, box.pad_left, box.pad_top) == (1.6, 0, 80)
    network = np.array([[0, 80, 320, 240], [-10, 0, 400, 400]], np.float32)
    np.testing.assert_allclose(box.to_image(network), [[0, 0, 200, 100], [0, 0, 200, 100]])


def test_letterbox_batch_layout_and_scale() -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    batch, boxes = letterbox_batch([red, red[:16]], 64)
    assert batch.shape == (2, 3, 64, 64)
    assert batch.dtype == np.float32
    assert batch[0, 0].min() == 1.0  # RGB order, scaled to [0, 1]
    assert batch[0, 1].max() == 0.0
    assert batch[1, 1, 0, 0] == pytest.approx(114 / 255)  # padded rows of the half-height image
    assert len(boxes) == 2
    with pytest.raises(ValueError, match="RGB uint8"):
        letterbox_batch([np.zeros((8, 8), np.uint8)], 64)  # type: ignore[list-item]
    # For int8 networks that take pixels: the same layout as uint8, the float batch × 255 exactly.
    pixels, pixel_boxes = letterbox_batch([red, red[:16]], 64, pixels=True)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, np.rint(batch * 255).astype(np.uint8))
    assert pixel_boxes == boxes
    every = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    floats, _ = letterbox_batch([every], 16)
    values, _ = letterbox_batch([every], 16, pixels=True)
    np.testing.assert_array_equal(values[0, 0], every[..., 0])
    np.testing.assert_array_equal(np.rint(floats * 255).astype(np.uint8), values)  # the round trip is exact


def test_letterbox_batch_gives_pixel_blocks_channels_last() -> None:
    """The "blocks" layout holds each 2×2 block of the letterboxed pixels as 12 values (row, column, RGB), the
    same pixels as the NCHW layout; to_blocks converts one to the other; both say the canvas they hold."""
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (854, 1280, 3), dtype=np.uint8), rng.integers(0, 256, (90, 70, 3), np.uint8)]
    nchw, boxes = letterbox_batch(images, 320, trim=True, pixels=True)
    blocks, block_boxes = letterbox_batch(images, 320, trim=True, pixels=True, layout="blocks")
    assert nchw.shape == (2, 3, 320, 320)
    assert blocks.shape == (2, 160, 160, 12)
    assert block_boxes == boxes
    assert input_canvas(nchw, "nchw") == input_canvas(blocks, "blocks") == (320, 320)
    np.testing.assert_array_equal(to_blocks(nchw), blocks)
    # Block (y, x) value (by, bx, c) is pixel (2y + by, 2x + bx) channel c.
    pixels = nchw[0].transpose(1, 2, 0)
    for y, x, by, bx, c in [(0, 0, 0, 0, 0), (3, 7, 1, 0, 2), (159, 159, 1, 1, 1), (80, 2, 0, 1, 0)]:
        assert blocks[0, y, x, by * 6 + bx * 3 + c] == pixels[2 * y + by, 2 * x + bx, c]
    with pytest.raises(ValueError, match="pixels=True"):
        letterbox_batch(images, 320, layout="blocks")
    with pytest.raises(ValueError, match="even"):
        to_blocks(np.zeros((1, 3, 5, 4), np.uint8))
    with pytest.raises(ValueError, match="even canvas"):
        letterbox_batch(images, 321, pixels=True, layout="blocks")
    with pytest.raises(ValueError, match="RGB uint8"):
        letterbox(np.zeros((40, 30), np.uint8), 320)  # grayscale must be converted first (detector.images does)


def test_nms_matches_torchvision_on_random_boxes() -> None:
    import torch
    import torchvision

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (400, 2))
    wh = rng.uniform(5, 80, (400, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, 400).astype(np.float32)
    for iou in (0.3, 0.5, 0.7):
        expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, iou), expected)
    assert len(nms(boxes, scores, 0.5, max_keep=7)) == 7


def test_box_iou_hand_computed() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 0.0]])


def test_postprocess_decodes_picks_best_class_and_suppresses_within_class_only() -> None:
    # Four anchors: two overlapping fire boxes, one smoke box on the same spot, one below threshold.
    raw = np.zeros((1, 6, 4), np.float32)
    raw[0, :4, 0] = [100, 100, 40, 40]  # cx, cy, w, h in network pixels
    raw[0, :4, 1] = [102, 100, 40, 40]
    raw[0, :4, 2] = [100, 100, 40, 40]
    raw[0, :4, 3] = [10, 10, 4, 4]
    raw[0, 4:, 0] = [0.9, 0.1]
    raw[0, 4:, 1] = [0.8, 0.2]
    raw[0, 4:, 2] = [0.3, 0.7]
    raw[0, 4:, 3] = [0.004, 0.005]
    box = Letterbox(gain=0.5, pad_left=0, pad_top=20, image_size=(640, 560))
    [(xyxy, conf, cls)] = postprocess(raw, [box], conf=0.01, iou=0.7)
    assert cls.tolist() == [0, 1]  # the second fire box is suppressed, smoke survives (class-aware)
    np.testing.assert_allclose(conf, [0.9, 0.7])
    np.testing.assert_allclose(xyxy[0], [160, 120, 240, 200])  # (80..120 - pad) / gain


@pytest.mark.parametrize(("height", "width"), [(320, 320), (224, 320), (96, 320), (100, 70)])
def test_anchor_grid_matches_ultralytics_make_anchors(height: int, width: int) -> None:
    import torch

    from detector.train import configure_offline

    configure_offline()
    from ultralytics.utils.tal import make_anchors

    feats = [torch.zeros(1, 1, -(-height // s), -(-width // s)) for s in (8, 16, 32)]
    their_points, their_strides = make_anchors(feats, torch.tensor([8.0, 16.0, 32.0]), 0.5)
    points, strides = anchor_grid(height, width)
    np.testing.assert_array_equal(points, their_points.numpy())
    np.testing.assert_array_equal(strides, their_strides.numpy()[:, 0])
    assert not points.flags.writeable  # cached: shared between calls


def test_dfl_decoding_matches_ultralytics_head() -> None:
    import torch

    from detector.train import configure_offline

    configure_offline()
    from ultralytics.nn.modules.block import DFL
    from ultralytics.utils.tal import dist2bbox, make_anchors

    height, width = 96, 160
    feats = [torch.zeros(1, 1, height // s, width // s) for s in (8, 16, 32)]
    anchors, strides = (a.transpose(0, 1) for a in make_anchors(feats, torch.tensor([8.0, 16.0, 32.0]), 0.5))
    logits = torch.from_numpy(np.random.default_rng(3).normal(0, 3, (2, 4 * REG_MAX, anchors.shape[1])).astype("f4"))
    theirs = (dist2bbox(DFL(REG_MAX)(logits), anchors.unsqueeze(0), xywh=True, dim=1) * strides).numpy()
    raw = np.concatenate([logits.numpy(), np.full((2, 2, anchors.shape[1]), 0.5, np.float32)], axis=1)
    ours = decoded_output(raw, (height, width))
    np.testing.assert_allclose(ours[:, :4], theirs, atol=1e-3)
    np.testing.assert_array_equal(ours[:, 4:], raw[:, 4 * REG_MAX :])
    points, grid_strides = anchor_grid(height, width)
    some = np.array([0, 5, anchors.shape[1] - 1])
    xyxy = decode_dfl(raw[0][: 4 * REG_MAX, some], points[some], grid_strides[some])
    np.testing.assert_allclose((xyxy[:, :2] + xyxy[:, 2:]) / 2, theirs[0, :2, some], atol=1e-3)


def test_postprocess_of_dfl_output_equals_postprocess_of_its_decoding() -> None:
    rng = np.random.default_rng(11)
    canvas = (224, 320)
    anchors = anchor_grid(*canvas)[0].shape[0]
    raw = np.concatenate(
        [rng.normal(0, 2, (2, 4 * REG_MAX, anchors)), rng.uniform(0, 0.05, (2, 2, anchors))], axis=1
    ).astype(np.float32)
    raw[:, 4 * REG_MAX :, ::97] = rng.uniform(0.2, 0.95, (2, 2, raw[:, :, ::97].shape[2]))  # some real candidates
    boxes = [Letterbox(0.25, 0, 12, (1280, 800)), Letterbox(0.5, 16, 0, (576, 448))]
    ours = postprocess(raw, boxes, conf=0.03, head="dfl", canvas=canvas)
    reference = postprocess(decoded_output(raw, canvas), boxes, conf=0.03)
    for (xyxy, conf, cls), (ref_xyxy, ref_conf, ref_cls) in zip(ours, reference, strict=True):
        assert len(conf) > 5
        np.testing.assert_array_equal(cls, ref_cls)
        np.testing.assert_allclose(conf, ref_conf)
        np.testing.assert_allclose(xyxy, ref_xyxy, atol=0.01)


def test_postprocess_of_dfl_output_checks_the_canvas() -> None:
    raw = np.zeros((1, 4 * REG_MAX + 2, anchor_grid(320, 320)[0].shape[0]), np.float32)
    box = Letterbox(1.0, 0, 0, (320, 320))
    with pytest.raises(ValueError, match="needs the input canvas"):
        postprocess(raw, [box], conf=0.01, head="dfl")
    with pytest.raises(ValueError, match="anchors in the output"):
        postprocess(raw, [box], conf=0.01, head="dfl", canvas=(224, 320))
    with pytest.raises(ValueError, match=r"expected \(batch, 64 \+ classes, anchors\)"):
        postprocess(raw[:, :10], [box], conf=0.01, head="dfl", canvas=(320, 320))


def test_letterbox_is_the_same_when_opencv_returns_new_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """letterbox and letterbox_batch ask OpenCV to write into their buffers; an OpenCV build that returns new
    arrays instead (leaving the buffers untouched) gets the same result through the copying fallbacks."""
    import cv2

    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (854, 1280, 3), dtype=np.uint8), rng.integers(0, 256, (90, 70, 3), np.uint8)]
    expected = {
        layout: letterbox_batch(images, 320, trim=True, pixels=True, layout=layout)[0]  # type: ignore[arg-type]
        for layout in ("nchw", "blocks")
    }
    originals = {name: getattr(cv2, name) for name in ("resize", "split", "merge")}

    def ignoring_dst(name: str):  # type: ignore[no-untyped-def]
        def call(*args, dst=None, **kwargs):  # type: ignore[no-untyped-def]
            if name == "split":
                return [plane.copy() for plane in originals[name](args[0])]
            return originals[name](*args, **kwargs).copy()

        return call

    for name in originals:
        monkeypatch.setattr(cv2, name, ignoring_dst(name))
    for layout, want in expected.items():
        got, _ = letterbox_batch(images, 320, trim=True, pixels=True, layout=layout)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got, want)


def test_boxes_map_back_with_each_axis_own_scale() -> None:
    """The resized sides are whole pixels: a 4000x3003 photo becomes 640x480, so x scales by 0.16 but y by
    480/3003. The canvas's last row must map to the photo's last row, not 3000."""
    image = np.zeros((3003, 4000, 3), np.uint8)
    _, box = letterbox(image, 640, network_canvas([image.shape], 640))
    assert box.resized == (640, 480)
    edge = np.array([[box.pad_left, box.pad_top, box.pad_left + 640, box.pad_top + 480]], np.float32)
    np.testing.assert_allclose(box.to_image(edge), [[0, 0, 4000, 3003]], atol=1e-3)


def test_an_image_without_pixels_is_a_clear_error() -> None:
    for shape in [(0, 5, 3), (5, 0, 3), (0, 0, 3)]:
        with pytest.raises(ValueError, match=r"non-empty|no pixels"):
            letterbox(np.zeros(shape, np.uint8), 640)
        with pytest.raises(ValueError, match="no pixels"):
            network_canvas([shape], 640)
