"""Users: creation, authentication, and the scope each role sees."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from service.auth.security import TokenClaims, hash_password, password_stamp, verify_password
from service.auth.tables import User
from service.errors import ConflictError, InputError, NotFoundError, StrawfireError
from service.incidents.states import Role
from service.incidents.tables import Incident
from service.regions.service import unit_levels
from service.regions.types import RegionLevel

UNIT_ROLES = frozenset({Role.PATROL, Role.SUPERVISOR})
#: The levels a patrol or supervisor user can answer for: an incident carries its township and its county only
#: (:attr:`Principal.incident_filter`), so an account on a village, a grid cell or a city would see no incident.
USER_UNIT_LEVELS = (RegionLevel.TOWNSHIP, RegionLevel.COUNTY)
MIN_PASSWORD_LENGTH = 8


class PublicPasswordError(StrawfireError):
    """A login with the public DEMO password outside demo mode (:func:`authenticate`); the login route answers 401
    with this message."""


def _public_password() -> str:
    # Imported here: service.demo builds the DEMO users with this module's create_user.
    from service.demo import DEMO_PASSWORD

    return DEMO_PASSWORD


def is_public_password(password: str) -> bool:
    """True for the DEMO password, printed in the README and by ``strawfire demo load``: it opens nothing outside
    demo mode."""
    return password == _public_password()


def _demo_usernames() -> frozenset[str]:
    from service.demo import DEMO_USERS

    return frozenset(name for name, _role, _unit in DEMO_USERS)


def _refuse_public_password(password: str, what: str) -> None:
    if is_public_password(password):
        raise InputError(
            f"{what} cannot be the DEMO password: it is printed in the README, so anyone could log in with it",
            field="password",
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user's name, role and the unit they answer for."""

    username: str
    role: Role
    unit_code: str | None = None

    def can_read_all(self) -> bool:
        """Evaluators and admins see every unit."""
        return self.role in (Role.EVALUATOR, Role.ADMIN, Role.SYSTEM)

    def incident_filter(self) -> ColumnElement[bool]:
        """SQL condition for the incidents this principal may see.

        A patrol user answers for a township (or for a county where only counties are loaded); a supervisor for
        a county. Either sees the incidents whose township or county is their unit.
        """
        if self.can_read_all():
            return true()
        if self.role in UNIT_ROLES and self.unit_code:
            return or_(Incident.township_code == self.unit_code, Incident.county_code == self.unit_code)
        return false()

    def can_see(self, incident: Incident) -> bool:
        """The same rule as :meth:`incident_filter`, for one loaded incident."""
        if self.can_read_all():
            return True
        return (
            self.role in UNIT_ROLES
            and self.unit_code is not None
            and self.unit_code in (incident.township_code, incident.county_code)
        )


SYSTEM = Principal("strawfire", Role.SYSTEM)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("no such user")


def check_user_unit(session: Session, role: Role, unit_code: str | None) -> None:
    """Refuse a unit a new user could never work in (``strawfire users add`` checks with it before
    :func:`create_user`, which stores what it is given).

    Refused, naming the field ``unit``: a unit code that is not imported (a typo'd account saw nothing, for ever),
    and any code while no unit is imported at all (:func:`~service.regions.service.unit_levels`: import the
    regions, or load the DEMO region, before adding the teams); a unit of a level no incident is assigned to
    (:data:`USER_UNIT_LEVELS`); and a unit given to any other role, which answers for no unit (admins and
    evaluators see every unit, devices none): it was dropped without a word, and whoever typed it believed the
    account was limited to it.
    """
    if role is Role.SYSTEM:
        return  # create_user refuses the role itself
    if role not in UNIT_ROLES:
        if unit_code:
            raise InputError(
                f"{role.value} users answer for no unit (only patrol and supervisor users do): leave out --unit",
                field="unit",
            )
        return
    if not unit_code:
        return  # create_user refuses it
    levels = unit_levels(session, unit_code, field="unit")
    if not any(level in USER_UNIT_LEVELS for level in levels):
        raise InputError(
            f"{unit_code} is a {levels[0].value}: a {role.value} user answers for a township or a county "
            "(the units incidents are assigned to)",
            field="unit",
        )


def create_user(session: Session, username: str, password: str, role: Role, unit_code: str | None) -> User:
    """Add a user; patrol and supervisor users must name their unit. Whether that unit is imported is
    :func:`check_user_unit`'s to say (the CLI checks what a person typed; tests and the DEMO set up their own).

    The public DEMO password is refused for every user but the generated DEMO users (:func:`service.demo.load_demo`
    gives it them; outside demo mode it opens nothing, :func:`authenticate`)."""
    username = username.strip()
    if not username or len(username) > 64:
        raise InputError("a username has 1–64 characters", field="username")
    if role is Role.SYSTEM:
        raise InputError("the system role is reserved", field="role")
    if role in UNIT_ROLES and not unit_code:
        raise InputError(
            f"a {role.value} user needs --unit (the township or county code they answer for)", field="unit"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if username not in _demo_usernames():
        _refuse_public_password(password, "a password")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists")
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role.value,
        unit_code=unit_code if role in UNIT_ROLES else None,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> User:
    """Give a user a new password; every token issued under the old one stops working (their stamp changes).

    The DEMO password is refused for everyone, DEMO users included: it is public, and giving it back to a DEMO user
    on a production database reopened the door the start-up check (``refuse_public_demo_passwords``) closes."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", field="password")
    _refuse_public_password(password, "a new password")
    user = _user(session, username)
    user.password_hash = hash_password(password)
    session.flush()
    return user


def set_active(session: Session, username: str, active: bool, *, demo: bool = False) -> User:
    """Disable a user (their tokens and logins are refused at once) or enable them again.

    Enabling a user who still has the public DEMO password is refused outside demo mode (``demo`` False, as the
    ``strawfire users enable`` of a production deployment is): give them a password first (``set_password``)."""
    user = _user(session, username)
    if active and not demo and verify_password(user.password_hash, _public_password()):
        raise InputError(
            f"{user.username} still has the public DEMO password: give them a password first "
            f"(strawfire users passwd {user.username} --password-stdin), then enable them",
            field="password",
        )
    user.active = active
    session.flush()
    return user


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    return user


def authenticate(session: Session, username: str, password: str, *, demo: bool = False) -> User | None:
    """The active user with these credentials, or None (the same answer for unknown user and bad password).

    Outside demo mode (``demo`` False) the public DEMO password is refused for every name, before any user is
    looked up or any hash checked (the answer says nothing of the account): :class:`PublicPasswordError`. A DEMO
    user left with it on a production database (disabled, then enabled again while the service ran) would otherwise
    be an account anyone can sign in as; the start-up check alone only caught it at the next start.
    """
    if not demo and is_public_password(password):
        raise PublicPasswordError(
            "the DEMO password is public and opens no account outside demo mode: ask an administrator to give "
            "this account a password (strawfire users passwd NAME --password-stdin)"
        )
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        # Spend the same time as a real check so that usernames cannot be probed by timing.
        verify_password(_dummy_hash(), password)
        return None
    return user if verify_password(user.password_hash, password) else None


def user_of_token(session: Session, claims: TokenClaims) -> User | None:
    """The user a valid token's claims name, or None when that user is gone or disabled, or the token was issued
    under an earlier password (its stamp, :func:`~service.auth.security.password_stamp`, no longer matches)."""
    user = session.scalar(select(User).where(User.username == claims.username, User.active.is_(True)))
    if user is not None and claims.stamp is not None and claims.stamp != password_stamp(user.password_hash):
        return None  # issued under an earlier password: revoked by the change
    return user


def principal_of(user: User) -> Principal:
    """The principal a user acts as."""
    return Principal(user.username, Role(user.role), user.unit_code)
