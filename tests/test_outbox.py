"""Composing outgoing mail and queueing it (refusals, limits, transactions)."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import mailproc.config
from mailproc import compose, outbox
from mailproc.clock import Clock
from mailproc.context import Context
from mailproc.db import proxy
from mailproc.models import Case, Contact, Event, Outbox, utc
from mailproc.templates import Templates
from mailproc.testing import REPO

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=timezone.utc)
SUPPORT = "support@example.com"
MAILBOX = dict(name="support", host="127.0.0.1", port=1143, username="u", password="p", address=SUPPORT)


@pytest.fixture
def ctx(database, make_config):
    config = mailproc.config.load(make_config(mailboxes=[MAILBOX], extra={"autoreply_limit": 2}))
    return Context(config=config, rules=None, templates=Templates(REPO / "templates"), clock=Clock(T0), raw=None)


@pytest.fixture
def case(database):
    return Case.create(contact="ana@customer.example", contact_name="Ana", summary="Cannot log in", type="bug",
                       priority="P2", created_at=utc(T0), updated_at=utc(T0), status_changed_at=utc(T0),
                       tier_entered_at=utc(T0))


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def queue(ctx, case, to="ana@customer.example", now=T0, **kw):
    args = dict(kind="acknowledgement", case=case, to=to, mail_from=f"Support <{SUPPORT}>", subject="Re: hi",
                text="text", html="<p>html</p>", in_reply_to="abc@customer.example", references=[], now=now)
    args.update(kw)
    return outbox.queue(ctx, **args)


def events(case, kind):
    return list(Event.select().where(Event.case == case, Event.kind == kind).order_by(Event.id))


def test_build_sets_threading_and_robot_headers():
    msg, message_id = compose.build(
        mail_from="Support <support@example.com>", to=["ana@customer.example"], subject="Olá, ação [Case #5]",
        text="Olá Ana", html="<p>Olá Ana</p>", in_reply_to="<c2@customer.example>",
        references=["root@customer.example", "c1@customer.example"], instance="desk-1", now=T0,
        domain="example.com")
    back = parsed(msg.as_bytes())
    assert back["Message-ID"] == f"<{message_id}>"
    assert message_id.startswith("mailproc.") and message_id.endswith("@example.com")
    assert back["In-Reply-To"] == "<c2@customer.example>"
    assert back["References"].strip() == "<root@customer.example> <c1@customer.example> <c2@customer.example>"
    assert back["Auto-Submitted"] == "auto-replied"
    assert back["X-Auto-Response-Suppress"] == "All"
    assert back["X-Mailproc-Loop"] == "desk-1"
    assert back["Precedence"] is None
    assert back["Date"] == "Tue, 04 Mar 2025 09:00:00 +0000"
    assert back["Subject"] == "Olá, ação [Case #5]"
    assert b"Subject: =?utf-8?" in msg.as_bytes()  # encoded on the wire, not raw UTF-8
    assert back.get_content_type() == "multipart/alternative"
    plain, html = back.get_payload()
    assert plain.get_content_type() == "text/plain" and plain.get_content().strip() == "Olá Ana"
    assert html.get_content_type() == "text/html" and html.get_content_charset() == "utf-8"


def test_build_message_ids_are_unique_and_headers_single_line():
    kw = dict(mail_from="s@example.com", to=["a@b.example"], subject="two\r\nBcc: evil@x.example", text="t",
              html="h", in_reply_to=None, references=[], instance="i", now=T0, domain="example.com", auto=None)
    first, id1 = compose.build(**kw)
    _, id2 = compose.build(**kw)
    assert id1 != id2
    assert first["Subject"] == "two Bcc: evil@x.example" and first["Bcc"] is None
    assert first["Auto-Submitted"] is None and first["References"] is None


def test_references_are_capped_keeping_root_and_newest():
    refs = [f"m{n}@x.example" for n in range(40)]
    chain = compose.references_chain(refs, "parent@x.example")
    assert len(chain) == compose.MAX_REFERENCES
    assert chain[0] == "m0@x.example" and chain[-1] == "parent@x.example" and chain[-2] == "m39@x.example"
    assert compose.references_chain(["a@x", "<a@x>"], "a@x") == ["a@x"]


def test_queue_records_row_and_event(ctx, case):
    row = queue(ctx, case, references=["root@customer.example"])
    assert row.state == "queued" and row.attempts == 0
    assert row.recipients == ["ana@customer.example"] and row.mail_from == SUPPORT
    assert row.next_attempt_at == utc(T0) and row.created_at == utc(T0)
    msg = parsed(bytes(Outbox.get_by_id(row.id).raw))
    assert msg["Message-ID"] == f"<{row.message_id}>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Mailproc-Loop"] == "mailproc"
    assert msg["References"].strip() == "<root@customer.example> <abc@customer.example>"
    assert row.message_id.endswith("@example.com")
    [event] = events(case, "mail_queued")
    assert event.new == "acknowledgement" and event.detail == row.message_id


def test_agent_mail_is_not_marked_automatic(ctx, case):
    row = queue(ctx, case, automatic=False, kind="reply")
    assert parsed(bytes(row.raw))["Auto-Submitted"] is None
    reminder = queue(ctx, case, in_reply_to=None, kind="reminder", reply=False)
    assert parsed(bytes(reminder.raw))["Auto-Submitted"] == "auto-generated"
    # An acknowledgement answers a mail even when that mail had no Message-ID.
    ack = queue(ctx, case, in_reply_to=None, to="bo@customer.example")
    assert parsed(bytes(ack.raw))["Auto-Submitted"] == "auto-replied"


def test_undeliverable_address_is_refused_with_event(ctx, case):
    Contact.create(address="ana@customer.example", undeliverable=True, undeliverable_reason="550 no such user")
    assert queue(ctx, case, to="Ana <ANA@customer.example>") is None
    assert queue(ctx, case, automatic=False) is None  # not even an agent's reply
    assert Outbox.select().count() == 0
    suppressed = events(case, "mail_suppressed")
    assert len(suppressed) == 2
    assert "ana@customer.example is marked undeliverable: 550 no such user" == suppressed[0].detail


def test_automatic_mail_is_rate_limited_per_address(ctx, case):
    assert queue(ctx, case) is not None
    assert queue(ctx, case, to="Ana@Customer.example", now=T0 + timedelta(minutes=10)) is not None
    assert queue(ctx, case, now=T0 + timedelta(minutes=20)) is None  # limit 2 per hour
    [event] = events(case, "mail_suppressed")
    assert "automatic mail limit reached: 2 to ana@customer.example" in event.detail
    assert queue(ctx, case, to="bob@customer.example", now=T0 + timedelta(minutes=20)) is not None
    assert queue(ctx, case, automatic=False, now=T0 + timedelta(minutes=20)) is not None  # people may write
    assert queue(ctx, case, now=T0 + timedelta(minutes=61)) is not None  # the first has left the window
    assert Outbox.select().count() == 5


def test_automatic_mail_to_our_own_mailbox_is_refused(ctx, case):
    assert queue(ctx, case, to=SUPPORT.upper()) is None
    assert "one of our own mailboxes" in events(case, "mail_suppressed")[0].detail


def test_queue_belongs_to_the_callers_transaction(ctx, case):
    with proxy.atomic() as txn:
        assert queue(ctx, case) is not None
        txn.rollback()
    assert Outbox.select().count() == 0 and events(case, "mail_queued") == []


def test_render_and_queue_takes_subject_from_template(ctx, case):
    context = dict(case=case, token=f"[Case #{case.id}]", contact_name="Ana",
                   expected_response="within 2 business hours",
                   expected_by=datetime(2025, 3, 4, 11, 0, tzinfo=ZoneInfo("Europe/Lisbon")),
                   type_label="Bug / Report a Problem", priority_label="P2 – Blocker", escalated=True,
                   is_bug=True, mailbox_address=SUPPORT, original_subject="Login broken")
    row = outbox.render_and_queue(ctx, kind="acknowledgement", case=case, to="ana@customer.example",
                                  mail_from=SUPPORT, context=context, in_reply_to="abc@customer.example",
                                  references=[], now=T0)
    msg = parsed(bytes(row.raw))
    assert msg["Subject"] == f"Re: Login broken [Case #{case.id}]"
    assert f"case #{case.id}" in msg.get_body(("plain",)).get_content()
    assert "within 2 business hours" in msg.get_body(("html",)).get_content()


def test_limit_comes_from_config(ctx, case):
    relaxed = dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, autoreply_limit=3))
    for minute in range(3):
        assert queue(relaxed, case, now=T0 + timedelta(minutes=minute)) is not None
    assert queue(relaxed, case, now=T0 + timedelta(minutes=5)) is None


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_headers_are_printable_folded_and_bounded():
    huge_id = "x" * 5000 + "@customer.example"
    msg, _ = compose.build(
        mail_from="Support <support@example.com>", to=["N\x00\x1bame\u202e " * 40 + "<ana@customer.example>"],
        subject="red\x1b[31m bell\x07 nul\x00 " + "S" * (1 << 20), text="t", html="h", in_reply_to=huge_id,
        references=[huge_id, "root@customer.example", "with space@x", "bell\x07@x", "ok@customer.example"],
        instance="desk\r\nBcc: evil@x.example", now=T0, domain="example.com",
        extra_headers={"X-Note": "é" * 3000})
    raw = compose.as_bytes(msg)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert all(len(line) <= 100 for line in header_lines(raw))
    back = parsed(raw)
    for name, value in back.items():
        assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c == "\u202e" for c in str(value)), name
    assert back["Subject"].startswith("red[31m bell nul SSS") and len(back["Subject"]) <= compose.MAX_HEADER_TEXT
    assert back["In-Reply-To"] is None
    assert back["References"].split() == ["<root@customer.example>", "<ok@customer.example>"]
    assert back["X-Mailproc-Loop"] == "desk Bcc: evil@x.example" and back["Bcc"] is None
    assert back["To"].addresses[0].addr_spec == "ana@customer.example"
    assert len(back["To"].addresses) == 1


def test_sender_text_for_templates_is_one_printable_bounded_line():
    assert compose.printable_line("a\r\nb\tc\x00d\x1b[0m\x07 e\u2028f\u202eg", 100) == "a b cd[0m e fg"
    assert compose.printable_line("x" * 500, 200) == "x" * 199 + "…"
    assert compose.printable_line("Olá, João 👋", 100) == "Olá, João 👋"


def test_links_in_sender_text_are_broken_so_clients_do_not_link_them():
    assert compose.unlinked("Unlock it at http://phish.example/a?b=c") == "Unlock it at http[:]//phish[.]example/a?b=c"
    assert compose.unlinked("www.3com.com ana@bank.example bücher.example") == \
        "www[.]3com[.]com ana@bank[.]example bücher[.]example"
    assert compose.unlinked("Version 1.2 costs 3.50, see section 4.1. Thanks.") == \
        "Version 1.2 costs 3.50, see section 4.1. Thanks."
    assert compose.greeting_name("Dr. Ana M. Souza") == "Dr. Ana M. Souza"
    for not_a_name in ("Your account is locked. Unlock it at phish.example", "ana@bank.example", "http://x"):
        assert compose.greeting_name(not_a_name) == ""


_WORD = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=12)


@settings(max_examples=2000, deadline=None)
@given(name=st.sampled_from(["Subject", "From", "To", "Message-ID", "References", "X-Loop", "Content-Type"]),
       value=st.one_of(
           st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x17f), max_size=120),
           st.lists(_WORD, max_size=15).map(" ".join),  # plain words: the fast path, short and long
           st.lists(_WORD, max_size=8).map("  ".join),  # double spaces: not for the fast path
       ))
@example(name="Subject", value="word " * 14 + "wor")  # 78 characters with the name: the limit
@example(name="Subject", value="word " * 14 + "word")  # 79: folded by the package
def test_the_fast_header_writer_writes_what_the_email_package_would(name, value):
    """compose writes short plain ASCII headers itself (the email package's folding was most
    of the cost of a mail); for every value, the bytes must be the package's own."""
    from email import policy

    from mailproc.compose import _WIRE
    assert _WIRE.fold_binary(name, value) == policy.compat32.clone(linesep="\r\n").fold_binary(name, value)
