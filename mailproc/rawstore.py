"""Content-addressed storage of raw messages: storage/raw/ab/cdef….eml.

A message is written here, fsynced, and only then recorded in the database,
so a row always has its bytes on disk. Writing the same bytes twice is a
no-op, which makes re-fetching after a crash harmless.

Customer mail is private: every directory created here is 0700 and every
file 0600, whatever the umask (`private_dir`, `private_file`; the SQLite
database is created the same way).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
from pathlib import Path


def _load_syncfs():
    """Linux's syncfs(2): flush one filesystem in one call. None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents, each 0700. `Path.mkdir(parents=True)`
    gives parents the umask's mode (0755 under the usual 022), and the mode given
    to mkdir is itself reduced by the umask, hence the chmod."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:  # made meanwhile by another process; if not a directory the next step says so
            continue
        os.chmod(directory, DIR_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists (an existing file keeps its mode).
    For SQLite: it gives its -wal and -shm files the database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


class RawStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "raw"
        self._batch: dict[str, bytes] = {}  # the last batch stored, about to be processed

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256[2:]}.eml"

    def put(self, raw: bytes, *, sync: bool = True) -> str:
        """Store `raw`; return its SHA-256 hex digest."""
        digest = hashlib.sha256(raw).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        if not target.parent.is_dir():
            private_dir(target.parent)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away, a leftover may have others
        with open(fd, "wb") as fh:
            fh.write(raw)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        if sync:
            _fsync(target.parent)
        return digest

    def put_many(self, raws: list[bytes]) -> list[str]:
        """Store a batch: write every file, then make them all durable at once.

        One syncfs() of the storage filesystem costs about as much as one
        fsync, where a fsync per message made storing the slowest step of
        intake; without syncfs each file and directory is fsynced.
        """
        digests = [self.put(raw, sync=False) for raw in raws]
        self._batch = dict(zip(digests, raws))
        if not digests:
            return digests
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _syncfs is not None and _syncfs(fd) == 0:
                return digests
        finally:
            os.close(fd)
        paths = {self.path(d) for d in digests}
        for path in [*paths, *{p.parent for p in paths}, self.root, self.root.parent]:
            _fsync(path)
        return digests

    def get(self, sha256: str) -> bytes:
        """The stored bytes; those of the batch just stored come from memory, not the disk."""
        raw = self._batch.pop(sha256, None)
        return raw if raw is not None else self.path(sha256).read_bytes()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
