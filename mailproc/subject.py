"""The subject line: reply prefixes, the case token and the command group.

A subject carries three things every part of mailproc reads or writes, so
they are parsed here and nowhere else:

- reply / forward prefixes ("Re:", "AW:", "回复：") - stripped for the case
  summary, and not doubled when we answer;
- the case token (config `case_token`, e.g. "[Case #{number}]") - how a mail
  names its case (threading);
- the command group - how an agent changes a case (SPEC §5):
  `Re: [Case #123] Cannot log in [status=resolved priority=P2 assign=bob]`.

The command group, exactly
--------------------------
A *bracket group* is "[" ... "]" with no bracket inside. Its words are
separated by white space (so no space around "="); characters nobody sees
(control, format and bidirectional characters) are dropped from a word first,
because our outgoing headers drop them too. A word is

  a command     a verb ("resolve") or verb=value ("tag=a,b", "untag=", "time=1.5h"),
                the verb in any letter case, the value as written (any characters);
  a near miss   a verb with 1-3 letters added ("resolved", "notes=x"), or one typo
                (a letter added, dropped, changed or two swapped) away from a verb
                of 5 or more letters ("prority=P2", "reslove");
  an unknown    name=value with any other name ("ref=12");
  other         anything else ("URGENT", "Case", "#12").

A group is a command group when
  (a) it holds a verb=value command: then every other word in it that is
      not a command is an error ("[status=resolved pls]"); or
  (b) every word is a command, a near miss or an unknown, and at least one is
      a command or a near miss ("[resolve]", "[prority=P2]", "[resolved]").
So "[Case #12]", "[URGENT]", "[EXT]", "[Status update]", "[Help needed]" and
"[ref=12]" are not command groups: a bare verb is common English, and only
"verb=value" or a group of nothing but command-like words shows intent.
Near misses and unknowns make the group an *erroneous* command group: it
changes nothing and the agent is told why, with a "did you mean" hint,
instead of a typo silently sending an internal note to the customer.

The last command group of a subject is *the* command group; any earlier one
is ordinary text. A group with more than MAX_COMMANDS words is an error.
Every subject we send has its command groups stripped (`strip_commands`, done
by the templates), so a reply that quotes our subject brings no old command
back.

Bounds: every function here is linear in its input and reads at most
MAX_SUBJECT characters (clean_subject: MAX_CLEAN), so a 1 MB subject costs
no more than a long one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from functools import lru_cache
from typing import NamedTuple

# The verbs of SPEC §5. The command registry's names must be these (strip_commands
# uses this list for every outgoing subject, whatever the registry holds).
VERBS: tuple[str, ...] = (
    "status", "priority", "type", "assign", "team", "tier", "escalate", "note", "hold", "wait",
    "pending", "resolve", "close", "reopen", "split", "merge", "tag", "untag", "known", "needby",
    "time", "ack", "help",
)
MAX_COMMANDS = 10  # per mail (SPEC §5); a group with more words is an error
MAX_SUBJECT = 8192  # characters read: no mail client writes more, and we send at most 500
MAX_CLEAN = 2000  # characters clean_subject reads (a case summary is 200)
MAX_TOKENS = 10  # distinct case numbers find_tokens reports

# Reply / forward prefixes as mail clients write them in many languages:
# Re Fwd Fw (English), AW WG (German), SV VS (Scandinavian, Finnish VS), RES ENC
# (Portuguese), RV (Spanish), TR (French), R (Italian), Antw Doorst (Dutch), Odp PD
# (Polish), YNT İLT (Turkish), 回复 回覆 答复 转发 轉寄 (Chinese), 返信 転送
# (Japanese). Counters ("Re[2]:", "Re(3):", "Re^2:"), French spacing ("RE :") and
# the full-width colon are accepted. `reply` tells a reply from a forward, so that
# our answer to "Fwd: x" is "Re: Fwd: x" but our answer to "AW: x" stays "AW: x".
_PREFIX = re.compile(
    r"\s*(?:(?P<reply>re|aw|sv|vs|res|antw(?:oord)?|odp|ynt|r|回复|回覆|答复|答覆|返信)"
    r"|(?P<forward>fwd?|fw|wg|enc|rv|tr|doorst|pd|ilt|İlt|İLT|转发|轉寄|轉發|転送))"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*",
    re.IGNORECASE,
)

_BRACKET = re.compile(r"[\[\]]")
# Dropped from a word before it is read: C0/C1 controls that are not white space,
# soft hyphen, zero-width and bidirectional controls, the BOM, lone surrogates.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}", re.ASCII)
_PAIR = re.compile(r"([A-Za-z][A-Za-z0-9_-]{0,31})=(.*)", re.ASCII | re.DOTALL)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"

_COMMAND, _NEAR, _UNKNOWN, _OTHER = range(4)


@dataclass(frozen=True)
class Command:
    """One command of the group: `name` is the verb in lower case, `value` what
    followed "=" (None for a bare verb, "" for "untag="), `raw` the word as
    written (for the agent's transcript)."""

    name: str
    value: str | None
    raw: str

    @classmethod
    def of(cls, name: str, value: str | None = None) -> "Command":
        """A command as `render_commands` writes it (raw is the canonical word)."""
        name = name.lower()
        return cls(name, value, name if value is None else f"{name}={value}")


class Parsed(NamedTuple):
    """What `parse_commands` found: the commands in the order written, the
    problems (empty when the group may run), and the group's (start, end) in the
    subject (None when there is no command group)."""

    commands: list[Command]
    problems: list[str]
    span: tuple[int, int] | None


@dataclass(frozen=True)
class _Vocabulary:
    names: frozenset[str]
    typos: dict[str, str]  # one typo away from a verb of 5+ letters -> that verb


@lru_cache(maxsize=8)
def _vocabulary_of(verbs: tuple[str, ...]) -> _Vocabulary:
    names = frozenset(verbs)
    typos: dict[str, str] = {}
    for verb in sorted(names):
        if len(verb) < 5:  # "tag" -> "bag", "hold" -> "gold": too many real words
            continue
        splits = [(verb[:i], verb[i:]) for i in range(len(verb) + 1)]
        variants = [a + b[1:] for a, b in splits if b]
        variants += [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
        variants += [a + c + b[1:] for a, b in splits if b for c in _LETTERS]
        variants += [a + c + b for a, b in splits for c in _LETTERS]
        for variant in variants:
            if variant not in names:
                typos.setdefault(variant, verb)
    return _Vocabulary(names, typos)


def _vocabulary(verbs: Collection[str]) -> _Vocabulary:
    return _vocabulary_of(VERBS if verbs is VERBS else tuple(sorted({v.lower() for v in verbs})))


def _near(name: str, vocab: _Vocabulary) -> str | None:
    """The verb a lower-case name is a near miss of, or None."""
    for cut in (1, 2, 3):
        if len(name) > cut and name[:-cut] in vocab.names and name[-cut:].isalpha():
            return name[:-cut]
    return vocab.typos.get(name)


def _words(content: str) -> list[str]:
    words = content.split()
    if not content.isprintable():
        words = [w for w in (_INVISIBLE.sub("", w) for w in words) if w]
    return words


def _classify(word: str, vocab: _Vocabulary) -> tuple[int, str, str | None]:
    """(kind, lower-case name, value) of one word of a bracket group."""
    pair = _PAIR.match(word)
    if pair:
        name, value = pair.group(1).lower(), pair.group(2)
    elif _NAME.fullmatch(word):
        name, value = word.lower(), None
    else:
        return _OTHER, word, None
    if name in vocab.names:
        return _COMMAND, name, value
    if _near(name, vocab):
        return _NEAR, name, value
    return (_UNKNOWN if value is not None else _OTHER), name, value


def _is_command_group(words: list[str], vocab: _Vocabulary) -> bool:
    """Rules (a) and (b) of the module docstring."""
    commandish, intent = True, False
    for word in words:
        kind, _, value = _classify(word, vocab)
        if kind == _COMMAND and value is not None:
            return True
        commandish = commandish and kind != _OTHER
        intent = intent or kind in (_COMMAND, _NEAR)
    return commandish and intent


def _groups_from_end(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every bracket group of `text`, the last first. Linear: each
    "]" is looked at once and the text between two of them scanned twice."""
    end = len(text)
    while True:
        close = text.rfind("]", 0, end)
        if close < 0:
            return
        before = text.rfind("]", 0, close)
        start = text.rfind("[", before + 1, close)
        if start >= 0:
            yield start, close + 1
            end = start
        else:
            end = close


def parse_commands(subject: str | None, verbs: Collection[str] = VERBS) -> Parsed:
    """The command group of a subject (the last group that parses as commands).

    Never raises. `problems` lists, in the order written, every word that is not
    a valid command (with a "did you mean" hint) and a group that is too long;
    the caller applies the commands only when there is none. At most
    MAX_COMMANDS commands are returned. Only the last MAX_SUBJECT characters
    are read (the command group is written at the end)."""
    subject = subject or ""
    offset = max(0, len(subject) - MAX_SUBJECT)
    text = subject[offset:]
    vocab = _vocabulary(verbs)
    for start, end in _groups_from_end(text):
        words = _words(text[start + 1:end - 1])
        if _is_command_group(words, vocab):
            commands, problems = _read_group(words, vocab)
            return Parsed(commands, problems, (offset + start, offset + end))
    return Parsed([], [], None)


def _read_group(words: list[str], vocab: _Vocabulary) -> tuple[list[Command], list[str]]:
    commands: list[Command] = []
    problems: list[str] = []
    if len(words) > MAX_COMMANDS:
        problems.append(f"more than {MAX_COMMANDS} commands ({len(words)})")
        words = words[:MAX_COMMANDS]
    for word in words:
        kind, name, value = _classify(word, vocab)
        if kind == _COMMAND:
            commands.append(Command(name, value, word))
        elif kind == _OTHER:
            problems.append(f"{word!r} is not a command (write name=value or a verb, separated by spaces)")
        else:
            guess = _near(name, vocab) or next(iter(get_close_matches(name, sorted(vocab.names), n=1)), None)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            problems.append(f"unknown command {name!r}{hint}")
    return commands, problems


def render_commands(commands: Collection[Command]) -> str:
    """The canonical text of a command group: "[status=resolved priority=P2 note]"
    ("" for no commands). `parse_commands` reads it back as the same commands.
    Raises ValueError for a command that could not be read back (a name that is
    not a word; a value with white space, a bracket or an invisible character)."""
    if not commands:
        return ""
    words = []
    for command in commands:
        if not _NAME.fullmatch(command.name) or command.name != command.name.lower():
            raise ValueError(f"not a command name: {command.name!r}")
        if command.value is None:
            words.append(command.name)
            continue
        value = command.value
        if value and (value.split() != [value] or _BRACKET.search(value) or _INVISIBLE.search(value)):
            raise ValueError(f"{command.name}: a value cannot hold white space, brackets or invisible "
                             f"characters: {value!r}")
        words.append(f"{command.name}={value}")
    return "[" + " ".join(words) + "]"


def strip_commands(subject: str | None, verbs: Collection[str] = VERBS) -> str:
    """The subject without any command group, white space collapsed.

    For every subject we send: none of our mails may carry a command that a
    reply quoting it would bring back. Every group that parses as commands goes,
    also one that only forms when an inner one is removed ("[note [x] close]"
    loses "[x]" only if "x" is a command, and then "[note close]" goes too), so
    `parse_commands` finds nothing in the result. Reads the first MAX_SUBJECT
    characters."""
    text = (subject or "")[:MAX_SUBJECT]
    if "[" not in text or "]" not in text:
        return " ".join(text.split())
    vocab = _vocabulary(verbs)
    out: list[str] = []
    # For each open "[": its index in `out`, whether a bracket follows it in `out`,
    # and that flag of the "[" it is inside before it was opened.
    stack: list[tuple[int, bool]] = []
    dirty = False  # for the innermost open "["
    pos = 0
    for bracket in _BRACKET.finditer(text):
        out.append(text[pos:bracket.start()])
        pos = bracket.end()
        if bracket.group() == "[":
            stack.append((len(out), dirty))
            dirty = False
            out.append("[")
        elif not stack:
            out.append("]")
        else:
            index, parent_dirty = stack.pop()
            if not dirty and _is_command_group(_words("".join(out[index + 1:])), vocab):
                del out[index:]
                out.append(" ")
                dirty = parent_dirty
            else:
                out.append("]")
                dirty = True
    out.append(text[pos:])
    return " ".join("".join(out).split())


@lru_cache(maxsize=8)
def token_regex(case_token: str) -> re.Pattern[str]:
    """'[Case #{number}]' -> a regex that also finds '[case #12]', '[Case#12]', '[ Case # 12 ]'.

    The literal text is cut into words and single punctuation marks, and any
    amount of space is allowed between them, because mail clients and people
    retyping a subject are careless with spaces and case. The number has at most
    18 digits (it fits a 64-bit id; a longer one is nobody's case).
    """
    before, _, after = case_token.partition("{number}")

    def tolerant(text: str) -> str:
        pieces = re.findall(r"\w+|[^\w\s]", text)
        return r"\s*".join(re.escape(p) for p in pieces)

    pattern = tolerant(before) + r"\s*(\d{1,18})\s*" + tolerant(after)
    return re.compile(pattern, re.IGNORECASE)


def find_tokens(subject: str | None, token_re: re.Pattern[str], limit: int = MAX_TOKENS) -> list[int]:
    """The distinct case numbers named in the subject, in order, at most `limit`
    (threading looks each one up; a subject naming dozens of cases is noise)."""
    numbers: dict[int, None] = {}
    for match in token_re.finditer((subject or "")[:MAX_SUBJECT]):
        numbers[int(match.group(1))] = None
        if len(numbers) >= limit:
            break
    return list(numbers)


def find_token(subject: str | None, token_re: re.Pattern[str]) -> int | None:
    """The first case number named in the subject, or None."""
    found = find_tokens(subject, token_re, limit=1)
    return found[0] if found else None


def _strip_prefixes(text: str) -> str:
    pos = 0
    while (match := _PREFIX.match(text, pos)) and match.end() > pos:
        pos = match.end()
    return text[pos:]


def clean_subject(subject: str | None, token_re: re.Pattern[str], verbs: Collection[str] = VERBS) -> str:
    """The subject without reply/forward prefixes, case tokens and command groups,
    white space collapsed: what the case is about (its summary).

    Repeated until nothing changes, because removing one thing can uncover
    another ("Re: [Case #3] Re: x", "Re[Case #3]: x"); so the result is clean
    and cleaning it again changes nothing. Reads the first MAX_CLEAN characters.
    """
    text = " ".join((subject or "")[:MAX_CLEAN].split())
    while True:
        before = text
        text = strip_commands(text, verbs)
        text = _strip_prefixes(" ".join(token_re.sub(" ", text).split()))
        if text == before:
            return text


def is_reply(subject: str | None) -> bool:
    """Does the subject start with a reply prefix ("Re:", "AW:", "回复："; not "Fwd:")?"""
    match = _PREFIX.match(subject or "")
    return bool(match and match.group("reply"))


def reply_subject(subject: str | None, token: str) -> str:
    """Our answer's subject: 'Re: <subject> <token>', without doubling an existing
    reply prefix or the token, and without any command group."""
    subject = strip_commands(subject) or "Your support request"
    if not is_reply(subject):
        subject = f"Re: {subject}"
    if token and token not in subject:
        subject = f"{subject} {token}"
    return subject
