"""resolve: status resolved."""

from __future__ import annotations

from mailproc.commands._common import no_value, set_status

name = "resolve"
syntax = "resolve"
help = "resolve the case (status resolved)"


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    return set_status(case, "resolved", command=name, actor=actor, now=now, message=message)
