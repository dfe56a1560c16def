"""Signed reply tokens: make, verify, rotation, expiry, and how they travel in mail."""

from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc import tokens
from mailproc.parse import parse
from mailproc.tokens import ALTERED, EXPIRED, MALFORMED, Refusal, Verified

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=timezone.utc)
KEY = b"current-key-0123456789abcdef"
OLD = b"previous-key-0123456789abcdef"
ROSTER = ["alice", "bob", "carol"]


def test_round_trip_names_case_and_agent():
    token = tokens.make(123, "bob", NOW, KEY)
    assert tokens.verify(token, NOW, [KEY], ROSTER) == Verified(case=123, agent="bob")


def test_token_is_short_lower_case_base32():
    token = tokens.make(2**32 - 1, "an agent with a rather long roster name", NOW, KEY)
    assert len(token) == tokens.TOKEN_LENGTH == 26
    assert set(token) <= set(string.ascii_lowercase + "234567")
    # room for a 37-character mailbox name before it in a 64-octet local part
    assert len(tokens.reply_address(token, "customer-support-europe-middle-east@example.com").split("@")[0]) <= 64


def test_upper_case_still_verifies():
    token = tokens.make(7, "alice", NOW, KEY)
    assert tokens.verify(token.upper(), NOW, [KEY], ROSTER) == Verified(7, "alice")


def test_agent_is_bound_another_roster_name_is_named():
    token = tokens.make(5, "carol", NOW, KEY)
    assert tokens.verify(token, NOW, [KEY], ["alice", "bob", "carol"]) == Verified(5, "carol")
    # carol left the roster: nobody can claim her token
    assert tokens.verify(token, NOW, [KEY], ["alice", "bob"]) == Refusal(ALTERED)


def test_wrong_key_is_altered():
    token = tokens.make(5, "bob", NOW, KEY)
    assert tokens.verify(token, NOW, [b"another-key-0123456789abcdef"], ROSTER) == Refusal(ALTERED)


def test_changed_case_number_is_altered():
    token = tokens.make(122, "bob", NOW, KEY)
    other = tokens.make(123, "bob", NOW, KEY)
    forged = other[:7] + token[7:]  # case 123's head (first 4 bytes and more) on case 122's MAC
    assert forged != token and forged != other
    assert tokens.verify(forged, NOW, [KEY], ROSTER) == Refusal(ALTERED)


def test_rotation_old_key_verifies_while_kept():
    token = tokens.make(9, "bob", NOW, OLD)
    assert tokens.verify(token, NOW, [KEY, OLD], ROSTER) == Verified(9, "bob")
    assert tokens.verify(token, NOW, [KEY], ROSTER) == Refusal(ALTERED)


def test_ninety_days_then_expired_with_case_and_agent():
    token = tokens.make(11, "alice", NOW, KEY)
    assert tokens.verify(token, NOW + timedelta(days=90) - timedelta(seconds=1), [KEY], ROSTER) == Verified(11, "alice")
    refused = tokens.verify(token, NOW + timedelta(days=91), [KEY], ROSTER)
    assert isinstance(refused, Refusal)
    assert (refused.reason, refused.case, refused.agent) == (EXPIRED, 11, "alice")
    # rounded up to the end of the UTC day on which the 90 days end
    assert refused.expired_at == datetime(2025, 9, 1, tzinfo=timezone.utc)


def test_expiry_is_checked_only_after_the_mac():
    token = tokens.make(11, "alice", NOW, KEY)
    assert tokens.verify(token, NOW + timedelta(days=200), [OLD], ROSTER) == Refusal(ALTERED)


def test_custom_ttl():
    token = tokens.make(3, "bob", NOW, KEY, ttl=timedelta(days=1))
    assert tokens.verify(token, NOW + timedelta(hours=12), [KEY], ROSTER) == Verified(3, "bob")
    assert tokens.verify(token, NOW + timedelta(days=2), [KEY], ROSTER).reason == EXPIRED  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [
    "",
    "abc",
    "a" * 25,
    "a" * 27,
    "aaaaa62pb7trjbl2jf5c4wd601",  # 0 and 1 are not base32
    "aaaaa62pb7trjbl2jf5c4wd6-e",
    "aaaaa62pb7trjbl2jf5c4wd66\u212a",  # KELVIN SIGN: lower() makes it a 'k'
    " aaaaa62pb7trjbl2jf5c4wd66",
])
def test_malformed(bad):
    assert tokens.verify(bad, NOW, [KEY], ROSTER) == Refusal(MALFORMED)


def test_spare_bits_must_be_zero():
    """26 characters hold 130 bits for 128: a last character differing only in the
    spare bits decodes to the same bytes, and must not verify as the same token."""
    token = tokens.make(1, "bob", NOW, KEY)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    last = alphabet.index(token[-1])
    twin = token[:-1] + alphabet[last ^ 1]  # the lowest of the 2 spare bits set
    assert tokens.verify(token, NOW, [KEY], ROSTER) == Verified(1, "bob")
    assert tokens.verify(twin, NOW, [KEY], ROSTER) == Refusal(MALFORMED)


@pytest.mark.parametrize("case", [0, -1, 2**32])
def test_case_out_of_range(case):
    with pytest.raises(ValueError, match="case number"):
        tokens.make(case, "bob", NOW, KEY)


def test_short_secret_refused():
    with pytest.raises(ValueError, match="16 bytes"):
        tokens.make(1, "bob", NOW, b"short")
    token = tokens.make(1, "bob", NOW, KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        tokens.verify(token, NOW, [KEY, b""], ROSTER)


def test_empty_agent_and_far_expiry_refused():
    with pytest.raises(ValueError, match="agent"):
        tokens.make(1, "", NOW, KEY)
    with pytest.raises(ValueError, match="does not fit"):
        tokens.make(1, "bob", datetime(2150, 1, 1, tzinfo=timezone.utc), KEY)


# --- how tokens travel ------------------------------------------------------------------


def test_message_id_and_reply_address_forms():
    token = tokens.make(123, "bob", NOW, KEY)
    assert tokens.message_id(token, "support.example.com", "9f2c01") == f"mp.{token}.9f2c01@support.example.com"
    assert tokens.reply_address(token, "support@example.com") == f"support+{token}@example.com"
    assert tokens.reply_address(token, "support+old@example.com") == f"support+{token}@example.com"
    assert tokens.reply_address(token, "support@example.com", delimiter="-") == f"support-{token}@example.com"


def test_forms_refuse_bad_input():
    token = tokens.make(123, "bob", NOW, KEY)
    with pytest.raises(ValueError, match="too long"):
        tokens.reply_address(token, "x" * 40 + "@example.com")
    with pytest.raises(ValueError, match="not an address"):
        tokens.reply_address(token, "support")
    with pytest.raises(ValueError, match="not a reply token"):
        tokens.reply_address("NOT-A-TOKEN", "support@example.com")
    with pytest.raises(ValueError, match="unique"):
        tokens.message_id(token, "example.com", "has space")
    with pytest.raises(ValueError, match="not a reply token"):
        tokens.message_id(token.upper(), "example.com", "abc")


def _reply(headers: str) -> bytes:
    return (
        "From: Bob <bob@agents.example>\r\n"
        "Subject: Re: [Case #123] Cannot log in\r\n"
        "Message-ID: <reply-1@agents.example>\r\n"
        "Date: Mon, 02 Jun 2025 09:30:00 +0000\r\n"
        f"{headers}"
        "\r\nDone.\r\n"
    ).encode()


def test_find_tokens_in_reply_to_references_newest_first_then_addresses():
    t1, t2, t3, t4 = (tokens.make(n, "bob", NOW, KEY) for n in (1, 2, 3, 4))
    mail = parse(_reply(
        f"To: Support <support+{t4}@example.com>, other@example.com\r\n"
        f"Cc: support+{t1}@example.com\r\n"
        f"In-Reply-To: <mp.{t3}.aa11@support.example.com>\r\n"
        f"References: <CAF123@mail.gmail.com>\r\n <mp.{t1}.bb22@support.example.com>\r\n"
        f" <mp.{t2}.cc33@support.example.com> <mp.{t3}.aa11@support.example.com>\r\n"
    ))
    assert tokens.find_tokens(mail) == [t3, t2, t1, t4]


def test_find_tokens_reads_what_servers_upper_cased():
    token = tokens.make(1, "bob", NOW, KEY)
    mail = parse(_reply(f"To: SUPPORT+{token.upper()}@EXAMPLE.COM\r\n"
                        f"In-Reply-To: <MP.{token.upper()}.AA11@SUPPORT.EXAMPLE.COM>\r\n"))
    assert tokens.find_tokens(mail) == [token]
    assert tokens.verify(tokens.find_tokens(mail)[0], NOW, [KEY], ROSTER) == Verified(1, "bob")


def test_find_tokens_ignores_lookalikes():
    mail = parse(_reply(
        "To: support@example.com, support+billing@example.com, support+" + "a" * 27 + "@example.com\r\n"
        "In-Reply-To: <mailproc.0123456789abcdef01234567@support.example.com>\r\n"
        "References: <xmp." + "a" * 26 + "@example.com> <mp." + "a" * 25 + "@example.com>\r\n"
    ))
    assert tokens.find_tokens(mail) == []


def test_find_tokens_is_bounded():
    refs = " ".join(f"<mp.{tokens.make(n, 'bob', NOW, KEY)}.{n:x}@example.com>" for n in range(1, 2001))
    mail = parse(_reply(f"To: support@example.com\r\nReferences: {refs}\r\n"))
    found = tokens.find_tokens(mail)
    assert len(found) == tokens.MAX_CANDIDATES
    assert found[0] == tokens.make(2000, "bob", NOW, KEY)  # the newest reference first


# --- properties -----------------------------------------------------------------------

cases = st.integers(min_value=1, max_value=2**32 - 1)
names = st.text(min_size=1, max_size=40)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(timezone.utc))
keys = st.binary(min_size=16, max_size=64)


@given(case=cases, agent=names, now=moments, key=keys)
def test_property_verify_of_make_gives_back_case_and_agent(case, agent, now, key):
    token = tokens.make(case, agent, now, key)
    assert tokens.verify(token, now, [key], ["someone else", agent]) == Verified(case, agent)
    assert tokens.verify(token.upper(), now, [key], [agent]) == Verified(case, agent)


@settings(max_examples=300)
@given(case=cases, agent=names, key=keys, data=st.data())
def test_property_any_single_character_change_is_refused(case, agent, key, data):
    token = tokens.make(case, agent, NOW, key)
    at = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    new = data.draw(st.characters().filter(lambda c: c.lower() != token[at]))
    changed = token[:at] + new + token[at + 1:]
    assert isinstance(tokens.verify(changed, NOW, [key], [agent]), Refusal)


@given(case=cases, agent=names, key=keys, data=st.data())
def test_property_dropped_or_added_character_is_refused(case, agent, key, data):
    token = tokens.make(case, agent, NOW, key)
    at = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    dropped = token[:at] + token[at + 1:]
    at = data.draw(st.integers(min_value=0, max_value=len(token)))
    added = token[:at] + data.draw(st.characters()) + token[at:]
    assert tokens.verify(dropped, NOW, [key], [agent]) == Refusal(MALFORMED)
    assert tokens.verify(added, NOW, [key], [agent]) == Refusal(MALFORMED)


@given(case=cases, agent=names, key=keys, data=st.data())
def test_property_any_mix_of_case_verifies(case, agent, key, data):
    token = tokens.make(case, agent, NOW, key)
    flips = data.draw(st.lists(st.booleans(), min_size=len(token), max_size=len(token)))
    mixed = "".join(c.upper() if f else c for c, f in zip(token, flips))
    assert tokens.verify(mixed, NOW, [key], [agent]) == Verified(case, agent)


@given(text=st.text(max_size=40))
def test_property_verify_never_raises_on_junk(text):
    assert isinstance(tokens.verify(text, NOW, [KEY], ROSTER), (Refusal, Verified))
