"""The exit interview invitation (issue 8, item 8; seed 001's offboarding steps).

An agent marks a customer as leaving by tagging one of their cases with
`[lifecycle] offboarding_tag` (`tag=offboarding`, compared without case): the
case's contact is invited to an exit interview (template `exit_interview`),
once per contact address, whichever of their cases carries the tag and however
often it is tagged again. The item's key names the address, not the case: a
second case of the same contact plans the same key, which the due table keeps
as one row, and a row done stays done.

Never for an internal or partner case or customer (the case's flags or its
directory row), nor for a contact who is one of our agents. The item is due as
soon as the tag is there (its time is the case's creation, stable whatever the
clock, as a plan must be).
"""

from __future__ import annotations

from datetime import datetime

from mailproc import cases, db
from mailproc.context import Context
from mailproc.due import Planned
from mailproc.jobs import _mail
from mailproc.models import Case, aware
from mailproc.outbox import bare_address

KIND = "exit_interview"
_CUSTOMER_SQL = "SELECT internal, partner FROM customer WHERE id = ?"


def tagged(ctx: Context, case: Case) -> bool:
    wanted = ctx.config.lifecycle.offboarding_tag.lower()
    return any(str(t).lower() == wanted for t in case.tags or [])


def key(address: str) -> str:
    return f"{KIND}:{bare_address(address).lower()}"[:200]


def plan(ctx: Context, case: Case) -> list[Planned]:
    if not tagged(ctx, case) or case.internal or case.partner or not case.contact:
        return []
    customer_id = case.__data__.get("customer")
    row = db.query_one(_CUSTOMER_SQL, [customer_id]) if customer_id is not None else None
    if row and (row[0] or row[1]):
        return []
    return [Planned(KIND, key(case.contact), aware(case.created_at))]


def _exit_interview(ctx: Context, case: Case, now: datetime) -> None:
    from mailproc.stages.thread import is_agent
    if is_agent(case.contact):
        cases.record(case, "mail_suppressed", now=now, new=KIND, detail="the contact is an agent")
        return
    _mail.to_customer(ctx, case, KIND, now)


RUN = {KIND: _exit_interview}
