"""Real servers for tests, the demo and the benchmark: Dovecot (IMAP),
aiosmtpd (SMTP) and PostgreSQL, each started on 127.0.0.1 in a throwaway
directory and stopped afterwards. Nothing here is a mock.
"""

from __future__ import annotations

import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (callers retry on a clash). Asked of the
    kernel up front because aiosmtpd's Controller cannot listen on port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 20) -> str:
    """The end of a server's log, for error messages when it will not start."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def write_config(directory: Path, *, database: str | None = None, mailboxes: list[dict] | None = None,
                 smtp: dict | None = None, extra: dict | None = None, agents: dict[str, dict] | None = None,
                 teams: dict[str, dict] | None = None, sections: dict[str, dict] | None = None) -> Path:
    """Write a mailproc.ini for a test/demo/bench run; return its path.

    `mailboxes` items: dict(name=, host=, port=, username=, password=, address=, [folder=...]);
    `smtp`: dict(host=, port=); `extra`: more [mailproc] keys; `agents`: NAME -> keys of
    its [agent:NAME] section (address, teams, hours, timezone, ...), `teams`: NAME -> keys
    of [team:NAME], `sections`: NAME -> keys of any other section ([learn], …). With
    agents and no `secret` in `extra`, a fixed test secret is set.
    Rules and templates are the shipped ones (in a source checkout, the
    repository's rules/ and templates/) unless `extra` names `rules` or
    `templates` directories of overrides.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    core = {"storage": str(directory / "storage"), "timezone": "UTC"}
    if database:
        core["database"] = database
    if agents:
        core["secret"] = "test-secret-" + "x" * 32
    core.update(extra or {})
    lines = ["[mailproc]"] + [f"{k} = {v}" for k, v in core.items()]
    for box in mailboxes or []:
        box = dict(box)
        lines += ["", f"[mailbox:{box.pop('name')}]", "security = none"]
        lines += [f"{k} = {v}" for k, v in box.items()]
    if smtp:
        lines += ["", "[smtp]", "security = none"] + [f"{k} = {v}" for k, v in smtp.items()]
    for kind, named in (("agent", agents), ("team", teams)):
        for name, keys in (named or {}).items():
            lines += ["", f"[{kind}:{name}]"] + [f"{k} = {v}" for k, v in keys.items()]
    for name, keys in (sections or {}).items():
        lines += ["", f"[{name}]"] + [f"{k} = {v}" for k, v in keys.items()]
    path = directory / "mailproc.ini"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
