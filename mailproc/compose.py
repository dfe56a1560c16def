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

Whatever a sender wrote reaches these headers only as one line of printable
text, bounded in length, folded (RFC 5322 §2.1.1: no line over 998 octets,
or servers refuse the mail with "500 Line too long"); a Message-ID that is
not a plain bounded token is left out of In-Reply-To and References rather
than sent. `printable_line`, `unlinked` and `greeting_name` prepare sender
text for the templates.
"""

from __future__ import annotations

import binascii
import re
from datetime import datetime
from email import policy
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr, getaddresses
from secrets import token_hex
from typing import TypeVar

LOOP_HEADER = "X-Mailproc-Loop"
MAX_REFERENCES = 20  # keep the first (thread root) and the most recent ones
MAX_MESSAGE_ID = 250  # longer ids are not real (they come from robots or attacks) and are not repeated
MAX_NAME = 100  # characters of a display name we repeat (greeting, contact name)
MAX_SUBJECT_TEXT = 200  # characters of a sender's subject we repeat (summary, Re: subject)
MAX_HEADER_TEXT = 500  # characters of any free-text header we send
_FOLDABLE_WORD = 70  # a longer run without spaces cannot be folded as plain text: encode it

# Control characters (C0, DEL, C1), lone surrogates, the byte-order mark and the
# bidirectional controls that reorder the text around them on screen.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff"
                          "\ud800-\udfff]")
_LONG_WORD = re.compile(rf"\S{{{_FOLDABLE_WORD + 1},}}")
_MESSAGE_ID = re.compile(r"[!-;=?-~]+")  # printable ASCII without space, < and >
# What mail clients turn into links: a scheme's "://", and a dot between a letter and
# a letter or digit (host names: "phish.example", "www.3com"); "1.2" stays as it is.
_SCHEME = re.compile(r"://")
_HOST_DOT = re.compile(r"(?<=[^\W\d_])[.\u3002\uff0e\uff61](?=[^\W_])|(?<=[^\W_])[.\u3002\uff0e\uff61](?=[^\W\d_])")


def new_message_id(domain: str) -> str:
    """A unique Message-ID, bare (no angle brackets), as the database stores them."""
    return f"mailproc.{token_hex(12)}@{domain}"


def one_line(text: str) -> str:
    """Header values must not contain line breaks (header injection); collapse whitespace."""
    return " ".join(text.split())


def printable_line(text: str, limit: int) -> str:
    """`text` as one line of printable characters, at most `limit` long (an ellipsis
    marks a cut). Line breaks and other white space become one space; control
    characters are removed: in a header they would start a new line or confuse
    the receiving software, in a terminal or a mail client they reorder or
    recolour what the reader sees."""
    text = " ".join(text.split())
    if not text.isprintable():
        text = " ".join(_UNPRINTABLE.sub("", text).split())
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    return text


def unlinked(text: str) -> str:
    """Sender text that mail clients will not turn into a link: `http://phish.example`
    becomes `http[:]//phish[.]example` (the "defanging" security teams use). Our
    HTML is escaped, but clients also linkify plain text, in HTML and text parts
    alike, so a name or subject would otherwise become a link in a mail that comes
    from us."""
    return _HOST_DOT.sub("[.]", _SCHEME.sub("[:]//", text))


def greeting_name(name: str) -> str:
    """The name to greet by, or "" when the display name is no name: one that holds
    an address, a link or a host name is someone's message, not their name."""
    name = printable_line(name, MAX_NAME)
    return "" if "@" in name or unlinked(name) != name else name


def references_chain(references: list[str], in_reply_to: str | None) -> list[str]:
    """The parent's References plus the parent, de-duplicated, capped in length.

    RFC 5322 §3.6.4: References = the parent's References followed by the
    parent's Message-ID. Long threads are trimmed to the root and the newest
    ids, as most mail clients do. An id that is not a plain token of at most
    MAX_MESSAGE_ID characters is dropped: no real mail has one, and one could
    make a header line longer than SMTP allows.
    """
    chain: list[str] = []
    for ref in [*references, *([in_reply_to] if in_reply_to else [])]:
        ref = message_id_or_none(ref)
        if ref and ref not in chain:
            chain.append(ref)
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1):]
    return chain


def message_id_or_none(value: str | None) -> str | None:
    """A Message-ID (bare) fit to send, or None."""
    value = (value or "").strip().strip("<>").strip()
    if len(value) > MAX_MESSAGE_ID or not _MESSAGE_ID.fullmatch(value):
        return None
    return value


def header_text(value: str, limit: int = MAX_HEADER_TEXT) -> str | Header:
    """A free-text header value: printable, one line, bounded, and foldable. Plain
    ASCII with short words stays as it is (folded at its spaces); anything else is
    RFC 2047-encoded, which folds anywhere."""
    value = printable_line(value, limit)
    if value.isascii() and not _LONG_WORD.search(value):
        return value
    return Header(value, "utf-8")


def _address_list(values: list[str]) -> str | Header:
    """Addresses as one header value; display names printable and bounded, non-ASCII
    ones encoded (and folded) by `Header`."""
    pairs = [(printable_line(name, MAX_NAME), addr.strip())
             for name, addr in getaddresses([one_line(v) for v in values]) if addr.strip()]
    if all(name.isascii() for name, _ in pairs):
        return ", ".join(formataddr((name, addr)) if name else addr for name, addr in pairs)
    header = Header(charset="utf-8")
    for n, (name, addr) in enumerate(pairs):
        separator = ", " if n < len(pairs) - 1 else ""
        if name.isascii():
            header.append(f"{formataddr((name, addr)) if name else addr}{separator}", "us-ascii")
        else:
            header.append(name, "utf-8")
            header.append(f" <{addr}>{separator}", "us-ascii")
    return header


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part, quoted-printable: mostly-ASCII text stays readable in the raw
    mail (and spam filters like it). binascii's encoder is C; the email package's is not."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8")).decode("ascii"))
    return part


def build(*, mail_from: str, to: list[str], subject: str, text: str, html: str, in_reply_to: str | None,
          references: list[str], instance: str, auto: str | None = "auto-replied",
          extra_headers: dict | None = None, now: datetime, domain: str, message_id: str | None = None,
          reply_to: str | None = None) -> tuple[Message, str]:
    """Return the message and its Message-ID (bare): `message_id` when given (a
    notification's carries a reply token), else a fresh one under `domain`.
    `reply_to`: an address for a Reply-To header (a notification's tokened address).

    Built with the classic `email.mime` classes rather than `EmailMessage`:
    the result is the same standard MIME, and building it costs a third of
    the time, which matters when every new case sends one.
    """
    given = message_id_or_none(message_id) if message_id is not None else None
    if message_id is not None and given is None:
        raise ValueError(f"not a Message-ID fit to send: {message_id!r}")
    message_id = given or new_message_id(domain)
    # A boundary of our own: left to the generator, it is searched for in the body with a
    # regular expression compiled anew for every mail. 128 random bits never occur in it.
    msg = MIMEMultipart("alternative", boundary=f"=_mp{token_hex(16)}")
    msg["Date"] = format_datetime(now)
    msg["From"] = _address_list([mail_from])
    msg["To"] = _address_list(to)
    if reply_to:
        msg["Reply-To"] = _address_list([reply_to])
    msg["Subject"] = header_text(subject)
    msg["Message-ID"] = f"<{message_id}>"
    parent = message_id_or_none(in_reply_to)
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
    chain = references_chain(references, parent)
    if chain:
        msg["References"] = " ".join(f"<{ref}>" for ref in chain)
    if auto:
        msg["Auto-Submitted"] = auto
    msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = header_text(instance)
    for name, value in (extra_headers or {}).items():
        del msg[name]
        msg[name] = header_text(str(value))
    msg.attach(_text_part(text, "plain"))
    msg.attach(_text_part(html, "html"))
    return msg, message_id


# A header value that folding leaves as it is: printable ASCII words separated by single
# spaces. The email package folds every header through `Header.encode`, which is most of
# the time of writing a mail; for such a value on a line of at most 78 characters its
# answer is known (the value itself), so it is written directly. Anything else (8-bit
# text, encoded words, long lines, other whitespace) is folded by the package as before.
_PLAIN_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")


class _WirePolicy(policy.Compat32):
    def fold_binary(self, name, value):
        if (isinstance(value, str) and len(name) + 2 + len(value) <= 78 and name.isascii()
                and _PLAIN_VALUE.fullmatch(value)):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_WIRE = _WirePolicy(linesep="\r\n")


def as_bytes(msg: Message) -> bytes:
    """The message as it goes on the wire (CRLF line ends), as stored in the outbox."""
    return msg.as_bytes(policy=_WIRE)


T = TypeVar("T")


def shown_case(case: T) -> T:
    """A copy of a case (a models.Case) for templates, with the sender's words in it
    (summary, name) unable to become links in the mail we send; the stored case keeps
    them readable (one printable line, not defanged) for the support team."""
    return type(case)(**{**case.__data__, "summary": unlinked(case.summary),  # type: ignore[attr-defined]
                         "contact_name": greeting_name(case.contact_name)})  # type: ignore[attr-defined]
