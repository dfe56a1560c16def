"""escalate[=TIER]: tier's other name; bare, one tier up (triage → T1 → … → T5 → oncall)."""

from __future__ import annotations

from mailproc.commands._common import CommandError
from mailproc.commands.tier import set_tier
from mailproc.models import TIERS

name = "escalate"
syntax = "escalate[=T1..T5|oncall]"
help = "move the case to a tier; without a value, one tier up"


def run(ctx, case, value, *, actor, now, message):
    if value is None or not value.strip():
        at = TIERS.index(case.tier) if case.tier in TIERS else 0
        if at + 1 >= len(TIERS):
            raise CommandError(f"the case is already at the top tier ({case.tier})")
        value = TIERS[at + 1]
    return set_tier(case, value.strip(), command=name, actor=actor, now=now, message=message)
