"""status=STATUS: any status of the workflow (SPEC §4)."""

from __future__ import annotations

from mailproc.commands._common import choose, key, need_value, set_status
from mailproc.models import STATUSES

name = "status"
syntax = "status=STATUS"
help = "set the status: " + ", ".join(STATUSES)


def run(ctx, case, value, *, actor, now, message):
    wanted = choose("status", need_value(name, value, syntax), STATUSES, key)
    return set_status(case, wanted, command=name, actor=actor, now=now, message=message)
