"""The service's exception tree: one root, domain meanings, no HTTP.

``service.http_errors`` maps these onto status codes; nothing below a router raises ``HTTPException``.
Messages name the file, row and field a user has to fix, and never contain secrets.
"""

from __future__ import annotations


class StrawfireError(Exception):
    """Root of every error strawfire raises on purpose."""


class ConfigError(StrawfireError):
    """The settings (environment, TOML file) are invalid."""


class InputError(StrawfireError):
    """Input from a user or a file is invalid; the message says where (file, row, field) and why."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        location: str | None = None,
        field: str | None = None,
    ) -> None:
        parts = [p for p in (source, location, f"field {field!r}" if field else None) if p]
        super().__init__(f"{', '.join(parts)}: {message}" if parts else message)
        self.source = source
        self.location = location  # "line 7", "feature 3", "record 12"
        self.field = field
        self.reason = message


class UnknownCRSError(InputError):
    """A coordinate reference system name that strawfire does not know."""


class NotFoundError(StrawfireError):
    """A requested record does not exist (or is outside the caller's scope)."""


class ConflictError(StrawfireError):
    """The request conflicts with the current state (for example an illegal transition)."""


class StorageError(StrawfireError):
    """The service cannot write its own files (a full disk, a read-only mount): the deployment must change, the
    request was fine and nothing of it was stored."""
