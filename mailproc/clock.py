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
import time
from datetime import datetime, timedelta, timezone


def parse_instant(text: str) -> datetime:
    """Parse ISO 8601; a naive value is taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class Clock:
    def __init__(self, start: datetime | None = None):
        self._start = start.astimezone(timezone.utc) if start else None
        self._t0 = time.monotonic()

    @classmethod
    def from_env(cls, now: str | None = None) -> "Clock":
        """`now` (the --now flag) wins over MAILPROC_NOW; neither means real time."""
        text = now or os.environ.get("MAILPROC_NOW")
        return cls(parse_instant(text) if text else None)

    @property
    def is_set(self) -> bool:
        return self._start is not None

    def now(self) -> datetime:
        if self._start is None:
            return datetime.now(timezone.utc)
        return self._start + timedelta(seconds=time.monotonic() - self._t0)
