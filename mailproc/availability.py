"""When an agent works: the `hours =` grammar of `[agent:NAME]` and the instants it means.

Seed 001: agents set themselves unavailable "to prevent off-hours
assignment", and each has a window ("M-F ~7am-1pm"). A window is written in
the agent's own wall-clock time and turned into instants through zoneinfo, so
a 07:00 start is 07:00 local in summer and in winter, and the short and long
nights of a DST change come out right.

Grammar (comma-separated windows):

    Mon-Fri 07:00-13:00, Sat 09:00-12:00
    Mon-Fri 09:00-12:30, 13:30-17:00      a window without days takes the days before it
    Mon Wed Fri 17:00-20:00               several day groups, separated by spaces
    Daily 22:00-02:00                     ends before it starts: runs into the next day
    Sat-Sun 00:00-24:00                   24:00 is the end of the day

Days are Mon … Sun (or full names), ranges may wrap (Fri-Mon). A window
belongs to the day it starts on. A wall time that does not exist (the hour
skipped in spring) is read with the offset before the change, i.e. one hour
later on the new clock; a wall time that happens twice (autumn) is its first
occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_DAYS = 3700  # give up looking for a window after ~10 years (holidays covering every one)
UTC = timezone.utc

_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_EXAMPLE = "e.g. \"Mon-Fri 07:00-13:00, Sat 09:00-12:00\""


@dataclass(frozen=True)
class Window:
    """One working window: it starts at `start` (wall clock) on each of `days` and lasts
    `minutes` of wall-clock time (at most a day; longer means two windows)."""
    days: frozenset[int]  # 0 = Monday
    start: time
    minutes: int


@dataclass(frozen=True)
class Schedule:
    """An agent's working time: windows read in `tz`; no window starts on a holiday."""
    tz: tzinfo
    windows: tuple[Window, ...]
    text: str  # for people: what the operator wrote, or the business calendar's hours
    holidays: frozenset[date] = frozenset()

    def _spans_starting_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The windows that start on local `day`, as UTC instants."""
        if day in self.holidays:
            return []
        spans = []
        for w in self.windows:
            if day.weekday() in w.days:
                wall = datetime.combine(day, w.start)
                start = wall.replace(tzinfo=self.tz).astimezone(UTC)
                end = (wall + timedelta(minutes=w.minutes)).replace(tzinfo=self.tz).astimezone(UTC)
                if end > start:
                    spans.append((start, end))
        return spans

    def contains(self, at: datetime) -> bool:
        """Whether `at` (aware) falls in a window: start included, end excluded."""
        at = _utc(at)
        day = at.astimezone(self.tz).date()
        # A window lasts at most a day, so only windows of that local day and the one before can hold `at`.
        return any(start <= at < end for d in (day - timedelta(days=1), day)
                   for start, end in self._spans_starting_on(d))

    def next_start(self, after: datetime) -> datetime | None:
        """The first window start strictly after `after` (UTC-aware), or None if no window
        starts in the next ~10 years."""
        after = _utc(after)
        day = after.astimezone(self.tz).date() - timedelta(days=1)
        for _ in range(MAX_DAYS):
            starts = [start for start, _ in self._spans_starting_on(day) if start > after]
            if starts:  # the windows of a later local day all start later
                return min(starts)
            day += timedelta(days=1)
        return None


def parse_hours(text: str) -> tuple[Window, ...]:
    """`hours =` text -> windows; ValueError with a sentence a person can act on."""
    windows: list[Window] = []
    days: frozenset[int] | None = None
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise ValueError(f"no working window; {_EXAMPLE}")
    for part in parts:
        if not part:
            raise ValueError(f"an empty window between commas in {text!r}")
        m = _RANGE.search(part)
        if not m or part[m.end():].strip():
            raise ValueError(f"{part!r} is not DAYS HH:MM-HH:MM; {_EXAMPLE}")
        prefix = part[:m.start()].strip()
        if prefix:
            days = _parse_days(prefix)
        elif days is None:
            raise ValueError(f"{part!r} names no days; {_EXAMPLE} (or \"Daily 17:00-20:00\")")
        start = _minutes(m.group(1), m.group(2), part, allow_end=False)
        end = _minutes(m.group(3), m.group(4), part, allow_end=True)
        if end == start:
            raise ValueError(f"{part!r} is empty: it ends when it starts")
        length = end - start if end > start else end + 1440 - start  # ends before it starts: overnight
        windows.append(Window(days=days, start=time(start // 60, start % 60), minutes=length))
    return tuple(windows)


def _minutes(hours: str, minutes: str, part: str, allow_end: bool) -> int:
    h, m = int(hours), int(minutes)
    if allow_end and (h, m) == (24, 0):
        return 1440
    if h > 23 or m > 59:
        raise ValueError(f"{hours}:{minutes} in {part!r} is not a time of day (00:00 to 23:59, or 24:00 as an end)")
    return h * 60 + m


def _day(word: str, part: str) -> int:
    w = word.lower()
    for index, full in enumerate(DAY_NAMES):
        if w in (full, full[:3]):
            return index
    raise ValueError(f"unknown day {word!r} in {part!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun, or Daily)")


def _parse_days(text: str) -> frozenset[int]:
    """'Mon-Fri', 'Sat', 'Mon Wed Fri', 'Fri-Mon' (wraps), 'Daily'."""
    if text.lower() in ("daily", "every day"):
        return frozenset(range(7))
    days: set[int] = set()
    for group in text.split():
        first, dash, last = group.partition("-")
        a = _day(first, text)
        b = _day(last, text) if dash else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def describe_days(days: frozenset[int]) -> str:
    """frozenset({0..4}) -> 'Mon-Fri'; {0, 2, 4} -> 'Mon Wed Fri'."""
    if len(days) == 7:
        return "Daily"
    groups, run = [], []
    for d in range(7):
        if d in days:
            run.append(d)
        elif run:
            groups.append(run)
            run = []
    if run:
        groups.append(run)
    return " ".join(DAY_ABBREVIATIONS[g[0]] if len(g) == 1 else f"{DAY_ABBREVIATIONS[g[0]]}-{DAY_ABBREVIATIONS[g[-1]]}"
                    for g in groups)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: availability needs aware datetimes")
    return t.astimezone(UTC)
