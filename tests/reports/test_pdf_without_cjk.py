"""Without a CJK font the PDF draws no Chinese glyph (they would be empty boxes): rule versions and file names too."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from service.reports.data import ReportData
from service.reports.fonts import Labels
from service.reports.pdf import write_pdf


def test_a_chinese_rules_version_and_file_name_without_a_cjk_font(november: ReportData) -> None:
    version = november.selection.version
    chinese = replace(
        version,
        rules=version.rules.model_copy(update={"version": "长春市2025版"}),
        path=Path("长春市秸秆禁烧考核.toml"),
    )
    data = replace(november, selection=replace(november.selection, version=chinese))
    buffer = io.BytesIO()
    # warnings are errors in this suite: a Chinese glyph drawn with DejaVu alone ("Glyph … missing") fails here
    write_pdf(data, buffer, labels=Labels(None))
    assert buffer.getvalue().startswith(b"%PDF-")
