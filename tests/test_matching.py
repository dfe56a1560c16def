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
        p = matching.Pattern(re.compile(source, re.IGNORECASE))
        assert p.search(text) is expected, source
