"""The scores page says the service's notes and warnings in its reader's language, from their codes: the dashboard's
own page-stats.js and i18n.js run under Node on one note of every code the service writes (made by the service's
code, so the figures' names are the ones it sends), in both languages; an unknown code falls back to the English.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from service.stats.schemas import NoteOut
from service.stats.wording import NoteCode
from tests.dashboard.test_assets import STATIC, code_of, js
from tests.stats.test_score_notes import every_note

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

RUNNER = """
const store = {};
globalThis.localStorage = {
  getItem: (key) => (key in store ? store[key] : null),
  setItem: (key, value) => { store[key] = String(value); },
};
globalThis.document = { documentElement: { lang: "" } };
const i18n = await import(process.argv[2] + "/i18n.js");
const stats = await import(process.argv[2] + "/page-stats.js");
const notes = JSON.parse(process.argv[3]);
const out = {};
for (const code of ["zh-CN", "en"]) {
  i18n.setLang(code);
  out[code] = notes.map((note) => stats.noteText(note));
}
console.log(JSON.stringify(out));
"""


def render(notes: list[dict[str, Any]], folder: Path) -> dict[str, list[str | None]]:
    """``noteText`` of each note, in Chinese and in English."""
    static = folder / "static"
    shutil.copytree(STATIC, static)
    (static / "package.json").write_text('{"type": "module"}', encoding="utf-8")  # ES modules, as to the browser
    runner = folder / "runner.mjs"
    runner.write_text(RUNNER, encoding="utf-8")
    result = subprocess.run(
        [str(NODE), str(runner), static.as_uri(), json.dumps(notes)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rendered: dict[str, list[str | None]] = json.loads(result.stdout)
    return rendered


def test_every_note_the_service_writes_is_said_in_both_languages(tmp_path: Path) -> None:
    notes = [NoteOut.of(n).model_dump(mode="json") for n in every_note()]
    assert [n["code"] for n in notes] == [c.value for c in NoteCode]
    unknown = {"code": "something_new", "params": {"n": 1}, "text": "something new happened"}
    rendered = render([*notes, unknown], tmp_path)
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
        None,
    ]


def test_only_unknown_notes_are_marked_english() -> None:
    """The page marked every note lang="en"; now only the server's own words are (a code it does not know, or a
    server that sends no codes)."""
    page = code_of(js("page-stats.js"))
    assert re.findall(r'lang: "en"', page) == ['lang: "en"']  # in noteNode, for the fallback only
    handled = set(re.findall(r'case "(\w+)":', page.split("export function noteText", 1)[1].split("\n}\n", 1)[0]))
    assert handled == {c.value for c in NoteCode}
