"""One injectable clock, so retries and deadlines are tested without sleeping; and the one
way each kind of timestamp is written."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime


class Clock:
    """Wall-clock time as epoch seconds; tests swap in a `FrozenClock`."""

    def now(self) -> float:
        return time.time()


class FrozenClock(Clock):
    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


SYSTEM_CLOCK = Clock()


def monotonic() -> float:
    """Seconds on a clock that never goes back: for durations and deadlines only."""
    return time.monotonic()


def iso8601(epoch: float, *, timespec: str = "auto", zulu: bool = False) -> str:
    """ISO 8601 in UTC, the one formatter: `2026-12-01T10:00:00+00:00` (with microseconds
    when there are any, unless `timespec` says otherwise); `zulu` writes the zone as `Z`."""
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec=timespec)
    return text.removesuffix("+00:00") + "Z" if zulu else text


def rfc3339_seconds(epoch: float) -> str:
    """`2026-12-01T10:00:00Z`: whole seconds in Zulu time, the wire format of Mailgun's tag
    and webhook APIs (what `format: date-time` and Go's time.Time read)."""
    return iso8601(epoch, timespec="seconds", zulu=True)


def format_rfc2822(epoch: float, *, numeric_zone: bool = False) -> str:
    """Mailgun's date format: `Thu, 13 Oct 2011 18:02:00 GMT`; with `numeric_zone`,
    `… 18:02:00 +0000`, as its credentials API writes it."""
    return format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=not numeric_zone)


def parse_rfc2822(value: str) -> float | None:
    """Epoch seconds of an RFC 2822 date, or None; `-0000` (zone unknown) is taken as UTC."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def months_before(epoch: float, months: int) -> float | None:
    """The same day and time `months` calendar months earlier (the 31st becomes the month's
    last day); None before year 1."""
    when = datetime.fromtimestamp(epoch, UTC)
    year, month = divmod(when.year * 12 + when.month - 1 - months, 12)
    if year < 1:
        return None
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day).timestamp()
