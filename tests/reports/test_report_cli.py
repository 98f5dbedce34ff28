"""``strawfire report`` as mounted in the main command: formats, the rules folder, one-line errors."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from service.config import get_settings
from service.errors import InputError
from service.reports.cli import ReportFormat, _format_of, report
from service.reports.data import ReportData
from service.reports.tables import rules_rows
from tests.reports.conftest import RULES

Scenario = tuple[str, sessionmaker[Session], dict[str, int]]
Invoke = Callable[..., Result]

app = typer.Typer()
app.command("report")(report)  # the line service/cli.py uses


@app.callback()
def _main() -> None:
    """A group, as the real ``strawfire`` app is."""


@pytest.fixture
def run(scenario_db: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    url, _, _ = scenario_db
    monkeypatch.chdir(tmp_path)  # no strawfire.toml, no ./rules: the folder is given with --rules
    for key in [k for k in os.environ if k.startswith("STRAWFIRE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STRAWFIRE_DATABASE_URL", url)
    get_settings.cache_clear()

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, ["report", *args])

    yield invoke
    get_settings.cache_clear()


def test_csv_and_xlsx(run: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "fires.csv"
    result = run("--period", "2025-11", "--area", "220100", "--out", str(out), "--rules", str(RULES))
    assert result.exit_code == 2  # no unit of 220100 in this database
    assert "no imported unit is in area 220100" in result.output
    assert not out.exists()
    result = run("--period", "2025-11", "--area", "229900", "--out", str(out), "--rules", str(RULES))
    assert result.exit_code == 0, result.output
    assert "8 fire points (2025-11, area 229900)\n" in result.output  # the list has no scores: no rules named
    assert out.read_bytes().startswith("\ufeff序号".encode())
    book_path = tmp_path / "report.data"
    result = run(
        "--period", "2025-08", "--out", str(book_path), "--format", "xlsx", "--rules", str(RULES)
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rules = dict(load_workbook(io.BytesIO(book_path.read_bytes()))["Rules"].iter_rows(min_row=2, values_only=True))
    assert rules["version"] == "example-v1"  # August 2025 is scored with the rules then in force
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fires.csv", "report.data"]  # no temporary files left


def test_counts_in_english_agree_with_their_noun(run: Invoke, november: ReportData, tmp_path: Path) -> None:
    """A day with one fire said "1 fire points"; the rules sheet said "≥ 1 violations"."""
    out = tmp_path / "day.csv"
    result = run("--period", "2025-11-04", "--area", "229900", "--out", str(out), "--rules", str(RULES))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 1 fire point (2025-11-04," in result.output
    sanctions = [row[0] for row in rules_rows(november) if str(row[0]).startswith("sanction")]
    assert sanctions[:2] == [
        "sanction 1: ≥ 1 charged violation (self-found not counted)",
        "sanction 2: ≥ 2 charged violations (self-found not counted) or score < 60",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--period", "2025-13", "--out", "x.csv"), "month must be 1–12"),
        (("--period", "2025-11", "--out", "x.doc"), "cannot tell the format from 'x.doc'"),
        (("--period", "2025-11", "--out", "missing/x.csv"), "does not exist"),
        # The scored formats: the fire-point list (CSV) needs no rules (tests/reports/test_statfix_rules_coverage.py).
        (("--period", "2019-11", "--out", "x.xlsx"), "no scoring rules in force on 2019-11-01…2019-11-30"),
        (("--period", "2025-11", "--out", "x.pdf", "--rules-version", "v9"), "no scoring rules version 'v9'"),
    ],
)
def test_errors_are_one_line(run: Invoke, args: tuple[str, ...], message: str) -> None:
    result = run(*args, "--rules", str(RULES))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_format_from_the_suffix() -> None:
    assert _format_of(Path("r.PDF"), None) is ReportFormat.PDF
    assert _format_of(Path("r.xlsx"), None) is ReportFormat.XLSX
    assert _format_of(Path("r.txt"), ReportFormat.CSV) is ReportFormat.CSV
    with pytest.raises(InputError):
        _format_of(Path("r"), None)
