"""Act: the stage that writes what the earlier stages decided, through `cases`.

A dispatch on the message's disposition: a new case is opened with every
field and the rule that set it, its participants, and one acknowledgement
queued in the outbox; a follow-up is logged on its case and moves the status
as the workflow says; a bounce marks the address undeliverable; an
auto-reply is noted and changes nothing else. Whatever happens, the message
row ends with its disposition. Rows are written only by `cases` (and
`outbox`), never here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from mailproc import agentmail, cases, compose, notify, ooo, outbox, replytext, roster, satisfaction, timers
from mailproc.config import MailboxConfig
from mailproc.context import roster_of
from mailproc.models import PRIORITY_LABELS, TYPE_LABELS, Case, aware, utc
from mailproc.parse import authentication_results
from mailproc.stages import Work
from mailproc.stages.thread import is_agent
from mailproc.subject import clean_subject, token_regex

log = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 20_000
# Values of X-Auto-Response-Suppress that ask us not to answer automatically.
SUPPRESS_VALUES = {"all", "autoreply", "oof"}
# What screening can make of a mail, each recorded as such (a disposition of its own).
SCREENED = ("loop", "rejected", "bulk", "bounce", "auto_reply")
# What may change a case's state, and so its due work (timers.replan).
REPLANNED = ("new_case", "follow_up", "command", "auto_reply", "satisfaction")


def run(work: Work) -> None:
    msg, mail = work.message, work.mail
    msg.message_id = (mail.message_id or "")[:998] or None
    msg.subject = mail.subject[:2000]
    msg.from_addr = mail.from_addr[:255]
    work.disposition = disposition(work)
    if work.disposition in ("follow_up", "new_case") and agentmail.is_command_mail(work):
        work.disposition = "command"  # an agent's subject commands: mailproc.agentmail
        agentmail.run(work)
    elif work.disposition == "follow_up" and agentmail.is_agent_reply(work):
        agentmail.run(work)  # an agent's answer on a case: relayed once proven
    else:
        HANDLERS[work.disposition](work)
    if work.case is not None and work.disposition in REPLANNED:
        timers.replan(work.ctx, work.case, work.now)  # its due work follows the change, same transaction
    cases.file_message(msg, work.case, disposition=work.disposition, trace=work.trace, now=work.now)


def disposition(work: Work) -> str:
    """What the message is, from what screen and thread found."""
    if work.duplicate_of is not None:
        return "duplicate"
    if work.screen in SCREENED:
        return work.screen
    if work.case is not None and satisfaction.answered(work):
        return "satisfaction"
    return "follow_up" if work.case is not None else "new_case"


def _record(work: Work, case: Case, kind: str, *, actor: str | None = None, **kw) -> None:
    """An event caused by this mail; by its sender unless `actor` says otherwise."""
    cases.record(case, kind, now=work.now, actor=actor or work.mail.from_addr or cases.SYSTEM,
                 message=work.message, **kw)


def _arrived(work: Work) -> datetime:
    return aware(work.message.arrived_at) or work.now


def _duplicate(work: Work) -> None:
    if work.case is not None:
        _record(work, work.case, "duplicate", rule="thread:duplicate",
                detail=f"same message seen again (first as message {work.duplicate_of.id})"
                       + (f" via mailbox {work.message.mailbox}" if work.message.mailbox else ""))


def _record_only(work: Work) -> None:
    kind = disposition(work)
    if kind == "rejected":  # kept (raw on disk, row in messages), but a person should know
        log.warning("message %s rejected (%s) from %s: %s", work.message.id, ", ".join(work.trace),
                    work.mail.from_addr or "unknown sender", work.mail.subject[:120])
    if work.case is not None and kind != "loop":
        _record(work, work.case, kind, detail=work.mail.subject[:500])


def _bounce(work: Work) -> None:
    bounce = work.bounce
    if bounce is None or work.case is None:
        # Only a bounce of our own mail (threaded to its case through the original
        # Message-ID) may mark an address: anyone can forge a delivery report.
        return
    if bounce.permanent:
        for address in bounce.recipients:
            cases.contact_undeliverable(address, bounce.reason, work.now)
    _record(work, work.case, "bounce", actor=cases.SYSTEM,
            detail=f"{'permanent' if bounce.permanent else 'temporary'} failure for "
                   f"{', '.join(bounce.recipients) or 'unknown recipient'}: {bounce.reason[:500]}")


def _auto_reply(work: Work) -> None:
    case = work.case
    if case is None:
        return
    _record(work, case, "auto_reply", detail=work.mail.subject[:500])
    # An out-of-office reply of the case's customer that says when they are back: their
    # reminders wait for that day (the timers read away_until); status and owner stay as
    # they are. Someone else's (an agent's, a colleague on copy) says nothing of the customer.
    if outbox.bare_address(work.mail.from_addr).lower() != outbox.bare_address(case.contact).lower():
        return
    tz = work.ctx.config.timezone
    back = ooo.return_date(replytext.extract(work.mail).text, work.mail.subject, _arrived(work), tz)
    if back is not None and back > work.now and back != aware(case.away_until):
        cases.touch(case, work.now, away_until=back)
        _record(work, case, "away", detail=f"away until {back.astimezone(tz):%Y-%m-%d %H:%M %Z} (out-of-office reply)")


def _follow_up(work: Work) -> None:
    case, mail = work.case, work.mail
    assert case is not None
    arrived = utc(_arrived(work))
    agent = is_agent(mail.from_addr)
    _record(work, case, "message", rule=f"thread:{work.thread_rule}", detail=mail.subject[:500])
    cases.add_participants(case, _others(work))
    times = {"last_agent_at" if agent else "last_customer_at": arrived}
    new_status, said = (None, None) if agent else _reply_status(work, case)
    rule = "workflow:confirmation" if said else "workflow:customer_reply"
    # One UPDATE either way: the times ride along with the status change.
    if not (new_status and cases.set_field(case, "status", new_status, actor=mail.from_addr or cases.SYSTEM,
                                           now=work.now, rule=rule, message=work.message, also=times,
                                           detail=f"the customer says it is {said}" if said else None)):
        cases.touch(case, work.now, **times)
    cases.contact_seen(mail.from_addr, work.now)
    if not agent and notify.enabled(work.ctx):
        assignee = notify.agent_of(work.ctx, case)
        if assignee is not None:
            _notify(work, case, assignee, notify.MESSAGE)


def _reply_status(work: Work, case: Case) -> tuple[str | None, str | None]:
    """Where a customer's reply moves the case (workflow.toml [customer_reply]); on a
    Pending Closure case, what the reply's new text says decides ([confirmation])."""
    workflow = work.ctx.rules.workflow
    if case.status != "pending_closure":
        return workflow.on_customer_reply(case.status), None
    return workflow.reply_status(case.status, replytext.extract(work.mail).text)


def _new_case(work: Work) -> None:
    mail, fields, ctx = work.mail, work.fields, work.ctx
    contact_addr = mail.reply_to[0] if mail.reply_to else mail.from_addr
    arrived = _arrived(work)
    # What the sender wrote, as it may appear in our mails and on a terminal: one line, printable, bounded.
    summary = compose.printable_line(clean_subject(mail.subject, token_regex(ctx.config.case_token)),
                                     compose.MAX_SUBJECT_TEXT) or "(no subject)"
    contact_name = compose.printable_line(mail.from_name, compose.MAX_NAME)
    values = dict(
        mailbox=work.message.mailbox,
        type=fields.get("type", "request"), status=fields.get("status", "new"),
        priority=fields.get("priority", "P6"), tier=fields.get("tier", "triage"), team=fields.get("team"),
        contact=contact_addr, contact_name=contact_name, customer=work.customer,
        company=fields.get("company"), summary=summary, description=mail.text[:DESCRIPTION_LIMIT],
        need_by=fields.get("need_by"), partner=bool(fields.get("partner")),
        tags=list(fields.get("tags") or []), admin_task_type=fields.get("admin_task_type"),
        internal=bool(fields.get("internal")), needs_triage=bool(fields.get("needs_triage")),
        last_customer_at=utc(arrived))
    case = work.case = cases.open_case(
        values, decided=fields, rules=work.decided_by, actor=mail.from_addr or cases.SYSTEM, now=work.now,
        opened_at=arrived, message=work.message, participants=_others(work),
        detail=f"from message {work.message.id}: {summary[:200]}")
    if work.reopen_of is not None:
        cases.link(case, work.reopen_of, "reopened_from", actor=mail.from_addr or cases.SYSTEM, now=work.now,
                   rule="thread:closed-case", message=work.message,
                   detail=f"reply to closed case #{work.reopen_of.id}",
                   other_detail=f"customer replied after closing; new case #{case.id}")
    cases.contact_seen(contact_addr, work.now, name=contact_name)
    choice = _assign(work, case)
    _acknowledge(work, case)
    if choice is not None and notify.enabled(ctx):
        _notify(work, case, choice.agent, notify.ASSIGNED, starts_at=choice.starts_at
                if choice.rule == roster.RULE_NEXT_WINDOW else None)


def _assign(work: Work, case: Case) -> roster.Choice | None:
    """Give the new case to an agent of its team available at the mail's arrival (or,
    nobody being at work, the one whose window opens soonest); None, with an event
    saying why, when the team has no agent. Nothing at all when no agents are
    configured: assignment is not in use, and the hot path pays nothing for it."""
    agents = roster_of(work.ctx)
    if not agents.agents:
        return None
    choice = roster.pick(agents, case.team, _arrived(work))
    person = roster.person_id(choice.agent.name) if choice is not None else None
    if choice is None or person is None:
        why = (f"agent {choice.agent.name} is not in the database yet (roster not synced)" if choice is not None
               else f"no agent in team {case.team}" if case.team else "the case has no team")
        _record(work, case, "unassigned", actor=cases.SYSTEM, rule="assignment:none", detail=why)
        return None
    cases.set_field(case, "assignee", person, actor=cases.SYSTEM, now=work.now, rule=choice.rule,
                    message=work.message, detail=f"{choice.agent.name} ({choice.rule})",
                    also={"decided_by": {**(case.decided_by or {}), "assignee": choice.rule}})
    return choice


def _notify(work: Work, case: Case, agent: roster.Agent, event: str, starts_at: datetime | None = None) -> None:
    """One notification to `agent` about this mail on `case`. The SLA due time is the
    first response's while there has been none (counted from the case's opening, as the
    acknowledgement promised), then the answer to this mail's (from its arrival)."""
    sla, ctx = work.ctx.rules.sla, work.ctx
    start = aware(case.created_at) if case.first_response_at is None else _arrived(work)
    due = sla.expected_response(case.priority, start or _arrived(work)) if case.priority in sla.response else None
    box = _mailbox_of(work, case)
    if box is None:
        _record(work, case, "mail_suppressed", actor=cases.SYSTEM, new=notify.KIND,
                detail="no mailbox is configured to send from")
        return
    notify.notify(ctx, case=case, agent=agent, event=event, mail=work.mail, box=box, due=due, now=work.now,
                  starts_at=starts_at)


def _mailbox_of(work: Work, case: Case) -> MailboxConfig | None:
    """The case's mailbox (the one it was opened through), else the one this mail came in by."""
    boxes = work.ctx.config.mailboxes
    return (next((b for b in boxes if b.name == case.mailbox), None) or work.mailbox
            or (boxes[0] if boxes else None))


def _others(work: Work) -> list[str]:
    """Everyone on the mail but us: they become participants (so their replies may use the token)."""
    ours = work.ctx.config.our_addresses
    mail = work.mail
    return [address for address in [mail.from_addr, *mail.cc, *mail.to] if address and address not in ours]


HANDLERS: dict[str, Callable[[Work], None]] = {
    "duplicate": _duplicate, "loop": _record_only, "rejected": _record_only, "bulk": _record_only,
    "bounce": _bounce, "auto_reply": _auto_reply, "follow_up": _follow_up, "new_case": _new_case,
    "satisfaction": satisfaction.take}


def _acknowledge(work: Work, case: Case) -> None:
    ctx, mail = work.ctx, work.mail
    suppress = {v.strip().lower() for h in mail.headers.get("x-auto-response-suppress", []) for v in h.split(",")}
    if suppress & SUPPRESS_VALUES:
        _record(work, case, "mail_suppressed", actor=cases.SYSTEM, new="acknowledgement",
                detail="sender asked for no automatic replies (X-Auto-Response-Suppress)")
        return
    dmarc = _dmarc_failure(work)
    if dmarc:
        _record(work, case, "mail_suppressed", actor=cases.SYSTEM, new="acknowledgement", detail=dmarc)
        return
    box = work.mailbox or (ctx.config.mailboxes[0] if ctx.config.mailboxes else None)
    if box is None:
        _record(work, case, "mail_suppressed", actor=cases.SYSTEM, new="acknowledgement",
                detail="no mailbox is configured to send from")
        return
    sla = ctx.rules.sla
    target = sla.response_target(case.priority)
    expected_by = sla.expected_response(case.priority, _arrived(work))
    token = ctx.config.case_token.format(number=case.id)
    context = dict(
        case=compose.shown_case(case), token=token, contact_name=compose.greeting_name(case.contact_name),
        expected_response=target.phrase, expected_by=expected_by.astimezone(ctx.config.timezone),
        type_label=TYPE_LABELS[case.type], priority_label=PRIORITY_LABELS[case.priority],
        escalated=escalated(case), is_bug=case.type == "bug", mailbox_address=box.address,
        help_articles=ctx.rules.help.suggest(mail.subject, mail.text),
        original_subject=compose.unlinked(compose.printable_line(mail.subject, compose.MAX_SUBJECT_TEXT)))
    outbox.render_and_queue(ctx, kind="acknowledgement", case=case, to=case.contact, mail_from=box.address,
                            context=context, in_reply_to=mail.message_id,
                            references=list(mail.references), now=work.now)


def _dmarc_failure(work: Work) -> str | None:
    """Why not to answer a sender whose domain failed DMARC at our receiving server
    (the From is likely forged: the answer would be backscatter to a stranger), or
    None. Only the results of `[auth] authserv_id` count; without it none are read."""
    authserv_id = work.ctx.config.authserv_id
    if not authserv_id or ("dmarc", "fail") not in authentication_results(work.mail, authserv_id):
        return None
    return f"sender failed DMARC at {authserv_id} (Authentication-Results): the From address may be forged"


def escalated(case: Case) -> bool:
    """P1/P2 problems and requests go to engineering and on-call at once (SPEC §3).

    For admin tasks and enhancement requests seed 000 gives P1/P2 their own
    meaning — "resolve within 48 hours", "promised for the next release" —
    which is about scheduling, not about waking an engineer.
    """
    return case.priority in ("P1", "P2") and case.type in ("bug", "request")
