"""Building an outgoing message: the one place that decides its headers.

Every mail mailproc sends is multipart/alternative (plain text first, HTML
second, both UTF-8) and carries:

- a fresh Message-ID under our domain, recorded on the outbox row, so a reply
  to it threads back to its case;
- In-Reply-To / References continuing the customer's thread;
- `Auto-Submitted` (RFC 3834) on automatic mail, and
  `X-Auto-Response-Suppress: All`, so well-behaved robots do not answer;
- `X-Mailproc-Loop: <instance>`, by which our own mail is recognised if it
  ever comes back in.

`Precedence: bulk` is deliberately not set: RFC 3834 discourages it, and some
servers drop such mail or treat it as a list message.
"""

from __future__ import annotations

import binascii
from datetime import datetime
from email import policy
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr, getaddresses
from secrets import token_hex

LOOP_HEADER = "X-Mailproc-Loop"
MAX_REFERENCES = 20  # keep the first (thread root) and the most recent ones


def new_message_id(domain: str) -> str:
    """A unique Message-ID, bare (no angle brackets), as the database stores them."""
    return f"mailproc.{token_hex(12)}@{domain}"


def one_line(text: str) -> str:
    """Header values must not contain line breaks (header injection); collapse whitespace."""
    return " ".join(text.split())


def references_chain(references: list[str], in_reply_to: str | None) -> list[str]:
    """The parent's References plus the parent, de-duplicated, capped in length.

    RFC 5322 §3.6.4: References = the parent's References followed by the
    parent's Message-ID. Long threads are trimmed to the root and the newest
    ids, as most mail clients do.
    """
    chain: list[str] = []
    for ref in [*references, *([in_reply_to] if in_reply_to else [])]:
        ref = ref.strip().strip("<>").strip()
        if ref and ref not in chain:
            chain.append(ref)
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1):]
    return chain


def _encoded(value: str) -> str | Header:
    """RFC 2047-encode a header value only when it is not plain ASCII."""
    return value if value.isascii() else Header(value, "utf-8")


def _address_list(values: list[str]) -> str:
    """Addresses with non-ASCII display names encoded, as one header value."""
    return ", ".join(formataddr((name, addr), charset="utf-8") if name else addr
                     for name, addr in getaddresses([one_line(v) for v in values]))


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part, quoted-printable: mostly-ASCII text stays readable in the raw
    mail (and spam filters like it). binascii's encoder is C; the email package's is not."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8")).decode("ascii"))
    return part


def build(*, mail_from: str, to: list[str], subject: str, text: str, html: str, in_reply_to: str | None,
          references: list[str], instance: str, auto: str | None = "auto-replied",
          extra_headers: dict | None = None, now: datetime, domain: str) -> tuple[Message, str]:
    """Return the message and its Message-ID (bare).

    Built with the classic `email.mime` classes rather than `EmailMessage`:
    the result is the same standard MIME, and building it costs a third of
    the time, which matters when every new case sends one.
    """
    message_id = new_message_id(domain)
    msg = MIMEMultipart("alternative")
    msg["Date"] = format_datetime(now)
    msg["From"] = _address_list([mail_from])
    msg["To"] = _address_list(to)
    msg["Subject"] = _encoded(one_line(subject))
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to.strip().strip('<>')}>"
    chain = references_chain(references, in_reply_to)
    if chain:
        msg["References"] = " ".join(f"<{ref}>" for ref in chain)
    if auto:
        msg["Auto-Submitted"] = auto
    msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = one_line(instance)
    for name, value in (extra_headers or {}).items():
        del msg[name]
        msg[name] = _encoded(one_line(str(value)))
    msg.attach(_text_part(text, "plain"))
    msg.attach(_text_part(html, "html"))
    return msg, message_id


_WIRE = policy.compat32.clone(linesep="\r\n")


def as_bytes(msg: Message) -> bytes:
    """The message as it goes on the wire (CRLF line ends), as stored in the outbox."""
    return msg.as_bytes(policy=_WIRE)
