"""Engineering holds with long delays (seed 001's "fringe tickets").

A case that stays in Pending Product / Development / Release longer than
`[long_holds] flag_after` business time is flagged (`long_hold_at`, an event
on the case); `mailproc status` and the digests list the flagged cases. The
flag belongs to one stay in the hold: it is cleared when the case moves on.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import cases
from mailproc.context import Context
from mailproc.due import Planned, key
from mailproc.models import Case, aware


def refresh(ctx: Context, case: Case, now: datetime) -> None:
    flagged = case.long_hold_at
    if flagged is not None and (case.status not in ctx.rules.workflow.long_holds.statuses
                                or flagged < case.status_changed_at):
        cases.touch(case, now, long_hold_at=None)


def plan(ctx: Context, case: Case) -> list[Planned]:
    rules = ctx.rules.workflow.long_holds
    if case.status not in rules.statuses or case.long_hold_at is not None:
        return []
    entered = aware(case.status_changed_at)
    return [Planned("long_hold", key("long_hold", case.id, entered),
                    ctx.rules.sla.calendar.deadline(rules.flag_after, entered))]


def _flag(ctx: Context, case: Case, now: datetime) -> None:
    cases.touch(case, now, long_hold_at=now)
    rules = ctx.rules.workflow.long_holds
    cases.record(case, "flagged", now=now, rule="workflow:long_holds",
                 detail=f"{ctx.rules.workflow.label(case.status)} for longer than {rules.flag_after.text}")


RUN = {"long_hold": _flag}
