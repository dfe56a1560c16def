"""Named points where a test may kill the process with SIGKILL.

Crash-safety is a claim about what happens when the process dies between two
steps; the only honest test is to kill it there. Setting
`MAILPROC_CRASH_AT=after_commit` (or `after_commit:3`, the third time the
point is reached) makes the process SIGKILL itself at that point;
`processing@POISON` only where the point's key (there: the subject of the
message in hand) contains POISON, which makes one message deadly, as a
parser bug would. Unset — always, in production — this is a dictionary
lookup and nothing else.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def crashpoint(name: str, key: str = "") -> None:
    spec = os.environ.get("MAILPROC_CRASH_AT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    point, _, needle = point.partition("@")
    if point != name or needle not in key:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
