"""Words the statistics and the reports write: English counts with the noun in the right number ("1 fire point",
"2 fire points"), and :class:`Note`, a line of server text that a reader's dashboard can say in its own language.

Chinese has no plural, so the Chinese text needs no :func:`counted`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``count`` and the noun: singular for exactly one, else ``plural`` (default: the singular with an "s")."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


class NoteCode(StrEnum):
    """What a :class:`Note` says, as a stable code the dashboard translates (``scores.note.<code>`` in i18n.js).

    A code's parameters are fixed: a dashboard reads them by name. A new kind of note is a new code (an older
    dashboard shows its English text); a note's meaning never changes under the same code.
    """

    # Why a score line weighs more than its rule's weight, or where a line's figure comes from:
    LARGE_AREA = "large_area"  # burned_m2, limit_m2, factor
    FAILED_VERIFICATION = "failed_verification"  # factor
    REPEAT_AT_SITE = "repeat_at_site"  # incident (the earlier fire's id), factor
    NOT_FED_BACK_WITHIN = "not_fed_back_within"  # hours
    DENSITY = "density"  # violations, basis_ha, basis ("cropland" or "area": no cropland figure was imported)
    # Warnings about a score board:
    # version, file, effective_from, scored_with, first_day (1: the version scored with is in force on the period's
    # first day; 0: the first one in force during it); with uncovered (day spans) and uncovered_days when no
    # version was in force on some days of the period
    RULES_CHANGED = "rules_changed"
    LEVEL_FALLBACK = "level_fallback"  # preferred, chosen (region levels: "township", "county")
    UNSCORED = "unscored"  # n (fire points), level
    # n (fire points still open at as_of), units (how many units they are in), as_of (ISO 8601, UTC)
    PROVISIONAL = "provisional"


NoteParam = str | int | float


@dataclass(frozen=True, slots=True)
class Note:
    """A line of server-written text: its :class:`NoteCode`, the figures and names it is made of, and the English
    ``text`` (for logs, the spreadsheets and the CLI, and the dashboard's words for a code it does not know)."""

    code: NoteCode
    text: str
    params: Mapping[str, NoteParam] = field(default_factory=dict)
