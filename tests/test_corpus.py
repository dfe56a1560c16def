"""The regression corpus (tests/corpus/, sources in its README) through the real pipeline.

Every file is ingested into a real SQLite database and processed with the
shipped rules, exactly as `mailproc ingest` does. What must hold:

- no automatic mail (tests/corpus/automatic/KIND/) opens a case, follows up
  on one, or has a mail queued for it: answering a robot is how mail loops
  and backscatter start;
- every human mail (tests/corpus/human/) opens a case, forwarded bounces and
  questions that quote error messages included;
- a bounce records the addresses that failed whenever GNU Mailman's detectors
  (flufl.bounce) can read them.

`pytest tests/test_corpus.py -s` prints the counts by kind and source.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import flufl.bounce
import pytest

import mailproc.config
from mailproc import db, pipeline, sources
from mailproc.clock import Clock
from mailproc.daemon import checked_context
from mailproc.models import Message, Outbox
from mailproc.parse import parse
from mailproc.stages import Work, screen
from mailproc.testing import write_config

CORPUS = Path(__file__).parent / "corpus"
ADDRESS = re.compile(r"[\w.+=-]+@[\w-]+(\.[\w-]+)+")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
# What an automatic mail may end as: recorded, never answered, no case of its own.
NEVER_ANSWERED = {"bounce", "auto_reply", "bulk", "loop", "rejected", "duplicate"}


@dataclass
class Outcome:
    path: Path
    label: str  # automatic | human
    kind: str  # the folder under automatic/, or "human"
    source: str  # the part of the file name before "--"
    disposition: str
    case: int | None
    queued: int  # outbox rows this mail caused
    trace: list[str]


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*.eml") if p.is_file())


def describe(path: Path) -> tuple[str, str, str]:
    relative = path.relative_to(CORPUS).parts
    label = relative[0]
    kind = relative[1] if label == "automatic" else "human"
    return label, kind, path.name.split("--", 1)[0]


def run_corpus(paths: list[Path], directory: Path) -> list[Outcome]:
    """Ingest and process each file in turn with the shipped rules; what became of it."""
    config_path = write_config(directory, database=f"sqlite:///{directory / 'corpus.sqlite3'}",
                               mailboxes=[dict(name="support", host="127.0.0.1", port=143, username="u",
                                               password="p", address="support@example.com")])
    config = mailproc.config.load(config_path)
    ctx = checked_context(config, Clock(NOW))
    db.open_database(config.database)
    outcomes = []
    try:
        for path in paths:
            queued_before = Outbox.select().count()
            rows = sources.ingest(ctx, [path], "support")
            assert len(rows) == 1, f"{path} holds {len(rows)} messages; a corpus file is one mail"
            pipeline.process_all(ctx, rows)
            message = Message.get_by_id(rows[0].id)
            label, kind, source = describe(path)
            outcomes.append(Outcome(path=path, label=label, kind=kind, source=source,
                                    disposition=message.disposition or message.state, case=message.case_id,
                                    queued=Outbox.select().count() - queued_before,
                                    trace=list(message.trace or [])))
    finally:
        db.close()
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    automatic = [o for o in outcomes if o.label == "automatic"]
    human = [o for o in outcomes if o.label == "human"]
    answered = [o for o in automatic if o.queued or o.disposition not in NEVER_ANSWERED]

    def counts(values) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(Counter(values).items()))

    lines = [f"corpus: {len(outcomes)} mails, {len(automatic)} automatic, {len(human)} human",
             f"automatic mails answered or given a case: {len(answered)}",
             f"human mails that opened a case: {sum(o.disposition == 'new_case' for o in human)}/{len(human)}",
             "automatic by kind: " + counts(o.kind for o in automatic),
             "automatic by source: " + counts(o.source for o in automatic),
             "human by source: " + counts(o.source for o in human),
             "automatic by disposition: " + counts(o.disposition for o in automatic),
             "automatic by trace: " + counts((o.trace or ["-"])[0] for o in automatic)]
    lines += [f"  answered: {o.path.relative_to(CORPUS)} -> {o.disposition} {o.trace}" for o in answered]
    lines += [f"  human not opened: {o.path.relative_to(CORPUS)} -> {o.disposition} {o.trace}"
              for o in human if o.disposition != "new_case"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[Outcome]:
    result = run_corpus(corpus_files(), tmp_path_factory.mktemp("corpus"))
    print("\n" + summary(result))
    return result


def test_the_corpus_is_large_and_varied():
    files = corpus_files()
    kinds = Counter(describe(p)[1] for p in files)
    assert sum(n for k, n in kinds.items() if k != "human") >= 200 and kinds["human"] >= 50
    assert {"bounce", "feedback-report", "dmarc-report", "read-receipt", "ses-sns", "list-notice",
            "auto-reply", "list"} <= set(kinds)
    assert (CORPUS / "README.md").is_file()


def test_no_automatic_mail_is_answered_or_opens_a_case(outcomes):
    bad = [o for o in outcomes if o.label == "automatic" and (o.queued or o.disposition not in NEVER_ANSWERED)]
    assert not bad, "\n".join(f"{o.path.relative_to(CORPUS)}: {o.disposition} {o.trace}" for o in bad)


def test_every_human_mail_opens_a_case_and_is_acknowledged(outcomes):
    bad = [o for o in outcomes if o.label == "human" and (o.disposition != "new_case" or o.queued != 1)]
    assert not bad, "\n".join(f"{o.path.relative_to(CORPUS)}: {o.disposition} {o.trace}" for o in bad)


def test_reports_are_told_apart_by_their_report_type(outcomes):
    by_kind = {}
    for o in outcomes:
        by_kind.setdefault(o.kind, set()).add(o.disposition)
    assert by_kind["read-receipt"] == {"auto_reply"}
    assert by_kind["dmarc-report"] == {"auto_reply"}
    assert by_kind["feedback-report"] == {"auto_reply"}


def test_bounces_record_the_addresses_that_failed(outcomes, make_work):
    """Whenever Mailman's detectors can read who failed, the bounce we record says so too."""
    checked = 0
    for o in outcomes:
        if o.disposition != "bounce":
            continue
        raw = o.path.read_bytes()
        temporary, permanent = flufl.bounce.all_failures(email.message_from_bytes(raw, policy=email.policy.compat32))
        expected = {a.decode("ascii", "replace").lower() for a in (permanent or temporary)}
        expected = {a for a in expected if ADDRESS.fullmatch(a)}  # the heuristics also pick up junk
        if not expected:
            continue
        work = make_work(raw)
        screen.run(work)
        assert work.bounce is not None, o.path
        assert expected <= set(work.bounce.recipients), (o.path, expected, work.bounce.recipients)
        checked += 1
    assert checked >= 100


@pytest.fixture
def make_work(make_config, tmp_path):
    config = mailproc.config.load(make_config(mailboxes=[dict(
        name="support", host="127.0.0.1", port=143, username="u", password="p", address="support@example.com")]))
    ctx = checked_context(config, Clock(NOW))

    def make(raw: bytes) -> Work:
        mail = parse(raw)
        message = Message(raw_sha256="0" * 64, size=len(raw), source="ingest", message_id=mail.message_id)
        return Work(ctx=ctx, message=message, mail=mail, raw=raw, now=NOW, mailbox=None)
    return make


def test_sender_less_bounce_of_our_mail_marks_the_address(tmp_path):
    """A bounce with From: <> and Return-Path: <> used to end `rejected` (no sender), so its
    case never learnt the address failed. It ends `bounce` and marks the address."""
    from mailproc.models import Contact, Event

    question = (b"From: Pat Doe <pat@gone.example>\nTo: support@example.com\nSubject: Export fails\n"
                b"Message-ID: <q-77@gone.example>\nDate: Mon, 02 Mar 2026 09:00:00 +0000\n\nIt fails.\n")
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "1-question.eml").write_bytes(question)
    config_path = write_config(tmp_path / "site", database=f"sqlite:///{tmp_path / 'b.sqlite3'}",
                               mailboxes=[dict(name="support", host="127.0.0.1", port=143, username="u",
                                               password="p", address="support@example.com")])
    config = mailproc.config.load(config_path)
    ctx = checked_context(config, Clock(NOW))
    db.open_database(config.database)
    try:
        pipeline.process_all(ctx, sources.ingest(ctx, [inbox / "1-question.eml"], "support"))
        ack = Outbox.get()
        bounce = (f"Return-Path: <>\nFrom: <>\nTo: support@example.com\nSubject: Mail\n"
                  f"Message-ID: <dsn-77@mx.gone.example>\nMIME-Version: 1.0\n"
                  f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
                  f"--b\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
                  f"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.gone.example\n\n"
                  f"Final-Recipient: rfc822; pat@gone.example\nAction: failed\nStatus: 5.1.1\n"
                  f"Diagnostic-Code: smtp; 550 5.1.1 <pat@gone.example>: User unknown\n\n"
                  f"--b\nContent-Type: text/rfc822-headers\n\nFrom: support@example.com\nTo: pat@gone.example\n"
                  f"Message-ID: <{ack.message_id}>\n\n--b--\n").encode()
        nobody = b"From: <>\nTo: support@example.com\nSubject: hello\nMessage-ID: <x-1@nowhere.example>\n\nhi\n"
        (inbox / "2-bounce.eml").write_bytes(bounce)
        (inbox / "3-nobody.eml").write_bytes(nobody)
        assert pipeline.process_all(ctx, sources.ingest(ctx, [inbox / "2-bounce.eml"], "support")) == {"bounce": 1}
        assert pipeline.process_all(ctx, sources.ingest(ctx, [inbox / "3-nobody.eml"], "support")) == {"rejected": 1}
        bounced = Message.get(Message.message_id == "dsn-77@mx.gone.example")
        assert (bounced.disposition, bounced.case_id) == ("bounce", ack.case_id)
        assert bounced.trace == ["screen:report:delivery-status", "thread:bounce"]
        contact = Contact.get(Contact.address == "pat@gone.example")
        assert contact.undeliverable and "User unknown" in contact.undeliverable_reason
        assert Event.select().where((Event.case == ack.case_id) & (Event.kind == "bounce")).count() == 1
        assert Message.get(Message.message_id == "x-1@nowhere.example").trace == ["pipeline:no-sender"]
    finally:
        db.close()
