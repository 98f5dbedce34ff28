"""Who hears of a unit's fires: the township recipients that act on them, the supervisors an escalation goes to, and
the units with open fires that nobody would be alerted for.

A unit without alert recipients is silent: its fires queue no township alert, nothing is delivered or fails, and
without this they sat ``suspected`` where no deadline runs. Decisions:

* **A township is covered** by an active township-role recipient of the township or of its county (a county-wide
  duty group acts on the alerts too, as :func:`service.alerts.outbox.enqueue_many` queues them). A fire in a unit
  no one covers is escalated by the next escalation pass (``service.alerts.escalation``), the record saying that
  no recipients are configured for the unit.
* **Escalations go to the supervisors** (active county-role recipients) of the incident's township or county; a
  county without any falls back to the nearest unit above it that has some, following the loaded regions' parent
  codes (a city's duty desk, then a province's): a county that has not set up its supervisors' group yet still
  reaches someone who can phone the township (:func:`supervisors_unit`).
* **Nobody up the hierarchy**: the fire is escalated all the same (``escalated`` heads the supervisors' and the
  admins' queues), its record says that no supervisor was alerted (``"to": null``), and the system status lists
  the county until a recipient is added (:func:`uncovered_units`): admins have no alert channel of their own; the
  status page, the top bar's indicator and ``strawfire status`` (exit 1) are what reaches them.
* **The status counts units with open fires** (every state before verified), not every township without a
  recipient: a province-wide region list has thousands of townships, most of which never burn; the ones whose fires
  went unalerted are the ones to fix first.
* A fire outside every loaded unit (no township, no county) belongs to nobody's team: it is neither escalated nor
  counted here; a supervisor assigns it or declares it out of area.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.alerts.tables import Recipient, RecipientRole
from service.incidents.states import OPEN_STATES
from service.incidents.tables import Incident
from service.regions.tables import Region

#: How many levels above a county an escalation looks for supervisors (city, province, and a spare for odd lists).
MAX_LEVELS_UP = 4


def no_recipients_error(unit: str) -> str:
    """The error an escalation records for a unit without township recipients (as a delivery error would be)."""
    return f"no recipients configured for {unit}"


def recipient_units(session: Session, role: RecipientRole) -> set[str]:
    """The unit codes that have at least one active recipient of ``role``."""
    return set(
        session.scalars(
            select(Recipient.unit_code).where(Recipient.active.is_(True), Recipient.role == role.value).distinct()
        )
    )


def township_covered(township_code: str | None, county_code: str | None, units: set[str]) -> bool:
    """Whether a township recipient acts on fires of this township (``units``: :func:`recipient_units`) (pure)."""
    return any(code in units for code in (township_code, county_code) if code)


def supervisors_unit(
    session: Session, township_code: str | None, county_code: str | None, units: set[str] | None = None
) -> str | None:
    """The unit whose supervisors an escalation of a fire in this township and county goes to: the township's or the
    county's own (those :func:`service.alerts.outbox.enqueue` queues for), else the nearest unit above the county
    with some, else None (nobody). ``units``: :func:`recipient_units` of the county role, when the caller has them."""
    supervised = recipient_units(session, RecipientRole.COUNTY) if units is None else units
    for code in (county_code, township_code):
        if code and code in supervised:
            return code
    seen: set[str] = set()
    code = county_code or township_code
    for _ in range(MAX_LEVELS_UP):
        if not code or code in seen:
            return None
        seen.add(code)
        parent = session.scalar(
            select(Region.parent_code).where(Region.code == code, Region.parent_code.is_not(None)).limit(1)
        )
        if parent and parent in supervised:
            return parent
        code = parent
    return None


@dataclass(frozen=True, slots=True)
class UncoveredUnit:
    """A unit with open fires whose alerts reach nobody."""

    code: str
    name: str | None
    open_fires: int

    @property
    def label(self) -> str:
        """``北岗镇 (DEMO01)``, or the code alone when the fires carry no name."""
        return f"{self.name} ({self.code})" if self.name and self.name != self.code else self.code


@dataclass(frozen=True, slots=True)
class Uncovered:
    """What :func:`uncovered_units` found, each list by code."""

    # Townships (or counties, for fires with no township) whose new-fire alerts are queued for nobody.
    townships: list[UncoveredUnit]
    # Counties whose escalations reach no supervisor, there or above.
    counties: list[UncoveredUnit]


def uncovered_units(session: Session) -> Uncovered:
    """The units with open fires that no township recipient covers, and the counties with open fires whose
    escalations reach no supervisor (one grouped query over the open incidents, one per recipient role, and the
    hierarchy walk per uncovered county)."""
    rows = session.execute(
        select(
            Incident.township_code,
            Incident.township_name,
            Incident.county_code,
            Incident.county_name,
            func.count(),
        )
        .where(Incident.state.in_(sorted(s.value for s in OPEN_STATES)))
        .group_by(Incident.township_code, Incident.township_name, Incident.county_code, Incident.county_name)
    ).all()
    if not rows:
        return Uncovered([], [])
    acting = recipient_units(session, RecipientRole.TOWNSHIP)
    supervised = recipient_units(session, RecipientRole.COUNTY)
    townships: dict[str, list[tuple[str | None, int]]] = defaultdict(list)
    counties: dict[str, list[tuple[str | None, int]]] = defaultdict(list)
    reached: dict[str, bool] = {}  # per unit the walk up starts from: it depends on nothing else
    for township_code, township_name, county_code, county_name, count in rows:
        unit = township_code or county_code
        if not unit:
            continue  # outside every unit: nobody's team
        if not township_covered(township_code, county_code, acting):
            townships[unit].append((township_name if township_code else county_name, count))
        if township_code in supervised or county_code in supervised:
            continue
        start = county_code or unit
        if start not in reached:
            reached[start] = supervisors_unit(session, None, start, supervised) is not None
        if not reached[start]:
            counties[county_code or unit].append((county_name if county_code else township_name, count))
    return Uncovered(_units(townships), _units(counties))


def _units(found: dict[str, list[tuple[str | None, int]]]) -> list[UncoveredUnit]:
    def name(named: Iterable[tuple[str | None, int]]) -> str | None:
        return next((n for n, _ in named if n), None)

    return [UncoveredUnit(code, name(found[code]), sum(n for _, n in found[code])) for code in sorted(found)]
