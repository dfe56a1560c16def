"""The daemon, `mailproc run`, as a real process against real Dovecot and SMTP:
it polls on start and on schedule, reloads on SIGHUP (or refuses a broken
configuration and keeps the running one), and on SIGTERM exits 0 without
leaving its sender process behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import mail, run_json
from mailproc.testing import REPO

SUPPORT = "support@example.com"


def session_processes(session: int) -> list[int]:
    """Pids of the live processes in a session (the daemon was started as its leader)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


class DaemonProcess:
    def __init__(self, config: Path, log: Path):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("MAILPROC_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM")}
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "mailproc", "--config", str(config), "run"],
                                     stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if text.count(needle) >= count:
                return text
            assert self.proc.poll() is None, f"daemon exited ({self.proc.returncode}):\n{text}"
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} x{count} not logged within {timeout}s:\n{self.text()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log_file.close()


@pytest.fixture
def setup(dovecot, imap_user, smtp, make_config, tmp_path):
    user, password = imap_user
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    box = dict(name="support", host=dovecot.host, port=dovecot.port, username=user, password=password,
               address=SUPPORT)

    def config(**extra):
        return make_config(mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port),
                           extra={"poll_interval": "10s", "templates": templates, **extra})

    return dict(user=user, config=config, templates=templates)


def test_daemon_polls_reloads_and_stops(setup, dovecot, smtp, capsys, tmp_path):
    config = setup["config"]()
    # Mail that arrives now (the daemon runs on the real clock): none of the workflow's timers
    # (a "still looking" note two business days after arrival) falls due during the test.
    now = datetime.now(timezone.utc)
    dovecot.append(setup["user"], mail("First question", "Where is the export?", message_id="d1", date=now),
                   internaldate=now)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("started: 1 mailbox(es), polling every 0:00:10")
        # It polls on start: a case, and its acknowledgement at the SMTP server.
        first = smtp.wait_for(1, timeout=10)[0].message
        assert "[Case #1]" in first["Subject"]
        assert [c["summary"] for c in run_json(config, capsys, "cases", "list")] == ["First question"]

        # SIGHUP with a changed, valid configuration: reloaded, the new case token and poll
        # interval are in force, and the sender restarts quietly with the new configuration.
        setup["config"](case_token="[Ticket #{number}]", poll_interval="12s")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("reloaded configuration, rules and templates; polling every 0:00:12")
        reloaded = time.monotonic()

        # SIGHUP with a broken template: refused, naming the file and line.
        template = setup["templates"] / "acknowledgement.txt.j2"
        good = template.read_text(encoding="utf-8")
        template.write_text(good.replace("\n", " {% endif %}\n", 1), encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        text = daemon.wait_log("reload refused")
        assert f"{template}:1: " in text
        template.write_text(good, encoding="utf-8")

        # SIGHUP with a broken configuration file: refused, naming the file and key.
        setup["config"](case_token="[Ticket #{number}]", poll_interval="12s", poll_intervall="1h")
        daemon.signal(signal.SIGHUP)
        text = daemon.wait_log("reload refused", count=2)
        assert f"{config}:[mailproc] poll_intervall: unknown key" in text
        assert daemon.proc.poll() is None

        # A mail appended now is picked up by the next poll, under the last good configuration.
        dovecot.append(setup["user"], mail("Second question", "And the import?", message_id="d2", date=now),
                       internaldate=now)
        second = smtp.wait_for(2, timeout=16)[1].message
        assert "[Ticket #2]" in second["Subject"]
        assert time.monotonic() - reloaded >= 11  # with the poll 12 s after the reload, not earlier
        assert daemon.text().count("mailbox support: fetched 1") == 2

        # SIGTERM: exit 0 within a few seconds, and no process of ours is left.
        assert len(session_processes(daemon.proc.pid)) >= 2  # the daemon and its sender
        daemon.signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=5) == 0
        deadline = time.monotonic() + 3
        while session_processes(daemon.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_processes(daemon.proc.pid) == []
        assert daemon.text().rstrip().endswith("stopped")
        assert "Traceback" not in daemon.text() and "sender process ended" not in daemon.text()
    finally:
        daemon.close()


def test_daemon_with_bad_config_does_not_start(setup, tmp_path):
    config = setup["config"](poll_interval="5s")  # below the 10 s minimum
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        assert daemon.proc.wait(timeout=10) == 78  # EX_CONFIG: systemd does not restart it
        assert f"{config}:[mailproc] poll_interval: must be at least 0:00:10" in daemon.text()
    finally:
        daemon.close()
