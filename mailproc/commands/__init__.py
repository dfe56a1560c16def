"""The agents' subject-line commands (SPEC §5): one module per verb, and the registry.

Each verb module has `name` (the verb), `syntax` (how it is written),
`help` (one line) and `run(ctx, case, value, *, actor, now, message)`,
which changes the case through `mailproc.cases` and returns a `Change`, or
raises `CommandError` with a sentence for the agent. `value` is what followed
"=" (None for a bare verb). `message` is the `Origin` of the command: the
stored row (events name it) and the new text of the mail (`note`).

The registry's names are `subject.VERBS` minus `NOT_YET`: the grammar knows
every verb of the spec so that a subject we send never carries one, and a
verb of `NOT_YET` is refused by name instead of being read as text. The help
mail and the README's command reference are generated from here
(`reference`), so they cannot drift from what runs.

`mailproc.agentmail` applies one mail's commands with `apply`: all of them in
one savepoint, or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from mailproc import db
from mailproc.commands import (ack, assign, close, escalate, help as help_, hold, known, merge, needby, note,
                               pending, priority, reopen, resolve, split, status, tag, team, tier, time as time_,
                               type as type_, untag, wait)
from mailproc.commands._common import Change, CommandError, Origin
from mailproc.models import Case
from mailproc.subject import Command

__all__ = ["Change", "CommandError", "Origin", "REGISTRY", "NOT_YET", "Result", "apply", "reference"]

_MODULES: tuple[ModuleType, ...] = (status, priority, type_, assign, team, tier, escalate, note, hold, wait,
                                    pending, resolve, close, reopen, split, merge, tag, untag, known, needby, time_,
                                    ack, help_)
REGISTRY: dict[str, ModuleType] = {m.name: m for m in _MODULES}
# Verbs of the grammar that do not run yet: refused with this reason.
NOT_YET: dict[str, str] = {}


@dataclass
class Result:
    """One command of the mail as the transcript tells it: `raw` as written,
    `change` when it ran, `error` when it was refused, `skipped` when it
    would have run but another command of the mail was refused."""
    raw: str
    change: Change | None = None
    error: str | None = None
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


class _Refused(Exception):
    """Rolls the savepoint back when any command of the mail was refused."""


def apply(ctx: Any, case: Case, commands: list[Command], *, actor: str, now: datetime,
          message: Origin) -> tuple[list[Result], bool]:
    """Run `commands` in order on `case`, in one savepoint: all apply, or
    (when any is refused) none does. Returns a result per command and whether
    they were applied. Every command runs even after a refusal, so that the
    agent learns of every mistake of the mail at once, not one per mail.
    After a rollback the caller must re-read the case (its object saw the
    changes)."""
    results = [Result(c.raw) for c in commands]
    time_tags = [c.value or "" for c in commands if c.name == "tag"] if any(
        c.name == "time" for c in commands) else []
    try:
        with db.transaction():
            for command, result in zip(commands, results):
                try:
                    result.change = _run(ctx, case, command, time_tags, actor=actor, now=now, message=message)
                except CommandError as exc:
                    result.error = str(exc)
            if any(r.error for r in results):
                raise _Refused
    except _Refused:
        for r in results:
            if r.error is None:
                r.change, r.skipped = None, True
        return results, False
    return results, True


def _run(ctx: Any, case: Case, command: Command, time_tags: list[str], **kw: Any) -> Change:
    if command.name in NOT_YET:
        raise CommandError(NOT_YET[command.name])
    module = REGISTRY.get(command.name)
    if module is None:
        raise CommandError(f"unknown command {command.name!r}")
    if command.name == "time":
        if len(time_tags) > 1:
            raise CommandError("time takes one tag=NAME, this mail has several")
        return time_.run(ctx, case, command.value, tag=time_tags[0] if time_tags else None, **kw)
    if command.name == "tag" and time_tags:
        return Change(None, None, None, f"tag {command.value!r} labels the time logged")
    return module.run(ctx, case, command.value, **kw)


def reference() -> list[tuple[str, str]]:
    """(syntax, help) of every verb, in registry order: the help mail and the README."""
    return [(m.syntax, m.help) for m in _MODULES]


def reference_text() -> str:
    """The command reference as plain text, one verb per line."""
    width = max(len(s) for s, _ in reference())
    return "\n".join(f"{s.ljust(width)}  {h}" for s, h in reference())
