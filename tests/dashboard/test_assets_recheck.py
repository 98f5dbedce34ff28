"""Rules the dashboard's files must keep, found in the second audit (no browser): every score line's rule and every
source detail the service records has words in both languages, so no raw code reaches the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from service.stats.records import Source
from tests.dashboard.test_assets import dictionaries, js, js_list

REPO = Path(__file__).resolve().parents[2]


def test_every_rule_a_score_line_can_name_has_words() -> None:
    """The scores page showed "late_acknowledge", "fire_point:satellite", "density" to the reader."""
    scoring = (REPO / "service" / "stats" / "scoring.py").read_text(encoding="utf-8")
    emitted = set(re.findall(r'ScoreItem\(\s*(?:point\.id|None),\s*f?"(\w+)', scoring))
    assert {"late_acknowledge", "density", "fire_point"} <= emitted  # the pattern still reads the module
    known = set(js_list(js("page-stats.js"), "RULES")) | {"fire_point"}
    assert emitted - known == set()
    keys = dictionaries()
    for lang in ("zh", "en"):
        assert {f"rule.{r}" for r in emitted} - keys[lang] == set(), lang
        assert {f"kind.{s.value}" for s in Source} - keys[lang] == set(), lang


def test_every_source_detail_the_service_records_has_a_label() -> None:
    """Observation details were listed by their field names ("scan_km", "bright_mir_k", "camera_id")."""
    listed = js_list(js("page-incident.js"), "DETAIL_KEYS")
    written = set()
    for module in ("service/incidents/sources.py", "service/flows.py"):
        text = (REPO / module).read_text(encoding="utf-8")
        # The keys of the details dictionaries these modules build ("key": value, inside details = {...}).
        pattern = r"(?:details|base)(?:: dict\[str, Any\])? \|?= (?:base \| )?\{(.*?)\n\s*\}"
        for block in re.findall(pattern, text, re.DOTALL):
            written |= set(re.findall(r'^\s*"(\w+)":', block, re.MULTILINE))
        for block in re.findall(r"details=\{(.*?)\n\s*\}", text, re.DOTALL):
            written |= set(re.findall(r'^\s*"(\w+)":', block, re.MULTILINE))
        written |= set(re.findall(r'details\["(\w+)"\] =', text))
    # The patterns still read the modules:
    assert {"scan_km", "satellite", "boxes", "camera_id", "crossing_angle_deg", "screening"} <= written
    assert written - set(listed) == set()
    keys = dictionaries()
    for lang in ("zh", "en"):
        assert {f"detail.{k}" for k in listed} - keys[lang] == set(), lang
