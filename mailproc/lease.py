"""Leases: one process at a time does a job that only one may do.

Two processes polling one mailbox folder (two daemons, a daemon and
`run --once`) fetch each other's mail in between their commits: a reply
could be taken before its original was committed by the other process and
open a second case. So a poll first takes the folder's lease, a row naming
the holder and until when; it is renewed batch by batch and handed back at
the end. A holder that dies lets go when its lease expires, and at once if it
was a process on this host that no longer exists (the same test the sender
uses for its claims).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from secrets import token_hex

from mailproc import db
from mailproc.models import utc

TTL = timedelta(minutes=10)  # far longer than one batch takes; renewed after each


def new_holder() -> str:
    """Names one holder: host, process, the process's start time and a random part.
    The start time tells a live process from a new one that was given the same
    pid (pids are reused, quickly on a busy host)."""
    pid = os.getpid()
    stat = _stat(pid)
    return f"{socket.gethostname()}:{pid}:{stat[1] if stat else 0}:{token_hex(4)}"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from Linux's /proc; None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
    return (fields[0].decode(), int(fields[19])) if len(fields) > 19 else None


def dead_here(holder: str | None) -> bool:
    """The holder was a process of this host that no longer runs: gone, a zombie
    nobody has reaped yet (a killed process whose parent died with it), or its
    pid now belongs to another process."""
    host, pid, started = ((holder or "").split(":") + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    stat = _stat(int(pid))
    if stat is None:
        return False
    state, now_started = stat
    return state in ("Z", "X") or (started.isdigit() and int(started) != 0 and now_started != int(started))


_TAKE_SQL = ("INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)"
             " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
             " WHERE lease.holder = excluded.holder OR lease.expires_at < ? OR lease.holder = ?")
_HOLDER_SQL = "SELECT holder FROM lease WHERE name = ?"


def acquire(name: str, holder: str, now: datetime) -> str | None:
    """Take (or renew) the lease; None when it is ours, else who holds it."""
    with db.transaction():
        current = db.query_one(_HOLDER_SQL, [name])
        dead = current[0] if current and current[0] != holder and dead_here(current[0]) else ""
        db.execute(_TAKE_SQL, [name, holder, utc(now + TTL), utc(now), dead])
        found = db.query_one(_HOLDER_SQL, [name])
    return None if found and found[0] == holder else (found[0] if found else "unknown")


def release(name: str, holder: str) -> None:
    with db.transaction():
        db.execute("DELETE FROM lease WHERE name = ? AND holder = ?", [name, holder])
