"""Raw bytes -> `ParsedMail`, never raising.

mail-parser does the MIME work; when it raises (it does on some real-world
bounces and broken mail) the standard library's `email` parser takes over,
and when even that fails the result still carries whatever headers could be
read, with the problem listed in `defects`. A message is never lost because
it could not be parsed.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.headerregistry import AddressHeader
from html.parser import HTMLParser
from typing import Any

import authres
import mailparser


@dataclass
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass
class ParsedMail:
    message_id: str | None  # without angle brackets, whitespace stripped
    subject: str
    from_addr: str  # lower-case bare address, '' if none
    from_name: str
    reply_to: list[str]  # lower-case bare addresses
    to: list[str]
    cc: list[str]
    date: datetime | None  # aware
    in_reply_to: list[str]  # Message-IDs without angle brackets
    references: list[str]
    headers: dict[str, list[str]]  # lower-case name -> decoded values, in order
    text: str  # the plain-text body (from text/plain, else text derived from HTML)
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    content_type: str = "text/plain"  # the top-level type, lower-case
    defects: list[str] = field(default_factory=list)
    parser: str = "mail-parser"  # which parser produced this: mail-parser | email | headers-only

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


# --- parsing -----------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_MSGID = re.compile(r"<\s*([^<>\s]+(?:\s+[^<>\s]+)*)\s*>")
_NOT_BASE64 = " \t\r\n="

# Mails above _ELIDE_ABOVE have their long base64 runs (non-text parts only)
# replaced by a marker line before parsing: the parsers hold every line of a
# part as a separate object while they work, about eight times the part's
# size, and of an attachment only its size is kept anyway.
_ELIDE_ABOVE = 1 << 20
_ELIDE_RUN = 64 << 10
_B64_RUN = re.compile(rb"(?:^[A-Za-z0-9+/]{40,}={0,2}\r?\n)++", re.M)
_NON_TEXT_TYPE = re.compile(rb"^content-type:(?![ \t]*text/)", re.I | re.M)
_BASE64_CTE = re.compile(rb"^content-transfer-encoding:[ \t]*base64", re.I | re.M)

# More MIME containers than this and the body is not parsed: the standard
# parser's work grows with the square of the nesting depth before it gives up
# with RecursionError, so a few KB of nested boundaries cost seconds of CPU.
MAX_CONTAINERS = 300
_CONTAINER = re.compile(rb"boundary\s*=|message/(?:rfc822|global)\b", re.I)


def parse(raw: bytes) -> ParsedMail:
    """Parse `raw`; never raises.

    mail-parser first (one parse, whose `email.message.Message` we also read
    headers from, so nothing is parsed twice); then the standard library with
    the modern and the compat32 policy; then the header block alone.
    """
    try:
        return _parse(raw)
    except Exception as exc:  # a bug here must not cost the mail: keep what the header block says
        problem = f"parse failed: {type(exc).__name__}: {_short(exc)}"
    try:
        return _headers_only(raw, [problem])
    except Exception:
        return ParsedMail(message_id=None, subject="", from_addr="", from_name="", reply_to=[], to=[], cc=[],
                          date=None, in_reply_to=[], references=[], headers={}, text="", html="",
                          defects=[problem], parser="headers-only")


def parse_headers(raw: bytes, defects: list[str]) -> ParsedMail:
    """Only the header block of `raw` (for mail too large to parse whole); never raises."""
    return _headers_only(raw, list(defects))


def _parse(raw: bytes) -> ParsedMail:
    if not raw or raw.isspace():
        return _headers_only(raw, ["empty message (0 bytes or only whitespace)"])
    raw, elided = _elide(raw)
    if _too_many_containers(raw):
        return _headers_only(raw, [f"more than {MAX_CONTAINERS} nested MIME containers; body not parsed"])
    defects: list[str] = []
    try:
        return _from_mailparser(raw, elided)
    except Exception as exc:  # mail-parser raises many kinds on broken mail
        defects.append(f"mail-parser failed: {type(exc).__name__}: {_short(exc)}")
    return _with_email(raw, defects, elided)


def parse_with_email(raw: bytes, defects: list[str] | tuple[str, ...] = ()) -> ParsedMail:
    """The fallback on its own: the standard library (modern policy, then compat32),
    then the header block alone. `defects` are carried into the result."""
    raw, elided = _elide(raw)
    return _with_email(raw, list(defects), elided)


def _with_email(raw: bytes, defects: list[str], elided: dict[str, int]) -> ParsedMail:
    for policy in (email.policy.default, email.policy.compat32):
        try:
            message = email.message_from_bytes(raw, policy=policy)
            return _from_message(message, "email", defects, elided)
        except Exception as exc:  # includes RecursionError on absurd nesting
            defects.append(f"email ({_policy_name(policy)}) failed: {type(exc).__name__}: {_short(exc)}")
            if isinstance(exc, RecursionError):
                break  # the other policy nests just as deep
    return _headers_only(raw, defects)


def _too_many_containers(raw: bytes) -> bool:
    for count, _ in enumerate(_CONTAINER.finditer(raw), 1):
        if count > MAX_CONTAINERS:
            return True
    return False


def _elide(raw: bytes) -> tuple[bytes, dict[str, int]]:
    """Replace long base64 runs of non-text parts by marker lines.

    Returns the shortened mail and marker -> number of base64 characters set
    aside, from which the attachment's size is still exact.
    """
    if len(raw) < _ELIDE_ABOVE:
        return raw, {}
    elided: dict[str, int] = {}

    def replace(m: re.Match) -> bytes:
        run = m.group(0)
        if len(run) < _ELIDE_RUN:
            return run
        head = raw[max(0, m.start() - 8192):m.start()]
        head = head[head.rfind(b"\n--") + 1:]  # this part's own headers
        if not (_NON_TEXT_TYPE.search(head) and _BASE64_CTE.search(head)):
            return run
        marker = f"MailprocElidedRun{len(elided):011d}"
        elided[marker] = len(run) - sum(run.count(c.encode()) for c in _NOT_BASE64)
        return marker.encode() + (b"\r\n" if run.endswith(b"\r\n") else b"\n")

    return _B64_RUN.sub(replace, raw), elided


def _from_mailparser(raw: bytes, elided: dict[str, int]) -> ParsedMail:
    mp = mailparser.parse_from_bytes(raw)
    message = mp.message
    defects: list[str] = []
    for entry in mp.defects:
        for where, items in entry.items():
            defects.extend(f"{where}: {item}" for item in items)
    defects.extend(_charset_defects(message, defects))
    attachments = [Attachment(filename=a.get("filename") or "", content_type=(a.get("mail_content_type") or "").lower(),
                              size=_attachment_size(a, elided)) for a in mp.attachments]
    text = "\n".join(mp.text_plain)
    html = "\n".join(mp.text_html)
    if not text and not html and message.get_content_maintype() == "multipart" and not message.is_multipart():
        # a multipart whose boundary never appears: its body is all we have
        text = _decode_text(message, defects)
        defects.append("multipart without parts; body kept as text")
    return _build(list(message.raw_items()), _content_type(message), text, html, attachments, defects,
                  "mail-parser")


def _from_message(message: email.message.Message, parser: str, defects: list[str],
                  elided: dict[str, int]) -> ParsedMail:
    """Walk the parts iteratively (no recursion: nesting depth is the sender's choice)."""
    defects = list(defects)
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    stack = [message]
    while stack:
        part = stack.pop()
        try:
            defects.extend(f"{part.get_content_type()}: {type(d).__name__}" for d in part.defects)
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed(payload))
                continue
            _leaf(part, plain, html, attachments, defects, elided)
        except Exception as exc:  # one broken part must not lose the rest
            defects.append(f"unreadable part: {type(exc).__name__}: {_short(exc)}")
    return _build(list(message.raw_items()), _content_type(message), "\n".join(plain), "\n".join(html),
                  attachments, defects, parser)


def _leaf(part, plain: list[str], html: list[str], attachments: list[Attachment], defects: list[str],
          elided: dict[str, int]) -> None:
    ctype = part.get_content_type().lower()
    disposition = (part.get_content_disposition() or "").lower()
    try:
        filename = part.get_filename() or ""
    except Exception:
        filename = ""
        defects.append(f"{ctype}: unreadable filename")
    filename = _decode_words(filename, defects) if filename else ""
    if ctype in ("text/plain", "text/html") and not filename and disposition != "attachment":
        (plain if ctype == "text/plain" else html).append(_decode_text(part, defects))
    elif part.get_content_maintype() == "multipart":
        plain.append(_decode_text(part, defects))
        defects.append("multipart without parts; body kept as text")
    elif filename or disposition == "attachment" or part.get_content_maintype() not in ("text", "message"):
        attachments.append(Attachment(filename=filename, content_type=ctype, size=_part_size(part, elided)))


def _decode_text(part, defects: list[str]) -> str:
    data = part.get_payload(decode=True) or b""
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset)
    except LookupError:
        defects.append(f"unknown charset {charset!r}; decoded as utf-8")
    except UnicodeError:
        defects.append(f"text not valid {charset}; decoded as utf-8")
    return data.decode("utf-8", "replace")


def _part_size(part, elided: dict[str, int]) -> int:
    """Decoded size, computed from base64 text without decoding it (attachments may be huge)."""
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    payload = part._payload  # the undecoded text; get_payload(decode=True) would copy it
    if cte == "base64" and isinstance(payload, str):
        return _b64_size(payload, elided)
    data = part.get_payload(decode=True)
    return len(data) if isinstance(data, bytes) else 0


def _b64_size(text: str, elided: dict[str, int]) -> int:
    """Decoded size of base64 text, counted without decoding (and without copying it)."""
    chars = len(text) - sum(text.count(c) for c in _NOT_BASE64)
    for marker, count in elided.items():
        if marker in text:
            chars += count - len(marker)
    return chars * 3 // 4


def _attachment_size(item: dict, elided: dict[str, int]) -> int:
    payload = item.get("payload") or ""
    if item.get("binary"):
        return _b64_size(payload, elided)
    return len(payload.encode("utf-8", "replace")) if isinstance(payload, str) else len(payload)


def _charset_defects(message: email.message.Message, known: list[str]) -> list[str]:
    """mail-parser decodes pure-ASCII text under any charset without a word; we want the word."""
    found = []
    for part in message.walk():
        charset = part.get_param("charset")
        if not charset or part.get_content_maintype() != "text" or not isinstance(charset, str):
            continue
        try:
            codecs.lookup(charset)
        except LookupError:
            if not any(f"charset {charset!r}" in d for d in known):
                found.append(f"unknown charset {charset!r} in {part.get_content_type()}; decoded as utf-8")
    return found


def _headers_only(raw: bytes, defects: list[str]) -> ParsedMail:
    """The header block, split by hand: the one parse that cannot fail."""
    head = re.split(rb"\r?\n\r?\n", raw[:1 << 20], maxsplit=1)[0] if raw and not raw.isspace() else b""
    text = _FOLD.sub(" ", head.decode("ascii", "surrogateescape"))
    items = []
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            items.append((name.strip(), value.strip()))
    ctype = "text/plain"
    for name, value in items:
        if name.lower() == "content-type":
            ctype = value.split(";")[0].strip().lower() or ctype
            break
    return _build(items, ctype, "", "", [], defects, "headers-only")


def _content_type(message: email.message.Message) -> str:
    try:
        return message.get_content_type().lower()
    except Exception:
        return "text/plain"


def _build(items: list[tuple[str, Any]], content_type: str, text: str, html: str,
           attachments: list[Attachment], defects: list[str], parser: str) -> ParsedMail:
    """Everything that comes from the header block, the same for every parser."""
    undecoded: dict[str, list[str]] = {}  # 8-bit decoded, RFC 2047 words still encoded
    headers: dict[str, list[str]] = {}
    for name, value in items:
        key = str(name).strip().lower()
        value = _clean(_FOLD.sub("", _eight_bit(str(value), key, defects)).strip())
        undecoded.setdefault(key, []).append(value)
        headers.setdefault(key, []).append(_clean(_decode_words(value, defects)))

    def first(name: str) -> str:
        values = headers.get(name)
        return values[0] if values else ""

    senders = _addresses(undecoded.get("from", []), defects)
    message_ids = _message_ids(first("message-id"))
    # Decoded text never holds NUL (PostgreSQL cannot store it); the raw bytes keep it.
    text, html = _clean_body(text), _clean_body(html)
    for attachment in attachments:
        attachment.filename = _clean(attachment.filename)
    if not text and html:
        text = html_to_text(html)
    return ParsedMail(
        message_id=message_ids[0] if message_ids else None,
        subject=re.sub(r"\s+", " ", first("subject")).strip(),
        from_addr=senders[0][1] if senders else "",
        from_name=senders[0][0] if senders else "",
        reply_to=[a for _, a in _addresses(undecoded.get("reply-to", []), defects)],
        to=[a for _, a in _addresses(undecoded.get("to", []), defects)],
        cc=[a for _, a in _addresses(undecoded.get("cc", []), defects)],
        date=_date(first("date")),
        in_reply_to=_message_ids(" ".join(headers.get("in-reply-to", []))),
        references=_message_ids(" ".join(headers.get("references", []))),
        headers=headers,
        text=text,
        html=html,
        attachments=attachments,
        content_type=content_type or "text/plain",
        defects=defects,
        parser=parser,
    )


def _clean_body(text: str) -> str:
    return text.replace("\x00", "") if "\x00" in text else text


def _eight_bit(value: str, name: str, defects: list[str]) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes: utf-8 if it is, else latin-1."""
    if value.isascii():
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        defects.append(f"header {name}: 8-bit bytes not utf-8; decoded as latin-1")
        return data.decode("latin-1")


def _decode_words(value: str, defects: list[str]) -> str:
    """RFC 2047 encoded words -> text; whitespace between adjacent words is not text."""
    if "=?" not in value:
        return value
    value = _BETWEEN_WORDS.sub(r"\1", value)

    def one(m: re.Match) -> str:
        charset, encoding, data = m.group(1).split("*")[0], m.group(2).upper(), m.group(3)
        try:
            if encoding == "B":
                raw = base64.b64decode(data + "=" * (-len(data) % 4))
            else:
                raw = binascii.a2b_qp(data.replace("_", " ").encode("ascii", "replace"))
        except (binascii.Error, ValueError):
            defects.append(f"bad encoded word {m.group(0)[:60]!r}")
            return m.group(0)
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeError):
            defects.append(f"encoded word in charset {charset!r} decoded as utf-8")
            return raw.decode("utf-8", "replace")

    return _ENCODED_WORD.sub(one, value)


MAX_ADDRESS = 254
# The common shapes, read without the header registry's parser (which costs about
# 0.1 ms an address): `addr`, `Name <addr>`, `"Name" <addr>`, with no encoded word,
# comment, escape or quoted local part anywhere in the value.
_ADDR = r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+"
_SIMPLE_MAILBOX = re.compile(rf'\s*(?:({_ADDR})|(?:"([^"\\]*)"|([^"<>()\[\]\\,;:@]*?))\s*<({_ADDR})>)\s*')
_NOT_SIMPLE = re.compile(r"=\?|[()\\]")


def _addresses(values: list[str], defects: list[str]) -> list[tuple[str, str]]:
    """(decoded one-line name, lower-case bare address) pairs, in order.

    `values` still hold their RFC 2047 words: an encoded name may decode to
    `Smith, John` or `Eve\\r\\nBcc: evil@x`, so the list is split first and the
    names decoded after, which the standard library's header registry does. A
    value it cannot read falls back to `getaddresses` (names decoded after it).
    """
    found = []
    for value in values:
        try:
            pairs = _split_addresses(value)
        except Exception as exc:  # the registry's parser raises on some broken headers
            defects.append(f"address list not parsed by the header registry: {type(exc).__name__}: {_short(exc)}")
            try:
                pairs = [(_decode_words(name, defects), addr) for name, addr in email.utils.getaddresses([value])]
            except Exception as exc2:
                defects.append(f"unreadable addresses: {_short(exc2)}")
                continue
        for name, addr in pairs:
            addr = _clean(addr).strip().lower()
            if not addr or "@" not in addr:
                continue
            if len(addr) > MAX_ADDRESS:  # RFC 5321: no real mailbox is longer; the columns are not
                defects.append(f"address longer than {MAX_ADDRESS} characters ignored: {addr[:40]}…")
                continue
            if not addr.isprintable():  # no mailbox has them; they would reach our headers
                defects.append(f"address with control characters ignored: {addr[:40]!r}")
                continue
            found.append((" ".join(_clean(name).split()), addr))
    return found


def _split_addresses(value: str) -> list[tuple[str, str]]:
    """One header value -> (name, addr-spec) pairs, names decoded; `addr (Name)` keeps its comment."""
    if not _NOT_SIMPLE.search(value):
        simple = _simple_addresses(value)
        if simple is not None:
            return simple
    pairs = []
    for address in AddressHeader.value_parser(value).addresses:
        for mailbox in address.all_mailboxes:
            name = mailbox.display_name or _decode_words(" ".join(mailbox.comments), [])
            pairs.append((name or "", mailbox.addr_spec or ""))
    return pairs


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """The pairs of a value made only of simple mailboxes, else None (the registry
    reads it). Without quotes a comma can only separate mailboxes."""
    items = [value] if '"' in value else value.split(",")
    pairs = []
    for item in items:
        m = _SIMPLE_MAILBOX.fullmatch(item)
        if m is None:
            if item.strip():
                return None
            continue
        bare, quoted, atoms, addr = m.groups()
        pairs.append(("", bare) if bare else (quoted if quoted is not None else atoms.strip(), addr))
    return pairs


def _clean(text: str) -> str:
    """Decoded header text as the database can store it: no NUL (PostgreSQL refuses
    it in text) and no lone surrogates (what undecodable bytes in an encoded word
    become), which no database driver or mail encoder accepts."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def authentication_results(mail: ParsedMail, authserv_id: str) -> list[tuple[str, str]]:
    """(method, result) pairs, lower-case, from the Authentication-Results headers
    of the server named `authserv_id`, e.g. [("spf", "pass"), ("dmarc", "fail")].

    RFC 8601 §5: only the receiving server's own results mean anything; it
    removes headers that claim its id, and anyone else's may be written by the
    sender. A header that cannot be read proves nothing and is skipped.
    """
    wanted = authserv_id.strip().lower()
    found = []
    for value in mail.headers.get("authentication-results", []):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception:  # authres raises its own SyntaxError, and others on odd input
            continue
        if (header.authserv_id or "").lower() == wanted:
            found += [(str(r.method).lower(), str(r.result).lower()) for r in header.results]
    return found


def _message_ids(value: str) -> list[str]:
    """Message-IDs without angle brackets; bare ones (no brackets) are accepted too."""
    found = ["".join(m.split()) for m in _MSGID.findall(value)]
    if not found:
        found = [t.strip("<>,;") for t in value.split() if "@" in t]
    return [f for f in found if f]


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _short(exc: BaseException) -> str:
    return str(exc)[:200]


def _policy_name(policy) -> str:
    return "compat32" if policy is email.policy.compat32 else "default"


# --- HTML -> text ----------------------------------------------------------------

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
          "blockquote", "pre", "hr", "section", "article", "header", "footer", "title"}
_SKIP = {"script", "style", "head"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.skip += 1
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """Plain text from HTML: tags dropped, entities unescaped, paragraphs kept as lines."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # HTMLParser is lenient; this is belt and braces
        return re.sub(r"<[^>]*>", " ", html)
    lines = (re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in "".join(extractor.out).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
