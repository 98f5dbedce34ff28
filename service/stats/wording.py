"""English counts with the noun in the right number ("1 fire point", "2 fire points") for the statistics' and the
reports' English text. Chinese has no plural, so the Chinese text needs none of this."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``count`` and the noun: singular for exactly one, else ``plural`` (default: the singular with an "s")."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
