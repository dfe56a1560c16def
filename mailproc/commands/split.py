"""split: a new case, linked to this one, from the mail's text (a second problem raised
in the same thread). It keeps the customer, company, mailbox, type, priority, team and
tier; its summary is the first line of the text. The customer hears of it when someone
answers on it: an agent splits to keep the history apart, not to start a conversation."""

from __future__ import annotations

from mailproc import cases
from mailproc.commands._common import Change, CommandError, no_value

name = "split"
syntax = "split"
help = "open a new case, linked to this one, from the mail's text"

SUMMARY = 200
DESCRIPTION = 20_000
_KEPT = ("contact", "contact_name", "customer", "company", "mailbox", "type", "priority", "tier", "team", "partner",
         "internal")


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    text = message.text.strip()
    if not text:
        raise CommandError("split: the mail has no text above the quoted history to open the new case with")
    summary = " ".join(text.splitlines()[0].split())[:SUMMARY]
    values = {field: case.__data__.get(field) for field in _KEPT}
    values.update(summary=summary, description=text[:DESCRIPTION], status="new", tags=[])
    new = cases.open_case(values, decided={}, rules={}, actor=actor, now=now, message=message.row,
                          detail=f"split from case #{case.id} by {actor}")
    cases.link(new, case, "split_from", actor=actor, now=now, rule=f"command:{name}", message=message.row,
               detail=f"split from case #{case.id}", other_detail=f"case #{new.id} split from this one")
    from mailproc import timers  # the new case's clocks start now
    timers.replan(ctx, new, now)
    return Change(None, None, new.id, f"new case #{new.id} split from this one: {summary}")
