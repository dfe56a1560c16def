"""End to end: a real Dovecot inbox becomes acknowledged cases, on SQLite and PostgreSQL.

Every test runs the real `mailproc` command against the real servers; the only
thing inspected directly is what the SMTP server received and what the command
prints.
"""

from __future__ import annotations

import uuid

from datetime import timedelta

import pytest

from helpers import T0, clock_from, mail, run, run_json



@pytest.fixture(autouse=True)
def clock_at_the_mails(monkeypatch):
    """The clock stands just after the test mails' dates (T0): these tests are about intake,
    and on the real clock the workflow's timers (a "still looking" note two business days
    after a mail) would already be due for them."""
    clock_from(monkeypatch, T0 + timedelta(minutes=30))

SUPPORT = "support@example.com"
BILLING = "billing@example.com"


@pytest.fixture
def site(dovecot, imap_user, smtp, make_config, db_url, tmp_path):
    """A config with one mailbox (the fresh IMAP user) and the SMTP catcher."""
    user, password = imap_user
    path = make_config(database=db_url, mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port,
                                                        username=user, password=password, address=SUPPORT)],
                       smtp=dict(host=smtp.host, port=smtp.port))
    return dict(config=path, user=user)


def deliver(dovecot, user, raw, when=T0):
    dovecot.append(user, raw, internaldate=when)


def test_inbox_becomes_acknowledged_cases(site, dovecot, smtp, capsys):
    user = site["user"]
    deliver(dovecot, user, mail("How do I export to PDF?", "Where is the export button?", message_id="q1"))
    deliver(dovecot, user, mail("Checkout not working", "Our checkout is not working, error 500.",
                                sender="bob@bigbank.example", message_id="bug1"))
    deliver(dovecot, user, mail("Automatic reply: hello", "I am away", sender="eve@acme.example",
                                headers={"Auto-Submitted": "auto-replied"}))
    deliver(dovecot, user, mail("Weekly news", "news", sender="news@list.example",
                                headers={"List-Id": "<news.list.example>", "Precedence": "bulk"}))
    assert run(site["config"], "run", "--once", capsys=capsys)[0] == 0

    cases = run_json(site["config"], capsys, "cases", "list")
    assert [c["summary"] for c in cases] == ["How do I export to PDF?", "Checkout not working"]
    question, bug = cases
    assert (question["type"], question["status"], question["contact"]) == ("request", "new", "alice@acme.example")
    assert (bug["type"], bug["priority"]) == ("bug", "P2")
    assert bug["status"] == "pending_development" and bug["team"]
    assert all(c["message_count"] == 1 for c in cases)

    messages = run_json(site["config"], capsys, "messages", "list")
    assert sorted(m["disposition"] for m in messages) == ["auto_reply", "bulk", "new_case", "new_case"]
    assert all(m["state"] == "done" for m in messages)

    sent = smtp.wait_for(2)
    assert len(sent) == 2
    by_rcpt = {got.rcpt_tos[0]: got.message for got in sent}
    ack = by_rcpt["alice@acme.example"]
    assert f"[Case #{question['number']}]" in ack["Subject"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"].strip("<>") == "q1@test.example"
    assert ack["From"] == SUPPORT and ack["X-Mailproc-Loop"]
    text = ack.get_body(("plain",)).get_content()
    assert str(question["number"]) in text
    assert ack.get_body(("html",)) is not None
    assert "escalat" in by_rcpt["bob@bigbank.example"].get_body(("plain",)).get_content().lower()

    detail = run_json(site["config"], capsys, "cases", "show", question["number"])
    assert detail["decided_by"]["type"] and detail["decided_by"]["priority"]
    kinds = [e["kind"] for e in detail["events"]]
    assert "created" in kinds and "mail_queued" in kinds and "mail_sent" in kinds
    priority_event = next(e for e in detail["events"] if e["field"] == "priority")
    assert priority_event["rule"] == detail["decided_by"]["priority"]

    # A second poll of the unchanged mailbox changes nothing and sends nothing.
    assert run(site["config"], "run", "--once", capsys=capsys)[0] == 0
    assert len(run_json(site["config"], capsys, "messages", "list")) == 4
    assert len(smtp.messages) == 2


def test_reply_to_acknowledgement_threads_and_reopens_status(site, dovecot, smtp, capsys):
    user = site["user"]
    deliver(dovecot, user, mail("Cannot find the export", "Where is it?", message_id="orig"))
    run(site["config"], "run", "--once", capsys=capsys)
    ack = smtp.wait_for(1)[0].message
    ack_id = ack["Message-ID"]
    # A reply by header only (no token in the subject), and one by token only.
    deliver(dovecot, user, mail("Re: your mail", "Thanks, more details here", message_id="r1",
                                headers={"In-Reply-To": ack_id, "References": ack_id}))
    deliver(dovecot, user, mail(f"AW: {ack['Subject']}", "Noch eine Frage", message_id="r2"))
    run(site["config"], "run", "--once", capsys=capsys)
    cases = run_json(site["config"], capsys, "cases", "list")
    assert len(cases) == 1 and cases[0]["message_count"] == 3
    assert len(smtp.messages) == 1  # follow-ups are not acknowledged again
    dispositions = [m["disposition"] for m in run_json(site["config"], capsys, "messages", "list")]
    assert dispositions == ["new_case", "follow_up", "follow_up"]


def test_case_token_from_a_stranger_does_not_attach(site, dovecot, smtp, capsys):
    user = site["user"]
    deliver(dovecot, user, mail("My problem", "details", message_id="a1"))
    run(site["config"], "run", "--once", capsys=capsys)
    deliver(dovecot, user, mail("Re: [Case #1] My problem", "I'm someone else", sender="mallory@evil.example",
                                message_id="m1"))
    run(site["config"], "run", "--once", capsys=capsys)
    cases = run_json(site["config"], capsys, "cases", "list")
    assert [c["contact"] for c in cases] == ["alice@acme.example", "mallory@evil.example"]
    stranger = run_json(site["config"], capsys, "messages", "list")[-1]
    assert stranger["disposition"] == "new_case"
    assert "thread:token-ignored-sender-not-on-case" in stranger["trace"]


def test_same_message_in_two_mailboxes_is_one_case(dovecot, smtp, make_config, db_url, capsys):
    tag = uuid.uuid4().hex[:8]
    support = dovecot.add_user(f"sup{tag}", "pw")
    billing = dovecot.add_user(f"bil{tag}", "pw")
    config = make_config(database=db_url, smtp=dict(host=smtp.host, port=smtp.port), mailboxes=[
        dict(name="support", host=dovecot.host, port=dovecot.port, username=support[0], password="pw", address=SUPPORT),
        dict(name="billing", host=dovecot.host, port=dovecot.port, username=billing[0], password="pw", address=BILLING),
    ])
    raw = mail("Invoice is wrong", "Please fix the invoice", to=f"{SUPPORT}, {BILLING}", message_id="cc-both")
    dovecot.append(support[0], raw, internaldate=T0)
    dovecot.append(billing[0], raw, internaldate=T0)
    run(config, "run", "--once", capsys=capsys)
    assert len(run_json(config, capsys, "cases", "list")) == 1
    assert sorted(m["disposition"] for m in run_json(config, capsys, "messages", "list")) == ["duplicate", "new_case"]
    assert len(smtp.wait_for(1)) == 1


def test_reply_to_closed_case_opens_linked_case(site, dovecot, smtp, capsys):
    from mailproc import db
    from mailproc.config import load
    from mailproc.models import Case

    user = site["user"]
    deliver(dovecot, user, mail("Old problem", "details", message_id="old"))
    run(site["config"], "run", "--once", capsys=capsys)
    db.open_database(load(site["config"]).database)
    Case.update(status="closed").execute()
    db.close()
    deliver(dovecot, user, mail("Re: Old problem [Case #1]", "It is broken again", message_id="again",
                                headers={"In-Reply-To": "<old@test.example>"}))
    run(site["config"], "run", "--once", capsys=capsys)
    cases = run_json(site["config"], capsys, "cases", "list")
    assert cases[0]["status"] == "closed" and cases[1]["status"] != "closed"
    detail = run_json(site["config"], capsys, "cases", "show", cases[1]["number"])
    assert {"kind": "reopened_from", "case": cases[0]["number"]} in detail["links"]
    assert len(smtp.wait_for(2)) == 2


def test_bounce_of_our_acknowledgement_marks_contact(site, dovecot, smtp, capsys):
    user = site["user"]
    deliver(dovecot, user, mail("Hello", "hi", sender="gone@nowhere.example", message_id="h1"))
    run(site["config"], "run", "--once", capsys=capsys)
    ack = smtp.wait_for(1)[0].message
    dsn = (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: support@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@nowhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {ack['Message-ID']}\r\n"
        f"Subject: {ack['Subject']}\r\n\r\n--B--\r\n").encode()
    deliver(dovecot, user, dsn)
    # The same person writes again: a new case, but no acknowledgement to a dead address.
    deliver(dovecot, user, mail("Another thing", "hi again", sender="gone@nowhere.example", message_id="h2"))
    run(site["config"], "run", "--once", capsys=capsys)
    messages = run_json(site["config"], capsys, "messages", "list")
    assert [m["disposition"] for m in messages] == ["new_case", "bounce", "new_case"]
    assert messages[1]["case"] == messages[0]["case"]
    events = run_json(site["config"], capsys, "cases", "show", messages[0]["case"])["events"]
    assert any(e["kind"] == "bounce" and "gone@nowhere.example" in e["detail"] for e in events)
    second = run_json(site["config"], capsys, "cases", "show", messages[2]["case"])["events"]
    assert any(e["kind"] == "mail_suppressed" for e in second)
    assert len(smtp.messages) == 1


def test_per_address_limit_on_automatic_mail(site, dovecot, smtp, capsys):
    user = site["user"]
    for n in range(7):
        deliver(dovecot, user, mail(f"Separate question {n}", f"question number {n}", message_id=f"lim{n}"))
    run(site["config"], "run", "--once", now="2026-11-26T09:30:00+00:00", capsys=capsys)
    assert len(run_json(site["config"], capsys, "cases", "list")) == 7
    assert len(smtp.wait_for(5)) == 5
    last = run_json(site["config"], capsys, "cases", "show", 7)
    assert any(e["kind"] == "mail_suppressed" for e in last["events"])
