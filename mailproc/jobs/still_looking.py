"""Seed 002's "still looking" note: no customer waits in silence.

A case waits on us from the customer's first mail we have not answered
(`waiting_since`) while it is in one of `[still_looking] statuses` — an
agent's answer (`last_agent_at`) ends the wait. After `nudge_after` business
time the assignee is nudged; after `note_after` the customer gets the note
that we are still on it. Each happens once per wait: the key names the wait.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import cases
from mailproc.context import Context
from mailproc.due import Planned, key
from mailproc.jobs import _mail
from mailproc.jobs.statuses import later
from mailproc.models import Case, aware


def _waiting(ctx: Context, case: Case) -> bool:
    if case.status not in ctx.rules.workflow.still_looking.statuses or case.last_customer_at is None:
        return False
    return case.last_agent_at is None or case.last_agent_at < case.last_customer_at


def refresh(ctx: Context, case: Case, now: datetime) -> None:
    """Start the wait at the first unanswered customer mail; end it when the case stops waiting."""
    if _waiting(ctx, case):
        since = case.waiting_since
        if since is None or (case.last_agent_at is not None and since <= case.last_agent_at):
            cases.touch(case, now, waiting_since=aware(case.last_customer_at))
    elif case.waiting_since is not None:
        cases.touch(case, now, waiting_since=None)


def plan(ctx: Context, case: Case) -> list[Planned]:
    since = aware(case.waiting_since)
    if since is None or not _waiting(ctx, case):
        return []
    rules, calendar = ctx.rules.workflow.still_looking, ctx.rules.sla.calendar
    items = [Planned("still_looking", key("still_looking", case.id, since),
                     later(calendar.deadline(rules.note_after, since), aware(case.away_until)))]
    if case.__data__.get("assignee") is not None:
        items.append(Planned("nudge", key("nudge", case.id, since), calendar.deadline(rules.nudge_after, since)))
    return items


def _since(case: Case) -> datetime:
    """When the wait began: its items are planned only while it is known."""
    since = aware(case.waiting_since)
    if since is None:
        raise ValueError(f"case {case.id} is not waiting")
    return since


def _note(ctx: Context, case: Case, now: datetime) -> None:
    _mail.to_customer(ctx, case, "still_looking", now, waiting_since=_since(case).astimezone(ctx.config.timezone))
    cases.record(case, "still_looking", now=now, rule="workflow:still_looking",
                 detail="the customer was told we are still looking into it")


def _nudge(ctx: Context, case: Case, now: datetime) -> None:
    agent = _mail.assignee(ctx, case)
    if agent is None:
        return
    since = _since(case)
    _mail.to_agent(ctx, case, agent, "nudge", now, waiting_since=since.astimezone(agent.config.timezone),
                   note_at=ctx.rules.sla.calendar.deadline(ctx.rules.workflow.still_looking.note_after, since)
                   .astimezone(agent.config.timezone))
    cases.record(case, "nudged", now=now, rule="workflow:still_looking", detail=f"{agent.name} reminded")


RUN = {"still_looking": _note, "nudge": _nudge}
