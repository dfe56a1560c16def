"""Signed reply tokens: proof that a mail answers one we sent to an agent.

A notification to an agent carries a token in its Message-ID and in its
Reply-To address. The agent's reply brings it back (In-Reply-To/References,
or the address it was sent to), and the token says, under our secret, "case
N, agent NAME, good until DAY". Nothing is stored: the HMAC is the record.

Layout (16 bytes, 26 characters of base32):

    case       4 bytes, big-endian (cases 1 .. 2**32-1)
    expiry     2 bytes, days since 1970-01-01 (good until the year 2149)
    mac       10 bytes, HMAC-SHA256 truncated to 80 bits

The MAC covers a version label, the case, the expiry day and the agent's
roster NAME. The name itself is not in the token (it would not fit every
address's 64-octet local part): `verify` tries the MAC under each roster name
and each key, which is how it tells "a token of another agent" from "an
altered token". Security margin: a forger who cannot read the agent's mail
must guess 80 bits; each guess is one mail we receive, and one guess can hit
any of N agents under K keys, so the chance per mail is N*K / 2**80 (about
2**-69 for a thousand agents and two keys). A token is a bearer proof: a
notification the agent forwards carries it along, which is why it is bound
to one agent and one case and expires.

Encoding: lower-case base32 without padding (RFC 4648 alphabet a-z, 2-7),
read case-insensitively, because mail servers and clients change the case of
local parts and Message-IDs. 128 bits take 26 characters with 2 bits to
spare; a string whose spare bits are not zero is refused as malformed, so
every character of a token matters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mailproc.parse import ParsedMail

TTL = timedelta(days=90)
MAC_BYTES = 10
TOKEN_LENGTH = 26  # characters: base32 of 4 + 2 + MAC_BYTES bytes, unpadded
MIN_SECRET_BYTES = 16  # below this a key can be guessed offline from one token
MAX_CANDIDATES = 32  # tokens read from one mail; each costs agents x keys HMACs

MALFORMED = "malformed"
ALTERED = "altered"
EXPIRED = "expired"

_LABEL = b"mailproc reply token v1\x00"  # a MAC made for another purpose never verifies here
_LAYOUT = struct.Struct(">IH")
_DAY = 86400
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TOKEN_CHARS = re.compile(rf"[a-z2-7]{{{TOKEN_LENGTH}}}")
_UNIQUE = re.compile(r"[a-z0-9]{1,40}")
_IN_MESSAGE_ID = re.compile(rf"mp\.([a-z2-7]{{{TOKEN_LENGTH}}})(?:\.[^@]*)?@", re.I | re.A)


@dataclass(frozen=True)
class Verified:
    case: int
    agent: str


@dataclass(frozen=True)
class Refusal:
    """Why a token does not verify. `case` and `agent` are known only when the
    MAC was good (an expired token), so a refusal can still say whose it was."""

    reason: str  # MALFORMED | ALTERED | EXPIRED
    case: int | None = None
    agent: str | None = None
    expired_at: datetime | None = None


def make(case: int, agent: str, now: datetime, secret: bytes, ttl: timedelta = TTL) -> str:
    """The token for `agent` on `case`, good for `ttl` from `now` (rounded up to
    the end of a UTC day, so it lives between ttl and ttl + 1 day)."""
    _check_secret(secret)
    if not 0 < case < 2**32:
        raise ValueError(f"case number {case} does not fit a reply token (1 .. {2**32 - 1})")
    if not agent:
        raise ValueError("a reply token needs an agent name")
    expires = now + ttl
    day = -(-int((expires - _EPOCH).total_seconds()) // _DAY)  # ceiling
    if not 0 < day < 2**16:
        raise ValueError(f"expiry {expires:%Y-%m-%d} does not fit a reply token")
    head = _LAYOUT.pack(case, day)
    return _encode(head + _mac(secret, head, agent))


def verify(token: str, now: datetime, secrets: Sequence[bytes], agents: Iterable[str]) -> Verified | Refusal:
    """Check `token` under each key of `secrets` (current first, then the old ones
    kept for rotation) and each roster name in `agents`.

    The MAC is checked before anything the token says is believed; an expired
    token with a good MAC is refused with its case and agent filled in.
    """
    for secret in secrets:
        _check_secret(secret)
    raw = _decode(token)
    if raw is None:
        return Refusal(MALFORMED)
    head, mac = raw[:_LAYOUT.size], raw[_LAYOUT.size:]
    case, day = _LAYOUT.unpack(head)
    names = list(dict.fromkeys(agents))
    for secret in secrets:
        for agent in names:
            if hmac.compare_digest(mac, _mac(secret, head, agent)):
                expires = _EPOCH + timedelta(days=day)
                if now >= expires:
                    return Refusal(EXPIRED, case=case, agent=agent, expired_at=expires)
                return Verified(case=case, agent=agent)
    return Refusal(ALTERED)


# --- how tokens travel ----------------------------------------------------------------


def message_id(token: str, domain: str, unique: str) -> str:
    """A Message-ID carrying `token`, bare (no angle brackets) as the database
    stores them. Two notifications on one day for one case and agent have the
    same token, so `unique` (e.g. `secrets.token_hex(8)`) keeps the ids apart."""
    if not _TOKEN_CHARS.fullmatch(token):
        raise ValueError(f"not a reply token: {token!r}")
    if not _UNIQUE.fullmatch(unique):
        raise ValueError(f"the unique part of a Message-ID must be 1-40 of a-z, 0-9: {unique!r}")
    return f"mp.{token}.{unique}@{domain}"


def reply_address(token: str, mailbox: str, delimiter: str = "+") -> str:
    """`support@example.com` -> `support+<token>@example.com` (sub-addressing: the
    receiving server delivers it to the mailbox; Postfix `recipient_delimiter`,
    Dovecot, Exim, Gmail and Microsoft 365 all understand `+`)."""
    if not _TOKEN_CHARS.fullmatch(token):
        raise ValueError(f"not a reply token: {token!r}")
    local, at, domain = mailbox.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an address: {mailbox!r}")
    local = local.split(delimiter, 1)[0]
    address_local = f"{local}{delimiter}{token}"
    if len(address_local) > 64:  # RFC 5321 4.5.3.1.1
        raise ValueError(f"{mailbox!r} is too long to carry a reply token (local part over 64 octets)")
    return f"{address_local}@{domain}"


def find_tokens(mail: ParsedMail, delimiter: str = "+") -> list[str]:
    """Candidate tokens of `mail`, lower-case, most telling first, each once:
    In-Reply-To, then References newest first, then the To and Cc addresses it
    was sent to (a reply to our Reply-To address). Candidates only: `verify`
    decides. At most MAX_CANDIDATES, so a mail with ten thousand References
    costs no more than one with thirty."""
    found: list[str] = []
    for mid in [*mail.in_reply_to, *reversed(mail.references)]:
        m = _IN_MESSAGE_ID.match(mid)
        if m:
            found.append(m.group(1).lower())
    suffix = re.compile(rf"{re.escape(delimiter)}([a-z2-7]{{{TOKEN_LENGTH}}})@", re.I | re.A)
    for address in [*mail.to, *mail.cc]:
        m = suffix.search(address)
        if m:
            found.append(m.group(1).lower())
    return list(dict.fromkeys(found))[:MAX_CANDIDATES]


# --- bytes --------------------------------------------------------------------------


def _mac(secret: bytes, head: bytes, agent: str) -> bytes:
    return hmac.new(secret, _LABEL + head + agent.encode("utf-8"), hashlib.sha256).digest()[:MAC_BYTES]


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a reply-token secret needs at least {MIN_SECRET_BYTES} bytes")


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def _decode(token: str) -> bytes | None:
    """The 16 bytes of a well-formed token (any case), else None. Only the
    canonical spelling is accepted: the spare bits of the last character must be
    zero, or two strings would verify as one token."""
    if not token.isascii():  # str.lower() maps some non-ASCII letters (the Kelvin sign) to ASCII ones
        return None
    token = token.lower()
    if not _TOKEN_CHARS.fullmatch(token):
        return None
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return None
    if _encode(raw) != token:
        return None
    return raw


def headers(case: int, agent: str, now: datetime, secret: bytes, mailbox: str) -> tuple[str, str]:
    """(Reply-To, Message-ID) of a mail to `agent` about `case` from `mailbox`, both
    carrying a fresh token, so the agent's reply proves itself and threads back.
    ValueError when the case number or the mailbox address cannot carry one."""
    token = make(case, agent, now, secret)
    return (reply_address(token, mailbox),
            message_id(token, mailbox.rpartition("@")[2], secrets.token_hex(8)))
