"""Two processes on one message, and delivery reports that are not about our mail."""

from __future__ import annotations

from mailproc import db, pipeline
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.daemon import checked_context
from mailproc.models import Case, Contact, Message, Outbox
from mailproc.store import store_message

from helpers import mail

DSN = (b"From: MAILER-DAEMON@mx.example.com\r\nTo: support@example.com\r\n"
       b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <forged@mx.example.com>\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
       b"--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
       b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
       b"Final-Recipient: rfc822; ceo@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n")


def context(make_config, db_url):
    config = load(make_config(database=db_url, mailboxes=[dict(
        name="support", host="127.0.0.1", port=1, username="u", password="p", address="support@example.com")]))
    ctx = checked_context(config, Clock())
    db.open_database(config.database)
    return ctx


def test_a_message_taken_twice_makes_one_case(make_config, db_url):
    ctx = context(make_config, db_url)
    row = store_message(ctx, mail("Help", "please", message_id="twice"), source="deliver", mailbox="support")
    stale_copy = Message.get_by_id(row.id)  # what a second process read before the first committed
    assert pipeline.process(ctx, row) == "new_case"
    assert pipeline.process(ctx, stale_copy) == "skipped"
    assert Case.select().count() == 1 and Outbox.select().count() == 1
    assert Message.get_by_id(row.id).disposition == "new_case"


def test_forged_delivery_report_marks_nobody(make_config, db_url):
    ctx = context(make_config, db_url)
    row = store_message(ctx, DSN, source="deliver", mailbox="support")
    assert pipeline.process(ctx, row) == "bounce"
    contact = Contact.get_or_none(Contact.address == "ceo@customer.example")
    assert contact is None or not contact.undeliverable
    # ...so that customer's next mail is acknowledged as usual.
    row = store_message(ctx, mail("Question", "hello", sender="ceo@customer.example", message_id="q"),
                        source="deliver", mailbox="support")
    assert pipeline.process(ctx, row) == "new_case"
    assert Outbox.select().count() == 1
