"""May this mail run an agent's commands and relay an agent's answer?

Anyone can write any From. So a mail acts for an agent only when its From is
one agent's roster address (one address, one From field) AND it proves it:

- it answers a mail we sent to that agent about that case: a signed reply
  token (mailproc.tokens) in In-Reply-To/References or in the address it was
  sent to; or
- the receiving server we trust (`[auth] authserv_id`) says so in the
  topmost Authentication-Results header: `dmarc=pass` for the From domain,
  or `dkim=pass` with `header.d` (or the domain of `header.i`) equal to it.

Why only the topmost header: RFC 8601 §5 lets any sender write
Authentication-Results with any authserv-id. The trusted server adds its own
header above everything the mail arrived with, so a header claiming its id
further down was written by someone else. This holds only if that server adds
its header to every mail; it should also delete incoming headers that claim
its id (RFC 8601 §5). A header authres cannot read is no verdict, never a pass.

Positive evidence outweighs a token: when the trusted server says
`dmarc=fail` for the From domain the mail is refused as forged, token or not
(a token is a bearer proof and travels with a forwarded notification).

Automatic mail (Auto-Submitted other than `no`, Precedence bulk/list/junk)
never commands: an out-of-office reply to a notification quotes its subject.

The decision names the agent whenever the From is an agent's address, so the
caller can tell them of a refusal at their roster address; a mail whose From
is no agent is `NOT_AGENT`: an ordinary customer message, not a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import authres

from mailproc import tokens
from mailproc.parse import ParsedMail

# The reasons of a refusal (Decision.reason); the caller words the mail to the agent.
FORGED_FROM = "forged From"
OTHER_CASE = "token of another case"
OTHER_AGENT = "token of another agent"
ALTERED_TOKEN = "altered token"
EXPIRED_TOKEN = "expired token"
OTHER_SERVER = "Authentication-Results from another server"
NOT_TOPMOST = "trusted header not topmost"
TWO_FROM = "two From addresses"
AUTOMATIC = "bulk/auto-submitted mail"
NO_PROOF = "no proof"
NOT_AGENT = "not an agent"  # not a refusal: the From is nobody on the roster

TOKEN, DMARC, DKIM = "token", "dmarc", "dkim"

_BULK_PRECEDENCE = {"bulk", "list", "junk"}
# Every addr-spec in a From value, display names included: counting what looks
# like an address errs towards "two From addresses", never towards one.
_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    agent: str | None  # the roster NAME the From belongs to; None: not an agent's mail
    how: str | None = None  # TOKEN | DMARC | DKIM when allowed
    reason: str = ""  # one of the constants above when refused
    detail: str = ""  # one sentence for the agent: what exactly was wrong


def authorise(mail: ParsedMail, *, case: int, agents: Mapping[str, str], now: datetime,
              secrets: Sequence[bytes], authserv_id: str | None,
              merged: Collection[int] = ()) -> Decision:
    """Decide for `mail` on `case`.

    `agents` maps roster address -> agent NAME; `secrets` are the reply-token
    keys, current first; `merged` are cases merged into `case`, whose tokens
    count for it.
    """
    roster = {address.strip().lower(): name for address, name in agents.items()}
    senders = _from_addresses(mail)
    agent = next((roster[a] for a in senders if a in roster), None)
    if agent is None:
        return Decision(False, None, reason=NOT_AGENT, detail="the From address is not an agent's")
    if len(senders) > 1 or len(mail.headers.get("from", [])) > 1:
        return _refuse(agent, TWO_FROM, f"the mail names {len(senders)} From addresses in "
                                        f"{len(mail.headers.get('from', []))} From field(s); it must name one")
    automatic = _automatic(mail)
    if automatic:
        return _refuse(agent, AUTOMATIC, automatic)
    verdict = _verdict(mail, _domain(senders[0].rpartition("@")[2]), authserv_id)
    if verdict.forged:
        return _refuse(agent, FORGED_FROM, verdict.detail)
    token_failure = _token(mail, {case, *merged}, case, agent, now, secrets, set(roster.values()))
    if token_failure is None:
        return Decision(True, agent, how=TOKEN)
    if verdict.how:
        return Decision(True, agent, how=verdict.how)
    if token_failure[0] != NO_PROOF:
        return _refuse(agent, *token_failure)
    return _refuse(agent, verdict.reason or NO_PROOF, f"{token_failure[1]}; {verdict.detail}")


def _refuse(agent: str, reason: str, detail: str) -> Decision:
    return Decision(False, agent, reason=reason, detail=detail)


def _from_addresses(mail: ParsedMail) -> list[str]:
    """The distinct addresses of all From fields, lower-case, in order. The header
    values are decoded, so an encoded display name can add an address-like
    string here: that can refuse a mail, never let one through."""
    found = [a.lower().rstrip(".") for value in mail.headers.get("from", []) for a in _ADDRESS.findall(value)]
    if mail.from_addr:
        found.insert(0, mail.from_addr.lower())
    return list(dict.fromkeys(found))


def _automatic(mail: ParsedMail) -> str:
    """Why `mail` is automatic (RFC 3834 Auto-Submitted, Precedence), or ''."""
    for value in mail.headers.get("auto-submitted", []):
        keyword = value.split(";")[0].strip().lower()
        if keyword != "no":
            return f"the mail says Auto-Submitted: {keyword or '(empty)'}"
    for value in mail.headers.get("precedence", []):
        if value.strip().lower() in _BULK_PRECEDENCE:
            return f"the mail says Precedence: {value.strip().lower()}"
    return ""


# --- reply tokens -------------------------------------------------------------------


def _token(mail: ParsedMail, cases: set[int], case: int, agent: str, now: datetime,
           secrets: Sequence[bytes], names: set[str]) -> tuple[str, str] | None:
    """None when a token of `agent` for one of `cases` verifies; else the
    (reason, detail) of the candidate that came closest: a good token for
    someone else, then an expired one, then an altered one."""
    closest: tuple[int, str, str] | None = None
    for candidate in tokens.find_tokens(mail):
        result = tokens.verify(candidate, now, secrets, names)
        if isinstance(result, tokens.Verified):
            if result.agent == agent and result.case in cases:
                return None
            if result.agent != agent:
                found = (0, OTHER_AGENT, f"the reply token was made for agent {result.agent}, not {agent}")
            else:
                found = (1, OTHER_CASE, f"the reply token was made for case {result.case}, not case {case}")
        elif result.reason == tokens.EXPIRED:
            when = f"{result.expired_at:%Y-%m-%d %H:%M} UTC" if result.expired_at else "before now"
            found = (2, EXPIRED_TOKEN, f"the reply token expired at {when}; answer a newer mail about the case")
        else:
            found = (3, ALTERED_TOKEN, "the reply token does not match its signature (altered or not ours)")
        if closest is None or found[0] < closest[0]:
            closest = found
    if closest is None:
        return NO_PROOF, "the mail does not answer one we sent (no reply token)"
    return closest[1], closest[2]


# --- Authentication-Results -----------------------------------------------------------


@dataclass(frozen=True)
class _Verdict:
    how: str | None = None  # DMARC | DKIM: the trusted server vouches for the From domain
    forged: bool = False  # the trusted server says dmarc=fail for the From domain
    reason: str | None = None  # OTHER_SERVER | NOT_TOPMOST when no verdict could be read
    detail: str = ""


def _verdict(mail: ParsedMail, from_domain: str, authserv_id: str | None) -> _Verdict:
    values = mail.headers.get("authentication-results", [])
    if not authserv_id:
        return _Verdict(detail="no receiving server is trusted for Authentication-Results")
    if not values:
        return _Verdict(detail="the mail has no Authentication-Results header")
    ours = authserv_id.strip().lower()
    top = _parse(values[0])
    if top is not None and (top.authserv_id or "").lower() == ours:
        return _read(top, from_domain, ours)
    below = any(h is not None and (h.authserv_id or "").lower() == ours for h in map(_parse, values[1:]))
    top_name = "an unreadable one" if top is None else f"one of {top.authserv_id}"
    if below:
        return _Verdict(reason=NOT_TOPMOST, detail=f"the header of {ours} is below {top_name}, "
                                                   "which may have been written by the sender")
    if top is None:
        return _Verdict(detail="the topmost Authentication-Results header cannot be read")
    return _Verdict(reason=OTHER_SERVER, detail=f"the topmost Authentication-Results header is from "
                                                f"{top.authserv_id}, not {ours}")


def _parse(value: str) -> authres.AuthenticationResultsHeader | None:
    """The parsed header, or None: a header authres cannot read is no verdict."""
    try:
        return authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # authres raises its own SyntaxError, and others on odd input
        return None


def _read(header: authres.AuthenticationResultsHeader, from_domain: str, ours: str) -> _Verdict:
    dkim_pass = False
    for result in header.results:
        method, outcome = str(result.method).lower(), str(result.result).lower()
        if method == "dmarc":
            claimed = _prop(result, "header", "from")
            if claimed is not None and _domain(claimed) != from_domain:
                continue  # a verdict on another domain (a second From) says nothing of ours
            if outcome == "pass":
                return _Verdict(how=DMARC)
            if outcome == "fail":
                return _Verdict(forged=True, detail=f"{ours} says the From domain {from_domain} fails DMARC")
        elif method == "dkim" and outcome == "pass":
            signer = _prop(result, "header", "d")
            identity = _prop(result, "header", "i")
            domains = {_domain(signer or ""), _domain((identity or "").rpartition("@")[2])} - {""}
            dkim_pass = dkim_pass or from_domain in domains
    if dkim_pass:
        return _Verdict(how=DKIM)
    return _Verdict(detail=f"{ours} reports no DMARC or DKIM pass for {from_domain}")


def _prop(result: authres.core.AuthenticationResult, ptype: str, name: str) -> str | None:
    for prop in result.properties:
        if str(prop.type).lower() == ptype and str(prop.name).lower() == name and prop.value:
            return str(prop.value)
    return None


def _domain(name: str) -> str:
    """A domain as DNS compares it: lower-case, no trailing dot, A-labels."""
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name
