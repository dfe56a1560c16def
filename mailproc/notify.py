"""Notifications: the assignee hears of each case given to them and of each customer mail on it.

One mail per event, to the agent's roster address, from the case's mailbox.
Its Reply-To (`support+<token>@…`) and its Message-ID (`mp.<token>.<unique>@…`)
carry a signed reply token bound to the case and the agent (`mailproc.tokens`),
so the agent's reply proves whose answer it is and threads back to the case:
the Message-ID is recorded on the outbox row, where `thread` finds it by
In-Reply-To. The subject is `[Case #N] …` (the token first, easy to scan in a
full inbox) and never carries a command group (the templates strip them).

The body holds what the agent needs to act without opening anything else:
summary, customer and plan, type, priority, team, the SLA due time in the
agent's own time zone, the customer's new text (quotes stripped by
`replytext.extract`, bounded), `replytext.MARKER` on a line of its own above
it all, so that the agent's reply is cut there, and a one-line reference of
the subject commands.

A notification is `Auto-Submitted: auto-generated` (robots must not answer
it), but not `automatic` in the outbox's sense: that limit is for mail to
addresses that might be robots, and an agent gets many notifications a day.
An undeliverable roster address still refuses it.

Nothing is sent when the roster has no agents or there is no secret
(`mailproc check` requires one once agents are configured).
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailproc import cases, compose, outbox, tokens
from mailproc.config import MailboxConfig
from mailproc.context import Context, roster_of
from mailproc.db import query_one
from mailproc.models import PRIORITY_LABELS, TYPE_LABELS, Case, Customer, Outbox
from mailproc.parse import ParsedMail
from mailproc.replytext import MARKER, extract
from mailproc.roster import Agent
from mailproc.subject import VERBS

log = logging.getLogger(__name__)

KIND = "notification"
ASSIGNED = "assigned"
MESSAGE = "message"
MAX_TEXT = 10_000  # characters of the customer's text repeated to the agent
MAX_LINES = 200  # lines of it
AUTO_SUBMITTED = "auto-generated"  # RFC 3834: of our own initiative, not an answer to the agent

# Verbs that take a value (`status=…`); the others are bare (`resolve`).
_VALUED = ("status", "priority", "type", "assign", "team", "tier", "escalate", "hold", "merge", "tag", "untag",
           "known", "needby", "time")
COMMANDS = "[" + " ".join(f"{v}=…" if v in _VALUED else v for v in VERBS) + "]"


def enabled(ctx: Context) -> bool:
    """Whether notifications go out at all: agents configured and a key for their tokens."""
    return bool(ctx.config.token_keys) and bool(roster_of(ctx).agents)


def agent_of(ctx: Context, case: Case) -> Agent | None:
    """The roster agent holding `case` (None: unassigned, or someone no longer on the roster)."""
    person = case.__data__.get("assignee")
    if person is None:
        return None
    row = query_one('SELECT "handle" FROM "person" WHERE "id" = ?', [person])
    return roster_of(ctx).agent(row[0]) if row and row[0] else None


def new_text(mail: ParsedMail) -> tuple[str, bool]:
    """The customer's new words (quoted history and signature stripped), bounded; and
    whether they were cut."""
    found = extract(mail)
    text, cut = found.text, found.truncated
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        text, cut = "\n".join(lines[:MAX_LINES]), True
    if len(text) > MAX_TEXT:
        text, cut = text[:MAX_TEXT], True
    return text.strip(), cut


def notify(ctx: Context, *, case: Case, agent: Agent, event: str, mail: ParsedMail, box: MailboxConfig,
           due: datetime | None, now: datetime, starts_at: datetime | None = None,
           text: str | None = None) -> Outbox | None:
    """Queue one notification of `event` (ASSIGNED or MESSAGE) on `case` to `agent`, in the
    caller's transaction; None when nothing was queued (refused, or no token could be made:
    an event on the case says why). `due`: the SLA due time; `starts_at`: when the agent's
    window opens, for a case given to someone off duty; `text`: what to show instead of
    the mail's new text (a case handed over by another agent shows the customer's)."""
    keys = ctx.config.token_keys
    if not keys:
        return None
    try:
        reply_to, message_id = tokens.headers(case.id, agent.name, now, keys[0], box.address)
    except ValueError as exc:  # a case number or mailbox address a token cannot carry
        cases.record(case, "mail_suppressed", now=now, new=KIND, detail=f"to {agent.name}: {exc}")
        log.warning("no notification for case %s to %s: %s", case.id, agent.name, exc)
        return None
    tz = agent.config.timezone
    if text is None:
        text, cut = new_text(mail)
    else:
        cut = len(text) > MAX_TEXT or len(text.splitlines()) > MAX_LINES
        text = "\n".join(text[:MAX_TEXT].splitlines()[:MAX_LINES]).strip()
    customer = _customer(case)
    context = dict(
        event=event, case=case, token=ctx.config.case_token.format(number=case.id),
        summary=compose.unlinked(case.summary or "(no subject)"),
        agent_name=compose.printable_line(agent.config.display_name or agent.name, compose.MAX_NAME),
        contact=case.contact, contact_name=compose.greeting_name(case.contact_name or ""),
        company=compose.printable_line(case.company or (customer.company if customer else ""), compose.MAX_NAME),
        plan=customer.plan if customer else "",
        type_label=TYPE_LABELS.get(case.type, case.type), priority_label=PRIORITY_LABELS.get(case.priority,
                                                                                            case.priority),
        team=case.team or "", due=due.astimezone(tz) if due else None,
        starts_at=starts_at.astimezone(tz) if starts_at else None,
        text=compose.unlinked(text), truncated=cut, marker=MARKER, commands=COMMANDS)
    return outbox.render_and_queue(
        ctx, kind=KIND, case=case, to=agent.address, mail_from=box.address, context=context, in_reply_to=None,
        references=[], now=now, automatic=False, reply=False, message_id=message_id, reply_to=reply_to,
        auto_submitted=AUTO_SUBMITTED)


def _customer(case: Case) -> Customer | None:
    """The case's directory entry (company, plan), read only when the case has one."""
    customer_id = case.__data__.get("customer")
    if customer_id is None:
        return None
    if isinstance(case.__rel__.get("customer"), Customer):
        return case.__rel__["customer"]
    return Customer.get_or_none(Customer.id == customer_id)
