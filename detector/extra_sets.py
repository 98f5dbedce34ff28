"""Labelled folders of the deployment's own joining the training set: ``dataset build --extra-sets FILE``.

Why: the public sets behind the model are CCTV clips, foreign drone footage and Californian towers; a
deployment's own tower and drone frames, labelled after an error review (``strawfire detector eval --errors``),
are what lifts the model where it is used. Each set keeps its provenance and licence in the dataset manifest,
and from there on the model card, like the built-in sources (:mod:`detector.dataset`). Apart from
:mod:`detector.dataset` because of pydantic: the CLI module loads the dataset module at start and must stay light.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detector.dataset import (
    CLASS_NAMES,
    IMAGE_SUFFIXES,
    SOURCE_SEPARATOR,
    SOURCES,
    ClassName,
    DatasetError,
    SourceInfo,
)

__all__ = ["ExtraSet", "load_extra_sets"]


class ExtraSet(BaseModel):
    """A labelled YOLO folder of the deployment's own (``dataset build --extra-sets FILE``): its tower and drone
    frames, labelled after an error review (``eval --errors``), are what lifts the model where it is used.

    One ``[[set]]`` table of the TOML file::

        [[set]]
        name = "changchun_towers"            # the images' source prefix: a-z, 0-9, _; not a built-in source
        path = "labelled/towers"              # images/ + labels/ (YOLO txt), relative to the TOML file
        names = ["smoke", "fire"]             # label id -> class by position; other names drop the box
        licence = "Changchun EEB, internal use"
        attribution = "Changchun tower network, labelled 2026-11"
        url = ""                              # optional
        split = "sequence"                    # or "photo", or "train" (see the dataset manifest's split_rules)
        note = ""                             # optional

    Every image needs a label file (an empty one for a negative), as for the built-in sets: an image that was
    never labelled must not teach "nothing here". Extra sets are not tiled.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=40)
    path: Path
    names: tuple[str, ...] = Field(min_length=1)
    licence: str = Field(min_length=1)
    attribution: str = Field(min_length=1)
    url: str = ""
    split: Literal["sequence", "photo", "train"] = "sequence"
    note: str = ""

    @field_validator("name")
    @classmethod
    def _not_built_in(cls, name: str) -> str:
        if name in SOURCES:
            raise ValueError(f"{name!r} is a built-in source")
        if SOURCE_SEPARATOR in name:
            raise ValueError(f"no {SOURCE_SEPARATOR!r} in a set's name")
        return name

    @field_validator("names")
    @classmethod
    def _names_give_a_class(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name.strip() for name in names):
            raise ValueError("an empty class name")
        if not {name.strip().lower() for name in names} & set(CLASS_NAMES):
            raise ValueError(f"none of {list(names)} is fire or smoke: every box would be dropped")
        return names

    @property
    def class_map(self) -> dict[int, ClassName | None]:
        """Label id -> project class (None: the box is dropped)."""
        lookup: dict[str, ClassName] = {name: name for name in CLASS_NAMES}
        return {index: lookup.get(name.strip().lower()) for index, name in enumerate(self.names)}

    def info(self) -> SourceInfo:
        """Its provenance, as the built-in sources record theirs."""
        return SourceInfo(
            self.name, str(self.path), self.licence, self.attribution, self.url, self.split, self.note or "extra set"
        )


def load_extra_sets(spec: Path) -> tuple[ExtraSet, ...]:
    """The ``[[set]]`` tables of a TOML file (:class:`ExtraSet`), paths resolved against the file's folder; a
    :class:`DatasetError` names the file, the set and the field of anything wrong."""
    try:
        data = tomllib.loads(spec.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{spec}: cannot read the extra sets ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{spec}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - {"set"})
    if unknown or not isinstance(data.get("set"), list) or not data["set"]:
        raise DatasetError(f"{spec}: expected [[set]] tables and nothing else (found {unknown or 'no set'})")
    sets: list[ExtraSet] = []
    for number, table in enumerate(data["set"], start=1):
        try:
            extra = ExtraSet.model_validate(table)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'set'}: {error['msg']}" for error in exc.errors()
            )
            raise DatasetError(f"{spec}: set {number}: {problems}") from None
        folder = extra.path if extra.path.is_absolute() else (spec.parent / extra.path)
        images = folder / "images"
        where = f"{spec}: set {number} ({extra.name})"
        if not images.is_dir():
            raise DatasetError(f"{where}: no images folder {images}")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") for p in images.iterdir()):
            splits = sorted(p.name for p in images.iterdir() if p.is_dir())
            raise DatasetError(
                f"{where}: no images directly in {images}"
                + (
                    f" (it holds folders {', '.join(splits)}: an extra set is one images/ + labels/ pair; merge "
                    "the splits of a labelling tool's export, the dataset makes its own)"
                    if splits
                    else ""
                )
            )
        if extra.name in {s.name for s in sets}:
            raise DatasetError(f"{spec}: set {number}: the name {extra.name!r} is used twice")
        sets.append(extra.model_copy(update={"path": folder.resolve()}))
    return tuple(sets)
