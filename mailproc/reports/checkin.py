"""Agents' check-ins (seed 001): each slot of an agent's working day brings them their
"Our Turn" list — the cases they hold where the customer spoke last.

Seed 001 asks every agent to look at their queue three times a day, in the
morning, at mid-day and before signing off, and to leave as few "Our Turn"
cases as possible. `slot_jobs` makes one job per agent of the roster at
`[checkin] slots`, read in the agent's own time zone, only on the agent's
working days: the weekdays of their `hours` window, or — for an agent without
one — the business calendar's working days, holidays excluded. The job mails
the agent their list; an empty list sends nothing (the slot is still done, so
a later tick does not send it either). After downtime the latest missed slot is
caught up (`scheduled`'s LATEST) only on its own local day: a list that missed
yesterday's end of day is not worth a mail this morning, when this morning's
slot brings the current one.

What "Our Turn" means here:
- the case is assigned to the agent and is in a status that waits on us: the
  `[still_looking] statuses` of rules/workflow.toml (New and Assigned by
  default — the statuses the SLA clock runs in). The other open statuses wait
  on someone else: the customer (Pending Input, Waiting on Customer, Pending
  Closure — a customer's reply moves those to Assigned anyway), engineering
  (the Pending Product/Development/Release holds and staging, which the leads'
  digest lists as long holds) or a date (On Hold);
- the customer spoke last: `last_customer_at` is set and the agent has not
  written since (`last_agent_at` empty or older).
Oldest wait first (`waiting_since`, else the customer's last mail), at most
`LIMIT` cases; the full count and the SLA colour counts are one aggregate query
over all the agent's waiting cases (the same WHERE), so the summary counts a
list longer than the mail shows. Both read the (assignee, status) index,
whatever the size of the table.

Each case shows how long the customer has waited in clock time (what the
customer lived through) and in business hours (what the SLA and the "still
looking" nudge count), its SLA colour read from the indexed `sla_warn_at` /
`sla_due` columns (or "paused"), and a reply link: a `mailto:` to the case's
mailbox with a reply token bound to the agent and the case, and the case
token as its subject, so the answer threads back and proves whose it is,
exactly as a reply to a notification does.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from peewee import Case as When
from peewee import fn

from mailproc import compose, tokens
from mailproc.context import Context, roster_of
from mailproc.models import PRIORITY_LABELS, Case, Person, aware, utc
from mailproc.reports import Report, send
from mailproc.roster import Agent
from mailproc.scheduled import SlotJob
from mailproc.slots import Slot, SlotSpec

KIND = "checkin"
LIMIT = 100  # cases listed in one mail; the count says how many there are in all
PARTS = ("morning", "mid-day", "end of day")
MAX_SUMMARY = 120  # characters of a summary listed: a full list's HTML stays well under Gmail's 102 KB clip


def statuses(ctx: Context) -> tuple[str, ...]:
    """The statuses a case waits on us in (see the module's notes)."""
    return tuple(ctx.rules.workflow.still_looking.statuses)


def working_days(ctx: Context, agent: Agent):
    """The days an agent gets check-ins: the weekdays of their own window, else the
    business calendar's working days without its holidays."""
    if agent.config.hours is not None:
        return frozenset(d for w in agent.config.hours for d in w.days)
    return ctx.rules.sla.calendar.is_business_day


def spec_for(ctx: Context, agent: Agent) -> SlotSpec:
    slots = ctx.config.checkin.slots
    return SlotSpec(slots.times, days=working_days(ctx, agent), text=slots.text)


def part_of_day(spec: SlotSpec, day: date, wall: str) -> str:
    """"morning", "mid-day" or "end of day": the slot's place among the day's slots
    (the first is the morning, the last the end of the day, any between mid-day)."""
    walls = sorted(a.wall.strftime("%H:%M") for a in spec.times
                   if a.weekdays is None or day.weekday() in a.weekdays)
    if wall not in walls or len(walls) == 1:
        return PARTS[0] if wall not in walls or wall < "12:00" else PARTS[2]
    index = walls.index(wall)
    return PARTS[0] if index == 0 else PARTS[2] if index == len(walls) - 1 else PARTS[1]


def _current_part(spec: SlotSpec, local: datetime) -> str:
    """For a list built outside a slot (the CLI): the part of the latest slot of the
    local day at or before `local`, the morning before the first."""
    now_wall = local.strftime("%H:%M")
    walls = sorted(a.wall.strftime("%H:%M") for a in spec.times
                   if a.weekdays is None or local.weekday() in a.weekdays)
    passed = [w for w in walls if w <= now_wall]
    return part_of_day(spec, local.date(), passed[-1]) if passed else PARTS[0]


def _agent(ctx: Context, name: str | None) -> Agent:
    roster = roster_of(ctx)
    known = ", ".join(a.name for a in roster.agents) or "none: add [agent:NAME] sections to the config"
    if not name:
        raise ValueError(f"the check-in list is an agent's: name one with --agent (agents: {known})")
    agent = roster.agent(name)
    if agent is None:
        raise ValueError(f"no agent named {name!r} (agents: {known})")
    return agent


def _waiting(ctx: Context, agent: Agent):
    """The WHERE of the agent's "Our Turn" cases (the list and its counts share it)."""
    return ((Person.handle == agent.name) & Case.status.in_(statuses(ctx)) & Case.last_customer_at.is_null(False)
            & (Case.last_agent_at.is_null() | (Case.last_agent_at < Case.last_customer_at)))


def our_turn(ctx: Context, agent: Agent, limit: int | None = None) -> list[Case]:
    """The agent's "Our Turn" cases, oldest wait first, at most `limit` (else `LIMIT`)."""
    query = (Case.select(Case.id, Case.summary, Case.status, Case.priority, Case.tier, Case.contact,
                         Case.contact_name, Case.company, Case.mailbox, Case.waiting_since, Case.last_customer_at,
                         Case.sla_warn_at, Case.sla_due, Case.sla_paused_at)
             .join(Person, on=(Case.assignee == Person.id))
             .where(_waiting(ctx, agent))
             .order_by(fn.COALESCE(Case.waiting_since, Case.last_customer_at), Case.id)
             .limit(limit or LIMIT))
    return list(query)


def counts(ctx: Context, agent: Agent, now: datetime) -> tuple[int, dict[str, int]]:
    """How many "Our Turn" cases the agent has in all, and how many of each SLA colour
    (as `sla_colour` reads them), in one aggregate query over all of them."""
    at = utc(now)
    limits = Case.sla_warn_at.is_null(False) & Case.sla_due.is_null(False)
    colour = {
        "red": limits & (Case.sla_warn_at <= at) & (Case.sla_due <= at),
        "yellow": limits & (Case.sla_warn_at <= at) & (Case.sla_due > at),
        "green": limits & (Case.sla_warn_at > at),
        "paused": ~limits & Case.sla_paused_at.is_null(False),
    }
    sums = [fn.COALESCE(fn.SUM(When(None, [(cond, 1)], 0)), 0).alias(name) for name, cond in colour.items()]
    row = (Case.select(fn.COUNT(Case.id).alias("total"), *sums).join(Person, on=(Case.assignee == Person.id))
           .where(_waiting(ctx, agent)).dicts().get())
    return int(row["total"] or 0), {name: int(row[name] or 0) for name in colour}


def sla_colour(case: Case, now: datetime) -> str | None:
    """red / yellow / green from the stored instants, "paused" while the clock stands
    still, None for a tier without limits."""
    warn, due = aware(case.sla_warn_at), aware(case.sla_due)
    if due is not None and warn is not None:
        return "green" if now < warn else "yellow" if now < due else "red"
    if case.sla_paused_at is not None:
        return "paused"
    return None


def duration(hours: float) -> str:
    """26.5 -> '1 d 2 h'; 3.25 -> '3 h 15 min'; 0.4 -> '24 min'."""
    minutes = max(0, round(hours * 60))
    if minutes < 60:
        return f"{minutes} min"
    days, whole = divmod(minutes // 60, 24)
    if days:
        return f"{days} d {whole} h"
    return f"{whole} h {minutes % 60:02d} min"


def reply_link(ctx: Context, case: Case, agent: Agent, now: datetime) -> str | None:
    """mailto: the case's mailbox with a reply token for the agent, subject the case token;
    None when there is no mailbox or secret to make one (or the address cannot carry it)."""
    boxes, keys = ctx.config.mailboxes, ctx.config.token_keys
    box = next((b for b in boxes if b.name == case.mailbox), None) or (boxes[0] if boxes else None)
    if box is None or not keys:
        return None
    try:
        address = tokens.reply_address(tokens.make(case.id, agent.name, now, keys[0]), box.address)
    except ValueError:
        return None
    subject = ctx.config.case_token.format(number=case.id)
    return f"mailto:{address}?subject={quote(subject, safe='')}"


def _item(ctx: Context, case: Case, agent: Agent, now: datetime) -> dict[str, Any]:
    since = aware(case.waiting_since or case.last_customer_at)
    clock_hours = max(0.0, (now - since).total_seconds() / 3600)
    business = max(0.0, ctx.rules.sla.calendar.business_hours_between(since, now))
    due = aware(case.sla_due)
    return {
        "case": case.id,
        "token": ctx.config.case_token.format(number=case.id),
        "summary": compose.unlinked(compose.printable_line(case.summary or "(no subject)", MAX_SUMMARY)),
        "contact": case.contact,
        "company": case.company or "",
        "status": case.status,
        "status_label": ctx.rules.workflow.label(case.status),
        "priority": case.priority,
        "priority_label": PRIORITY_LABELS.get(case.priority, case.priority),
        "waiting_since": since.isoformat(),
        "waiting_since_local": since.astimezone(agent.config.timezone).strftime("%a %d %b %H:%M"),
        "waiting_hours": round(clock_hours, 2),
        "waiting_business_hours": round(business, 2),
        "waiting": duration(clock_hours),
        "waiting_business": duration(business),
        "sla": sla_colour(case, now),
        "sla_due": due.isoformat() if due else None,
        "reply": reply_link(ctx, case, agent, now),
    }


def _report(ctx: Context, agent: Agent, now: datetime, day: date, part: str) -> Report:
    items = [_item(ctx, case, agent, now) for case in our_turn(ctx, agent)]
    total, colours = counts(ctx, agent, now)
    data = {
        "agent": agent.name, "address": agent.address, "timezone": agent.config.timezone.key,
        "day": day.isoformat(), "part": part, "now": now.isoformat(),
        "statuses": list(statuses(ctx)), "total": total, "shown": len(items), "limit": LIMIT,
        "sla": colours, "cases": items,
    }
    name = compose.printable_line(agent.config.display_name or agent.name, compose.MAX_NAME)
    rendered = ctx.templates.render(KIND, agent_name=name, day=day, part=part, total=total, items=items,
                                    shown=len(items), colours=colours, now=now.astimezone(agent.config.timezone),
                                    status_labels=[ctx.rules.workflow.label(s) for s in statuses(ctx)])
    return Report(KIND, rendered.subject, data, rendered.text, rendered.html, [agent.address])


def build(ctx: Context, *, day: date | None, now: datetime, agent: str | None = None) -> Report:
    """`agent`'s "Our Turn" list as of `now`; `day` (default: the agent's local today)
    only dates the title — the list is always the current one."""
    who = _agent(ctx, agent)
    local = now.astimezone(who.config.timezone)
    return _report(ctx, who, now, day or local.date(), _current_part(spec_for(ctx, who), local))


def deliver(ctx: Context, report: Report, now: datetime) -> int:
    """The mail a slot would send for `report` (what `--dry-run` shows): none for an empty list."""
    if not report.data["total"]:
        return 0
    return 1 if send(ctx, report, report.data["address"], now) is not None else 0


def slot_day(slot: Slot, tz) -> tuple[date, str]:
    """The local day and the wall time ("09:30") of a slot, read from its key (a slot moved
    by a DST gap keeps the spec's wall time there), else from its instant."""
    head, _, wall = slot.key.rpartition("T")
    try:
        return date.fromisoformat(head[-10:]), datetime.strptime(wall, "%H:%M").strftime("%H:%M")
    except ValueError:
        local = slot.at.astimezone(tz)
        return local.date(), local.strftime("%H:%M")


def _runner(name: str):
    def run(ctx: Context, slot: Slot, now: datetime) -> int:
        agent = roster_of(ctx).agent(name)
        if agent is None:  # left the roster since the jobs were listed (a reload makes new ones)
            return 0
        local_day, wall = slot_day(slot, agent.config.timezone)
        if local_day != now.astimezone(agent.config.timezone).date():
            return 0  # caught up on a later day (the daemon was down): that day's slots bring the list
        report = _report(ctx, agent, now, local_day, part_of_day(spec_for(ctx, agent), local_day, wall))
        return deliver(ctx, report, now)
    return run


def slot_jobs(ctx: Context) -> list[SlotJob]:
    if ctx.config.checkin is None:
        return []
    return [SlotJob(name=f"{KIND}:{agent.name}", spec=spec_for(ctx, agent), tz=agent.config.timezone,
                    run=_runner(agent.name)) for agent in roster_of(ctx).agents]
