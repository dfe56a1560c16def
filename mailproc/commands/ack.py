"""ack: the on-call engineer has seen the case and is handling it (seed 002: within one hour).

It sets `page_ack_at`: the replan after the command cancels the wake-up page and
the page of the next person of the rotation (mailproc.jobs.oncall)."""

from __future__ import annotations

from mailproc import cases
from mailproc.commands._common import Change, no_value

name = "ack"
syntax = "ack"
help = "acknowledge the case (on-call: seen and handling it)"


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    cases.touch(case, now, page_ack_at=now)
    cases.record(case, "acknowledged", now=now, actor=actor, rule=f"command:{name}", message=message.row,
                 detail=f"acknowledged at tier {case.tier}")
    return Change(None, None, None, "acknowledged")
