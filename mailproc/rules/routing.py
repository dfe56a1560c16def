"""rules/routing.toml: which team a new case goes to, and the tags it gets.

`[[rule]]` tables, tried in order; the first that matches names the team.
Mail no rule matches goes to its mailbox's team, else its type's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailproc.rules.matching import CONDITION_KEYS, Conditions, Facts, conditions
from mailproc.rules.reader import TomlTable, check_names


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
    root = TomlTable.read(path)
    root.check_keys(("rule",))
    tables = root.tables("rule")
    check_names(tables)
    routes = []
    for t in tables:
        t.check_keys(("name", "team", "tags") + CONDITION_KEYS, required=("name", "team"))
        routes.append(Route(t.need_str("name"), t.need_str("team"), tuple(t.str_list("tags")), conditions(t)))
    return Routing(tuple(routes))
