"""note: the mail's new text becomes an internal note on the case, never sent to the customer."""

from __future__ import annotations

from mailproc import cases
from mailproc.commands._common import Change, CommandError, no_value

name = "note"
syntax = "note"
help = "keep the mail's text as an internal note (not sent to the customer)"

LIMIT = 20_000  # characters of a note kept in the event (the raw mail keeps all)


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    text = message.text.strip()
    if not text:
        raise CommandError("note: the mail has no text above the quoted history")
    cases.record(case, "note", now=now, actor=actor, rule=f"command:{name}", message=message.row,
                 detail=text[:LIMIT])
    return Change(None, None, None, f"internal note kept ({len(text.splitlines())} line(s))")
