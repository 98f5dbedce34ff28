"""Persistence of administrative units: atomic imports per level and cached indexes for assignment."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from pyproj import Geod
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from service.alerts.tables import Recipient
from service.auth.tables import User
from service.errors import ConflictError, InputError, NotFoundError
from service.incidents.states import OPEN_STATES
from service.incidents.tables import Incident
from service.regions.crs import SourceCRS
from service.regions.index import RegionIndex
from service.regions.loader import ReadReport
from service.regions.tables import Region, RegionImport
from service.regions.types import RegionLevel, RegionUnit

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """The outcome of one import."""

    import_id: int
    level: RegionLevel
    unit_count: int
    replaced: int
    repaired: int
    # The reader's warnings, then the import's own: removed units still in use (with ``replace_in_use``), parent
    # codes that name no imported unit, units of other levels whose parent was removed.
    warnings: tuple[str, ...]
    # The removed units that open incidents, users or alert recipients still named (empty unless replace_in_use).
    removed_in_use: tuple[RemovedUnitUse, ...] = ()


# Coarse to fine, as RegionLevel lists them: province 0 … grid 5.
_LEVEL_RANK = {level: rank for rank, level in enumerate(RegionLevel)}

#: How many codes, ids or names a message lists before it says "and N more".
_SHOWN = 5


def _listed(items: Sequence[object], limit: int = _SHOWN) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass(frozen=True, slots=True)
class RemovedUnitUse:
    """A unit a re-import removes, and what still names it: open incidents (ids), active users and active alert
    recipients. After the import their code names no unit: the incidents' teams lose them from their lists (a
    patrol or supervisor sees the incidents of their own unit), the users see nothing, the recipients hear of
    nothing."""

    code: str
    open_incidents: tuple[int, ...]
    users: tuple[str, ...]
    recipients: tuple[str, ...]

    def describe(self) -> str:
        """``DEMO01: 3 open incidents (4, 7, 9), user demo-patrol, alert recipient 北岗镇群``."""
        return f"{self.code}: {self.uses()}"

    def uses(self) -> str:
        """What names the unit: ``3 open incidents (4, 7, 9), user demo-patrol, alert recipient 北岗镇群``."""
        parts = []
        if self.open_incidents:
            count = len(self.open_incidents)
            parts.append(f"{count} open incident{'s' if count != 1 else ''} ({_listed(self.open_incidents)})")
        if self.users:
            parts.append(f"user{'s' if len(self.users) != 1 else ''} {_listed(self.users)}")
        if self.recipients:
            parts.append(f"alert recipient{'s' if len(self.recipients) != 1 else ''} {_listed(self.recipients)}")
        return ", ".join(parts)


def _ring_area_m2(ring: shapely.LinearRing) -> float:
    lon, lat = ring.xy
    area, _ = _GEOD.polygon_area_perimeter(lon, lat)
    return abs(area)


def geodesic_area_ha(geometry: shapely.Geometry) -> float:
    """Area on the WGS-84 ellipsoid in hectares: every part's exterior less its holes.

    Ring by ring with absolute values, because ``Geod.geometry_area_perimeter`` adds *signed* ring areas: a hole
    wound like its exterior (GeoJSON that ignores the right-hand rule; shapely finds it valid) was added, and
    parts wound in opposite directions cancelled each other out.
    """
    total_m2 = 0.0
    for part in shapely.get_parts(geometry):
        if isinstance(part, shapely.Polygon) and not part.is_empty:
            total_m2 += _ring_area_m2(part.exterior) - sum(_ring_area_m2(hole) for hole in part.interiors)
    return total_m2 / 10_000.0


def import_units(
    session: Session,
    units: Sequence[RegionUnit],
    *,
    level: RegionLevel,
    crs: SourceCRS,
    report: ReadReport,
    replace_in_use: bool = False,
) -> ImportSummary:
    """Replace every unit of ``level`` with ``units`` inside the caller's transaction (all or nothing).

    Imports are serialised: on PostgreSQL a second import's DELETE did not see the first's uncommitted rows, so two
    imports of a level committed one after the other left the units of both files. The table lock lets readers
    (the serving service) through; SQLite's single writer lock, taken by the DELETE, does the same there.

    A re-import that leaves out units still in use is refused (:class:`ConflictError`, raised inside the caller's
    transaction, whose rollback keeps the old units: the DELETE comes first, so that on SQLite the write lock is
    held while what it replaces is checked, as the table lock holds it on PostgreSQL) unless
    ``replace_in_use`` (the CLI's ``--yes``): open incidents assigned to a removed township or county, and active
    users and alert recipients on a removed unit (one no other level has either), listed per unit code. A new
    file's other codes orphaned them without a word: their teams no longer saw the fires, a patrol account saw
    nothing, a township's alerts reached nobody. With ``replace_in_use`` the import goes ahead and says what it
    orphaned (:attr:`ImportSummary.removed_in_use`, and a warning each); nothing is moved for the people: the
    incidents keep their codes (and their history), a supervisor or admin reassigns each
    (``POST /api/v1/incidents/{id}/assignment``), and users and recipients are re-created on the new units.

    Parent codes that name no imported unit are a warning, not a refusal: a township list imported before its
    counties is a normal order. But escalations climb the parent codes to find supervisors, and a township's
    county is its parent, so a typo'd parent is named (as are other levels' units whose parent was removed).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE regions IN SHARE ROW EXCLUSIVE MODE"))
    old_codes = set(session.scalars(delete(Region).where(Region.level == level.value).returning(Region.code)))
    replaced = len(old_codes)
    new_codes = {u.code for u in units}
    others = session.execute(select(Region.level, Region.code).where(Region.level != level.value)).all()
    other_codes = {code for _, code in others}
    other_levels = {other for other, _ in others}
    coarser = [lvl for lvl in RegionLevel if _LEVEL_RANK[lvl] < _LEVEL_RANK[level] and lvl.value in other_levels]
    removed = sorted(old_codes - new_codes)
    in_use = removed_units_in_use(session, level, removed, still_imported=other_codes)
    if in_use and not replace_in_use:
        more = f"; and {len(in_use) - _SHOWN} more units" if len(in_use) > _SHOWN else ""
        raise ConflictError(
            f"the new {level.value} units leave out {len(in_use)} unit{'s' if len(in_use) != 1 else ''} still in "
            f"use ({'; '.join(u.describe() for u in in_use[:_SHOWN])}{more}): reassign or close those incidents and "
            "move those users and recipients first, or import with --yes to replace the units all the same"
        )
    warnings = [
        *report.warnings,
        *_import_warnings(session, units, level, removed, in_use, new_codes | other_codes, coarser),
    ]
    record = RegionImport(
        level=level.value,
        source=report.source[-500:],
        crs=str(crs),
        unit_count=len(units),
        repaired_count=len(report.repairs),
        report=json.dumps(
            {
                "repairs": [{"feature": r.row, "code": r.code, "reason": r.reason} for r in report.repairs],
                "warnings": warnings,
            },
            ensure_ascii=False,
        ),
    )
    session.add(record)
    session.flush()
    session.add_all(
        Region(
            code=u.code,
            name=u.name,
            level=level.value,
            parent_code=u.parent_code,
            geometry_wkb=shapely.to_wkb(u.geometry),
            area_ha=geodesic_area_ha(u.geometry),
            cropland_ha=u.cropland_ha,
            import_id=record.id,
        )
        for u in units
    )
    session.flush()
    return ImportSummary(record.id, level, len(units), replaced, len(report.repairs), tuple(warnings), tuple(in_use))


def removed_units_in_use(
    session: Session, level: RegionLevel, removed: Sequence[str], *, still_imported: set[str]
) -> list[RemovedUnitUse]:
    """The ``removed`` units of ``level`` that open incidents (by their township or county, as ``level`` is),
    active users or active alert recipients still name, by code. A user's or recipient's code that another level
    still has (``still_imported``) keeps working and is not counted."""
    if not removed:
        return []
    incidents: dict[str | None, list[int]] = {}  # by code (never None: the rows match ``removed``)
    column = {RegionLevel.TOWNSHIP: Incident.township_code, RegionLevel.COUNTY: Incident.county_code}.get(level)
    if column is not None:  # an incident carries its township and county only
        open_states = [state.value for state in OPEN_STATES]
        rows = session.execute(
            select(column, Incident.id)
            .where(column.in_(removed), Incident.state.in_(open_states))
            .order_by(Incident.id)
        )
        for code, incident_id in rows:
            incidents.setdefault(code, []).append(incident_id)
    gone = [code for code in removed if code not in still_imported]
    users: dict[str | None, list[str]] = {}
    recipients: dict[str, list[str]] = {}
    if gone:
        for code, username in session.execute(
            select(User.unit_code, User.username)
            .where(User.unit_code.in_(gone), User.active.is_(True))
            .order_by(User.username)
        ):
            users.setdefault(code, []).append(username)
        for code, name in session.execute(
            select(Recipient.unit_code, Recipient.name)
            .where(Recipient.unit_code.in_(gone), Recipient.active.is_(True))
            .order_by(Recipient.id)
        ):
            recipients.setdefault(code, []).append(name)
    return [
        RemovedUnitUse(
            code, tuple(incidents.get(code, ())), tuple(users.get(code, ())), tuple(recipients.get(code, ()))
        )
        for code in removed
        if code in incidents or code in users or code in recipients
    ]


def _import_warnings(
    session: Session,
    units: Sequence[RegionUnit],
    level: RegionLevel,
    removed: Sequence[str],
    in_use: Sequence[RemovedUnitUse],
    known: set[str],
    coarser: Sequence[RegionLevel],
) -> list[str]:
    """What an import tells its user besides the reader's warnings (:func:`import_units`); ``known``: the codes
    imported once this import is done, ``coarser``: the levels above ``level`` that have units.

    Unknown parent codes only while a level above is imported: a township list imported before its counties, or
    counties whose city is not imported (Changchun's name 220100; its duty desk can still be a recipient on that
    code), is a normal state, and a warning on every such import would teach people to skip warnings."""
    warnings = [
        f"{use.code} was replaced while still in use ({use.uses()}): its code now names no "
        "unit; reassign the incidents, re-create the users and recipients on the new units"
        for use in in_use
    ]
    unknown = sorted({u.parent_code for u in units if u.parent_code and u.parent_code not in known})
    if unknown and coarser:
        naming = sum(1 for u in units if u.parent_code in unknown)
        warnings.append(
            f"{naming} {level.value} unit{'s name' if naming != 1 else ' names'} a parent code that no imported unit "
            f"has, though {' and '.join(lvl.value for lvl in coarser)} units are imported: {_listed(unknown, 10)} "
            "(escalations climb the parent codes to find supervisors, and a township's county is its parent: "
            "correct the codes, or import the missing parents)"
        )
    gone = [code for code in removed if code not in known]
    if gone:
        children = session.execute(
            select(Region.level, Region.code)
            .where(Region.level != level.value, Region.parent_code.in_(gone))
            .order_by(Region.level, Region.code)
        ).all()
        if children:
            warnings.append(
                f"{len(children)} unit{'s' if len(children) != 1 else ''} of other levels name a removed "
                f"{level.value} as their parent: {_listed([f'{code} ({lvl})' for lvl, code in children], 10)} "
                "(re-import them with the new parent codes)"
            )
    return warnings


def _to_unit(row: Region) -> RegionUnit:
    geometry = shapely.from_wkb(row.geometry_wkb)
    assert isinstance(geometry, shapely.Polygon | shapely.MultiPolygon)
    return RegionUnit(
        code=row.code,
        name=row.name,
        level=RegionLevel(row.level),
        geometry=geometry,
        parent_code=row.parent_code,
        cropland_ha=row.cropland_ha,
    )


def list_regions(session: Session, level: RegionLevel | None = None) -> list[Region]:
    """Units ordered by level and code."""
    query = select(Region).order_by(Region.level, Region.code)
    if level is not None:
        query = query.where(Region.level == level.value)
    return list(session.scalars(query))


def get_region(session: Session, level: RegionLevel, code: str) -> tuple[Region, RegionUnit]:
    """One unit, or :class:`NotFoundError`."""
    row = session.scalar(select(Region).where(Region.level == level.value, Region.code == code))
    if row is None:
        raise NotFoundError(f"no {level.value} with code {code}")
    return row, _to_unit(row)


def load_units(session: Session, level: RegionLevel) -> list[RegionUnit]:
    """Every unit of a level as typed records."""
    return [_to_unit(row) for row in list_regions(session, level)]


def unit_levels(session: Session, code: str, *, field: str, as_parent: bool = False) -> list[RegionLevel]:
    """The levels a unit with ``code`` is imported at (usually one), for a code a person typed (a user's unit, an
    alert recipient's). With ``as_parent`` a code that imported units name as their parent is known too (no levels):
    a city's duty desk receives the escalations of its counties whether or not the city's own boundary was imported
    (:func:`~service.alerts.coverage.supervisors_unit` climbs the parent codes).

    Refused (:class:`InputError` naming ``field``): a code that no imported unit has, and any code while no unit is
    imported at all. A typo'd code was stored and matched nothing for ever: a patrol account on it saw no
    incident, a recipient on it was never alerted. Before the first import there is nothing to check a code
    against, so a clear refusal saying to import the regions first beats accepting every code unchecked.
    """
    levels = [RegionLevel(level) for level in session.scalars(select(Region.level).where(Region.code == code))]
    if levels:
        return levels
    if as_parent and session.scalar(select(Region.id).where(Region.parent_code == code).limit(1)) is not None:
        return []
    if session.scalar(select(Region.id).limit(1)) is None:
        raise InputError(
            "no units are imported yet: import the regions first (strawfire regions import), "
            "or load the DEMO region (strawfire demo load)",
            field=field,
        )
    raise InputError(f"no unit with code {code!r} is imported (strawfire regions list shows the codes)", field=field)


def loaded_levels(session: Session) -> list[RegionLevel]:
    """Levels that have units, finest first (grid, village, township, county…)."""
    present = set(session.scalars(select(Region.level).distinct()))
    return [level for level in reversed(RegionLevel) if level.value in present]


#: The levels an incident is assigned to, finest first (:func:`service.incidents.service.region_indexes`), hence
#: the levels whose area satellite coverage is.
ASSIGNED_LEVELS = (RegionLevel.TOWNSHIP, RegionLevel.COUNTY)


def units_coverage(session: Session, indexes: RegionIndexCache) -> list[shapely.Polygon | shapely.MultiPolygon] | None:
    """The area of the units incidents are assigned to — the township and county levels, united — widened by the
    assignment tolerance; None when neither level is imported (no hotspot could be given to anyone).

    Why not the coarsest level: importing the province's cities after Changchun's counties (for the report's
    outlines, or escalation parents) widened coverage to all of Jilin, and fires in 吉林市 became incidents with no
    township or county, alerted to no one. Each level's cached index keeps its widened outline between calls; the
    union of both levels is cached by the two indexes it was made from.
    """
    levels = [level for level in ASSIGNED_LEVELS if level in loaded_levels(session)]
    if not levels:
        return None
    return indexes.coverage(session, levels)


class RegionIndexCache:
    """One :class:`RegionIndex` per level, rebuilt only when that level was re-imported.

    The version of a level is the id of its latest import, so a re-import anywhere (another process, the
    CLI) is noticed on the next request without any messaging.
    """

    def __init__(self, tolerance_m: float) -> None:
        self._tolerance_m = tolerance_m
        self._lock = threading.Lock()
        self._indexes: dict[RegionLevel, tuple[int, RegionIndex]] = {}
        # The last union of several levels' coverage, with the indexes it was made from.
        self._coverage: tuple[tuple[RegionIndex, ...], list[shapely.Polygon]] | None = None

    def get(self, session: Session, level: RegionLevel) -> RegionIndex:
        """The index of ``level``; :class:`NotFoundError` when the level has no units."""
        version = session.scalar(select(func.max(Region.import_id)).where(Region.level == level.value))
        if version is None:
            raise NotFoundError(f"no {level.value} units have been imported")
        with self._lock:
            cached = self._indexes.get(level)
            if cached is not None and cached[0] == version:
                return cached[1]
        index = RegionIndex(load_units(session, level), tolerance_m=self._tolerance_m)
        with self._lock:
            self._indexes[level] = (version, index)
        return index

    def coverage(self, session: Session, levels: Sequence[RegionLevel]) -> list[shapely.Polygon | shapely.MultiPolygon]:
        """The union of ``levels``' widened outlines (:meth:`RegionIndex.coverage`), computed once per set of
        indexes (a re-import of either level builds a new index, and so a new union)."""
        built = tuple(self.get(session, level) for level in levels)
        if len(built) == 1:
            return built[0].coverage()
        with self._lock:
            cached = self._coverage
            if cached is not None and cached[0] == built:  # the same index objects (no __eq__: identity)
                return list(cached[1])
        merged = shapely.union_all([part for index in built for part in index.coverage()])
        parts = [g for g in shapely.get_parts(merged) if isinstance(g, shapely.Polygon)]
        with self._lock:
            self._coverage = (built, parts)
        return list(parts)
