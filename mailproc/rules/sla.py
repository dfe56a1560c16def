"""rules/sla.toml: the business calendar, the first-response target of each
priority and the tier SLA table (SPEC §7).

The arithmetic of business hours is `mailproc.businesstime`; this module
reads the file into an `Sla` (whose calendar does that arithmetic), with
errors that name the line. The time zone is not in the file: it comes from
the config (`[mailproc] timezone`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from pathlib import Path

from mailproc.businesstime import DAY_NAMES, UTC, BusinessCalendar, Target
from mailproc.models import PRIORITIES, TIERS
from mailproc.rules.reader import TomlTable

COLOURS = ("green", "yellow", "red")


@dataclass(frozen=True)
class TierLimits:
    """SPEC §7: green below `green`, yellow below `yellow`, red beyond."""
    green: Target
    yellow: Target


@dataclass(frozen=True)
class Sla:
    calendar: BusinessCalendar
    response: dict[str, Target]  # priority -> first-response target
    tiers: dict[str, TierLimits]  # tier -> limits; a tier without limits has no colour

    def response_target(self, priority: str) -> Target:
        return self.response[priority]

    def expected_response(self, priority: str, start: datetime) -> datetime:
        """When the first response is due for a case of this priority that arrived at `start`."""
        return self.calendar.deadline(self.response[priority], start)

    def colour(self, tier: str, entered: datetime, now: datetime) -> str | None:
        """green / yellow / red for a case that entered `tier` at `entered`; None if no limits."""
        return self.colour_after(tier, self.calendar.business_hours_between(entered, now))

    def colour_after(self, tier: str, hours: float) -> str | None:
        """green / yellow / red after `hours` business hours in `tier` (limits are business
        time: `load_sla` refuses others); None if the tier has no limits."""
        limits = self.tiers.get(tier)
        if limits is None:
            return None
        if hours < self.calendar.target_hours(limits.green):
            return "green"
        return "yellow" if hours < self.calendar.target_hours(limits.yellow) else "red"


SLA_KEYS = ("calendar", "response", "tiers")
CALENDAR_KEYS = ("working_days", "hours", "holidays", "country", "subdivision")


def load_sla(path: Path, timezone: tzinfo | None = None) -> Sla:
    """Read rules/sla.toml; the time zone comes from the config ([mailproc] timezone)."""
    root = TomlTable.read(path)
    root.check_keys(SLA_KEYS, required=("calendar", "response"))
    calendar = _calendar(root.table("calendar"), timezone or UTC)

    response_table = root.table("response")
    response_table.check_keys(PRIORITIES, required=PRIORITIES)
    response = {p: _target(response_table, p) for p in PRIORITIES}

    tiers: dict[str, TierLimits] = {}
    if "tiers" in root.data:
        tier_table = root.table("tiers")
        tier_table.check_keys(TIERS)
        for name in tier_table.data:
            limits = tier_table.table(name)
            limits.check_keys(("green", "yellow"), required=("green", "yellow"))
            green, yellow = _target(limits, "green"), _target(limits, "yellow")
            for key, target in (("green", green), ("yellow", yellow)):
                if not target.business:  # SPEC §7; the clock's pauses are counted in business time too
                    raise limits.error(key, f"tier SLAs count business time, not {target.text!r}: write e.g. "
                                            "\"2 business hours\" or \"1 business day\"")
            if calendar.target_hours(green) > calendar.target_hours(yellow):
                raise limits.error("yellow", "the yellow limit must not be shorter than the green one")
            tiers[name] = TierLimits(green, yellow)
    return Sla(calendar=calendar, response=response, tiers=tiers)


def _target(table: TomlTable, key: str) -> Target:
    table.need_str(key)  # required, and a string
    found = table.target(key)
    assert found is not None
    return found


def _calendar(table: TomlTable, tz: tzinfo) -> BusinessCalendar:
    table.check_keys(CALENDAR_KEYS, required=("working_days", "hours"))
    days = set()
    for name in table.str_list("working_days"):
        word = name.strip().lower()
        index = next((i for i, full in enumerate(DAY_NAMES) if word in (full, full[:3])), None)
        if index is None:
            raise table.error("working_days", f"unknown day {name!r} (use Mon, Tue, … Sun)")
        days.add(index)
    if not days:
        raise table.error("working_days", "needs at least one working day")
    windows = _windows(table)
    holidays = frozenset(table.date_list("holidays")) if "holidays" in table.data else frozenset()
    return BusinessCalendar(tz=tz, working_days=frozenset(days), windows=windows, holidays=holidays,
                            public=_public_holidays(table))


def _public_holidays(table: TomlTable):
    """A country's public holidays from the `holidays` package (kept by its community for
    some 200 countries and their regions), or None when the calendar names no country."""
    country = table.str("country")
    if country is None:
        if "subdivision" in table.data:
            raise table.error("subdivision", "needs `country` as well")
        return None
    import holidays

    subdivision = table.str("subdivision")
    try:
        return holidays.country_holidays(country.strip().upper(), subdiv=subdivision)
    except NotImplementedError:
        raise table.error("country", f"no public holidays known for {country!r} (use an ISO 3166 code such "
                                     "as PT, US, GB, BR)") from None
    except ValueError as exc:  # an unknown subdivision
        raise table.error("subdivision", str(exc)) from None


def _windows(table: TomlTable) -> tuple[tuple[time, time], ...]:
    text = table.need_str("hours")
    windows = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", part)
        try:
            if not m:
                raise ValueError
            start = time(int(m.group(1)), int(m.group(2)))
            end = time(int(m.group(3)), int(m.group(4)))
        except ValueError:
            raise table.error("hours", f"not a time range: {part.strip()!r} (use e.g. \"09:00-17:00\" "
                                       "or \"09:00-12:30, 13:30-17:00\")") from None
        if end <= start:
            raise table.error("hours", f"{part.strip()!r} ends before it starts")
        windows.append((start, end))
    windows.sort()
    for (_, end), (start, _) in zip(windows, windows[1:]):
        if start < end:
            raise table.error("hours", "working hours overlap")
    return tuple(windows)
