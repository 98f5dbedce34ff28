"""The dispatch lifecycle as data: states, the allowed transitions, who may make them, and deadlines.

Main path (the Chinese 闭环 steps): suspected 疑似 → notified 推送 → acknowledged 签收 → en route 出发 →
on site 到场 → extinguished 扑灭/处置 → feedback 反馈 → verified 核查 → closed 销号.
Side exits: false alarm (with a reason), reopened (a closed or false-alarm incident that needs action again, or a
verification that failed), escalated (a deadline passed, the township's alert could not be delivered, or a supervisor
escalated by hand).

Every transition not in :data:`TRANSITIONS` is illegal (HTTP 409). The table is the single source of truth; the
database CHECK constraint on ``incidents.state`` is generated from :class:`IncidentState`.
"""

from __future__ import annotations

from enum import StrEnum


class IncidentState(StrEnum):
    """Where an incident stands."""

    SUSPECTED = "suspected"
    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    EXTINGUISHED = "extinguished"
    FEEDBACK = "feedback"
    VERIFIED = "verified"
    CLOSED = "closed"
    FALSE_ALARM = "false_alarm"
    REOPENED = "reopened"
    ESCALATED = "escalated"


class Role(StrEnum):
    """Who a user is. ``system`` is the service itself (alerts, escalation timers)."""

    PATROL = "patrol"  # township patrol team: its own unit only
    SUPERVISOR = "supervisor"  # county supervisor: its county
    EVALUATOR = "evaluator"  # read-only, everything
    ADMIN = "admin"
    DEVICE = "device"  # cameras and drones: may only post observations
    SYSTEM = "system"


def a_role(role: Role) -> str:
    """The role with its article, as messages name it ("an evaluator", "a patrol")."""
    return f"{'an' if role.value[0] in 'aeiou' else 'a'} {role.value}"


class FalseAlarmReason(StrEnum):
    """Why a fire point was not a straw-burning violation (closing codes include non-straw causes)."""

    INDUSTRIAL_HEAT = "industrial_heat"  # factory, boiler, chimney
    NON_STRAW_FIRE = "non_straw_fire"  # garbage, grassland, funeral rites, cooking
    PERMITTED_BURN = "permitted_burn"  # 计划烧除 inside a valid permit
    DUPLICATE = "duplicate"  # the same fire as another incident
    NOT_FOUND = "not_found"  # nothing found on site
    OUT_OF_AREA = "out_of_area"


S = IncidentState
# Patrol teams act on site; supervisors also verify, close, reopen and escalate; the system notifies and escalates.
_FIELD = frozenset({Role.PATROL, Role.SUPERVISOR, Role.ADMIN})
_SUPERVISION = frozenset({Role.SUPERVISOR, Role.ADMIN})
_SYSTEM = frozenset({Role.SYSTEM, Role.SUPERVISOR, Role.ADMIN})
_SERVICE = frozenset({Role.SYSTEM})

TRANSITIONS: dict[IncidentState, dict[IncidentState, frozenset[Role]]] = {
    # Escalated while suspected: the township's new-fire alert could not be delivered (service.alerts.outbox), so
    # the county takes the fire over; only the service knows that, so only it makes this move.
    S.SUSPECTED: {S.NOTIFIED: _SYSTEM, S.FALSE_ALARM: _SUPERVISION, S.ACKNOWLEDGED: _FIELD, S.ESCALATED: _SERVICE},
    S.NOTIFIED: {S.ACKNOWLEDGED: _FIELD, S.FALSE_ALARM: _FIELD, S.ESCALATED: _SYSTEM},
    S.REOPENED: {S.ACKNOWLEDGED: _FIELD, S.FALSE_ALARM: _FIELD, S.ESCALATED: _SYSTEM},
    S.ESCALATED: {S.ACKNOWLEDGED: _FIELD, S.EN_ROUTE: _FIELD, S.ON_SITE: _FIELD, S.FALSE_ALARM: _FIELD},
    S.ACKNOWLEDGED: {S.EN_ROUTE: _FIELD, S.ON_SITE: _FIELD, S.FALSE_ALARM: _FIELD, S.ESCALATED: _SYSTEM},
    S.EN_ROUTE: {S.ON_SITE: _FIELD, S.FALSE_ALARM: _FIELD, S.ESCALATED: _SYSTEM},
    S.ON_SITE: {S.EXTINGUISHED: _FIELD, S.FALSE_ALARM: _FIELD},
    S.EXTINGUISHED: {S.FEEDBACK: _FIELD},
    S.FEEDBACK: {S.VERIFIED: _SUPERVISION, S.REOPENED: _SUPERVISION},
    S.VERIFIED: {S.CLOSED: _SUPERVISION, S.REOPENED: _SUPERVISION},
    S.CLOSED: {S.REOPENED: _SUPERVISION},
    S.FALSE_ALARM: {S.CLOSED: _SUPERVISION, S.REOPENED: _SUPERVISION},
}

# States in which the township still has to act (escalation timers run, re-sends happen).
OPEN_STATES = frozenset(set(IncidentState) - {S.CLOSED, S.FALSE_ALARM, S.VERIFIED})
# Incidents in these states still absorb new observations of the same fire.
ACTIVE_STATES = frozenset(set(IncidentState) - {S.CLOSED, S.FALSE_ALARM})


def allowed_targets(state: IncidentState, role: Role) -> list[IncidentState]:
    """The states ``role`` may move an incident to from ``state`` (what the UI offers)."""
    return [target for target, roles in TRANSITIONS.get(state, {}).items() if role in roles]


def check_transition(state: IncidentState, target: IncidentState, role: Role) -> str | None:
    """None when allowed; otherwise why not (an illegal move, or a role that may not make it)."""
    roles = TRANSITIONS.get(state, {}).get(target)
    if roles is None:
        legal = ", ".join(TRANSITIONS.get(state, {})) or "none"
        return f"cannot go from {state.value} to {target.value} (allowed from {state.value}: {legal})"
    if role not in roles:
        return f"{a_role(role)} may not move an incident from {state.value} to {target.value}"
    return None
