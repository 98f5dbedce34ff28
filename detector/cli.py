"""``strawfire detector ...``: build the training set and train the fire/smoke detector.

A Typer sub-app mounted by the root CLI. ``detector.dataset`` and ``detector.train`` import only the standard
library at module level (torch and ultralytics are imported inside :func:`detector.train.train`), so loading
this module keeps ``strawfire --help`` fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from detector.dataset import (
    DEFAULT_MIN_SEQUENCE_FRAMES,
    DEFAULT_OUT_DIR,
    DEFAULT_SOURCE_ROOT,
    DEFAULT_VAL_FRACTION,
    DatasetError,
    build_dataset,
)
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

__all__ = ["app"]

app = typer.Typer(
    name="detector",
    help="Fire/smoke detector for camera and drone frames: dataset and training.",
    no_args_is_help=True,
)
dataset_app = typer.Typer(help="Assemble the YOLO training set from ../shared/data.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")

_console = Console()
_errors = Console(stderr=True)


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
) -> None:
    """Write symlinked images, remapped labels (0 fire, 1 smoke), data.yaml and manifest.json."""
    try:
        manifest = build_dataset(source_root, out, val_fraction=val_fraction, min_sequence_frames=min_sequence_frames)
    except DatasetError as exc:
        _errors.print(f"[red]dataset build failed:[/red] {exc}")
        raise typer.Exit(code=1) from exc

    table = Table(title=f"{out} (train / val)")
    for column in ("source", "images", "background", "fire boxes", "smoke boxes", "dropped", "excluded"):
        table.add_column(column, justify="left" if column == "source" else "right")
    sources = cast(dict[str, dict[str, Any]], manifest["sources"])
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


def _pair(counts: dict[str, int]) -> str:
    """Format a {"train": n, "val": m} count as "n / m"."""
    return f"{counts['train']} / {counts['val']}"


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Option(help="data.yaml from `detector dataset build`.")] = DEFAULT_DATA,
    model: Annotated[str, typer.Option(help="Architecture yaml, e.g. yolov8n.yaml or yolo11n.yaml.")] = (DEFAULT_MODEL),
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
) -> None:
    """Train the detector offline on CPU (or GPU); resumes the run automatically after an interruption."""
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
        )
    except TrainingSetupError as exc:
        _errors.print(f"[red]training failed:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    _console.print(f"done: {run_dir}")


if __name__ == "__main__":  # `python -m detector.cli ...` until the root CLI mounts this app
    app()
