"""Intake from files and pipes: `mailproc ingest` and `mailproc deliver`.

For backfills, tests and MTA pipes (like rt-mailgate). A path may be a single
.eml file, an mbox file, or a Maildir; each message is stored raw and then
processed exactly as IMAP mail is. Files are read with their bytes untouched.
"""

from __future__ import annotations

import mailbox
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from mailproc.context import Context
from mailproc.models import Message
from mailproc.store import store_message


def read_messages(path: Path) -> Iterator[tuple[bytes, datetime | None, str]]:
    """Yield (raw bytes, arrival time if known, label) for every message under `path`."""
    path = Path(path)
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            for sub in ("new", "cur"):
                folder = path / sub
                files = sorted(folder.iterdir()) if folder.is_dir() else []
                for file in files:
                    if file.is_file() and not file.name.startswith("."):
                        yield file.read_bytes(), _mtime(file), str(file)
            return
        for child in sorted(path.iterdir()):  # files, and folders below (a Maildir, more .eml files)
            if not child.name.startswith(".") and (child.is_file() or child.is_dir()):
                yield from read_messages(child)
        return
    with open(path, "rb") as fh:
        head = fh.read(5)
    if head == b"From ":
        box = mailbox.mbox(str(path), create=False)
        for index, key in enumerate(box.iterkeys()):
            yield box.get_bytes(key), _from_line_date(box.get_message(key).get_from()), f"{path}#{index + 1}"
        return
    yield path.read_bytes(), _mtime(path), str(path)


def ingest(ctx: Context, paths: list[Path], mailbox_name: str | None) -> list[Message]:
    """Store every message found under `paths`; return the stored rows (state pending).

    Every path is checked before anything is stored: a mistyped one must not leave
    the messages of the others stored but never processed."""
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
    stored = []
    for path in paths:
        for raw, arrived, _label in read_messages(Path(path)):
            stored.append(store_message(ctx, raw, source="ingest", mailbox=mailbox_name, arrived_at=arrived))
    return stored


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)


def _from_line_date(from_line: str) -> datetime | None:
    # "sender@example.com Thu Nov 26 10:00:00 2026"
    parts = from_line.split(None, 1)
    if len(parts) < 2:
        return None
    try:
        return datetime.strptime(parts[1].strip(), "%a %b %d %H:%M:%S %Y").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
