"""tag=a,b: add tags to the case. With time= in the same mail, tag=NAME labels the time instead."""

from __future__ import annotations

import re

from mailproc.commands._common import CommandError, need_value, set_field

name = "tag"
syntax = "tag=a,b"
help = "add tags (with time=, the tag of the time logged)"

TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/+-]{0,63}")
MAX_TAGS = 50


def parse(written: str) -> list[str]:
    tags = [t.strip() for t in written.split(",") if t.strip()]
    for t in tags:
        if not TAG.fullmatch(t):
            raise CommandError(f"{t!r} is not a tag (letters, digits and _ . : / + -, at most 64)")
    return list(dict.fromkeys(tags))


def run(ctx, case, value, *, actor, now, message):
    old = list(case.tags or [])
    new = old + [t for t in parse(need_value(name, value, syntax)) if t not in old]
    if len(new) > MAX_TAGS:
        raise CommandError(f"a case holds at most {MAX_TAGS} tags")
    return set_field(case, "tags", new, command=name, actor=actor, now=now, message=message)
