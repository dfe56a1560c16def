"""Screening: real sample mails in, the right kind (and bounce details) out."""

from __future__ import annotations

import email
import email.policy
import re
import types
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import flufl.bounce
import pytest

import mailproc.config
from mailproc.clock import Clock
from mailproc.context import Context
from mailproc.errors import ConfigError
from mailproc.models import Message
from mailproc.parse import parse
from mailproc.rawstore import RawStore
from mailproc.rules.screening import KINDS, load_screening
from mailproc.stages import Work, screen
from mailproc.testing import REPO

MAIL = Path(__file__).parent / "mail"
RULES = load_screening(REPO / "rules" / "screening.toml")


@pytest.fixture
def make_work(make_config, tmp_path):
    config = mailproc.config.load(make_config(mailboxes=[dict(
        name="support", host="127.0.0.1", port=143, username="u", password="p", address="support@example.com")]))
    ctx = Context(config=config, rules=types.SimpleNamespace(screening=RULES), templates=None, clock=Clock(),
                  raw=RawStore(tmp_path))

    def make(raw: bytes) -> Work:
        mail = parse(raw)
        message = Message(raw_sha256="0" * 64, size=len(raw), source="ingest", message_id=mail.message_id)
        return Work(ctx=ctx, message=message, mail=mail, raw=raw, now=datetime.now(timezone.utc), mailbox=None)
    return make


def screened(make_work, raw: bytes) -> Work:
    work = make_work(raw)
    screen.run(work)
    return work


def mail(subject="Question", headers="", sender="alice@acme.example", body="Hello") -> bytes:
    return (f"From: {sender}\nTo: support@example.com\nSubject: {subject}\nMessage-ID: <q@acme.example>\n"
            f"{headers}\n{body}\n").encode()


@pytest.mark.parametrize("name, kind, rule", [
    ("plain.eml", None, None),
    ("html_only.eml", None, None),
    ("alternative_attachments.eml", None, None),
    ("latin1.eml", None, None),
    ("rfc2047.eml", None, None),
    ("bounce_postfix.eml", "bounce", "report:delivery-status"),
    ("bounce_exchange.eml", "bounce", "report:delivery-status"),
    ("bounce_gmail.eml", "bounce", "report:delivery-status"),
    ("bounce_exim.eml", "bounce", "mailer-daemon"),
    ("oof_exchange.eml", "auto_reply", "auto-submitted"),
    ("oof_german.eml", "auto_reply", "vacation-subject"),
    ("oof_portuguese.eml", "auto_reply", "vacation-subject"),
    ("oof_chinese.eml", "auto_reply", "vacation-subject"),
    ("list_mail.eml", "bulk", "precedence-bulk"),
    ("newsletter.eml", "bulk", "list-unsubscribe"),
    ("spam.eml", "rejected", "spam-flag"),
])
def test_sample_mails(make_work, name, kind, rule):
    work = screened(make_work, (MAIL / name).read_bytes())
    assert work.screen == kind
    assert work.trace == ([f"screen:{rule}"] if rule else [])
    assert (work.bounce is not None) == (kind == "bounce")


@pytest.mark.parametrize("subject", [
    "Out of Office: Ihre Anfrage", "Automatic reply: [Case #3] Hello", "Auto-Reply: hi", "Out of office",
    "Automatische Antwort: Rechnung", "Réponse automatique : absence", "Respuesta automática: Pedido",
    "Ausência temporária", "Risposta automatica: richiesta", "Afwezigheidsbericht: vraag",
    "Automatiskt svar: fråga", "自動応答：お問い合わせ", "自动回复: 问题", "Abwesenheitsnotiz",
])
def test_vacation_subjects_in_many_languages(make_work, subject):
    work = screened(make_work, mail(subject=subject))
    assert (work.screen, work.trace) == ("auto_reply", ["screen:vacation-subject"])


@pytest.mark.parametrize("subject", [
    "Out of office feature does not work", "Re: Automatic reply settings", "Fwd: Undelivered Mail Returned to Sender",
    "Question about the auto reply limit", "Returned goods",
])
def test_customer_subjects_that_only_look_automatic_are_normal(make_work, subject):
    assert screened(make_work, mail(subject=subject)).screen is None


@pytest.mark.parametrize("headers, kind, rule", [
    ("X-Mailproc-Loop: mailproc\n", "loop", "loop-header"),
    ("Auto-Submitted: auto-generated\n", "auto_reply", "auto-submitted"),
    ("Auto-Submitted: no\n", None, None),
    ("X-Auto-Response-Suppress: All\n", None, None),
    ("X-Autoreply: yes\n", "auto_reply", "x-autoreply"),
    ("X-Autorespond: Vacation\n", "auto_reply", "x-autorespond"),
    ("Precedence: auto_reply\n", "auto_reply", "precedence-auto-reply"),
    ("Precedence: bulk\n", "bulk", "precedence-bulk"),
    ("Precedence: junk\n", "bulk", "precedence-bulk"),
    ("List-Id: <x.lists.example>\n", "bulk", "list-id"),
    ("X-Mailing-List: users@lists.example\n", "bulk", "x-mailing-list"),
    ("X-Spam-Flag: YES\n", "rejected", "spam-flag"),
    ("X-Spam-Flag: NO\n", None, None),
    # order: a bounce is also auto-submitted, an auto-reply may come through a list
    ("Auto-Submitted: auto-replied\nList-Id: <x.lists.example>\n", "auto_reply", "auto-submitted"),
    ("X-Mailproc-Loop: mailproc\nX-Spam-Flag: YES\n", "loop", "loop-header"),
])
def test_header_rules_and_their_order(make_work, headers, kind, rule):
    work = screened(make_work, mail(headers=headers))
    assert work.screen == kind
    assert work.trace == ([f"screen:{rule}"] if rule else [])


def test_an_earlier_verdict_is_kept(make_work):
    work = make_work((MAIL / "newsletter.eml").read_bytes())
    work.screen = "rejected"
    screen.run(work)
    assert (work.screen, work.trace) == ("rejected", [])


def test_loop_header_of_another_instance_is_not_ours(make_work):
    assert screened(make_work, mail(headers="X-Mailproc-Loop: other-install\n")).screen is None


def test_mail_from_our_own_mailbox_is_a_loop(make_work):
    work = screened(make_work, mail(sender="Support <Support@Example.com>"))
    assert (work.screen, work.trace) == ("loop", ["screen:from-our-address"])


def test_empty_return_path_with_a_bounce_like_subject_is_a_bounce(make_work):
    work = screened(make_work, mail(subject="Delivery report for your message", headers="Return-Path: <>\n"))
    assert (work.screen, work.trace) == ("bounce", ["screen:empty-return-path"])


@pytest.mark.parametrize("subject, return_path", [
    ("Mail", "<>"), ("=?UTF-8?B?44Oh44O844Or?=", "<>"), ("Monthly report", "< >"), ("Hello", "<MAILER-DAEMON>"),
    ("Notice", "<MAILER-DAEMON@mx.example.jp>"),
])
def test_null_reverse_path_is_automatic_whatever_the_subject(make_work, subject, return_path):
    """RFC 5321 4.5.5: the null reverse path is for mail that must not be answered."""
    work = screened(make_work, mail(subject=subject, headers=f"Return-Path: {return_path}\n"))
    assert (work.screen, work.trace) == ("auto_reply", ["screen:null-reverse-path"])


def test_ordinary_return_path_is_not_a_sign(make_work):
    assert screened(make_work, mail(subject="Mail", headers="Return-Path: <alice@acme.example>\n")).screen is None


@pytest.mark.parametrize("subject", [
    "Undelivered Mail Returned to Sender", "Delivery Status Notification (Failure)",
    "Mail delivery failed: returning message to sender", "Returned mail: see transcript",
    "Unzustellbar: Ihre Anfrage", "Non remis : votre demande",
])
def test_bounce_subjects(make_work, subject):
    work = screened(make_work, mail(subject=subject))
    assert (work.screen, work.trace) == ("bounce", ["screen:bounce-subject"])


def test_postfix_dsn(make_work):
    bounce = screened(make_work, (MAIL / "bounce_postfix.eml").read_bytes()).bounce
    assert bounce.recipients == ["nobody@customer.example"]
    assert bounce.original_message_id == "case42.ack.1@mailproc.example.com"
    assert bounce.permanent is True
    assert bounce.reason.startswith("550 5.1.1 <nobody@customer.example>: Recipient address rejected")


def test_exchange_ndr_with_rfc822_headers(make_work):
    bounce = screened(make_work, (MAIL / "bounce_exchange.eml").read_bytes()).bounce
    assert bounce.recipients == ["gone.user@contoso.example"]
    assert bounce.original_message_id == "case42.update.2@mailproc.example.com"
    assert bounce.permanent is True and "RecipientNotFound" in bounce.reason


def test_gmail_delay_is_not_permanent(make_work):
    bounce = screened(make_work, (MAIL / "bounce_gmail.eml").read_bytes()).bounce
    assert bounce.recipients == ["slow.server@busy.example"]
    assert bounce.original_message_id == "case9.ack.1@mailproc.example.com"
    assert bounce.permanent is False
    assert "did not accept" in bounce.reason


def test_exim_plain_text_bounce(make_work):
    bounce = screened(make_work, (MAIL / "bounce_exim.eml").read_bytes()).bounce
    assert bounce.recipients == ["lost@faraway.example"]
    assert bounce.original_message_id == "case7.reminder.3@mailproc.example.com"
    assert bounce.permanent is True and "550 5.1.1 No such user here" in bounce.reason


def test_plain_bounce_with_angle_address_lines_and_temporary_failure(make_work):
    body = ("Hi. This is the qmail-send program at mx.example.org.\n"
            "I'm not going to try again; this message has been in the queue too long.\n\n"
            "<a@one.example>:\nConnected to 192.0.2.1 but greeting failed.\n"
            "Remote host said: 421 4.3.2 Service not available, try later\n\n"
            "<b@two.example>:\nSorry, I couldn't find any host named two.example. (#5.1.2)\n\n"
            "--- Below this line is a copy of the message.\n\nMessage-ID: <orig-9@mailproc.example.com>\n")
    raw = mail(subject="failure notice", sender="MAILER-DAEMON@mx.example.org", body=body)
    work = screened(make_work, raw)
    assert work.screen == "bounce"
    assert work.bounce.recipients == ["a@one.example", "b@two.example"]
    assert work.bounce.original_message_id == "orig-9@mailproc.example.com"
    assert work.bounce.reason.startswith("421 4.3.2")
    assert work.bounce.permanent is False


def test_bounce_of_unparseable_structure_still_gives_a_bounce(make_work):
    raw = mail(subject="Undelivered Mail Returned to Sender", sender="MAILER-DAEMON@x.example", body="")
    work = screened(make_work, raw)
    assert work.screen == "bounce"
    assert (work.bounce.recipients, work.bounce.original_message_id) == ([], None)


def test_screening_never_touches_the_database(make_work):
    # no database is bound in this module: a query would raise
    work = screened(make_work, (MAIL / "bounce_postfix.eml").read_bytes())
    assert work.case is None and work.disposition is None


# --- rule file -----------------------------------------------------------------------

def test_repository_rules_load_in_order():
    kinds = [r.kind for r in RULES.rules]
    assert kinds == sorted(kinds, key=KINDS.index)
    assert len({r.name for r in RULES.rules}) == len(RULES.rules)


@pytest.mark.parametrize("text, line, words", [
    ('[[bounce]]\nname = "a"\nheader = "X"\n\n[[bounce]]\nname = "b"\npattern = "("\nheader = "Y"\n', "line 7",
     "bad regular expression"),
    ('[[bulk]]\nname = "a"\nheader = "X"\n[[bulk]]\nname = "b"\nheaders = "Y"\n', "line 4", "unknown key 'headers'"),
    ('[[bulk]]\nheader = "X"\n', "line 1", "needs a name"),
    ('[[bulk]]\nname = "a"\n', "line 1", "no condition"),
    ('[[spam]]\nname = "a"\nheader = "X"\n', "line 1", "unknown section [[spam]]"),
    ('[[bulk]]\nname = "a"\nheader = "X"\n[[rejected]]\nname = "a"\nheader = "Y"\n', "line 4", "used twice"),
    ('[[bulk]]\nname = "a"\npattern = "x"\n', "line 1", "need a header"),
    ('[[bulk]\nname = "a"\n', "line 1", "TOML syntax error"),
])
def test_rule_errors_name_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "screening.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_screening(path)
    assert str(path) in str(err.value) and line in str(err.value) and words in str(err.value)


def test_edited_rule_file_takes_effect(tmp_path, make_work):
    path = tmp_path / "screening.toml"
    path.write_text('[[bulk]]\nname = "crm-digest"\nheader = "X-Crm"\npattern = \'^digest$\'\n'
                    'subject = [\'^weekly\']\n', encoding="utf-8")
    rules = load_screening(path)
    assert screen.match(rules, parse(mail("Weekly numbers", "X-Crm: Digest\n")), instance="mailproc",
                        ours=frozenset()).name == "crm-digest"
    assert screen.match(rules, parse(mail("Other", "X-Crm: digest\n")), instance="m", ours=frozenset()) is None
    assert screen.match(rules, parse(mail("Weekly", "X-Crm: daily\n")), instance="m", ours=frozenset()) is None


# --- reports, detectors, null reverse path, people who forward bounces ----------------

def report(report_type: str | None, second_part: str, sender="reader@customer.example",
           subject="Report", headers="") -> bytes:
    param = f"; report-type={report_type}" if report_type else ""
    return (f"From: {sender}\nTo: support@example.com\nSubject: {subject}\nMessage-ID: <r@customer.example>\n"
            f"{headers}MIME-Version: 1.0\nContent-Type: multipart/report{param}; boundary=\"b\"\n\n"
            f"--b\nContent-Type: text/plain\n\nA report.\n\n--b\n{second_part}\n--b--\n").encode()


DSN_PART = ("Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
            "Final-Recipient: rfc822; gone@customer.example\nAction: failed\nStatus: 5.1.1\n")


@pytest.mark.parametrize("report_type, part, kind", [
    ("delivery-status", DSN_PART, "bounce"),
    ("feedback-report", "Content-Type: message/feedback-report\n\nFeedback-Type: abuse\nVersion: 1\n", "auto_reply"),
    ('"disposition-notification"', "Content-Type: message/disposition-notification\n\n"
     "Final-Recipient: rfc822; reader@customer.example\nDisposition: manual-action/MDN-sent-manually; displayed\n",
     "auto_reply"),
    ("tlsrpt", "Content-Type: application/tlsrpt+json\n\n{}\n", "auto_reply"),
])
def test_any_multipart_report_is_automatic_and_its_type_says_which_kind(make_work, report_type, part, kind):
    """A report needs no rule: a read receipt from a person's own address is still no question."""
    work = screened(make_work, report(report_type, part, subject="Read: [Case #3] Your request"))
    assert (work.screen, work.trace) == (kind, [f"screen:report:{report_type.strip(chr(34))}"])
    assert (work.bounce is not None) == (kind == "bounce")


def test_report_without_report_type_is_a_bounce_when_it_holds_a_delivery_status(make_work):
    work = screened(make_work, report(None, DSN_PART))
    assert (work.screen, work.trace) == ("bounce", ["screen:report:delivery-status"])
    assert work.bounce.recipients == ["gone@customer.example"]
    assert screened(make_work, report(None, "Content-Type: text/plain\n\nx\n")).trace == ["screen:report:unknown"]


QMAIL_BODY = ("Hi. This is the qmail-send program at mx.example.jp.\n"
              "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
              "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
              "<gone@customer.example>:\n192.0.2.7 does not like recipient.\n"
              "Remote host said: 550 5.1.1 <gone@customer.example>... User unknown\nGiving up on 192.0.2.7.\n\n"
              "--- Below this line is a copy of the message.\n\nMessage-ID: <ack-7@example.com>\n")


def test_mailman_detectors_find_a_bounce_with_a_null_reverse_path_that_no_rule_knows(make_work):
    # Subject "Mail" in Japanese, an ordinary-looking sender: no rule calls it a bounce.
    raw = mail(subject="=?UTF-8?B?44Oh44O844Or?=", sender="system@mx.example.jp", body=QMAIL_BODY,
               headers="Return-Path: <>\n")
    work = screened(make_work, raw)
    assert (work.screen, work.trace) == ("bounce", ["screen:flufl.bounce"])
    assert work.bounce.recipients == ["gone@customer.example"] and work.bounce.permanent is True
    assert work.bounce.original_message_id == "ack-7@example.com"


def test_mailman_detectors_never_judge_a_person(make_work):
    """The same bounce text in a person's question: the detectors would call it a bounce."""
    raw = mail(subject="Our mails to you come back", body="Hello, we get this every time:\n\n" + QMAIL_BODY,
               headers="Return-Path: <alice@acme.example>\n")
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert flufl.bounce.all_failures(message)[1]  # they do see one
    assert screened(make_work, raw).screen is None


@pytest.mark.parametrize("subject", [
    "Fwd: Returned mail: see transcript for details", "FW: Undelivered Mail Returned to Sender",
    "Fwd: Delivery Status Notification (Failure)", "WG: Unzustellbar: Rechnung", "Fwd: Abuse Report",
    "Fw: AWS Notification Message",
])
def test_a_person_forwarding_a_bounce_inline_is_a_person(make_work, subject):
    body = "Can you look at this?\n\n---------- Forwarded message ---------\n" + QMAIL_BODY
    assert screened(make_work, mail(subject=subject, body=body,
                                    headers="Return-Path: <alice@acme.example>\n")).screen is None


def test_a_person_forwarding_a_bounce_as_attachment_is_a_person(make_work):
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "alice@acme.example", "support@example.com", "Fwd: failure"
    outer.set_content("What does this mean?")
    outer.add_attachment(email.message_from_bytes((MAIL / "bounce_postfix.eml").read_bytes(),
                                                  policy=email.policy.compat32))
    assert screened(make_work, outer.as_bytes()).screen is None


def test_sender_less_bounce_is_screened(make_work):
    raw = (MAIL / "bounce_postfix.eml").read_bytes()
    raw = re.sub(rb"(?m)^From: .*\n", b"From: <>\n", raw, count=1)
    work = screened(make_work, raw)
    assert work.mail.from_addr == "" and work.screen == "bounce"
    assert work.bounce.recipients == ["nobody@customer.example"]


SES_BOUNCE = ('{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":'
              '[{"emailAddress":"Gone@Customer.example","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user '
              'unknown"}]},"mail":{"messageId":"0101","headers":[{"name":"Message-ID","value":'
              '"<ack-9@example.com>"}]}}')


def test_amazon_ses_bounce_through_sns(make_work):
    work = screened(make_work, mail(subject="AWS Notification Message", sender="no-reply@sns.amazonaws.com",
                                    body=SES_BOUNCE))
    assert (work.screen, work.trace) == ("bounce", ["screen:amazon-ses-bounce"])
    assert work.bounce.recipients == ["gone@customer.example"] and work.bounce.permanent is True
    assert work.bounce.original_message_id == "ack-9@example.com" and "550 5.1.1" in work.bounce.reason


def test_other_sns_notifications_are_automatic(make_work):
    work = screened(make_work, mail(subject="AWS Notification Message", sender="no-reply@sns.amazonaws.com",
                                    body='{"notificationType":"Complaint","complaint":{}}'))
    assert (work.screen, work.trace) == ("auto_reply", ["screen:amazon-sns-notification"])


@pytest.mark.parametrize("subject, sender, rule", [
    ("Abuse Report", "postmaster-reports@isp.example", "feedback-loop-subject"),
    ("Terra Abuse Report", "reports@isp.example", "feedback-loop-subject"),
    ("Email Feedback Report for IP 192.0.2.1", "reports@isp.example", "feedback-loop-subject"),
    ("FW: complaint", "staff@hotmail.com", "feedback-loop-sender"),
    ("FW: Spam", "scomp@aol.net", "feedback-loop-sender"),
    ("Report Domain: example.com Submitter: google.com Report-ID: 123", "noreply-dmarc-support@google.com",
     "dmarc-aggregate-report"),
    ("Loop Alert: Duplicated Message-ID (2ndml ML)", "2ndml-admin@example.com", "list-software-notice"),
    ("You are not member (2ndml ML)", "fml@lists.example.jp", "list-software-notice"),
    ("RE: Your message to GPC-talk awaits moderator approval", "it@corp.example", "list-software-notice"),
    ("Ppp digest, Vol 1 #2", "ppp-request@zzz.example", "list-software-sender"),
])
def test_feedback_loops_dmarc_and_list_software(make_work, subject, sender, rule):
    work = screened(make_work, mail(subject=subject, sender=sender))
    assert (work.screen, work.trace) == ("auto_reply", [f"screen:{rule}"])


@pytest.mark.parametrize("subject", ["Abuse Report from our provider?", "Fwd: Abuse Report",
                                     "Question about the DMARC report domain setting"])
def test_people_asking_about_reports_are_people(make_work, subject):
    assert screened(make_work, mail(subject=subject)).screen is None


def test_body_condition_and_its_limits(tmp_path):
    path = tmp_path / "screening.toml"
    path.write_text('[[auto_reply]]\nname = "crm"\nfrom = \'@crm\\.example$\'\nbody = [\'^Automated notice\']\n',
                    encoding="utf-8")
    rules = load_screening(path)
    match = screen.match(rules, parse(mail("Hi", sender="bot@crm.example", body="Automated notice: x")),
                         instance="m", ours=frozenset())
    assert match.name == "crm"
    assert screen.match(rules, parse(mail("Hi", sender="bot@crm.example", body="Hello")), instance="m",
                        ours=frozenset()) is None
    path.write_text('[[auto_reply]]\nname = "any"\nbody = [\'notice\']\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="no condition on header, from or subject"):
        load_screening(path)
    path.write_text('[[bounce]]\nname = "flufl.bounce"\nheader = "X"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="built-in check"):
        load_screening(path)


def test_report_of_no_stated_type_is_a_bounce_when_the_detectors_find_one(make_work):
    raw = report(None, "Content-Type: text/plain\n\n" + QMAIL_BODY, sender="postmaster@mx.example.jp")
    work = screened(make_work, raw)
    assert (work.screen, work.trace) == ("bounce", ["screen:flufl.bounce"])
    assert work.bounce.recipients == ["gone@customer.example"]
