"""English counts agree with their noun ("1 incident", "2 incidents"); Chinese, which has no plural, is unchanged.

The dashboard's own i18n.js runs under Node (the same ECMAScript Intl.PluralRules the browser has; conftest.py's
``in_node``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

# (key, params) pairs rendered in both languages by the runner below.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("queue.count", {"n": 1}),
    ("queue.count", {"n": 2}),
    ("queue.count", {"n": 0}),
    ("map.count", {"n": 1}),
    ("map.count", {"n": "1,234"}),  # as fmtNumber shows it
    ("status.indicator.problems", {"n": 1}),
    ("status.indicator.problems", {"n": 3}),
    ("status.detail.hotspots", {"n": 1}),
    ("status.problem.alerts_failed", {"n": 1}),
    ("status.problem.cameras_frozen", {"n": 1, "items": "T1/p1"}),
    ("status.problem.cameras_frozen", {"n": 2, "items": "T1/p1, T2/p1"}),
    ("status.problem.component_failing_never", {"n": 1, "component": "FIRMS poll"}),
    ("time.days_ago", {"n": 1}),
    ("event_text.repeat_at_site", {"distance": "120", "days": "1"}),
    ("event_text.repeat_at_site", {"distance": "120", "days": "1.5"}),
    ("cameras.suggestions", {"days": 90}),
    ("inbox.count", {"n": 1}),
    ("inbox.count", {"n": 12}),
    ("queue.count", {}),  # no count given: the plural form, placeholders kept
]

RUNNER = """
const i18n = await import(`${STATIC_URL}/i18n.js`);
const out = { dictionaries: i18n.DICTIONARIES, rendered: {} };
for (const code of ["zh-CN", "en"]) {
  i18n.setLang(code);
  out.rendered[code] = INPUT.map(([key, params]) => i18n.t(key, params));
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def rendered(in_node: Callable[[str, object], Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = in_node(RUNNER, CASES)
    return parsed


def test_english_counts_agree_with_their_noun(rendered: dict[str, Any]) -> None:
    assert rendered["rendered"]["en"] == [
        "1 incident",
        "2 incidents",
        "0 incidents",
        "1 fire",
        "1,234 fires",
        "1 problem",
        "3 problems",
        "1 hotspot last time",
        "1 alert of the last 24 h was given up after every retry: check the recipients' addresses and bots.",
        "1 camera preset shows a frozen picture: T1/p1. No fire can be seen there.",
        "2 camera presets show a frozen picture: T1/p1, T2/p1. No fire can be seen there.",
        "The FIRMS poll has never succeeded (1 attempt): check its configuration.",
        "1 day ago",
        "120 m from the earlier fire, 1 day later.",
        "120 m from the earlier fire, 1.5 days later.",
        "False-alarm hotspots (last 90 days)",
        "1 alert received",
        "12 alerts received",
        "{n} incidents",
    ]


def test_chinese_is_unchanged(rendered: dict[str, Any]) -> None:
    zh = rendered["rendered"]["zh-CN"]
    assert zh[:7] == ["1 个火点", "2 个火点", "0 个火点", "1 个火点", "1,234 个火点", "1 个问题", "3 个问题"]
    assert all(isinstance(value, str) for value in rendered["dictionaries"]["zh-CN"].values())


def test_no_english_string_guesses_at_a_plural(rendered: dict[str, Any]) -> None:
    """No "alert(s)", and no plain string puts a plural noun after a count it cannot know is more than one."""
    en = rendered["dictionaries"]["en"]
    plain = {key: value for key, value in en.items() if isinstance(value, str)}
    assert [key for key, value in plain.items() if re.search(r"\w\(s\)", value)] == []  # "Cadence (s)" is seconds
    counted_plural = re.compile(r"\{(?:n|days)\} (?!min\b|h\b|m\b)[a-z]+s\b")
    assert [key for key, value in plain.items() if counted_plural.search(value)] == []
    for key, forms in en.items():
        if isinstance(forms, dict):
            assert {"one", "other"} <= set(forms), key
            assert isinstance(rendered["dictionaries"]["zh-CN"][key], str), key  # Chinese: one form
