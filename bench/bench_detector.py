"""Benchmark: strawfire's ONNX Runtime detector against ultralytics' own predictor, same weights, same images.

* **strawfire ORT**: ``load_detector("onnx")`` — what strawfire runs on a CPU: the manifest's ``cpu_default``
  (the int8 variant when export kept it: same weights, statically quantised, within 0.01 mAP50), numpy/OpenCV
  letterbox into the smallest multiple-of-32 canvas, ONNX Runtime, numpy NMS. Given a batch, the int8 network runs
  its images one per call (``SizedNetwork.max_batch``: faster per image than batches on this CPU); with
  ``--threads`` above 1, those calls run side by side on one-thread sessions, one image per core.
* **strawfire ORT fp32**: the same pipeline on the fp32 ONNX of the weights ultralytics runs.
* **ultralytics predictor**: ``YOLO(<the model's .pt>).predict(images, imgsz, conf, iou)`` — the usual way to run
  these weights (its own letterbox, torch forward, torchvision NMS, ``Results`` objects).
* **strawfire torch** (context): our pipeline with the torch network, to show where the difference comes from.

Same decoded images (RGB for ours, BGR for ultralytics, as each expects; decoding is not timed), same confidence
(0.01) and IoU (0.7), batch 1 and 8, the passes alternating so that machine load affects all alike. Fairness:
ONNX Runtime's intra-op threads and torch's threads are both set to ``--threads`` (default 1; torch's count is
set again after ultralytics' predictor set-up, which changes it). Prints ms/image and images/s (best of
``--repeat`` passes) and the ORT/ultralytics ratio.

``--end-to-end`` adds what a user of ``strawfire detector predict`` sees: from image *files* to detections, decoding
included, ours through ``detector.evaluate.detect_images`` (files decoded ahead of the network on a worker thread,
and decoded in line; the ratio is for the one ``predict`` chooses with these threads) against ultralytics'
predictor given the same file paths (its own loader), batch 1 and 8.

    .venv/bin/python bench/bench_detector.py [--threads 1] [--images 32] [--repeat 3] [--end-to-end]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.backends import load_detector  # noqa: E402
from detector.detections import Detector  # noqa: E402
from detector.evaluate import decode_workers_for, detect_images  # noqa: E402
from detector.images import load_image  # noqa: E402
from detector.manifest import load_manifest, resolve_model, verified_file  # noqa: E402
from detector.paths import DEFAULT_MODELS_DIR  # noqa: E402
from detector.train import configure_offline, offline_guard  # noqa: E402

VAL_IMAGES = REPO / "var" / "datasets" / "strawfire-v2" / "images" / "val"
SHARED_IMAGES = REPO.parent / "shared" / "data" / "fire_smoke" / "train" / "images"
CONF, IOU = 0.01, 0.7


def pick_paths(count: int) -> list[Path]:
    """``count`` real image files spread over the validation split (or the shared fire/smoke set)."""
    folder = VAL_IMAGES if VAL_IMAGES.is_dir() else SHARED_IMAGES
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        raise SystemExit(f"no images in {folder}")
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def pick_images(count: int) -> list[np.ndarray]:
    """The decoded pixels of :func:`pick_paths`."""
    return [load_image(p).pixels for p in pick_paths(count)]


def best_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def race(engines: dict[str, Callable[[], object]], repeat: int, images: int) -> dict[str, float]:
    """Each engine's best seconds for one pass over ``images`` images, passes alternating between engines so
    that load changes hit all of them; prints ms/image and images/s per engine."""
    results = dict.fromkeys(engines, float("inf"))
    for _ in range(repeat):
        for label, run in engines.items():
            results[label] = min(results[label], best_seconds(run, 1))
    for label, seconds in results.items():
        per_image = 1000 * seconds / images
        print(f"  {label:<27} {per_image:7.1f} ms/image  {images / seconds:7.1f} images/s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads = torch threads (default 1)")
    parser.add_argument("--images", type=int, default=32, help="real images per pass (default 32)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per engine and batch size (best is kept)")
    parser.add_argument("--end-to-end", action="store_true", help="also time files → detections, decoding included")
    args = parser.parse_args()

    configure_offline(REPO / "var" / "ultralytics", threads=args.threads)
    import torch

    torch.set_num_threads(args.threads)
    manifest = load_manifest(DEFAULT_MODELS_DIR)
    entry = resolve_model(manifest)
    pt = verified_file(DEFAULT_MODELS_DIR, entry, "torch")
    ort_detector = load_detector("onnx", threads=args.threads)
    fp32_detector = load_detector("onnx", model=entry.name, threads=args.threads)
    torch_detector = load_detector("torch", threads=args.threads, device="cpu")
    with offline_guard():
        from ultralytics import YOLO  # type: ignore[attr-defined]

        yolo = YOLO(str(pt), task="detect")
    images = pick_images(args.images)
    bgr = [np.ascontiguousarray(image[:, :, ::-1]) for image in images]
    size = entry.input_size

    def ours(detector: Detector, batch: int) -> Callable[[], object]:
        def run() -> None:
            for start in range(0, len(images), batch):
                detector.detect(images[start : start + batch], conf=CONF)

        return run

    def ultralytics(batch: int) -> Callable[[], object]:
        def run() -> None:
            for start in range(0, len(bgr), batch):
                yolo.predict(
                    bgr[start : start + batch], imgsz=size, conf=CONF, iou=IOU, device="cpu", verbose=False, batch=batch
                )

        return run

    with offline_guard():
        ultralytics(1)()  # warm-up: builds the predictor (and resets torch's thread count)
        torch.set_num_threads(args.threads)
        ours(ort_detector, 1)()
        ours(torch_detector, 1)()
        print(
            f"{entry.name} {entry.version}, {len(images)} real images, input {size}, conf {CONF}, "
            f"threads {args.threads} (ORT intra-op = torch), torch {torch.__version__}; "
            f"strawfire ORT runs {ort_detector.info.name}"
        )
        for batch in (1, 8):
            engines = {
                "strawfire ORT": ours(ort_detector, batch),
                "ultralytics predictor": ultralytics(batch),
                "strawfire ORT fp32": ours(fp32_detector, batch),
                "strawfire torch": ours(torch_detector, batch),
            }
            print(f"batch {batch}:")
            results = race(engines, args.repeat, len(images))
            ratio = results["ultralytics predictor"] / results["strawfire ORT"]
            ratio_fp32 = results["ultralytics predictor"] / results["strawfire ORT fp32"]
            print(f"  ratio ultralytics / strawfire ORT: {ratio:.2f}x   (/ ORT fp32: {ratio_fp32:.2f}x)")
        if args.end_to_end:
            end_to_end(ort_detector, yolo, pick_paths(args.images), size, args.repeat, args.threads)


def end_to_end(detector: Detector, yolo: Any, paths: list[Path], size: int, repeat: int, threads: int) -> None:
    """Files → detections, decoding included (see the module doc); call inside ``offline_guard``."""

    def ours(batch: int, decode_workers: int) -> Callable[[], object]:
        def run() -> None:
            for _ in detect_images(detector, paths, batch_size=batch, conf=CONF, decode_workers=decode_workers):
                pass

        return run

    def ultralytics(batch: int) -> Callable[[], object]:
        files = [str(p) for p in paths]

        def run() -> None:
            for _ in yolo.predict(
                files, imgsz=size, conf=CONF, iou=IOU, device="cpu", verbose=False, batch=batch, stream=True
            ):
                pass

        return run

    chosen = "decoding ahead" if decode_workers_for(detector.info.backend, threads, gpu=False) else "decoding in line"
    print(f"end to end, {len(paths)} image files (decoding included; `detector predict` here: {chosen}):")
    for batch in (1, 8):
        engines = {
            "strawfire decoding ahead": ours(batch, 1),
            "strawfire decoding in line": ours(batch, 0),
            "ultralytics predictor": ultralytics(batch),
        }
        print(f"batch {batch}:")
        results = race(engines, repeat, len(paths))
        ratio = results["ultralytics predictor"] / results[f"strawfire {chosen}"]
        print(f"  ratio ultralytics / strawfire ({chosen}): {ratio:.2f}x")


if __name__ == "__main__":
    main()
