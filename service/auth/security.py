"""Password hashing (argon2id) and signed access tokens (JWT, HS256)."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.db import utcnow

_HASHER = PasswordHasher()
ALGORITHM = "HS256"
# A patrol phone stays logged in for a shift; devices get long-lived tokens from `strawfire users token`.
ACCESS_TOKEN_TTL = timedelta(hours=12)


def hash_password(password: str) -> str:
    """An argon2id hash (salted; parameters stored in the hash)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; never raises on a bad hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def load_or_create_secret(data_dir: Path) -> str:
    """The token signing key: ``<data_dir>/secret_key`` (created 0600 on first use) unless configured."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Two processes starting on a fresh data folder (the web process and a worker) must end with one key, whole:
    # the key is written in full under a private name and then linked into place, which fails if the other
    # process got there first; its key is then the one. Creating the file itself exclusively left a moment when
    # the other process read it empty.
    partial = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
    finally:
        partial.unlink(missing_ok=True)
    return key


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says. ``stamp``: the :func:`password_stamp` it was issued under (None in tokens issued
    before stamps existed)."""

    username: str
    role: str
    stamp: str | None = None


def password_stamp(password_hash: str) -> str:
    """A short digest of a user's password hash, carried by their tokens: a new password changes it, and every
    token issued under the old one stops working (a leaked device token is revoked by a password change)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def create_token(
    secret: str, username: str, role: str, ttl: timedelta = ACCESS_TOKEN_TTL, *, stamp: str | None = None
) -> str:
    """A signed token naming the user and role, expiring after ``ttl``, with the user's :func:`password_stamp`."""
    now = utcnow()
    claims = {"sub": username, "role": role, "iat": now, "exp": now + ttl}
    if stamp is not None:
        claims["pwv"] = stamp
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> TokenClaims | None:
    """The claims of a valid, unexpired token; None otherwise."""
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError:
        return None
    stamp = payload.get("pwv")
    return TokenClaims(str(payload["sub"]), str(payload.get("role", "")), str(stamp) if stamp is not None else None)
