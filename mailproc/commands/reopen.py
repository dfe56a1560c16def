"""reopen: a resolved or closed case is worked again (assigned when it has an assignee, else new)."""

from __future__ import annotations

from mailproc.commands._common import CommandError, no_value, set_status

name = "reopen"
syntax = "reopen"
help = "reopen a resolved or closed case"

DONE = ("resolved", "pending_closure", "closed")


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    if case.status not in DONE:
        raise CommandError(f"reopen: the case is not resolved or closed (it is {case.status})")
    status = "assigned" if case.__data__.get("assignee") is not None else "new"
    return set_status(case, status, command=name, actor=actor, now=now, message=message)
