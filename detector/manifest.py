"""``models/manifest.json``: which weights exist, what they are, and proof that the file on disk is that file.

Why a manifest: a detector that silently loads a truncated or swapped weights file raises wrong alerts with no
trace. Every model is loaded through its manifest entry, whose sha256 is checked before the file is used; the
entry also carries what an operator or auditor needs to trust a finding (input size, classes, operating threshold,
training sets with their licences, validation metrics as measured by ``strawfire detector eval``, date).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from detector.evaluate import EvalReport
from detector.paths import DEFAULT_MODELS_DIR

__all__ = [
    "DEFAULT_MODELS_DIR",
    "MANIFEST_NAME",
    "Manifest",
    "ModelEntry",
    "ModelError",
    "TrainingSet",
    "load_manifest",
    "resolve_model",
    "sha256_file",
    "verified_file",
    "write_manifest",
]

MANIFEST_NAME: Final[str] = "manifest.json"


class ModelError(RuntimeError):
    """A model cannot be loaded: no manifest, unknown name, missing or corrupted file. The message says which."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingSet(_Strict):
    """One source of the training set, with the licence its images and boxes come under."""

    source: str
    licence: str
    attribution: str
    url: str
    images: dict[str, int]  # {"train": n, "val": m}


class ModelEntry(_Strict):
    """One deployable model."""

    name: str
    version: str
    file: str  # relative to the models folder
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: Literal["onnx"] = "onnx"
    precision: str  # e.g. "fp32 (fp16-stored weights)" or "int8 static QDQ"
    #: An int8 model's weight range in bits: 7 when its weights lie in [-64, 64] (the stem's keep 8 bits and read
    #: 7-bit pixels), so that no pair of uint8 × int8 products exceeds 32,767 and the 16-bit sums of ONNX Runtime's
    #: kernels on x86 CPUs without VNNI (:func:`detector.cpu.int8_kernels_exact`) never saturate; 8 (full range)
    #: is exact only with VNNI. None for float models, and for int8 exports older than the field (full range).
    #: See :data:`detector.export.INT8_WEIGHT_BITS`.
    weight_bits: Literal[7, 8] | None = None
    #: The longer side images are letterboxed to: a whole number of the network's 32 px strides, and no larger
    #: than any deployed YOLO input (a typo of 100000 would otherwise allocate tens of GB per image).
    input_size: int = Field(strict=True, ge=32, le=4096, multiple_of=32)
    #: The network takes any height/width (multiples of 32) up to ``input_size``, so images are letterboxed into
    #: the smallest canvas that holds them rather than the full square (both backends do the same). False for
    #: models exported with a fixed square input.
    trimmed_input: bool = False
    classes: tuple[str, ...] = Field(min_length=1)
    operating_threshold: float = Field(ge=0.0, le=1.0)
    architecture: str
    epochs_trained: int = Field(ge=0)
    #: The same weights as a stripped ultralytics checkpoint, for the torch backend (GPU). Optional.
    torch_file: str | None = None
    torch_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    training_dataset: str
    training_sets: tuple[TrainingSet, ...]
    validation: EvalReport
    date: str  # ISO 8601 date of the export
    notes: str = ""

    @property
    def exact_without_vnni(self) -> bool:
        """Whether this model's int8 sums are exact on x86 CPUs without VNNI too (7-bit weights); a float model's
        question does not arise, and it answers False."""
        return self.weight_bits == 7

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(classes)) != len(classes) or not all(name.strip() for name in classes):
            raise ValueError(f"classes must be distinct, non-empty names, got {list(classes)}")
        return classes

    @field_validator("date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.isoformat() != value:  # fromisoformat also takes 20261130 and week dates
            raise ValueError(f"date must be an ISO 8601 date (YYYY-MM-DD), got {value!r}")
        return value


class Manifest(_Strict):
    """The whole ``manifest.json``."""

    schema_version: Literal[1] = 1
    default: str | None = None
    #: What ONNX Runtime runs when no model is named: the int8 variant of the default when one was kept.
    cpu_default: str | None = None
    models: tuple[ModelEntry, ...] = ()

    @model_validator(mode="after")
    def _distinct_names(self) -> Manifest:
        names = [entry.name for entry in self.models]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"model names must be distinct; repeated: {', '.join(repeated)}")
        return self


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(models_dir: Path = DEFAULT_MODELS_DIR) -> Manifest:
    """Read and validate ``models_dir/manifest.json``; :class:`ModelError` if it is missing or malformed."""
    path = models_dir / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{path}: no model manifest (export one with `strawfire detector export`)") from None
    except OSError as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        raise ModelError(f"{path}: invalid manifest: {exc}") from exc


def resolve_model(manifest: Manifest, name: str | None = None) -> ModelEntry:
    """The entry called ``name``, or the manifest's default (else its only model)."""
    wanted = name or manifest.default
    if wanted is None:
        if len(manifest.models) == 1:
            return manifest.models[0]
        raise ModelError(f"the manifest lists {len(manifest.models)} models and names no default; pick one by name")
    for entry in manifest.models:
        if entry.name == wanted:
            return entry
    known = ", ".join(entry.name for entry in manifest.models) or "none"
    raise ModelError(f"model {wanted!r} is not in the manifest (known: {known})")


def verified_file(models_dir: Path, entry: ModelEntry, kind: Literal["onnx", "torch"] = "onnx") -> Path:
    """The path of an entry's weights after checking that the file exists and its sha256 matches the manifest."""
    relative, expected = (entry.file, entry.sha256) if kind == "onnx" else (entry.torch_file, entry.torch_sha256)
    if relative is None or expected is None:
        raise ModelError(f"model {entry.name} has no {kind} weights in the manifest")
    path = models_dir / relative
    if not path.is_file():
        raise ModelError(f"{path}: weights file of model {entry.name} {entry.version} is missing")
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"{path}: weights file is unreadable ({exc})") from exc
    if actual != expected:
        raise ModelError(
            f"{path}: sha256 {actual[:12]}… does not match the manifest ({expected[:12]}…): the file is corrupted "
            "or was replaced without re-exporting"
        )
    return path


def write_manifest(manifest: Manifest, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """Write the manifest atomically (a reader never sees half a file), stable key order, 2-space indent."""
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / MANIFEST_NAME
    payload = json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".manifest.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    Path(tmp).chmod(0o644)  # mkstemp creates 0600; the manifest is a normal repository file
    Path(tmp).replace(path)
    return path
