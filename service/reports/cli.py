"""``strawfire report``: a period's report for an area as PDF, XLSX or the provincial CSV.

Mounted by ``service.cli`` as ``app.command("report")(report)``. Errors are one line on stderr with exit status 2,
as everywhere in the ``strawfire`` command; a failed report leaves no partial file behind.

The CSV (the fire-point list) has no scores and is made without the scoring rules: ``--rules`` and
``--rules-version`` are not read for it, and a period no rules version covers still gets its list.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.config import get_settings
from service.errors import InputError, StrawfireError
from service.reports.output import ReportFormat, write_report

if TYPE_CHECKING:  # the builders import matplotlib and openpyxl: only when a report is made
    from service.reports.data import PointsData, ReportData


def _format_of(out: Path, given: ReportFormat | None) -> ReportFormat:
    if given is not None:
        return given
    try:
        return ReportFormat(out.suffix.lower().lstrip("."))
    except ValueError:
        raise InputError(f"cannot tell the format from {out.name!r}: give --format pdf, xlsx or csv") from None


def report(
    period: Annotated[
        str,
        typer.Option(
            help="2025, 2025-Q4, 2025-11, 2025-W45, 2025-11-03 or 2025-11-01..2025-11-15 (days in Beijing time)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="File to write; its suffix gives the format unless --format is given.")],
    area: Annotated[
        str | None,
        typer.Option(help="A unit code; a prefecture code such as 220100 covers every unit under it. Default: all."),
    ] = None,
    report_format: Annotated[
        ReportFormat | None, typer.Option("--format", help="pdf (charts and map), xlsx (tables) or csv (fire points).")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Folder of scoring-rules files (default: the configured folder, ./rules).")
    ] = None,
    rules_version: Annotated[
        str | None, typer.Option(help="Score with this rules version instead of the one in force in the period.")
    ] = None,
) -> None:
    """Write the report of a period for an area: ranked units, response times, fire points, trend, map."""
    try:
        _report(period, out, area, report_format, rules, rules_version)
    except StrawfireError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _report(
    period_text: str,
    out: Path,
    area: str | None,
    given: ReportFormat | None,
    rules: Path | None,
    rules_version: str | None,
) -> None:
    from service.db import make_session_factory, open_database
    from service.reports.data import ReportData, collect, collect_points
    from service.stats.periods import parse_period
    from service.stats.rules import RuleBook
    from service.stats.service import deadline_policy, rules_dir

    chosen = _format_of(out, given)
    period = parse_period(period_text)
    settings = get_settings()
    # The fire-point list has no scores: it needs no rules folder, and no version in force in the period.
    rulebook = None if chosen is ReportFormat.CSV else RuleBook.load(rules or rules_dir(settings))
    if not out.parent.is_dir():
        raise InputError(f"folder {out.parent} does not exist", source=str(out))
    if out.is_dir():  # checked before the database work: the report would only fail at the last step
        raise InputError("is a folder: give a file name", source=str(out))
    engine = open_database(settings.effective_database_url)  # an unreachable database: one line, not a trace
    deadlines = deadline_policy(settings.alerts)
    data: PointsData | ReportData
    try:
        with make_session_factory(engine)() as session:
            if rulebook is None:
                data = collect_points(session, period, area, deadlines)
            else:
                data = collect(session, period, area, rulebook, deadlines, version=rules_version)
    finally:
        engine.dispose()
    try:
        summary = _write_atomically(chosen, data, out)
    except OSError as exc:  # a read-only folder, a full disk, a folder made there meanwhile: one line, not a trace
        raise InputError(f"cannot write the report: {exc.strerror or exc}", source=str(out)) from None
    scored = f", rules {data.selection.version.rules.version}" if isinstance(data, ReportData) else ""
    typer.echo(f"wrote {out}: {summary} ({period.label}, area {data.area_code or 'all'}{scored})")
    for warning in data.warnings if isinstance(data, ReportData) else []:
        typer.echo(f"warning: {warning}", err=True)


def _write_atomically(chosen: ReportFormat, data: PointsData | ReportData, out: Path) -> str:
    """Write to a temporary file beside ``out``, then rename it over ``out``: no partial report is ever left."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
    os.close(descriptor)
    partial = Path(temporary)
    try:
        summary = write_report(chosen, data, partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return summary
