"""Assignment and notifications, end to end: a customer's mail comes in through Dovecot,
the case goes to an agent, the agent's notification goes out through aiosmtpd."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import getaddresses
from zoneinfo import ZoneInfo

import pytest

from mailproc import db, tokens
from mailproc.clock import Clock
from mailproc.context import Context, load_context, roster_of
from mailproc.config import load
from mailproc.models import Case, Event, Outbox, Person
from mailproc.replytext import MARKER
from mailproc.rules import load_rules
from mailproc.stages import thread
from mailproc.subject import parse_commands
from mailproc.templates import when

from helpers import T0, mail, run_once

NY = ZoneInfo("America/New_York")
ALWAYS = "Mon-Sun 00:00-24:00"


def site(make_config, dovecot, imap_user, smtp, db_url, agents, teams=None):
    user, password = imap_user
    box = dict(name="support", host=dovecot.host, port=dovecot.port, username=user, password=password,
               address="support@example.com")
    return make_config(database=db_url, mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port),
                       agents=agents, teams=teams)


def to(messages, address):
    return [m for m in messages if address in m.rcpt_tos]


def body(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def open_db(config):
    cfg = load(config)
    db.open_database(cfg.database)
    return cfg


def test_customer_mail_assigns_and_notifies_then_follow_up_notifies_new_text(
        dovecot, imap_user, smtp, make_config, db_url):
    config = site(make_config, dovecot, imap_user, smtp, db_url, agents={
        # "Cannot export reports" is a bug (Dev Team), the invoice question a request (Support Team)
        "ana": dict(address="ana@agents.example", name="Ana Silva", teams="Support Team, Dev Team",
                    timezone="America/New_York", hours=ALWAYS),
        "bob": dict(address="bob@agents.example", teams="Support Team, Dev Team", hours=ALWAYS)})
    user = imap_user[0]
    dovecot.append(user, mail("Cannot export reports", "The export button does nothing.",
                              sender="Alice <alice@acme.example>", message_id="c1"), internaldate=T0)
    dovecot.append(user, mail("Invoice question", "Where is my invoice?", sender="carol@beta.example",
                              message_id="c2"), internaldate=T0 + timedelta(minutes=1))
    run_once(config, T0 + timedelta(minutes=2))
    sent = smtp.wait_for(4)  # two acknowledgements, two notifications
    cfg = open_db(config)
    first, second = Case.select().order_by(Case.id)
    # both at work, no open cases: by name; then the one with fewer open cases
    assert (first.assignee.handle, second.assignee.handle) == ("ana", "bob")
    assert first.decided_by["assignee"] == "assignment:available"
    assigned = Event.get((Event.case == first.id) & (Event.field == "assignee"))
    assert (assigned.rule, assigned.new, assigned.actor) == ("assignment:available", str(first.assignee_id),
                                                             "mailproc")
    assert first.assignee.last_assigned_at is not None

    [note] = to(sent, "ana@agents.example")
    assert len(to(sent, "bob@agents.example")) == 1
    headers = note.message
    assert getaddresses([headers["From"]])[0][1] == "support@example.com"
    assert headers["Auto-Submitted"] == "auto-generated"
    reply_to = getaddresses([headers["Reply-To"]])[0][1]
    token = re.fullmatch(r"support\+([a-z2-7]{26})@example\.com", reply_to).group(1)
    assert tokens.verify(token, T0 + timedelta(days=1), cfg.token_keys, ["bob", "ana"]) == \
        tokens.Verified(case=first.id, agent="ana")
    message_id = headers["Message-ID"].strip("<>")
    assert message_id.startswith(f"mp.{token}.") and message_id.endswith("@example.com")
    assert Outbox.get((Outbox.kind == "notification") & (Outbox.case == first.id)).message_id == message_id
    assert thread._case_of_message_id(message_id, None).id == first.id  # a reply to it threads to the case
    subject = headers["Subject"]
    assert f"[Case #{first.id}]" in subject and "Cannot export reports" in subject
    assert parse_commands(subject).commands == []
    text = body(note)
    assert text.splitlines()[0] == MARKER
    sla = load_rules(cfg.rules_dir, cfg.timezone).sla
    expected = sla.expected_response(first.priority, T0).astimezone(NY)
    assert when(expected) in text and ("EST" in text or "EDT" in text)
    assert "The export button does nothing." in text
    assert "[status=… priority=… " in text and "assign=…" in text and " resolve " in text
    db.close()

    # the customer answers the acknowledgement; the agent hears only what is new
    smtp.reset()
    dovecot.append(user, mail(f"Re: Cannot export reports [Case #{first.id}]",
                              "It fails in Firefox too.\n\nOn Thu, Alice wrote:\n> The export button does nothing.\n",
                              sender="Alice <alice@acme.example>", message_id="c3"),
                   internaldate=T0 + timedelta(hours=1))
    run_once(config, T0 + timedelta(hours=1, minutes=1))
    [again] = to(smtp.wait_for(1), "ana@agents.example")
    text = body(again)
    assert "It fails in Firefox too." in text and "The export button does nothing." not in text
    assert text.splitlines()[0] == MARKER
    assert again.message["Message-ID"] != note.message["Message-ID"]
    assert f"[Case #{first.id}]" in again.message["Subject"]
    open_db(config)
    assert Outbox.select().where(Outbox.kind == "notification").count() == 3


def test_nobody_at_work_goes_to_the_soonest_window(dovecot, imap_user, smtp, make_config, db_url):
    # T0 is Thursday 09:00 UTC; bob starts at 11:00, ana at 13:00
    config = site(make_config, dovecot, imap_user, smtp, db_url, agents={
        "ana": dict(address="ana@agents.example", teams="Support Team", hours="Mon-Fri 13:00-17:00"),
        "bob": dict(address="bob@agents.example", teams="Support Team", hours="Mon-Fri 11:00-12:00")})
    dovecot.append(imap_user[0], mail("Help", "Please help.", message_id="n1"), internaldate=T0)
    run_once(config, T0 + timedelta(minutes=1))
    [note] = to(smtp.wait_for(2), "bob@agents.example")
    open_db(config)
    case = Case.get()
    assert case.assignee.handle == "bob" and case.decided_by["assignee"] == "assignment:next-window"
    assert "Thursday 26 November 2026, 11:00 UTC" in body(note)


def test_team_without_agents_leaves_the_case_unassigned(dovecot, imap_user, smtp, make_config, db_url):
    config = site(make_config, dovecot, imap_user, smtp, db_url, agents={
        "dana": dict(address="dana@agents.example", teams="Dev Team", hours=ALWAYS)})
    dovecot.append(imap_user[0], mail("Help", "Please help.", message_id="u1"), internaldate=T0)
    run_once(config, T0 + timedelta(minutes=1))
    sent = smtp.wait_for(1)
    open_db(config)
    case = Case.get()
    assert case.assignee is None and case.team == "Support Team"
    assert Event.get((Event.case == case.id) & (Event.kind == "unassigned")).detail == "no agent in team Support Team"
    assert to(sent, "dana@agents.example") == [] and Outbox.select().where(Outbox.kind == "notification").count() == 0


@pytest.mark.parametrize("subject, name", [
    ("Help\r\n Bcc: evil@attacker.example", '"Mallory\r\n Bcc: evil@attacker.example"'),  # folded
    ("=?utf-8?q?Help=0D=0ABcc:_evil@attacker.example?=", "=?utf-8?q?Mallory=0D=0ABcc:_evil@attacker.example?="),
])
def test_line_breaks_in_subject_or_name_never_reach_a_notification_header(
        dovecot, imap_user, smtp, make_config, sqlite_url, subject, name):
    config = site(make_config, dovecot, imap_user, smtp, sqlite_url, agents={
        "ana": dict(address="ana@agents.example", teams="Support Team", hours=ALWAYS)})
    raw = (f"From: {name} <mallory@acme.example>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
           f"Message-ID: <h1@test.example>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\n\r\nhello\r\n").encode()
    dovecot.append(imap_user[0], raw, internaldate=T0)
    run_once(config, T0 + timedelta(minutes=1))
    [note] = to(smtp.wait_for(2), "ana@agents.example")
    head = note.data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(?im)^bcc:", head) and note.message["Bcc"] is None
    assert "attacker" not in " ".join(note.rcpt_tos)
    assert "\n" not in str(note.message["Subject"]) and "\r" not in str(note.message["Subject"])


def test_no_agents_no_notification_and_no_assignment_event(dovecot, imap_user, smtp, make_config, sqlite_url):
    config = site(make_config, dovecot, imap_user, smtp, sqlite_url, agents=None)
    dovecot.append(imap_user[0], mail("Help", "Please help.", message_id="z1"), internaldate=T0)
    run_once(config, T0 + timedelta(minutes=1))
    assert len(smtp.wait_for(1)) == 1
    open_db(config)
    assert Person.select().count() == 0
    assert Event.select().where(Event.kind == "unassigned").count() == 0
    assert [o.kind for o in Outbox.select()] == ["acknowledgement"]


def test_the_roster_is_built_once_per_context(make_config):
    config = load(make_config(agents={"ana": dict(address="ana@agents.example", teams="Support Team")}))
    ctx = load_context(config, Clock(T0))
    assert roster_of(ctx) is ctx.roster and [a.name for a in ctx.roster.agents] == ["ana"]
    by_hand = Context(config=config, rules=ctx.rules, templates=None, clock=Clock(T0), raw=None)
    assert roster_of(by_hand) is roster_of(by_hand) and roster_of(by_hand).agents == ctx.roster.agents
