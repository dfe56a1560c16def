"""authorise(): who may command a case by mail, on real header shapes.

The Authentication-Results headers below are written as Gmail, Microsoft 365
and Postfix with OpenDKIM/OpenDMARC write them (values of real mail, with the
names changed); each mail goes through mailproc.parse like any other.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc import authz, tokens
from mailproc.authz import Decision, authorise
from mailproc.parse import parse

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=timezone.utc)
KEY = b"current-key-0123456789abcdef"
OLD = b"previous-key-0123456789abcdef"
AGENTS = {"bob@agents.example": "bob", "Alice@Agents.Example": "alice"}
CASE = 123
POSTFIX = "mail.example.com"
GMAIL = "mx.google.com"

GMAIL_PASS = (
    "ARC-Authentication-Results: i=1; mx.google.com;\r\n"
    "       dkim=pass header.i=@agents.example header.s=20230601 header.b=Qm9iIHNp;\r\n"
    "       spf=pass (google.com: domain of bob@agents.example designates 209.85.220.41 as permitted sender)"
    " smtp.mailfrom=bob@agents.example;\r\n"
    "       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=agents.example\r\n"
    "Authentication-Results: mx.google.com;\r\n"
    "       dkim=pass header.i=@agents.example header.s=20230601 header.b=Qm9iIHNp;\r\n"
    "       spf=pass (google.com: domain of bob@agents.example designates 209.85.220.41 as permitted sender)"
    " smtp.mailfrom=bob@agents.example;\r\n"
    "       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=agents.example\r\n"
)
# Gmail for a domain without a DMARC record: the DKIM result names the signer by header.i only
GMAIL_DKIM_ONLY = (
    "Authentication-Results: mx.google.com;\r\n"
    "       dkim=pass header.i=@agents.example header.s=google header.b=dGVzdGluZw;\r\n"
    "       spf=pass (google.com: domain of bob@agents.example designates 209.85.220.41 as permitted sender)"
    " smtp.mailfrom=bob@agents.example\r\n"
)
# Postfix: each milter adds its own header on top; OpenDMARC runs last
OPENDMARC_PASS = (
    "Authentication-Results: mail.example.com; dmarc=pass (p=reject dis=none) header.from=agents.example\r\n"
    "Authentication-Results: mail.example.com;\r\n"
    "\tdkim=pass (2048-bit key; unprotected) header.d=agents.example header.i=@agents.example"
    " header.a=rsa-sha256 header.s=mail header.b=Hp4bOlsL;\r\n"
    "\tdkim-atps=neutral\r\n"
    "Authentication-Results: mail.example.com; spf=pass smtp.mailfrom=agents.example\r\n"
)
OPENDMARC_FAIL = (
    "Authentication-Results: mail.example.com; dmarc=fail (p=reject dis=none) header.from=agents.example\r\n"
    "Authentication-Results: mail.example.com; dkim=fail reason=\"signature verification failed\" (2048-bit key;"
    " unprotected) header.d=agents.example header.i=@agents.example header.b=Hp4bOlsL\r\n"
    "Authentication-Results: mail.example.com; spf=fail smtp.mailfrom=agents.example\r\n"
)
OPENDKIM_PASS = (
    "Authentication-Results: mail.example.com;\r\n"
    "\tdkim=pass (2048-bit key; unprotected) header.d=agents.example header.i=@agents.example"
    " header.a=rsa-sha256 header.s=mail header.b=Hp4bOlsL;\r\n"
    "\tdkim-atps=neutral\r\n"
)
# Exchange Online writes no authserv-id: authres cannot read it
MICROSOFT = (
    "Authentication-Results: spf=pass (sender IP is 209.85.128.41)\r\n"
    " smtp.mailfrom=agents.example; dkim=pass (signature was verified)\r\n"
    " header.d=agents.example;dmarc=pass action=none\r\n"
    " header.from=agents.example;compauth=pass reason=100\r\n"
)


def reply(headers: str = "", *, sender: str = "Bob <bob@agents.example>", to: str = "support@example.com") -> bytes:
    """An agent's reply to a notification, as it arrives in the case mailbox."""
    return (
        "Return-Path: <bob@agents.example>\r\n"
        f"{headers}"
        "Received: from mail-wr1-f41.google.com (mail-wr1-f41.google.com [209.85.221.41])\r\n"
        "\tby mail.example.com (Postfix) with ESMTPS id 4Vt3xk0QJbz9sW\r\n"
        "\tfor <support@example.com>; Mon,  2 Jun 2025 09:30:01 +0000 (UTC)\r\n"
        f"From: {sender}\r\n"
        f"To: {to}\r\n"
        "Subject: Re: [Case #123] Cannot log in [status=resolved]\r\n"
        "Message-ID: <CAB9x=reply@mail.gmail.com>\r\n"
        "Date: Mon, 2 Jun 2025 11:30:00 +0200\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "\r\n"
        "Fixed: the account was locked. Try again now.\r\n"
    ).encode()


def decide(raw: bytes, *, authserv_id: str | None = POSTFIX, case: int = CASE, secrets=(KEY,),
           merged=()) -> Decision:
    return authorise(parse(raw), case=case, agents=AGENTS, now=NOW, secrets=list(secrets),
                     authserv_id=authserv_id, merged=merged)


def token(case: int = CASE, agent: str = "bob", *, when: datetime = NOW, key: bytes = KEY) -> str:
    return tokens.make(case, agent, when, key)


def answering(tok: str) -> str:
    """Threading headers of a reply to the notification that carried `tok`."""
    mid = tokens.message_id(tok, "support.example.com", "5e1f0a")
    return f"In-Reply-To: <{mid}>\r\nReferences: <CAF1234.abcd@mail.acme.example> <{mid}>\r\n"


def refused(decision: Decision, reason: str, agent: str | None = "bob") -> None:
    assert (decision.allowed, decision.agent, decision.how, decision.reason) == (False, agent, None, reason)
    assert decision.detail


# --- allowed ---------------------------------------------------------------------------


def test_token_in_in_reply_to():
    assert decide(reply(answering(token()))) == Decision(True, "bob", how="token")


def test_token_in_the_reply_to_address_it_was_sent_to():
    to = f"Support <{tokens.reply_address(token(), 'support@example.com')}>"
    assert decide(reply(to=to)) == Decision(True, "bob", how="token")


def test_token_in_references_only_behind_other_ids():
    mid = tokens.message_id(token(), "support.example.com", "77")
    raw = reply(f"References: <CAF1234.abcd@mail.acme.example> <{mid}> <CAB9x=other@mail.gmail.com>\r\n")
    assert decide(raw) == Decision(True, "bob", how="token")


def test_token_made_under_the_old_key_during_rotation():
    assert decide(reply(answering(token(key=OLD))), secrets=(KEY, OLD)) == Decision(True, "bob", how="token")


def test_token_of_a_case_merged_into_this_one():
    assert decide(reply(answering(token(case=99))), merged=[99]) == Decision(True, "bob", how="token")


def test_roster_addresses_compare_case_insensitively():
    raw = reply(answering(token(agent="alice")), sender="ALICE@agents.example")
    assert decide(raw) == Decision(True, "alice", how="token")


def test_quoted_local_part_of_an_agent_address():
    """What the header registry reads as the address counts, though no simple pattern sees it."""
    raw = reply(answering(token()), sender='"bob"@agents.example')
    assert decide(raw) == Decision(True, "bob", how="token")


def test_dmarc_pass_gmail():
    assert decide(reply(GMAIL_PASS), authserv_id=GMAIL) == Decision(True, "bob", how="dmarc")


def test_dmarc_pass_postfix_opendmarc():
    assert decide(reply(OPENDMARC_PASS)) == Decision(True, "bob", how="dmarc")


def test_dkim_pass_by_header_d_postfix_opendkim():
    assert decide(reply(OPENDKIM_PASS)) == Decision(True, "bob", how="dkim")


def test_dkim_pass_by_header_i_domain_gmail():
    assert decide(reply(GMAIL_DKIM_ONLY), authserv_id=GMAIL) == Decision(True, "bob", how="dkim")


def test_authserv_id_compares_case_insensitively():
    assert decide(reply(OPENDMARC_PASS), authserv_id="Mail.Example.COM ") == Decision(True, "bob", how="dmarc")


def test_token_wins_over_a_header_of_another_server():
    raw = reply(answering(token())
                + "Authentication-Results: mx.evil.example; dmarc=fail header.from=agents.example\r\n")
    assert decide(raw) == Decision(True, "bob", how="token")


def test_auto_submitted_no_is_a_person():
    assert decide(reply("Auto-Submitted: no\r\n" + answering(token()))).allowed


# --- not an agent ----------------------------------------------------------------------


def test_customer_is_not_an_agent_and_not_a_refusal():
    decision = decide(reply(answering(token()), sender="Jane <jane.doe@acme.example>"))
    assert (decision.allowed, decision.agent, decision.reason) == (False, None, authz.NOT_AGENT)


def test_mail_without_from_is_not_an_agent():
    raw = reply(OPENDMARC_PASS).replace(b"From: Bob <bob@agents.example>\r\n", b"")
    assert decide(raw).reason == authz.NOT_AGENT


# --- refusals -----------------------------------------------------------------------------


def test_forged_from_without_proof_is_no_proof():
    refused(decide(reply()), authz.NO_PROOF)


def test_forged_from_the_trusted_server_says_dmarc_fail():
    refused(decide(reply(OPENDMARC_FAIL)), authz.FORGED_FROM)


def test_forged_from_outweighs_a_token():
    """A token travels with a forwarded notification; the trusted server's
    dmarc=fail says this mail did not come from the agent's domain."""
    refused(decide(reply(OPENDMARC_FAIL + answering(token()))), authz.FORGED_FROM)


def test_token_of_another_case():
    decision = decide(reply(answering(token(case=122))))
    refused(decision, authz.OTHER_CASE)
    assert "122" in decision.detail


def test_token_of_another_agent():
    decision = decide(reply(answering(token(agent="alice"))))
    refused(decision, authz.OTHER_AGENT)
    assert "alice" in decision.detail


def test_token_of_another_agent_sent_to_the_reply_to_address():
    to = tokens.reply_address(token(agent="alice"), "support@example.com")
    refused(decide(reply(to=to)), authz.OTHER_AGENT)


def test_altered_token():
    good = token()
    bad = good[:10] + ("a" if good[10] != "a" else "b") + good[11:]
    refused(decide(reply(answering(bad))), authz.ALTERED_TOKEN)


def test_token_signed_with_a_retired_key_is_altered():
    refused(decide(reply(answering(token(key=OLD)))), authz.ALTERED_TOKEN)


def test_expired_token():
    decision = decide(reply(answering(token(when=NOW - timedelta(days=91)))))
    refused(decision, authz.EXPIRED_TOKEN)
    assert "2025-06-02 00:00 UTC" in decision.detail


def test_closest_token_is_reported():
    """Several candidates: the refusal names the one that came closest."""
    expired = token(when=NOW - timedelta(days=100))
    others = token(agent="alice")
    raw = reply(answering(expired) + f"Cc: support+{'a' * 26}@example.com\r\n",
                to=tokens.reply_address(others, "support@example.com"))
    refused(decide(raw), authz.OTHER_AGENT)


def test_authentication_results_from_another_server():
    raw = reply("Authentication-Results: mx.evil.example; dmarc=pass header.from=agents.example\r\n")
    decision = decide(raw)
    refused(decision, authz.OTHER_SERVER)
    assert "mx.evil.example" in decision.detail


def test_trusted_header_not_topmost():
    """The sender wrote a header claiming our id; our server added one of
    another id (as when authserv_id names the wrong server) on top."""
    raw = reply("Authentication-Results: mx2.example.com; spf=pass smtp.mailfrom=agents.example\r\n"
                "Authentication-Results: mail.example.com; dmarc=pass header.from=agents.example\r\n")
    refused(decide(raw), authz.NOT_TOPMOST)


def test_trusted_header_below_an_unreadable_one():
    refused(decide(reply(MICROSOFT + OPENDMARC_PASS)), authz.NOT_TOPMOST)


def test_unreadable_topmost_header_is_no_verdict():
    decision = decide(reply(MICROSOFT), authserv_id="outlook.com")
    refused(decision, authz.NO_PROOF)
    assert "cannot be read" in decision.detail


def test_microsoft_header_and_a_token():
    assert decide(reply(MICROSOFT + answering(token())), authserv_id="outlook.com").how == "token"


def test_pass_below_the_trusted_header_is_not_read():
    """OpenDKIM's pass sits below OpenDMARC's header: only the topmost counts."""
    raw = reply("Authentication-Results: mail.example.com; dmarc=none (p=none dis=none) header.from=agents.example\r\n"
                + OPENDKIM_PASS)
    refused(decide(raw), authz.NO_PROOF)


def test_dkim_pass_of_another_domain():
    raw = reply("Authentication-Results: mail.example.com; dkim=pass header.d=sendgrid.net header.i=@sendgrid.net"
                " header.s=s1 header.b=AbCd; spf=pass smtp.mailfrom=bounces.sendgrid.net\r\n")
    refused(decide(raw), authz.NO_PROOF)


def test_dmarc_pass_of_another_from_domain():
    raw = reply("Authentication-Results: mail.example.com; dmarc=pass (p=reject dis=none) header.from=evil.example\r\n")
    refused(decide(raw), authz.NO_PROOF)


def test_no_trusted_server_configured():
    decision = decide(reply(OPENDMARC_PASS), authserv_id=None)
    refused(decision, authz.NO_PROOF)
    assert "no receiving server is trusted" in decision.detail


def test_token_reason_before_header_reason():
    raw = reply(answering(token(when=NOW - timedelta(days=120)))
                + "Authentication-Results: mx.evil.example; dmarc=pass header.from=agents.example\r\n")
    refused(decide(raw), authz.EXPIRED_TOKEN)


def test_two_from_addresses():
    raw = reply(OPENDMARC_PASS + answering(token()), sender="bob@agents.example, eve@evil.example")
    refused(decide(raw), authz.TWO_FROM)


def test_two_from_addresses_agent_second():
    raw = reply(OPENDMARC_PASS, sender="Eve <eve@evil.example>, Bob <bob@agents.example>")
    refused(decide(raw), authz.TWO_FROM)


def test_two_from_fields():
    raw = reply(OPENDMARC_PASS + answering(token()) + "From: Eve <eve@evil.example>\r\n")
    refused(decide(raw), authz.TWO_FROM)


def test_two_from_fields_of_one_address():
    raw = reply(OPENDMARC_PASS + answering(token()) + "From: bob@agents.example\r\n")
    refused(decide(raw), authz.TWO_FROM)


def test_display_name_equal_to_the_address_is_one_address():
    raw = reply(OPENDMARC_PASS, sender='"bob@agents.example" <bob@agents.example>')
    assert decide(raw) == Decision(True, "bob", how="dmarc")


def test_from_group_hiding_a_second_address():
    raw = reply(OPENDMARC_PASS, sender="team: bob@agents.example, eve@evil.example;")
    refused(decide(raw), authz.TWO_FROM)


def test_auto_submitted():
    refused(decide(reply("Auto-Submitted: auto-replied; owner-email=\"bob@agents.example\"\r\n"
                         + answering(token()))), authz.AUTOMATIC)


def test_auto_generated_exchange_out_of_office():
    raw = reply("Auto-Submitted: auto-generated\r\nX-Auto-Response-Suppress: All\r\n" + OPENDMARC_PASS)
    refused(decide(raw), authz.AUTOMATIC)


def test_precedence_bulk_list_junk():
    for value in ("bulk", "list", "Junk"):
        refused(decide(reply(f"Precedence: {value}\r\n" + answering(token()))), authz.AUTOMATIC)


def test_every_reason_is_distinct():
    reasons = [authz.FORGED_FROM, authz.OTHER_CASE, authz.OTHER_AGENT, authz.ALTERED_TOKEN, authz.EXPIRED_TOKEN,
               authz.OTHER_SERVER, authz.NOT_TOPMOST, authz.TWO_FROM, authz.AUTOMATIC, authz.NO_PROOF, authz.NOT_AGENT]
    assert len(set(reasons)) == len(reasons)


# --- hostile input ----------------------------------------------------------------------

printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=300)


@settings(max_examples=200, deadline=None)
@given(value=printable)
def test_property_any_topmost_header_decides_without_raising(value):
    decision = decide(reply(f"Authentication-Results: {value}\r\n" + OPENDMARC_PASS))
    assert decision.agent == "bob"
    # whatever the sender wrote on top, it cannot make our header count
    assert decision.how != "dmarc" or value.lower().startswith("mail.example.com")


def test_pathological_header_in_bounded_time():
    value = "mail.example.com; " + "dkim=pass (" * 2000 + "x" + ")" * 2000 + " header.d=agents.example"
    started = time.monotonic()
    decision = decide(reply(f"Authentication-Results: {value}\r\n"))
    assert time.monotonic() - started < 2
    assert decision.agent == "bob"
