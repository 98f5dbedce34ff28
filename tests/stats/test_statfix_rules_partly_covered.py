"""A period that starts before the first rules version (or ends after the last, or spans a gap) is scored with the
first version in force during it, and the ``rules_changed`` warning names the days no version covered; only a
period no version covers on any day is refused. It was refused whenever its first day was uncovered: ``--period
2024`` with rules from 2024-09-01, an ISO week starting in the old year."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.errors import NotFoundError
from service.stats.periods import parse_period
from service.stats.rules import RuleBook
from service.stats.wording import NoteCode
from tests.stats.test_rules import write
from tests.stats.test_stats_api import client, get, status  # noqa: F401  (the module's API fixture)

SHIPPED = Path(__file__).resolve().parents[2] / "rules"


def test_a_year_starting_before_the_first_version_is_scored_with_the_first_version_in_it() -> None:
    book = RuleBook.load(SHIPPED)  # example-v1 from 2024-09-01, example-v2 from 2025-09-01
    v1 = book.versions[0]
    year = book.select(parse_period("2024"))
    assert year.version is v1
    assert year.also_in_force == ()
    assert year.uncovered == ((date(2024, 1, 1), date(2024, 8, 31)),)
    assert not year.covers_first_day
    (note,) = year.notes
    assert note.code is NoteCode.RULES_CHANGED
    assert note.params["uncovered"] == "2024-01-01…2024-08-31"
    assert note.params["uncovered_days"] == 244
    assert note.params["scored_with"] == "example-v1"
    assert note.text.startswith("no scoring rules were in force on 2024-01-01…2024-08-31 (244 days of the period)")
    assert "the first version in force during it" in note.text
    # A week across the start: Monday 2024-08-26 … Sunday 2024-09-01.
    week = book.select(parse_period("2024-W35"))
    assert (week.version, week.uncovered) == (v1, ((date(2024, 8, 26), date(2024, 8, 31)),))
    # A covered period keeps its version and has no such warning.
    covered = book.select(parse_period("2025"))
    assert (covered.version, covered.uncovered, covered.covers_first_day) == (v1, (), True)
    assert [n.params["version"] for n in covered.notes] == ["example-v2"]
    assert "in force on its first day" in covered.notes[0].text
    assert book.select(parse_period("2024-W36")).version is v1


def test_a_period_with_no_version_on_any_day_is_still_refused() -> None:
    book = RuleBook.load(SHIPPED)
    with pytest.raises(NotFoundError, match=r"no scoring rules in force on 2024-08-01…2024-08-31 \(versions: "):
        book.select(parse_period("2024-08"))
    with pytest.raises(NotFoundError, match=r"no scoring rules in force on 2024-08-31 \(versions: "):
        book.select(parse_period("2024-08-31"))


def test_days_after_the_last_version_and_in_a_gap_are_named(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "a", "2024-03-01", "2024-04-30")
    write(tmp_path, "b.toml", "b", "2024-07-01", "2024-10-31")
    book = RuleBook.load(tmp_path)
    a, b = book.versions
    year = book.select(parse_period("2024"))
    assert (year.version, year.also_in_force) == (a, (b,))
    assert year.uncovered == (
        (date(2024, 1, 1), date(2024, 2, 29)),
        (date(2024, 5, 1), date(2024, 6, 30)),
        (date(2024, 11, 1), date(2024, 12, 31)),
    )
    uncovered, changed = year.notes
    assert uncovered.params["uncovered"] == "2024-01-01…2024-02-29, 2024-05-01…2024-06-30, 2024-11-01…2024-12-31"
    assert changed.params["version"] == "b"
    assert changed.text.endswith("the period is scored with a, the first version in force during it")
    # The first day covered, the last days not (they were scored silently before).
    tail = book.select(parse_period("2024-10-15..2024-11-02"))
    assert (tail.version, tail.covers_first_day) == (b, True)
    assert tail.uncovered == ((date(2024, 11, 1), date(2024, 11, 2)),)
    assert tail.notes[0].text.endswith("(b.toml, in force from 2024-07-01), in force on its first day")
    # A single uncovered day is written alone.
    assert book.select(parse_period("2024-02-29..2024-03-05")).notes[0].params["uncovered"] == "2024-02-29"


def test_the_api_scores_a_week_that_starts_before_the_first_version(client: TestClient) -> None:  # noqa: F811
    # Was a 404 "no scoring rules in force on 2024-08-26".
    week = get(client, "eval", "/api/v1/scores", period="2024-W35")
    assert week["rules"]["version"] == "example-v1"
    assert [(n["code"], n["params"]["uncovered"]) for n in week["warning_notes"]] == [
        ("rules_changed", "2024-08-26…2024-08-31")
    ]
    assert week["warnings"][0].startswith("no scoring rules were in force on 2024-08-26…2024-08-31")
    assert status(client, "eval", "/api/v1/scores", period="2024-08") == 404
