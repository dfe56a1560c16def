"""IMAP intake: copy new mail from one mailbox folder into the store, batch by batch.

Messages are keyed by (mailbox, folder, UIDVALIDITY, UID) and a checkpoint
row remembers the highest UID stored, so a poll only asks for what is new
and a crash at any point loses nothing: raw bytes are fsynced before their
rows commit, rows and checkpoint commit together, and re-reading a message
is harmless (its UID row already exists; duplicates by Message-ID are caught
later by threading). Mail is read with BODY.PEEK[] so the \\Seen flags people
see in their mail clients never change. Network trouble is retried with
backoff and then reported in `PollResult.error`; it never raises.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailproc import db, lease
from mailproc.config import MailboxConfig
from mailproc.context import Context
from mailproc.crashpoints import crashpoint
from mailproc.models import ImapCheckpoint, Message, utc

log = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 4.0, 16.0)  # seconds to wait before each retry of a failed poll
MAX_BATCH_BYTES = 50 * 1024 * 1024  # a batch is held in memory whole; keep it bounded
MAX_UIDS_PER_COMMAND = 500  # keeps a UID list well under Dovecot's 64 KB command line limit
FETCH_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE", b"RFC822.SIZE"]
NETWORK_ERRORS = (OSError, socket.timeout, imaplib.IMAP4.abort, IMAPClientError)


LEASE_WAIT_STEP = 2.0  # seconds between looks at a lease another process holds


@dataclass
class PollResult:
    mailbox: str
    fetched: int  # messages stored this poll
    error: str | None  # set when the poll gave up (after retries); never raises for network trouble
    busy: str | None = None  # another process was polling this folder (its name); we did not


class _Busy(Exception):
    """Another process holds the folder's lease."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def lease_name(box: MailboxConfig) -> str:
    """The account and folder, not the mailbox's name: two configurations may name
    one folder differently."""
    return f"poll imap://{box.username}@{box.host}:{box.port}/{box.folder}"


def poll(box: MailboxConfig, ctx: Context, handle: Callable[[list[Message]], None],
         stop: Callable[[], bool] = lambda: False, *, delays: tuple[float, ...] | None = None,
         max_batch_bytes: int = MAX_BATCH_BYTES, wait_for_lease: float = 0) -> PollResult:
    """Store the mailbox's new messages and hand each batch's rows to `handle`.

    A failed attempt resumes from the checkpoint, so batches already stored
    are not fetched again; `fetched` counts across attempts. When another
    process is polling the folder, wait up to `wait_for_lease` seconds for it
    to finish, then leave the folder to it (`busy` says who).
    """
    result = PollResult(mailbox=box.name, fetched=0, error=None)
    delays = RETRY_DELAYS if delays is None else delays
    holder = lease.new_holder()
    if not _wait_for_lease(box, ctx, holder, result, wait_for_lease, stop):
        return result
    try:
        _poll_with_retries(box, ctx, handle, stop, result, holder, delays, max_batch_bytes)
    finally:
        lease.release(lease_name(box), holder)
    log.info("mailbox %s: fetched %d", box.name, result.fetched)
    return result


def _wait_for_lease(box: MailboxConfig, ctx: Context, holder: str, result: PollResult, wait: float,
                    stop: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + wait
    while True:
        other = lease.acquire(lease_name(box), holder, ctx.clock.now())
        if other is None:
            return True
        if time.monotonic() >= deadline or _sleep(LEASE_WAIT_STEP, stop):
            result.busy = other
            log.warning("mailbox %s: %s is being polled by another process (%s); left to it this round",
                        box.name, box.folder, other)
            return False
        log.info("mailbox %s: waiting for another process (%s) to finish polling %s", box.name, other, box.folder)


def _poll_with_retries(box: MailboxConfig, ctx: Context, handle: Callable[[list[Message]], None],
                       stop: Callable[[], bool], result: PollResult, holder: str,
                       delays: tuple[float, ...], max_batch_bytes: int) -> None:
    for attempt in range(len(delays) + 1):
        try:
            _poll_once(box, ctx, handle, stop, result, max_batch_bytes, holder)
            break
        except _Busy as exc:  # our lease ran out and another process took the folder
            result.busy = exc.holder
            log.warning("mailbox %s: lost the lease on %s to %s; stopping this poll", box.name, box.folder,
                        exc.holder)
            break
        except LoginError as exc:
            # Retrying a refused login only risks locking the account.
            result.error = f"login refused: {exc}"
            log.error("mailbox %s: login as %s refused: %s", box.name, box.username, exc)
            break
        except NETWORK_ERRORS as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if attempt == len(delays) or stop():
                result.error = problem
                log.error("mailbox %s: giving up after %d attempts: %s", box.name, attempt + 1, problem)
                break
            log.warning("mailbox %s: %s; retrying in %gs", box.name, problem, delays[attempt])
            if _sleep(delays[attempt], stop):
                result.error = problem
                break


def _sleep(seconds: float, stop: Callable[[], bool]) -> bool:
    """Wait, waking early (and returning True) if asked to stop."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stop():
            return True
        time.sleep(min(left, 0.2))
    return stop()


def connect(box: MailboxConfig) -> IMAPClient:
    """An authenticated connection; certificates are always verified."""
    client = IMAPClient(box.host, box.port, ssl=(box.security == "tls"),
                        ssl_context=ssl.create_default_context(), timeout=box.timeout)
    try:
        if box.security == "starttls":
            client.starttls(ssl.create_default_context())
        # Aware datetimes in the server's zone, rather than naive local time.
        client.normalise_times = False
        client.login(box.username, box.password)
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection may already be gone; nothing to save
        try:
            client.shutdown()
        except Exception:
            pass


def _poll_once(box: MailboxConfig, ctx: Context, handle: Callable[[list[Message]], None],
               stop: Callable[[], bool], result: PollResult, max_batch_bytes: int, holder: str) -> None:
    client = connect(box)
    try:
        info = client.select_folder(box.folder, readonly=box.processed_folder is None)
        checkpoint = _checkpoint(box, int(info[b"UIDVALIDITY"]), ctx)
        if not info.get(b"EXISTS"):
            return
        if box.processed_folder:
            _move_done(client, box, checkpoint.uidvalidity, ctx)
        last = checkpoint.last_uid
        # "UID n:*" always includes the highest message, even when its UID < n.
        uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
        for batch in _batches(client, uids, box.batch_size, max_batch_bytes):
            if stop():
                return
            other = lease.acquire(lease_name(box), holder, ctx.clock.now())  # renewed batch by batch
            if other is not None:
                raise _Busy(other)
            rows = _store_batch(client, box, ctx, checkpoint, batch)
            result.fetched += len(rows)
            crashpoint("after_store")
            if rows:
                handle(rows)
            if box.processed_folder:
                _move_done(client, box, checkpoint.uidvalidity, ctx)
    finally:
        _close(client)


def _checkpoint(box: MailboxConfig, uidvalidity: int, ctx: Context) -> ImapCheckpoint:
    now = utc(ctx.clock.now())
    checkpoint, created = ImapCheckpoint.get_or_create(
        mailbox=box.name, folder=box.folder, defaults={"uidvalidity": uidvalidity, "updated_at": now})
    if not created and checkpoint.uidvalidity != uidvalidity:
        log.warning("mailbox %s: UIDVALIDITY of %s changed from %d to %d; reading the folder again "
                    "from the start (messages already stored are recognised by Message-ID)",
                    box.name, box.folder, checkpoint.uidvalidity, uidvalidity)
        checkpoint.uidvalidity, checkpoint.last_uid, checkpoint.updated_at = uidvalidity, 0, now
        checkpoint.save()
    return checkpoint


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _fetch(client: IMAPClient, uids: list[int], items: list[bytes]) -> dict[int, dict]:
    found: dict[int, dict] = {}
    for chunk in _chunks(uids, MAX_UIDS_PER_COMMAND):
        found.update(client.fetch(chunk, items))
    return found


def _batches(client: IMAPClient, uids: list[int], count: int, max_bytes: int) -> Iterator[list[int]]:
    """UIDs grouped by at most `count` messages and `max_bytes` (a bigger message goes alone)."""
    batch: list[int] = []
    size = 0
    for chunk in _chunks(uids, MAX_UIDS_PER_COMMAND):
        sizes = client.fetch(chunk, [b"RFC822.SIZE"])
        for uid in chunk:
            if uid not in sizes:  # expunged meanwhile
                continue
            length = sizes[uid][b"RFC822.SIZE"]
            if batch and (len(batch) >= count or size + length > max_bytes):
                yield batch
                batch, size = [], 0
            batch.append(uid)
            size += length
    if batch:
        yield batch


def _arrival(value: datetime) -> datetime:
    """INTERNALDATE -> naive UTC; a naive value (no zone given) is taken as local time."""
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _store_batch(client: IMAPClient, box: MailboxConfig, ctx: Context, checkpoint: ImapCheckpoint,
                 batch: list[int]) -> list[Message]:
    """Raw files first (fsynced), then rows and checkpoint in one transaction."""
    data = _fetch(client, batch, FETCH_ITEMS)
    uidvalidity = checkpoint.uidvalidity
    known = {uid for (uid,) in Message.select(Message.uid).where(
        Message.mailbox == box.name, Message.folder == box.folder, Message.uidvalidity == uidvalidity,
        Message.uid.in_(batch)).tuples()}
    fresh = [uid for uid in batch if uid in data and uid not in known]
    digests = ctx.raw.put_many([data[uid][b"BODY[]"] for uid in fresh])
    now = utc(ctx.clock.now())
    rows = []
    with db.transaction():
        for uid, digest in zip(fresh, digests):
            item = data[uid]
            values = dict(state="pending", source="imap", mailbox=box.name, folder=box.folder,
                          uidvalidity=uidvalidity, uid=uid, raw_sha256=digest, size=len(item[b"BODY[]"]),
                          arrived_at=_arrival(item[b"INTERNALDATE"]), stored_at=now)
            rows.append(Message(id=db.insert(Message, **values), **values))
        checkpoint.last_uid = max(checkpoint.last_uid, max(batch))
        checkpoint.updated_at = now
        checkpoint.save()
    return rows


def _move_done(client: IMAPClient, box: MailboxConfig, uidvalidity: int, ctx: Context) -> None:
    """Move every fully handled, not yet moved message of this folder to `processed_folder`.

    Not just the current batch: a crash between committing a case and moving
    its message leaves the row `done` with `moved_at` unset, and the next
    poll moves it then.
    """
    done = [uid for (uid,) in Message.select(Message.uid).where(
        Message.mailbox == box.name, Message.folder == box.folder, Message.uidvalidity == uidvalidity,
        Message.state == "done", Message.moved_at.is_null()).order_by(Message.uid).tuples()]
    if not done:
        return
    db.make_durable()  # the cases must outlive a power loss before the mail leaves the inbox
    target = box.processed_folder
    if not client.folder_exists(target):
        client.create_folder(target)
    for chunk in _chunks(done, MAX_UIDS_PER_COMMAND):
        if client.has_capability("MOVE"):
            client.move(chunk, target)
        else:
            client.copy(chunk, target)
            client.add_flags(chunk, [DELETED])
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(chunk)
            else:
                client.expunge()
        with db.transaction():
            Message.update(moved_at=utc(ctx.clock.now())).where(
                Message.mailbox == box.name, Message.folder == box.folder, Message.uidvalidity == uidvalidity,
                Message.uid.in_(chunk)).execute()
    crashpoint("after_flag")
