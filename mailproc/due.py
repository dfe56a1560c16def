"""The table of due work: what falls due when, written with the change that causes it.

A case's due items are a function of its state (`timers.plan`): entering
Pending Input plans a reminder, a customer's reply un-plans it. `sync`
makes the table agree with a case's plan in the caller's transaction —
new items inserted, moved ones moved, ones no longer planned cancelled —
so the table never says more than the case does. Each item has a unique
`key` naming the state it came from (`remind:12:2026-11-29T10:00:00`):
planning the same work twice is one row, and a row that is done stays done,
so a clock set backwards, or a plan recomputed after a restart, never
repeats it. A cancelled row whose key is planned again (an SLA clock that
resumes after a pause) is revived, not duplicated.

`take` is the sweep's one query: the pending rows whose time has come, read
through the partial index `due_pending` (`due_at` of rows not done), so it
costs what is due, not what is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee as pw

from mailproc import db
from mailproc.models import Due, utc

CANCELLED, STALE, DONE = "cancelled", "stale", "done"
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=6))


@dataclass(frozen=True)
class Planned:
    """One piece of work a case's state calls for."""
    kind: str
    key: str
    due_at: datetime  # aware UTC


def key(kind: str, case_id: int, *basis: object) -> str:
    """The unique key of an item: its kind, its case and the state it came from."""
    parts = [kind, str(case_id)]
    for b in basis:
        parts.append(utc(b).isoformat(timespec="seconds") if isinstance(b, datetime) else str(b))
    return ":".join(parts)[:200]


_ROWS_OF_CASE = 'SELECT "id", "key", "due_at", "done_at", "outcome", "attempts" FROM "due" WHERE "case_id" = ?'
_UPSERT = ('INSERT INTO "due" ("case_id", "kind", "key", "due_at", "attempts", "created_at") VALUES (?, ?, ?, ?, 0, ?)'
           ' ON CONFLICT ("key") DO UPDATE SET "due_at" = excluded."due_at", "done_at" = NULL, "outcome" = NULL'
           ' WHERE "due"."done_at" IS NULL OR "due"."outcome" IN (\'cancelled\', \'stale\')')


def sync(case_id: int, planned: Iterable[Planned], now: datetime) -> None:
    """Make the case's pending items what `planned` says, in the caller's transaction.

    One read of the case's rows (done ones too: a planned key whose work is done is
    left alone without a statement), then a statement only for what changes."""
    wanted = {p.key: p for p in planned}
    rows = {k: (row_id, at, done, outcome, tries)
            for row_id, k, at, done, outcome, tries in db.query_all(_ROWS_OF_CASE, [case_id])}
    gone = [row_id for k, (row_id, _, done, _, _) in rows.items() if done is None and k not in wanted]
    if gone:  # a statement written here, not built by peewee: sync runs after every change of a case
        marks = ", ".join("?" * len(gone))
        db.execute(f'UPDATE "due" SET "done_at" = ?, "outcome" = ? WHERE "id" IN ({marks}) AND "done_at" IS NULL',
                   [Due.done_at.db_value(utc(now)), CANCELLED, *gone])
    for p in wanted.values():
        known = rows.get(p.key)
        if known is not None:
            _, at, done, outcome, tries = known
            stored, planned_at = _stored(at), utc(p.due_at)
            if done is None and (stored == planned_at or (tries and stored is not None and stored > planned_at)):
                continue  # pending at the planned time, or waiting out the backoff of a failure
            if done is not None and outcome not in (CANCELLED, STALE):
                continue  # done: stays done
        db.execute(_UPSERT, [case_id, p.kind, p.key, utc(p.due_at), utc(now)])


def _stored(value: object) -> datetime | None:
    """A time as a raw query returns it: SQLite hands back text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


def take(now: datetime, limit: int) -> list[Due]:
    """The pending items due at `now`, oldest first, locked for this transaction.

    On PostgreSQL the rows are locked FOR UPDATE SKIP LOCKED: two daemons
    sweeping at once each take different items, and an item is marked done in
    the transaction that did its work, so none runs twice. SQLite's write lock
    (BEGIN IMMEDIATE, taken by the caller) serializes the sweepers instead."""
    sql = ('SELECT * FROM "due" WHERE "done_at" IS NULL AND "due_at" <= ? ORDER BY "due_at", "id" LIMIT ?')
    if not isinstance(db.proxy.obj, pw.SqliteDatabase):
        sql += " FOR UPDATE SKIP LOCKED"
    return list(db.raw(Due, sql, [utc(now), limit]))


def finish(item: Due, now: datetime, outcome: str = DONE) -> None:
    db.update(Due, item.id, done_at=utc(now), outcome=outcome, last_error=None)


def finish_many(ids: list[int], now: datetime) -> None:
    """Mark the items done, in one statement (a sweep's batch)."""
    if ids:
        marks = ", ".join("?" * len(ids))
        db.execute(f'UPDATE "due" SET "done_at" = ?, "outcome" = ?, "last_error" = NULL WHERE "id" IN ({marks})',
                   [Due.done_at.db_value(utc(now)), DONE, *ids])


def fail(item: Due, now: datetime, error: str) -> datetime:
    """The item raised: it stays pending, due again after a growing pause; returns when."""
    again = now + BACKOFF[min(item.attempts, len(BACKOFF) - 1)]
    db.update(Due, item.id, attempts=item.attempts + 1, due_at=utc(again), last_error=error[:2000])
    return again


def move(item: Due, due_at: datetime) -> None:
    """A pending item whose case now plans it later (the plan moved after it was taken)."""
    db.update(Due, item.id, due_at=utc(due_at))
