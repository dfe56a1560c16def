"""What every stage may consult: config, rules, templates and the clock.

Built once at start-up (and again on SIGHUP) by `load_context`; passed down
explicitly, never global.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailproc.clock import Clock
from mailproc.config import Config
from mailproc.rawstore import RawStore
from mailproc.rules import Rules, load_rules


@dataclass(frozen=True)
class Context:
    config: Config
    rules: Rules
    templates: Any  # mailproc.templates.Templates
    clock: Clock
    raw: RawStore


def load_context(config: Config, clock: Clock) -> Context:
    from mailproc.templates import Templates
    return Context(
        config=config,
        rules=load_rules(config.rules_dir, config.timezone),
        templates=Templates(config.templates_dir),
        clock=clock,
        raw=RawStore(config.storage),
    )
