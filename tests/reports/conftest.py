"""The recorded scenario (tests/stats/scenario.py) and its November report data, built once for the package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory, upgrade
from service.reports.data import ReportData, collect
from service.stats.periods import parse_period
from service.stats.rules import RuleBook
from tests.stats import scenario

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="package")
def scenario_db(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, sessionmaker[Session], dict[str, int]]]:
    """A SQLite database holding the scenario: (URL, session factory, incident ids by fire)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reports') / 'scenario.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    ids = scenario.build(factory)
    yield url, factory, ids
    engine.dispose()


@pytest.fixture(scope="package")
def november(scenario_db: tuple[str, sessionmaker[Session], dict[str, int]]) -> ReportData:
    """Everything the November report of the whole city shows."""
    return collect_november(scenario_db, RULES)


def collect_november(scenario_db: tuple[str, sessionmaker[Session], dict[str, int]], rules: Path) -> ReportData:
    """The November report of the whole city over the recorded scenario, under the rule files in `rules`."""
    _, factory, _ = scenario_db
    with factory() as session:
        return collect(
            session,
            parse_period("2025-11"),
            scenario.CITY,
            RuleBook.load(rules),
            scenario.DEADLINES,
            as_of=scenario.AS_OF,
        )
