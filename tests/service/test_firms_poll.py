"""The service's FIRMS poller keeps one transaction budget for its key across poll cycles."""

from __future__ import annotations

from pathlib import Path

from satellite.poller import TransactionBudget
from service.config import Settings
from service.db import make_engine, make_session_factory, transaction, upgrade
from service.demo import load_demo
from service.firms_poll import make_poller


def test_the_budget_outlives_a_poll_cycle(tmp_path: Path) -> None:
    """A poller (and its budget) was rebuilt every cycle: the sliding window, and FIRMS's "limit exceeded",
    were forgotten at each poll. The worker and `firms poll --loop` now pass one budget to every cycle's poller."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    settings = Settings(data_dir=tmp_path, firms={"map_key": "0123456789abcdef0123456789abcdef"})
    budget = TransactionBudget()
    with factory() as session:
        first, second = make_poller(session, settings, budget), make_poller(session, settings, budget)
    assert first.budget is second.budget is budget
    budget.saturate()
    assert second.budget.try_charge(1) > 0  # the next cycle waits for the window FIRMS said was full
    engine.dispose()
