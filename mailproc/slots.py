"""Slots: work done at local wall times (a daily digest at 07:00, an agent's check-in
at 09:30), exactly once each, caught up after downtime, right across DST changes.

A slot spec is one or more wall times in a time zone: "07:00", weekly "Mon 08:00",
several a day "09:30, 13:30, 16:30", a day range "Mon-Fri 07:00"; optionally only
on working days (`days`: a set of weekdays, 0 = Monday, or a callable such as
`BusinessCalendar.is_business_day`, so holidays count too).

Each occurrence has a key, f"{name}:{local date}T{HH:MM}" (the wall time of the
spec, even when a DST gap moves the instant), recorded in `slot_run` in the
transaction that queues its mail. The key is unique: a slot done stays done,
two daemons racing for it (PostgreSQL) get it once, and a clock set backwards
never repeats it.

How a caller uses it, all in one transaction (`db.transaction()`):

    spec = slots.parse_slots("07:00", days=calendar.is_business_day)
    with db.transaction():
        for slot in slots.due("digest", spec, tz, now):
            if slots.claim(slot.key, slot.at, now):
                outbox.render_and_queue(...)   # the digest of slot.at

Per-agent slots put the agent in the name ("checkin:ana"). If queueing the mail
fails, the transaction rolls back and the claim with it: the slot is due again.

DST: a wall time that does not exist (the spring-forward gap: 02:30 in New York
on the second Sunday of March) fires at the first instant after the gap (03:00
local); a wall time that happens twice (fall back: 01:30 on the first Sunday of
November) fires once, at its first occurrence (fold=0).

Catch-up after downtime (`due(..., catch_up=)`):
- LATEST (the default, for digests and check-ins): of the slots missed, only the
  most recent is due; the older ones are recorded with outcome 'skipped', so a
  five-day outage sends one digest, not five.
- ALL: every slot after the newest one recorded is due, oldest first (for work
  where each occurrence counts on its own).
Only the last `lookback` (7 days by default) is looked at, so the cost of a call
is bounded whatever the outage; a name with nothing recorded in that window (new,
or down longer than that) starts with its most recent slot only, in either mode.
A slot older than one already recorded is never due (it is recorded 'skipped').

No function reads the clock: `now` is always a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from mailproc import db
from mailproc.models import utc

LATEST, ALL = "latest", "all"
DONE, SKIPPED = "done", "skipped"
LOOKBACK = timedelta(days=7)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ENTRY = re.compile(r"^(?:(?P<days>[a-z]+(?:\s*-\s*[a-z]+)?)\s+)?(?P<h>\d{1,2}):(?P<m>\d{2})$", re.IGNORECASE)

Days = frozenset[int] | Callable[[date], bool] | None


class SlotError(ValueError):
    """A slot spec that cannot be read; the message says which part and why."""


@dataclass(frozen=True)
class At:
    """One wall time of a spec, on some weekdays (None: every day)."""
    wall: time
    weekdays: frozenset[int] | None = None


@dataclass(frozen=True)
class SlotSpec:
    times: tuple[At, ...]
    days: Days = None  # working days only: a set of weekdays or a callable(date) -> bool
    text: str = ""

    def on(self, at: At, day: date) -> bool:
        if at.weekdays is not None and day.weekday() not in at.weekdays:
            return False
        if self.days is None:
            return True
        return self.days(day) if callable(self.days) else day.weekday() in self.days


@dataclass(frozen=True)
class Occurrence:
    """A slot on a day: its local date, the wall time of the spec, and its instant."""
    day: date
    wall: time
    at: datetime  # aware UTC
    shifted: bool = False  # the wall time fell in a DST gap; `at` is the first instant after it


@dataclass(frozen=True)
class Slot:
    key: str
    at: datetime  # aware UTC


def _day(word: str, entry: str) -> int:
    for names in (DAY_NAMES, _FULL_NAMES):
        if word.lower() in names:
            return names.index(word.lower())
    raise SlotError(f"{entry!r}: unknown day {word!r} (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _weekdays(text: str, entry: str) -> frozenset[int]:
    if "-" not in text:
        return frozenset({_day(text, entry)})
    first, last = (_day(w.strip(), entry) for w in text.split("-"))
    return frozenset((first + i) % 7 for i in range((last - first) % 7 + 1))


def parse_slots(text: str, days: Days = None) -> SlotSpec:
    """Read "07:00", "Mon 08:00", "Mon-Fri 07:00" or "09:30, 13:30, 16:30"."""
    entries = [e.strip() for e in re.split(r"[,;]", text or "")]
    if not any(entries):
        raise SlotError("no slot time given (e.g. 07:00, Mon 08:00, 09:30, 13:30)")
    times: list[At] = []
    for entry in entries:
        if not entry:
            raise SlotError(f"{text!r}: an empty entry between commas")
        match = _ENTRY.match(entry)
        if not match:
            raise SlotError(f"{entry!r}: expected HH:MM, optionally after a day (Mon 08:00, Mon-Fri 07:00)")
        hour, minute = int(match["h"]), int(match["m"])
        if hour > 23 or minute > 59:
            raise SlotError(f"{entry!r}: no such time of day (00:00 to 23:59)")
        at = At(time(hour, minute), _weekdays(match["days"], entry) if match["days"] else None)
        if at in times:
            raise SlotError(f"{entry!r}: given twice")
        times.append(at)
    return SlotSpec(tuple(times), days=days, text=text.strip())


def resolve(day: date, wall: time, tz: tzinfo) -> tuple[datetime, bool]:
    """The instant (aware UTC) of a wall time on a local day, and whether it fell in a
    gap. A repeated wall time takes its first occurrence (fold=0); one in a gap takes
    the first instant after the gap (the transition itself)."""
    local = datetime.combine(day, wall, tzinfo=tz)
    at = local.astimezone(timezone.utc)
    if at.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return at, False
    # fold=0 reads a gap time with the offset before the change (an instant after
    # the gap), fold=1 with the offset after it (an instant before the gap): the
    # change lies between; find its second.
    lo, hi = int(local.replace(fold=1).timestamp()), int(at.timestamp())
    after = at.astimezone(tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, timezone.utc), True


def occurrences(spec: SlotSpec, tz: tzinfo, start: datetime, end: datetime) -> list[Occurrence]:
    """The spec's slots with instants in (start, end], in time order."""
    first, last = start.astimezone(tz).date() - timedelta(days=1), end.astimezone(tz).date() + timedelta(days=1)
    found = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        for at in spec.times:
            if spec.on(at, day):
                instant, shifted = resolve(day, at.wall, tz)
                if start < instant <= end:
                    found.append(Occurrence(day, at.wall, instant, shifted))
    return sorted(found, key=lambda o: (o.at, o.wall))


def instants(spec: SlotSpec, tz: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """The slot instants (aware UTC) in (start, end]."""
    return [o.at for o in occurrences(spec, tz, start, end)]


def slot_key(name: str, occurrence: Occurrence) -> str:
    return f"{name}:{occurrence.day.isoformat()}T{occurrence.wall.strftime('%H:%M')}"[:200]


_RECORD = ('INSERT INTO "slot_run" ("key", "slot_at", "done_at", "outcome") VALUES (?, ?, ?, ?)'
           ' ON CONFLICT ("key") DO NOTHING')


def due(name: str, spec: SlotSpec, tz: tzinfo, now: datetime, catch_up: str = LATEST,
        lookback: timedelta = LOOKBACK, run_first: bool = True) -> list[Slot]:
    """The slots of `name` due at `now` and not yet recorded, oldest first (see the
    module's notes on catch-up). Missed slots the policy passes over are recorded as
    'skipped' in the caller's transaction, so they are never done later.

    `run_first` False: a name that never had a slot recorded (a new installation, or
    a job just configured) records its past slots as skipped, and a mark
    f"{name}:since" that it has been seen, and starts with the next slot — for mail
    to clients that the team sent by hand before mailproc did (the monthly hours
    report on the 12th would be a repeat)."""
    if catch_up not in (LATEST, ALL):
        raise ValueError(f"catch_up must be {LATEST!r} or {ALL!r}, not {catch_up!r}")
    slots = [Slot(slot_key(name, o), o.at) for o in occurrences(spec, tz, now - lookback, now)]
    if not run_first and not _ever(name):
        for s in slots:
            db.execute(_RECORD, [s.key, utc(s.at), utc(now), SKIPPED])
        db.execute(_RECORD, [f"{name}:since"[:200], utc(now), utc(now), SKIPPED])
        return []
    if not slots:
        return []
    marks = ", ".join("?" * len(slots))
    recorded = {k for (k,) in db.query_all(f'SELECT "key" FROM "slot_run" WHERE "key" IN ({marks})',
                                           [s.key for s in slots])}
    newest = max((i for i, s in enumerate(slots) if s.key in recorded), default=-1)
    fresh = slots[newest + 1:]
    wanted = fresh if catch_up == ALL and newest >= 0 else fresh[-1:]
    for s in slots:
        if s.key not in recorded and s not in wanted:
            db.execute(_RECORD, [s.key, utc(s.at), utc(now), SKIPPED])
    return wanted


def _ever(name: str) -> bool:
    """Whether any slot of `name` was ever recorded: a range of the unique key index
    (every key of the name starts with "name:", and ";" sorts right after ":")."""
    return db.query_one('SELECT COUNT(*) FROM (SELECT 1 FROM "slot_run" WHERE "key" >= ? AND "key" < ? LIMIT 1) t',
                        [f"{name}:", f"{name};"])[0] > 0


def claim(key: str, slot_at: datetime, now: datetime) -> bool:
    """Record the slot as done in the caller's transaction; True if this call did (the
    caller then queues its mail in the same transaction), False if it was already
    recorded, done or skipped — by us earlier, or by another daemon (on PostgreSQL
    the second insert waits for the first transaction and then does nothing)."""
    cursor = db.execute(_RECORD, [key, utc(slot_at), utc(now), DONE])
    return cursor.rowcount == 1
