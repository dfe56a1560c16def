"""assign=NAME: give the case to an agent of the roster (their NAME in mailproc.ini),
or `assign=me`. The roster is the truth; the person row is what the case points at."""

from __future__ import annotations

from mailproc import roster
from mailproc.commands._common import CommandError, choose, need_value, set_field
from mailproc.models import Person

name = "assign"
syntax = "assign=NAME"
help = "give the case to an agent (their roster NAME, or me)"


def run(ctx, case, value, *, actor, now, message):
    agents = roster_of(ctx)
    written = need_value(name, value, syntax)
    if written.lower() == "me":
        me = agents.by_address(actor)
        if me is None:
            raise CommandError("assign=me: you are not on the roster")
        written = me.name
    wanted = choose("agent", written, [a.name for a in agents.agents])
    person = roster.person_id(wanted)
    if person is None:
        raise CommandError(f"agent {wanted!r} is not in the database yet (run mailproc check or restart)")
    old = case.__data__.get("assignee")
    old_name = Person.get_by_id(old).handle if old is not None else None
    return set_field(case, "assignee", person, command=name, actor=actor, now=now, message=message,
                     detail=f"assigned to {wanted}", shown=(old_name, wanted))


def roster_of(ctx):
    """The context's roster (built once at start-up), or one built from it."""
    return getattr(ctx, "roster", None) or roster.from_context(ctx)
