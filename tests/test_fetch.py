"""IMAP intake against a real Dovecot: storage, checkpoints, batches, flags, failures."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from mailproc import config as config_mod
from mailproc import db
from mailproc.clock import Clock
from mailproc.context import Context
from mailproc.fetch import poll
from mailproc.models import ImapCheckpoint, Message
from mailproc.rawstore import RawStore

FAST = (0.01, 0.01)  # retry delays for tests


def mail(n: int) -> bytes:
    return (f"From: customer{n}@example.net\r\nTo: support@example.com\r\nSubject: Question {n}\r\n"
            f"Message-ID: <q{n}.{time.monotonic_ns()}@example.net>\r\n\r\nHello, question {n}.\r\n").encode()


@pytest.fixture
def intake(dovecot, imap_user, make_config):
    """intake(database=URL, **mailbox_keys) -> (MailboxConfig, Context) for `support`, DB open."""
    user, password = imap_user

    def build(database: str | None = None, **keys):
        box = dict(name="support", host=dovecot.host, port=dovecot.port, username=user,
                   password=password, address="support@example.com")
        box.update(keys)
        cfg = config_mod.load(make_config(database=database, mailboxes=[box]))
        db.open_database(cfg.database)
        ctx = Context(config=cfg, rules=None, templates=None, clock=Clock(), raw=RawStore(cfg.storage))
        return cfg.mailboxes[0], ctx

    yield build
    db.close()


class Handler:
    """Records the batches the pipeline would get; optionally marks rows done."""

    def __init__(self, done=lambda row: False, after=None):
        self.batches: list[list[int]] = []
        self.done, self.after = done, after

    def __call__(self, rows):
        self.batches.append([r.uid for r in rows])
        for row in rows:
            assert row.state == "pending"
            if self.done(row):
                Message.update(state="done").where(Message.id == row.id).execute()
        if self.after:
            self.after(len(self.batches))


@pytest.fixture
def local_tz_not_utc():
    """Run with a local time zone far from UTC, so a naive local INTERNALDATE would show."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_new_mail_is_stored_once_with_raw_bytes_and_arrival_time(dovecot, imap_user, intake, db_url,
                                                                  local_tz_not_utc):
    user, _ = imap_user
    box, ctx = intake(database=db_url)
    assert poll(box, ctx, Handler()).fetched == 0  # empty mailbox

    sent_at = datetime(2024, 3, 1, 9, 15, 30, tzinfo=timezone(timedelta(hours=2)))
    raws = [mail(i) for i in range(3)]
    for i, raw in enumerate(raws):
        dovecot.append(user, raw, internaldate=sent_at + timedelta(minutes=i))
    handler = Handler()
    before = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    result = poll(box, ctx, handler)

    assert (result.mailbox, result.fetched, result.error) == ("support", 3, None)
    rows = list(Message.select().order_by(Message.uid))
    assert handler.batches == [[1, 2, 3]]
    assert [ctx.raw.get(r.raw_sha256) for r in rows] == raws
    assert [r.arrived_at for r in rows] == [datetime(2024, 3, 1, 7, 15 + i, 30) for i in range(3)]
    for row, raw in zip(rows, raws):
        assert (row.source, row.mailbox, row.folder, row.state) == ("imap", "support", "INBOX", "pending")
        assert row.size == len(raw) and row.uidvalidity > 0
        assert row.stored_at >= before
    checkpoint = ImapCheckpoint.get(mailbox="support", folder="INBOX")
    assert (checkpoint.last_uid, checkpoint.uidvalidity) == (3, rows[0].uidvalidity)

    again = Handler()
    assert poll(box, ctx, again) == type(result)("support", 0, None)
    assert again.batches == [] and Message.select().count() == 3


def test_seen_flags_are_left_as_they_were(dovecot, imap_user, intake):
    user, _ = imap_user
    box, ctx = intake()
    dovecot.append(user, mail(1), flags=(b"\\Seen",))
    dovecot.append(user, mail(2))
    assert poll(box, ctx, Handler()).fetched == 2  # read mail is fetched too
    client = dovecot.client(user)
    try:
        client.select_folder("INBOX", readonly=True)
        assert client.search(["SEEN"]) == [1]
        assert client.search(["UNSEEN"]) == [2]
    finally:
        client.logout()


def test_batches_follow_batch_size_and_byte_limit(dovecot, imap_user, intake):
    user, _ = imap_user
    box, ctx = intake(batch_size=2)
    for i in range(5):
        dovecot.append(user, mail(i))
    handler = Handler()
    assert poll(box, ctx, handler).fetched == 5
    assert handler.batches == [[1, 2], [3, 4], [5]]

    for i in range(3):
        dovecot.append(user, mail(10 + i))
    handler = Handler()
    assert poll(box, ctx, handler, max_batch_bytes=1).fetched == 3  # each mail alone
    assert handler.batches == [[6], [7], [8]]
    assert ImapCheckpoint.get().last_uid == 8


def test_stop_is_honoured_between_batches_and_the_next_poll_resumes(dovecot, imap_user, intake):
    user, _ = imap_user
    box, ctx = intake(batch_size=1)
    for i in range(3):
        dovecot.append(user, mail(i))
    handler = Handler()
    result = poll(box, ctx, handler, stop=lambda: len(handler.batches) >= 1)
    assert (result.fetched, result.error, handler.batches) == (1, None, [[1]])
    handler = Handler()
    assert poll(box, ctx, handler).fetched == 2
    assert handler.batches == [[2], [3]]


def test_uidvalidity_change_reads_the_folder_again(dovecot, imap_user, intake, caplog):
    user, _ = imap_user
    box, ctx = intake(folder="Support")
    dovecot.append(user, mail(1), folder="Support")
    dovecot.append(user, mail(2), folder="Support")
    assert poll(box, ctx, Handler()).fetched == 2
    old = ImapCheckpoint.get().uidvalidity

    client = dovecot.client(user)  # recreating the folder gives it a new UIDVALIDITY
    try:
        client.delete_folder("Support")
        client.create_folder("Support")
    finally:
        client.logout()
    dovecot.append(user, mail(3), folder="Support")  # UID 1 again, but a different message
    caplog.set_level(logging.WARNING, logger="mailproc.fetch")
    handler = Handler()
    assert poll(box, ctx, handler).fetched == 1
    assert handler.batches == [[1]]
    new = ImapCheckpoint.get()
    assert new.uidvalidity != old and new.last_uid == 1
    assert Message.select().where(Message.uidvalidity == new.uidvalidity).count() == 1
    assert any("UIDVALIDITY" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_processed_folder_receives_only_messages_marked_done(dovecot, imap_user, intake):
    user, _ = imap_user
    box, ctx = intake(processed_folder="Processed", batch_size=2)
    for i in range(4):
        dovecot.append(user, mail(i))
    handler = Handler(done=lambda row: row.uid % 2 == 1)  # 1 and 3 done, 2 and 4 stay pending
    assert poll(box, ctx, handler).fetched == 4
    client = dovecot.client(user)
    try:
        client.select_folder("INBOX", readonly=True)
        inbox = client.fetch(client.search(["ALL"]), [b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        client.select_folder("Processed", readonly=True)
        moved = client.fetch(client.search(["ALL"]), [b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]", b"FLAGS"])
    finally:
        client.logout()

    def subjects(found):
        return sorted(v[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip().decode() for v in found.values())

    assert subjects(inbox) == ["Subject: Question 1", "Subject: Question 3"]
    assert subjects(moved) == ["Subject: Question 0", "Subject: Question 2"]
    assert all(b"\\Seen" not in v[b"FLAGS"] for v in moved.values())
    assert poll(box, ctx, Handler()).fetched == 0  # the pending ones are not fetched twice


def test_server_dropping_the_connection_mid_poll_is_retried(dovecot, imap_user, intake, caplog):
    user, _ = imap_user
    box, ctx = intake(batch_size=2)
    for i in range(5):
        dovecot.append(user, mail(i))
    handler = Handler(after=lambda n: dovecot.restart() if n == 1 else None)
    caplog.set_level(logging.WARNING, logger="mailproc.fetch")
    # A just-restarted Dovecot may refuse the first reconnect while its auth
    # process starts (more often on a loaded machine): allow a few retries.
    result = poll(box, ctx, handler, delays=(0.1, 0.5, 1.0))
    assert (result.fetched, result.error) == (5, None)
    records = [r for r in caplog.records if r.name == "mailproc.fetch"]
    assert records and all(r.levelno == logging.WARNING for r in records)  # retried, never gave up
    assert "retrying" in records[0].getMessage()
    assert handler.batches == [[1, 2], [3, 4], [5]]  # resumed from the checkpoint
    assert sorted(m.uid for m in Message.select()) == [1, 2, 3, 4, 5]


def test_server_gone_gives_an_error_and_the_next_poll_resumes(dovecot, imap_user, intake, caplog):
    user, _ = imap_user
    box, ctx = intake()
    dovecot.append(user, mail(1))
    assert poll(box, ctx, Handler()).fetched == 1
    dovecot.append(user, mail(2))
    dovecot.stop()
    try:
        caplog.set_level(logging.INFO, logger="mailproc.fetch")
        result = poll(box, ctx, Handler(), delays=FAST)
    finally:
        dovecot.start()
    assert result.fetched == 0 and result.error and "Connection" in result.error
    assert any(r.levelno == logging.ERROR and "support" in r.getMessage() for r in caplog.records)
    handler = Handler()
    assert poll(box, ctx, handler) == type(result)("support", 1, None)
    assert handler.batches == [[2]]


def test_wrong_password_is_reported_without_retry_or_leaking_it(dovecot, imap_user, intake, caplog):
    user, _ = imap_user
    dovecot.append(user, mail(1))
    box, ctx = intake(password="Wr0ng-Pa55word-xyz")
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    result = poll(box, ctx, Handler(), delays=(5.0,))
    assert time.monotonic() - started < 4  # no retry wait
    assert result.fetched == 0 and "login" in result.error
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "support" in errors[0]
    assert "Wr0ng-Pa55word-xyz" not in caplog.text and "Wr0ng-Pa55word-xyz" not in result.error
    assert Message.select().count() == 0
