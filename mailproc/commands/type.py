"""type=TYPE: request, admin, enhancement or bug."""

from __future__ import annotations

from mailproc.commands._common import choose, correct, need_value
from mailproc.models import CASE_TYPES

name = "type"
syntax = "type=TYPE"
help = "set the case type: " + ", ".join(CASE_TYPES)


def run(ctx, case, value, *, actor, now, message):
    wanted = choose("type", need_value(name, value, syntax), CASE_TYPES)
    return correct(case, "type", wanted, command=name, actor=actor, now=now, message=message)
