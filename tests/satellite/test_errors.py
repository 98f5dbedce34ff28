"""Exception hierarchy and secret redaction."""

from __future__ import annotations

import pytest

from satellite.errors import (
    REDACTED,
    FirmsEmptyError,
    FirmsError,
    FirmsFormatError,
    SatelliteError,
    redact,
)

KEY = "0123456789abcdef0123456789abcdef"


def test_redact_removes_every_occurrence() -> None:
    url = f"https://firms.modaps.eosdis.nasa.gov/api/area/csv/{KEY}/VIIRS_SNPP_NRT/124,43,127,46/1?k={KEY}"
    out = redact(url, KEY)
    assert KEY not in out
    assert out.count(REDACTED) == 2
    assert out.startswith("https://firms.modaps.eosdis.nasa.gov/api/area/csv/***/VIIRS_SNPP_NRT/")


def test_redact_several_secrets_longest_first() -> None:
    # "abc" is inside the longer secret; masking it first would leave "***def" behind.
    assert redact("token abcdef and abc", "abc", "abcdef") == "token *** and ***"


@pytest.mark.parametrize("secret", ["", None])
def test_redact_ignores_unset_secrets(secret: str | None) -> None:
    assert redact("nothing to hide", secret) == "nothing to hide"


def test_redact_custom_mask() -> None:
    assert redact(f"key={KEY}", KEY, mask="<MAP_KEY>") == "key=<MAP_KEY>"


def test_hierarchy_has_one_root() -> None:
    assert issubclass(FirmsEmptyError, FirmsFormatError)
    assert issubclass(FirmsFormatError, FirmsError)
    assert issubclass(FirmsError, SatelliteError)
    assert not issubclass(SatelliteError, ValueError)


def test_format_error_carries_location() -> None:
    err = FirmsFormatError("missing x", source_name="a.csv", line=1, field="x", missing=["x", "y"])
    assert str(err) == "a.csv:1: missing x"
    assert (err.source_name, err.line, err.field, err.missing) == ("a.csv", 1, "x", ("x", "y"))
    assert str(FirmsFormatError("bad", source_name="b.csv")) == "b.csv: bad"
