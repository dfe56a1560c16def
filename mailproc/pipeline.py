"""Walk one stored message through the stages, in one transaction.

The order is data: `PURE_STAGES`, then `STAGES`. Everything a message changes — its case, the
case's events, the outbox rows for the mails it causes, the message's own
disposition — commits together or not at all. A message whose processing
raises is rolled back, then kept as `failed` with the error (a human looks at
it, `messages retry ID` runs it again); the batch goes on.
"""

from __future__ import annotations

import logging
import traceback

from mailproc import db
from mailproc.context import Context
from mailproc.crashpoints import crashpoint
from mailproc.models import Message, utc
from mailproc.parse import parse, parse_headers
from mailproc.stages import Work, act, classify, screen, thread

log = logging.getLogger(__name__)

# Stages that need no database run before the transaction opens, so the write
# lock (SQLite has one for the whole file) is held only while state is read
# and written; the sender process needs that lock too.
PURE_STAGES = (screen,)
STAGES = (thread, classify, act)

# Read at most this much of an oversized message to record who sent it.
HEADER_PEEK = 256 * 1024


# The first statement of a message's transaction: the row must still be pending.
# Two processes (the daemon and `ingest`, two daemons) may pick the same row;
# the second finds it taken and leaves it, instead of opening a second case.
_TAKE_SQL = "UPDATE message SET state = 'processing' WHERE id = ? AND state = 'pending'"


def process(ctx: Context, message: Message) -> str:
    """Process one pending message; return its disposition ("skipped" when another
    process had it first). Never raises for a bad message; a database that is
    unreachable raises (the message stays pending for the next round)."""
    try:
        work = _prepare(ctx, message)
        for stage in PURE_STAGES:
            stage.run(work)
        with db.transaction():
            db.serialize_messages()
            if db.execute(_TAKE_SQL, [message.id]).rowcount != 1:
                log.info("message %s was already taken by another process", message.id)
                return "skipped"
            for stage in STAGES:
                stage.run(work)
    except db.DATABASE_DOWN:
        raise
    except Exception as exc:  # one bad message must not stop the batch
        log.error("message %s failed: %s", message.id, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        _mark_failed(ctx, message, exc)
        return "failed"
    crashpoint("after_commit")
    log.debug("message %s: %s (%s)", message.id, work.disposition, ", ".join(work.trace))
    return work.disposition or "failed"


def process_all(ctx: Context, messages: list[Message], stop=lambda: False) -> dict[str, int]:
    """Process messages in order; return counts by disposition."""
    counts: dict[str, int] = {}
    for message in messages:
        if stop():
            break
        disposition = process(ctx, message)
        counts[disposition] = counts.get(disposition, 0) + 1
    return counts


def process_pending(ctx: Context, stop=lambda: False) -> dict[str, int]:
    """Process every pending message (new ones, and any left by a crash), oldest first."""
    pending = list(Message.select().where(Message.state == "pending")
                   .order_by(Message.arrived_at, Message.id))
    return process_all(ctx, pending, stop)


def retry(ctx: Context, message: Message) -> str:
    """Run a failed (or still pending) message through the pipeline again."""
    if message.state == "done":
        raise ValueError(f"message {message.id} was already handled ({message.disposition}); nothing to retry")
    Message.update(state="pending", error=None).where(Message.id == message.id,
                                                      Message.state == "failed").execute()
    return process(ctx, Message.get_by_id(message.id))


def _prepare(ctx: Context, message: Message) -> Work:
    raw = ctx.raw.get(message.raw_sha256)
    oversized = message.size > ctx.config.max_message_size
    mail = (parse_headers(raw[:HEADER_PEEK], [f"larger than max_message_size ({message.size} bytes)"])
            if oversized else parse(raw))
    box = next((b for b in ctx.config.mailboxes if b.name == message.mailbox), None)
    work = Work(ctx=ctx, message=message, mail=mail, raw=raw, now=ctx.clock.now(), mailbox=box)
    if oversized:
        work.screen = "rejected"
        work.note("pipeline", f"too-large:{message.size}>{ctx.config.max_message_size}")
    elif mail.parser == "headers-only" and not mail.from_addr:
        work.screen = "rejected"
        work.note("pipeline", "unparseable")
    elif not mail.from_addr:
        work.screen = "rejected"
        work.note("pipeline", "no-sender")
    return work


def _mark_failed(ctx: Context, message: Message, exc: Exception) -> None:
    error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    with db.transaction():
        Message.update(state="failed", disposition="failed", error=error[:4000],
                       attempts=Message.attempts + 1, processed_at=utc(ctx.clock.now())
                       ).where(Message.id == message.id).execute()
