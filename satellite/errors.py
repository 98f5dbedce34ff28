"""Exceptions of the ``satellite`` package, and secret redaction for their messages.

Every error raised on purpose by this package derives from :class:`SatelliteError`, so a caller (the service's
ingest job, the CLI) can catch one type and report it without also swallowing programming errors such as
``TypeError``.

FIRMS authenticates with a MAP_KEY that sits *inside the request path* (``/api/area/csv/{MAP_KEY}/...``), so
any URL, source name or response text that reaches an exception message or a log line can leak it. Messages
built here never contain the key as long as callers pass names through :func:`redact` first; the reader itself
never sees the key.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "REDACTED",
    "FirmsEmptyError",
    "FirmsError",
    "FirmsFormatError",
    "SatelliteError",
    "redact",
]

REDACTED = "***"


class SatelliteError(Exception):
    """Root of every deliberate error in the ``satellite`` package."""


class FirmsError(SatelliteError):
    """Something about FIRMS data or the FIRMS service is wrong."""


class FirmsFormatError(FirmsError):
    """A FIRMS CSV cannot be read as a whole (no usable header, missing columns, undecodable bytes).

    Row-level problems are *not* raised: the reader reports them as rejected rows and carries on, because one
    corrupt line must not hide the other detections of a pass. This error is for problems that make every row
    meaningless.

    Attributes:
        source_name: the name the caller gave the input (a file name, never a URL with a key in it).
        line: 1-based physical line in the input, when the problem has one.
        field: the column concerned, when there is one.
        missing: required columns absent from the header (empty unless that is the problem).
    """

    def __init__(
        self,
        message: str,
        *,
        source_name: str,
        line: int | None = None,
        field: str | None = None,
        missing: Iterable[str] = (),
    ) -> None:
        self.source_name = source_name
        self.line = line
        self.field = field
        self.missing: tuple[str, ...] = tuple(missing)
        where = source_name if line is None else f"{source_name}:{line}"
        super().__init__(f"{where}: {message}")


class FirmsEmptyError(FirmsFormatError):
    """The input holds nothing at all, not even a header.

    Kept apart from other format errors because an empty body usually means a transport problem (a cut
    connection, a proxy), whereas a header with no rows is FIRMS saying "no fires here".
    """


def redact(text: str, *secrets: str | None, mask: str = REDACTED) -> str:
    """Return ``text`` with every occurrence of each non-empty secret replaced by ``mask``.

    Empty or ``None`` secrets are ignored rather than "replaced": replacing the empty string would interleave
    the mask between every character, and an unset key is a normal state in tests and offline use.
    Longer secrets are replaced first so that a secret containing another one is masked whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, mask)
    return text
