"""The exit interview invitation (issue 8, item 8; seed 001's offboarding steps).

An agent marks a customer as leaving by tagging one of their cases with
`[lifecycle] offboarding_tag` (`tag=offboarding`, compared without case): the
case's contact is invited to an exit interview (template `exit_interview`),
once per contact address, whichever of their cases carries the tag and however
often it is tagged again.

The due item belongs to the case (`exit_interview:<case id>`): a key shared by
all cases of a contact would be one row holding the case that planned it first,
so that case losing its tag would cancel the row, or make it stale for good,
while another case of the contact is still tagged. "Once per contact" is the
runner's: it claims the address under a unique key of `slot_run`
(f"exit_interview:{address}") in the transaction that queues the mail, so two
daemons sweeping two cases of one contact at once send one invitation, and a
later tagging sends none (and records why).

The invitation is mail we generate (`Auto-Submitted: auto-generated`) and
neither counts toward nor is held by `autoreply_limit`: it goes at most once per
contact address, and one held back by a busy week of acknowledgements would be
lost, since its due item is done. It is still refused to an address marked
undeliverable, and never sent to one of our own mailboxes.

Never for an internal or partner case or customer (the case's flags or its
directory row), nor for a contact who is one of our agents. The item is due as
soon as the tag is there (its time is the case's creation, stable whatever the
clock, as a plan must be).
"""

from __future__ import annotations

from datetime import datetime

from mailproc import cases, db, due, outbox, slots
from mailproc.context import Context
from mailproc.due import Planned
from mailproc.jobs import _mail
from mailproc.models import Case, aware
from mailproc.outbox import bare_address

KIND = "exit_interview"
_CUSTOMER_SQL = "SELECT internal, partner FROM customer WHERE id = ?"
_LAST_MESSAGE_SQL = ('SELECT "message_id" FROM "message" WHERE "case_id" = ? AND "message_id" IS NOT NULL'
                     ' ORDER BY "id" DESC LIMIT 1')


def tagged(ctx: Context, case: Case) -> bool:
    wanted = ctx.config.lifecycle.offboarding_tag.lower()
    return any(str(t).lower() == wanted for t in case.tags or [])


def key(case_id: int) -> str:
    return due.key(KIND, case_id)


def plan(ctx: Context, case: Case) -> list[Planned]:
    if not tagged(ctx, case) or case.internal or case.partner or not case.contact:
        return []
    customer_id = case.__data__.get("customer")
    row = db.query_one(_CUSTOMER_SQL, [customer_id]) if customer_id is not None else None
    if row and (row[0] or row[1]):
        return []
    return [Planned(KIND, key(case.id), aware(case.created_at))]


def _exit_interview(ctx: Context, case: Case, now: datetime) -> None:
    from mailproc.stages.thread import is_agent
    address = bare_address(case.contact).lower()
    why = None
    if is_agent(case.contact):
        why = "the contact is an agent"
    elif address in ctx.config.our_addresses:
        why = f"{address} is one of our own mailboxes"
    box = _mail.mailbox_of(ctx, case)
    if why is None and box is None:
        why = "no mailbox is configured to send from"
    if why is None and not slots.claim(f"{KIND}:{address}"[:200], now, now):
        why = f"{address} was already invited to an exit interview"
    if why or box is None:
        cases.record(case, "mail_suppressed", now=now, new=KIND, detail=why)
        return
    last = db.query_one(_LAST_MESSAGE_SQL, [case.id])
    context = _mail.case_context(ctx, case, box, ctx.config.timezone, now)
    outbox.render_and_queue(ctx, kind=KIND, case=case, to=case.contact, mail_from=box.address, context=context,
                            in_reply_to=last[0] if last else None, references=[last[0]] if last else [],
                            now=now, automatic=False, reply=False, auto_submitted="auto-generated")


RUN = {KIND: _exit_interview}
