"""The details a patrol's report records have words in both languages on the incident page (no raw field names),
and the report form's strings exist in both (no browser)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.dashboard.test_assets import dictionaries, js, js_list

REPO = Path(__file__).resolve().parents[2]


def test_every_detail_a_patrol_report_records_has_a_label() -> None:
    text = (REPO / "service" / "incidents" / "patrol_reports.py").read_text(encoding="utf-8")
    block = re.search(r"details: dict\[str, Any\] = \{(.*?)\n\s*\}", text, re.DOTALL)
    assert block is not None
    written = set(re.findall(r'^\s*"(\w+)":', block[1], re.MULTILINE)) | set(re.findall(r'details\["(\w+)"\] =', text))
    assert {"reporter", "reporter_unit", "accuracy_m", "radius_m", "note", "observed_at_claimed"} <= written
    listed = set(js_list(js("page-incident.js"), "DETAIL_KEYS"))
    assert written - listed == set()
    keys = dictionaries()
    for lang in ("zh", "en"):
        assert {f"detail.{k}" for k in written} - keys[lang] == set(), lang


def test_the_report_form_speaks_both_languages() -> None:
    used = set(re.findall(r'\bt\("(report\.[\w.]+)"', js("page-queue.js")))
    assert {"report.open", "report.submit", "report.manual", "report.done_own", "report.done_other"} <= used
    keys = dictionaries()
    for lang in ("zh", "en"):
        assert used - keys[lang] == set(), lang
        assert "kind.patrol" in keys[lang]
