"""Generate N varied, realistic support mails, deterministically (seeded).

The mix: plain questions, HTML-only and multipart/alternative mails, mails with
attachments, several charsets (UTF-8, ISO-8859-1, GB2312), replies to earlier
mails, auto-replies, list mail and bounces — so a benchmark exercises every
path of the pipeline, not just the fastest one.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
COMPANIES = ["acme.example", "bigbank.example", "lojadigital.example", "freebie.example", "trialco.example",
             "shop.example", "agency.example", "school.example"]
SUBJECTS = [
    ("How do I export my report to PDF?", "I cannot find the export button in the Reports menu."),
    ("Checkout not working", "Since this morning our checkout is not working, customers see error 500."),
    ("Please upgrade our account", "We would like to upgrade to the paid plan with 12 licenses."),
    ("Feature request: dark mode", "It would be nice to have a dark mode. Could you add it?"),
    ("Cannot log in", "I get an error when I log in: invalid session. Tried two browsers."),
    ("Autenticação não está a funcionar", "Olá, a autenticação não está a funcionar desde ontem."),
    ("Invoice question", "Our invoice lists 30 licenses but we have 25, can you check?"),
    ("Emails not sending", "Notification e-mails are not sending since the last release."),
    ("Delete some data", "Please delete the test objectives we created last week."),
    ("Rückfrage zur Rechnung", "Können Sie die Rechnung für November erneut senden? Grüße"),
]


def _base(i: int, rng: random.Random, sender: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Customer {i} <{sender}>"
    msg["To"] = "support@bench.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(T0 + timedelta(seconds=i * 7))
    msg["Message-ID"] = f"<bench{i}.{rng.randrange(10**9)}@{sender.split('@')[1]}>"
    return msg


def generate(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    mails: list[bytes] = []
    ids: list[tuple[str, str, str]] = []
    for i in range(n):
        sender = f"user{rng.randrange(n // 3 + 1)}@{rng.choice(COMPANIES)}"
        subject, body = rng.choice(SUBJECTS)
        kind = rng.random()
        if kind < 0.08 and ids:  # a reply to an earlier mail
            mid, subj, to_sender = rng.choice(ids)
            msg = _base(i, rng, to_sender, f"Re: {subj}")
            msg["In-Reply-To"] = mid
            msg["References"] = mid
            msg.set_content(f"Any news on this?\n\n> {body}\n")
        elif kind < 0.12:  # auto-reply
            msg = _base(i, rng, sender, "Automatic reply: " + subject)
            msg["Auto-Submitted"] = "auto-replied"
            msg.set_content("I am out of the office until Monday.")
        elif kind < 0.15:  # list mail
            msg = _base(i, rng, "news@list.example", "Weekly newsletter")
            msg["List-Id"] = "<weekly.list.example>"
            msg["Precedence"] = "bulk"
            msg.set_content("This week's news. " * 20)
        elif kind < 0.18:  # bounce
            mails.append(_bounce(i, sender))
            continue
        elif kind < 0.35:  # HTML alternative
            msg = _base(i, rng, sender, subject)
            msg.set_content(body + "\n\nRegards")
            msg.add_alternative(f"<html><body><p>{body}</p><p>Regards</p></body></html>", subtype="html")
        elif kind < 0.45:  # attachment
            msg = _base(i, rng, sender, subject)
            msg.set_content(body)
            msg.add_attachment(rng.randbytes(20_000), maintype="image", subtype="png", filename="screenshot.png")
        elif kind < 0.55:  # other charsets
            msg = _base(i, rng, sender, subject)
            if rng.random() < 0.5:
                msg.set_content("Olá, não consigo aceder à área de relatórios. Obrigado!", charset="iso-8859-1")
            else:
                msg.set_content("您好，我们无法登录系统，请帮忙。", charset="gb2312")
        else:
            msg = _base(i, rng, sender, subject)
            msg.set_content(body + "\n\n" + "Some more context about our setup. " * rng.randrange(1, 30))
        raw = msg.as_bytes()
        mails.append(raw)
        if msg["In-Reply-To"] is None and "Automatic" not in subject:
            ids.append((msg["Message-ID"], subject, sender))
    return mails


def _bounce(i: int, recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.bench.example\r\nTo: support@bench.example\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn{i}@mx.bench.example>\r\n"
        f"Date: {format_datetime(T0 + timedelta(seconds=i * 7))}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=BB\r\n\r\n"
        "--BB\r\nContent-Type: text/plain\r\n\r\nDelivery failed permanently.\r\n"
        "--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.bench.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--BB--\r\n").encode()
