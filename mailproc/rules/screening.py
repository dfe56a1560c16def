"""rules/screening.toml: which mail is our own, a bounce, an automatic reply,
bulk or spam flagged upstream.

Rules of each kind (`[[loop]]`, `[[bounce]]`, `[[auto_reply]]`, `[[bulk]]`,
`[[rejected]]`) test headers, the sender, the subject and the start of the
body. The order in which kinds are tried, and the checks built into the code
between them, are the screen stage's (`mailproc.stages.screen`); this module
only turns the file into `ScreeningRules`, with errors that name the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailproc.errors import ConfigError
from mailproc.rules.reader import TomlLines, compile_pattern, read_toml

KINDS = ("loop", "bounce", "auto_reply", "bulk", "rejected")
RULE_KEYS = {"name", "header", "pattern", "equals_instance", "from", "from_ours", "subject", "body"}
# The trace names of the checks built into the screen stage; no rule may take one.
BUILT_IN = ("report", "flufl.bounce", "null-reverse-path")


@dataclass(frozen=True)
class ScreenRule:
    kind: str  # one of KINDS: what work.screen becomes when the rule matches
    name: str
    header: str | None = None  # lower-case header name that must be present
    pattern: re.Pattern[str] | None = None  # ... with a value matching this
    equals_instance: bool = False  # ... with a value equal to config.instance
    sender: re.Pattern[str] | None = None  # the From address matches
    from_ours: bool = False  # the From address is one of our mailboxes
    subject: tuple[re.Pattern[str], ...] = ()  # any of these matches the subject
    body: tuple[re.Pattern[str], ...] = ()  # any of these matches the start of the plain text


@dataclass(frozen=True)
class ScreeningRules:
    rules: tuple[ScreenRule, ...]  # in the order they are tried


def load_screening(path: Path) -> ScreeningRules:
    """rules/screening.toml -> ScreeningRules; errors name the file and line."""
    path = Path(path)
    table = read_toml(path)
    lines = TomlLines(path)
    for key in table:
        if key not in KINDS:
            raise ConfigError(f"unknown section [[{key}]] (expected one of: {', '.join(KINDS)})",
                              file=str(path), where=lines.where((key, 0)))
    rules: list[ScreenRule] = []
    names: set[str] = set()
    for kind in KINDS:
        entries = table.get(kind, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{kind} must be written as [[{kind}]] tables", file=str(path),
                              where=lines.where((kind,)))
        for index, entry in enumerate(entries):
            where = lines.where((kind, index))  # its [[kind]] header
            rule = _rule(kind, entry, path, where)
            if rule.name in names:
                raise ConfigError(f"rule name {rule.name!r} is used twice", file=str(path), where=where)
            if rule.name.split(":")[0] in BUILT_IN:
                raise ConfigError(f"rule name {rule.name!r} is taken by a built-in check "
                                  f"({', '.join(BUILT_IN)})", file=str(path), where=where)
            names.add(rule.name)
            rules.append(rule)
    return ScreeningRules(rules=tuple(rules))


def _rule(kind: str, entry: dict[str, Any], path: Path, where: str | None) -> ScreenRule:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"[[{kind}]] {message}", file=str(path), where=where)

    unknown = sorted(set(entry) - RULE_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (expected: {', '.join(sorted(RULE_KEYS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("needs a name = \"...\"")
    for key in ("header", "pattern", "from"):
        if key in entry and not isinstance(entry[key], str):
            raise fail(f"{key} must be a string (rule {name!r})")
    for key in ("equals_instance", "from_ours"):
        if key in entry and not isinstance(entry[key], bool):
            raise fail(f"{key} must be true or false (rule {name!r})")
    patterns = {}
    for key in ("subject", "body"):
        value = entry.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"{key} must be a list of patterns (rule {name!r})")
        patterns[key] = tuple(compile_pattern(v, path, where or kind) for v in value)
    if ("pattern" in entry or entry.get("equals_instance")) and "header" not in entry:
        raise fail(f"pattern and equals_instance need a header = \"...\" (rule {name!r})")
    if not any(k in entry for k in ("header", "from", "subject")) and not entry.get("from_ours"):
        # body alone is not enough: a customer may paste any notice into a question
        raise fail(f"rule {name!r} has no condition on header, from or subject; it would match every mail")
    return ScreenRule(
        kind=kind,
        name=name.strip(),
        header=entry["header"].strip().lower() if "header" in entry else None,
        pattern=compile_pattern(entry["pattern"], path, where or kind) if "pattern" in entry else None,
        equals_instance=entry.get("equals_instance", False),
        sender=compile_pattern(entry["from"], path, where or kind) if "from" in entry else None,
        from_ours=entry.get("from_ours", False),
        subject=patterns["subject"],
        body=patterns["body"],
    )
