"""Reading the rule files (TOML) with errors that name file and line.

The rule files ship inside the package (`mailproc.defaults`); a site's
`[mailproc] rules` directory replaces any of them by a file of the same name
(`rule_files` says which file is in force).

This module reads a file, reports syntax errors with their line, and offers
typed reads of a table whose errors name the file and line (`TomlTable`).
What each file means is its own loader's business (`mailproc.rules.screening`,
`.classification`, ...), so a new rule file is a new module, not an edit here.

tomllib keeps no positions, so lines are found again by a light scan of the
file's text (`TomlLines`): the one place that knows where things are.
"""

from __future__ import annotations

import builtins
import difflib
import re
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, overload

from mailproc.businesstime import Target, parse_target
from mailproc.config import parse_duration
from mailproc.defaults import RULE_FILES, in_force, shipped
from mailproc.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("rule file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(path)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"line {m.group(1)}" if m else None
        raise ConfigError(f"TOML syntax error: {exc}", file=str(path), where=where) from None


def line_of(path: Path, needle: str) -> str | None:
    """Best-effort 'line N' of the first line containing `needle`, for error messages."""
    return TomlLines(path).find(needle)


def compile_pattern(pattern: str, path: Path, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"bad regular expression {pattern!r}: {exc}", file=str(path),
                          where=line_of(path, pattern) or where) from None


# --- locating keys in a TOML file -------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


class TomlLines:
    """Where each table header and key of a TOML file is, for error messages.

    A light scan of the file's lines (headers `[a.b]` and `[[a]]`, keys
    `name =`), good for the files people write by hand.
    """

    def __init__(self, path: Path):
        try:
            self.lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            self.lines = []
        self.headers: list[tuple[int, tuple[str, ...], bool]] = []  # (line index, name, is array)
        for index, line in enumerate(self.lines):
            m = _HEADER.match(line)
            if m:
                name = tuple(part.strip().strip("\"'") for part in m.group(2).split("."))
                self.headers.append((index, name, m.group(1) == "[["))

    def find(self, needle: str, within: range | None = None) -> str | None:
        """'line N' of the first line (of `within`, else of the file) containing `needle`."""
        for index in range(len(self.lines)) if within is None else within:
            if needle in self.lines[index]:
                return f"line {index + 1}"
        return None

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
        """'line N' of `needle` or `key` inside the table at `address`, else of the table itself.

        `address` is the path of keys and array indexes: ("types", "bug") is
        [types.bug], ("rule", 2) the third [[rule]]. A table that has no header
        of its own (an inline table, a plain key) is found as a key of its parent.
        """
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
            found = self.find(needle, region)
            if found:
                return found
        if key is not None:
            pattern = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*[=.]")
            for index in region:
                if pattern.match(self.lines[index]):
                    return f"line {index + 1}"
        if position is not None:
            return f"line {self.headers[position][0] + 1}"
        return None


# --- typed reads -------------------------------------------------------------------------------

class TomlTable:
    """One table of a rule file: typed reads whose errors name the file and line."""

    def __init__(self, path: Path, data: dict[str, Any], lines: TomlLines, address: tuple = ()):
        self.path, self.data, self.lines, self.address = path, data, lines, address

    @classmethod
    def read(cls, path: Path) -> "TomlTable":
        """The top level of the file at `path`, parsed (syntax errors name their line)."""
        path = Path(path)
        return cls(path, read_toml(path), TomlLines(path))

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

    # The reads are named after the TOML types they return, so inside the class
    # `str`, `bool` and `int` are these methods: annotations name the builtins.

    @overload
    def str(self, key: builtins.str, default: builtins.str) -> builtins.str: ...
    @overload
    def str(self, key: builtins.str, default: None = None) -> builtins.str | None: ...

    def str(self, key: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        value = self.data.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.error(key, "must be a non-empty string")
        return value

    def need_str(self, key: builtins.str) -> builtins.str:
        """A string the table must have (a key `check_keys` was told is required)."""
        value = self.str(key)
        if value is None:
            raise self.error(None, f"{key!r} is required")
        return value

    def bool(self, key: builtins.str, default: builtins.bool | None = None) -> builtins.bool | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def int(self, key: builtins.str, default: builtins.int | None = None,
            minimum: builtins.int = 0) -> builtins.int | None:
        value = self.data.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise self.error(key, f"must be a whole number, at least {minimum}")
        return value

    def number(self, key: builtins.str, default: builtins.float, minimum: builtins.float = 0.0,
               above: builtins.bool = False) -> builtins.float:
        """A number (whole or not) of at least `minimum` (more than it, with `above`)."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum or (
                above and value == minimum):
            raise self.error(key, f"must be a number {'above' if above else 'of at least'} {minimum:g}")
        return float(value)

    def str_list(self, key: builtins.str) -> list[builtins.str]:
        value = self.data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(key, "must be a list of non-empty strings")
        return value

    @overload
    def choice(self, key: builtins.str, choices: tuple[builtins.str, ...], default: builtins.str
               ) -> builtins.str: ...
    @overload
    def choice(self, key: builtins.str, choices: tuple[builtins.str, ...], default: None = None
               ) -> builtins.str | None: ...

    def choice(self, key: builtins.str, choices: tuple[builtins.str, ...], default: builtins.str | None = None
               ) -> builtins.str | None:
        value = self.str(key, default)
        if value is not None and value not in choices:
            raise self.error(key, f"unknown value {value!r}; one of: {', '.join(choices)}")
        return value

    def need_choice(self, key: builtins.str, choices: tuple[builtins.str, ...]) -> builtins.str:
        """One of `choices`, which the table must have."""
        value = self.choice(key, choices)
        if value is None:
            raise self.error(None, f"{key!r} is required")
        return value

    def choice_list(self, key: builtins.str, choices: tuple[builtins.str, ...]) -> list[builtins.str]:
        values = self.str_list(key)
        for value in values:
            if value not in choices:
                raise self.error(key, f"unknown value {value!r}; one of: {', '.join(choices)}", needle=value)
        return values

    def duration(self, key: builtins.str) -> timedelta | None:
        value = self.str(key)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def target(self, key: builtins.str) -> Target | None:
        """A promised duration: "1h", "2 business hours", "1 business day" (businesstime)."""
        value = self.str(key)
        if value is None:
            return None
        try:
            return parse_target(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def date_list(self, key: builtins.str) -> list[date]:
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


def check_names(rules: list[TomlTable]) -> None:
    """Every `[[rule]]` has a name, and no two share one: the name is what `decided_by` records."""
    seen: set[str] = set()
    for rule in rules:
        name = rule.str("name")
        if name is None:
            raise rule.error(None, "every rule needs a name")
        if name in seen:
            raise rule.error("name", f"two rules are named {name!r}")
        seen.add(name)


# --- which files ---------------------------------------------------------------------------------

def rule_files(directory: Path | None) -> dict[str, Path]:
    """The file in force for each rule set: the site's (`[mailproc] rules`) where it
    has one of that name, else the shipped one.

    A .toml file in the site's directory that is none of the rule files is an
    error, not ignored: "prioirty.toml" would otherwise leave the shipped
    priorities in force while the operator believes their own are.
    """
    files = in_force("rules", None if directory is None else Path(directory))
    for f in files:
        if f.name not in RULE_FILES:
            hint = difflib.get_close_matches(f.name, RULE_FILES, n=1)
            extra = f"did you mean {hint[0]!r}?" if hint else f"the rule files are {', '.join(RULE_FILES)}"
            raise ConfigError(f"not a rule file mailproc reads; {extra}", file=str(f.path))
    found = {f.name: f.path for f in files}
    missing = [name for name in RULE_FILES if name not in found]
    if missing:  # only a broken installation: every rule file ships
        raise ConfigError("rule file not found", file=str(shipped("rules") / missing[0]))
    return found
