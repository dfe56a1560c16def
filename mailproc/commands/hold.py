"""hold=Nd: put the case on hold for N days (1-365); the day it ends is in the event."""

from __future__ import annotations

import re
from datetime import timedelta

from mailproc import cases
from mailproc.commands._common import CommandError, need_value, set_status

name = "hold"
syntax = "hold=Nd"
help = "put the case on hold for N days (hold=3d)"

_DAYS = re.compile(r"(\d{1,3})d?", re.I)


def run(ctx, case, value, *, actor, now, message):
    written = need_value(name, value, syntax)
    match = _DAYS.fullmatch(written)
    if not match or not 1 <= int(match.group(1)) <= 365:
        raise CommandError(f"hold: {written!r} is not a number of days from 1 to 365 (write hold=3d)")
    days = int(match.group(1))
    ends = now + timedelta(days=days)
    until = ends.date()
    cases.touch(case, now, hold_until=ends)  # the timer of jobs.statuses moves it back then
    change = set_status(case, "on_hold", command=name, actor=actor, now=now, message=message,
                        detail=f"on hold for {days} day(s), until {until.isoformat()}")
    return type(change)(change.field, change.old, change.new, f"{change.text} (until {until.isoformat()})")
