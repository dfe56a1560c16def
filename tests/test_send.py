"""Draining the outbox against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from datetime import datetime, timedelta, timezone

import pytest

import mailproc.config
from mailproc import db, outbox, send
from mailproc.clock import Clock
from mailproc.context import Context
from mailproc.models import Case, Event, Outbox, utc
from mailproc.templates import Templates
from mailproc.testing import REPO

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=timezone.utc)
SUPPORT = "support@example.com"
MAILBOX = dict(name="support", host="127.0.0.1", port=1143, username="u", password="p", address=SUPPORT)


def make_ctx(make_config, *, port: int | None, host: str = "127.0.0.1", extra: dict | None = None) -> Context:
    smtp = dict(host=host, port=port) if port else None
    config = mailproc.config.load(make_config(smtp=smtp, mailboxes=[MAILBOX],
                                              extra={"retry_limit": "1d", **(extra or {})}))
    return Context(config=config, rules=None, templates=Templates(REPO / "templates"), clock=Clock(T0), raw=None)


def at(ctx: Context, when: datetime) -> Context:
    """The same context with the clock moved to `when`."""
    return dataclasses.replace(ctx, clock=Clock(when))


@pytest.fixture
def ctx(database, smtp, make_config):
    return make_ctx(make_config, port=smtp.port)


@pytest.fixture
def case(database):
    return Case.create(contact="ana@customer.example", summary="Cannot log in", created_at=utc(T0),
                       updated_at=utc(T0), status_changed_at=utc(T0), tier_entered_at=utc(T0))


def closed_port() -> int:
    """A port nobody listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def queue(ctx, case, to="ana@customer.example", **kw) -> Outbox:
    args = dict(kind="acknowledgement", case=case, to=to, mail_from=SUPPORT, subject=f"Re: help [Case #{case.id}]",
                text="We have your message.", html="<p>We have your message.</p>", in_reply_to="c1@customer.example",
                references=[], now=T0, automatic=False)
    args.update(kw)
    return outbox.queue(ctx, **args)


def near(stored: datetime, expected: datetime) -> bool:
    """The test clock runs on at real speed from its start: allow a few seconds."""
    return abs(stored - utc(expected)) < timedelta(seconds=5)


def fresh(row: Outbox) -> Outbox:
    return Outbox.get_by_id(row.id)


def kinds(case) -> list[str]:
    return [e.kind for e in Event.select().where(Event.case == case).order_by(Event.id)]


def test_drain_sends_once(ctx, smtp, case):
    row = queue(ctx, case)
    assert send.drain(ctx) == send.DrainResult(sent=1)
    [received] = smtp.wait_for(1)
    assert received.mail_from == SUPPORT and received.rcpt_tos == ["ana@customer.example"]
    assert received.message["Message-ID"] == f"<{row.message_id}>"
    assert received.message["Subject"] == f"Re: help [Case #{case.id}]"
    assert received.message["X-Mailproc-Loop"] == "mailproc"
    row = fresh(row)
    assert row.state == "sent" and near(row.sent_at, T0) and row.last_error is None
    assert kinds(case) == ["mail_queued", "mail_sent"]

    assert send.drain(at(ctx, T0 + timedelta(hours=1))) == send.DrainResult()
    assert len(smtp.messages) == 1


def test_one_connection_serves_many_rows_in_order(ctx, smtp, case):
    rows = [queue(ctx, case, to=f"user{n}@customer.example") for n in range(3)]
    assert send.drain(ctx, limit=2) == send.DrainResult(sent=2)
    assert send.drain(ctx) == send.DrainResult(sent=1)
    received = smtp.wait_for(3)
    assert [r.rcpt_tos[0] for r in received] == [row.recipients[0] for row in rows]


def test_stop_flag_ends_the_drain_between_rows(ctx, smtp, case):
    for n in range(3):
        queue(ctx, case, to=f"user{n}@customer.example")
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1

    assert send.drain(ctx, stop=stop) == send.DrainResult(sent=1)
    assert Outbox.select().where(Outbox.state == "queued").count() == 2


def test_temporary_failure_retries_with_backoff(ctx, smtp, case):
    row = queue(ctx, case)
    smtp.fail(451, "greylisted, try again later")
    assert send.drain(ctx) == send.DrainResult(deferred=1)
    row = fresh(row)
    assert row.state == "queued" and row.attempts == 1
    assert near(row.next_attempt_at, T0 + timedelta(minutes=1))
    assert "451 greylisted" in row.last_error

    assert send.drain(at(ctx, T0 + timedelta(seconds=30))) == send.DrainResult()  # not due yet

    smtp.fail(421, "busy")
    assert send.drain(at(ctx, T0 + timedelta(minutes=1, seconds=5))) == send.DrainResult(deferred=1)
    row = fresh(row)
    assert row.attempts == 2 and near(row.next_attempt_at, T0 + timedelta(minutes=3, seconds=5))

    assert send.drain(at(ctx, T0 + timedelta(minutes=3, seconds=15))) == send.DrainResult(sent=1)
    assert len(smtp.wait_for(1)) == 1
    assert fresh(row).state == "sent"
    assert kinds(case) == ["mail_queued", "mail_sent"]


def test_backoff_is_exponential_and_capped():
    assert [send.backoff(n) for n in (1, 2, 3, 6, 7, 20)] == [
        timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=32),
        timedelta(hours=1), timedelta(hours=1)]


def test_permanent_failure_is_recorded(ctx, smtp, case, caplog):
    row = queue(ctx, case)
    smtp.fail(550, "mailbox unavailable")
    with caplog.at_level(logging.ERROR, logger="mailproc.send"):
        assert send.drain(ctx) == send.DrainResult(failed=1)
    row = fresh(row)
    assert row.state == "failed" and row.last_error == "550 mailbox unavailable"
    event = Event.get(Event.case == case, Event.kind == "mail_failed")
    assert event.detail == "550 mailbox unavailable" and event.new == "acknowledgement"
    assert f"outbox {row.id}" in caplog.text
    assert send.drain(at(ctx, T0 + timedelta(hours=2))) == send.DrainResult()  # never retried
    assert smtp.messages == []


def test_failure_does_not_stop_the_rest(ctx, smtp, case):
    first, second = queue(ctx, case), queue(ctx, case, to="bob@customer.example")
    smtp.fail(550)
    assert send.drain(ctx) == send.DrainResult(sent=1, failed=1)
    assert fresh(first).state == "failed" and fresh(second).state == "sent"
    assert smtp.wait_for(1)[0].rcpt_tos == ["bob@customer.example"]


def test_server_down_defers_everything_and_loses_nothing(database, smtp, make_config, case):
    down = make_ctx(make_config, port=closed_port())
    rows = [queue(down, case), queue(down, case, to="bob@customer.example")]
    assert send.drain(down) == send.DrainResult(deferred=2)
    for row in rows:
        row = fresh(row)
        assert row.state == "queued" and row.attempts == 1 and "cannot reach" in row.last_error

    up = at(make_ctx(make_config, port=smtp.port), T0 + timedelta(minutes=2))
    assert send.drain(up) == send.DrainResult(sent=2)
    assert len(smtp.wait_for(2)) == 2


def test_gives_up_after_retry_limit(database, make_config, case):
    down = make_ctx(make_config, port=closed_port(), extra={"retry_limit": "2h"})
    row = queue(down, case)
    assert send.drain(at(down, T0 + timedelta(hours=1))) == send.DrainResult(deferred=1)
    assert send.drain(at(down, T0 + timedelta(hours=2))) == send.DrainResult(failed=1)
    row = fresh(row)
    assert row.state == "failed" and row.attempts == 2 and row.last_error.startswith("gave up after 2 attempts")
    assert "mail_failed" in kinds(case)


def test_stale_sending_row_is_requeued_and_sent(ctx, smtp, case, caplog):
    stale, busy = queue(ctx, case), queue(ctx, case, to="bob@customer.example")
    Outbox.update(state="sending", claimed_at=utc(T0 - timedelta(minutes=11))).where(Outbox.id == stale.id).execute()
    Outbox.update(state="sending", claimed_at=utc(T0 - timedelta(minutes=1))).where(Outbox.id == busy.id).execute()
    with caplog.at_level(logging.WARNING, logger="mailproc.send"):
        assert send.drain(ctx) == send.DrainResult(sent=1)
    assert f"outbox {stale.id} was left in 'sending'" in caplog.text
    [received] = smtp.wait_for(1)
    assert received.message["Message-ID"] == f"<{stale.message_id}>"  # the same id: de-duplicable
    assert fresh(stale).state == "sent"
    assert fresh(busy).state == "sending"  # another sender may be working on it


def test_some_recipients_refused(ctx, smtp, case):
    row = queue(ctx, case)
    Outbox.update(recipients=["ana@customer.example", "gone@customer.example"]).where(Outbox.id == row.id).execute()
    smtp.refuse("gone@customer.example", 550, "no such user")
    assert send.drain(ctx) == send.DrainResult(sent=1)
    assert smtp.wait_for(1)[0].rcpt_tos == ["ana@customer.example"]
    row = fresh(row)
    assert row.state == "sent"
    assert row.last_error == "some recipients refused: gone@customer.example: 550 no such user"


def test_all_recipients_refused_is_permanent(ctx, smtp, case):
    row = queue(ctx, case, to="gone@customer.example")
    smtp.refuse("gone@customer.example", 550, "no such user")
    assert send.drain(ctx) == send.DrainResult(failed=1)
    assert "gone@customer.example: 550 no such user" in fresh(row).last_error


def test_without_smtp_the_queue_is_left_alone(database, make_config, case, caplog):
    quiet = make_ctx(make_config, port=None)
    row = queue(quiet, case)
    with caplog.at_level(logging.WARNING, logger="mailproc.send"):
        assert send.drain(quiet) == send.DrainResult()
        assert send.drain(quiet) == send.DrainResult()
    assert caplog.text.count("has no [smtp] section") == 1
    assert fresh(row).state == "queued" and fresh(row).attempts == 0


def test_two_senders_on_every_database(db_url, smtp, make_config):
    """The claim is one conditional UPDATE; on PostgreSQL the senders really run in parallel."""
    db.open_database(db_url)
    ctx = make_ctx(make_config, port=smtp.port)
    case = Case.create(contact="ana@customer.example", created_at=utc(T0), updated_at=utc(T0),
                       status_changed_at=utc(T0), tier_entered_at=utc(T0))
    rows = [queue(ctx, case, to=f"user{n}@customer.example") for n in range(8)]
    results: list[send.DrainResult] = []

    def sender():
        try:
            results.append(send.drain(ctx))
        finally:
            db.proxy.close()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(r.sent for r in results) == len(rows) and len(results) == 4
    assert len(smtp.wait_for(len(rows))) == len(rows)
    assert sorted(e.detail for e in Event.select().where(Event.kind == "mail_sent")) == \
        sorted(row.message_id for row in rows)
