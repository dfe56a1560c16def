"""The message in hand: which message each process is working on, kept outside the database.

A process that dies while it handles a message (a parser bug that eats all
memory, a regular expression that never ends) leaves that message pending,
and taking it again every round would kill every round. Committing "attempt
started" to the database before each message would cost a transaction per
message; counting an attempt for every message of a batch that died would
blame the innocent ones (an operator's restart, the OOM killer). So each
process names the message in hand in a small file of its own under
`storage/inflight/`: one `pwrite` per message, no fsync (it must outlive the
process, not the machine), 0 between batches. When a process finds the file
of a dead one, the message named there gets an attempt counted; the pipeline
parks it after MAX_ATTEMPTS. Mailman's switchboard keeps a backup of the
message in hand for the same reason.
"""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path

from mailproc import lease
from mailproc.rawstore import private_dir

log = logging.getLogger(__name__)

WIDTH = 20  # digits of a message id; the file is always this long plus a newline


class InFlight:
    def __init__(self, storage: Path):
        self.directory = Path(storage) / "inflight"
        self.path = self.directory / lease.new_holder()
        self._fd: int | None = None

    def mark(self, message_id: int) -> None:
        """`message_id` is in hand from now on (0: none)."""
        if self._fd is None:
            if message_id == 0:
                return
            private_dir(self.directory)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            atexit.register(self.close)
        os.pwrite(self._fd, f"{message_id:>{WIDTH}}\n".encode(), 0)

    def close(self) -> None:
        """A clean end: nothing is in hand, the file goes."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.path.unlink(missing_ok=True)


def left_by_the_dead(storage: Path) -> list[int]:
    """The messages that processes of this host had in hand when they died; their
    files are removed. A process still alive, or of another host, is left alone."""
    directory = Path(storage) / "inflight"
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not lease.dead_here(name):
            continue
        path = directory / name
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        path.unlink(missing_ok=True)
        if text.isdigit() and int(text):
            found.append(int(text))
    return found


_by_storage: dict[Path, InFlight] = {}


def of(storage: Path) -> InFlight:
    """This process's in-hand file for `storage` (one per process and storage)."""
    key = Path(storage)
    if key not in _by_storage:
        _by_storage[key] = InFlight(key)
    return _by_storage[key]
