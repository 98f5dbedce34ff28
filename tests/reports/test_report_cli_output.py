"""``strawfire report`` with an output path it cannot write: one line on stderr and exit status 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.reports import cli
from tests.reports.conftest import RULES
from tests.reports.test_report_cli import Invoke, run  # noqa: F401  (the command fixture)


def test_an_output_path_that_is_a_folder_is_a_one_line_error(run: Invoke, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "reports.csv"
    folder.mkdir()
    (folder / "keep.txt").write_text("not to be replaced")
    result = run("--period", "2025-11", "--out", str(folder), "--rules", str(RULES))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(folder) in result.output
    assert (folder / "keep.txt").read_text() == "not to be replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports.csv"]  # no temporary file left behind


def test_a_folder_it_may_not_write_to_is_a_one_line_error(
    run: Invoke,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tests run as root, where chmod does not deny writing: refuse the temporary file as a read-only folder does.
    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "mkstemp", denied)
    out = tmp_path / "fires.csv"
    result = run("--period", "2025-11", "--out", str(out), "--rules", str(RULES))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cannot write the report: Permission denied" in result.output
    assert not out.exists()
