"""The subject grammar: prefixes, the case token, the command group (rules in mailproc/subject.py)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailproc.subject import (MAX_COMMANDS, VERBS, Command, clean_subject, find_token, find_tokens, is_reply,
                              parse_commands, render_commands, reply_subject, strip_commands, token_regex)

TOKEN = token_regex("[Case #{number}]")


def commands(subject: str) -> list[tuple[str, str | None]]:
    parsed = parse_commands(subject)
    assert parsed.problems == []
    return [(c.name, c.value) for c in parsed.commands]


# --- the command group ------------------------------------------------------------

def test_the_spec_example():
    subject = "Re: [Case #123] Cannot log in [status=resolved priority=P2 assign=bob]"
    parsed = parse_commands(subject)
    assert parsed.commands == [Command("status", "resolved", "status=resolved"),
                               Command("priority", "P2", "priority=P2"), Command("assign", "bob", "assign=bob")]
    assert parsed.problems == []
    assert subject[slice(*parsed.span)] == "[status=resolved priority=P2 assign=bob]"


@pytest.mark.parametrize("subject, expected", [
    ("Re: x [resolve]", [("resolve", None)]),
    ("[note] Re: x", [("note", None)]),
    ("x [RESOLVE]", [("resolve", None)]),  # phones capitalise
    ("x [tag=a,b]", [("tag", "a,b")]),
    ("x [needby=2026-12-01 time=1.5h hold=3d]", [("needby", "2026-12-01"), ("time", "1.5h"), ("hold", "3d")]),
    ("x [known=123-login-loop assign=Bob]", [("known", "123-login-loop"), ("assign", "Bob")]),
    ("x [untag=]", [("untag", "")]),
    ("x [merge=12 wait]", [("merge", "12"), ("wait", None)]),
    ("x [tier=T2 escalate=oncall ack]", [("tier", "T2"), ("escalate", "oncall"), ("ack", None)]),
    ("x [status=a=b]", [("status", "a=b")]),  # the value is everything after the first "="
    ("x [ status=pending\tnote ]", [("status", "pending"), ("note", None)]),
])
def test_commands_are_read(subject, expected):
    assert commands(subject) == expected


@pytest.mark.parametrize("subject", [
    "[Case #12] Printer", "[URGENT] Printer", "[EXTERNAL] Re: x", "[EXT] x", "Re[2]: x",
    "[Status update] server down", "[Help needed] x", "[Note to self] x", "[ref=12] order",
    "[Gold] customer", "[] x", "[ ] x", "Printer", "", "[resolve x", "resolve]", "[#12]",
])
def test_groups_that_are_not_commands(subject):
    assert parse_commands(subject) == ([], [], None)
    assert strip_commands(subject) == " ".join(subject.split())


def test_the_last_command_group_counts():
    parsed = parse_commands("[resolve] Re: [Case #3] x [status=pending note] [URGENT]")
    assert [c.name for c in parsed.commands] == ["status", "note"]


@pytest.mark.parametrize("subject, problem", [
    ("x [status=resolved prority=P2]", "unknown command 'prority' (did you mean 'priority'?)"),
    ("x [prority=P2]", "unknown command 'prority' (did you mean 'priority'?)"),
    ("x [resolved]", "unknown command 'resolved' (did you mean 'resolve'?)"),
    ("x [reslove]", "unknown command 'reslove' (did you mean 'resolve'?)"),
    ("x [Notes]", "unknown command 'notes' (did you mean 'note'?)"),
    ("x [resolve ref=3]", "unknown command 'ref'"),
    ("x [status=resolved pls]", "'pls' is not a command (write name=value or a verb, separated by spaces)"),
    ("x [priority=P2 #12]", "'#12' is not a command (write name=value or a verb, separated by spaces)"),
])
def test_erroneous_groups_are_command_groups_with_a_problem(subject, problem):
    parsed = parse_commands(subject)
    assert parsed.span is not None
    assert parsed.problems == [problem]
    assert strip_commands(subject) == "x"


def test_at_most_ten_commands():
    ten = "[" + " ".join(["note"] * MAX_COMMANDS) + "]"
    assert parse_commands(ten).problems == []
    parsed = parse_commands("[" + " ".join(["note"] * 12) + "]")
    assert parsed.problems == [f"more than {MAX_COMMANDS} commands (12)"]
    assert len(parsed.commands) == MAX_COMMANDS


def test_invisible_characters_are_ignored():
    # what our outgoing headers would drop must not hide a command from strip_commands
    assert commands("x [re\u200bsolve\x00 status=pend\u200eing]") == [("resolve", None), ("status", "pending")]
    assert strip_commands("x [re\u200bsolve]") == "x"


def test_the_verbs_are_a_parameter():
    assert parse_commands("x [frobnicate]", verbs={"frobnicate"}).commands == [Command.of("frobnicate")]
    assert parse_commands("x [resolve]", verbs={"frobnicate"}).span is None


def test_render():
    assert render_commands([Command.of("status", "resolved"), Command.of("note"), Command.of("untag", "")]) \
        == "[status=resolved note untag=]"
    assert render_commands([]) == ""
    for value in ("a b", "a]", "[a", "a\u200bb"):
        with pytest.raises(ValueError):
            render_commands([Command.of("tag", value)])
    with pytest.raises(ValueError):
        render_commands([Command("no such", None, "")])


# --- stripping ----------------------------------------------------------------------

@pytest.mark.parametrize("subject, stripped", [
    ("Re: [Case #123] Cannot log in [status=resolved priority=P2]", "Re: [Case #123] Cannot log in"),
    ("[resolve] Printer [note] [URGENT]", "Printer [URGENT]"),  # every command group, not only the last
    ("Printer[close]broken", "Printer broken"),
    ("[note [resolve] close] x", "x"),  # "[note close]" forms once "[resolve]" is gone
    ("[note [EXT] close] x", "[note [EXT] close] x"),
    ("[Case #3] [prority=P2] x", "[Case #3] x"),
    ("a ] b [ c", "a ] b [ c"),
])
def test_strip_commands(subject, stripped):
    assert strip_commands(subject) == stripped


# --- prefixes, tokens, clean and reply subjects ---------------------------------------

@pytest.mark.parametrize("subject, reply", [
    ("Re: x", True), ("AW: x", True), ("SV: x", True), ("RES: x", True), ("R: x", True), ("回复：x", True),
    ("Re[2]: x", True), ("Fwd: x", False), ("WG: x", False), ("ENC: x", False), ("TR: x", False),
    ("Resolved: x", False), ("x", False),
])
def test_reply_prefix_is_told_from_forward(subject, reply):
    assert is_reply(subject) is reply


@pytest.mark.parametrize("subject, expected", [
    ("Fwd: invoice", "Re: Fwd: invoice [Case #3]"),
    ("R: stampante", "R: stampante [Case #3]"),
    ("Printer [status=resolved]", "Re: Printer [Case #3]"),
    ("[resolve]", "Re: Your support request [Case #3]"),
    ("Re: x [Case #3] [close]", "Re: x [Case #3]"),
])
def test_reply_subject(subject, expected):
    assert reply_subject(subject, "[Case #3]") == expected


@pytest.mark.parametrize("subject, clean", [
    ("Re: Printer [status=resolved]", "Printer"),
    ("R: stampante", "stampante"),
    ("Re[Case #3]: x", "x"),  # the removed token leaves "Re :" in front
    ("[Case #[Case #1]1] Re: y", "y"),  # and here a new token
    ("[note [Case #3] close] x", "x"),  # and here a command group
])
def test_clean_subject_strips_until_nothing_changes(subject, clean):
    assert clean_subject(subject, TOKEN) == clean


def test_tokens():
    assert find_tokens("[Case #3] Re: [Case #4] [case #3] [Case #5]", TOKEN) == [3, 4, 5]
    assert find_tokens(" ".join(f"[Case #{n}]" for n in range(50)), TOKEN) == list(range(10))
    assert find_token("x [Case #" + "9" * 5000 + "]", TOKEN) is None  # int() of it would raise
    assert find_token("x [Case #" + "9" * 18 + "]", TOKEN) == 10 ** 18 - 1


# --- bounds -----------------------------------------------------------------------

MB = 1 << 20


@pytest.mark.parametrize("subject", [
    "[resolvx]" * (MB // 9), "[resolved]" * (MB // 10), "[" * MB, "]" * MB, "[" + "note " * (MB // 5) + "]",
    "[note " * (MB // 12) + "[resolve]" + " close]" * (MB // 12), "[Case #" * (MB // 7) + "1]" * (MB // 7),
    "Re: " * (MB // 4), "[Case #" + "9" * MB + "]", "[" + " " * MB + "x", "x" * MB + "[resolve]",
])
def test_a_megabyte_subject_takes_bounded_time(subject):
    started = time.perf_counter()
    parse_commands(subject)
    strip_commands(subject)
    clean_subject(subject, TOKEN)
    reply_subject(subject, "[Case #1]")
    find_tokens(subject, TOKEN)
    assert time.perf_counter() - started < 1.0


# --- properties -------------------------------------------------------------------

# Text made of the pieces the grammar cares about, so that examples hit it (arbitrary
# text rarely forms a bracket group, let alone a token or a command).
PIECES = ["[", "]", " ", "=", ":", "Re", "Re: ", "AW:", "回复：", "[Case #1]", "Case", "#", "1", "resolve", "note",
          "close", "status=x", "tag=a,b", "prority=P2", "resolved", "x", "URGENT", "\x00", "\u200e", "\t", "\r\n"]
structured = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
any_text = st.text() | structured | st.text(alphabet=st.characters(max_codepoint=0x9f))
values = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"),
                                        blacklist_characters="[]"), max_size=12)
valid_commands = st.lists(st.builds(Command.of, st.sampled_from(VERBS), st.none() | values),
                          min_size=1, max_size=MAX_COMMANDS)
no_brackets = st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=40)


@given(any_text)
def test_never_raises(subject):
    parse_commands(subject)
    strip_commands(subject)
    clean_subject(subject, TOKEN)
    reply_subject(subject, "[Case #1]")
    find_tokens(subject, TOKEN)


@given(valid_commands, structured)
def test_a_rendered_group_parses_back(cmds, before):
    before = strip_commands(before)  # text in front of the group holds none of its own
    parsed = parse_commands(f"{before} {render_commands(cmds)}")
    assert (parsed.commands, parsed.problems) == (cmds, [])


@given(valid_commands, no_brackets, no_brackets)
def test_strip_removes_exactly_the_group(cmds, before, after):
    assert strip_commands(f"{before} {render_commands(cmds)} {after}") == " ".join(f"{before} {after}".split())


@given(any_text)
def test_stripped_subjects_hold_no_command(subject):
    stripped = strip_commands(subject)
    assert parse_commands(stripped).span is None
    assert strip_commands(stripped) == stripped
    assert parse_commands(reply_subject(subject, "[Case #1]")).span is None


@given(any_text)
def test_clean_subject_is_idempotent(subject):
    clean = clean_subject(subject, TOKEN)
    assert clean_subject(clean, TOKEN) == clean
    assert find_token(clean, TOKEN) is None and parse_commands(clean).span is None


@given(any_text)
def test_strip_takes_nothing_but_command_groups(subject):
    if parse_commands(subject).span is None:
        assert strip_commands(subject) == " ".join(subject.split())
    else:
        assert len(strip_commands(subject)) < len(" ".join(subject.split()))
