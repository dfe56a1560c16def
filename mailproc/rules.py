"""Loading the rule files in rules/ (TOML) with errors that name file and line.

Each stage owns the shape of its own rules (a `load(table, file)` function in
the stage's module turns a parsed TOML table into typed objects); this module
reads the files, reports syntax errors with their line, and gathers the typed
rule sets into one `Rules` object, read once at start-up and on SIGHUP.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    try:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if needle in line:
                return f"line {number}"
    except OSError:
        pass
    return None


def compile_pattern(pattern: str, path: Path, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"bad regular expression {pattern!r}: {exc}", file=str(path),
                          where=line_of(path, pattern) or where) from None


@dataclass(frozen=True)
class Rules:
    """Every rule set, typed. Filled by `load_rules`."""
    screening: Any
    classification: Any
    priority: Any
    routing: Any
    workflow: Any
    sla: Any


def load_rules(directory: Path, timezone=None) -> Rules:
    from mailproc import businesstime
    from mailproc.stages import classify, screen

    directory = Path(directory)
    return Rules(
        screening=screen.load_rules(directory / "screening.toml"),
        classification=classify.load_classification(directory / "classification.toml"),
        priority=classify.load_priority(directory / "priority.toml"),
        routing=classify.load_routing(directory / "routing.toml"),
        workflow=classify.load_workflow(directory / "workflow.toml"),
        sla=businesstime.load_sla(directory / "sla.toml", timezone),
    )
