"""Matching rules against a mail: one normalised text, phrases, patterns, conditions.

Classification, priority and routing rules all test the same things (words in
the subject or body, the sender, the mailbox, what the directory knows of the
customer), so the conditions and the way text is compared live here, once.

Matching is on one normalised text, built once per mail: subject and body
(the sender's own words of the first 8,000 characters: rules.trim), lower-cased, accents and
apostrophes removed, whitespace runs made one space. Rule phrases and
patterns get the same treatment when loaded, so "nao funciona" matches
"não funciona" and "cant log in" matches "can't log in". Everything is
compiled at load time; a mail costs a few dozen regex searches.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import import_module

from mailproc.models import CASE_TYPES, PLANS, Customer
from mailproc.rules.reader import TomlTable, compile_pattern
from mailproc.rules.trim import own_text

BODY_LIMIT = 8_000  # characters of body scanned: the ask is at the top; a pasted log below it only costs time
SUBJECT_LIMIT = 1_000  # characters of subject scanned (a hostile mail's subject can be megabytes)
PAID_PLANS = frozenset({"paid", "enterprise"})
SCOPES = ("subject", "body", "both")


# --- the text rules match against --------------------------------------------------------------

_DROP = str.maketrans({"'": None, "\u2019": None, "\u2018": None, "`": None, "\u00b4": None})
_MARKS = re.compile(r"[\u0300-\u036f]")
_SPACE = re.compile(r"\s+")


def fold(text: str) -> str:
    """Remove apostrophes and accents (not case): how both mail text and rule phrases are compared."""
    text = text.translate(_DROP)
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return text


def normalise(text: str) -> str:
    return _SPACE.sub(" ", fold(text)).strip().lower()


def body_text(text: str) -> str:
    """The part of a body worth matching: of its first BODY_LIMIT chars, what the sender
    wrote this time (quoted history, signature and disclaimers left out: rules.trim)."""
    return normalise(own_text(text[:BODY_LIMIT]))


@dataclass
class Facts:
    """What rules can test about one new mail; built once, then read by every rule.
    `subject` and `body` are normalised (`normalise`, `body_text`): lower case, no accents."""
    subject: str
    body: str
    sender: str  # lower-case address
    mailbox: str | None
    customer: Customer | None
    urgent: bool = False
    type: str | None = None
    both: str = field(init=False)

    def __post_init__(self) -> None:
        self.both = self.subject + "\n" + self.body

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2]


# --- conditions, shared by the classification, priority and routing rules -----------------------

TEXT_KEYS = ("phrases", "patterns", "in")
CUSTOMER_KEYS = ("plan", "paid", "high_value", "partner", "internal", "known_customer", "min_licenses")
CONDITION_KEYS = TEXT_KEYS + CUSTOMER_KEYS + ("from", "mailbox", "urgent", "types")


@dataclass(frozen=True)
class Senders:
    """`from` globs: with '@' they match the address, without it the domain."""
    addresses: re.Pattern[str] | None
    domains: re.Pattern[str] | None

    def match(self, address: str, domain: str) -> bool:
        return bool((self.addresses and self.addresses.match(address))
                    or (self.domains and self.domains.match(domain)))


@dataclass(frozen=True)
class Conditions:
    """All given conditions must hold; the text holds if any phrase or pattern is found."""
    text: tuple[Phrases | Pattern, ...] = ()
    scope: str = "both"
    senders: Senders | None = None
    mailboxes: frozenset[str] | None = None
    types: frozenset[str] | None = None
    urgent: bool | None = None
    plans: frozenset[str] | None = None
    paid: bool | None = None
    high_value: bool | None = None
    partner: bool | None = None
    internal: bool | None = None
    known_customer: bool | None = None
    min_licenses: int | None = None

    def matches(self, facts: Facts) -> bool:
        return self.found(facts) is not None

    def keys(self) -> frozenset[str] | None:
        """Strings one of which the mail's text must contain for these conditions to hold
        (TextIndex); None when they may hold without any (no text condition, or a pattern
        with no literal part)."""
        if not self.text:
            return None
        found: set[str] = set()
        for element in self.text:
            keys = element.keys()
            if keys is None:
                return None
            found |= keys
        return frozenset(found)

    def found(self, facts: Facts) -> str | None:
        """None when a condition fails; else the text that made the text condition hold
        (the phrase, or what the pattern matched), or "" for a rule without one: the
        evidence a case's history shows."""
        c = facts.customer
        if self.types is not None and facts.type not in self.types:
            return None
        if self.urgent is not None and facts.urgent != self.urgent:
            return None
        if self.known_customer is not None and (c is not None) != self.known_customer:
            return None
        if self.plans is not None and (c is None or c.plan not in self.plans):
            return None
        if self.paid is not None and (c is not None and c.plan in PAID_PLANS) != self.paid:
            return None
        for flag in ("high_value", "partner", "internal"):
            wanted = getattr(self, flag)
            if wanted is not None and bool(c is not None and getattr(c, flag)) != wanted:
                return None
        if self.min_licenses is not None and (c is None or c.licenses < self.min_licenses):
            return None
        if self.mailboxes is not None and facts.mailbox not in self.mailboxes:
            return None
        if self.senders is not None and not self.senders.match(facts.sender, facts.domain):
            return None
        if not self.text:
            return ""
        text = facts.both if self.scope == "both" else getattr(facts, self.scope)
        return next((hit for p in self.text if (hit := p.find(text)) is not None), None)


class Phrases:
    """A list of phrases: whole words, any case, accents/apostrophes ignored, a hyphen
    optional ("t-shirt" also finds "tshirt" and "t shirt").

    Most phrases are plain words: they are found with `str.find` and a check of
    the characters either side, which is many times faster than a regex. Before
    that, the phrase's longest word must be one of the text's words (a set built
    once per text): most phrases of most rules are not in a given mail, and a set
    lookup says so without reading the text.
    """

    def __init__(self, phrases: list[str]):
        literals, flexible = [], []
        for phrase in phrases:
            text = normalise(phrase)
            if "-" in text:
                source = " ".join(re.escape(w).replace(r"\-", "[- ]?") for w in text.split(" "))
                flexible.append(Pattern.parsed(r"(?<!\w)" + source + r"(?!\w)"))
            else:
                literals.append(text)
        self.literals = tuple(sorted(set(literals), key=len, reverse=True))
        # every \w+ word of a literal found as a whole word is a whole word of the text
        self.keyed = tuple((max(_TOKEN.findall(t), key=len, default=""), t) for t in self.literals)
        self.flexible = tuple(flexible)

    def search(self, text: str) -> bool:
        return self.find(text) is not None

    def keys(self) -> frozenset[str] | None:
        found = set(self.literals)
        for pattern in self.flexible:
            if pattern.needles is None:
                return None
            found.update(pattern.needles)
        return frozenset(found)

    def find(self, text: str) -> str | None:
        """The first phrase found in `text` as a whole word, or None."""
        words = words_of(text)
        for key, literal in self.keyed:
            if key and key not in words:
                continue
            start = text.find(literal)
            while start >= 0:
                end = start + len(literal)
                if not (start and _is_word(text[start - 1])) and not (end < len(text) and _is_word(text[end])):
                    return literal
                start = text.find(literal, start + 1)
        return next((hit for p in self.flexible if (hit := p.find(text)) is not None), None)


_TOKEN = re.compile(r"\w+")
_WORDS: dict[str, frozenset[str]] = {}


def words_of(text: str) -> frozenset[str]:
    """The \\w+ words of a text, kept for the few texts of the mail being classified."""
    words = _WORDS.get(text)
    if words is None:
        if len(_WORDS) >= 8:
            _WORDS.clear()
        words = _WORDS[text] = frozenset(_TOKEN.findall(text))
    return words


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class Pattern:
    """A regex plus the literal text any match must contain ("needles"), found by
    reading the parsed regex; the regex only runs on text that holds a needle."""

    def __init__(self, regex: re.Pattern[str], needles: tuple[str, ...] | None, source: str | None = None):
        self.regex = regex
        self.needles = needles
        self.source = regex.pattern if source is None else source

    @classmethod
    def parsed(cls, source: str, flags: int = 0) -> "Pattern":
        """The regex and its needles from one parse of `source`: parsing is most of what
        compiling costs, and the rules' regexes are most of what loading them costs."""
        try:
            parser, compiler = import_module("re._parser"), import_module("re._compiler")  # Python 3.11+
            tree = parser.parse(source, flags)
        except re.error:
            raise
        except Exception:  # another Python: compiled as usual, no needles (always run), still correct
            return cls(re.compile(source, flags), None)
        return cls(compiler.compile(tree, flags), _needles_in(tree), source)

    def keys(self) -> frozenset[str] | None:
        return None if self.needles is None else frozenset(self.needles)

    def search(self, text: str) -> bool:
        return self.find(text) is not None

    def find(self, text: str) -> str | None:
        """What the regex matched in `text`, or None."""
        needles = self.needles
        if needles is not None:  # a plain loop: this runs for every pattern of every rule on every mail
            for needle in needles:
                if needle in text:
                    break
            else:
                return None
        match = self.regex.search(text)
        return None if match is None else match.group(0)


class TextIndex:
    """Which of a list of conditions can hold for a text, found in one pass over it.

    Every phrase and most patterns need some literal string in the text (a phrase itself,
    a pattern's "needles"). An Aho-Corasick automaton (pyahocorasick) over all of them finds
    which ones a mail contains in a single scan; only the conditions with one of those, and
    those with no literal to go by, are then tried, in their order. A mail holds a few dozen
    of the thousands of strings, so most rules are passed over without being called.
    """

    def __init__(self, keys: list[frozenset[str] | None]):
        import ahocorasick

        self.size = len(keys)
        # no literal to go by, or an empty one (found in any text): always tried
        self.always = tuple(i for i, k in enumerate(keys) if k is None or "" in k)
        owners: dict[str, list[int]] = {}
        for i, found in enumerate(keys):
            for key in found or ():
                if key:
                    owners.setdefault(key, []).append(i)
        self.owners = tuple(tuple(v) for v in owners.values())
        self.automaton = ahocorasick.Automaton() if owners else None
        if self.automaton is not None:
            for n, key in enumerate(owners):
                self.automaton.add_word(key, n)
            self.automaton.make_automaton()

    def candidates(self, text: str) -> list[int]:
        """The indexes of the conditions that may hold for `text`, in order."""
        if self.automaton is None:
            return list(self.always)
        chosen = set(self.always)
        for n in {n for _, n in self.automaton.iter(text)}:
            chosen.update(self.owners[n])
        return sorted(chosen)


def _needles_in(tree) -> tuple[str, ...] | None:
    """Strings one of which every match of a parsed regex contains, or None if unsure
    (then the regex always runs)."""
    try:
        found = _needles(tree, import_module("re._constants"))
    except Exception:  # an unusual construct or another Python: no shortcut, still correct
        return None
    if not found or not all(n.isascii() for n in found):
        return None
    return tuple(sorted({n.lower() for n in found}))


def _needles(items, sre) -> set[str] | None:
    best: set[str] | None = None

    def consider(candidate: set[str] | None) -> None:
        nonlocal best
        if candidate and all(candidate) and (best is None or min(map(len, candidate)) > min(map(len, best))):
            best = candidate

    run: list[str] = []
    for op, arg in items:
        if op is sre.LITERAL:
            run.append(chr(arg))
            continue
        consider({"".join(run)} if run else None)
        run = []
        if op is sre.SUBPATTERN:
            consider(_needles(arg[-1], sre))
        elif op is sre.BRANCH:
            options = [_needles(branch, sre) for branch in arg[1]]
            found = [o for o in options if o]
            if len(found) == len(options):  # every branch has a needle
                consider(set[str]().union(*found))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and arg[0] >= 1:
            consider(_needles(arg[2], sre))
    consider({"".join(run)} if run else None)
    return best


def pattern(source: str, table: TomlTable, key: str) -> Pattern:
    """A rule-file regex, compiled folded; one that does not compile is compiled as
    written too, so that the error says what is wrong with what was written, and where."""
    try:
        return _folded(source)
    except re.error:
        compile_pattern(source, table.path, table.lines.where(table.address, key, source) or "")
        raise table.error(key, f"{source!r} is not valid once apostrophes are removed (the text has "
                               "none): write e.g. cant, not can't", needle=source) from None


@functools.lru_cache(maxsize=16384)
def _folded(source: str) -> Pattern:
    """Kept per source for the process: the rules hold a few thousand regexes, more than
    `re` keeps, and parsing them is most of the time it takes to load the rules; a reload
    (SIGHUP) compiles only the patterns that are new."""
    # an escaped apostrophe goes as a whole, or the backslash would escape the next character
    folded = fold(source.replace("\\'", ""))
    # The text is normalised, lower case (Facts): a pattern with no capital of its own needs
    # no IGNORECASE, and runs a third faster without it (Python's engine folds every character).
    return Pattern.parsed(folded, int(re.IGNORECASE) if _may_need_case(folded) else 0)


_ESCAPE = re.compile(r"\\.")
_LETTER_ESCAPE = re.compile(r"\\[xuUN0-7]")  # \x41, \u0041, \N{…}, octal: may be a capital


def _may_need_case(source: str) -> bool:
    """Whether a regex may name a capital letter: one written, or an escape that could be one."""
    if _LETTER_ESCAPE.search(source):
        return True
    return any(c.isupper() for c in _ESCAPE.sub("", source))


def _globs(table: TomlTable) -> Senders | None:
    if "from" not in table.data:
        return None
    addresses: list[str] = []
    domains: list[str] = []
    for glob in table.str_list("from"):
        glob = glob.strip().lower()
        (addresses if "@" in glob else domains).append(fnmatch.translate(glob))
    join = lambda parts: re.compile("|".join(parts)) if parts else None  # noqa: E731
    return Senders(join(addresses), join(domains))


def conditions(table: TomlTable, allowed: tuple[str, ...] = CONDITION_KEYS) -> Conditions:
    """Read the condition keys of one rule (the caller has checked for unknown keys)."""
    for key in CONDITION_KEYS:
        if key in table.data and key not in allowed:
            raise table.error(key, "this condition is not available in this file")
    text: list[Phrases | Pattern] = []
    phrases = table.str_list("phrases")
    for phrase in phrases:
        if not normalise(phrase).replace("-", ""):
            raise table.error("phrases", f"{phrase!r} is nothing once case, accents and apostrophes are set "
                                         "aside: it would match every mail", needle=phrase)
    if phrases:
        text.append(Phrases(phrases))
    text += [pattern(p, table, "patterns") for p in table.str_list("patterns")]
    scope = table.choice("in", SCOPES, "both")
    if "in" in table.data and not text:
        raise table.error("in", "only means something with phrases or patterns")
    optional = lambda key, choices: (frozenset(table.choice_list(key, choices))  # noqa: E731
                                     if key in table.data else None)
    return Conditions(
        text=tuple(text), scope=scope, senders=_globs(table),
        mailboxes=frozenset(table.str_list("mailbox")) if "mailbox" in table.data else None,
        types=optional("types", CASE_TYPES), urgent=table.bool("urgent"),
        plans=optional("plan", PLANS), paid=table.bool("paid"), high_value=table.bool("high_value"),
        partner=table.bool("partner"), internal=table.bool("internal"),
        known_customer=table.bool("known_customer"), min_licenses=table.int("min_licenses"),
    )
