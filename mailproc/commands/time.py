"""time=1.5h (with tag=NAME in the same mail): time worked on the case, for the monthly
hours report (seed 004: Project Management and Meetings hours are tagged)."""

from __future__ import annotations

import re

from mailproc import cases, db
from mailproc.commands._common import Change, CommandError, need_value
from mailproc.commands.tag import TAG
from mailproc.models import Person, TimeEntry, utc

name = "time"
syntax = "time=1.5h [tag=NAME]"
help = "log time worked (1.5h, 90m, 1h30m; with tag=NAME, e.g. tag=Meetings)"

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+)m)?", re.I)
MAX_MINUTES = 24 * 60


def minutes(written: str) -> int:
    match = _DURATION.fullmatch(written)
    if not written or not match or not any(match.groups()):
        raise CommandError(f"time: {written!r} is not a duration (write time=1.5h, time=90m or time=1h30m)")
    total = round(float(match.group(1) or 0) * 60) + int(match.group(2) or 0)
    if not 1 <= total <= MAX_MINUTES:
        raise CommandError(f"time: {written!r} is not between 1 minute and 24 hours")
    return total


def run(ctx, case, value, *, actor, now, message, tag=None):
    spent = minutes(need_value(name, value, syntax))
    if tag is not None and not TAG.fullmatch(tag):
        raise CommandError(f"time: {tag!r} is not a tag (letters, digits and _ . : / + -, at most 64)")
    person = Person.get_or_none(Person.address == actor)
    db.insert(TimeEntry, case=case, person=person, actor=actor, minutes=spent, tag=tag, logged_at=utc(now),
              message=message.row)
    shown = f"{spent // 60}h{spent % 60:02d}m" + (f" tagged {tag}" if tag else "")
    cases.record(case, "time_logged", now=now, actor=actor, rule=f"command:{name}", message=message.row,
                 new=spent, detail=shown)
    return Change(None, None, spent, f"time logged: {shown}")
