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
    "FirmsApiError",
    "FirmsAuthError",
    "FirmsBudgetError",
    "FirmsEmptyError",
    "FirmsError",
    "FirmsFormatError",
    "FirmsRateLimitError",
    "FirmsTransportError",
    "GeometryInputError",
    "HimawariFormatError",
    "RasterBandError",
    "RasterError",
    "RasterReadError",
    "SatelliteError",
    "SentinelHubAuthError",
    "SentinelHubError",
    "SentinelHubRateLimitError",
    "SentinelHubRequestError",
    "SentinelHubResponseError",
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


class FirmsApiError(FirmsError):
    """FIRMS answered, but with an error instead of CSV.

    FIRMS reports many errors as a short text body — often with status 200 (``Invalid MAP_KEY.``, ``Exceeding
    allowed transaction limit``) — so the poller recognises them from the body, not only from the status.
    Not retried: asking again with the same request gives the same answer.

    Attributes:
        source_name: the request, described without the MAP_KEY.
        status: the HTTP status, when there was a response.
        detail: the start of FIRMS's message, whitespace collapsed and the MAP_KEY masked.
    """

    key_wide = False
    """True when the error concerns the MAP_KEY itself, so every other request with it would fail the same way."""

    def __init__(self, message: str, *, source_name: str, status: int | None = None, detail: str = "") -> None:
        self.source_name = source_name
        self.status = status
        self.detail = detail
        super().__init__(f"{source_name}: {message}")


class FirmsAuthError(FirmsApiError):
    """The MAP_KEY was refused (invalid, expired or missing)."""

    key_wide = True


class FirmsRateLimitError(FirmsApiError):
    """FIRMS says the MAP_KEY's transaction limit is exhausted (its count, which may include other clients)."""

    key_wide = True


class FirmsTransportError(FirmsError):
    """No usable answer after every allowed attempt: 5xx, timeouts, refused connections, cut bodies; or, with 0
    attempts, a request not sent because the server's ``Retry-After`` outlasts what the request may wait.

    Attributes:
        source_name: the request, described without the MAP_KEY.
        attempts: how many requests were sent.
        reason: what went wrong on the last attempt (or why nothing was sent).
    """

    def __init__(self, *, source_name: str, attempts: int, reason: str) -> None:
        self.source_name = source_name
        self.attempts = attempts
        self.reason = reason
        plural = "s" if attempts != 1 else ""
        if attempts == 0:
            super().__init__(f"{source_name}: {reason}")
        else:
            super().__init__(f"{source_name}: no usable answer after {attempts} attempt{plural}: {reason}")


class FirmsBudgetError(FirmsError):
    """The local transaction budget has no room for the request within the allowed wait; nothing was sent.

    Attributes:
        source_name: the request, described without the MAP_KEY.
        wait_s: how long the request would have had to wait.
    """

    def __init__(self, *, source_name: str, cost: int, wait_s: float, limit: int, window_s: float) -> None:
        self.source_name = source_name
        self.wait_s = wait_s
        super().__init__(
            f"{source_name}: {cost} transaction(s) do not fit the budget of {limit} per {window_s:g} s "
            f"for another {wait_s:.1f} s; not sent"
        )


class HimawariFormatError(SatelliteError):
    """A Himawari L2 wildfire CSV cannot be read as a whole (no column header, missing columns, not UTF-8).

    Attributes:
        source_name: the name the caller gave the input.
        line: 1-based physical line, when the problem has one.
    """

    def __init__(self, message: str, *, source_name: str, line: int | None = None) -> None:
        self.source_name = source_name
        self.line = line
        where = source_name if line is None else f"{source_name}:{line}"
        super().__init__(f"{where}: {message}")


class GeometryInputError(SatelliteError):
    """A polygon layer (industrial sites, zones, permits, coverage) cannot be used.

    Attributes:
        source_name: the name the caller gave the input.
        feature: 0-based index of the offending feature, when there is one.
    """

    def __init__(self, message: str, *, source_name: str, feature: int | None = None) -> None:
        self.source_name = source_name
        self.feature = feature
        where = source_name if feature is None else f"{source_name} feature {feature}"
        super().__init__(f"{where}: {message}")


class RasterError(SatelliteError):
    """A raster scene, or the bands given for one, cannot be used by the fire rules.

    Attributes:
        source_name: the file (or the caller's name for in-memory bands) concerned.
        band: the rule's band name concerned (``B07``, ``F1``...), when there is one.
    """

    def __init__(self, message: str, *, source_name: str, band: str | None = None) -> None:
        self.source_name = source_name
        self.band = band
        where = source_name if band is None else f"{source_name}: band {band}"
        super().__init__(f"{where}: {message}")


class RasterReadError(RasterError):
    """The file cannot be opened or read as a georeferenced raster (missing, corrupt, no CRS)."""


class RasterBandError(RasterError):
    """A band the rule needs is missing, or has a dtype or shape the rule cannot use."""


class SentinelHubError(SatelliteError):
    """Something about a Sentinel Hub / Copernicus Data Space request failed.

    Messages never contain the OAuth client secret or access tokens: they are built from redacted text.
    """


class SentinelHubAuthError(SentinelHubError):
    """The OAuth token endpoint refused the credentials or could not be reached."""


class SentinelHubRequestError(SentinelHubError):
    """A request cannot be built from the given arguments (area too large, naive time, unknown collection)."""


class SentinelHubResponseError(SentinelHubError):
    """The service answered with an error status, or with a body that is not what was asked for.

    Attributes:
        status: the HTTP status code, when the service answered at all.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class SentinelHubRateLimitError(SentinelHubResponseError):
    """The service kept answering HTTP 429 (rate limited) and strawfire gave up within its bound.

    sentinelhub-py alone retries a 429 for as long as the service keeps sending it (a processing-unit quota that
    is spent for the month means forever): a scan hung without a word. strawfire stops after a bounded number of
    rate-limited answers or a bounded time, whichever comes first, and says so.

    Attributes:
        attempts: how many requests were answered 429 before giving up.
        elapsed_s: how long the call had been trying when it gave up (seconds).
    """

    def __init__(self, message: str, *, attempts: int, elapsed_s: float) -> None:
        self.attempts = attempts
        self.elapsed_s = elapsed_s
        super().__init__(message, status=429)


def redact(text: str, *secrets: str | None, mask: str = REDACTED) -> str:
    """Return ``text`` with every occurrence of each non-empty secret replaced by ``mask``.

    Empty or ``None`` secrets are ignored rather than "replaced": replacing the empty string would interleave
    the mask between every character, and an unset key is a normal state in tests and offline use.
    Longer secrets are replaced first so that a secret containing another one is masked whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, mask)
    return text
