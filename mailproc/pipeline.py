"""Walk stored messages through the stages, a batch per transaction.

The order is data: `PURE_STAGES`, then `STAGES`. Everything a message changes — its case, the
case's events, the outbox rows for the mails it causes, the message's own
disposition — commits together or not at all. A fetched batch commits in one
transaction (one wait for SQLite's write lock, one commit), each message
inside its own savepoint: a message whose processing raises is rolled back
to its savepoint and kept as `failed` with the error (a human looks at it,
`messages retry ID` runs it again); the batch goes on.

A message that kills the process (a parser bug eating all memory, say) would
otherwise be taken again on every round, forever. Each process names the
message in hand outside the database (`inflight`); the message a dead process
had in hand gets an attempt counted, is tried alone next time, after the
others, and after `MAX_ATTEMPTS` attempts that never finished it is parked as
`failed` with the reason, as Mailman's switchboard parks a message it keeps
crashing on. The other messages of a batch that died are not blamed. Trying a
suspect last keeps a deadly message from holding up the mail behind it for
rounds, and keeps a run that is killed at much the same moment every time
(a restart loop) from blaming the same innocent message again and again.
"""

from __future__ import annotations

import logging
import traceback

from mailproc import db, inflight
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


MAX_ATTEMPTS = 3  # attempts that never finished before a message is parked as failed
# A batch is held in memory whole (raw bytes and parse) and holds the write lock
# while it commits: bounded in count and in bytes.
BATCH_MESSAGES = 25
BATCH_BYTES = 50 * 1024 * 1024

_COUNT_ATTEMPT_SQL = "UPDATE message SET attempts = attempts + 1 WHERE state = 'pending' AND id = ?"


def process(ctx: Context, message: Message) -> str:
    """Process one pending message; return its disposition ("skipped" when another
    process had it first). Never raises for a bad message; a database that is
    unreachable raises (the message stays pending for the next round)."""
    return process_all(ctx, [message]).popitem()[0]


def process_all(ctx: Context, messages: list[Message], stop=lambda: False) -> dict[str, int]:
    """Process messages in order; return counts by disposition.

    Messages go in batches; a message that a process died with goes alone, after
    the others (it may be what killed it), or is parked once it has had MAX_ATTEMPTS."""
    counts: dict[str, int] = {}
    blamed = _blame_the_dead(ctx)

    def add(disposition: str) -> None:
        counts[disposition] = counts.get(disposition, 0) + 1

    def flush(batch: list[Message]) -> None:
        for disposition in _process_batch(ctx, batch):
            add(disposition)
        batch.clear()

    batch: list[Message] = []
    suspects: list[tuple[Message, int]] = []
    size = 0
    for message in messages:
        if stop():
            break
        attempts = max(message.attempts, blamed.get(message.id, 0))
        if attempts:
            suspects.append((message, attempts))
            continue
        if batch and (len(batch) >= BATCH_MESSAGES or size + message.size > BATCH_BYTES):
            flush(batch)
            size = 0
        batch.append(message)
        size += message.size
    flush(batch)
    for message, attempts in suspects:
        if stop():
            break
        if attempts >= MAX_ATTEMPTS:
            add(_park(ctx, message, attempts))
        else:
            flush([message])
    return counts


def process_pending(ctx: Context, stop=lambda: False) -> dict[str, int]:
    """Process every pending message (new ones, and any left by a crash), oldest first."""
    pending = list(Message.select().where(Message.state == "pending")
                   .order_by(Message.arrived_at, Message.id))
    return process_all(ctx, pending, stop)


def _process_batch(ctx: Context, messages: list[Message]) -> list[str]:
    """Prepare and screen outside the transaction, then commit the batch in one."""
    if not messages:
        return []
    in_hand = inflight.of(ctx.config.storage)
    dispositions: list[str] = []
    works: list[Work] = []
    for message in messages:
        in_hand.mark(message.id)
        try:
            works.append(_pure(ctx, message))
        except Exception as exc:  # one bad message must not stop the batch
            dispositions.append(_failed(ctx, message, exc))
    with db.transaction():
        db.serialize_messages()
        for work in works:
            in_hand.mark(work.message.id)
            dispositions.append(_stages(ctx, work))
    in_hand.mark(0)
    for disposition in dispositions:
        if disposition not in ("skipped", "failed"):
            crashpoint("after_commit")
    return dispositions


def _blame_the_dead(ctx: Context) -> dict[int, int]:
    """Count an attempt for each message a dead process had in hand; message id ->
    its attempts now. Committed at once: the next death must not undo it."""
    blamed: dict[int, int] = {}
    for message_id in inflight.left_by_the_dead(ctx.config.storage):
        with db.transaction():
            db.execute(_COUNT_ATTEMPT_SQL, [message_id])
            row = db.query_one("SELECT attempts FROM message WHERE id = ?", [message_id])
        if row:
            blamed[message_id] = row[0]
            log.warning("message %s was in hand when a process died (attempt %d of %d)",
                        message_id, row[0], MAX_ATTEMPTS)
    return blamed


def _pure(ctx: Context, message: Message) -> Work:
    work = _prepare(ctx, message)
    for stage in PURE_STAGES:
        stage.run(work)
    return work


def _stages(ctx: Context, work: Work) -> str:
    """One message inside the batch's transaction, in a savepoint of its own."""
    message = work.message
    try:
        with db.transaction():  # nested: a savepoint
            if db.execute(_TAKE_SQL, [message.id]).rowcount != 1:
                log.info("message %s was already taken by another process", message.id)
                return "skipped"
            crashpoint("processing", key=work.mail.subject)
            for stage in STAGES:
                stage.run(work)
    except db.DATABASE_DOWN:
        raise
    except Exception as exc:  # rolled back to the savepoint; the batch goes on
        return _failed(ctx, message, exc)
    log.debug("message %s: %s (%s)", message.id, work.disposition, ", ".join(work.trace))
    return work.disposition or "failed"


def retry(ctx: Context, message: Message) -> str:
    """Run a failed (or still pending) message through the pipeline again."""
    if message.state == "done":
        raise ValueError(f"message {message.id} was already handled ({message.disposition}); nothing to retry")
    Message.update(state="pending", error=None, attempts=0).where(Message.id == message.id,
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
    elif not mail.from_addr:
        # Bounces and other automatic mail often have no sender (From: <>): screening
        # says what they are, so a bounce still marks its address. Only mail that is
        # nothing automatic is rejected for having no one to answer.
        screen.run(work)
        if work.screen is None:
            work.screen = "rejected"
            work.note("pipeline", "unparseable" if mail.parser == "headers-only" else "no-sender")
    return work


def _failed(ctx: Context, message: Message, exc: Exception) -> str:
    log.error("message %s failed: %s", message.id, exc, exc_info=log.isEnabledFor(logging.DEBUG))
    error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    _mark_failed(ctx, message, error)
    return "failed"


def _park(ctx: Context, message: Message, attempts: int) -> str:
    error = (f"parked after {attempts} attempts that never finished (the process died while "
             f"handling it); `mailproc messages retry {message.id}` tries again")
    log.error("message %s: %s", message.id, error)
    _mark_failed(ctx, message, error)
    return "failed"


def _mark_failed(ctx: Context, message: Message, error: str) -> None:
    with db.transaction():
        Message.update(state="failed", disposition="failed", error=error[:4000],
                       processed_at=utc(ctx.clock.now())
                       ).where(Message.id == message.id, Message.state.in_(("pending", "processing"))).execute()
