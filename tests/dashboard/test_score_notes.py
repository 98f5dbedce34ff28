"""The scores page says the service's notes and warnings in its reader's language, from their codes: the dashboard's
own page-stats.js and i18n.js run under Node on one note of every code the service writes (made by the service's
code, so the figures' names are the ones it sends), in both languages; an unknown code falls back to the English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from service.stats.schemas import NoteOut
from service.stats.wording import NoteCode
from tests.dashboard.test_assets import code_of, js
from tests.stats.test_score_notes import every_note

RUNNER = """
const i18n = await import(`${STATIC_URL}/i18n.js`);
const stats = await import(`${STATIC_URL}/page-stats.js`);
const out = {};
for (const code of ["zh-CN", "en"]) {
  i18n.setLang(code);
  out[code] = INPUT.map((note) => stats.noteText(note));
}
console.log(JSON.stringify(out));
"""


def test_every_note_the_service_writes_is_said_in_both_languages(in_node: Callable[[str, object], Any]) -> None:
    notes = [NoteOut.of(n).model_dump(mode="json") for n in every_note()]
    assert [n["code"] for n in notes] == [c.value for c in NoteCode]
    unknown = {"code": "something_new", "params": {"n": 1}, "text": "something new happened"}
    rendered: dict[str, list[str | None]] = in_node(RUNNER, [*notes, unknown])  # noteText of each, in both languages
    assert rendered["zh-CN"] == [
        "过火面积 500 m² 超过 300 m²，×2",
        "核查未通过（反馈后被重新打开），×1.5",
        "在事件 #7 的同一地点再次起火，×2",
        "24 小时内未反馈",
        "1 个违规火点 / 2,000 公顷耕地",
        "考核办法 example-v2（scoring-example-v2.toml）于 2025-09-01 在本时段内生效；"
        "本时段按首日适用的 example-v1 计分。",
        "区域内没有乡镇级单位：改为按区县计分。",
        "区域内有 1 个火点不属于任何区县，未计入考核。",
        "截至 2025-11-03 10:00，1 个单位仍有 1 个火点处置中：得分为暂定，定性后可能变化。",
        None,  # a code this dashboard does not know: the page shows the server's English
    ]
    assert rendered["en"] == [
        "burned 500 m² > 300 m² ×2",
        "failed verification (reopened after feedback) ×1.5",
        "fire again at the place of incident #7 ×2",
        "not fed back within 24 h",
        "1 violation per 2,000 ha of cropland",
        "Rules example-v2 (scoring-example-v2.toml) took effect during the period on 2025-09-01; the period is "
        "scored with example-v1, in force on its first day.",
        "No township units in the area: county units are scored instead.",
        "1 fire point in the area has no county and is not scored.",
        "1 fire point in 1 unit(s) still open at 2025-11-03 10:00: the scores are provisional and may change when it "
        "is decided.",
        None,
    ]


def test_only_unknown_notes_are_marked_english() -> None:
    """The page marked every note lang="en"; now only the server's own words are (a code it does not know, or a
    server that sends no codes)."""
    page = code_of(js("page-stats.js"))
    assert re.findall(r'lang: "en"', page) == ['lang: "en"']  # in noteNode, for the fallback only
    handled = set(re.findall(r'case "(\w+)":', page.split("export function noteText", 1)[1].split("\n}\n", 1)[0]))
    assert handled == {c.value for c in NoteCode}
