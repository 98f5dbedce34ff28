"""Which units and fire points an area code covers (pure).

``--area``/``area=`` takes any unit code. A unit or an incident's township/county is *in* the area when

1. its code is the area code; or
2. the area is an ancestor through the imported units' ``parent_code`` chain (a township → its county → its
   city …); or
3. both codes are numeric (GB/T 2260 and its township/village extensions) and the code starts with the area's
   *code prefix*: for a six-digit administrative division code the trailing ``00`` pairs are dropped, so
   ``220100`` (长春市) covers every ``2201…`` county and township and ``220000`` (吉林省) every ``22…``; longer
   codes (townships ``220102001``) are their own prefix. Non-numeric codes are never matched by prefix: ``C1``
   is not the parent of ``C10`` (a supervisor of one county would otherwise read the other's scores).

Rule 3 lets a prefecture code select its counties even when the prefecture itself was never imported (Changchun's
boundary file holds its 11 counties, not the city); rule 2 covers codes that do not follow GB/T 2260 (the DEMO
units).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from service.stats.records import Unit

_DIVISION = re.compile(r"^\d{6}$")
_NUMERIC = re.compile(r"[0-9]+")


def code_prefix(code: str) -> str:
    """The prefix every code under ``code`` starts with (see the module docstring)."""
    if not _DIVISION.match(code):
        return code
    prefix = code
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix


@dataclass(frozen=True, slots=True)
class Area:
    """An area code and the parent links to decide membership; ``code`` None is everywhere."""

    code: str | None
    parents: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, code: str | None, units: Iterable[Unit]) -> Area:
        """The area ``code`` with the parent links of ``units``."""
        return cls(code, {u.code: u.parent_code for u in units})

    def contains(self, code: str | None) -> bool:
        """Whether a unit code lies in the area (None, an unassigned fire, only in "everywhere")."""
        if self.code is None:
            return True
        if code is None:
            return False
        if code == self.code:
            return True
        # Only numeric codes nest by prefix; for any other scheme the parent links alone say what is inside.
        if _NUMERIC.fullmatch(self.code) and _NUMERIC.fullmatch(code) and code.startswith(code_prefix(self.code)):
            return True
        seen = {code}
        parent = self.parents.get(code)
        while parent is not None and parent not in seen:
            if parent == self.code:
                return True
            seen.add(parent)
            parent = self.parents.get(parent)
        return False

    def contains_any(self, *codes: str | None) -> bool:
        """Whether any of the codes (a fire's township and county) lies in the area."""
        return any(self.contains(c) for c in codes)
