"""Detector backends: ONNX Runtime (default, CPU), ultralytics/torch (GPU, or on request), and the colour rules.

Why they share :class:`YoloDetector`: a backend here is only "a function from the letterboxed batch to the raw
network output". Letterboxing, decoding, NMS and the mapping back to image pixels are the single implementation
in :mod:`detector.yolo`, so ONNX Runtime and torch differ only by floating-point arithmetic inside the network
(``tests/detector/test_backends.py`` checks they agree on real images).

Weights are always loaded through ``models/manifest.json`` (:func:`load_detector`), which verifies their sha256;
nothing here can reach the network (ultralytics is put offline before it is imported, see
:func:`detector.train.configure_offline`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from detector.cpu import int8_kernels_exact, usable_cores
from detector.detections import Detections, Detector, FloatArray, ImageArray, ModelInfo
from detector.featureless import DEFAULT_MIN_STRUCTURE, featureless_boxes
from detector.manifest import (
    DEFAULT_MODELS_DIR,
    ModelEntry,
    ModelError,
    load_manifest,
    resolve_model,
    verified_file,
)
from detector.yolo import (
    BLOCK_VALUES,
    DEFAULT_IOU,
    DEFAULT_MAX_DET,
    REG_MAX,
    HeadLayout,
    InputLayout,
    input_canvas,
    letterbox_batch,
    network_canvas,
    postprocess,
    to_blocks,
)

__all__ = [
    "DEFAULT_CANDIDATE_CONF",
    "Backend",
    "SizedNetwork",
    "YoloDetector",
    "cuda_available",
    "head_layout",
    "load_detector",
    "model_info",
    "onnx_network",
    "output_anchors_first",
    "torch_network",
]

log = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn_once(message: str, *args: object) -> None:
    """Log ``message`` once per process (a patrol loads a detector per worker; one line says it)."""
    text = message % args
    if text not in _warned:
        _warned.add(text)
        log.warning("%s", text)


Backend = Literal["auto", "onnx", "torch", "rules"]
#: Lowest confidence a backend returns unless asked otherwise: low, so that callers (sequence verification,
#: ``predict --json``) can apply their own threshold; the operating threshold is in :class:`ModelInfo`.
DEFAULT_CANDIDATE_CONF: Final[float] = 0.01
#: Images per network call: bounds memory for long lists while keeping the batched speed-up.
DEFAULT_MAX_BATCH: Final[int] = 8
#: ultralytics' settings folder for inference, inside the checkout's ``var/`` (never ``~/.config``).
_ULTRALYTICS_CONFIG_DIR: Final[Path] = DEFAULT_MODELS_DIR.parent / "var" / "ultralytics"

Network = Callable[[FloatArray], FloatArray]


class SizedNetwork:
    """A :data:`Network` that also says whether it takes any input height/width (multiples of 32) or only the
    square it was exported for (:class:`YoloDetector` trims the letterbox padding for the former), whether
    it takes uint8 pixels (0–255) rather than floats in [0, 1] (:class:`YoloDetector` then skips the conversion),
    in which :data:`~detector.yolo.InputLayout`, and how many images per call it runs fastest (None:
    :data:`DEFAULT_MAX_BATCH`).

    ``single_thread`` and ``workers``: the same network on one thread per call, safe to call from ``workers``
    threads at once; :class:`YoloDetector` then runs the calls of a batch side by side, one image per core, instead
    of one after another each spread over the cores.

    ``output_channels``, ``class_names`` and ``fixed_side``, when the weights say so: the raw output's channel
    count, the class names stored with the weights (in order) and the side of a fixed square input, which
    :func:`load_detector` checks against the manifest entry before anything runs.
    """

    def __init__(
        self,
        run: Network,
        *,
        any_size: bool,
        pixels: bool = False,
        layout: InputLayout = "nchw",
        max_batch: int | None = None,
        single_thread: Network | None = None,
        workers: int = 1,
        output_channels: int | None = None,
        class_names: tuple[str, ...] | None = None,
        fixed_side: int | None = None,
    ) -> None:
        self._run = run
        self.output_channels = output_channels
        self.class_names = class_names
        self.fixed_side = fixed_side
        self.any_size = any_size
        self.pixels = pixels
        self.layout: InputLayout = layout
        self.max_batch = max_batch
        self.single_thread = single_thread
        self.workers = workers if single_thread is not None else 1

    def __call__(self, batch: FloatArray) -> FloatArray:
        return self._run(batch)


class YoloDetector:
    """A YOLO network behind the shared letterbox → network → NMS pipeline; implements :class:`Detector`."""

    def __init__(
        self,
        network: Network,
        info: ModelInfo,
        *,
        conf: float = DEFAULT_CANDIDATE_CONF,
        iou: float = DEFAULT_IOU,
        max_det: int = DEFAULT_MAX_DET,
        max_batch: int | None = None,
        trim: bool | None = None,
        min_structure: float = DEFAULT_MIN_STRUCTURE,
    ) -> None:
        """``trim``: letterbox into the smallest canvas that holds the image instead of the full square (default:
        when the network says it accepts any size, see :class:`SizedNetwork`). ``max_batch``: images per network
        call (default: what the network prefers, else :data:`DEFAULT_MAX_BATCH`). ``min_structure``: boxes over a
        quarter of the image whose content has less structure than this are left out
        (:mod:`detector.featureless`; 0 keeps them)."""
        self._network = network
        self.trim = bool(getattr(network, "any_size", False)) if trim is None else trim
        self._pixels = bool(getattr(network, "pixels", False))
        self._layout: InputLayout = getattr(network, "layout", "nchw")
        # Side-by-side calls for batches (see SizedNetwork); networks without them run chunks one after another.
        self._single_thread: Network | None = getattr(network, "single_thread", None)
        self._workers = int(getattr(network, "workers", 1))  # 1 unless there is a single-thread network
        self._info = info
        self.conf = conf
        self.iou = iou
        self.max_det = max_det
        if not min_structure >= 0.0:  # NaN fails too
            raise ValueError(f"min_structure must be ≥ 0, got {min_structure}")
        self.min_structure = min_structure
        preferred = getattr(network, "max_batch", None)
        self.max_batch = max_batch if max_batch is not None else preferred or DEFAULT_MAX_BATCH
        self._pool: ThreadPoolExecutor | None = None  # started on the first batch that can use it
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        """Name, version, classes, input size and operating threshold of the loaded model."""
        return self._info

    def raw(self, batch: FloatArray) -> FloatArray:
        """The network's raw output for an already letterboxed batch (for tests and benchmarks)."""
        return self._network(batch)

    def detect(self, images: Sequence[ImageArray], *, conf: float | None = None) -> list[Detections]:
        """Detect in a batch of RGB images; boxes in each image's pixels, confidence ≥ ``conf``.

        With a trimmed letterbox, images are batched with others of the same canvas only, so that what is found
        in an image never depends on which other images happen to share its batch. When the network can run
        single-threaded calls side by side (:class:`SizedNetwork`), the network calls of a batch do so, each with
        its letterbox and post-processing (OpenCV, numpy and ONNX Runtime release the GIL): per image on this
        2-core machine, int8, 32 validation images, 7.1 ms against 8.8 with both cores on each image in turn.
        """
        threshold = self.conf if conf is None else conf
        if not 0.0 <= threshold <= 1.0:  # NaN fails too
            raise ValueError(f"conf must be in [0, 1], got {threshold}")
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            canvas = network_canvas([image.shape], self._info.input_size) if self.trim else (0, 0)
            groups.setdefault(canvas, []).append(index)
        chunks = [
            indices[start : start + self.max_batch]
            for indices in groups.values()
            for start in range(0, len(indices), self.max_batch)
        ]
        single_thread = self._single_thread
        if single_thread is None or min(self._workers, len(chunks)) < 2:
            done = [self._detect_chunk(images, chunk, threshold, self._network) for chunk in chunks]
        else:
            pool = self._worker_pool()
            done = list(pool.map(lambda chunk: self._detect_chunk(images, chunk, threshold, single_thread), chunks))
        found = {index: detections for chunk in done for index, detections in chunk}
        return [found[index] for index in range(len(images))]

    def _worker_pool(self) -> ThreadPoolExecutor:
        """The thread pool for side-by-side calls, started on first use, and again in a forked child (a pool's
        threads do not survive ``fork``: the child's copy would wait for them for ever)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="detector")
                self._pool_pid = os.getpid()
            return self._pool

    def close(self) -> None:
        """Stop the worker threads of side-by-side batches, if any were started (they are idle between calls)."""
        with self._pool_lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.shutdown(wait=True)
            self._pool = None

    def _detect_chunk(
        self, images: Sequence[ImageArray], chunk: list[int], threshold: float, network: Network
    ) -> list[tuple[int, Detections]]:
        """Letterbox, run and post-process the images ``chunk`` indexes (one network call)."""
        batch, boxes = letterbox_batch(
            [images[i] for i in chunk],
            self._info.input_size,
            trim=self.trim,
            pixels=self._pixels,
            layout=self._layout,
        )
        raw = network(batch)
        results = postprocess(
            raw,
            boxes,
            conf=threshold,
            iou=self.iou,
            max_det=self.max_det,
            head=head_layout(raw.shape[1], len(self._info.classes)),
            canvas=input_canvas(batch, self._layout),
        )
        info = self._info
        per_image = [
            (index, Detections(box.image_size, info.name, info.version, info.classes, xyxy, confidence, class_id))
            for index, box, (xyxy, confidence, class_id) in zip(chunk, boxes, results, strict=True)
        ]
        return [(index, self._without_featureless(images[index], found)) for index, found in per_image]

    def _without_featureless(self, image: ImageArray, found: Detections) -> Detections:
        """``found`` less its large boxes over featureless content (:mod:`detector.featureless`)."""
        flat = featureless_boxes(image, found.xyxy, found.confidence, min_structure=self.min_structure)
        return found.select(~flat) if flat.any() else found


def head_layout(output_channels: int, classes: int) -> HeadLayout:
    """The layout of a raw output with ``output_channels`` channels from a model of ``classes`` classes (told
    from the output itself, so older decoded exports keep working); any other count is a :class:`ModelError`."""
    if output_channels == 4 + classes:
        return "decoded"
    if output_channels == 4 * REG_MAX + classes:
        return "dfl"
    raise ModelError(
        f"the network outputs {output_channels} channels; a {classes}-class model has {4 + classes} (decoded boxes)"
        f" or {4 * REG_MAX + classes} (DFL box logits)"
    )


def onnx_network(path: Path, *, threads: int | None = None) -> SizedNetwork:
    """An ONNX Runtime CPU session as a :data:`Network`. ``threads`` None lets ONNX Runtime use every core.

    It accepts any input size when the model was exported with free height and width (models before
    20261129-e39 have a fixed square input and keep the square letterbox). An int8 model whose input is uint8
    takes the letterboxed pixels as they are (see ``detector.export``); a float batch in [0, 1] given to it
    (``YoloDetector.raw``) is converted back to those pixels, exactly for batches from ``letterbox_batch``. An
    input of shape (batch, height/2, width/2, 12) takes the ``"blocks"`` layout (:data:`detector.yolo.InputLayout`;
    int8 exports whose stem reads them, see ``detector.export._channels_last_blocks``; older ones take NCHW), and an
    NCHW batch given to it is rearranged first. An anchors-first output (exports since 20261130,
    :func:`output_anchors_first`) is returned as a (batch, channels,
    anchors) view, the layout :func:`detector.yolo.postprocess` reads.
    """
    session = _onnx_session(path, threads)
    model_input = session.get_inputs()[0]
    dims = list(model_input.shape)
    pixels = model_input.type == "tensor(uint8)"
    layout: InputLayout = "blocks" if pixels and len(dims) == 4 and dims[3] == BLOCK_VALUES else "nchw"
    spatial = dims[1:3] if layout == "blocks" else dims[2:]
    any_size = len(spatial) == 2 and not any(isinstance(side, int) for side in spatial)
    # One image per call for the int8 network (the one whose input is uint8 pixels): its kernels are bound by the
    # cache, and the activations of several images overflow it. Per image on this 2-core machine, one thread, two
    # runs: 640x640 batch 1 / 2 / 4 / 8 = 20.1–21.0 / 20.7–21.5 / 21.8–22.1 / 22.3–23.1 ms; 640x384 12.1–12.5 /
    # 12.0–12.4 / 12.7–13.0 / 13.3–13.4 ms. The fp32 network gains from batches at some sizes. With more than one
    # thread, a second session on one thread runs the images of a batch side by side (see YoloDetector.detect).
    workers = (threads or usable_cores()) if pixels else 1
    output = list(session.get_outputs()[0].shape)
    channels = output[2] if output_anchors_first(output) else output[1] if len(output) == 3 else None
    return SizedNetwork(
        _onnx_runner(session, pixels=pixels, layout=layout),
        any_size=any_size,
        pixels=pixels,
        layout=layout,
        max_batch=1 if pixels else None,
        single_thread=_LazyRunner(path, pixels=pixels, layout=layout) if workers > 1 else None,
        workers=workers,
        output_channels=channels if isinstance(channels, int) else None,
        class_names=_metadata_names(session.get_modelmeta().custom_metadata_map),
        fixed_side=None
        if any_size or not isinstance(spatial[-1], int)
        else spatial[-1] * (2 if layout == "blocks" else 1),
    )


def _metadata_names(metadata: dict[str, str]) -> tuple[str, ...] | None:
    """The class names stored in an ONNX file's metadata, in id order: ``classes`` ("fire,smoke", our exports) or
    ultralytics' ``names`` (a dict literal of id → name); None when neither is there or readable (our int8 files
    carry no metadata)."""
    import ast

    if metadata.get("classes"):
        return tuple(name.strip() for name in metadata["classes"].split(","))
    try:
        names = ast.literal_eval(metadata["names"])
        return tuple(str(names[i]) for i in sorted(names))
    except (KeyError, ValueError, SyntaxError, TypeError):
        return None


class _LazyRunner:
    """A one-thread ONNX Runtime session of ``path`` as a :data:`Network`, loaded on its first call (callers that
    only ever pass one image at a time, such as ``watch`` and the patrol workers, never load it); safe to call
    from several threads at once."""

    def __init__(self, path: Path, *, pixels: bool, layout: InputLayout) -> None:
        self._path, self._pixels, self._layout = path, pixels, layout
        self._run: Network | None = None
        self._lock = threading.Lock()

    def __call__(self, batch: FloatArray) -> FloatArray:
        if self._run is None:
            with self._lock:
                if self._run is None:
                    self._run = _onnx_runner(_onnx_session(self._path, 1), pixels=self._pixels, layout=self._layout)
        return self._run(batch)


def _onnx_session(path: Path, threads: int | None) -> Any:
    """An ONNX Runtime CPU session of ``path`` on ``threads`` intra-op threads (None: ONNX Runtime's default, every
    core); a file it cannot load is a :class:`ModelError`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1  # the parallel executor measured slower (docs/detector.md, Batching and threads)
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exception classes
        raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc})") from exc


def _onnx_runner(session: Any, *, pixels: bool, layout: InputLayout) -> Network:
    """A :data:`Network` running ``session`` (see :func:`onnx_network` for the conversions it makes)."""
    input_name = session.get_inputs()[0].name
    anchors_first = output_anchors_first(session.get_outputs()[0].shape)

    def run(batch: FloatArray) -> FloatArray:
        feed: Any = batch
        if pixels and batch.dtype != np.uint8:
            feed = np.clip(np.rint(batch * np.float32(255.0)), 0, 255).astype(np.uint8)
        if layout == "blocks" and feed.shape[1] == 3:  # NCHW (a blocks batch is at least 16 blocks high)
            feed = to_blocks(feed)
        result: Any = session.run(None, {input_name: feed})[0]
        output = np.asarray(result, dtype=np.float32)
        return output.transpose(0, 2, 1) if anchors_first else output

    return run


def output_anchors_first(shape: Sequence[object]) -> bool:
    """Whether an ONNX output of this declared shape is (batch, anchors, channels) rather than (batch, channels,
    anchors): the anchors axis is free (it follows the input size) and the channel count fixed.

    Exports since 20261130 put the anchors first (see ``detector.export._anchors_first_head``: ONNX Runtime then
    skips a transpose per level); earlier free-size exports declare (batch, channels, "anchors"), and fixed-size
    ones two numbers: both are channels first. :func:`onnx_network` hands an anchors-first output on as a
    transposed view, so everything after the network sees one layout.
    """
    dims = list(shape)
    return len(dims) == 3 and not isinstance(dims[1], int) and isinstance(dims[2], int)


def cuda_available() -> bool:
    """Whether torch can use a CUDA GPU. Cheap when there is no NVIDIA driver (torch is then not imported)."""
    if not (Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()):
        return False
    import torch

    return bool(torch.cuda.is_available())


def torch_network(path: Path, *, device: str | None = None, threads: int | None = None) -> SizedNetwork:
    """The ultralytics checkpoint at ``path`` as a :data:`Network` (fp32; conv+bn fused, as ONNX Runtime does)."""
    from detector.train import configure_offline, offline_guard

    configure_offline(_ULTRALYTICS_CONFIG_DIR, threads=threads or usable_cores())
    import torch

    if threads:
        torch.set_num_threads(threads)
    with offline_guard():
        from ultralytics.nn.tasks import load_checkpoint

        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            model, _ = load_checkpoint(str(path), device=target, fuse=False)  # type: ignore[no-untyped-call]
        except Exception as exc:  # torch/pickle raise many unrelated types for a bad file
            raise ModelError(f"{path}: not a loadable ultralytics checkpoint ({exc})") from exc
        if hasattr(model, "fuse"):
            # Fused here, quietly: load_checkpoint's own fuse prints a model summary on stdout, which would break
            # every --json output of the CLI (the torch backend is the default on a GPU).
            model = model.fuse(verbose=False)
    model.eval()

    # One call at a time: ultralytics' Detect head caches its anchor grid on the module, so two threads with
    # different canvases overwrite each other's (seen: a shape error, or boxes of the wrong grid, silently). The
    # patrol runs one thread per preset on one detector; ONNX Runtime sessions need no lock.
    lock = threading.Lock()

    def run(batch: FloatArray) -> FloatArray:
        with lock, torch.inference_mode():
            output = model(torch.from_numpy(batch).to(target))
        if isinstance(output, tuple | list):  # eval mode returns (decoded, raw feature maps)
            output = output[0]
        return np.asarray(output.float().cpu().numpy(), dtype=np.float32)

    names = getattr(model, "names", None)
    classes = tuple(str(names[i]) for i in sorted(names)) if isinstance(names, dict) else None
    return SizedNetwork(run, any_size=True, class_names=classes)  # the anchor grid follows the input


def _check_entry(entry: ModelEntry, network: SizedNetwork, file: str | None) -> None:
    """Refuse a manifest entry that does not describe its weights: a class list of another length (or, where the
    weights name their classes, another order, which would swap fire and smoke in every alert) or the input size
    of another fixed input, or a fixed input where the manifest says any size. Found at load, before any image,
    as a :class:`ModelError` naming the file."""
    where = f"{file} (manifest entry {entry.name})"
    if entry.trimmed_input and not network.any_size:
        raise ModelError(f"{where}: the manifest says it takes any input size, but its input is fixed")
    if network.class_names is not None and network.class_names != entry.classes:
        raise ModelError(
            f"{where}: the weights' classes are {list(network.class_names)}, the manifest says {list(entry.classes)}"
        )
    if network.output_channels is not None:
        try:
            head_layout(network.output_channels, len(entry.classes))
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}; the manifest lists {len(entry.classes)} classes") from None
    if network.fixed_side is not None and network.fixed_side != entry.input_size:
        raise ModelError(f"{where}: its input is {network.fixed_side} px, the manifest says {entry.input_size}")


def model_info(entry: ModelEntry, backend: str) -> ModelInfo:
    """The :class:`ModelInfo` of a manifest entry."""
    return ModelInfo(
        name=entry.name,
        version=entry.version,
        classes=entry.classes,
        input_size=entry.input_size,
        operating_threshold=entry.operating_threshold,
        backend=backend,
    )


def load_detector(
    backend: Backend = "auto",
    *,
    model: str | None = None,
    models_dir: Path = DEFAULT_MODELS_DIR,
    threads: int | None = None,
    device: str | None = None,
    second_opinion: bool = False,
    min_structure: float = DEFAULT_MIN_STRUCTURE,
) -> Detector:
    """The configured detector: the manifest's default model (or ``model``) on the requested backend.

    ``auto`` picks torch when a CUDA GPU is present and the entry has torch weights, else ONNX Runtime; when no
    model is configured at all (no manifest) and none is named, ``auto`` falls back to the weights-free colour
    rules and says so in the log. A named, configured, missing or corrupted model, or an entry that does not
    describe its weights (:func:`_check_entry`), is always an error, never a silent fallback.

    ``second_opinion``: the model's fire boxes re-weighed by the flame rule (:mod:`detector.second_opinion`); it
    needs a trained model, so with the rules (asked for, or no manifest) it is a :class:`ModelError`.

    ``min_structure``: see :class:`YoloDetector` (model boxes only; the rules judge colour and motion themselves).
    """
    if second_opinion:
        if backend == "rules":
            raise ModelError("the second opinion re-weighs a trained model's boxes: not available with the rules")
        if model is None and not (models_dir / "manifest.json").exists():
            raise ModelError(f"the second opinion needs a trained model, and {models_dir} has no manifest.json")
        from detector.second_opinion import SecondOpinion

        network_detector = load_detector(
            backend, model=model, models_dir=models_dir, threads=threads, device=device, min_structure=min_structure
        )
        return SecondOpinion(network_detector)
    if backend == "rules":
        from detector.rules import RulesDetector

        return RulesDetector()
    manifest_path = models_dir / "manifest.json"
    if backend == "auto" and model is None and not manifest_path.exists():
        from detector.rules import RulesDetector

        log.warning("no model manifest at %s: using the weights-free colour/motion rules", manifest_path)
        return RulesDetector()
    manifest = load_manifest(models_dir)
    entry = resolve_model(manifest, model)
    if backend == "auto":
        backend = "torch" if entry.torch_file and cuda_available() else "onnx"
    if backend == "onnx" and model is None and manifest.cpu_default is not None:
        cpu_entry = resolve_model(manifest, manifest.cpu_default)
        if cpu_entry.exact_without_vnni or int8_kernels_exact():
            entry = cpu_entry
        else:  # the int8 variant's sums would saturate on this CPU (detector.cpu.int8_kernels_exact): the fp32 model
            _warn_once(
                "this CPU has no VNNI instructions, where ONNX Runtime's int8 kernels saturate: using %s (fp32), not "
                "the int8 variant %s (slower, as accurate as measured)",
                entry.name,
                manifest.cpu_default,
            )
    if backend == "torch":
        network = torch_network(verified_file(models_dir, entry, "torch"), device=device, threads=threads)
    else:
        network = onnx_network(verified_file(models_dir, entry, "onnx"), threads=threads)
    _check_entry(entry, network, entry.torch_file if backend == "torch" else entry.file)
    # The manifest decides, so both backends letterbox the same way for the same entry.
    return YoloDetector(network, model_info(entry, backend), trim=entry.trimmed_input, min_structure=min_structure)
