"""tier=T1..T5|oncall|triage: the support tier (seed 002) whose queue holds the case."""

from __future__ import annotations

from mailproc.commands._common import choose, key, need_value, set_field
from mailproc.models import TIERS

name = "tier"
syntax = "tier=T1..T5|oncall"
help = "move the case to a tier: " + ", ".join(TIERS)


def run(ctx, case, value, *, actor, now, message):
    return set_tier(case, need_value(name, value, syntax), command=name, actor=actor, now=now, message=message)


def set_tier(case, written, *, command, actor, now, message):
    wanted = choose("tier", written, TIERS, key)
    return set_field(case, "tier", wanted, command=command, actor=actor, now=now, message=message)
