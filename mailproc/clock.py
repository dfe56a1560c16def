"""The one source of time.

Everything that needs "now" asks a `Clock`, so `--now` / `MAILPROC_NOW` can set
the time for simulations and tests without patching anything. A set clock
starts at the given instant and then runs forward at real speed, so a daemon
started "in the past" still sees its timers come due.

All times inside mailproc are timezone-aware UTC datetimes; the database
stores them as naive UTC (see `models.utc`). Local time exists only where a
person reads it (templates, business hours).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone


def parse_instant(text: str) -> datetime:
    """Parse ISO 8601; a naive value is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class Clock:
    def __init__(self, start: datetime | None = None):
        # A set clock is real time shifted by a fixed offset, so every process
        # given the same offset (the sender beside intake) agrees on "now".
        self.offset: timedelta | None = None if start is None else start - datetime.now(timezone.utc)

    @classmethod
    def from_env(cls, now: str | None = None) -> "Clock":
        """`now` (the --now flag) wins over MAILPROC_NOW; neither means real time."""
        text = now or os.environ.get("MAILPROC_NOW")
        return cls(parse_instant(text) if text else None)

    @classmethod
    def shifted(cls, offset: timedelta | None) -> "Clock":
        clock = cls()
        clock.offset = offset
        return clock

    @property
    def is_set(self) -> bool:
        return self.offset is not None

    def now(self) -> datetime:
        real = datetime.now(timezone.utc)
        return real if self.offset is None else real + self.offset
