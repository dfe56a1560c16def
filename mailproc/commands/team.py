"""team=NAME: move the case to a team. A subject word has no spaces, so the team is
matched on its letters and digits ("support-team", "SupportTeam") or its first word
("support")."""

from __future__ import annotations

from mailproc.commands._common import CommandError, hint, key, need_value, set_field
from mailproc.commands.assign import roster_of

name = "team"
syntax = "team=NAME"
help = "move the case to a team (Support-Team, or its first word: support)"


def run(ctx, case, value, *, actor, now, message):
    written = need_value(name, value, syntax)
    teams = [t.name for t in roster_of(ctx).teams]
    found = [t for t in teams if key(t) == key(written)] or [t for t in teams if key(t.split()[0]) == key(written)]
    if len(found) != 1:
        names = [t.replace(" ", "-") for t in teams]
        why = "names several teams" if found else "is not a team"
        raise CommandError(f"{written!r} {why}{hint(written, names)}; one of: {', '.join(names)}")
    return set_field(case, "team", found[0], command=name, actor=actor, now=now, message=message)
