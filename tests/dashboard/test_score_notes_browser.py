"""The scores page in a real headless Chromium says the score lines' notes and the board's warnings in Chinese (it
showed the server's English, marked lang="en", even on the Chinese page), and in English once switched."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.browser import DESKTOP, Browser
from tests.dashboard.live import PASSWORD, LiveServer
from tests.dashboard.test_audit_recheck import set_language

pytestmark = pytest.mark.slow

# [code, lang, text] of every note span on the scores page (score lines inside closed <details> included).
NOTES = """
const spans = "#table-scores .items li > span:not(.rule) span[data-code], #scores-warnings li span";
return [...document.querySelectorAll(spans)]
  .map((el) => [el.dataset.code, el.closest("[lang]").getAttribute("lang"), el.textContent]);
"""


def notes(browser: Browser) -> list[list[Any]]:
    found: list[list[Any]] = browser.driver.execute_script(NOTES)
    return found


def test_score_notes_and_warnings_are_in_the_readers_language(browser: Browser, live: LiveServer) -> None:
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.go("#/scores")
    browser.find("#table-scores tbody tr")
    chinese = notes(browser)
    codes = {code for code, _, _ in chinese}
    assert {"large_area", "density"} <= codes, chinese  # the seeded fortnight: fires over 300 m², density
    assert {lang for _, lang, _ in chinese} == {"zh-CN"}, chinese  # none left in English
    large = [text for code, _, text in chinese if code == "large_area"]
    assert "过火面积 2,500 m² 超过 300 m²，×2" in large, large
    browser.screenshot("scores-notes")

    # A year that spans two rules versions: the warning says so in Chinese.
    browser.go("#/scores?preset=custom&period=2025")
    browser.find("#scores-warnings li")
    (warning,) = [n for n in notes(browser) if n[0] == "rules_changed"]
    assert warning[1:] == [
        "zh-CN",
        "考核办法 example-v2（scoring-example-v2.toml）于 2025-09-01 在本时段内生效；"
        "本时段按首日适用的 example-v1 计分。",
    ]

    set_language(browser, "en")
    browser.wait(lambda d: browser.find("#main h1").text == "Scores", "the English page")
    browser.find("#scores-warnings li")
    (warning,) = [n for n in notes(browser) if n[0] == "rules_changed"]
    assert warning[1] == "en"
    assert warning[2].startswith("Rules example-v2 (scoring-example-v2.toml) took effect")
    browser.go("#/scores")
    browser.find("#table-scores tbody tr")
    english = [text for code, _, text in notes(browser) if code == "large_area"]
    assert "burned 2,500 m² > 300 m² ×2" in english, english
    set_language(browser, "zh-CN")
    browser.wait(lambda d: browser.find("#main h1").text == "考核排名", "the Chinese page")
    assert browser.console_errors() == []
    browser.logout()


def test_days_no_rules_covered_are_said_and_the_report_downloads(browser: Browser, live: LiveServer) -> None:
    """A year that starts before the first rules version is scored with the first version in force during it, and
    the warning says which days no version covered (it said "in force on its first day"). A supervisor downloads
    the period's report from the page (the API's file, saved from a blob URL: a link cannot send the token)."""
    browser.use(DESKTOP)
    browser.login("sup", PASSWORD)
    browser.go("#/scores?preset=custom&period=2024")
    browser.find("#scores-warnings li")
    uncovered = [text for code, _, text in notes(browser) if code == "rules_changed"]
    assert uncovered[0] == (
        "2024-01-01…2024-08-31（本时段内 244 天）没有施行中的考核办法；本时段按 example-v1"
        "（scoring-example-v1.toml，2024-09-01 起施行）计分。"
    ), uncovered
    browser.driver.execute_script(
        "window.savedReports = []; const made = URL.createObjectURL.bind(URL);"
        "URL.createObjectURL = (blob) => { window.savedReports.push([blob.type, blob.size]); return made(blob); };"
    )
    browser.find("#report-xlsx").click()
    saved = browser.wait(lambda d: d.execute_script("return window.savedReports"), "the report saved")
    assert saved[0][0].startswith("application/vnd.openxmlformats"), saved
    assert saved[0][1] > 1000, saved
    assert browser.driver.execute_script("return document.querySelector('#report-status').textContent") == ""
    assert browser.console_errors() == []
    browser.logout()
