"""The mail timers send: to the customer of a case, to an agent, to a plain address.

Every timer mail is rendered from templates/ and queued in the outbox in the
sweep's transaction, with the item marked done: both commit or neither does,
so a timer's mail goes out exactly once. Mail to the customer threads onto
the case's last message and is `auto-generated` (of our own initiative, RFC
3834); mail to an agent carries a signed reply token, as notifications do,
so the agent can answer it with subject commands. Times are shown in the
recipient's time zone: the agent's own, else the installation's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailproc import cases, compose, outbox, tokens
from mailproc.config import MailboxConfig
from mailproc.context import Context
from mailproc.db import query_one
from mailproc.models import PRIORITY_LABELS, TYPE_LABELS, Case, Outbox
from mailproc.roster import Agent

_LAST_MESSAGE_SQL = ('SELECT "message_id" FROM "message" WHERE "case_id" = ? AND "message_id" IS NOT NULL'
                     ' ORDER BY "id" DESC LIMIT 1')


def mailbox_of(ctx: Context, case: Case) -> MailboxConfig | None:
    """The mailbox a case's mail goes out from: the one it came in by, else the first."""
    boxes = ctx.config.mailboxes
    return next((b for b in boxes if b.name == case.mailbox), None) or (boxes[0] if boxes else None)


def case_context(ctx: Context, case: Case, box: MailboxConfig, tz: Any, now: datetime) -> dict[str, Any]:
    """What every timer mail about a case may show; times in the recipient's zone `tz`."""
    return dict(
        case=compose.shown_case(case),
        token=ctx.config.case_token.format(number=case.id),
        summary=compose.unlinked(case.summary or "(no subject)"),
        contact=case.contact, contact_name=compose.greeting_name(case.contact_name or ""),
        type_label=TYPE_LABELS.get(case.type, case.type),
        priority_label=PRIORITY_LABELS.get(case.priority, case.priority),
        status_label=ctx.rules.workflow.label(case.status), tz=tz,
        mailbox_address=box.address, now=now.astimezone(tz))


def _suppressed(case: Case, kind: str, now: datetime, why: str) -> None:
    cases.record(case, "mail_suppressed", now=now, new=kind, detail=why)


def to_customer(ctx: Context, case: Case, kind: str, now: datetime, **extra: Any) -> Outbox | None:
    """Queue the `kind` mail to the case's contact; None (and an event saying why) if not."""
    box = mailbox_of(ctx, case)
    if box is None:
        _suppressed(case, kind, now, "no mailbox is configured to send from")
        return None
    tz = ctx.config.timezone
    last = query_one(_LAST_MESSAGE_SQL, [case.id])
    context = {**case_context(ctx, case, box, tz, now), **extra}
    return outbox.render_and_queue(ctx, kind=kind, case=case, to=case.contact, mail_from=box.address,
                                   context=context, in_reply_to=last[0] if last else None,
                                   references=[last[0]] if last else [], now=now, reply=False)


def to_agent(ctx: Context, case: Case, agent: Agent, kind: str, now: datetime, **extra: Any) -> Outbox | None:
    """Queue the `kind` mail to a roster agent, with a reply token bound to them and the
    case (their reply may carry subject commands). Not counted by the automatic-mail
    limit: it goes to a person of the roster (see `notify`)."""
    box = mailbox_of(ctx, case)
    keys = ctx.config.token_keys
    if box is None or not keys:
        _suppressed(case, kind, now, f"to {agent.name}: " + ("no mailbox is configured to send from"
                                                              if box is None else "no secret for reply tokens"))
        return None
    try:
        reply_to, message_id = tokens.headers(case.id, agent.name, now, keys[0], box.address)
    except ValueError as exc:
        _suppressed(case, kind, now, f"to {agent.name}: {exc}")
        return None
    tz = agent.config.timezone
    context = {**case_context(ctx, case, box, tz, now),
               "agent_name": compose.printable_line(agent.config.display_name or agent.name, compose.MAX_NAME),
               **extra}
    return outbox.render_and_queue(ctx, kind=kind, case=case, to=agent.address, mail_from=box.address,
                                   context=context, in_reply_to=None, references=[], now=now, automatic=False,
                                   reply=False, message_id=message_id, reply_to=reply_to,
                                   auto_submitted="auto-generated")


def to_address(ctx: Context, case: Case, address: str, kind: str, now: datetime, **extra: Any) -> Outbox | None:
    """Queue the `kind` mail to an address outside the roster (an escalation list):
    no reply token; not held by the automatic-mail limit (a page must go out)."""
    box = mailbox_of(ctx, case)
    if box is None:
        _suppressed(case, kind, now, "no mailbox is configured to send from")
        return None
    tz = ctx.config.timezone
    context = {**case_context(ctx, case, box, tz, now), **extra}
    return outbox.render_and_queue(ctx, kind=kind, case=case, to=address, mail_from=box.address, context=context,
                                   in_reply_to=None, references=[], now=now, automatic=False, reply=False,
                                   auto_submitted="auto-generated")


def assignee(ctx: Context, case: Case) -> Agent | None:
    """The roster agent holding the case (None: unassigned, or no longer on the roster)."""
    from mailproc.notify import agent_of
    return agent_of(ctx, case)


def leads(ctx: Context, case: Case, first: str = "tier") -> list[Agent]:
    """Who leads the case: for `first="tier"` (an SLA turning red: the tier's lead), the
    leads of the case's tier, else the lead of its team; for `first="team"` (an unhappy
    customer: the team lead), the other way round; else every lead of the roster."""
    from mailproc.context import roster_of
    roster = roster_of(ctx)
    all_leads = [a for a in roster.agents if "lead" in a.config.roles]
    of_tier = [a for a in all_leads if a.config.tier and a.config.tier == case.tier]
    team = next((t for t in roster.teams if t.name == case.team), None)
    team_lead = roster.agent(team.lead) if team is not None and team.lead else None
    of_team = [team_lead] if team_lead is not None else []
    for found in ((of_tier, of_team) if first == "tier" else (of_team, of_tier)):
        if found:
            return found
    return all_leads
