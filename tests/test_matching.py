"""Matching text the way the rules do: normalised, whole words, regexes with a safe shortcut."""

from __future__ import annotations

import re

from mailproc.rules import matching


def test_phrases_match_whole_words_without_accents_or_apostrophes():
    phrases = matching.Phrases(["can't log in", "não funciona", "t-shirt", "bug"])
    assert phrases.search(matching.normalise("I CAN’T   log\nin"))
    assert phrases.search(matching.normalise("cant log in"))
    assert phrases.search(matching.normalise("Nao funciona"))
    assert phrases.search(matching.normalise("free tshirt"))
    assert phrases.search(matching.normalise("free t shirt"))
    assert not phrases.search(matching.normalise("debugging is fun"))
    assert not phrases.search(matching.normalise("scant login"))


def test_regex_shortcut_never_changes_the_answer():
    """The needle prefilter must only skip regexes that could not match."""
    cases = [(r"\bcheck-?out (is )?not working", "the checkout is not working", True),
             (r"(web ?site|site) (is )?(down|offline)", "site offline", True),
             (r"(web ?site|site) (is )?(down|offline)", "website up", False),
             (r"a|b", "b", True), (r"x*y?", "", True), (r"(?:erro|error) 50[0-4]", "erro 503", True)]
    for source, text, expected in cases:
        p = matching.Pattern.parsed(source, re.IGNORECASE)
        assert p.search(text) is expected, source


def test_the_text_index_passes_over_only_rules_that_cannot_hold():
    """Every rule that holds for a labelled mail (tried one by one) is among the index's
    candidates, for the classification, priority and urgent rules; and it passes most over."""
    import email
    from email import policy
    from pathlib import Path

    from mailproc.rules import load_rules
    from mailproc.rules.matching import Facts, TextIndex, body_text, normalise

    rules = load_rules()
    checked = passed_over = 0
    for path in sorted((Path(__file__).parent / "labelled" / "dev").glob("*.eml"))[::3]:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        part = msg.get_body(("plain", "html"))
        facts = Facts(subject=normalise(str(msg["Subject"] or "")), body=body_text(part.get_content() if part else ""),
                      sender="a@b.example", mailbox=None, customer=None)
        for conditions, index in [([r.when for r in rules.classification.rules], rules.classification.index),
                                  ([r.when for r in rules.priority.rules], rules.priority.index)]:
            holding = [i for i, c in enumerate(conditions) if c.found(facts) is not None]
            candidates = index.candidates(facts.both)
            assert set(holding) <= set(candidates) and candidates == sorted(candidates), path
            checked += len(conditions)
            passed_over += len(conditions) - len(candidates)
        urgent = [i for i, p in enumerate(rules.priority.urgent) if p.search(facts.both)]
        assert set(urgent) <= set(rules.priority.urgent_index.candidates(facts.both)), path
    assert passed_over > checked / 2
    assert TextIndex([None, frozenset({"abc"})]).candidates("xyz") == [0]
    assert TextIndex([frozenset({"ab"}), frozenset({"bc"})]).candidates("abc") == [0, 1]  # overlapping keys
    assert TextIndex([]).candidates("abc") == []


def test_a_pattern_without_capitals_runs_without_ignorecase_and_finds_the_same():
    """Rules read normalised, lower-case text: only a pattern that names a capital (or an
    escape that could be one) keeps IGNORECASE, the slower path of Python's engine."""
    from mailproc.rules.matching import _folded
    text = matching.normalise("The EXPORT to CSV stopped working: Erro 500")
    plain, capital, escaped = _folded(r"\bexport\w* to csv\b"), _folded(r"Erro \d+"), _folded(r"\x45rro")
    assert not plain.regex.flags & re.IGNORECASE
    assert capital.regex.flags & re.IGNORECASE and escaped.regex.flags & re.IGNORECASE
    assert (plain.find(text), capital.find(text), escaped.find(text)) == ("export to csv", "erro 500", "erro")
    assert _folded(r"\W\S\D\bdone\B").regex.flags & re.IGNORECASE == 0  # capital escapes name no letter
