"""Classify: what a new case is, how urgent, and whose.

For mail that opens a case, this stage looks the sender up in the customer
directory and decides type, status, priority, team, need-by date and the
customer fields, from four rule files in `rules/` that the team edits
(classification.toml, priority.toml, routing.toml, workflow.toml; their
comments are the manual). Every field records the rule that set it in
`work.decided_by`, so "why is this P2?" always has an answer.

Matching is on one normalised text, built once per mail: subject and body
(quoted '>' lines dropped, the first 20 KB only), lower-cased, accents and
apostrophes removed, whitespace runs made one space. Rule phrases and
patterns get the same treatment when loaded, so "nao funciona" matches
"não funciona" and "cant log in" matches "can't log in". Everything is
compiled at load time; a mail costs a few dozen regex searches.

The loaders here also hold the TOML reader that locates keys (`TomlTable`),
so that every error names the file and the line.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from mailproc import directory
from mailproc.config import MailboxConfig, parse_duration
from mailproc.errors import ConfigError
from mailproc.models import CASE_TYPES, PLANS, PRIORITIES, STATUSES, Customer
from mailproc.rules import compile_pattern, read_toml

BODY_LIMIT = 20_000  # characters of body scanned: enough for any request, cheap for huge mails
PAID_PLANS = frozenset({"paid", "enterprise"})
SCOPES = ("subject", "body", "both")


# --- locating keys in a TOML file -------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


class TomlLines:
    """Where each table header and key of a TOML file is, for error messages.

    A light scan of the file's lines (headers `[a.b]` and `[[a]]`, keys
    `name =`), good for the files people write by hand.
    """

    def __init__(self, path: Path):
        try:
            self.lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            self.lines = []
        self.headers: list[tuple[int, tuple[str, ...], bool]] = []  # (line index, name, is array)
        for index, line in enumerate(self.lines):
            m = _HEADER.match(line)
            if m:
                name = tuple(part.strip().strip("\"'") for part in m.group(2).split("."))
                self.headers.append((index, name, m.group(1) == "[["))

    def _header(self, address: tuple) -> int | None:
        """Index into self.headers of the table at `address` (strings, ints for array items)."""
        name, nth = tuple(p for p in address if isinstance(p, str)), None
        if address and isinstance(address[-1], int):
            nth = address[-1]
        count = 0
        for position, (_, header, is_array) in enumerate(self.headers):
            if header != name:
                continue
            if nth is None and not is_array:
                return position
            if nth is not None and is_array:
                if count == nth:
                    return position
                count += 1
        return None

    def _region(self, position: int | None) -> range:
        """Line indexes of a table's body (position None: the top level)."""
        start = 0 if position is None else self.headers[position][0] + 1
        following = [h[0] for h in self.headers if h[0] >= start]
        return range(start, following[0] if following else len(self.lines))

    def where(self, address: tuple, key: str | None = None, needle: str | None = None) -> str | None:
        """'line N' of `needle` or `key` inside the table at `address`, else of the table itself."""
        if address:
            position = self._header(address)
            if position is None:  # an inline table: point at its key in the parent
                parent = address[:-1]
                last = address[-1]
                return self.where(parent, last if isinstance(last, str) else None, needle)
        else:
            position = None
        region = self._region(position)
        if needle:
            for index in region:
                if needle in self.lines[index]:
                    return f"line {index + 1}"
        if key is not None:
            pattern = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*[=.]")
            for index in region:
                if pattern.match(self.lines[index]):
                    return f"line {index + 1}"
        if position is not None:
            return f"line {self.headers[position][0] + 1}"
        return None


class TomlTable:
    """One table of a rule file: typed reads whose errors name the file and line."""

    def __init__(self, path: Path, data: dict[str, Any], lines: TomlLines, address: tuple = ()):
        self.path, self.data, self.lines, self.address = path, data, lines, address

    @classmethod
    def root(cls, path: Path, data: dict[str, Any]) -> "TomlTable":
        return cls(path, data, TomlLines(path))

    @property
    def label(self) -> str:
        """How people see the table: [types.bug], or [[rule]] #3 "bug-error"."""
        if not self.address:
            return "top level"
        if isinstance(self.address[-1], int):
            name = self.data.get("name")
            named = f" {name!r}" if isinstance(name, str) else ""
            return f"[[{'.'.join(map(str, self.address[:-1]))}]] #{self.address[-1] + 1}{named}"
        return "[" + ".".join(map(str, self.address)) + "]"

    def error(self, key: str | None, message: str, needle: str | None = None) -> ConfigError:
        where = self.lines.where(self.address, key, needle)
        what = f"{self.label} {key}: " if key else f"{self.label}: "
        return ConfigError(what + message, file=str(self.path), where=where)

    def check_keys(self, known: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
        for key in self.data:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(known)}"
                raise self.error(key, f"unknown key{extra}")
        for key in required:
            if key not in self.data:
                raise self.error(None, f"{key!r} is required")

    def table(self, key: str) -> "TomlTable":
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return TomlTable(self.path, value, self.lines, self.address + (key,))

    def tables(self, key: str) -> list["TomlTable"]:
        """An array of tables, `[[key]]`."""
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, f"must be a list of tables: write [[{key}]] sections")
        return [TomlTable(self.path, v, self.lines, self.address + (key, i)) for i, v in enumerate(value)]

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.error(key, "must be a non-empty string")
        return value

    def bool(self, key: str, default: bool | None = None) -> bool | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def int(self, key: str, default: int | None = None, minimum: int = 0) -> int | None:
        value = self.data.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise self.error(key, f"must be a whole number, at least {minimum}")
        return value

    def str_list(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(key, "must be a list of non-empty strings")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.str(key, default)
        if value is not None and value not in choices:
            raise self.error(key, f"unknown value {value!r}; one of: {', '.join(choices)}")
        return value

    def choice_list(self, key: str, choices: tuple[str, ...]) -> list[str]:
        values = self.str_list(key)
        for value in values:
            if value not in choices:
                raise self.error(key, f"unknown value {value!r}; one of: {', '.join(choices)}", needle=value)
        return values

    def duration(self, key: str) -> timedelta | None:
        value = self.str(key)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def date_list(self, key: str) -> list[date]:
        """ISO dates, written as TOML dates (2026-12-25) or strings ("2026-12-25")."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, "must be a list of dates, e.g. [2026-12-25]")
        days = []
        for item in value:
            if isinstance(item, date) and not isinstance(item, datetime):
                days.append(item)
                continue
            try:
                days.append(date.fromisoformat(item))
            except (TypeError, ValueError):
                raise self.error(key, f"not a date: {item!r} (use YYYY-MM-DD)", needle=str(item)) from None
        return days


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
    """The part of a body worth matching: first BODY_LIMIT chars, quoted lines dropped."""
    text = text[:BODY_LIMIT]
    if ">" in text:
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))
    return normalise(text)


@dataclass
class Facts:
    """What rules can test about one new mail; built once, then read by every rule."""
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
        c = facts.customer
        if self.types is not None and facts.type not in self.types:
            return False
        if self.urgent is not None and facts.urgent != self.urgent:
            return False
        if self.known_customer is not None and (c is not None) != self.known_customer:
            return False
        if self.plans is not None and (c is None or c.plan not in self.plans):
            return False
        if self.paid is not None and (c is not None and c.plan in PAID_PLANS) != self.paid:
            return False
        for flag in ("high_value", "partner", "internal"):
            wanted = getattr(self, flag)
            if wanted is not None and bool(c is not None and getattr(c, flag)) != wanted:
                return False
        if self.min_licenses is not None and (c is None or c.licenses < self.min_licenses):
            return False
        if self.mailboxes is not None and facts.mailbox not in self.mailboxes:
            return False
        if self.senders is not None and not self.senders.match(facts.sender, facts.domain):
            return False
        if self.text:
            text = facts.both if self.scope == "both" else getattr(facts, self.scope)
            if not any(p.search(text) for p in self.text):
                return False
        return True


class Phrases:
    """A list of phrases: whole words, any case, accents/apostrophes ignored, a hyphen
    optional ("t-shirt" also finds "tshirt" and "t shirt").

    Most phrases are plain words: they are found with `str.find` and a check of
    the characters either side, which is many times faster than a regex.
    """

    def __init__(self, phrases: list[str]):
        literals, flexible = [], []
        for phrase in phrases:
            text = normalise(phrase)
            if "-" in text:
                source = " ".join(re.escape(w).replace(r"\-", "[- ]?") for w in text.split(" "))
                flexible.append(Pattern(re.compile(r"(?<!\w)" + source + r"(?!\w)")))
            else:
                literals.append(text)
        self.literals = tuple(sorted(set(literals), key=len, reverse=True))
        self.flexible = tuple(flexible)

    def search(self, text: str) -> bool:
        for literal in self.literals:
            start = text.find(literal)
            while start >= 0:
                end = start + len(literal)
                if not (start and _is_word(text[start - 1])) and not (end < len(text) and _is_word(text[end])):
                    return True
                start = text.find(literal, start + 1)
        return any(p.search(text) for p in self.flexible)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class Pattern:
    """A regex plus the literal text any match must contain ("needles"), found by
    reading the parsed regex; the regex only runs on text that holds a needle."""

    def __init__(self, regex: re.Pattern[str]):
        self.regex = regex
        self.needles = _needles_of(regex)

    @property
    def source(self) -> str:
        return self.regex.pattern

    def search(self, text: str) -> bool:
        if self.needles is not None and not any(n in text for n in self.needles):
            return False
        return self.regex.search(text) is not None


def _needles_of(regex: re.Pattern[str]) -> tuple[str, ...] | None:
    """Strings one of which every match contains, or None if unsure (then always run)."""
    try:
        from re import _constants as sre, _parser as parser  # Python 3.11+
        found = _needles(parser.parse(regex.pattern, regex.flags), sre)
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
            if all(options):
                consider(set().union(*options))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and arg[0] >= 1:
            consider(_needles(arg[2], sre))
    consider({"".join(run)} if run else None)
    return best


def pattern(source: str, table: TomlTable, key: str) -> Pattern:
    """A rule-file regex, checked as written (errors name its line), compiled folded."""
    compile_pattern(source, table.path, table.lines.where(table.address, key, source) or "")
    try:  # an escaped apostrophe goes as a whole, or the backslash would escape the next character
        return Pattern(re.compile(fold(source.replace("\\'", "")), re.IGNORECASE))
    except re.error:
        raise table.error(key, f"{source!r} is not valid once apostrophes are removed (the text has "
                               "none): write e.g. cant, not can't", needle=source) from None


def _globs(table: TomlTable) -> Senders | None:
    if "from" not in table.data:
        return None
    addresses, domains = [], []
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
    if table.str_list("phrases"):
        text.append(Phrases(table.str_list("phrases")))
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


def _check_names(rules: list[TomlTable]) -> None:
    seen: set[str] = set()
    for rule in rules:
        name = rule.str("name")
        if name is None:
            raise rule.error(None, "every rule needs a name")
        if name in seen:
            raise rule.error("name", f"two rules are named {name!r}")
        seen.add(name)


# --- classification.toml ------------------------------------------------------------------------

@dataclass(frozen=True)
class TypeDefaults:
    """What a new case of one type starts with (seed 000's case creation guidelines)."""
    name: str
    label: str
    status: str
    team: str
    need_by_days: int | None  # business days from arrival
    need_by_release_for: frozenset[str]  # priorities whose need-by is the next release


@dataclass(frozen=True)
class TypeRule:
    name: str
    type: str
    when: Conditions
    needs_triage: bool = False
    admin_task_type: str | None = None


@dataclass(frozen=True)
class Classification:
    types: dict[str, TypeDefaults]
    rules: tuple[TypeRule, ...]
    default_type: str

    def match(self, facts: Facts) -> TypeRule | None:
        return next((r for r in self.rules if r.when.matches(facts)), None)


TYPE_KEYS = ("label", "status", "team", "need_by_days", "need_by_release_for")
CLASSIFICATION_RULE_KEYS = ("name", "type", "needs_triage", "admin_task_type")


def load_classification(path: Path) -> Classification:
    path = Path(path)
    root = TomlTable.root(path, read_toml(path))
    root.check_keys(("default_type", "types", "rule"), required=("types",))
    types_table = root.table("types")
    types_table.check_keys(CASE_TYPES, required=CASE_TYPES)
    types = {}
    for name in CASE_TYPES:
        t = types_table.table(name)
        t.check_keys(TYPE_KEYS, required=("status", "team"))
        types[name] = TypeDefaults(
            name=name, label=t.str("label", name), status=t.choice("status", STATUSES),
            team=t.str("team"), need_by_days=t.int("need_by_days"),
            need_by_release_for=frozenset(t.choice_list("need_by_release_for", PRIORITIES)))
    allowed = tuple(k for k in CONDITION_KEYS if k != "types")  # the type is what is being decided
    tables = root.tables("rule")
    _check_names(tables)
    rules = []
    for t in tables:
        t.check_keys(CLASSIFICATION_RULE_KEYS + allowed, required=("name", "type"))
        rules.append(TypeRule(name=t.str("name"), type=t.choice("type", CASE_TYPES),
                              when=conditions(t, allowed), needs_triage=bool(t.bool("needs_triage")),
                              admin_task_type=t.str("admin_task_type")))
    return Classification(types=types, rules=tuple(rules),
                          default_type=root.choice("default_type", CASE_TYPES, "request"))


# --- priority.toml ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PriorityRule:
    name: str
    priority: str
    when: Conditions


@dataclass(frozen=True)
class PriorityRules:
    urgent: tuple[Pattern, ...]  # seed 004's "huge impact" phrases
    rules: tuple[PriorityRule, ...]
    default: str

    def find_urgent(self, text: str) -> str | None:
        """The urgent pattern found in normalised `text`, or None."""
        return next((p.source for p in self.urgent if p.search(text)), None)

    def match(self, facts: Facts) -> PriorityRule | None:
        return next((r for r in self.rules if r.when.matches(facts)), None)


def load_priority(path: Path) -> PriorityRules:
    path = Path(path)
    root = TomlTable.root(path, read_toml(path))
    root.check_keys(("urgent_phrases", "default", "rule"))
    urgent = tuple(pattern(p, root, "urgent_phrases") for p in root.str_list("urgent_phrases"))
    tables = root.tables("rule")
    _check_names(tables)
    rules = []
    for t in tables:
        t.check_keys(("name", "priority") + CONDITION_KEYS, required=("name", "priority"))
        rules.append(PriorityRule(t.str("name"), t.choice("priority", PRIORITIES), conditions(t)))
    return PriorityRules(urgent=urgent, rules=tuple(rules), default=root.choice("default", PRIORITIES, "P6"))


# --- routing.toml -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    name: str
    team: str
    tags: tuple[str, ...]
    when: Conditions


@dataclass(frozen=True)
class Routing:
    rules: tuple[Route, ...]

    def match(self, facts: Facts) -> Route | None:
        return next((r for r in self.rules if r.when.matches(facts)), None)


def load_routing(path: Path) -> Routing:
    path = Path(path)
    root = TomlTable.root(path, read_toml(path))
    root.check_keys(("rule",))
    tables = root.tables("rule")
    _check_names(tables)
    routes = []
    for t in tables:
        t.check_keys(("name", "team", "tags") + CONDITION_KEYS, required=("name", "team"))
        routes.append(Route(t.str("name"), t.str("team"), tuple(t.str_list("tags")), conditions(t)))
    return Routing(tuple(routes))


# --- workflow.toml ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timer:
    """What happens to a case that sits in `status`: optional reminder, then a move."""
    status: str
    to: str
    after: timedelta | None  # from entering the status, or from the reminder if there is one;
    #                          None: set per case (hold N days)
    remind: timedelta | None = None  # mail the customer a reminder this long after entering
    note: bool = False  # add an internal note when the timer moves the case


@dataclass(frozen=True)
class Workflow:
    labels: dict[str, str]  # status -> label for people
    customer_reply: dict[str, str]  # status -> status a customer reply moves the case to
    timers: dict[str, Timer]
    releases: tuple[date, ...]  # sorted

    def label(self, status: str) -> str:
        return self.labels.get(status, status)

    def on_customer_reply(self, status: str) -> str | None:
        return self.customer_reply.get(status)

    def timer(self, status: str) -> Timer | None:
        return self.timers.get(status)

    def next_release(self, after: date) -> date | None:
        """The first release strictly after `after` (a release today is too late to promise)."""
        return next((d for d in self.releases if d > after), None)


def load_workflow(path: Path) -> Workflow:
    path = Path(path)
    root = TomlTable.root(path, read_toml(path))
    root.check_keys(("statuses", "customer_reply", "timers", "releases"), required=("statuses",))
    statuses = root.table("statuses")
    statuses.check_keys(STATUSES, required=STATUSES)
    labels = {s: statuses.str(s) for s in STATUSES}
    replies = {}
    if "customer_reply" in root.data:
        table = root.table("customer_reply")
        table.check_keys(STATUSES)
        replies = {s: table.choice(s, STATUSES) for s in table.data}
    timers = {}
    if "timers" in root.data:
        table = root.table("timers")
        table.check_keys(STATUSES)
        for status in table.data:
            t = table.table(status)
            t.check_keys(("to", "after", "remind", "note"), required=("to",))
            timers[status] = Timer(status=status, to=t.choice("to", STATUSES), after=t.duration("after"),
                                   remind=t.duration("remind"), note=bool(t.bool("note")))
    return Workflow(labels=labels, customer_reply=replies, timers=timers,
                    releases=tuple(sorted(root.date_list("releases"))))


# --- the stage ----------------------------------------------------------------------------------

def decide(rules: Any, facts: Facts, now: datetime, mailbox: MailboxConfig | None
           ) -> tuple[dict[str, Any], dict[str, str]]:
    """The new case's fields and, for each, the rule that set it. Pure: no database."""
    classification, priority_rules = rules.classification, rules.priority
    urgent = priority_rules.find_urgent(facts.both)
    facts.urgent = urgent is not None
    fields: dict[str, Any] = {"urgent": facts.urgent}
    by: dict[str, str] = {"urgent": "priority:urgent_phrases"}

    rule = classification.match(facts)
    if rule is None:
        facts.type, triage, source = classification.default_type, True, "classification:default"
        fields["admin_task_type"] = None
    else:
        facts.type, triage, source = rule.type, rule.needs_triage, f"classification:{rule.name}"
        fields["admin_task_type"] = rule.admin_task_type
    fields["type"], by["type"] = facts.type, source
    fields["needs_triage"], by["needs_triage"] = triage, source
    if fields["admin_task_type"]:
        by["admin_task_type"] = source
    defaults = classification.types[facts.type]
    type_source = f"classification:types.{facts.type}"
    fields["status"], by["status"] = defaults.status, type_source
    fields["tier"], by["tier"] = "triage", "classification:default"

    prio = priority_rules.match(facts)
    fields["priority"] = prio.priority if prio else priority_rules.default
    by["priority"] = f"priority:{prio.name}" if prio else "priority:default"

    route = rules.routing.match(facts)
    if route is not None:
        fields["team"], by["team"] = route.team, f"routing:{route.name}"
    elif mailbox is not None and mailbox.team:
        fields["team"], by["team"] = mailbox.team, f"mailbox:{mailbox.name}"
    else:
        fields["team"], by["team"] = defaults.team, type_source
    fields["tags"] = list(route.tags) if route else []
    if fields["tags"]:
        by["tags"] = by["team"]

    fields["need_by"], by["need_by"] = None, type_source
    if fields["priority"] in defaults.need_by_release_for:
        local_today = now.astimezone(rules.sla.calendar.tz).date()
        fields["need_by"] = rules.workflow.next_release(local_today)
        by["need_by"] = "workflow:releases"
    elif defaults.need_by_days is not None:
        fields["need_by"] = rules.sla.calendar.add_business_days(now, defaults.need_by_days)

    customer = facts.customer
    source = f"directory:{customer.match}" if customer is not None else "directory:unknown"
    fields["company"] = customer.company if customer is not None else None
    fields["partner"] = bool(customer is not None and customer.partner)
    fields["internal"] = bool(customer is not None and customer.internal)
    for name in ("company", "partner", "internal"):
        by[name] = source
    return fields, by


def run(work) -> None:
    """Fill work.fields / work.decided_by for mail that opens a new case."""
    if (work.screen is not None or work.case is not None or work.duplicate_of is not None
            or work.disposition is not None):
        return
    mail = work.mail
    sender = (mail.reply_to[0] if mail.reply_to else mail.from_addr or "").strip().lower()
    work.customer = directory.lookup(sender) if sender else None
    facts = Facts(subject=normalise(mail.subject or ""), body=body_text(mail.text or ""), sender=sender,
                  mailbox=work.mailbox.name if work.mailbox else None, customer=work.customer)
    fields, by = decide(work.ctx.rules, facts, work.now, work.mailbox)
    work.fields.update(fields)
    work.decided_by.update(by)
    if fields["urgent"]:
        work.note("classify", "priority:urgent_phrases")
    for name in ("type", "priority", "team"):
        work.note("classify", by[name])
