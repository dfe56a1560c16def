"""An agent's answer relayed to the customer, end to end through Dovecot and aiosmtpd,
on SQLite and PostgreSQL: only the new text, from the support mailbox, on the case's
thread, as a person's answer; nothing for a commands-only reply, an internal note, a
refused mail, or an answer the customer already got directly."""

from __future__ import annotations

import pytest

from mailproc import db
from mailproc.config import load
from mailproc.models import Case, Event

from helpers import mail
from test_agent_mail import ANA, PASS, Desk, text_of

QUOTED = ("\n\nOn Thu, 26 Nov 2026 at 09:05, Cus <cus@shop.example> wrote:\n"
          "> The login page says my password is wrong.\n")


@pytest.fixture
def desk(dovecot, imap_user, smtp, make_config, db_url):
    return Desk(dovecot, imap_user, smtp, make_config, db_url)


def relayed(desk: Desk) -> list:
    return desk.outgoing("agent_reply")


def case_row(desk: Desk) -> Case:
    db.open_database(load(desk.config).database)
    return Case.get_by_id(desk.case)


def test_an_agents_answer_reaches_the_customer_without_the_quote(desk):
    desk.deliver(mail("Re: [Case #1] Cannot log in", "Please clear your browser's cache and try again.\n\n-- \nAna"
                      + QUOTED, sender=ANA, message_id="answer-1", headers={"In-Reply-To": desk.token_id()}))
    got = desk.received("cus@shop.example", "agent_reply")
    body = text_of(got)
    assert "Please clear your browser's cache and try again." in body
    assert "password is wrong" not in body and "wrote:" not in body
    assert got.message["Auto-Submitted"] is None  # a person's answer
    assert got.message["In-Reply-To"] == "<customer-1@test.example>"
    assert "[Case #1]" in got.message["Subject"] and got.message["From"] == "support@example.com"
    case = case_row(desk)
    assert case.first_response_at is not None and case.last_agent_at is not None
    assert Event.select().where(Event.case == 1, Event.kind == "agent_reply").count() == 1


def test_answer_and_commands_together(desk):
    desk.agent_mail("[pending]", body="Could you send us a screenshot?" + QUOTED,
                    headers={"Authentication-Results": PASS})
    assert text_of(desk.received("cus@shop.example", "agent_reply")).startswith("Could you send us a screenshot?")
    assert case_row(desk).status == "pending_input"
    assert len(desk.outgoing("transcript")) == 1


def test_commands_only_sends_nothing_to_the_customer(desk):
    desk.agent_mail("[priority=P2]", body=QUOTED.strip(), headers={"Authentication-Results": PASS})
    assert case_row(desk).priority == "P2"
    assert relayed(desk) == [] and len(desk.outgoing("transcript")) == 1


def test_an_internal_note_is_not_sent(desk):
    desk.agent_mail("[note]", body="Customer is on the legacy SSO; check with Dev.",
                    headers={"Authentication-Results": PASS})
    assert relayed(desk) == []
    assert Event.select().where(Event.case == 1, Event.detail.contains("legacy SSO")).count() >= 1


def test_a_refused_mail_relays_nothing(desk):
    desk.deliver(mail("Re: [Case #1] Cannot log in", "Your account is locked, click here." + QUOTED,
                      sender=ANA, message_id="forged-1"))  # no token, no trusted verdict
    assert relayed(desk) == []
    assert case_row(desk).first_response_at is None


def test_an_answer_sent_to_the_customer_directly_is_recorded_not_sent_again(desk):
    desk.deliver(mail("Re: [Case #1] Cannot log in", "I have reset your password." + QUOTED, sender=ANA,
                      to="cus@shop.example", message_id="direct-1",
                      headers={"Cc": "support@example.com", "Authentication-Results": PASS}))
    assert relayed(desk) == []
    [event] = Event.select().where(Event.case == 1, Event.kind == "agent_reply")
    assert "directly" in event.detail and "reset your password" in event.detail
    assert case_row(desk).first_response_at is not None


def test_a_reply_built_from_the_notification_runs_its_commands_and_reaches_the_customer(desk):
    """The whole round: the notification the agent received, answered in a mail client
    (quoted below, commands in the subject), back into the inbox."""
    import email
    import email.policy
    # a question (Support Team, where ana and bob work), so the case is assigned and notified
    desk.deliver(mail("How do I export a report?", "Where is the export button?", sender="cus@shop.example",
                      message_id="customer-2"))
    desk.case = 2
    [row] = [o for o in desk.outgoing("notification") if o.case_id == 2]
    note = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
    agent = row.recipients[0]
    quoted = "\n".join("> " + line for line in note.get_body(("plain",)).get_content().splitlines())
    desk.deliver(mail(f"Re: {note['Subject']} [pending]", "Could you send us a screenshot of the page?\n\n"
                      f"On Thu, 26 Nov 2026 at 09:06, Support <support@example.com> wrote:\n{quoted}\n",
                      sender=agent, to=note["Reply-To"], message_id="from-notification",
                      headers={"In-Reply-To": note["Message-ID"], "References": note["Message-ID"]}))
    assert case_row(desk).status == "pending_input"
    body = text_of(desk.received("cus@shop.example", "agent_reply"))
    assert body.startswith("Could you send us a screenshot of the page?")
    assert "Reply above this line" not in body and "Priority" not in body  # nothing of the notification
    [transcript] = desk.outgoing("transcript")
    assert transcript.recipients == [agent]


def test_a_case_handed_to_another_agent_is_announced_to_them(desk):
    import email
    import email.policy
    from mailproc import tokens
    from test_agent_mail import BOB, SECRET
    before = len(desk.outgoing("notification"))
    desk.agent_mail("[assign=bob]", body="Bob knows the SSO setup better.", headers={"Authentication-Results": PASS})
    rows = desk.outgoing("notification")[before:]
    assert [row.recipients for row in rows] == [[BOB]]
    note = email.message_from_bytes(bytes(rows[0].raw), policy=email.policy.default)
    text = note.get_body(("plain",)).get_content()
    assert "The login page says my password is wrong." in text  # the customer's words, not ana's
    assert "SSO setup" not in text
    token = note["Reply-To"].split("+", 1)[1].split("@", 1)[0]
    assert tokens.verify(token, desk.now, [SECRET.encode()], ["ana", "bob"]) == tokens.Verified(1, "bob")
    # handing a case to oneself announces nothing
    desk.agent_mail("[assign=me]", sender=BOB, headers={"Authentication-Results": PASS},
                    body="Taking it.")
    assert len(desk.outgoing("notification")) == before + 1


def test_merge_closes_the_duplicate_and_its_later_mail_lands_on_the_case_that_goes_on(desk):
    from mailproc.models import CaseLink, Message
    desk.deliver(mail("Login broken again", "Still cannot log in.", sender="cus@shop.example",
                      message_id="customer-dup"))
    desk.agent_mail("[merge=2]", body="", headers={"Authentication-Results": PASS})
    db.open_database(load(desk.config).database)
    assert Case.get_by_id(1).status == "closed"
    assert [(link.case_id, link.other_id, link.kind) for link in CaseLink.select()] == [(1, 2, "merged_into")]
    # the customer answers on the old thread: it lands on case 2, kept whole on case 1's history
    desk.deliver(mail("Re: [Case #1] Cannot log in", "Here is the screenshot.", sender="cus@shop.example",
                      message_id="customer-after-merge"))
    db.open_database(load(desk.config).database)
    later = Message.get(Message.message_id == "customer-after-merge@test.example")
    assert (later.case_id, later.disposition) == (2, "follow_up")
    assert Case.select().count() == 2 and Message.select().where(Message.case == 1).count() >= 2
    # the agent's reply token of case 1 still proves her answers, now on case 2
    desk.deliver(mail("Re: [Case #1] Cannot log in [priority=P3]", "Thanks, looking at it.", sender=ANA,
                      message_id="agent-after-merge", headers={"In-Reply-To": desk.token_id(case=1)}))
    db.open_database(load(desk.config).database)
    assert Case.get_by_id(2).priority == "P3"
