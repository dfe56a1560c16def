"""known=ID-short-name: the known issue of the case, in the tracker's format (seed 002:
"<known issue number>-<couple word friendly description>", e.g. known=123-calendar-sync);
known= clears it."""

from __future__ import annotations

import re

from mailproc.commands._common import CommandError, set_field

name = "known"
syntax = "known=ID-short-name"
help = "link a known issue (known=123-calendar-sync; known= clears)"

KNOWN = re.compile(r"\d{1,9}-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")


def run(ctx, case, value, *, actor, now, message):
    if value is None:
        raise CommandError(f"known needs a value: {syntax}")
    written = value.strip()
    if written and (len(written) > 64 or not KNOWN.fullmatch(written)):
        raise CommandError(f"known: {written!r} is not NUMBER-short-name (e.g. known=123-calendar-sync)")
    return set_field(case, "known_issue", written or None, command=name, actor=actor, now=now, message=message)
