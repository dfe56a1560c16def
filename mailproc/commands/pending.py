"""pending: status pending_input."""

from __future__ import annotations

from mailproc.commands._common import no_value, set_status

name = "pending"
syntax = "pending"
help = "the case waits for the customer's input (status pending_input)"


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    return set_status(case, "pending_input", command=name, actor=actor, now=now, message=message)
