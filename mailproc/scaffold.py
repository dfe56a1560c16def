"""`mailproc init DIR`: a new site's starting point, written from what the package ships.

DIR gets the documented example mailproc.ini, with `rules` and `templates`
pointing at DIR's own copies, and editable copies of every rule file and
template (and the templates' README). Nothing is ever overwritten: a site's
edited rules are its own, so if any file is already there, nothing is written
at all and the command says which files are in the way.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mailproc.defaults import PATTERNS, shipped


class InitError(Exception):
    """init would overwrite a file (nothing was written), or cannot write."""


def site_config(example: str) -> str:
    """The example mailproc.ini with `rules` and `templates` set to the copies next to it
    (relative paths are relative to the ini's directory, so DIR can be moved whole)."""
    text = example
    for key in ("rules", "templates"):
        text, count = re.subn(rf"^# {key} =[ \t]*$", f"{key} = {key}", text, count=1, flags=re.M)
        if count != 1:  # the example and this function must change together (tests/test_install.py)
            raise RuntimeError(f"the shipped mailproc.ini has no '# {key} =' line to fill in")
    return text


def plan(directory: Path) -> dict[Path, Path | str]:
    """target -> the shipped file to copy, or the text to write."""
    example = shipped("mailproc.ini").read_text("utf-8")
    files: dict[Path, Path | str] = {directory / "mailproc.ini": site_config(example)}
    for kind, pattern in PATTERNS.items():
        source = shipped(kind)
        for path in sorted([*source.glob(pattern), *source.glob("README.md")]):
            files[directory / kind / path.name] = path
    return files


def init_site(directory: Path) -> list[Path]:
    """Write the files of `plan(directory)`; return their paths. Refuses (InitError,
    nothing written) if any of them exists."""
    directory = Path(directory)
    files = plan(directory)
    existing = [str(target.relative_to(directory)) for target in files if target.exists() or target.is_symlink()]
    if existing:
        raise InitError(f"{directory}: refusing to overwrite {len(existing)} existing file(s), nothing written: "
                        + ", ".join(existing))
    written = []
    try:
        for target, content in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            text = content if isinstance(content, str) else content.read_text("utf-8")
            # The ini will hold passwords: readable by its owner only. Exclusive create:
            # a file that appeared since the check above is not overwritten either.
            mode = 0o600 if target.name == "mailproc.ini" else 0o644
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            written.append(target)
    except OSError as exc:
        done = f" (written before the error: {', '.join(map(str, written))})" if written else ""
        raise InitError(f"cannot write {exc.filename}: {exc.strerror}{done}") from None
    return written
