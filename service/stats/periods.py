"""Reporting periods: a day, an ISO week, a month, a quarter or a year, counted in China local time.

Counties count days in Beijing time (UTC+8, no daylight saving), so a period's boundaries are local midnights;
the database stores UTC, and :attr:`Period.start`/:attr:`Period.end` are those boundaries in UTC (the end is
exclusive). Accepted forms::

    2025            the year
    2025-Q4         a quarter
    2025-11         a month
    2025-W45        an ISO week (Monday to Sunday)
    2025-11-03      a day
    2025-11-01..2025-11-15   an inclusive range of days
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone

from service.errors import InputError

CHINA_TZ = timezone(timedelta(hours=8), "UTC+08:00")

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_WEEK = re.compile(r"^(\d{4})-[Ww](\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days ``first_day`` … ``last_day`` (inclusive), labelled as the user wrote them."""

    label: str
    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        """The first local midnight, in UTC."""
        return datetime.combine(self.first_day, time(), CHINA_TZ).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The local midnight after the last day, in UTC (exclusive)."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), CHINA_TZ).astimezone(UTC)

    def days(self) -> list[date]:
        """Every local day of the period, in order."""
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]

    def contains(self, at: datetime) -> bool:
        """Whether a UTC instant falls inside the period."""
        return self.start <= at < self.end


def local_date(at: datetime) -> date:
    """The China-local calendar day of an instant (how counties file a fire)."""
    return at.astimezone(CHINA_TZ).date()


def local_time(at: datetime) -> datetime:
    """An instant in China local time, for display."""
    return at.astimezone(CHINA_TZ)


def _day(text: str, label: str) -> date:
    match = _DAY.match(text)
    if not match:
        raise InputError(f"{text!r} is not a day (YYYY-MM-DD)", field="period")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise InputError(f"{label!r}: {exc}", field="period") from None


#: Years a period may fall in: the calendar arithmetic (local midnights in UTC, the day after the last) must stay
#: within what Python's dates hold; no straw is burnt before 1970 in these records.
FIRST_YEAR, LAST_YEAR = 1970, 9998


def parse_period(text: str) -> Period:
    """Parse one of the forms in the module docstring; :class:`InputError` names the field otherwise (years
    :data:`FIRST_YEAR`–:data:`LAST_YEAR`)."""
    period = _parse_period(text)
    for day in (period.first_day, period.last_day):
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise InputError(f"{text.strip()!r}: years {FIRST_YEAR}–{LAST_YEAR} only, not {day.year}", field="period")
    return period


def _parse_period(text: str) -> Period:
    label = text.strip()
    # Every form starts with its year. isdecimal, not isdigit: "²025" is all digits to isdigit, but int() and the
    # patterns below (\d) take only decimal digits, so it must fall through to "not a period", not a ValueError.
    if label[:4].isdecimal() and not FIRST_YEAR <= int(label[:4]) <= LAST_YEAR:
        raise InputError(f"{label!r}: years {FIRST_YEAR}–{LAST_YEAR} only, not {int(label[:4])}", field="period")
    if ".." in label:
        first_text, _, last_text = label.partition("..")
        first, last = _day(first_text.strip(), label), _day(last_text.strip(), label)
        if last < first:
            raise InputError(f"{label!r}: the range ends before it starts", field="period")
        return Period(label, first, last)
    if match := _YEAR.match(label):
        year = int(match[1])
        return Period(label, date(year, 1, 1), date(year, 12, 31))
    if match := _QUARTER.match(label):
        year, quarter = int(match[1]), int(match[2])
        first = date(year, 3 * quarter - 2, 1)
        following = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
        return Period(f"{year}-Q{quarter}", first, following - timedelta(days=1))
    if match := _MONTH.match(label):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise InputError(f"{label!r}: month must be 1–12", field="period")
        following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        return Period(f"{year}-{month:02d}", date(year, month, 1), following - timedelta(days=1))
    if match := _WEEK.match(label):
        year, week = int(match[1]), int(match[2])
        try:
            monday = date.fromisocalendar(year, week, 1)
        except ValueError:
            raise InputError(f"{label!r}: {year} has no ISO week {week}", field="period") from None
        return Period(f"{year}-W{week:02d}", monday, monday + timedelta(days=6))
    if _DAY.match(label):
        day = _day(label, label)
        return Period(day.isoformat(), day, day)
    raise InputError(
        f"{label!r} is not a period; use 2025, 2025-Q4, 2025-11, 2025-W45, 2025-11-03 or 2025-11-01..2025-11-15",
        field="period",
    )
