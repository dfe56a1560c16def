"""Content-addressed storage of raw messages: storage/raw/ab/cdef….eml.

A message is written here, fsynced, and only then recorded in the database,
so a row always has its bytes on disk. Writing the same bytes twice is a
no-op, which makes re-fetching after a crash harmless.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class RawStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "raw"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256[2:]}.eml"

    def put(self, raw: bytes, *, sync: bool = True) -> str:
        """Store `raw`; return its SHA-256 hex digest."""
        digest = hashlib.sha256(raw).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(raw)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        if sync:
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()
