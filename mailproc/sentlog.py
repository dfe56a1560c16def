"""The send journal: a line per mail the SMTP server accepted, written the moment it said 250.

Recording a send in the database may have to wait: SQLite has one write lock
for the whole file, and intake holds it while it commits. A sender killed
during that wait used to leave its row `sending`, and the row was sent again
after a restart. The journal narrows that window to the one SMTP itself
leaves (a connection lost after the final dot): a short `O_APPEND` write
reaches the kernel within microseconds of the server's answer and survives
the process being killed. Before a `sending` row goes back to the queue, the
journal is read; a row found there is recorded as sent, never sent twice.

It lives in the storage directory, so every process of one installation on
this host (the sender, a second daemon, `run --once`) shares it. Lines are
`<outbox id> <Message-ID>`: the Message-ID guards against reading a line
about another database's row. Writers take a shared `flock`, the pruning
rewrite an exclusive one, so no line is lost to a rewrite.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mailproc.rawstore import private_dir

NAME = "sent.journal"
PRUNE_ABOVE = 256 * 1024  # bytes; below this the journal is left to grow


class SentLog:
    def __init__(self, storage: Path):
        self.path = Path(storage) / NAME
        self._fd: int | None = None

    def record(self, outbox_id: int, message_id: str) -> None:
        """Note that the server accepted outbox row `outbox_id`; no fsync: the point is
        to outlive the process, and a power loss undoes the database's last commits too."""
        if self._fd is None:
            private_dir(self.path.parent)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        try:
            os.write(self._fd, f"{outbox_id} {message_id}\n".encode("ascii", "replace"))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def accepted(self) -> dict[int, str]:
        """outbox id -> Message-ID of every send still in the journal."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        return dict(_lines(data))

    def prune(self, still_sending) -> int:
        """Drop the lines no longer needed: keep those whose row is still `sending`
        according to `still_sending()` (asked while writers are held off). Returns the
        number of lines kept. Does nothing while the journal is small."""
        try:
            if self.path.stat().st_size < PRUNE_ABOVE:
                return -1
        except FileNotFoundError:
            return 0
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as fh:
                lines = list(_lines(fh.read()))
            sending = set(still_sending())
            kept = [(i, m) for i, m in lines if i in sending]
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b"".join(f"{i} {m}\n".encode("ascii", "replace") for i, m in kept))
            return len(kept)
        finally:
            os.close(fd)  # releases the lock


def _lines(data: bytes):
    for line in data.decode("ascii", "replace").splitlines():
        number, _, message_id = line.partition(" ")
        if number.isdigit() and message_id:  # a torn last line (a kill mid-write) is skipped
            yield int(number), message_id.strip()
