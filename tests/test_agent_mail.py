"""An agent's command mail, end to end: the customer's mail opens a case through Dovecot,
the agent's mail with commands comes into the same inbox, the case changes (or, refused,
does not) and the agent's transcript or explanation goes out through aiosmtpd; on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailproc import authz, cli, db, tokens
from mailproc.config import load
from mailproc.models import Case, Event, Message, Outbox

from helpers import T0, mail, run_once

SECRET = "k" * 40
ANA, BOB = "ana@agents.example", "bob@agents.example"
TRUSTED = "mx.example.com"
PASS = f"{TRUSTED}; dmarc=pass header.from=agents.example"
ALWAYS = "Mon-Sun 00:00-24:00"


class Desk:
    """A support mailbox with agents ana and bob, and one customer case (#1)."""

    def __init__(self, dovecot, imap_user, smtp, make_config, db_url):
        self.dovecot, self.user, self.smtp = dovecot, imap_user[0], smtp
        box = dict(name="support", host=dovecot.host, port=dovecot.port, username=imap_user[0],
                   password=imap_user[1], address="support@example.com")
        self.config = make_config(database=db_url, mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port),
                                  extra={"secret": SECRET})
        self.config.write_text(self.config.read_text() + "".join(
            f"\n[agent:{name}]\naddress = {name}@agents.example\nteams = Support Team\nhours = {ALWAYS}\n"
            for name in ("ana", "bob")) + f"\n[auth]\nauthserv_id = {TRUSTED}\n")
        self.now = T0
        self.deliver(mail("Cannot log in", "The login page says my password is wrong.",
                          sender="Cus <cus@shop.example>", message_id="customer-1"))
        self.case = 1
        self.smtp.reset()

    def deliver(self, raw: bytes) -> None:
        self.now += timedelta(minutes=5)
        self.dovecot.append(self.user, raw, internaldate=self.now)
        run_once(self.config, self.now + timedelta(minutes=1))

    def agent_mail(self, commands: str, *, sender=ANA, headers=None, body="", case=None, message_id=None) -> None:
        number = self.case if case is None else case
        self.deliver(mail(f"Re: [Case #{number}] Cannot log in {commands}", body or "Done, see commands.",
                          sender=sender, headers=headers, message_id=message_id or f"agent-{self.now:%H%M}"))

    def token_id(self, case=1, agent="ana", made=None) -> str:
        token = tokens.make(case, agent, made or self.now, SECRET.encode())
        return f"<{tokens.message_id(token, 'example.com', 'n1')}>"

    def state(self) -> tuple:
        db.open_database(load(self.config).database)
        case = Case.get_by_id(self.case)
        fields = (case.status, case.priority, case.assignee.handle if case.assignee else None, case.tags)
        changes = Event.select().where((Event.case == self.case) & Event.rule.startswith("command:")).count()
        return fields, changes

    def outgoing(self, kind: str) -> list[Outbox]:
        db.open_database(load(self.config).database)
        return list(Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id))

    def received(self, address: str, kind: str):
        """The mail of `kind` delivered to `address` (waits for the sender)."""
        [row] = self.outgoing(kind)
        assert row.recipients == [address]
        for count in range(1, 20):
            got = [m for m in self.smtp.wait_for(count) if m.message["Message-ID"].strip("<>") == row.message_id]
            if got:
                assert got[0].rcpt_tos == [address]
                return got[0]
        raise AssertionError(f"{kind} mail {row.message_id} not delivered")


def text_of(received) -> str:
    return received.message.get_body(("plain",)).get_content()


@pytest.fixture
def desk(dovecot, imap_user, smtp, make_config, db_url):
    return Desk(dovecot, imap_user, smtp, make_config, db_url)


@pytest.fixture
def sqlite_desk(dovecot, imap_user, smtp, make_config, sqlite_url):
    """Authorisation reads no database: its refusals are tested on SQLite alone (the
    rollback of refused commands is tested on both above)."""
    return Desk(dovecot, imap_user, smtp, make_config, sqlite_url)


# --- authorised -------------------------------------------------------------------------


def test_agent_commands_change_the_case_and_the_agent_gets_the_transcript(desk):
    before, _ = desk.state()
    desk.agent_mail("[status=waiting priority=P2 assign=bob]", headers={"Authentication-Results": PASS})
    (status, priority, assignee, _), changes = desk.state()
    assert (status, priority, assignee, changes) == ("waiting", "P2", "bob", 3)
    events = Event.select().where(Event.case == 1, Event.rule.startswith("command:")).order_by(Event.id)
    assert [(e.field, e.actor, e.rule) for e in events] == [
        ("status", ANA, "command:status"), ("priority", ANA, "command:priority"), ("assignee", ANA, "command:assign")]
    message = Message.get(Message.message_id.startswith("agent-"))
    assert message.disposition == "command" and message.case_id == 1
    assert all(e.message_id == message.id for e in events)
    transcript = desk.received(ANA, "transcript")
    text = text_of(transcript)
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("*")]
    assert lines == [f"* status=waiting: status: {before[0]} \u2192 waiting",
                     f"* priority=P2: priority: {before[1]} \u2192 P2",
                     f"* assign=bob: assignee: {before[2] or '(none)'} \u2192 bob"]
    subject = transcript.message["Subject"]
    assert "[Case #1]" in subject and "status=" not in subject


def test_a_reply_token_of_the_agent_for_the_case_authorises(desk):
    desk.agent_mail("[resolve note]", headers={"In-Reply-To": desk.token_id()}, body="Reset the password by hand.")
    # resolved, and at once (the same run's sweep) the customer told and the case Pending Closure
    assert desk.state()[0][0] == "pending_closure"
    assert Event.get((Event.case == 1) & (Event.rule == "command:resolve")).new == "resolved"
    note = Event.get((Event.case == 1) & (Event.kind == "note"))
    assert note.detail == "Reset the password by hand." and note.actor == ANA
    assert desk.outgoing("transcript") and not desk.outgoing("refusal")
    # an internal note is never mailed to the customer
    assert not [o for o in Outbox.select() if "Reset the password" in bytes(o.raw).decode("utf-8", "replace")
                and o.to_addr == "cus@shop.example"]


def test_help_mails_the_command_reference(desk):
    desk.agent_mail("[help]", headers={"Authentication-Results": PASS})
    text = text_of(desk.received(ANA, "transcript"))
    assert "status=STATUS" in text and "time=1.5h [tag=NAME]" in text and "known=ID-short-name" in text


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("commands, words", [
    ("[status=resolved prority=P2]", "unknown command 'prority' (did you mean 'priority'?)"),
    ("[status=resolvd priority=P2]", "status=resolvd: refused: unknown status 'resolvd' (did you mean 'resolved'?)"),
    ("[status=resolved assign=carol]", "assign=carol: refused: unknown agent 'carol'"),
    ("[priority=P2 needby=2026-02-30]", "needby=2026-02-30: refused: needby: '2026-02-30' is not a date"),
])
def test_an_unknown_verb_or_a_bad_value_changes_nothing_and_says_why(desk, commands, words):
    before = desk.state()
    desk.agent_mail(commands, headers={"Authentication-Results": PASS})
    assert desk.state() == before
    text = " ".join(text_of(desk.received(ANA, "transcript")).split())
    assert "Nothing was changed on case #1" in text and words in text


def test_a_command_mail_for_a_case_that_does_not_exist_gets_an_error(desk):
    desk.agent_mail("[resolve]", case=999, headers={"Authentication-Results": PASS})
    text = " ".join(text_of(desk.received(ANA, "refusal")).split())
    assert "no such case" in text and "there is no case #999" in text
    assert Message.get(Message.message_id.startswith("agent-")).disposition == "command"
    assert Case.select().count() == 1


def test_a_customers_command_group_is_an_ordinary_follow_up(desk):
    before = desk.state()
    desk.deliver(mail("Re: [Case #1] Cannot log in [status=closed priority=P1 assign=bob]", "Still broken.",
                      sender="Cus <cus@shop.example>", message_id="customer-2",
                      headers={"Authentication-Results": f"{TRUSTED}; dmarc=pass header.from=shop.example"}))
    assert desk.state()[1] == before[1] == 0
    assert desk.state()[0][1:3] == before[0][1:3]  # priority, assignee untouched
    assert Message.get(Message.message_id == "customer-2@test.example").disposition == "follow_up"
    assert not desk.outgoing("transcript") and not desk.outgoing("refusal")


# --- refused (SPEC §5, issue item 4) -------------------------------------------------------

def _refusals(desk):
    return {
        "forged From": dict(headers={"Authentication-Results": f"{TRUSTED}; dmarc=fail header.from=agents.example"}),
        "no proof": dict(),
        "token of another case": dict(headers={"In-Reply-To": desk.token_id(case=7)}),
        "token of another agent": dict(headers={"In-Reply-To": desk.token_id(agent="bob")}),
        "altered token": dict(headers={"In-Reply-To": _altered(desk.token_id())}),
        "expired token": dict(headers={"In-Reply-To": desk.token_id(made=T0 - timedelta(days=120))}),
        "Authentication-Results from another server": dict(
            headers={"Authentication-Results": "mx.elsewhere.example; dmarc=pass header.from=agents.example"}),
        "trusted header not topmost": dict(raw_headers=[
            "Authentication-Results: mx.elsewhere.example; spf=none",
            f"Authentication-Results: {PASS}"]),
        "two From addresses": dict(sender=f"{ANA}, mallory@evil.example",
                                   headers={"Authentication-Results": PASS}),
    }


def _altered(message_id: str) -> str:
    token = message_id[4:30]
    flipped = token[:5] + ("a" if token[5] != "a" else "b") + token[6:]
    return message_id.replace(token, flipped)


REASONS = {"forged From": authz.FORGED_FROM, "no proof": authz.NO_PROOF, "token of another case": authz.OTHER_CASE,
           "token of another agent": authz.OTHER_AGENT, "altered token": authz.ALTERED_TOKEN,
           "expired token": authz.EXPIRED_TOKEN, "Authentication-Results from another server": authz.OTHER_SERVER,
           "trusted header not topmost": authz.NOT_TOPMOST, "two From addresses": authz.TWO_FROM}


@pytest.mark.parametrize("refusal", list(REASONS))
def test_a_refused_mail_changes_nothing_is_kept_and_the_agent_is_told_why(sqlite_desk, refusal):
    desk = sqlite_desk
    before = desk.state()
    how = _refusals(desk)[refusal]
    subject = "Re: [Case #1] Cannot log in [status=closed priority=P1 assign=bob]"
    if "raw_headers" in how:
        raw = mail(subject, "Done.", sender=ANA, message_id="agent-raw")
        raw = "\r\n".join(how["raw_headers"]).encode() + b"\r\n" + raw
        desk.deliver(raw)
    else:
        desk.agent_mail("[status=closed priority=P1 assign=bob]", **how)
    assert desk.state() == before
    comment = Event.get((Event.case == 1) & (Event.kind == "comment"))
    assert REASONS[refusal] in comment.detail and comment.message_id is not None
    assert subject in comment.detail
    explanation = desk.received(ANA, "refusal")  # the roster address, whatever the From said
    assert REASONS[refusal] in " ".join(text_of(explanation).split())
    assert not desk.outgoing("transcript")


@pytest.mark.parametrize("header", [("Auto-Submitted", "auto-replied"), ("Precedence", "bulk")])
def test_automatic_mail_never_commands_and_gets_no_answer(sqlite_desk, header):
    desk = sqlite_desk
    before = desk.state()
    desk.agent_mail("[status=closed priority=P1]", headers={"Authentication-Results": PASS, header[0]: header[1]})
    assert desk.state() == before
    assert not desk.outgoing("refusal") and not desk.outgoing("transcript")
    assert Event.select().where((Event.case == 1) & (Event.message.is_null(False))
                                & (Event.kind != "created")).count() >= 1  # kept on the case


def test_split_opens_a_linked_case_and_the_transcript_names_it(desk):
    desk.agent_mail("[split]", headers={"Authentication-Results": PASS},
                    body="The customer also cannot download invoices.")
    desk.state()
    new = Case.get_by_id(2)
    assert (new.contact, new.summary) == ("cus@shop.example", "The customer also cannot download invoices.")
    assert "new case #2 split from this one" in text_of(desk.received(ANA, "transcript"))


def test_cases_show_reports_time_logged_links_and_assignee(desk, capsys):
    import json
    desk.agent_mail("[time=1.5h tag=Meetings assign=bob]", headers={"Authentication-Results": PASS})
    capsys.readouterr()
    try:
        assert cli.main(["--config", str(desk.config), "cases", "show", "1", "--json"]) == 0
    finally:
        db.close()
    shown = json.loads(capsys.readouterr().out)
    assert shown["time_logged"]["hours"] == 1.5
    assert [(e["hours"], e["tag"], e["actor"]) for e in shown["time_logged"]["entries"]] == [(1.5, "Meetings", ANA)]
    assert shown["assignee_name"] == "bob" and shown["links"] == []
    assert {"actor", "kind", "field", "old", "new"} <= set(shown["events"][-1])
