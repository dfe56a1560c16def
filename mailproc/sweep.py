"""The sweep: do the due work whose time has come.

One query takes a batch of due items (`due.take`, the partial index of
pending rows); each runs in a savepoint of the batch's transaction and is
marked done in it, with whatever it changed and the mail it queued, so an
item's work commits exactly once. Before doing an item the sweep recomputes
its case's plan (`timers.plan`): an item the case no longer calls for is
stale and ends without doing anything; one the case now plans later is
moved. An item that raises is rolled back to its savepoint, logged with its
id, and tried again later with a growing pause (`due.fail`); it never blocks
the others. A stop request is honoured between batches: what a batch did is
committed together, what it did not get to stays due.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from mailproc import db, due, timers
from mailproc.context import Context
from mailproc.models import Case, Due, aware

log = logging.getLogger(__name__)

BATCH = 50
# The case of an item, by a statement written once: peewee builds a SELECT of every
# column anew for each `Case.get` (about 1 ms for the cases table), the largest cost of
# an item before this. Same rows, converted the same way (`db.raw`).
_CASE_SQL = 'SELECT * FROM "cases" WHERE "id" = ?'


@dataclass
class Swept:
    done: Counter = field(default_factory=Counter)  # kind -> items done
    stale: int = 0
    moved: int = 0
    failed: list[str] = field(default_factory=list)  # one line per failure, naming the item

    @property
    def total(self) -> int:
        return sum(self.done.values())


def sweep(ctx: Context, now: datetime, stop=lambda: False, limit: int | None = None) -> Swept:
    """Do every item due at `now` (at most `limit`)."""
    result = Swept()
    taken = 0
    while not stop() and (limit is None or taken < limit):
        batch = BATCH if limit is None else min(BATCH, limit - taken)
        with db.transaction():
            items = due.take(now, batch)
            for item in items:
                _one(ctx, item, now, result)
        taken += len(items)
        if not items:  # not "fewer than a batch": what was done may have made more due now
            break
    return result


def _one(ctx: Context, item: Due, now: datetime, result: Swept) -> None:
    try:
        with db.transaction():  # a savepoint: a failing item takes back only its own work
            outcome = _run(ctx, item, now)
    except db.DATABASE_DOWN:
        raise
    except Exception as exc:
        again = due.fail(item, now, f"{type(exc).__name__}: {exc}")
        log.exception("due item %d (%s, case %s) failed; trying again at %s", item.id, item.kind,
                      item.__data__.get("case"), again.isoformat(timespec="seconds"))
        result.failed.append(f"due item {item.id} ({item.key}): {type(exc).__name__}: {exc}")
        return
    if outcome == due.DONE:
        result.done[item.kind] += 1
    elif outcome == due.STALE:
        result.stale += 1
    else:
        result.moved += 1


def _run(ctx: Context, item: Due, now: datetime) -> str:
    case_id = item.__data__.get("case")
    case = next(iter(db.raw(Case, _CASE_SQL, [case_id])), None) if case_id is not None else None
    planned = {p.key: p for p in timers.plan(ctx, case)} if case is not None else {}
    wanted = planned.get(item.key)
    if wanted is None:
        due.finish(item, now, due.STALE)
        log.debug("due item %d (%s) is stale: the case moved on", item.id, item.key)
        return due.STALE
    if wanted.due_at > now:
        due.move(item, wanted.due_at)
        return "moved"
    runner = timers.RUNNERS.get(item.kind)
    if runner is None:
        raise LookupError(f"no job does due items of kind {item.kind!r}")
    assert case is not None
    runner(ctx, case, now)
    timers.replan(ctx, case, now)
    due.finish(item, now)
    log.info("case %s: %s done (due %s)", case.id, item.kind, aware(item.due_at).isoformat(timespec="minutes"))
    return due.DONE
