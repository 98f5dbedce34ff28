"""Comparison: strawfire's model against the issue's anchor, the ``fire-detector`` package's light YOLOv8 flame
model, by the same evaluation (``detector.evaluate``) on the same labelled images.

The anchor is not ours: strawfire neither ships nor downloads it. Fetch it once where a package index is
reachable and unpack it::

    pip download fire-detector==1.0.3 --no-deps -d /tmp/fd && unzip -q /tmp/fd/*.whl -d /tmp/fd/x
    .venv/bin/python bench/compare_anchor.py --anchor /tmp/fd/x [DATA_DIR] [--split val]

``--anchor`` is the folder holding the unpacked ``fire_detector`` package: its ``models/light_yolov8_flame.pt``
pickles the package's own layers (``FasterNetC2f`` …) as attributes of ``__main__``, which importing the package
provides, as it does for its own users. The anchor runs through ultralytics' predictor (its own letterbox and
NMS; 640 px, IoU 0.5, as the package runs it), every box at confidence ≥ 0.001 for AP. Its checkpoint names class
0 ``smoke`` and 1 ``fire``, and the package offers ``swap_labels`` because users found them reversed: both
readings are evaluated and printed. Its operating threshold is the package's default, 0.25.

Ours: ``load_detector("onnx")`` (the manifest's CPU default) at its operating threshold; with ``--second-opinion``
also the flame rule's second opinion. Prints one table: per-class AP50, mAP50, image-level presence recall and the
false-positive image rate on the images without labels, per source set of a built dataset as well.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.backends import load_detector  # noqa: E402
from detector.cpu import usable_cores  # noqa: E402
from detector.detections import CLASS_NAMES, Detections, Detector, ImageArray, ModelInfo  # noqa: E402
from detector.evaluate import EvalReport, evaluate_by_source  # noqa: E402
from detector.train import configure_offline  # noqa: E402

DEFAULT_DATA = REPO / "var" / "datasets" / "strawfire-v2"
ANCHOR_WEIGHTS = Path("fire_detector") / "models" / "light_yolov8_flame.pt"
ANCHOR_THRESHOLD = 0.25  # the package's default conf
ANCHOR_IOU = 0.5  # the package's NMS IoU


class UltralyticsAnchor:
    """A checkpoint run by ultralytics' own predictor, as a :class:`~detector.detections.Detector`: its class ids
    mapped to ours by ``class_map`` (checkpoint id → "fire" / "smoke")."""

    def __init__(self, model: Any, class_map: dict[int, str], label: str) -> None:
        self.model = model  # an ultralytics YOLO
        self.class_map = {k: CLASS_NAMES.index(v) for k, v in class_map.items()}
        self._info = ModelInfo(label, "1.0.3", CLASS_NAMES, 640, ANCHOR_THRESHOLD, "ultralytics")

    @property
    def info(self) -> ModelInfo:
        return self._info

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        out = []
        bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]
        floor = 0.001 if conf is None else conf
        results = self.model.predict(bgr, conf=floor, iou=ANCHOR_IOU, imgsz=640, device="cpu", verbose=False)
        for image, result in zip(images, results, strict=True):
            boxes = result.boxes
            ids = np.array([self.class_map.get(int(c), -1) for c in boxes.cls.tolist()], np.int64)
            keep = ids >= 0
            confidence = boxes.conf.numpy().astype(np.float32)[keep]
            order = np.argsort(-confidence, kind="stable")
            xyxy = boxes.xyxy.numpy().astype(np.float32)[keep][order]
            found = (xyxy, confidence[order], ids[keep][order])
            out.append(Detections((image.shape[1], image.shape[0]), self._info.name, "1.0.3", CLASS_NAMES, *found))
        return out


def row(label: str, report: EvalReport) -> str:
    def num(value: float | None) -> str:
        return "   –  " if value is None else f"{value:6.3f}"

    fire, smoke = report.per_class["fire"], report.per_class["smoke"]
    return (
        f"  {label:<44} {num(fire.ap50)} {num(smoke.ap50)} {num(report.map50)} {num(report.presence.recall)}"
        f" {num(report.fp_image_rate)}  @{report.threshold:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="YOLO folder (images/, labels/)")
    parser.add_argument("--split", default="val", help="subfolder of images/ and labels/ ('' for none)")
    parser.add_argument("--names", default="fire,smoke", help="label ids → fire/smoke/ignore, as `eval --names`")
    parser.add_argument("--anchor", type=Path, required=True, help="folder holding the unpacked fire_detector")
    parser.add_argument("--second-opinion", action="store_true", help="also ours with the flame rule's opinion")
    args = parser.parse_args()

    configure_offline(REPO / "var" / "ultralytics", threads=usable_cores())  # as many as ONNX Runtime gets
    weights = args.anchor / ANCHOR_WEIGHTS
    if not weights.is_file():
        raise SystemExit(f"{weights}: not found (see the module docstring for how to fetch the anchor)")
    sys.path.insert(0, str(args.anchor))
    import fire_detector  # noqa: F401  (puts its layers where the checkpoint's pickle looks for them)
    from ultralytics import YOLO  # type: ignore[attr-defined]

    anchor = YOLO(str(weights))
    detectors: list[tuple[str, Detector]] = [
        ("anchor, classes as named (0 smoke, 1 fire)", UltralyticsAnchor(anchor, {0: "smoke", 1: "fire"}, "anchor")),
        ("anchor, classes swapped (0 fire, 1 smoke)", UltralyticsAnchor(anchor, {0: "fire", 1: "smoke"}, "anchor")),
    ]
    ours = load_detector("onnx")
    detectors.append((f"strawfire {ours.info.name} {ours.info.version}", ours))
    if args.second_opinion:
        detectors.append(("  + second opinion", load_detector("onnx", second_opinion=True)))
    split = args.split or None
    print(f"{args.data} {split or ''}: AP50 at IoU 0.5; presence recall and false-positive image rate at each")
    print("model's own threshold (anchor: the package's 0.25)")
    header = f"  {'model':<44} {'fire':>6} {'smoke':>6} {'mAP50':>6} {'recall':>6} {'FP img':>6}"
    results = []
    for label, detector in detectors:
        overall, sources = evaluate_by_source(detector, args.data, names=args.names, split=split, batch_size=8)
        results.append((label, overall, sources))
    print(header)
    for label, overall, _ in results:
        print(row(label, overall))
    for source in results[0][2]:
        print(f"{source}:")
        for label, _, sources in results:
            print(row(label, sources[source]))


if __name__ == "__main__":
    main()
