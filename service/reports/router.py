"""``GET /api/v1/reports/{format}``: the report ``strawfire report`` writes, for those who file it without a shell.

Who: evaluators and admins for any area, county supervisors for their unit and what is in it (the scope of the
statistics); patrol users get their own figures on the scores page, not the county's report (403). The file is
built on request (a PDF of a city's month takes a few seconds: FastAPI runs this handler in a worker thread) and
nothing is kept on the server.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, HTTPException, Response, status

from service.deps import Reader, SessionDep, SettingsDep
from service.incidents.states import Role, a_role
from service.reports.output import MEDIA_TYPES, ReportFormat, write_report
from service.stats import service as stats
from service.stats.periods import parse_period
from service.stats.queries import load_units
from service.stats.router import AreaQuery, PeriodQuery

router = APIRouter(prefix="/api/v1", tags=["reports"])


@router.get(
    "/reports/{report_format}",
    response_class=Response,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "The report file"}},
)
def get_report(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    report_format: ReportFormat,
    period: PeriodQuery,
    area: AreaQuery = None,
) -> Response:
    """The period's report for the area as PDF (charts, map, ranked table), XLSX (tables) or CSV (fire points)."""
    from service.reports.data import PointsData, ReportData, collect, collect_points
    from service.stats.rules import RuleBook

    if principal.role is Role.PATROL:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{a_role(principal.role)} may not download reports")
    parsed = parse_period(period)
    try:
        chosen = stats.resolve_area(principal, area, load_units(session))
    except stats.ScopeError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    deadlines = stats.deadline_policy(settings.alerts)
    data: PointsData | ReportData
    if report_format is ReportFormat.CSV:  # the fire-point list has no scores and needs no rules
        data = collect_points(session, parsed, chosen.code, deadlines)
    else:
        data = collect(session, parsed, chosen.code, RuleBook.load(stats.rules_dir(settings)), deadlines)
    with tempfile.TemporaryDirectory(prefix="strawfire-report-") as folder:
        path = Path(folder) / f"report.{report_format.value}"
        write_report(report_format, data, path)
        content = path.read_bytes()
    name = f"strawfire-{parsed.label}-{chosen.code or 'all'}.{report_format.value}"
    return Response(
        content,
        media_type=MEDIA_TYPES[report_format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
