"""Queueing outgoing mail in the database, in the caller's transaction.

A mail is queued together with the change that caused it (a new case, a
status change, ...): both commit or neither does, so a crash can neither lose
an acknowledgement nor send one for a case that was rolled back. Only
`send.drain` ever speaks SMTP.

Queueing refuses, and says why in the case's event log, when:
- the address is a Contact marked undeliverable (a bounce told us so);
- automatic mail would exceed `autoreply_limit` mails to that address within
  `autoreply_window` (SPEC §2: two robots can never loop);
- automatic mail would go to one of our own mailbox addresses (it would come
  straight back in).
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.utils import parseaddr


from mailproc import cases, compose
from mailproc.context import Context
from mailproc.db import insert, query_one, transaction
from mailproc.models import Case, Outbox, utc

log = logging.getLogger(__name__)


def bare_address(address: str) -> str:
    """'Ana <ana@example.com>' -> 'ana@example.com' (for the envelope and lookups)."""
    return parseaddr(address)[1].strip() or address.strip()


# Both checks in one statement: this runs for every automatic mail.
_REFUSAL_SQL = (
    "SELECT (SELECT undeliverable FROM contact WHERE address = ?),"
    " (SELECT undeliverable_reason FROM contact WHERE address = ?),"
    " (SELECT COUNT(*) FROM outbox WHERE to_addr = ? AND automatic AND created_at > ?)")


def refusal(ctx: Context, *, to: str, now: datetime, automatic: bool) -> str | None:
    """Why mail to `to` must not go out now, or None when it may."""
    address = bare_address(to).lower()
    since = utc(now - ctx.config.autoreply_window)
    undeliverable, reason, sent = query_one(_REFUSAL_SQL, [address, address, address, since])
    if undeliverable:
        return f"{address} is marked undeliverable" + (f": {reason}" if reason else "")
    if not automatic:
        return None
    if address in ctx.config.our_addresses:
        return f"{address} is one of our own mailboxes"
    limit, window = ctx.config.autoreply_limit, ctx.config.autoreply_window
    if sent >= limit:
        return f"automatic mail limit reached: {sent} to {address} within {window} (limit {limit})"
    return None


def queue(ctx: Context, *, kind: str, case: Case | None, to: str, mail_from: str, subject: str, text: str,
          html: str, in_reply_to: str | None, references: list[str], now: datetime, automatic: bool = True,
          reply: bool = True, actor: str = "mailproc") -> Outbox | None:
    """Build the message and queue it; None (and a 'mail_suppressed' event) when refused."""
    with transaction():
        why = refusal(ctx, to=to, now=now, automatic=automatic)
        if why:
            log.info("not sending %s mail%s: %s", kind, f" for case {case.id}" if case else "", why)
            if case is not None:
                cases.record(case, "mail_suppressed", now=now, actor=actor, new=kind, detail=why)
            return None
        envelope_from = bare_address(mail_from)
        # RFC 3834: an answer to a message is auto-replied (even one without a
        # Message-ID to refer to); a mail of our own initiative is auto-generated.
        auto = ("auto-replied" if reply else "auto-generated") if automatic else None
        msg, message_id = compose.build(
            mail_from=mail_from, to=[to], subject=subject, text=text, html=html, in_reply_to=in_reply_to,
            references=references, instance=ctx.config.instance, auto=auto, now=now,
            domain=envelope_from.rpartition("@")[2] or "localhost")
        values = dict(
            case=case, kind=kind, message_id=message_id, mail_from=envelope_from,
            recipients=[bare_address(to)], to_addr=bare_address(to).lower(), raw=compose.as_bytes(msg),
            automatic=automatic,            state="queued", next_attempt_at=utc(now), created_at=utc(now))
        row = Outbox(id=insert(Outbox, **values), **values)
        if case is not None:
            cases.record(case, "mail_queued", now=now, actor=actor, new=kind, detail=message_id)
        return row


def render_and_queue(ctx: Context, *, kind: str, case: Case | None, to: str, mail_from: str, context: dict,
                     in_reply_to: str | None, references: list[str], now: datetime,
                     automatic: bool = True, reply: bool = True) -> Outbox | None:
    """Render `kind` from templates/ (subject from the template) and queue it."""
    rendered = ctx.templates.render(kind, **context)
    text, html = rendered
    return queue(ctx, kind=kind, case=case, to=to, mail_from=mail_from, subject=rendered.subject, text=text,
                 html=html, in_reply_to=in_reply_to, references=references, now=now, automatic=automatic,
                 reply=reply)
