"""wait: status waiting."""

from __future__ import annotations

from mailproc.commands._common import no_value, set_status

name = "wait"
syntax = "wait"
help = "the case waits on the customer (status waiting)"


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    return set_status(case, "waiting", command=name, actor=actor, now=now, message=message)
