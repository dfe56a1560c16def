"""What a case's state makes due, and keeping the due table in step with it.

Each module of `mailproc.jobs` owns some kinds of due work: `plan(ctx, case)`
says which items the case's state calls for (a pure function of the case and
the rules, never of the clock, so the plan computed when a change is made and
the one recomputed when the item falls due agree), and `RUN` maps each kind
to the function that does it. A module may also have `refresh(ctx, case,
now)`, which brings columns derived from the state up to date before
planning (the SLA clock's pause and due times).

`replan` is called, in the same transaction, by everything that changes a
case: a new mail, a follow-up, agents' commands, a timer that ran. The sweep
(`mailproc.sweep`) recomputes the plan of an item's case before doing the
item, so a stale item (the case moved on) does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import ModuleType
from typing import Callable

from mailproc import due
from mailproc.context import Context
from mailproc.jobs import holds, lifecycle, oncall, sla, statuses, still_looking, survey
from mailproc.models import Case

log = logging.getLogger(__name__)

MODULES: tuple[ModuleType, ...] = (statuses, still_looking, holds, sla, survey, oncall, lifecycle)

Runner = Callable[[Context, Case, datetime], None]
RUNNERS: dict[str, Runner] = {kind: run for module in MODULES for kind, run in module.RUN.items()}


def plan(ctx: Context, case: Case) -> list[due.Planned]:
    """Every item the case's state calls for now."""
    return [p for module in MODULES for p in module.plan(ctx, case)]


def replan(ctx: Context, case: Case, now: datetime) -> None:
    """Bring the case's derived columns and its due items in line with its state."""
    for module in MODULES:
        refresh = getattr(module, "refresh", None)
        if refresh is not None:
            refresh(ctx, case, now)
    due.sync(case.id, plan(ctx, case), now)


BACKFILL_KEY = "timers:plan-cases-opened-before-due-work"
BACKFILL_BATCH = 500


def backfill(ctx: Context, now: datetime) -> int:
    """Plan, once per database, the due work of cases opened before due work existed (a
    database upgraded from schema 4): their reminders, SLA clocks and pages start then,
    instead of waiting for the next change of each case. Recorded like a slot, in the
    same transaction, so it happens once even with several daemons; returns the number
    of cases planned."""
    from mailproc import db, slots

    with db.transaction():
        if not slots.claim(BACKFILL_KEY, now, now):
            return 0
        count, last = 0, 0
        while True:
            batch = list(Case.select().where((Case.id > last) & (Case.status != "closed"))
                         .order_by(Case.id).limit(BACKFILL_BATCH))
            for case in batch:
                oncall.adopt(case, now)
                replan(ctx, case, now)
            count += len(batch)
            if len(batch) < BACKFILL_BATCH:
                if count:
                    log.info("planned the due work of %d case(s) opened before this version", count)
                return count
            last = batch[-1].id
