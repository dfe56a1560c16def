"""Screening: is this a normal mail, or our own mail, a bounce, an automatic
reply or report, bulk mail or spam?

It runs before any case logic because none of these may ever get an automatic
answer: two robots answering each other is how mail loops start, and answering
a forged sender is backscatter. What a mail is, is read first from what the
mail system itself says, then from our rules, tried in this fixed order:

1. `[[loop]]` rules: our own mail coming back.
2. Structure: any `multipart/report` (RFC 6522) is machine-made; its
   `report-type` says which kind. A delivery-status report is a bounce; feedback
   and abuse reports (ARF), read receipts (disposition-notification), TLS and
   other reports are automatic mail recorded as `auto_reply` (noted on a case
   if they thread to one, never answered). Trace: `report:<report-type>`; a
   report that gives no type is a bounce if the detectors of step 4 find one.
3. `[[bounce]]` rules.
4. GNU Mailman's bounce detectors (flufl.bounce), for mail that shows a sign
   of coming from a machine (null reverse path, no sender, Auto-Submitted) but
   that no rule called a bounce: they recognise the formats of many MTAs and
   say who failed. Trace: `flufl.bounce`. They are not run on other mail: they
   also "find" the quoted bounce in a person's question about it.
5. `[[auto_reply]]` and `[[bulk]]` rules.
6. A null reverse path (`Return-Path: <>`, or the MAILER-DAEMON that some MTAs
   write for it) is used only for mail that must never be answered (RFC 5321
   4.5.5, RFC 3834): automatic, `auto_reply`. Trace: `null-reverse-path`.
7. `[[rejected]]` rules (spam flagged upstream).

The rules (header names, header, sender, subject and body patterns) live in
rules/screening.toml so a new vacation subject or list header is an edit, not a
release (`mailproc.rules.screening` reads that file; this stage applies it). A
person who forwards a bounce to us is still a person: subject rules are anchored
at the start (so "Fwd: Undelivered Mail" is not one), only the top-level content
type counts (a forwarded report is an attachment), and the detectors of step 4
never see mail without a machine's sign.

For bounces the delivery-status report (or the detectors, or an Amazon SES
notification) is read, so `act` can link the bounce to the case of the mail
that bounced and mark the address undeliverable. Screening reads nothing from
the database and writes nothing.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from typing import Any

import flufl.bounce

from mailproc.parse import ParsedMail
from mailproc.rules.screening import ScreeningRules, ScreenRule
from mailproc.stages import Bounce, Work

# Body patterns look at this much of the plain text: enough for any notice's
# opening, bounded for a 30 MB mail.
BODY_LIMIT = 16 * 1024


# --- matching -------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    kind: str  # one of KINDS
    name: str  # what decided it, for the trace: a rule's name or a built-in check
    bounce: Bounce | None = None  # already read (by the detectors), for a bounce


def run(work: Work) -> None:
    """Set work.screen (and work.bounce) from the first check that says what the mail is.

    A mail the pipeline already refused (too large, unparseable) keeps that
    verdict: a rule here must not turn it back into something to act on.
    """
    if work.screen is not None:
        return
    verdict = classify(work.ctx.rules.screening, work.mail, work.raw, instance=work.ctx.config.instance,
                       ours=work.ctx.config.our_addresses)
    if verdict is None:
        return
    work.screen = verdict.kind
    work.note("screen", verdict.name)
    if verdict.kind == "bounce":
        work.bounce = verdict.bounce or read_bounce(work.raw, work.mail)


def classify(rules: ScreeningRules, mail: ParsedMail, raw: bytes, *, instance: str,
             ours: frozenset[str]) -> Verdict | None:
    """What the mail is, by the checks in the order of the module's docstring; None: a normal mail."""
    def first(kind: str) -> Verdict | None:
        rule = next((r for r in rules.rules if r.kind == kind and _matches(r, mail, instance, ours)), None)
        return Verdict(rule.kind, rule.name) if rule is not None else None

    verdict = first("loop")
    if verdict is not None:
        return verdict
    report = report_type(mail, raw)
    if report == "unknown":  # a report that does not say its type: the detectors may know it
        found = detected_bounce(raw, mail)
        if found is not None:
            return Verdict("bounce", "flufl.bounce", found)
    if report is not None:
        return Verdict("bounce" if report == "delivery-status" else "auto_reply", f"report:{report}")
    verdict = first("bounce")
    if verdict is not None:
        return verdict
    if machine_made(mail):
        found = detected_bounce(raw, mail)
        if found is not None:
            return Verdict("bounce", "flufl.bounce", found)
    verdict = first("auto_reply") or first("bulk")
    if verdict is not None:
        return verdict
    if null_reverse_path(mail):
        return Verdict("auto_reply", "null-reverse-path")
    return first("rejected")


_REPORT_TYPE = re.compile(r"""report-type\s*=\s*["']?\s*([\w.+-]+)""", re.I)


def report_type(mail: ParsedMail, raw: bytes) -> str | None:
    """The report-type of a top-level multipart/report (RFC 6522), lower-case; None if not a report.

    Only the top level counts: a report a person forwards as an attachment is
    inside their multipart/mixed. A report without the (required) parameter is
    still a report: a delivery-status part inside makes it a bounce.
    """
    if mail.content_type != "multipart/report":
        return None
    found = _REPORT_TYPE.search(" ".join(mail.headers.get("content-type", [])))
    if found:
        return found.group(1).lower()
    return "delivery-status" if re.search(rb"(?im)^content-type:\s*message/delivery-status", raw) else "unknown"


_NULL_PATH = re.compile(r"^\s*<?\s*(mailer-daemon(@[^\s>]*)?)?\s*>?\s*$", re.I)


def null_reverse_path(mail: ParsedMail) -> bool:
    """Return-Path: <> -- or <MAILER-DAEMON>, as sendmail and qmail record the null sender."""
    return any(_NULL_PATH.match(value) for value in mail.headers.get("return-path", []))


def machine_made(mail: ParsedMail) -> bool:
    """A sign that a machine sent this, not a person: null reverse path, no sender, Auto-Submitted."""
    if null_reverse_path(mail) or not mail.from_addr:
        return True
    return any(not re.match(r"\s*no\s*(;|$)", v, re.I) for v in mail.headers.get("auto-submitted", []) if v.strip())


def detected_bounce(raw: bytes, mail: ParsedMail) -> Bounce | None:
    """Mailman's bounce detectors: a Bounce if they find any failed address, else None."""
    message = _std_message(raw)
    if message is None:
        return None
    temporary, permanent = _flufl_failures(message)
    if not temporary and not permanent:
        return None
    bounce = read_bounce(raw, mail, message)
    return bounce if bounce.recipients else None


def _std_message(raw: bytes) -> Message | None:
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # RecursionError and friends
        return None


def _flufl_failures(message: Message) -> tuple[list[str], list[str]]:
    """(temporary, permanent) failed addresses, lower-case; nothing if a detector breaks on the mail."""
    try:
        temporary, permanent = flufl.bounce.all_failures(message)
    except Exception:  # a detector that trips on a strange mail must not cost the mail
        return [], []

    def clean(found: frozenset[bytes]) -> list[str]:
        addresses = (a.decode("ascii", "replace").strip().strip("<>").lower() for a in found)
        return sorted(a for a in addresses if re.fullmatch(_ADDRESS, a))
    return clean(temporary), clean(permanent)


def match(rules: ScreeningRules, mail: ParsedMail, *, instance: str, ours: frozenset[str]) -> ScreenRule | None:
    for rule in rules.rules:
        if _matches(rule, mail, instance, ours):
            return rule
    return None


def _matches(rule: ScreenRule, mail: ParsedMail, instance: str, ours: frozenset[str]) -> bool:
    if rule.header is not None:
        values = [v.strip() for v in mail.headers.get(rule.header, [])]
        if rule.pattern is None and not rule.equals_instance:
            values = [v for v in values if v]
        if rule.pattern is not None:
            values = [v for v in values if rule.pattern.search(v)]
        if rule.equals_instance:
            values = [v for v in values if v.lower() == instance.strip().lower()]
        if not values:
            return False
    if rule.sender is not None and not rule.sender.search(mail.from_addr):
        return False
    if rule.from_ours and mail.from_addr not in ours:
        return False
    if rule.subject and not any(p.search(mail.subject) for p in rule.subject):
        return False
    if rule.body:
        text = mail.text[:BODY_LIMIT]
        if not any(p.search(text) for p in rule.body):
            return False
    return True


# --- reading bounces --------------------------------------------------------------

_ADDRESS = r"[^\s<>@:;,\"']+@[^\s<>@:;,\"']+\.[^\s<>@:;,\"']+"
# Exim: "The following address(es) failed:" then indented addresses, up to the
# first blank line followed by unindented text.
_FAILED_LIST = re.compile(r"following (?:address(?:\(es\))?|addresses|recipients?)\s+failed\s*:?[ \t]*\n"
                          r"(.*?)(?:\n\s*\n(?=\S)|\Z)", re.I | re.S)
_LIST_LINE = re.compile(rf"^\s*<?({_ADDRESS})>?\s*:?\s*$", re.M)
_ANGLE_COLON = re.compile(rf"^\s*<({_ADDRESS})>\s*:", re.M)
_MESSAGE_ID_LINE = re.compile(r"^\s*>?\s*Message-ID:\s*<([^<>\s]+)>", re.I | re.M)
_SMTP_REPLY = re.compile(r"\b([45])\d\d[ -]+(?:[45]\.\d{1,3}\.\d{1,3}\b)?[^\n]*")
_ENHANCED = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_TEMPORARY = re.compile(r"temporar|delayed|will (?:continue to )?(?:re)?try|still being retried|"
                        r"delivery incomplete", re.I)


@dataclass
class _Recipient:
    address: str
    action: str
    status: str
    diagnostic: str


def read_bounce(raw: bytes, mail: ParsedMail, message: Message | None = None) -> Bounce:
    """What a bounce says: who failed, which mail of ours it was, why, for good or not.

    The raw bytes are parsed again with the standard library because the DSN
    fields and the returned original's headers are structure mail-parser
    flattens away. Standard reports (RFC 3464) first; an Amazon SES
    notification by its JSON; plain-text bounces (Exim, qmail, old Postfix) by
    the lines they always print; and whoever Mailman's detectors find failed
    and we did not is added, since they know many more MTAs' formats.
    """
    if message is None:
        message = _std_message(raw)  # None: fall back to what parse() saw
    recipients: list[_Recipient] = []
    original_id: str | None = None
    texts: list[str] = []
    stack: list[Message] = [message] if message is not None else []
    while stack:
        part = stack.pop()
        try:
            ctype = part.get_content_type()
            if ctype == "message/delivery-status":
                blocks = _dsn_blocks(part)
                recipients.extend(_recipients(blocks[1:]))
                original_id = original_id or _message_id(blocks[0].get("X-Original-Message-ID") if blocks else None)
            elif ctype in ("message/rfc822", "message/global"):
                original_id = original_id or _attached_message_id(part)
            elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
                original_id = original_id or _message_id(HeaderParser().parsestr(_text(part)).get("Message-ID"))
            elif part.is_multipart():
                stack.extend(reversed(part.get_payload()))
            elif ctype == "text/plain":
                texts.append(_text(part))
        except Exception:  # one unreadable part must not hide the others
            continue
    text = "\n".join(texts) if texts or message is not None else mail.text
    if not recipients:
        recipients, ses_id = _ses_recipients(text)
        original_id = original_id or ses_id
    if not recipients:
        recipients = _plain_recipients(text, mail)
    if original_id is None:
        found = _MESSAGE_ID_LINE.search(text)
        original_id = found.group(1) if found else None
    if message is not None:
        recipients += _detected_recipients(message, {r.address for r in recipients}, text)
    return _summarise(recipients, original_id, text)


def _detected_recipients(message: Message, known: set[str], text: str) -> list[_Recipient]:
    """Failed addresses Mailman's detectors find that our own reading did not."""
    temporary, permanent = _flufl_failures(message)
    reply = _SMTP_REPLY.search(text)
    reason = _clean(reply.group(0)) if reply else ""
    found = [_Recipient(address=a, action="failed", status="5.0.0", diagnostic=reason) for a in permanent]
    found += [_Recipient(address=a, action="delayed", status="4.0.0", diagnostic=reason)
              for a in temporary if a not in permanent]
    return [r for r in found if r.address not in known]


def _ses_recipients(text: str) -> tuple[list[_Recipient], str | None]:
    """Amazon SES bounce notifications (delivered by SNS as e-mail): a JSON object.

    Returns the bounced recipients and the Message-ID of the mail that
    bounced, if its headers were included.
    """
    start = text.find('{"notificationType"')
    if start < 0:
        start = text.find("{")
        if start < 0 or '"notificationType"' not in text[start:start + 200]:
            return [], None
    try:
        notice, _ = json.JSONDecoder(strict=False).raw_decode(text[start:])  # SNS folds long lines
    except ValueError:
        return [], None
    if not isinstance(notice, dict) or notice.get("notificationType") != "Bounce":
        return [], None
    bounce = notice.get("bounce") or {}
    permanent = bounce.get("bounceType") == "Permanent"
    found = []
    for entry in bounce.get("bouncedRecipients") or []:
        if isinstance(entry, dict) and "@" in str(entry.get("emailAddress", "")):
            status = str(entry.get("status") or ("5.0.0" if permanent else "4.0.0"))
            found.append(_Recipient(address=_dsn_address(entry["emailAddress"]) or "", action="failed",
                                    status=status, diagnostic=_clean(str(entry.get("diagnosticCode") or ""))))
    headers = (notice.get("mail") or {}).get("headers") or []
    ids = [h.get("value") for h in headers if isinstance(h, dict) and str(h.get("name", "")).lower() == "message-id"]
    return [r for r in found if r.address], (_message_id(ids[0]) if ids else None)


def _dsn_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
        return payload
    text = _text(part)
    return [HeaderParser().parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", text) if block.strip()]


def _recipients(blocks: list[Message]) -> list[_Recipient]:
    found = []
    for block in blocks:
        address = _dsn_address(block.get("Original-Recipient")) or _dsn_address(block.get("Final-Recipient"))
        if not address:
            continue
        found.append(_Recipient(address=address, action=str(block.get("Action", "")).strip().lower(),
                                status=str(block.get("Status", "")).strip(),
                                diagnostic=_clean(str(block.get("Diagnostic-Code", "")))))
    return found


def _dsn_address(value: Any) -> str | None:
    """'rfc822; User@Example.com' -> 'user@example.com'."""
    if not value:
        return None
    value = str(value).split(";", 1)[-1].strip().strip("<>").strip()
    return value.lower() if "@" in value else None


def _attached_message_id(part: Message) -> str | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return _message_id(payload[0].get("Message-ID"))
    return _message_id(HeaderParser().parsestr(_text(part)).get("Message-ID"))


def _message_id(value: Any) -> str | None:
    if not value:
        return None
    found = re.search(r"<\s*([^<>\s]+)\s*>", str(value))
    bare = found.group(1) if found else str(value).strip()
    return bare or None


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset)
    except (LookupError, UnicodeError):
        return data.decode("utf-8", "replace")


def _plain_recipients(text: str, mail: ParsedMail) -> list[_Recipient]:
    """Best effort for bounces without a report: X-Failed-Recipients, Exim's list, '<addr>:' lines."""
    addresses: list[str] = []
    for value in mail.headers.get("x-failed-recipients", []):
        addresses += [a.strip().lower() for a in re.split(r"[,\s]+", value) if "@" in a]
    listed = _FAILED_LIST.search(text)
    if listed:
        addresses += [a.lower() for a in _LIST_LINE.findall(listed.group(1))]
    addresses += [a.lower() for a in _ANGLE_COLON.findall(text)]
    reply = _SMTP_REPLY.search(text)
    reason = _clean(reply.group(0)) if reply else ""
    return [_Recipient(address=a, action="failed", status="", diagnostic=reason) for a in dict.fromkeys(addresses)]


def _summarise(recipients: list[_Recipient], original_id: str | None, text: str) -> Bounce:
    failed = [r for r in recipients if r.action not in ("delivered", "relayed", "expanded")]
    permanent = [r for r in failed if _is_permanent(r, text)]
    chosen = permanent or failed
    reason = next((r.diagnostic for r in chosen if r.diagnostic), "")
    if not reason:
        reason = next((r.status for r in chosen if r.status), "")
    if not reason:
        reply = _SMTP_REPLY.search(text)
        reason = _clean(reply.group(0)) if reply else ""
    return Bounce(recipients=list(dict.fromkeys(r.address for r in chosen)), original_message_id=original_id,
                  reason=reason[:200], permanent=bool(permanent))


def _is_permanent(recipient: _Recipient, text: str) -> bool:
    """5.x.x (or 5xx), or failed with nothing more said: permanent. 4.x.x, 4xx, 'delayed': not."""
    if recipient.action == "delayed":
        return False
    status = _ENHANCED.search(recipient.status) or _ENHANCED.search(recipient.diagnostic)
    if status:
        return status.group(1) == "5"
    reply = _SMTP_REPLY.search(recipient.diagnostic)
    if reply:
        return reply.group(1) == "5"
    if recipient.status:
        return not recipient.status.startswith("4")
    return not _TEMPORARY.search(text)


def _clean(value: str) -> str:
    value = re.sub(r"\s+", " ", value).strip()
    return re.sub(r"^(smtp|x-[\w-]+)\s*;\s*", "", value, flags=re.I)
