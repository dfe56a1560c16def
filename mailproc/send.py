"""Draining the outbox: the only code that speaks SMTP.

`drain()` takes due `queued` rows in id order and, for each, first claims it
with one conditional UPDATE (queued -> sending); only the sender whose UPDATE
changed the row sends it, so two senders (two daemons on one PostgreSQL, or a
daemon and `mailproc send`) never send the same mail. One SMTP connection
serves the whole drain.

Outcomes per row:
- 250: `sent`, event "mail_sent" on the case.
- 4xx, or the server cannot be reached: back to `queued` with exponential
  backoff (1 min, 2, 4 ... capped at 1 h); once `retry_limit` has passed
  since the row was created it becomes `failed`. When the connection is
  lost, the rest of the due rows are deferred in the same way without
  hammering a server that is down.
- 5xx: `failed`, event "mail_failed" with the server's answer, error logged.
- Some recipients refused, others accepted: `sent`, the refusals kept in
  `last_error`.

The moment the server accepts a mail, a line goes to the send journal
(`sentlog`), before the database is touched; the rows of a page are then
recorded as `sent` together, in one transaction. A crash between claiming and
recording leaves a row in `sending`. Such a row is recorded as sent if the
journal has it; otherwise it goes back to `queued` as soon as a drain sees
that the process that claimed it (on this host) is gone, or else after 10
minutes (far longer than any SMTP timeout). What is left is SMTP's own limit:
a connection lost after the final dot, or a kill in the microseconds between
the server's answer and the journal line. Then the recipient gets the mail
twice, with the same Message-ID so a mail client can drop the copy; giving up
on it instead would silently lose mail, which is worse.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Collection, Iterator

import aiosmtplib

from mailproc import cases
from mailproc.context import Context
from mailproc.crashpoints import crashpoint
from mailproc.db import make_durable, transaction, update
from mailproc.lease import dead_here, new_holder
from mailproc.models import Outbox, aware, utc
from mailproc.sentlog import SentLog

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=10)
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=1)


@dataclass
class DrainResult:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    # the server could not be used: unreachable, login refused, connection lost
    down: str | None = field(default=None, compare=False)


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed ones (1 -> 1 min, 2 -> 2 min, ... <= 1 h)."""
    return min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


@functools.cache
def _warn_unconfigured(config_path: str) -> None:
    # cached: said once per configuration, not on every pass of the daemon loop
    log.warning("%s has no [smtp] section: outgoing mail stays queued", config_path)


def drain(ctx: Context, *, limit: int | None = None, stop: Callable[[], bool] = lambda: False) -> DrainResult:
    """Send what is due; return how many rows were sent, deferred and failed."""
    if ctx.config.smtp is None:
        _warn_unconfigured(str(ctx.config.path))
        return DrainResult()
    requeue_stale(ctx.clock.now(), SentLog(ctx.config.storage))
    if not Outbox.select().where(Outbox.state == "queued", Outbox.next_attempt_at <= utc(ctx.clock.now())).exists():
        return DrainResult()  # the idle daemon's every-second check: no event loop, no fsync
    make_durable()  # never tell a customer about a case a power loss could still undo
    return asyncio.run(_drain(ctx, limit, stop))


def requeue_stale(now: datetime, journal: SentLog | None = None) -> int:
    """Rows left in 'sending' by a crash: recorded as sent when the journal says the
    server accepted them, else back to 'queued' (keeping their Message-ID) — at once
    when the claiming process was on this host and is gone, else after STALE_AFTER.
    Returns the number queued again."""
    cutoff = utc(now - STALE_AFTER)
    count = 0
    rows = list(Outbox.select(Outbox.id, Outbox.case, Outbox.kind, Outbox.message_id, Outbox.claimed_at,
                              Outbox.claimed_by).where(Outbox.state == "sending"))
    if journal is not None:
        journal.prune(lambda: [i for (i,) in Outbox.select(Outbox.id).where(Outbox.state == "sending").tuples()])
    if not rows:
        return 0
    accepted = journal.accepted() if journal is not None else {}
    for row in rows:
        if not (row.claimed_at < cutoff or dead_here(row.claimed_by)):
            continue
        if accepted.get(row.id) == row.message_id:
            with transaction():
                if (Outbox.update(state="sent", sent_at=utc(now), claimed_at=None)
                        .where(Outbox.id == row.id, Outbox.state == "sending",
                               Outbox.claimed_by == row.claimed_by).execute()) and row.case_id is not None:
                    cases.record(row.case_id, "mail_sent", now=now, new=row.kind,
                                 detail=f"{row.message_id} (accepted by the server before an interruption; "
                                        "recorded from the send journal)")
            log.info("outbox %d was accepted by the server before an interruption; recorded as sent", row.id)
            continue
        count += (Outbox.update(state="queued", claimed_at=None, claimed_by=None, next_attempt_at=utc(now))
                  .where(Outbox.id == row.id, Outbox.state == "sending", Outbox.claimed_by == row.claimed_by)
                  .execute())
        log.warning("outbox %d was left in 'sending' (interrupted send); queued again, it may arrive twice",
                    row.id)
    return count


PAGE = 50  # rows read per query; bounds memory when thousands are due


def due_rows(now: datetime, limit: int | None) -> Iterator[Outbox]:
    """The due rows, oldest first, read a page at a time. Reading a row does not
    make it ours: `claim` decides that."""
    after, left = 0, limit
    while left is None or left > 0:
        page = PAGE if left is None else min(PAGE, left)
        rows = list(Outbox.select()
                    .where(Outbox.state == "queued", Outbox.next_attempt_at <= utc(now), Outbox.id > after)
                    .order_by(Outbox.id).limit(page))
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].id
        left = None if left is None else left - len(rows)


# Rows claimed per statement, sent, then recorded as sent together. Each claim
# and each record waits for SQLite's write lock, which intake holds while it
# commits a batch: few, large claims let the sender keep up with intake.
CLAIM = 100


def claim(rows: list[Outbox], now: datetime, token: str) -> list[Outbox]:
    """queued -> sending for those of `rows` still queued, in one atomic UPDATE;
    return the rows that are ours to send. Fewer, larger claims matter on
    SQLite, where every claim waits for the write lock intake holds."""
    ids = [row.id for row in rows]
    (Outbox.update(state="sending", claimed_at=utc(now), claimed_by=token)
     .where(Outbox.id.in_(ids), Outbox.state == "queued", Outbox.next_attempt_at <= utc(now)).execute())
    mine = {row_id for (row_id,) in Outbox.select(Outbox.id).where(
        Outbox.id.in_(ids), Outbox.state == "sending", Outbox.claimed_by == token).tuples()}
    return [row for row in rows if row.id in mine]


def release(token: str, keep: Collection[int] = ()) -> int:
    """Rows this drain claimed but did not get to (it was stopped) go back to the queue.
    `keep`: rows whose fate is known or unknown but not "untouched" (handed to the
    server, outcome not yet recorded) stay `sending`; `requeue_stale` deals with them,
    as after a crash."""
    query = Outbox.update(state="queued", claimed_at=None, claimed_by=None).where(
        Outbox.state == "sending", Outbox.claimed_by == token)
    if keep:
        query = query.where(Outbox.id.not_in(list(keep)))
    return query.execute()


def _pages(ctx: Context, limit: int | None, token: str) -> Iterator[list[Outbox]]:
    """The due rows, claimed CLAIM at a time."""
    page: list[Outbox] = []
    for row in due_rows(ctx.clock.now(), limit):
        page.append(row)
        if len(page) == CLAIM:
            yield claim(page, ctx.clock.now(), token)
            page = []
    if page:
        yield claim(page, ctx.clock.now(), token)


@dataclass
class _Accepted:
    row: Outbox
    refused: dict
    reply: str


async def _drain(ctx: Context, limit: int | None, stop: Callable[[], bool]) -> DrainResult:
    result = DrainResult()
    client: aiosmtplib.SMTP | None = None
    down: str | None = None  # why the server cannot be used for the rest of this drain
    token = new_holder()
    journal = SentLog(ctx.config.storage)
    accepted: list[_Accepted] = []  # in the journal, not yet recorded in the database
    in_flight: int | None = None  # handed to the server, outcome not yet known
    try:
        for page in _pages(ctx, limit, token):
            for row in page:
                if stop():
                    break
                in_flight = row.id
                if down is None and client is None:
                    client, down = await _connect(ctx)
                if down is not None:
                    _temporary(ctx, row, down, result)
                    in_flight = None
                    continue
                try:
                    refused, reply = await client.sendmail(row.mail_from, row.recipients, bytes(row.raw))
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    answers = [f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients]
                    if all(r.code >= 500 for r in exc.recipients):
                        _permanent(ctx, row, "all recipients refused: " + "; ".join(answers), result)
                    else:
                        _temporary(ctx, row, "recipients refused: " + "; ".join(answers), result)
                except aiosmtplib.SMTPResponseException as exc:
                    answer = f"{exc.code} {exc.message}"
                    if exc.code >= 500:
                        _permanent(ctx, row, answer, result)
                    else:
                        _temporary(ctx, row, answer, result)
                except ValueError as exc:  # an address that cannot be put in an SMTP envelope
                    _permanent(ctx, row, f"invalid address: {exc}", result)
                except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                    down = f"connection lost: {_describe(exc)}"
                    _temporary(ctx, row, down, result)
                else:
                    journal.record(row.id, row.message_id)
                    accepted.append(_Accepted(row, refused, reply))
                    crashpoint("after_send")
                in_flight = None
            _record_sent(ctx, accepted, result)
            if stop():
                break
    finally:
        keep = {a.row.id for a in accepted} | ({in_flight} if in_flight is not None else set())
        try:
            _record_sent(ctx, accepted, result)
        finally:
            release(token, keep=keep)
            journal.close()
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                    client.close()
    result.down = down
    return result


async def _connect(ctx: Context) -> tuple[aiosmtplib.SMTP | None, str | None]:
    """(client, None) when connected and logged in, else (None, why)."""
    smtp = ctx.config.smtp
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, use_tls=smtp.security == "tls",
                             start_tls=smtp.security == "starttls", timeout=smtp.timeout,
                             validate_certs=True)
    try:
        await client.connect()
        if smtp.username:
            await client.login(smtp.username, smtp.password or "")
    except aiosmtplib.SMTPAuthenticationError as exc:
        client.close()
        log.error("SMTP login to %s:%d as %s refused: %s %s (check [smtp] username/password)",
                  smtp.host, smtp.port, smtp.username, exc.code, exc.message)
        return None, f"login refused: {exc.code} {exc.message}"
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
        client.close()
        log.warning("cannot reach SMTP server %s:%d: %s", smtp.host, smtp.port, _describe(exc))
        return None, f"cannot reach {smtp.host}:{smtp.port}: {_describe(exc)}"
    return client, None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _record_sent(ctx: Context, accepted: list[_Accepted], result: DrainResult) -> None:
    """Record a page of accepted mail as sent, in one transaction (one wait for the
    write lock, not one per mail). Empties `accepted` once committed."""
    if not accepted:
        return
    now = utc(ctx.clock.now())
    with transaction():
        for item in accepted:
            row = item.row
            partial = "; ".join(f"{addr}: {r.code} {r.message}" for addr, r in item.refused.items()) or None
            update(Outbox, row.id, state="sent", sent_at=now, claimed_at=None,
                   last_error=f"some recipients refused: {partial}" if partial else None)
            if row.case_id is not None:
                detail = row.message_id + (f" (refused: {partial})" if partial else "")
                cases.record(row.case_id, "mail_sent", now=now, new=row.kind, detail=detail)
            if partial:
                log.warning("outbox %d sent, but some recipients were refused: %s", row.id, partial)
            log.info("outbox %d sent (%s, %s): %s", row.id, row.kind, row.message_id, item.reply)
    result.sent += len(accepted)
    accepted.clear()


def _temporary(ctx: Context, row: Outbox, error: str, result: DrainResult) -> None:
    """Try again later, or give up once retry_limit has passed since the row was created."""
    now = ctx.clock.now()
    attempts = row.attempts + 1
    if now - aware(row.created_at) >= ctx.config.retry_limit:
        _permanent(ctx, row, f"gave up after {attempts} attempts over {ctx.config.retry_limit}: {error}",
                   result, attempts=attempts)
        return
    Outbox.update(state="queued", claimed_at=None, attempts=attempts, last_error=error,
                  next_attempt_at=utc(now + backoff(attempts))).where(Outbox.id == row.id).execute()
    log.info("outbox %d deferred (attempt %d, next in %s): %s", row.id, attempts, backoff(attempts), error)
    result.deferred += 1


def _permanent(ctx: Context, row: Outbox, error: str, result: DrainResult, attempts: int | None = None) -> None:
    now = ctx.clock.now()
    with transaction():
        Outbox.update(state="failed", claimed_at=None, last_error=error,
                      attempts=attempts if attempts is not None else row.attempts + 1) \
            .where(Outbox.id == row.id).execute()
        if row.case_id is not None:
            cases.record(row.case_id, "mail_failed", now=now, new=row.kind, detail=error)
    log.error("outbox %d (%s to %s) failed: %s", row.id, row.kind, ", ".join(row.recipients), error)
    result.failed += 1
