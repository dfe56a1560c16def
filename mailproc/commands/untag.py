"""untag=a,b: remove tags; untag= (nothing after "=") removes all."""

from __future__ import annotations

from mailproc.commands._common import CommandError, set_field
from mailproc.commands.tag import parse

name = "untag"
syntax = "untag=a,b"
help = "remove tags (untag= removes all)"


def run(ctx, case, value, *, actor, now, message):
    if value is None:
        raise CommandError("untag needs the tags to remove: untag=a,b (or untag= for all)")
    old = list(case.tags or [])
    gone = parse(value)
    missing = [t for t in gone if t not in old]
    if missing:
        raise CommandError(f"the case has no tag {missing[0]!r} (its tags: {', '.join(old) or 'none'})")
    new = [t for t in old if gone and t not in gone]
    return set_field(case, "tags", new, command=name, actor=actor, now=now, message=message)
