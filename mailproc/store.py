"""Store raw: the step every message takes before anything can go wrong.

`fetch` has its own batched variant for IMAP (it also moves the checkpoint in
the same transaction); this is the path for `ingest` and `deliver`. The bytes
go to the content-addressed raw store first, then a `pending` Message row is
committed; only then does the pipeline look at the message.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import db
from mailproc.context import Context
from mailproc.models import Message, utc


def store_message(ctx: Context, raw: bytes, *, source: str, mailbox: str | None = None,
                  arrived_at: datetime | None = None) -> Message:
    """Store `raw` and commit a pending row for it. A message cannot arrive after it
    is stored, so an `arrived_at` later than now (a file written after the instant
    `--now` sets) is taken as now."""
    now = ctx.clock.now()
    digest = ctx.raw.put(raw)
    arrived = now if arrived_at is None or arrived_at > now else arrived_at
    with db.transaction():
        return Message.create(raw_sha256=digest, size=len(raw), source=source, mailbox=mailbox,
                              arrived_at=utc(arrived), stored_at=utc(now), state="pending")
