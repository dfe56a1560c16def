"""Business hours: the calendar SLAs and need-by dates are counted in.

Support promises ("within 2 business hours", "need by: 1 business day") only
mean something against the team's calendar: its time zone, working days,
working hours and holidays. Everything here takes and returns aware datetimes
and works in UTC internally; local time is used only to lay out each day's
working windows, so weekends, holidays and DST changes come out right.

A "business day" as a duration is one working day's worth of business hours
(8 with 09:00-17:00): Monday 10:00 + 1 business day = Tuesday 10:00. As a
need-by date, "N business days" is the Nth business day after today.
`rules/sla.toml` holds the calendar, the response targets per priority and
the tier SLA table (SPEC §7); `mailproc.rules.sla` reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo

UTC = timezone.utc
MAX_DAYS = 3700  # give up after ~10 years without a working window (a calendar with no working days)
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_TARGET = re.compile(r"(\d+(?:\.\d+)?)\s*(business\s+)?(minutes?|mins?|m|hours?|h|days?|d)", re.I)
_UNIT = {"m": "minute", "h": "hour", "d": "day"}


@dataclass(frozen=True)
class Target:
    """A promised duration: '1h' (clock), '2 business hours', '1 business day'."""
    amount: float
    unit: str  # minute | hour | day
    business: bool
    text: str  # as written in the rule file

    @property
    def phrase(self) -> str:
        """For people: 'within 2 business hours', 'within 1 hour'."""
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        unit = self.unit if amount == 1 else self.unit + "s"
        return f"within {amount} {'business ' if self.business else ''}{unit}"


def parse_target(text: str) -> Target:
    """'1h', '30 minutes', '2 business hours', '1 business day', '2 days' -> Target."""
    m = _TARGET.fullmatch(str(text).strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. \"1h\", \"2 business hours\", "
                         "\"1 business day\")")
    return Target(float(m.group(1)), _UNIT[m.group(3)[0].lower()], bool(m.group(2)), str(text).strip())


@dataclass(frozen=True)
class BusinessCalendar:
    tz: tzinfo
    working_days: frozenset[int]  # 0 = Monday
    windows: tuple[tuple[time, time], ...]  # working hours of a working day, sorted, local time
    holidays: frozenset[date]
    # A country's public holidays (the `holidays` package: a mapping of date -> name that
    # fills itself in year by year), beside the dates listed by hand; None: none.
    public: Mapping[date, str] | None = field(default=None, compare=False, hash=False)

    @property
    def day_hours(self) -> float:
        """Business hours in one working day (the length of '1 business day')."""
        return sum((_seconds(end) - _seconds(start)) for start, end in self.windows) / 3600

    def is_business_day(self, day: date) -> bool:
        return (day.weekday() in self.working_days and day not in self.holidays
                and (self.public is None or day not in self.public))

    def _windows_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """That local day's working windows as UTC instants (DST-correct)."""
        if not self.is_business_day(day):
            return []
        return [(datetime.combine(day, start, self.tz).astimezone(UTC),
                 datetime.combine(day, end, self.tz).astimezone(UTC)) for start, end in self.windows]

    def _local_day(self, t: datetime) -> date:
        return _aware(t).astimezone(self.tz).date()

    def is_business_time(self, t: datetime) -> bool:
        t = _aware(t)
        return any(start <= t < end for start, end in self._windows_on(self._local_day(t)))

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        """The instant `hours` business hours after `start` (UTC-aware).

        Time outside working hours does not count: Friday 16:30 + 2 business
        hours is Monday 10:30. A result that lands exactly on the end of a
        window stays there (Friday 16:30 + 0.5 h = Friday 17:00).
        """
        if hours < 0:
            raise ValueError("hours must not be negative")
        start = _aware(start).astimezone(UTC)
        if hours == 0:
            return start
        remaining = timedelta(hours=hours)
        day = self._local_day(start)
        for _ in range(MAX_DAYS):
            for w_start, w_end in self._windows_on(day):
                if w_end <= start:
                    continue
                begin = max(w_start, start)
                available = w_end - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += timedelta(days=1)
        raise ValueError("the business calendar has no working hours")

    def add_business_days(self, start: datetime | date, days: int) -> date:
        """The need-by date: the `days`-th business day after start's local date.

        "1 day in future" is the next business day: Friday -> Monday,
        Saturday -> Monday, Thursday before a Friday holiday -> Monday.
        """
        day = self._local_day(start) if isinstance(start, datetime) else start
        for _ in range(days):
            day += timedelta(days=1)
            for _ in range(MAX_DAYS):
                if self.is_business_day(day):
                    break
                day += timedelta(days=1)
            else:
                raise ValueError("the business calendar has no working days")
        return day

    def business_hours_between(self, a: datetime, b: datetime) -> float:
        """Business hours from a to b (negative if b is before a)."""
        a, b = _aware(a).astimezone(UTC), _aware(b).astimezone(UTC)
        if b < a:
            return -self.business_hours_between(b, a)
        total = timedelta(0)
        day, last = self._local_day(a), self._local_day(b)
        while day <= last:
            for w_start, w_end in self._windows_on(day):
                begin, end = max(w_start, a), min(w_end, b)
                if end > begin:
                    total += end - begin
            day += timedelta(days=1)
        return total.total_seconds() / 3600

    def target_hours(self, target: Target) -> float:
        """A target's length in hours: business hours for business targets, else clock hours."""
        per_day = self.day_hours if target.business else 24
        return target.amount * {"minute": 1 / 60, "hour": 1, "day": per_day}[target.unit]

    def deadline(self, target: Target, start: datetime) -> datetime:
        """When `target` runs out, counted from `start` (UTC-aware)."""
        hours = self.target_hours(target)
        if target.business:
            return self.add_business_hours(start, hours)
        return _aware(start).astimezone(UTC) + timedelta(hours=hours)

    def elapsed_hours(self, target: Target, a: datetime, b: datetime) -> float:
        """Hours from a to b in the target's sense (business or clock)."""
        if target.business:
            return self.business_hours_between(a, b)
        return (_aware(b) - _aware(a)).total_seconds() / 3600


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: business time needs aware datetimes")
    return t


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second
