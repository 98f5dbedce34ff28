"""Train the fire/smoke detector with ultralytics YOLO, resumably and fully offline.

Why it looks like this:

* The machines that train this project have no internet. ultralytics reaches out on its own in several places
  (an online check, a PyPI update check, usage analytics, the ``Arial.ttf`` font that every dataset check asks
  for, the AMP check's ``yolo11n.pt``, hub weights for ``*.pt`` names). :func:`configure_offline` closes each
  of them before ultralytics is imported, and the model is always built from an architecture ``.yaml`` (random
  init).
* Training on a CPU with two cores takes days and is stopped whenever the session ends, so every run is
  resumable: ultralytics writes ``weights/last.pt`` after every epoch, and :func:`train` resumes from it
  automatically.
* torch/ultralytics are imported inside functions only, so importing this module (and ``strawfire --help``)
  stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = [
    "AUGMENTATION",
    "DEFAULT_DATA",
    "DEFAULT_MODEL",
    "DEFAULT_PROJECT",
    "DEFAULT_RUN_NAME",
    "TrainingSetupError",
    "configure_offline",
    "last_checkpoint",
    "offline_guard",
    "train",
]

log = logging.getLogger(__name__)

DEFAULT_DATA: Final[Path] = Path("var/datasets/strawfire-v2/data.yaml")
#: yolov8n rather than yolo11n: measured on this CPU (1 thread, batch 16 at 320 px, forward+backward) yolov8n
#: takes ~1.36 s per batch and yolo11n ~1.53 s; without pretrained weights neither has an accuracy head start,
#: and the plain conv/C2f yolov8 graph is the cheaper, well-trodden baseline for fire/smoke.
#: ``model="yolo11n.yaml"`` works too. With ReLU instead of SiLU (``detector/arch/yolov8n-relu.yaml``, the committed
#: model's architecture): ReLU folds into ONNX Runtime's int8 convolutions, SiLU costs a quarter of the int8
#: network's time on a CPU. ``model="yolov8n.yaml"`` trains the SiLU original.
DEFAULT_MODEL: Final[str] = "yolov8n-relu.yaml"
#: Architectures of our own (``detector/arch/*.yaml``), looked up by file name before ultralytics' bundled ones.
ARCH_DIR: Final[Path] = Path(__file__).resolve().parent / "arch"
DEFAULT_PROJECT: Final[Path] = Path("var/train")
DEFAULT_RUN_NAME: Final[str] = "strawfire-v2"
#: ultralytics settings, fonts and caches live here instead of ~/.config, so nothing outside the repo is
#: touched.
DEFAULT_CONFIG_DIR: Final[Path] = Path("var/ultralytics")

#: Augmentation for outdoor, long-range, hazy scenes (tower cameras over fields, drones, CCTV). Passed
#: verbatim to ``YOLO.train``.
AUGMENTATION: Final[Mapping[str, float]] = {
    # Colour is a main cue (orange flame, grey/white/brown smoke vs. white cloud and blue haze): shift hue
    # only a little so flame stays flame-coloured, but vary saturation and brightness widely because haze, low
    # sun, dusk and auto-exposure change both a lot.
    "hsv_h": 0.015,
    "hsv_s": 0.6,
    "hsv_v": 0.4,
    # Cameras are mounted level and smoke rises: no rotation, shear or perspective warps, and no vertical flip
    # (an upside-down plume or sky below ground never occurs in the field). Left-right is symmetric.
    "degrees": 0.0,
    "shear": 0.0,
    "perspective": 0.0,
    "flipud": 0.0,
    "fliplr": 0.5,
    # Targets range from tiny plumes on the horizon (0.1 % of a tower frame) to close-up flames: strong scale
    # jitter and translation teach size invariance.
    "scale": 0.6,
    "translate": 0.1,
    # Mosaic packs four images into one: more small objects and more background context per step, which helps
    # a small dataset most. It is switched off for the last epochs so the model also sees whole, real frames.
    "mosaic": 1.0,
    "close_mosaic": 10,
    # No mixup: blending two images makes semi-transparent ghosts that look like haze or smoke, blurring
    # exactly the smoke-vs-haze distinction the detector must learn.
    "mixup": 0.0,
    "cutmix": 0.0,
    "copy_paste": 0.0,
}


class TrainingSetupError(RuntimeError):
    """Training cannot start as asked (no dataset, a finished run, a ``.pt`` name): fix the call."""


#: Everything that would otherwise phone home or sync somewhere, switched off in ultralytics' settings.
_OFFLINE_SETTINGS: Final[Mapping[str, bool]] = {
    "sync": False,
    "hub": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "neptune": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}

#: Fonts ultralytics checks for (and would download) — satisfied with a font matplotlib already ships.
_FONT_NAMES: Final[tuple[str, ...]] = ("Arial.ttf", "Arial.Unicode.ttf")


def configure_offline(config_dir: Path = DEFAULT_CONFIG_DIR, *, threads: int = 1) -> None:
    """Make ultralytics and torch safe for an offline, shared CPU box. Call before anything imports them.

    * ``YOLO_OFFLINE=1`` makes ultralytics' ``ONLINE`` constant False, which disables the PyPI update check,
      analytics events and error reporting; it is read once at import, hence "before import".
    * ``YOLO_CONFIG_DIR`` (and ``MPLCONFIGDIR``, unless set) keep ultralytics' settings file and the font caches
      inside the project's ``var/``.
    * Every dataset check calls ``check_font("Arial.ttf")``, which downloads the font when it is not in the
      config dir; a symlink to matplotlib's bundled DejaVu Sans satisfies it (it is only used to draw plot
      labels).
    * ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` cap torch's intra-op threads so training leaves the other core
      free; torch is also capped again at train start because ultralytics resets it.
    """
    config_dir = config_dir.resolve()
    # An earlier call in this process already put ultralytics offline before it was imported (inference and tests
    # load it too), even if YOLO_OFFLINE has since been removed from the environment.
    if "ultralytics" in sys.modules and os.environ.get("YOLO_OFFLINE") != "1" and not _guard["configured"]:
        raise RuntimeError("ultralytics was imported before configure_offline(); its online check ran")
    os.environ["YOLO_OFFLINE"] = "1"
    _guard["configured"] = True
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))  # matplotlib's font cache
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)

    font_dir = config_dir / "Ultralytics"  # ultralytics' get_user_config_dir() appends this
    font_dir.mkdir(parents=True, exist_ok=True)
    local_font = _bundled_font()
    for name in _FONT_NAMES:
        target = font_dir / name
        if not target.exists():
            target.unlink(missing_ok=True)  # a dangling link from an older matplotlib
            target.symlink_to(local_font)


_LOCAL_HOSTS: Final[frozenset[str]] = frozenset({"", "localhost", "127.0.0.1", "::1", "0.0.0.0"})  # noqa: S104
_NAME_LOOKUPS: Final[frozenset[str]] = frozenset(
    {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"}
)
_guard = {"installed": False, "active": False, "configured": False}


def _network_audit_hook(event: str, args: tuple[Any, ...]) -> None:
    """Refuse (and report) name lookups and connections to other hosts while :func:`offline_guard` is active.

    Settings and env vars close every path to the network we know of; this hook catches the ones we do not,
    in any library, and prints them to the training log so a new ultralytics version cannot silently try.
    Local IPC (Unix sockets, loopback) stays allowed: dataloader workers use it.
    """
    if not _guard["active"]:
        return
    if event == "socket.connect":
        address = args[1] if len(args) > 1 else None
        if isinstance(address, str | bytes) or not isinstance(address, tuple) or not address:
            return  # AF_UNIX path or something that is not an internet address
        host = str(address[0])
    elif event in _NAME_LOOKUPS:
        name = args[0]
        host = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name or "")
    elif event == "urllib.Request":
        url = urlsplit(str(args[0]))
        if url.scheme == "file":
            return
        host = url.hostname or ""
    else:
        return
    if host in _LOCAL_HOSTS:
        return
    print(f"strawfire: blocked network access during training: {event} {host}", flush=True)  # noqa: T201
    raise OSError(f"network access blocked (offline training): {event} {host}")


@contextmanager
def offline_guard() -> Iterator[None]:
    """Block non-local network access in this process for the duration of the block (see the audit hook)."""
    if not _guard["installed"]:
        sys.addaudithook(_network_audit_hook)  # audit hooks cannot be removed; the flag turns it off
        _guard["installed"] = True
    previous = _guard["active"]
    _guard["active"] = True
    try:
        yield
    finally:
        _guard["active"] = previous


def _bundled_font() -> Path:
    """A TTF that is certainly on disk: matplotlib (an ultralytics dependency) ships DejaVu Sans."""
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not font.is_file():
        raise FileNotFoundError(f"matplotlib's bundled font is missing: {font}")
    return font


def _apply_offline_settings(project: Path, config_dir: Path) -> None:
    """Switch off ultralytics integrations and point its default folders into ``var/`` (after import)."""
    from ultralytics.utils import SETTINGS

    settings: Any = SETTINGS  # untyped third-party object
    updates: dict[str, Any] = {k: v for k, v in _OFFLINE_SETTINGS.items() if k in settings}
    updates |= {
        "runs_dir": str(project),
        "weights_dir": str(config_dir / "weights"),
        "datasets_dir": str(config_dir / "datasets"),
    }
    settings.update(updates)


def last_checkpoint(project: Path = DEFAULT_PROJECT, name: str = DEFAULT_RUN_NAME) -> Path:
    """Where ultralytics writes the after-every-epoch checkpoint of a run (``best.pt`` sits next to it)."""
    return project / name / "weights" / "last.pt"


#: What to do about an unreadable last.pt (ultralytics writes it in place: a run killed while saving can leave it
#: cut short).
_DAMAGED_LAST: Final[str] = (
    "ultralytics writes it in place, so a run killed while saving can leave it cut short. Move it away and start "
    "over with --no-resume, or continue from the run's best.pt with --init-weights"
)


def _checkpoint_state(path: Path, remedy: str = _DAMAGED_LAST) -> tuple[int, int, bool, str]:
    """(last finished epoch, planned epochs, has optimizer state, architecture) of a checkpoint, to tell resumable
    from done; an unreadable file is a :class:`TrainingSetupError` that ends with ``remedy``.
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own file, written by ultralytics
    except Exception as exc:  # torch/pickle raise many unrelated types for a damaged file
        raise TrainingSetupError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); {remedy}") from exc
    if not isinstance(ckpt, dict):
        raise TrainingSetupError(f"{path}: not an ultralytics checkpoint (a {type(ckpt).__name__})")
    epoch = int(ckpt.get("epoch", -1))
    planned = int((ckpt.get("train_args") or {}).get("epochs", 0))
    return epoch, planned, ckpt.get("optimizer") is not None, checkpoint_architecture(ckpt)


def checkpoint_architecture(ckpt: dict[str, Any]) -> str:
    """The architecture yaml's name (``yolov8n-relu``) of a loaded checkpoint: ours record it, ultralytics' keep
    it in the model's yaml."""
    if ckpt.get("architecture"):
        return str(ckpt["architecture"])
    yaml = getattr(ckpt.get("model"), "yaml", None) or {}
    return Path(str(yaml.get("yaml_file") or "unknown")).stem


def train(
    data: Path = DEFAULT_DATA,
    *,
    model: str | None = None,
    epochs: int = 300,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "cpu",
    workers: int = 0,
    threads: int = 1,
    project: Path = DEFAULT_PROJECT,
    name: str = DEFAULT_RUN_NAME,
    resume: bool = True,
    patience: int = 100,
    save_period: int = -1,
    cache: str | bool = "ram",
    seed: int = 0,
    config_dir: Path = DEFAULT_CONFIG_DIR,
    init_weights: Path | None = None,
    hours: float | None = None,
    lr0: float = 0.01,
    close_mosaic: int | None = None,
) -> Path:
    """Train (or resume) the detector; return the run folder (``weights/last.pt`` and ``weights/best.pt``).

    Args:
        data: ``data.yaml`` written by :func:`detector.dataset.build_dataset`.
        model: architecture yaml: one of ours in ``detector/arch/`` (``yolov8n-relu.yaml``), one ultralytics
            ships (``yolov8n.yaml``, ``yolo11n.yaml``, ...) or a path. Built with random weights, or, with
            ``init_weights``, with those weights carried over tensor by tensor (all must fit). None: the
            architecture of ``init_weights``, else :data:`DEFAULT_MODEL`. ``.pt`` names are refused because
            resolving them means a download.
        epochs: planned epochs; a stopped run continues towards this number when resumed.
        imgsz: training size. 320 on CPU (4x cheaper than 640); small plumes argue for more on a GPU.
        batch: images per step (ultralytics accumulates gradients up to a nominal 64).
        workers: dataloader processes; 0 loads in the training process, leaving a core for other work.
        threads: torch intra-op threads.
        project, name: the run lives in ``project/name``.
        resume: continue from ``project/name/weights/last.pt`` when it exists and is unfinished. ``False``
            starts over in that run folder: ultralytics replaces ``results.csv``, ``args.yaml``, ``last.pt`` and
            ``best.pt`` (the old ones stay until the first epoch ends), and ``lineage.json`` is rewritten for
            ``init_weights`` or removed.
        patience: early-stopping patience in epochs without validation improvement.
        save_period: also keep ``epochN.pt`` every N epochs (-1: only ``last.pt``/``best.pt``, which
            ultralytics writes every epoch anyway).
        cache: ``"ram"`` decodes and resizes each image once (decoding 1-2k px JPEGs dominates CPU data
            loading), ``"disk"`` or ``False`` otherwise.
        seed: random seed for reproducible runs.
        config_dir: ultralytics settings/font folder (see :func:`configure_offline`).
        init_weights: when there is no run to resume, start from these weights (a ``.pt`` this project
            exported, e.g. the committed ``models/strawfire-yolov8n.pt``) instead of random ones: how a new machine
            continues training where the last session stopped. Never downloaded; a missing file is an error.
        hours: a wall-clock budget instead of a fixed epoch count. After each epoch ultralytics re-plans the
            number of epochs that fit and rescales the learning-rate schedule (and the mosaic switch-off) to it,
            so a run that must end with a session still finishes its schedule at a low learning rate rather
            than being cut off half-way. ``epochs`` is then only the starting estimate.
        lr0: initial SGD learning rate (ultralytics' 0.01 suits random weights). Continuing from trained
            ``init_weights`` a lower one (e.g. 0.004) spends fewer epochs unlearning and relearning: the first
            continuation here at 0.01 fell from mAP50 0.48 to 0.38 and needed ~25 epochs to recover. From
            ``init_weights`` the warm-up is also one epoch with biases at ``lr0``: ultralytics' 0.1 bias warm-up
            is meant for a randomly initialised head and would scramble a trained one.
        close_mosaic: the last epochs trained on whole images instead of mosaics (default
            ``AUGMENTATION["close_mosaic"]``, 10). A short fine-tune that ``hours`` re-plans to fewer epochs than that
            runs without mosaics from its second epoch on (the one-hour CPU fine-tune of e344 did); a smaller value
            keeps them for most of it.
    """
    if hours is not None and hours <= 0:
        raise TrainingSetupError(f"hours must be positive, got {hours}")
    if not 0 < lr0 <= 0.1:
        raise TrainingSetupError(f"lr0 must be in (0, 0.1], got {lr0}")
    if close_mosaic is not None and close_mosaic < 0:
        raise TrainingSetupError(f"close_mosaic must be 0 or more epochs, got {close_mosaic}")
    if model is not None and model.endswith(".pt"):
        raise TrainingSetupError(f"{model}: build from an architecture .yaml; .pt names would be downloaded")
    project = project.resolve()
    config_dir = config_dir.resolve()
    data = data.resolve()
    if not data.is_file():
        raise TrainingSetupError(f"{data} not found: build it first with `strawfire detector dataset build`")

    if init_weights is not None and not init_weights.is_file():
        raise TrainingSetupError(f"{init_weights}: no such weights file")
    configure_offline(config_dir, threads=threads)
    with offline_guard():
        return _train_offline(
            data,
            model=model,
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            device=device,
            workers=workers,
            threads=threads,
            project=project,
            name=name,
            resume=resume,
            patience=patience,
            save_period=save_period,
            cache=cache,
            seed=seed,
            config_dir=config_dir,
            init_weights=init_weights,
            hours=hours,
            lr0=lr0,
            close_mosaic=close_mosaic,
        )


def architecture_yaml(model: str) -> str:
    """The yaml to build ``model`` from: a path as given, else our own ``detector/arch/<model>``, else the name
    itself for ultralytics to find among the yamls it ships (a local lookup, never a download)."""
    if Path(model).is_file():
        return model
    ours = ARCH_DIR / model
    return str(ours) if ours.is_file() else model


def _built(yolo_class: Any, model: str) -> Any:
    """``YOLO(<architecture yaml>)``, or a :class:`TrainingSetupError` naming the architectures there are."""
    try:
        return yolo_class(architecture_yaml(model))
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        ours = ", ".join(sorted(p.name for p in ARCH_DIR.glob("*.yaml"))) or "none"
        raise TrainingSetupError(
            f"--model {model}: cannot build this architecture ({exc}); give a yaml file, one of ours ({ours}) or "
            "a name of ultralytics' own yamls such as yolov8n.yaml or yolo11n.yaml"
        ) from exc


def _train_offline(
    data: Path,
    *,
    model: str | None,
    epochs: int,
    imgsz: int,
    batch: int,
    device: str,
    workers: int,
    threads: int,
    project: Path,
    name: str,
    resume: bool,
    patience: int,
    save_period: int,
    cache: str | bool,
    seed: int,
    config_dir: Path,
    init_weights: Path | None = None,
    hours: float | None = None,
    lr0: float = 0.01,
    close_mosaic: int | None = None,
) -> Path:
    """The part of :func:`train` that imports torch/ultralytics; runs inside :func:`offline_guard`."""
    import torch

    torch.set_num_threads(threads)
    from ultralytics.models.yolo.model import YOLO

    _apply_offline_settings(project, config_dir)

    common: dict[str, Any] = {
        "device": device,
        "workers": workers,
        "cache": cache,
        "plots": False,  # plotting needs fonts and costs CPU; metrics still go to results.csv
        "save_period": save_period,
        "patience": patience,
    }
    last = last_checkpoint(project, name)
    resuming = False
    if resume and last.is_file():
        epoch, planned, has_optimizer, architecture = _checkpoint_state(last)
        if not (has_optimizer and 0 <= epoch < planned - 1):
            # ultralytics marks a finished run's last.pt with epoch -1 and no optimiser state
            done = f"all {planned} planned epochs" if epoch < 0 else f"epoch {epoch + 1} of {planned}"
            raise TrainingSetupError(
                f"{last} is a finished run ({done}); start over with --no-resume or another --name, or continue "
                "from its weights with --init-weights"
            )
        if model is not None and Path(architecture_yaml(model)).stem != architecture:
            raise TrainingSetupError(
                f"{last} is an unfinished {architecture} run, not {model}: resume it without --model, or start "
                "over with --no-resume (or another --name)"
            )
        resuming = True
        log.info("resuming %s after epoch %d of %d", last, epoch + 1, planned)

    if resuming:
        # Data, epochs, augmentation and optimiser come from the checkpoint (ultralytics keeps them fixed).
        yolo = YOLO(str(last))
        train_args: dict[str, Any] = {"resume": True, **common}
        if close_mosaic is not None:
            log.warning("resuming %s: --close-mosaic is ignored (a resumed run keeps its own augmentation)", last)
    else:
        if init_weights is not None:
            # Our own earlier weights (a local file, so nothing is fetched): architecture and the two-class head
            # come with them, so every layer carries over.
            # a damaged or foreign file: a clear error, not ultralytics' traceback
            _checkpoint_state(
                init_weights, "give --init-weights an ultralytics checkpoint (best.pt or last.pt of a run)"
            )
            if model is None:
                log.info("starting from %s", init_weights)
                yolo = YOLO(str(init_weights))
            else:
                # Another architecture with the same layers (e.g. yolov8n-relu.yaml from the SiLU model):
                # build it from its yaml, then carry every tensor over by name and shape; the check below refuses
                # the run if any tensor did not fit.
                log.info("building %s from %s's weights", model, init_weights)
                yolo = _built(YOLO, model)
                yolo.load(str(init_weights))
        else:
            yolo = _built(YOLO, model or DEFAULT_MODEL)
        train_args = {
            "data": str(data),
            "epochs": epochs,
            "imgsz": imgsz,
            "batch": batch,
            "project": str(project),
            "name": name,
            "exist_ok": True,  # keep the fixed run folder so resume always finds last.pt
            # False makes ultralytics rebuild the model from its yaml and drop any loaded weights; True reuses the
            # model already loaded from --init-weights (a local file). Neither looks anything up online: the
            # trainer's model is set before ultralytics' own setup, which then never resolves weights.
            "pretrained": init_weights is not None,
            "amp": False,  # fp32 on CPU anyway, and on CUDA the AMP check would download yolo26n.pt
            "optimizer": "SGD",  # explicit: "auto" switches optimiser with the iteration count
            "lr0": lr0,
            "momentum": 0.937,
            "weight_decay": 0.0005,
            # From trained weights: a short warm-up, biases at lr0 (ultralytics' 0.1 is for a random head).
            **({"warmup_epochs": 1.0, "warmup_bias_lr": lr0} if init_weights else {"warmup_epochs": 3.0}),
            "seed": seed,
            "deterministic": True,
            "val": True,
            "time": hours,  # None: a fixed number of epochs
            **AUGMENTATION,
            **({} if close_mosaic is None else {"close_mosaic": close_mosaic}),
            **common,
        }

    _add_callbacks(yolo, threads)
    if init_weights is not None and not resuming:
        import torch

        reference = torch.load(init_weights, map_location="cpu", weights_only=False)  # our own exported file
        _check_initialised_from(yolo, init_weights, reference)
        write_lineage(project / name, init_weights, epochs_total(reference), checkpoint_architecture(reference))
    elif not resuming:
        # From random weights: an earlier run's record in this folder would make the export of this one claim
        # that it continued from those weights, and count their epochs.
        (project / name / LINEAGE_FILE).unlink(missing_ok=True)
    yolo.train(**train_args)
    trainer = yolo.trainer
    return Path(str(trainer.save_dir)) if trainer is not None else project / name


#: Written next to a run's ``weights/`` when it starts from earlier weights: what it continued from.
LINEAGE_FILE: Final[str] = "lineage.json"


def checkpoint_epoch(ckpt: dict[str, Any]) -> int:
    """0-based epoch of a checkpoint's weights. ultralytics sets ``epoch`` to -1 when a run finishes; the epoch is
    then the row of ``train_results`` whose metrics the checkpoint kept (best.pt: the best epoch, not the last)."""
    epoch = int(ckpt.get("epoch", -1))
    if epoch >= 0:
        return epoch
    results: dict[str, Any] = ckpt.get("train_results") or {}
    metrics: dict[str, Any] = ckpt.get("train_metrics") or {}
    numbers = list(results.get("epoch") or [])
    key = "metrics/mAP50-95(B)"
    if numbers and key in results and key in metrics:
        distance = [abs(float(value) - float(metrics[key])) for value in results[key]]
        return int(numbers[distance.index(min(distance))]) - 1
    return len(numbers) - 1


def checkpoint_epochs_total(path: Path) -> int:
    """Epochs behind a checkpoint in all: its own run's, plus those of the weights that run started from (our
    stripped exports carry ``epochs_total``; an ultralytics checkpoint counts only its own run)."""
    import torch

    return epochs_total(torch.load(path, map_location="cpu", weights_only=False))  # our own file


def epochs_total(ckpt: dict[str, Any]) -> int:
    """:func:`checkpoint_epochs_total` of an already loaded checkpoint."""
    return int(ckpt.get("epochs_total") or checkpoint_epoch(ckpt) + 1)


def write_lineage(run_dir: Path, init_weights: Path, init_epochs: int, init_architecture: str | None = None) -> Path:
    """Record in ``run_dir`` which weights a run started from and how many epochs were behind them, so an export
    of the run can state the whole training (the init file itself may be replaced by then)."""
    from detector.manifest import sha256_file

    run_dir.mkdir(parents=True, exist_ok=True)
    lineage = {
        "init_weights": str(init_weights),
        "init_sha256": sha256_file(init_weights),
        "init_epochs": init_epochs,
    }
    if init_architecture:
        lineage["init_architecture"] = init_architecture
    path = run_dir / LINEAGE_FILE
    path.write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
    return path


def read_lineage(run_dir: Path) -> dict[str, Any] | None:
    """The run's :data:`LINEAGE_FILE`, or None for a run from random weights."""
    path = run_dir / LINEAGE_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _check_initialised_from(yolo: Any, init_weights: Path, reference: dict[str, Any]) -> None:
    """Refuse to train when the model about to be trained is not ``init_weights``.

    Why: ultralytics silently rebuilds the model from its yaml (random weights) under some argument combinations,
    and transfers only the tensors whose names and shapes match (a different class count drops the head). Either
    way the run would quietly start from scratch; this compares every tensor before the first step instead.
    """
    import torch

    expected = {name: tensor.float() for name, tensor in reference["model"].float().state_dict().items()}

    def compare(trainer: Any) -> None:
        # On a GPU the trainer has already moved the model to CUDA (first seen on a lent H200): compare on the CPU.
        actual = {name: tensor.detach().float().cpu() for name, tensor in trainer.model.state_dict().items()}
        same = sum(
            1
            for name, tensor in expected.items()
            if name in actual and actual[name].shape == tensor.shape and torch.equal(actual[name], tensor)
        )
        if same < len(expected):
            raise TrainingSetupError(
                f"{init_weights}: only {same} of {len(expected)} tensors carried over into the model being trained "
                "(different architecture or class count?); refusing to train from partly random weights"
            )
        if len(actual) != len(expected):  # an architecture with more layers: those would start random
            raise TrainingSetupError(
                f"{init_weights} has {len(expected)} tensors but the model being trained has {len(actual)}; "
                "refusing to train from partly random weights"
            )
        log.info("initialised all %d tensors from %s", same, init_weights)

    yolo.add_callback("on_pretrain_routine_end", compare)


def _add_callbacks(yolo: Any, threads: int) -> None:
    """Re-cap torch threads after ultralytics' device selection, and log a one-line timing per epoch."""
    import torch

    state = {"start": time.monotonic()}

    def cap_threads(_trainer: Any) -> None:
        torch.set_num_threads(threads)  # select_device() resets it to ultralytics' own NUM_THREADS

    def epoch_start(trainer: Any) -> None:
        state["start"] = time.monotonic()
        state["epoch"] = trainer.epoch

    def epoch_end(trainer: Any) -> None:
        took = time.monotonic() - state["start"]
        weights = Path(str(trainer.save_dir)) / "weights"
        if trainer.epoch != state.get("epoch", trainer.epoch):
            # ultralytics validates best.pt once more after the last epoch (all planned, or an early stop), through
            # this callback, with its epoch counter moved on
            message = f"strawfire: final validation of best.pt done; checkpoints in {weights}"
        else:
            message = (
                f"strawfire: epoch {trainer.epoch + 1}/{trainer.epochs} done in {took:.0f} s "
                f"(train+val); fitness {trainer.fitness}; checkpoints in {weights}"
            )
        print(message, flush=True)  # noqa: T201 - stdout is the training log (nohup ... > train.log)

    yolo.add_callback("on_pretrain_routine_start", cap_threads)
    yolo.add_callback("on_train_epoch_start", epoch_start)
    yolo.add_callback("on_fit_epoch_end", epoch_end)
