"""help: the transcript carries the command reference."""

from __future__ import annotations

from mailproc.commands._common import Change, no_value

name = "help"
syntax = "help"
help = "mail back this command reference"


def run(ctx, case, value, *, actor, now, message):
    no_value(name, value)
    return Change(None, None, None, "command reference below")
