"""priority=P1..P6 (also written p2 or 2)."""

from __future__ import annotations

from mailproc.commands._common import choose, correct, need_value
from mailproc.models import PRIORITIES

name = "priority"
syntax = "priority=P1..P6"
help = "set the priority (P1 emergency … P6 low)"


def run(ctx, case, value, *, actor, now, message):
    written = need_value(name, value, syntax)
    wanted = choose("priority", "P" + written if written.isdigit() else written, PRIORITIES)
    return correct(case, "priority", wanted, command=name, actor=actor, now=now, message=message)
