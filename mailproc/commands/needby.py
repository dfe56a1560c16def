"""needby=YYYY-MM-DD: the date the customer needs it by; needby= clears it."""

from __future__ import annotations

from datetime import date

from mailproc.commands._common import CommandError, set_field

name = "needby"
syntax = "needby=YYYY-MM-DD"
help = "the date the customer needs it by (needby= clears)"


def run(ctx, case, value, *, actor, now, message):
    if value is None:
        raise CommandError(f"needby needs a date: {syntax}")
    written = value.strip()
    wanted = None
    if written:
        try:
            wanted = date.fromisoformat(written)
        except ValueError:
            raise CommandError(f"needby: {written!r} is not a date (write needby=YYYY-MM-DD, "
                               f"e.g. needby={now.date().isoformat()})") from None
        if len(written) != 10:
            raise CommandError(f"needby: write the date as YYYY-MM-DD, not {written!r}")
    return set_field(case, "need_by", wanted, command=name, actor=actor, now=now, message=message)
