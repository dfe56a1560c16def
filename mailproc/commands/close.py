"""close: status closed."""

from __future__ import annotations

from mailproc.commands._common import no_value, set_status

name = "close"
syntax = "close"
help = "close the case (status closed)"


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    return set_status(case, "closed", command=name, actor=actor, now=now, message=message)
