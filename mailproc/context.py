"""What every stage may consult: config, rules, templates, the roster and the clock.

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
    # mailproc.roster.Roster: who works which team when, built once with the rules
    # (assignment asks it for every new case). None in contexts built by hand:
    # `roster_of` builds it then.
    roster: Any = None


def load_context(config: Config, clock: Clock) -> Context:
    from mailproc import roster
    from mailproc.templates import Templates
    from mailproc.stages import classify
    rules = load_rules(config.rules_dir, config.timezone)
    classify.prepare(rules, config.learn)
    return Context(
        config=config,
        rules=rules,
        templates=Templates(config.templates_dir),
        clock=clock,
        raw=RawStore(config.storage),
        roster=roster.build(config, rules.sla.calendar, roster.teams_in_rules(rules)),
    )


_built: tuple[Context, Any] | None = None


def roster_of(ctx: Context):
    """The roster of `ctx`: the one `load_context` built, else one built now and kept
    for this context (a context made by hand, as tests do), never one per message."""
    global _built
    if ctx.roster is not None:
        return ctx.roster
    if _built is None or _built[0] is not ctx:
        from mailproc import roster
        _built = (ctx, roster.from_context(ctx))
    return _built[1]
