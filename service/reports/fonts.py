"""A font for Chinese text in charts, found offline, and what to do without one.

matplotlib ships DejaVu Sans, which has no Chinese glyphs. A CJK font is looked for among the fonts matplotlib
knows and in the usual system folders (Debian's ``fonts-wqy-microhei``, ``fonts-wqy-zenhei``,
``fonts-noto-cjk``, Adobe Source Han Sans); nothing is downloaded. Text is drawn with DejaVu Sans first and the
CJK font as fallback for the glyphs DejaVu lacks.

Without a CJK font, reports still build: :class:`Labels` replaces Chinese text with the unit codes and English
headings, and a warning says which package to install.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from matplotlib import font_manager

log = logging.getLogger("strawfire.reports")

# Preferred families, best first (Simplified Chinese faces before the rest).
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans SC",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "SimHei",
    "Microsoft YaHei",
)
_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")
_FILE_PATTERNS = ("NotoSansCJK*", "SourceHanSans*", "wqy-*", "DroidSansFallback*", "uming*", "simhei*", "msyh*")
INSTALL_HINT = "install a CJK font, e.g. the Debian package fonts-wqy-microhei (or fonts-noto-cjk)"


def _known() -> dict[str, str]:
    return {f.name: f.fname for f in font_manager.fontManager.ttflist}


@lru_cache(maxsize=1)
def cjk_family() -> str | None:
    """The CJK font family to fall back to, or None (logged once, with the package to install)."""
    known = _known()
    found = next((family for family in CJK_FAMILIES if family in known), None)
    if found is None:
        # matplotlib's font cache predates fonts installed later: register the usual files explicitly.
        for folder in _FONT_DIRS:
            if not folder.is_dir():
                continue
            for pattern in _FILE_PATTERNS:
                for path in sorted(folder.rglob(pattern)):
                    if path.suffix.lower() in (".ttf", ".ttc", ".otf"):
                        try:
                            font_manager.fontManager.addfont(str(path))
                        except (OSError, RuntimeError, ValueError):
                            log.debug("cannot load font %s", path)
        known = _known()
        found = next((family for family in CJK_FAMILIES if family in known), None)
    if found is None:
        log.warning("no CJK font found: charts show unit codes and English text only; %s", INSTALL_HINT)
    return found


def _needs_cjk(text: str) -> bool:
    # DejaVu Sans covers Latin, Greek, Cyrillic and the symbols used here; CJK and full-width forms start here.
    return any(ord(ch) >= 0x2E80 for ch in text)


@dataclass(frozen=True, slots=True)
class Labels:
    """Chart text for the fonts at hand: bilingual with a CJK font, English and codes without."""

    cjk: str | None  # the CJK fallback family, or None

    @property
    def families(self) -> list[str]:
        """``font.family`` for matplotlib: DejaVu Sans first, the CJK font for the glyphs it lacks."""
        return ["DejaVu Sans", self.cjk] if self.cjk else ["DejaVu Sans"]

    def t(self, zh: str, en: str) -> str:
        """A heading: "中文 English" with a CJK font, else English."""
        return f"{zh} {en}" if self.cjk else en

    def t2(self, zh: str, en: str) -> str:
        """A column heading on two lines: Chinese over English with a CJK font, else English."""
        return f"{zh}\n{en}" if self.cjk else en

    def unit(self, name: str | None, code: str | None) -> str:
        """A unit as people read it: its name (its code without a CJK font or a name)."""
        if name and (self.cjk or not _needs_cjk(name)):
            return name
        return code or "—"

    def drawable(self, value: str) -> str:
        """Text that must be shown even in part (a rules version, a file name): as is with a CJK font, else with
        each character DejaVu Sans lacks shown as "?" rather than drawn as an empty box."""
        if self.cjk:
            return value
        return "".join("?" if _needs_cjk(ch) else ch for ch in value)

    def text(self, value: str | None, fallback: str = "—") -> str:
        """Free text (grades, sanctions, rule titles): as is, or ``fallback`` when it cannot be drawn."""
        if not value:
            return fallback
        return value if self.cjk or not _needs_cjk(value) else fallback
