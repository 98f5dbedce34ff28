"""The lifecycle table: the main path, side exits, who may do what."""

from __future__ import annotations

import itertools

import pytest

from service.incidents.states import TRANSITIONS, IncidentState, Role, allowed_targets, check_transition

S = IncidentState
MAIN_PATH = [
    S.SUSPECTED,
    S.NOTIFIED,
    S.ACKNOWLEDGED,
    S.EN_ROUTE,
    S.ON_SITE,
    S.EXTINGUISHED,
    S.FEEDBACK,
    S.VERIFIED,
    S.CLOSED,
]


def test_main_path_is_walkable_by_patrol_then_supervisor() -> None:
    for here, there in itertools.pairwise(MAIN_PATH):
        role = (
            Role.SYSTEM if there is S.NOTIFIED else Role.SUPERVISOR if there in (S.VERIFIED, S.CLOSED) else Role.PATROL
        )
        assert check_transition(here, there, role) is None, (here, there, role)


@pytest.mark.parametrize(
    ("here", "there"),
    [(S.SUSPECTED, S.CLOSED), (S.NOTIFIED, S.EXTINGUISHED), (S.CLOSED, S.ON_SITE), (S.EXTINGUISHED, S.CLOSED)],
)
def test_illegal_moves_say_why(here: IncidentState, there: IncidentState) -> None:
    problem = check_transition(here, there, Role.ADMIN)
    assert problem is not None
    assert f"cannot go from {here.value} to {there.value}" in problem


def test_roles() -> None:
    assert "may not" in (check_transition(S.FEEDBACK, S.VERIFIED, Role.PATROL) or "")
    assert check_transition(S.NOTIFIED, S.ACKNOWLEDGED, Role.EVALUATOR) is not None
    assert check_transition(S.NOTIFIED, S.ACKNOWLEDGED, Role.DEVICE) is not None
    assert allowed_targets(S.ON_SITE, Role.PATROL) == [S.EXTINGUISHED, S.FALSE_ALARM]
    assert allowed_targets(S.CLOSED, Role.PATROL) == []
    assert allowed_targets(S.CLOSED, Role.SUPERVISOR) == [S.REOPENED]
    assert all(allowed_targets(state, Role.EVALUATOR) == [] for state in IncidentState)


def test_every_state_is_reachable_and_every_non_final_state_can_leave() -> None:
    reachable = {S.SUSPECTED}
    frontier = [S.SUSPECTED]
    while frontier:
        for target in TRANSITIONS.get(frontier.pop(), {}):
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(IncidentState)
    assert all(TRANSITIONS.get(state) for state in IncidentState)
