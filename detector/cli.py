"""``strawfire detector ...``: build the training set, train, export, evaluate and run the fire/smoke detector.

A Typer sub-app mounted by the root CLI. The modules imported here load only the standard library at module
level; numpy, OpenCV, ONNX Runtime, torch and ultralytics are imported inside the commands that need them, so
loading this module keeps ``strawfire --help`` fast.

The output of ``eval --json``, ``predict --json``, ``info --json`` and ``watch --json`` is a contract that
acceptance checks and other services parse: extend it, never rename or remove keys.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from detector.dataset import (
    DEFAULT_MIN_SEQUENCE_FRAMES,
    DEFAULT_OUT_DIR,
    DEFAULT_SOURCE_ROOT,
    DEFAULT_VAL_FRACTION,
    DatasetError,
    build_dataset,
)
from detector.paths import DEFAULT_MODELS_DIR
from detector.train import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_DATA,
    DEFAULT_MODEL,
    DEFAULT_PROJECT,
    DEFAULT_RUN_NAME,
    TrainingSetupError,
    last_checkpoint,
    train,
)

if TYPE_CHECKING:
    from detector.clips import ClipReport, ClipsSummary
    from detector.detections import Detector, ModelInfo
    from detector.evaluate import EvalReport, FolderRun
    from detector.review import ReviewSummary
    from detector.sequence import SequenceConfig

__all__ = ["app"]

app = typer.Typer(
    name="detector",
    help="Fire/smoke detector for camera and drone frames: dataset, training, export, evaluation, inference.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # docstrings wrap lines and show ``code``; rich markup would eat [brackets]
)
dataset_app = typer.Typer(help="Assemble the YOLO training set from ../shared/data.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")

# markup off: messages and tables quote paths and names from outside ("[x]" in a file name is text, not a style)
_console = Console(markup=False)
_errors = Console(stderr=True, markup=False)


def _failed(what: str, detail: object) -> None:
    """``what`` in red on stderr, then ``detail`` as written (a message may quote a path or name with "[x]")."""
    _errors.print(Text.assemble((what, "red"), f" {detail}"), highlight=False, soft_wrap=True)


@dataset_app.command("build")
def dataset_build(
    source_root: Annotated[
        Path, typer.Option(help="Shared data folder (see its README.md), relative to the working directory.")
    ] = DEFAULT_SOURCE_ROOT,
    out: Annotated[
        Path, typer.Option(help="Output folder; rebuilt in place if it holds an earlier build.")
    ] = DEFAULT_OUT_DIR,
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Share of each sequence / of photos held out for val.")
    ] = DEFAULT_VAL_FRACTION,
    min_sequence_frames: Annotated[
        int, typer.Option(min=1, help="Shorter sequences go whole to train or val instead of being cut.")
    ] = DEFAULT_MIN_SEQUENCE_FRAMES,
    extra_sets: Annotated[
        Path | None,
        typer.Option(
            "--extra-sets",
            metavar="FILE",
            help="TOML file of [[set]] tables: labelled YOLO folders of your own to add (name, path, names, "
            "licence, attribution; see detector.extra_sets.ExtraSet).",
        ),
    ] = None,
) -> None:
    """Write symlinked images, remapped labels (0 fire, 1 smoke), data.yaml and manifest.json."""
    from detector.extra_sets import load_extra_sets

    try:
        extras = load_extra_sets(extra_sets) if extra_sets is not None else ()
        manifest = build_dataset(
            source_root, out, val_fraction=val_fraction, min_sequence_frames=min_sequence_frames, extra_sets=extras
        )
    except DatasetError as exc:
        _failed("dataset build failed:", exc)
        raise typer.Exit(code=1) from exc

    sources = cast(dict[str, dict[str, Any]], manifest["sources"])
    table = Table(title=f"{out} (train / val)")
    table.add_column("source", no_wrap=True, min_width=max(map(len, sources)))  # names in full: they are keys
    for column in ("images", "background", "fire boxes", "smoke boxes", "dropped", "excluded"):
        table.add_column(column, justify="right")
    for source_id, info in sources.items():
        table.add_row(
            source_id,
            _pair(info["images"]),
            _pair(info["background_images"]),
            _pair({k: v["fire"] for k, v in info["boxes"].items()}),
            _pair({k: v["smoke"] for k, v in info["boxes"].items()}),
            str(info["dropped_boxes"]),
            str(info["excluded_images"]),
        )
    _console.print(table)
    _console.print(f"data.yaml: {out / 'data.yaml'}")


@dataset_app.command("featureless")
def dataset_featureless(
    out: Annotated[Path, typer.Argument(help="Folder to write images/, labels/ and extra_sets.toml to.")],
    count: Annotated[int, typer.Option(min=1, max=100_000, help="Frames to write (the five kinds in turn).")] = 250,
    seed: Annotated[int, typer.Option(min=0, help="Seed: the same seed writes the same frames.")] = 0,
) -> None:
    """Write generated featureless negatives (flat, overcast, sensor noise, no-signal screens, fog over a horizon)
    as an extra set: the frames the model wrongly boxes today (`detector.synthetic_negatives`). Then
    `strawfire detector dataset build --extra-sets OUT/extra_sets.toml`."""
    from detector.synthetic_negatives import write_featureless_set

    try:
        spec = write_featureless_set(out, count, seed=seed)
    except (OSError, ValueError) as exc:
        _failed("dataset featureless failed:", exc)
        raise typer.Exit(code=1) from exc
    _console.print(f"{count} featureless negatives in {out}; add them with --extra-sets {spec}", highlight=False)


def _pair(counts: dict[str, int]) -> str:
    """Format a {"train": n, "val": m} count as "n / m"."""
    return f"{counts['train']} / {counts['val']}"


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Option(help="data.yaml from `detector dataset build`.")] = DEFAULT_DATA,
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Architecture yaml: yolov8n-relu.yaml (ours), yolov8n.yaml, yolo11n.yaml or a path (default: "
            f"--init-weights' own architecture, else {DEFAULT_MODEL}). With --init-weights the weights carry over."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Planned epochs (fixed once a run started).")] = 300,
    imgsz: Annotated[int, typer.Option(min=32, help="Training image size (320 suits a CPU).")] = 320,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    device: Annotated[str, typer.Option(help="cpu, or a CUDA index such as 0.")] = "cpu",
    workers: Annotated[int, typer.Option(min=0, help="Dataloader processes (0 = in-process).")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    project: Annotated[Path, typer.Option(help="Folder of training runs.")] = DEFAULT_PROJECT,
    name: Annotated[str, typer.Option(help="Run name; the run lives in PROJECT/NAME.")] = DEFAULT_RUN_NAME,
    resume: Annotated[bool, typer.Option(help="Continue from PROJECT/NAME/weights/last.pt when present.")] = True,
    patience: Annotated[int, typer.Option(min=0, help="Early-stopping patience in epochs.")] = 100,
    save_period: Annotated[int, typer.Option(help="Keep epochN.pt every N epochs (-1: off).")] = -1,
    cache: Annotated[str, typer.Option(help="Image cache: ram, disk or none.")] = "ram",
    seed: Annotated[int, typer.Option()] = 0,
    config_dir: Annotated[Path, typer.Option(help="ultralytics settings/fonts folder.")] = DEFAULT_CONFIG_DIR,
    init_weights: Annotated[
        Path | None,
        typer.Option(help="With no run to resume, start from these weights (e.g. models/strawfire-yolov8n.pt)."),
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(min=0.01, help="Wall-clock budget: epochs and the LR schedule are re-planned to end in time."),
    ] = None,
    lr0: Annotated[
        float,
        typer.Option(min=1e-5, max=0.1, help="Initial learning rate; lower (0.004) to continue from trained weights."),
    ] = 0.01,
    close_mosaic: Annotated[
        int | None,
        typer.Option(min=0, help="Last epochs on whole images instead of mosaics (default 10)."),
    ] = None,
) -> None:
    """Train the detector offline on CPU (or GPU); resumes the run automatically after an interruption.

    On a new machine (no ``last.pt``), ``--init-weights models/strawfire-yolov8n.pt`` continues from the
    committed model instead of from random weights."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if cache not in {"ram", "disk", "none"}:
        raise typer.BadParameter("use ram, disk or none", param_hint="--cache")
    _console.print(f"checkpoints: {last_checkpoint(project.resolve(), name)} (and best.pt next to it)")
    try:
        run_dir = train(
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
            cache=False if cache == "none" else cache,
            seed=seed,
            config_dir=config_dir,
            init_weights=init_weights,
            hours=hours,
            lr0=lr0,
            close_mosaic=close_mosaic,
        )
    except TrainingSetupError as exc:
        _failed("training failed:", exc)
        raise typer.Exit(code=1) from exc
    _console.print(f"done: {run_dir}")


# ------------------------------------------------------------------------------------------------------------
# Inference, evaluation, export
# ------------------------------------------------------------------------------------------------------------


class BackendChoice(StrEnum):
    """``--backend`` values: ``auto`` = torch on a CUDA GPU, else ONNX Runtime; rules when no model exists."""

    auto = "auto"
    onnx = "onnx"
    torch = "torch"
    rules = "rules"


BackendOption = Annotated[
    BackendChoice, typer.Option(help="onnx (default on CPU), torch (default on a GPU), rules (weights-free).")
]
ModelOption = Annotated[str | None, typer.Option("--model", help="Model name in the manifest (default: its default).")]
ModelsDirOption = Annotated[Path, typer.Option(help="Folder with manifest.json and the weights.")]
ThreadsOption = Annotated[int, typer.Option(min=0, help="CPU threads for inference (0: all cores).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
SecondOpinionFlag = Annotated[
    bool,
    typer.Option(
        "--second-opinion",
        help="Re-weigh the model's fire boxes by the weights-free flame colour rule (double confirm): fewer false "
        "fires on red objects, some real fires missed (docs/detector.md). Needs a trained model.",
    ),
]
#: detector.featureless.DEFAULT_MIN_STRUCTURE, repeated because importing this module loads no numpy (a test
#: keeps the two equal).
MIN_STRUCTURE = 6.0
MinStructureOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Leave out boxes over a quarter of the frame whose content deviates less than this many grey levels "
        "from a plane (a grey or blue screen, an even sky, dense fog: the model's known blind spot); 0 keeps them.",
    ),
]
TilesOption = Annotated[
    str,
    typer.Option(
        help="Also run on COLSxROWS overlapping tiles (e.g. 3x2) for small, distant plumes; auto: by frame size "
        "(none up to 1.5x the model's input, else tiles of at most 3/4 of it, up to 4x4)."
    ),
]


def _parse_tiles(tiles: str) -> tuple[int, int] | None:
    """(cols, rows), or None for ``auto``."""
    if tiles.strip().lower() == "auto":
        return None
    try:
        cols, rows = (int(v) for v in tiles.lower().split("x"))
    except ValueError:
        raise typer.BadParameter("use COLSxROWS, e.g. 3x2", param_hint="--tiles") from None
    if cols < 1 or rows < 1:
        raise typer.BadParameter("use COLSxROWS with both ≥ 1", param_hint="--tiles")
    return cols, rows


def _load(
    backend: BackendChoice,
    model: str | None,
    models_dir: Path,
    threads: int,
    tiles: str = "1x1",
    second_opinion: bool = False,
    min_structure: float = MIN_STRUCTURE,
) -> Detector:
    """The detector (tiled, with the rules' second opinion if asked), or exit 1 with the reason (missing or
    corrupted model, a second opinion without a model) on stderr."""
    from detector.backends import load_detector
    from detector.manifest import ModelError

    grid = _parse_tiles(tiles)
    try:
        detector = load_detector(
            backend.value,
            model=model,
            models_dir=models_dir,
            threads=threads or None,
            second_opinion=second_opinion,
            min_structure=min_structure,
        )
    except ModelError as exc:
        _failed("model error:", exc)
        raise typer.Exit(code=1) from exc
    from detector.tiling import with_tiles

    return with_tiles(detector, grid)


@contextmanager
def _progress(description: str, total: int | None = None) -> Iterator[Callable[[int, int | None], None]]:
    """A transient progress bar on stderr for long work (drawn only on a terminal, so logs and --json stdout stay
    clean); yields the function that sets it to (done, total)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_errors, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def _decode_workers(detector: Detector, threads: int) -> int:
    """Files decoded ahead of ``detector`` on a worker thread when it leaves a core idle (``--threads`` below the
    core count, or a GPU); see ``detector.evaluate.detect_images``."""
    from detector.backends import cuda_available
    from detector.evaluate import decode_workers_for
    from detector.second_opinion import BACKEND_SUFFIX

    backend = detector.info.backend.removesuffix(BACKEND_SUFFIX)
    return decode_workers_for(backend, threads, gpu=backend == "torch" and cuda_available())


def _json_bytes(payload: object) -> bytes:
    """The payload as UTF-8 JSON. A file name that is not UTF-8 (GBK names from a Windows zip reach Python as lone
    surrogates) is written as its \\udcXX escape, valid JSON that reads back to the name Python saw, instead of
    failing the whole output."""
    return (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8", errors="backslashreplace")


def _print_json(payload: object) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(_json_bytes(payload))
    sys.stdout.buffer.flush()


@app.command("info")
def info_command(
    as_json: JsonFlag = False,
    backend: BackendOption = BackendChoice.auto,
    model: ModelOption = None,
    models_dir: ModelsDirOption = DEFAULT_MODELS_DIR,
) -> None:
    """Describe the default model (name, version, classes, input size, operating threshold), checking its file."""
    detector = _load(backend, model, models_dir, threads=1)
    info = detector.info
    payload: dict[str, Any] = {
        "name": info.name,
        "version": info.version,
        "classes": list(info.classes),
        "input_size": info.input_size,
        "operating_threshold": info.operating_threshold,
        "backend": info.backend,
    }
    if info.backend != "rules":
        from detector.manifest import load_manifest, resolve_model

        entry = resolve_model(load_manifest(models_dir), info.name)
        validation = entry.validation
        torch = info.backend == "torch" and entry.torch_file is not None
        payload |= {  # the file this backend loaded and checked: the checkpoint for torch
            "file": entry.torch_file if torch else entry.file,
            "sha256": entry.torch_sha256 if torch else entry.sha256,
            "precision": "ultralytics checkpoint (fp16-stored weights, fp32 compute)" if torch else entry.precision,
            "architecture": entry.architecture,
            "epochs_trained": entry.epochs_trained,
            "date": entry.date,
            "validation": {
                "data": validation.data,
                "map50": validation.map50,
                "ap50": {cls: r.ap50 for cls, r in validation.per_class.items()},
                "fp_image_rate": validation.fp_image_rate,
            },
        }
    if as_json:
        _print_json(payload)
        return
    table = Table(title="detector model", show_header=False)
    for key, value in payload.items():
        table.add_row(key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value))
    _console.print(table)


def _image_files(folder: Path) -> list[Path]:
    """Every visible regular file of a folder, sorted: non-images get a per-file error rather than being skipped."""
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="IMAGES_DIR")
    from detector.evaluate import name_order

    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=name_order)
    files = [p for p in entries if p.is_file()]
    if not files:
        _warn_empty(folder, "no files")
    elif folders := [p.name for p in entries if p.is_dir()]:  # a folder named like an image included
        shown = ", ".join(folders[:10]) + (f" and {len(folders) - 10} more" if len(folders) > 10 else "")
        _errors.print(f"note: subfolders are not searched: {shown}", markup=False, highlight=False)
    return files


def _check_names(names: str) -> None:
    """Refuse ``--names`` that maps no label id to fire or smoke, and say on stderr which ids are ignored: a typo
    ("flame") would otherwise turn every box of that class into background without a word."""
    from detector.evaluate import parse_names

    try:
        ids = parse_names(names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--names") from exc
    items = [n.strip() for n in names.split(",")]
    if all(target is None for target in ids):
        if len(items) == 1 and len(items[0].split()) > 1:  # "Fire default smoke": one name with spaces
            raise typer.BadParameter(
                f"{names!r} is one name: separate the names with commas (e.g. {','.join(items[0].split())})",
                param_hint="--names",
            )
        raise typer.BadParameter(f"{names!r} names neither fire nor smoke", param_hint="--names")
    for label_id, (item, target) in enumerate(zip(items, ids, strict=True)):
        if target is None:
            _errors.print(
                f"note: label id {label_id} ({item!r}) is neither fire nor smoke: its boxes are ignored",
                markup=False,
                highlight=False,
            )


def _warn_empty(folder: Path, what: str) -> None:
    """Say on stderr that ``folder`` gave nothing to work on, naming its subfolders that hold images (the usual
    mistake: the parent of ``images/``). Only subfolders are looked at: nothing is searched recursively."""
    from detector.evaluate import image_files

    inner = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and image_files(d))
    hint = f"; images are in its subfolder(s) {', '.join(inner)}" if inner else ""
    _errors.print(f"warning: {what} in {folder}{hint}", markup=False, highlight=False)


@app.command("predict")
def predict_command(
    images_dir: Annotated[
        Path, typer.Argument(help="Folder of images: every visible file directly in it is tried (not subfolders).")
    ],
    out: Annotated[
        Path, typer.Option("--json", help="Write {image name: [[class, conf, x1, y1, x2, y2], ...]} (- for stdout).")
    ],
    conf: Annotated[float, typer.Option(min=0.0, max=1.0, help="Keep detections with confidence ≥ this.")] = 0.01,
    backend: BackendOption = BackendChoice.auto,
    model: ModelOption = None,
    models_dir: ModelsDirOption = DEFAULT_MODELS_DIR,
    threads: ThreadsOption = 0,
    batch: Annotated[int, typer.Option(min=1, help="Images per network call.")] = 8,
    tiles: TilesOption = "1x1",
    second_opinion: SecondOpinionFlag = False,
    min_structure: MinStructureOption = MIN_STRUCTURE,
) -> None:
    """Detect fire and smoke in every image of a folder; boxes in original-image pixels.

    An unreadable file (empty, truncated, not an image, too large) is reported on stderr and left out of the
    JSON; the other images are still processed.
    """
    from detector.evaluate import detect_images
    from detector.images import ImageLoadError

    to_stdout = str(out) == "-"
    if not to_stdout and out.is_dir():
        raise typer.BadParameter(f"{out} is a folder; give a file name (or - for stdout)", param_hint="--json")
    detector = _load(backend, model, models_dir, threads, tiles, second_opinion, min_structure)
    results: dict[str, list[list[str | float]]] = {}
    failed = 0
    files = _image_files(images_dir)
    found_per_image = detect_images(
        detector, files, batch_size=batch, conf=conf, decode_workers=_decode_workers(detector, threads)
    )
    with _progress("detecting", len(files)) as show:
        for done, (path, found) in enumerate(found_per_image, start=1):
            show(done, len(files))
            if isinstance(found, ImageLoadError):
                failed += 1
                _errors.print(f"skipped {path.name}: {found.reason}", markup=False, highlight=False)
                continue
            results[path.name] = found.above(conf).to_rows()
    if to_stdout:
        _print_json(results)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(_json_bytes(results))
    except OSError as exc:
        _failed("predict failed:", f"cannot write {out}: {exc.strerror or exc}")
        raise typer.Exit(code=1) from exc
    _console.print(
        f"{len(results)} images, {sum(len(v) for v in results.values())} detections ≥ {conf} "
        f"({detector.info.name} {detector.info.version}, {detector.info.backend}); {failed} unreadable → {out}",
        markup=False,
        highlight=False,
    )


@app.command("eval")
def eval_command(
    data_dir: Annotated[Path, typer.Argument(help="Folder with images/ and labels/ (YOLO txt).")],
    names: Annotated[
        str | None,
        typer.Option(
            help="Label id → class by position, comma-separated, e.g. Fire,default,smoke (other names are ignored). "
            "Default: the names of the set's data.yaml, else fire,smoke."
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Use images/SPLIT and labels/SPLIT (e.g. val for a built dataset).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Operating threshold (default: the model's).")
    ] = None,
    iou: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=0.99,
            help="IoU at which a box matches a labelled one (AP, P/R/F1 of boxes); lower it for diffuse smoke.",
        ),
    ] = 0.5,
    missing_labels: Annotated[
        str,
        typer.Option(
            help="Images without a label file: background (negatives, the YOLO convention) or skip (left out)."
        ),
    ] = "background",
    as_json: JsonFlag = False,
    backend: BackendOption = BackendChoice.auto,
    model: ModelOption = None,
    models_dir: ModelsDirOption = DEFAULT_MODELS_DIR,
    threads: ThreadsOption = 0,
    batch: Annotated[int, typer.Option(min=1, help="Images per network call.")] = 8,
    tiles: TilesOption = "1x1",
    second_opinion: SecondOpinionFlag = False,
    min_structure: MinStructureOption = MIN_STRUCTURE,
    by_source: Annotated[
        bool, typer.Option("--by-source", help="Also one row per source set (built datasets: SOURCE__NAME file names).")
    ] = False,
    sequence: Annotated[
        bool,
        typer.Option(
            "--sequence",
            help="The images are one fixed camera's frames in name order: the weights-free rules get each "
            "frame's previous one, so their smoke (motion) rule is measured too.",
        ),
    ] = False,
    errors: Annotated[
        Path | None,
        typer.Option(
            "--errors",
            metavar="DIR",
            help="Also write a review of the errors at the threshold: errors.csv (every wrong or missed box, by "
            "kind), summary.json, images/ with the boxes drawn, pr_curves.png. DIR must be new, empty or an "
            "earlier review.",
        ),
    ] = None,
    errors_max: Annotated[
        int, typer.Option("--errors-max", min=0, help="Images drawn at most (those with the most errors).")
    ] = 500,
) -> None:
    """Per-class AP50, P/R/F1 at the operating threshold, image-level presence, false-positive image rate, speed.

    Exits 2 when images were found but none could be evaluated (every one left out: label ids ``--names`` does not
    cover, unreadable labels or images): a report of nothing is no result."""
    from detector.evaluate import ap_label, detect_folder, names_from_data_yaml, resolve_yolo_folder

    if missing_labels not in {"skip", "background"}:
        raise typer.BadParameter("use skip or background", param_hint="--missing-labels")
    try:
        data_dir, split = resolve_yolo_folder(data_dir, split)
    except (FileNotFoundError, ValueError) as exc:
        _failed("eval failed:", exc)
        raise typer.Exit(code=2) from exc
    if names is None:
        found = names_from_data_yaml(data_dir)
        if found is not None:
            names = ",".join(found[1])
            _errors.print(f"note: class names from {found[0]}: {names}", markup=False, highlight=False)
    names = names or "fire,smoke"
    _check_names(names)
    if errors is not None:
        from detector.review import check_review_folder

        try:
            check_review_folder(errors)  # before the evaluation: a typo must not cost the whole run
        except FileExistsError as exc:
            raise typer.BadParameter(str(exc), param_hint="--errors") from exc
    detector = _load(backend, model, models_dir, threads, tiles, second_opinion, min_structure)
    try:
        with _progress("evaluating") as show:
            run = detect_folder(
                detector,
                data_dir,
                names=names,
                split=split,
                missing_labels="skip" if missing_labels == "skip" else "background",
                batch_size=batch,
                decode_workers=_decode_workers(detector, threads),
                sequence=sequence,
                on_image=show,
            )
    except (FileNotFoundError, ValueError) as exc:
        _failed("eval failed:", exc)
        raise typer.Exit(code=2) from exc
    report = run.report(detector.info.operating_threshold if threshold is None else threshold, iou=iou)
    uncovered = sum("is not covered by --names" in error for error in report.errors)
    if uncovered:
        _errors.print(
            f"warning: {uncovered} of {report.images} images left out: their labels use class ids that --names "
            f"({names}) does not cover; give one name per label id",
            markup=False,
            highlight=False,
        )
    nothing = report.images > 0 and report.evaluated == 0
    sources = run.by_source(report) if by_source else {}
    review = _write_review(run, report, errors, errors_max) if errors is not None else None
    if as_json:
        payload = report.model_dump(mode="json")
        if by_source:
            payload["by_source"] = {name: r.model_dump(mode="json") for name, r in sources.items()}
        if review is not None:
            payload["error_counts"] = review.counts
        _print_json(payload)
        if nothing:
            _failed("eval failed:", f"none of the {report.images} images could be evaluated (see errors)")
            raise typer.Exit(code=2)
        return
    ap = ap_label(report.iou)
    table = Table(title=f"{report.model} {report.version} ({report.backend}) on {report.data} @ {report.threshold:.2f}")
    for column in ("class", ap, "precision", "recall", "F1", "boxes", "img precision", "img recall"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for cls, r in report.per_class.items():
        values = (r.ap50, r.precision, r.recall, r.f1)
        table.add_row(cls, *(_num(v) for v in values), str(r.gt_boxes), _num(r.image_precision), _num(r.image_recall))
    _console.print(table)
    _console.print(
        f"m{ap} {_num(report.map50)}; fire-or-smoke present: precision {_num(report.presence.precision)}, "
        f"recall {_num(report.presence.recall)}; false-positive image rate {_num(report.fp_image_rate)} on "
        f"{report.negatives} images without labels; {_num(report.ms_per_image, 1)} ms/image; "
        f"{report.evaluated} of {report.images} images evaluated ({report.unlabelled} without a label file: "
        f"{'counted as negatives' if report.missing_labels == 'background' else 'skipped'})",
        highlight=False,
    )
    if by_source:
        _console.print(_source_table(sources, report.threshold, ap))
    if review is not None and errors is not None:
        _console.print(_error_table(review, report.threshold))
        _console.print(
            f"review in {errors}: errors.csv, summary.json, {len(review.drawn)} of {review.images_with_errors} "
            "images with errors drawn in images/, pr_curves.png",
            highlight=False,
            markup=False,
        )
    for error in report.errors:
        _errors.print(f"skipped {error}", markup=False, highlight=False)
    if nothing:
        _failed("eval failed:", f"none of the {report.images} images could be evaluated (see above)")
        raise typer.Exit(code=2)


def _write_review(run: FolderRun, report: EvalReport, out: Path, max_images: int) -> ReviewSummary:
    """:func:`detector.review.write_review` with a progress bar; a folder it may not use is a usage error."""
    from detector.review import write_review

    try:
        with _progress("drawing errors") as show:
            review = write_review(run, report, out, max_images=max_images, on_image=show)
    except FileExistsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--errors") from exc
    except OSError as exc:  # a full disk, a read-only folder: say so, without a traceback
        _failed("eval --errors failed:", exc)
        raise typer.Exit(code=1) from exc
    for problem in review.not_drawn:
        _errors.print(f"not drawn: {problem}", markup=False, highlight=False)
    return review


def _error_table(review: ReviewSummary, threshold: float) -> Table:
    from detector.error_analysis import FALSE_POSITIVE_KINDS, MISSED_KINDS

    table = Table(title=f"errors @ {threshold:.2f}: false positives | missed labelled boxes")
    table.add_column("class")
    for kind in FALSE_POSITIVE_KINDS + MISSED_KINDS:
        table.add_column(kind.replace("_", " "), justify="right")
    for name, counts in review.counts.items():
        table.add_row(name, *(str(counts[kind]) for kind in FALSE_POSITIVE_KINDS + MISSED_KINDS))
    return table


def _source_table(sources: dict[str, EvalReport], threshold: float, ap: str) -> Table:
    table = Table(title=f"by source @ {threshold:.2f}")
    for column in ("source", "images", "negatives", f"{ap} fire", f"{ap} smoke", "img recall", "FP image rate"):
        table.add_column(column, justify="left" if column == "source" else "right", no_wrap=column == "source")
    for name, r in sources.items():
        table.add_row(
            name,
            str(r.evaluated),
            str(r.negatives),
            _num(r.per_class["fire"].ap50),
            _num(r.per_class["smoke"].ap50),
            _num(r.presence.recall),
            _num(r.fp_image_rate),
        )
    return table


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


FrameThresholdOption = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="Per-frame confidence (default: half the model's operating threshold)."),
]
WindowOption = Annotated[int, typer.Option(min=1, help="M: frames looked back over.")]
MinHitsOption = Annotated[int, typer.Option(min=1, help="N: supporting frames in the window to confirm.")]
EndAfterOption = Annotated[int, typer.Option(min=1, help="K: frames without support that end an event.")]
MinOverlapOption = Annotated[
    float, typer.Option(min=0.01, max=1.0, help="Intersection over the smaller box to link detections.")
]
MaxBoxFractionOption = Annotated[
    float,
    typer.Option(
        min=0.01, max=1.0, help="Boxes over this share of the frame are not tracked (fog, a grey screen); 1: all."
    ),
]


def _rule(
    frame_threshold: float | None,
    window: int,
    min_hits: int,
    end_after: int,
    min_overlap: float,
    max_box_fraction: float,
) -> Callable[[Detector], SequenceConfig]:
    """The persistence rule of `watch` and `eval-clips` from their options, checked before a model loads; the
    per-frame threshold is the detector's own (half its operating threshold) unless given."""
    from detector.sequence import DEFAULT_SEQUENCE_CONFIG, SequenceConfig

    try:
        config = SequenceConfig(
            frame_threshold=DEFAULT_SEQUENCE_CONFIG.frame_threshold if frame_threshold is None else frame_threshold,
            window=window,
            min_hits=min_hits,
            min_overlap=min_overlap,
            end_after=end_after,
            max_box_fraction=max_box_fraction,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if frame_threshold is not None:
        return lambda _detector: config
    return lambda detector: config.for_model(detector.info.operating_threshold)


@app.command("watch")
def watch_command(
    source: Annotated[Path, typer.Argument(help="Video file, or folder of frames sorted by file name.")],
    as_json: JsonFlag = False,
    frame_threshold: FrameThresholdOption = None,
    window: WindowOption = 8,
    min_hits: MinHitsOption = 4,
    end_after: EndAfterOption = 5,
    min_overlap: MinOverlapOption = 0.2,
    max_box_fraction: MaxBoxFractionOption = 0.25,
    mask: Annotated[
        Path | None, typer.Option(help="JSON ignore polygons [[[x, y], ...], ...] in frame pixels.")
    ] = None,
    backend: BackendOption = BackendChoice.auto,
    model: ModelOption = None,
    models_dir: ModelsDirOption = DEFAULT_MODELS_DIR,
    threads: ThreadsOption = 0,
    tiles: TilesOption = "1x1",
    second_opinion: SecondOpinionFlag = False,
    min_structure: MinStructureOption = MIN_STRUCTURE,
) -> None:
    """Confirm fire/smoke events on one fixed camera position: N of the last M frames with overlapping boxes.

    Whole frames by default. ``--tiles auto`` (or 3x2) also looks at overlapping tiles, which can confirm a small,
    distant plume earlier, but on still look-alikes (clouds, fog, sunlit roofs) seen in tiles the model also finds
    more false smoke and fire: 9 of 97 validation negatives instead of 4 (docs/detector.md, "Tiles").
    """
    from detector.watch import load_mask, watch

    rule = _rule(frame_threshold, window, min_hits, end_after, min_overlap, max_box_fraction)
    try:
        ignore = load_mask(mask) if mask else None
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    detector = _load(backend, model, models_dir, threads, tiles, second_opinion, min_structure)
    config = rule(detector)
    try:
        with _progress("watching") as show:
            result = watch(detector, source, config=config, mask=ignore, on_frame=show)
    except (FileNotFoundError, ValueError) as exc:
        _failed("watch failed:", exc)
        raise typer.Exit(code=2) from exc
    if not result.frames:
        if source.is_dir():
            _warn_empty(source, "no frames (image files)")
        else:
            _errors.print(f"warning: no frame of {source} could be read", markup=False, highlight=False)
    if as_json:
        _print_json(result.to_json())
        return
    _console.print(f"{result.frames} frames, {len(result.events)} confirmed event(s)", highlight=False)
    for event in result.event_dicts():
        _console.print(
            f"  {event['class']}: start {event['start_frame']}, confirmed {event['confirm_frame']}, "
            f"end {event['end_frame']}, box {event['box']}",
            highlight=False,
        )
    for error in result.errors:
        _errors.print(error, markup=False, highlight=False)
    for note in result.notes:
        _errors.print(f"note: {note}", markup=False, highlight=False)


@app.command("eval-clips")
def eval_clips_command(
    clips: Annotated[
        Path,
        typer.Argument(
            help="CSV clip list: clip,ignition_frame,minutes_per_frame,fire_region,mask (paths relative to it; "
            "ignition_frame empty for a clip without fire; see detector/clips.py)."
        ),
    ],
    within: Annotated[float, typer.Option(min=0.0, help="Detection deadline in minutes after ignition.")] = 10.0,
    as_json: JsonFlag = False,
    frame_threshold: FrameThresholdOption = None,
    window: WindowOption = 8,
    min_hits: MinHitsOption = 4,
    end_after: EndAfterOption = 5,
    min_overlap: MinOverlapOption = 0.2,
    max_box_fraction: MaxBoxFractionOption = 0.25,
    backend: BackendOption = BackendChoice.auto,
    model: ModelOption = None,
    models_dir: ModelsDirOption = DEFAULT_MODELS_DIR,
    threads: ThreadsOption = 0,
    tiles: TilesOption = "1x1",
    second_opinion: SecondOpinionFlag = False,
    min_structure: MinStructureOption = MIN_STRUCTURE,
) -> None:
    """Tower clips through sequence verification (as `watch` runs it), scored per clip: false events before
    ignition or on clips without fire, minutes from ignition to the fire's first confirmation, and how many fires
    were confirmed within `--within` minutes. Exit 1 when a clip could not be read (it is in no figure)."""
    from detector.clips import ClipsSummary, evaluate_clips, read_clip_list

    rule = _rule(frame_threshold, window, min_hits, end_after, min_overlap, max_box_fraction)
    try:
        specs = read_clip_list(clips)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="CLIPS") from exc
    detector = _load(backend, model, models_dir, threads, tiles, second_opinion, min_structure)
    with _progress("clips", len(specs)) as show:
        reports = evaluate_clips(detector, specs, config=rule(detector), on_clip=show)
    summary = ClipsSummary.of(reports, within)
    info = detector.info
    for report in reports:
        for error in report.errors:
            _errors.print(f"{report.clip}: {error}", markup=False, highlight=False)
    if as_json:
        payload = {"model": info.name, "version": info.version, "backend": info.backend}
        _print_json(payload | {"summary": asdict(summary), "clips": [r.to_json() for r in reports]})
    else:
        _clips_table(clips, info, reports, summary)
    if summary.unreadable:
        raise typer.Exit(code=1)


def _clips_table(clips: Path, info: ModelInfo, reports: list[ClipReport], summary: ClipsSummary) -> None:
    table = Table(title=f"{info.name} {info.version} ({info.backend}) on {clips}")
    for column in ("clip", "frames", "ignition", "confirmed", "min after", "false before", "false after"):
        table.add_column(column, justify="left" if column == "clip" else "right")
    for report in reports:
        score = report.score
        table.add_row(
            report.clip + ("" if report.readable else " (unreadable)"),
            str(report.frames),
            "–" if report.ignition_frame is None else str(report.ignition_frame),
            "–" if score.detection_frame is None else str(score.detection_frame),
            _num(report.minutes_to_detection, 1),
            str(score.false_before_ignition),
            str(score.false_after_ignition),
        )
    _console.print(table)
    _console.print(
        f"fires confirmed {summary.detected} of {summary.fire_clips} ({summary.detected_within} within "
        f"{summary.within_minutes:g} min; median {_num(summary.median_minutes_to_detection, 1)} min); clips without "
        f"fire with an event {summary.clips_without_fire_with_event} of {summary.clips_without_fire}; fire clips "
        f"with a false event {summary.fire_clips_with_false_event}"
        + (f"; {summary.unreadable} clip(s) unreadable, in no figure" if summary.unreadable else ""),
        highlight=False,
    )


@app.command("export")
def export_command(
    weights: Annotated[Path, typer.Option(help="Training checkpoint (copied before use).")] = Path(
        "var/train/strawfire-v2/weights/best.pt"
    ),
    name: Annotated[str, typer.Option(help="Model name in the manifest.")] = "strawfire-yolov8n",
    version: Annotated[str | None, typer.Option(help="Version (default: YYYYMMDD-eEPOCHS).")] = None,
    dataset: Annotated[Path, typer.Option(help="Built dataset (for the val split and licences).")] = DEFAULT_OUT_DIR,
    split: Annotated[str, typer.Option(help="Held-out split to evaluate on.")] = "val",
    quantize: Annotated[bool, typer.Option(help="Try an int8 variant; kept only if it keeps accuracy.")] = True,
    int8_weight_bits: Annotated[
        int,
        typer.Option(
            min=7,
            max=8,
            help="The int8 variant's weight range: 7 (the stem's 8 bits on 7-bit pixels), exact on x86 CPUs "
            "without VNNI too, or 8 (full range), which such CPUs replace by the fp32 model "
            "(detector.export.INT8_WEIGHT_BITS).",
        ),
    ] = 7,
    tower_clip: Annotated[
        Path | None, typer.Option(help="Tower clip for the sequence check (skipped when absent).")
    ] = None,
    tower_mask: Annotated[
        Path | None, typer.Option(help="That camera position's ignore mask (default: the one in tests/detector/data).")
    ] = None,
    models_dir: ModelsDirOption = DEFAULT_MODELS_DIR,
    threads: ThreadsOption = 0,
) -> None:
    """Export a checkpoint to ONNX (+ torch weights) in models/, evaluate it, update manifest.json and README.md."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    from detector.export import DEFAULT_TOWER_CLIP, DEFAULT_TOWER_MASK, export_model

    try:
        with _errors.status("exporting: ONNX, evaluation on the held-out split, int8 variant, tower clip"):
            result = export_model(
                weights,
                name=name,
                version=version,
                models_dir=models_dir,
                dataset=dataset,
                split=split,
                quantize=quantize,
                int8_weight_bits=int8_weight_bits,
                threads=threads or None,
                tower_clip=tower_clip or DEFAULT_TOWER_CLIP,
                tower_mask=tower_mask or DEFAULT_TOWER_MASK,
            )
    except (FileNotFoundError, ValueError) as exc:
        _failed("export failed:", exc)
        raise typer.Exit(code=1) from exc
    report = result.entry.validation
    aps = ", ".join(f"{cls} {_num(r.ap50)}" for cls, r in report.per_class.items())
    _console.print(
        f"{result.entry.name} {result.entry.version}: AP50 {aps}; threshold {result.entry.operating_threshold:.2f}; "
        f"FP image rate {_num(report.fp_image_rate)}; int8: {result.quantization_note}",
        highlight=False,
    )
    _console.print(f"wrote {result.manifest_path} and {result.card_path}", highlight=False)


if __name__ == "__main__":  # `python -m detector.cli ...` until the root CLI mounts this app
    app()
