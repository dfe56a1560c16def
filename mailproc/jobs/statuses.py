"""The status timers of rules/workflow.toml (SPEC §4), and the mail that goes with them.

- Pending Input: `remind` mails the customer a reminder, then `move` resolves the
  case after more silence (counted from the reminder).
- Waiting on Customer: `move` back to Assigned, no reminder.
- On Hold: `move` back to Assigned when the hold (`hold=Nd`) ends, with an
  internal note and a mail to the assignee.
- Resolved: `resolution` mails the customer the outcome and moves the case to
  Pending Closure, whose timer closes it after a week of silence.
- Closed: `closure` mails the customer that the case is closed (a case merged
  into another is closed without it: its customer hears on the case that goes on).

A customer's out-of-office return date (`away_until`) postpones the reminder;
it never changes status or owner.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import cases
from mailproc.context import Context
from mailproc.due import Planned, key
from mailproc.jobs import _mail
from mailproc.models import Case, aware



def later(at: datetime, away: datetime | None) -> datetime:
    """`at`, or the customer's return from being away if that is later."""
    return max(at, away) if away is not None else at


def plan(ctx: Context, case: Case) -> list[Planned]:
    entered = aware(case.status_changed_at)
    status = case.status
    if status == "resolved":
        return [Planned("resolution", key("resolution", case.id, entered), entered)]
    if status == "closed":
        if case.closed_at is None or cases.merged_to(case.id) is not None:
            return []
        return [Planned("closure", key("closure", case.id, entered), entered)]
    timer = ctx.rules.workflow.timer(status)
    if timer is None:
        return []
    reminded = aware(case.reminded_at)
    if timer.remind is not None and (reminded is None or reminded < entered):
        at = later(entered + timer.remind, aware(case.away_until))
        return [Planned("remind", key("remind", case.id, entered), at)]
    if status == "on_hold" or timer.after is None:
        until = aware(case.hold_until) if status == "on_hold" else None
        if until is None or until <= entered:  # `status=on_hold` without `hold=Nd`: held until moved
            return []
        return [Planned("move", key("move", case.id, entered), until)]
    base = reminded if timer.remind is not None and reminded is not None else entered
    # A customer away since the reminder is not resolved for their silence while away.
    at = later(base + timer.after, aware(case.away_until)) if timer.remind is not None else base + timer.after
    return [Planned("move", key("move", case.id, entered), at)]


def _remind(ctx: Context, case: Case, now: datetime) -> None:
    _mail.to_customer(ctx, case, "reminder", now, asked_at=aware(case.status_changed_at).astimezone(
        ctx.config.timezone), resolve_after=ctx.rules.workflow.timers[case.status].after)
    cases.touch(case, now, reminded_at=now)
    cases.record(case, "reminded", now=now, rule=f"workflow:timers.{case.status}")


def _move(ctx: Context, case: Case, now: datetime) -> None:
    timer = ctx.rules.workflow.timers[case.status]
    was = case.status
    entered = aware(case.status_changed_at)
    cases.set_field(case, "status", timer.to, actor=cases.SYSTEM, now=now, rule=f"workflow:timers.{was}",
                    detail=f"{ctx.rules.workflow.label(was)} since {entered.isoformat(timespec='minutes')}")
    if timer.note:
        text = (f"Back from {ctx.rules.workflow.label(was)}: the hold set on "
                f"{entered.astimezone(ctx.config.timezone):%Y-%m-%d} has ended.")
        cases.record(case, "note", now=now, rule=f"workflow:timers.{was}", detail=text)
        agent = _mail.assignee(ctx, case)
        if agent is not None:
            _mail.to_agent(ctx, case, agent, "hold_expired", now, held_since=entered.astimezone(
                agent.config.timezone), was_label=ctx.rules.workflow.label(was))


def _resolution(ctx: Context, case: Case, now: datetime) -> None:
    timer = ctx.rules.workflow.timer("pending_closure")
    _mail.to_customer(ctx, case, "resolution", now, close_after=timer.after if timer else None)
    cases.set_field(case, "status", "pending_closure", actor=cases.SYSTEM, now=now, rule="workflow:resolved",
                    detail="the customer was told of the resolution")


def _closure(ctx: Context, case: Case, now: datetime) -> None:
    _mail.to_customer(ctx, case, "closure", now)


RUN = {"remind": _remind, "move": _move, "resolution": _resolution, "closure": _closure}
