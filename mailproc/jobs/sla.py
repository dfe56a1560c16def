"""The tier SLA clock (SPEC §7): green, yellow, red, in business hours.

The clock of a case's tier starts when the case entered the tier (for a new
case, the mail's arrival) and runs while the case waits on us — New or
Assigned, the statuses SPEC §4 says the clock runs in. It pauses while the
case waits on anyone else (the customer: Pending Input, Waiting on Customer,
Pending Closure; engineering: the Pending Product/Development/Release holds,
which are watched as long holds instead; an agent's On Hold; staging) and
stops when the case is resolved or closed. `refresh` keeps the pause
bookkeeping and the two instants the colour changes at on the case
(`sla_warn_at` → yellow, `sla_due` → red; None while paused or stopped), so
that lists, digests and `mailproc status` read colours from indexed columns
instead of recomputing business hours per case. Crossing into yellow mails
the assignee; into red, the tier's lead.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import cases
from mailproc.businesstime import Target
from mailproc.context import Context
from mailproc.due import Planned, key
from mailproc.jobs import _mail
from mailproc.models import Case, aware

RUNNING = ("new", "assigned")  # waiting on us
STOPPED = ("resolved", "closed")


def _add(ctx: Context, target: Target, start: datetime, paused_hours: float) -> datetime:
    """When `target` (business time: `load_sla` refuses others) runs out for a clock that
    started at `start` and stood still for `paused_hours` business hours."""
    calendar = ctx.rules.sla.calendar
    return calendar.add_business_hours(start, calendar.target_hours(target) + paused_hours)


def refresh(ctx: Context, case: Case, now: datetime) -> None:
    calendar = ctx.rules.sla.calendar
    changes: dict[str, object] = {}
    entered = aware(case.tier_entered_at)
    paused_at, hours = aware(case.sla_paused_at), case.sla_paused_hours or 0.0
    # Resolved and Closed stop the clock, and count as a pause: a reopened case goes on
    # from where it stood, not charged for the days it was resolved.
    if case.status not in RUNNING and paused_at is None:
        paused_at = max(aware(case.status_changed_at), entered)
        changes["sla_paused_at"] = paused_at
    elif case.status in RUNNING and paused_at is not None:
        hours += max(0.0, calendar.business_hours_between(max(paused_at, entered), aware(case.status_changed_at)))
        paused_at = None
        changes.update(sla_paused_at=None, sla_paused_hours=hours)
    limits = ctx.rules.sla.tiers.get(case.tier)
    warn = due = None
    if limits is not None and paused_at is None and case.status not in STOPPED:
        warn, due = _add(ctx, limits.green, entered, hours), _add(ctx, limits.yellow, entered, hours)
    if aware(case.sla_warn_at) != warn:
        changes["sla_warn_at"] = warn
    if aware(case.sla_due) != due:
        changes["sla_due"] = due
    if changes:
        cases.touch(case, now, **changes)  # type: ignore[arg-type]


def state(ctx: Context, case: Case, now: datetime) -> tuple[str | None, datetime | None]:
    """(green / yellow / red, or None: no limits for the tier, or resolved/closed; and when
    it turns red, None while the clock is paused)."""
    sla = ctx.rules.sla
    if case.tier not in sla.tiers or case.status in STOPPED:
        return None, None
    due = aware(case.sla_due)
    if due is not None and case.sla_warn_at is not None:
        return ("green" if now < aware(case.sla_warn_at) else "yellow" if now < due else "red"), due
    until = aware(case.sla_paused_at) or now  # paused: the colour it stopped at
    elapsed = sla.calendar.business_hours_between(aware(case.tier_entered_at), until) - (case.sla_paused_hours or 0.0)
    return sla.colour_after(case.tier, elapsed), None


def plan(ctx: Context, case: Case) -> list[Planned]:
    items = []
    entered = aware(case.tier_entered_at)
    if case.sla_warn_at is not None and case.__data__.get("assignee") is not None:
        items.append(Planned("sla_yellow", key("sla_yellow", case.id, case.tier, entered), aware(case.sla_warn_at)))
    if case.sla_due is not None:
        items.append(Planned("sla_red", key("sla_red", case.id, case.tier, entered), aware(case.sla_due)))
    return items


def _red_at(case: Case) -> datetime:
    """When the case turns red: planned only while it is known."""
    due = aware(case.sla_due)
    if due is None:
        raise ValueError(f"case {case.id} has no SLA due time")
    return due


def _yellow(ctx: Context, case: Case, now: datetime) -> None:
    agent = _mail.assignee(ctx, case)
    if agent is not None:
        _mail.to_agent(ctx, case, agent, "sla_warning", now, colour="yellow", tier=case.tier,
                       due=_red_at(case).astimezone(agent.config.timezone))
    cases.record(case, "sla", now=now, new="yellow", rule=f"sla:tiers.{case.tier}",
                 detail=f"assignee {agent.name} told" if agent else "no assignee to tell")


def _red(ctx: Context, case: Case, now: datetime) -> None:
    told = []
    for lead in _mail.leads(ctx, case):
        if _mail.to_agent(ctx, case, lead, "sla_warning", now, colour="red", tier=case.tier,
                          due=_red_at(case).astimezone(lead.config.timezone)) is not None:
            told.append(lead.name)
    cases.record(case, "sla", now=now, new="red", rule=f"sla:tiers.{case.tier}",
                 detail=f"lead(s) told: {', '.join(told)}" if told else "no lead to tell")


RUN = {"sla_yellow": _yellow, "sla_red": _red}
