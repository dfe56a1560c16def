"""Act: the one stage that writes. It records what the earlier stages decided.

A new case is created with every field and the rule that set it, an event per
decision, its participants, and one acknowledgement queued in the outbox; a
follow-up is logged on its case and moves the status as the workflow says; a
bounce marks the address undeliverable; an auto-reply is noted and changes
nothing else. Whatever happens, the message row ends with its disposition.
"""

from __future__ import annotations

import logging
from datetime import datetime


from mailproc import compose, db, outbox
from mailproc.models import (PRIORITY_LABELS, TYPE_LABELS, Case, CaseLink, Contact, Event, Message, Participant,
                             aware, utc)
from mailproc.parse import authentication_results
from mailproc.stages import Work
from mailproc.stages.thread import is_agent
from mailproc.subject import clean_subject, token_regex

log = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 20_000
# Values of X-Auto-Response-Suppress that ask us not to answer automatically.
SUPPRESS_VALUES = {"all", "autoreply", "oof"}


def run(work: Work) -> None:
    msg, mail = work.message, work.mail
    msg.message_id = (mail.message_id or "")[:998] or None
    msg.subject = mail.subject[:2000]
    msg.from_addr = mail.from_addr[:255]
    if work.duplicate_of is not None:
        _duplicate(work)
    elif work.screen in ("loop", "rejected", "bulk"):
        _record_only(work, work.screen)
    elif work.screen == "bounce":
        _bounce(work)
    elif work.screen == "auto_reply":
        _auto_reply(work)
    elif work.case is not None:
        _follow_up(work)
    else:
        _new_case(work)
    msg.case = work.case
    msg.state = "done"
    msg.disposition = work.disposition
    msg.processed_at = utc(work.now)
    msg.trace = work.trace
    msg.error = None
    db.update(Message, msg.id, message_id=msg.message_id, subject=msg.subject, from_addr=msg.from_addr,
              case=msg.case, state=msg.state, disposition=msg.disposition, processed_at=msg.processed_at,
              trace=msg.trace, error=None)


def event_row(work: Work, case: Case, kind: str, *, field: str | None = None, old=None, new=None,
              rule: str | None = None, detail: str | None = None, actor: str | None = None) -> dict:
    return dict(case=case, at=utc(work.now), actor=actor or work.mail.from_addr or "mailproc", kind=kind,
                field=field, old=None if old is None else str(old), new=None if new is None else str(new),
                rule=rule, message=work.message, detail=detail)


def event(work: Work, case: Case, kind: str, **kw) -> None:
    db.insert(Event, **event_row(work, case, kind, **kw))


def _arrived(work: Work) -> datetime:
    return aware(work.message.arrived_at) or work.now


def _duplicate(work: Work) -> None:
    work.disposition = "duplicate"
    if work.case is not None:
        event(work, work.case, "duplicate", rule="thread:duplicate",
              detail=f"same message seen again (first as message {work.duplicate_of.id})"
                     + (f" via mailbox {work.message.mailbox}" if work.message.mailbox else ""))


def _record_only(work: Work, disposition: str) -> None:
    work.disposition = disposition
    if disposition == "rejected":  # kept (raw on disk, row in messages), but a person should know
        log.warning("message %s rejected (%s) from %s: %s", work.message.id, ", ".join(work.trace),
                    work.mail.from_addr or "unknown sender", work.mail.subject[:120])
    if work.case is not None and disposition != "loop":
        event(work, work.case, disposition, detail=work.mail.subject[:500])


def _bounce(work: Work) -> None:
    work.disposition = "bounce"
    bounce = work.bounce
    if bounce is None or work.case is None:
        # Only a bounce of our own mail (threaded to its case through the original
        # Message-ID) may mark an address: anyone can forge a delivery report.
        return
    for address in bounce.recipients:
        if not bounce.permanent:
            continue
        now = utc(work.now)
        contact, _ = Contact.get_or_create(address=address.lower(), defaults={"first_seen": now, "last_seen": now})
        contact.undeliverable = True
        contact.undeliverable_reason = bounce.reason[:2000]
        contact.undeliverable_at = utc(work.now)
        contact.save()
    if work.case is not None:
        event(work, work.case, "bounce", actor="mailproc",
              detail=f"{'permanent' if bounce.permanent else 'temporary'} failure for "
                     f"{', '.join(bounce.recipients) or 'unknown recipient'}: {bounce.reason[:500]}")


def _auto_reply(work: Work) -> None:
    work.disposition = "auto_reply"
    if work.case is not None:
        event(work, work.case, "auto_reply", detail=work.mail.subject[:500])


def _follow_up(work: Work) -> None:
    case, mail = work.case, work.mail
    work.disposition = "follow_up"
    arrived = utc(_arrived(work))
    agent = is_agent(mail.from_addr)
    if agent:
        case.last_agent_at = arrived
    else:
        case.last_customer_at = arrived
    event(work, case, "message", rule=f"thread:{work.thread_rule}", detail=mail.subject[:500])
    _add_participants(work, case)
    if not agent:
        new_status = work.ctx.rules.workflow.on_customer_reply(case.status)
        if new_status and new_status != case.status:
            event(work, case, "field", field="status", old=case.status, new=new_status,
                  rule="workflow:customer_reply")
            case.status = new_status
            case.status_changed_at = utc(work.now)
    case.updated_at = utc(work.now)
    case.save()
    _seen(mail.from_addr, work)


def _new_case(work: Work) -> None:
    mail, fields, ctx = work.mail, work.fields, work.ctx
    work.disposition = "new_case"
    contact_addr = mail.reply_to[0] if mail.reply_to else mail.from_addr
    now, arrived = utc(work.now), utc(_arrived(work))
    # What the sender wrote, as it may appear in our mails and on a terminal: one line, printable, bounded.
    summary = compose.printable_line(clean_subject(mail.subject, token_regex(ctx.config.case_token)),
                                     compose.MAX_SUBJECT_TEXT) or "(no subject)"
    contact_name = compose.printable_line(mail.from_name, compose.MAX_NAME)
    customer = work.customer
    values = dict(
        mailbox=work.message.mailbox,
        type=fields.get("type", "request"), status=fields.get("status", "new"),
        priority=fields.get("priority", "P6"), tier=fields.get("tier", "triage"), team=fields.get("team"),
        contact=contact_addr, contact_name=contact_name, customer=customer,
        company=fields.get("company"), summary=summary, description=mail.text[:DESCRIPTION_LIMIT],
        need_by=fields.get("need_by"), partner=bool(fields.get("partner")),
        tags=list(fields.get("tags") or []), admin_task_type=fields.get("admin_task_type"),
        internal=bool(fields.get("internal")), needs_triage=bool(fields.get("needs_triage")),
        decided_by=dict(work.decided_by), created_at=arrived, updated_at=now, status_changed_at=arrived,
        tier_entered_at=arrived, last_customer_at=arrived)
    case = work.case = Case(id=db.insert(Case, **values), **values)
    events = [event_row(work, case, "created", detail=f"from message {work.message.id}: {summary[:200]}")]
    events += [event_row(work, case, "field", field=name, new=fields[name], rule=work.decided_by.get(name),
                         actor="mailproc")
               for name in ("type", "status", "priority", "tier", "team", "company", "need_by", "partner",
                            "internal", "needs_triage", "tags", "admin_task_type")
               if fields.get(name) not in (None, [], "")]
    db.insert_many(Event, events)
    if work.reopen_of is not None:
        CaseLink.create(case=case, other=work.reopen_of, kind="reopened_from", created_at=now)
        event(work, case, "linked", detail=f"reply to closed case #{work.reopen_of.id}", rule="thread:closed-case")
        event(work, work.reopen_of, "linked", detail=f"customer replied after closing; new case #{case.id}",
              rule="thread:closed-case")
    db.insert(Participant, case=case, address=contact_addr, role="contact")
    _add_participants(work, case, known={contact_addr})
    _seen(contact_addr, work, name=contact_name)
    _acknowledge(work, case)


def _acknowledge(work: Work, case: Case) -> None:
    ctx, mail = work.ctx, work.mail
    suppress = {v.strip().lower() for h in mail.headers.get("x-auto-response-suppress", []) for v in h.split(",")}
    if suppress & SUPPRESS_VALUES:
        event(work, case, "mail_suppressed", actor="mailproc", new="acknowledgement",
              detail="sender asked for no automatic replies (X-Auto-Response-Suppress)")
        return
    dmarc = _dmarc_failure(work)
    if dmarc:
        event(work, case, "mail_suppressed", actor="mailproc", new="acknowledgement", detail=dmarc)
        return
    box = work.mailbox or (ctx.config.mailboxes[0] if ctx.config.mailboxes else None)
    if box is None:
        event(work, case, "mail_suppressed", actor="mailproc", new="acknowledgement",
              detail="no mailbox is configured to send from")
        return
    sla = ctx.rules.sla
    target = sla.response_target(case.priority)
    expected_by = sla.expected_response(case.priority, _arrived(work))
    token = ctx.config.case_token.format(number=case.id)
    context = dict(
        case=_as_shown(case), token=token, contact_name=compose.greeting_name(case.contact_name),
        expected_response=target.phrase, expected_by=expected_by.astimezone(ctx.config.timezone),
        type_label=TYPE_LABELS[case.type], priority_label=PRIORITY_LABELS[case.priority],
        escalated=escalated(case), is_bug=case.type == "bug", mailbox_address=box.address,
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


def _as_shown(case: Case) -> Case:
    """A copy of the case for templates, with the sender's words in it (summary, name)
    unable to become links in the mail we send; the stored case keeps them readable
    (one printable line, not defanged) for the support team."""
    return Case(**{**case.__data__, "summary": compose.unlinked(case.summary),
                   "contact_name": compose.greeting_name(case.contact_name)})


def escalated(case: Case) -> bool:
    """P1/P2 problems and requests go to engineering and on-call at once (SPEC §3).

    For admin tasks and enhancement requests seed 000 gives P1/P2 their own
    meaning — "resolve within 48 hours", "promised for the next release" —
    which is about scheduling, not about waking an engineer.
    """
    return case.priority in ("P1", "P2") and case.type in ("bug", "request")


def _add_participants(work: Work, case: Case, known: set[str] | None = None) -> None:
    """Everyone on the mail but us becomes a participant (so their replies may use the token)."""
    if known is None:
        known = {p.address for p in Participant.select(Participant.address).where(Participant.case == case)}
    ours = work.ctx.config.our_addresses
    new = []
    for address in [work.mail.from_addr, *work.mail.cc, *work.mail.to]:
        if address and address not in ours and address not in known:
            new.append({"case": case, "address": address, "role": "cc"})
            known.add(address)
    db.insert_many(Participant, new)


_SEEN_SQL = ("INSERT INTO contact (address, name, undeliverable, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)"
             " ON CONFLICT (address) DO UPDATE SET last_seen = excluded.last_seen")


def _seen(address: str, work: Work, name: str = "") -> None:
    """Record that `address` wrote to us (one upsert; SQLite 3.24+ and PostgreSQL)."""
    now = utc(work.now)
    db.execute(_SEEN_SQL, [address.lower(), name[:255], False, now, now])
