"""The sweep: do the due work whose time has come.

One query takes a batch of due items (`due.take`, the partial index of
pending rows); they run in the batch's transaction and are marked done in
it, with whatever they changed and the mail they queued, so an item's work
commits exactly once. Before doing an item the sweep recomputes
its case's plan (`timers.plan`): an item the case no longer calls for is
stale and ends without doing anything; one the case now plans later is
moved. When an item raises, the batch is rolled back and done again with a
savepoint per item: the failing one's work alone is taken back, it is logged
with its id and tried again later with a growing pause (`due.fail`); it never
blocks the others. A stop request is honoured between batches: what a batch did is
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

    def add(self, other: "Swept") -> None:
        self.done.update(other.done)
        self.stale += other.stale
        self.moved += other.moved
        self.failed.extend(other.failed)


def sweep(ctx: Context, now: datetime, stop=lambda: False, limit: int | None = None) -> Swept:
    """Do every item due at `now` (at most `limit`)."""
    result = Swept()
    taken = 0
    while not stop() and (limit is None or taken < limit):
        batch = BATCH if limit is None else min(BATCH, limit - taken)
        try:
            done = _batch(ctx, now, batch)
        except db.DATABASE_DOWN:
            raise
        except Exception:  # an item failed: the batch is done again, each item in a savepoint
            done = _batch(ctx, now, batch, careful=True)
        result.add(done)
        for line in done.lines:
            log.info("%s", line)
        taken += done.items
        if not done.items:  # not "fewer than a batch": what was done may have made more due now
            break
    return result


@dataclass
class _Batch(Swept):
    items: int = 0
    finished: list[int] = field(default_factory=list)  # ids of the items done
    lines: list[str] = field(default_factory=list)  # logged once the batch is committed


def _batch(ctx: Context, now: datetime, size: int, careful: bool = False) -> _Batch:
    """One batch in one transaction. Most batches go straight through; a savepoint per
    item (two more statements each) is paid only when one raised (`careful`): then the
    failing item's work alone is taken back, and it is kept and retried later."""
    result = _Batch()
    with db.transaction():
        # One writer of cases at a time, as intake's messages are (PostgreSQL's advisory
        # lock; SQLite's write lock does it already): an item reads its case, and a mail
        # committed in between must not be overwritten from a stale copy.
        db.serialize_messages()
        items = due.take(now, size)
        result.items = len(items)
        for item in items:
            if careful:
                _one(ctx, item, now, result)
            else:
                _count(item, _run(ctx, item, now, result), result)
        due.finish_many(result.finished, now)
    return result


def _one(ctx: Context, item: Due, now: datetime, result: _Batch) -> None:
    try:
        with db.transaction():  # a savepoint: a failing item takes back only its own work
            outcome = _run(ctx, item, now, result)
    except db.DATABASE_DOWN:
        raise
    except Exception as exc:
        again = due.fail(item, now, f"{type(exc).__name__}: {exc}")
        log.exception("due item %d (%s, case %s) failed; trying again at %s", item.id, item.kind,
                      item.__data__.get("case"), again.isoformat(timespec="seconds"))
        result.failed.append(f"due item {item.id} ({item.key}): {type(exc).__name__}: {exc}")
        return
    _count(item, outcome, result)


def _count(item: Due, outcome: str, result: Swept) -> None:
    if outcome == due.DONE:
        result.done[item.kind] += 1
    elif outcome == due.STALE:
        result.stale += 1
    else:
        result.moved += 1


def _run(ctx: Context, item: Due, now: datetime, result: _Batch) -> str:
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
    result.finished.append(item.id)  # marked done with the batch, in its transaction
    result.lines.append(f"case {case.id}: {item.kind} done (due {aware(item.due_at).isoformat(timespec='minutes')})")
    return due.DONE
