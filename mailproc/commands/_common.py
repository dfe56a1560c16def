"""What the verb modules share: the Change they return, the error they raise,
value checks with a "did you mean" hint, and setting a field through `cases`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from difflib import get_close_matches
from typing import Any

from mailproc import cases, corrections
from mailproc.models import Case, Message


class CommandError(Exception):
    """A command refused: the message is one sentence for the agent's transcript."""


@dataclass(frozen=True)
class Origin:
    """The mail a command came in: its stored row (events name it) and its new text
    (the reply without the quoted history: what `note` keeps)."""
    row: Message | int | None
    text: str = ""


@dataclass(frozen=True)
class Change:
    """What a command did: `field` old -> new (None: no field, an event only), and one
    line for the transcript."""
    field: str | None
    old: Any
    new: Any
    text: str


def hint(value: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    found = get_close_matches(value, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {found[0]!r}?)" if found else ""


def need_value(name: str, value: str | None, syntax: str) -> str:
    if value is None or not value.strip():
        raise CommandError(f"{name} needs a value: {syntax}")
    return value.strip()


def no_value(name: str, value: str | None) -> None:
    if value is not None:
        raise CommandError(f"{name} takes no value (write [{name}])")


def choose(what: str, value: str, choices: Iterable[str], normal=lambda s: s.lower()) -> str:
    """The choice `value` names (compared through `normal`), or an error with a hint."""
    choices = list(choices)
    for choice in choices:
        if normal(choice) == normal(value):
            return choice
    raise CommandError(f"unknown {what} {value!r}{hint(value, choices)}; one of: {', '.join(choices)}")


def key(text: str) -> str:
    """A name as compared with what an agent typed: letters and digits, lower case."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def set_field(case: Case, field: str, value: Any, *, command: str, actor: str, now: datetime,
              message: Origin, detail: str | None = None, shown: tuple[Any, Any] | None = None) -> Change:
    """Set `field` through `cases.set_field` (its event names the command and the mail);
    `shown` is (old, new) as the transcript words them, when not the stored values."""
    old = case.__data__.get(field)
    changed = cases.set_field(case, field, value, actor=actor, now=now, command=command, message=message.row,
                              detail=detail)
    old_text, new_text = shown or (old, value)
    if not changed:
        return Change(None, old, value, f"{field} already {_shown(new_text)}")
    return Change(field, old, value, f"{field}: {_shown(old_text)} \u2192 {_shown(new_text)}")


def correct(case: Case, field: str, value: str, *, command: str, actor: str, now: datetime,
            message: Origin) -> Change:
    """`set_field` for the classifier's fields (type, priority): a real change is also kept
    as a correction, with the mail's text and the rule it overrides (mailproc.corrections)."""
    old = case.__data__.get(field)
    if old != value:
        corrections.record(case, field, old, value, actor=actor, now=now, message=message.row)
    return set_field(case, field, value, command=command, actor=actor, now=now, message=message)


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def set_status(case: Case, status: str, *, command: str, actor: str, now: datetime, message: Origin,
               detail: str | None = None) -> Change:
    return set_field(case, "status", status, command=command, actor=actor, now=now, message=message,
                     detail=detail)
