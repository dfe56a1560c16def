"""Threading against a real (SQLite) database: tokens, Message-IDs, duplicates, closed cases."""

from __future__ import annotations

import hashlib
import itertools
import types
from datetime import datetime, timezone
from pathlib import Path

import pytest

import mailproc.config
from mailproc.clock import Clock
from mailproc.context import Context
from mailproc.models import Case, Message, Outbox, Participant, Person
from mailproc.parse import parse
from mailproc.rawstore import RawStore
from mailproc.rules.screening import load_screening
from mailproc.stages import Bounce, Work, screen, thread
from mailproc.subject import clean_subject, find_token, token_regex
from mailproc.testing import REPO

MAIL = Path(__file__).parent / "mail"
NOW = datetime(2024, 6, 20, 9, 0, tzinfo=timezone.utc)
_uid = itertools.count(1)


@pytest.fixture
def ctx(make_config, tmp_path):
    config = mailproc.config.load(make_config(mailboxes=[dict(
        name="support", host="127.0.0.1", port=143, username="u", password="p", address="support@example.com")]))
    rules = types.SimpleNamespace(screening=load_screening(REPO / "rules" / "screening.toml"))
    return Context(config=config, rules=rules, templates=None, clock=Clock(), raw=RawStore(tmp_path))


def make_case(contact="jane@acme.example", status="new") -> Case:
    t = NOW.replace(tzinfo=None)
    return Case.create(contact=contact, status=status, created_at=t, updated_at=t, status_changed_at=t,
                       tier_entered_at=t)


def store(raw: bytes, *, state="pending", case=None, mailbox="support") -> Message:
    mail = parse(raw)
    return Message.create(raw_sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), source="imap", mailbox=mailbox,
                          folder="INBOX", uidvalidity=1, uid=next(_uid), message_id=mail.message_id,
                          subject=mail.subject, from_addr=mail.from_addr, arrived_at=NOW.replace(tzinfo=None),
                          stored_at=NOW.replace(tzinfo=None), state=state, case=case)


def sent(case: Case, message_id: str) -> Outbox:
    t = NOW.replace(tzinfo=None)
    return Outbox.create(case=case, kind="acknowledgement", message_id=message_id, mail_from="support@example.com",
                         recipients=[case.contact], to_addr=case.contact, raw=b"...", next_attempt_at=t,
                         created_at=t, state="sent")


def mail(subject="Question", sender="jane@acme.example", message_id="m1@acme.example", headers="") -> bytes:
    mid = f"Message-ID: <{message_id}>\n" if message_id else ""
    return f"From: {sender}\nTo: support@example.com\nSubject: {subject}\n{mid}{headers}\nHello\n".encode()


def threaded(ctx, raw: bytes, *, run_screen=True, **work_fields) -> Work:
    row = store(raw)
    work = Work(ctx=ctx, message=row, mail=parse(raw), raw=raw, now=NOW, mailbox=ctx.config.mailboxes[0])
    if run_screen:
        screen.run(work)
    for name, value in work_fields.items():
        setattr(work, name, value)
    thread.run(work)
    return work


def test_new_mail_belongs_to_no_case(database, ctx):
    make_case()
    work = threaded(ctx, mail())
    assert (work.case, work.thread_rule, work.duplicate_of, work.reopen_of) == (None, None, None, None)
    assert work.trace == []


def test_token_from_the_contact_attaches(database, ctx):
    case = make_case()
    work = threaded(ctx, mail(subject=f"RE: [case #{case.id}] Still broken", sender="Jane@ACME.example"))
    assert (work.case, work.thread_rule) == (case, "token")
    assert work.trace == ["thread:token"]


@pytest.mark.parametrize("who", ["participant", "agent"])
def test_token_from_a_participant_or_an_agent_attaches(database, ctx, who):
    case = make_case()
    if who == "participant":
        Participant.create(case=case, address="bob@acme.example", role="cc")
    else:
        Person.create(address="bob@acme.example", name="Bob", role="agent")
    work = threaded(ctx, mail(subject=f"[Case#{case.id}] note", sender="bob@acme.example"))
    assert (work.case, work.thread_rule) == (case, "token")


def test_token_from_a_stranger_or_inactive_agent_is_ignored(database, ctx):
    case = make_case()
    Person.create(address="former@example.com", active=False)
    for sender in ("mallory@evil.example", "former@example.com"):
        work = threaded(ctx, mail(subject=f"[Case #{case.id}] give me the data", sender=sender,
                                  message_id=f"{sender}.x"))
        assert work.case is None
        assert work.trace == ["thread:token-ignored-sender-not-on-case"]


def test_stranger_with_token_can_still_thread_by_in_reply_to(database, ctx):
    case = make_case()
    sent(case, "ack-1@mailproc.example.com")
    work = threaded(ctx, mail(subject=f"Fwd: [Case #{case.id}]", sender="colleague@acme.example",
                              headers="In-Reply-To: <ack-1@mailproc.example.com>\n"))
    assert (work.case, work.thread_rule) == (case, "in_reply_to")
    assert work.trace == ["thread:token-ignored-sender-not-on-case", "thread:in_reply_to"]


def test_token_naming_no_case_goes_on(database, ctx):
    work = threaded(ctx, mail(subject="[Case #999] hello"))
    assert work.case is None and work.trace == ["thread:token-unknown-case"]


def test_absurd_tokens_are_bounded(database, ctx):
    # a 5,000-digit "case number" is no token (int() of it used to raise), and a
    # subject naming 50 cases costs 10 lookups, not 50
    work = threaded(ctx, mail(subject="[Case #" + "9" * 5000 + "] hello"))
    assert work.case is None and work.trace == []
    work = threaded(ctx, mail(subject=" ".join(f"[Case #{n}]" for n in range(1000, 1050)), message_id="m2@x"))
    assert work.trace == ["thread:token-unknown-case"] * 10


def test_in_reply_to_our_outgoing_mail(database, ctx):
    case = make_case()
    sent(case, "ack-1@mailproc.example.com")
    work = threaded(ctx, mail(subject="Re: thanks", sender="someone@else.example",
                              headers="In-Reply-To: <ack-1@mailproc.example.com>\n"))
    assert (work.case, work.thread_rule) == (case, "in_reply_to")


def test_references_to_a_received_mail_nearest_first(database, ctx):
    old, new = make_case(), make_case()
    store(mail(message_id="first@acme.example"), state="done", case=old)
    store(mail(message_id="second@acme.example"), state="done", case=new)
    work = threaded(ctx, mail(message_id="third@acme.example", headers=(
        "In-Reply-To: <unknown@nowhere.example>\n"
        "References: <first@acme.example> <second@acme.example> <unknown@nowhere.example>\n")))
    assert (work.case, work.thread_rule) == (new, "references")


def test_duplicate_message_id_from_another_mailbox(database, ctx):
    case = make_case()
    first = store(mail(message_id="cc@acme.example"), state="done", case=case, mailbox="billing")
    work = threaded(ctx, mail(message_id="cc@acme.example"))
    assert (work.duplicate_of, work.case, work.thread_rule) == (first, case, "duplicate")
    assert work.trace == ["thread:duplicate"]


def test_pending_or_failed_copies_are_not_duplicates(database, ctx):
    store(mail(message_id="again@acme.example"), state="failed")
    work = threaded(ctx, mail(message_id="again@acme.example"))
    assert work.duplicate_of is None


def test_duplicate_without_message_id_by_bytes(database, ctx):
    raw = mail(message_id=None)
    first = store(raw, state="done")
    work = threaded(ctx, raw)
    assert (work.duplicate_of, work.thread_rule) == (first, "duplicate")
    other = threaded(ctx, mail(message_id=None, subject="different bytes"))
    assert other.duplicate_of is None


def test_duplicate_of_a_reply_to_closed_case_does_not_reopen(database, ctx):
    case = make_case(status="closed")
    store(mail(message_id="dup@acme.example"), state="done", case=case)
    work = threaded(ctx, mail(message_id="dup@acme.example"))
    assert (work.case, work.reopen_of) == (case, None)


def test_reply_to_closed_case_opens_a_linked_new_one(database, ctx):
    case = make_case(status="closed")
    work = threaded(ctx, mail(subject=f"Re: [Case #{case.id}] It is back"))
    assert (work.case, work.reopen_of, work.thread_rule) == (None, case, "token")
    assert work.trace == ["thread:token", "thread:reply-to-closed-case"]


def test_auto_reply_to_closed_case_stays_on_it(database, ctx):
    case = make_case(contact="anna.berg@kunde.example", status="closed")
    sent(case, "case12.ack.1@mailproc.example.com")
    raw = (MAIL / "oof_exchange.eml").read_bytes()
    work = threaded(ctx, raw)
    assert work.screen == "auto_reply"
    assert (work.case, work.reopen_of) == (case, None)


def test_bounce_found_by_original_message_id(database, ctx):
    case = make_case(contact="nobody@customer.example", status="closed")
    sent(case, "case42.ack.1@mailproc.example.com")
    work = threaded(ctx, (MAIL / "bounce_postfix.eml").read_bytes())
    assert work.screen == "bounce"
    assert (work.case, work.thread_rule, work.reopen_of) == (case, "bounce", None)


def test_bounce_original_found_among_received_messages(database, ctx):
    case = make_case()
    store(mail(message_id="orig@acme.example"), state="done", case=case)
    work = threaded(ctx, mail(subject="Undelivered", sender="mailer-daemon@x.example", message_id="b@x"),
                    run_screen=False, screen="bounce",
                    bounce=Bounce(recipients=[], original_message_id="orig@acme.example", reason="", permanent=True))
    assert (work.case, work.thread_rule) == (case, "bounce")


def test_own_row_is_never_its_own_match(database, ctx):
    # a retried message whose row already carries a case must not find itself
    case = make_case()
    raw = mail(message_id="self@acme.example", headers="In-Reply-To: <self@acme.example>\n")
    row = store(raw, case=case)
    work = Work(ctx=ctx, message=row, mail=parse(raw), raw=raw, now=NOW, mailbox=None)
    thread.run(work)
    assert (work.case, work.duplicate_of, work.trace) == (None, None, [])


def test_custom_case_token(database, make_config, tmp_path):
    config = mailproc.config.load(make_config(
        mailboxes=[dict(name="support", host="127.0.0.1", port=143, username="u", password="p",
                        address="support@example.com")],
        extra={"case_token": "(Ticket {number})"}))
    ctx = Context(config=config, rules=types.SimpleNamespace(screening=load_screening(
        REPO / "rules" / "screening.toml")), templates=None, clock=Clock(), raw=RawStore(tmp_path))
    case = make_case()
    work = threaded(ctx, mail(subject=f"Re: problem ( ticket  {case.id} )"))
    assert work.case == case


# --- subjects ---------------------------------------------------------------------

TOKEN = token_regex("[Case #{number}]")


@pytest.mark.parametrize("subject, number", [
    ("[Case #12] Hello", 12), ("Re: [case #12]", 12), ("[Case#12]", 12), ("[ CASE # 12 ]", 12),
    ("AW: Problem [Case #7] [Case #8]", 7), ("Case #12 without brackets", None), ("[Case #] x", None),
    ("", None),
])
def test_find_token(subject, number):
    assert find_token(subject, TOKEN) == number


@pytest.mark.parametrize("subject, clean", [
    ("Re: Fwd: RE: FW: Printer", "Printer"),
    ("AW: WG: SV: VS: RES: ENC: RV: TR: Antw: Doorst: Odp: PD: YNT: İLT: Drucker", "Drucker"),
    ("回复：转发：打印机", "打印机"),
    ("回覆: 答复: 轉寄: 返信: 転送: プリンター", "プリンター"),
    ("Re[2]: Re(3): Re^4: x", "x"),
    ("RE : TR : Imprimante", "Imprimante"),
    ("Re: [Case #12] Re: Printer   still\tbroken", "Printer still broken"),
    ("[Case #12] Printer", "Printer"),
    ("Printer [Case #12]", "Printer"),
    ("[EXT] Re: Printer", "[EXT] Re: Printer"),
    ("Resolved: printer", "Resolved: printer"),
    ("Regarding printer", "Regarding printer"),
    ("Re:", ""),
])
def test_clean_subject(subject, clean):
    assert clean_subject(subject, TOKEN) == clean
