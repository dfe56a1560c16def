"""A real Dovecot IMAP server on 127.0.0.1, in a throwaway directory.

Dovecot runs as root with its own config file (`dovecot -c CONFIG`), its own
base_dir, state_dir and log, and a free port, so several can run side by
side (parallel test processes) and a system Dovecot, if any, is never
touched. Each user has a passwd-file with a plain password; every mailbox is
a Maildir owned by the `dovecot` OS user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from datetime import datetime
from pathlib import Path

from imapclient import IMAPClient

from mailproc.testing import free_port, log_tail

DOVECOT = "/usr/sbin/dovecot"
START_TIMEOUT = 15.0

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
instance_name = mailproc-test-{port}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
default_internal_user = dovecot
default_login_user = dovenull
shutdown_clients = yes
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users/%u
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
"""


def reachable_root(directory: Path, prefix: str) -> tuple[Path, bool]:
    """A directory the servers' unprivileged processes can reach; (path, is_private_temp).

    Dovecot's auth and imap processes and PostgreSQL run as other OS users and
    must traverse every parent. pytest's base temp dir is 0700, so when
    `directory` sits under such a parent we use a fresh 0755 temp dir instead,
    which the caller removes when it is done with it (see `remove_later`).
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    if all(os.stat(p).st_mode & 0o001 for p in directory.parents):
        return directory, False
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o755)
    return root, True


def remove_later(owner: object, path: Path) -> None:
    """Delete `path` when `owner` is garbage-collected or at interpreter exit.

    stop() keeps the directory so that start() can bring the same server back
    (same port, users and mail); the private temp dir goes only at the end.
    """
    weakref.finalize(owner, shutil.rmtree, str(path), True)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


class Dovecot:
    host = "127.0.0.1"

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.root: Path | None = None
        self.port = 0
        self._owner = pwd.getpwnam("dovecot")

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    def start(self) -> None:
        """Start on a free port (or the current one, for restart) and wait for the greeting."""
        if not os.path.exists(DOVECOT):
            raise RuntimeError(f"{DOVECOT} is missing; run scripts/test, which installs dovecot-imapd")
        if self.root is None:
            self.root, private = reachable_root(self.directory, "mailproc-dovecot-")
            if private:
                remove_later(self, self.root)
            for sub in ("home", "run", "state", "users"):
                (self.root / sub).mkdir(exist_ok=True)
            os.chown(self.root / "home", self._owner.pw_uid, self._owner.pw_gid)
        fixed = self.port != 0
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            self.config.write_text(CONFIG.format(root=self.root, port=self.port))
            if self._launch():
                return
            if "Address already in use" not in self._log_tail():
                break
        raise RuntimeError(f"dovecot did not start on 127.0.0.1:{self.port}; log {self.log}:\n"
                           + self._log_tail())

    def _launch(self) -> bool:
        with open(self.log, "ab") as out:
            # Never a pipe: the daemon inherits it and the call would not return.
            done = subprocess.run([DOVECOT, "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=out)
        if done.returncode != 0:
            return False
        started = time.monotonic()
        while time.monotonic() < started + START_TIMEOUT:
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return True
            except OSError:
                pass
            if time.monotonic() > started + 1 and self._pid() is None:
                return False  # the master died (e.g. the port was taken)
            time.sleep(0.05)
        self._kill()
        return False

    def _pid(self) -> int | None:
        try:
            pid = int((self.root / "run" / "master.pid").read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def _log_tail(self) -> str:
        return log_tail(self.log)

    def _kill(self) -> None:
        """`dovecot stop`, then wait for the master (it takes a second or two to go)."""
        pid = self._pid()
        subprocess.run([DOVECOT, "-c", str(self.config), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if pid is None:
            return
        if not wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
        # imap processes outlive the master (they keep serving their client);
        # they are in the master's process group, so end them too: a stopped
        # server must drop its connections.
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """Stop the server; a later start() brings it back on the same port with the same mail."""
        if self.root is not None:
            self._kill()

    def restart(self) -> None:
        """Stop and start again on the same port; connected clients are dropped."""
        self.stop()
        self.start()

    def add_user(self, name: str, password: str) -> tuple[str, str]:
        """Create an IMAP account with an empty INBOX.

        One passwd-file per user: Dovecot re-reads a changed passwd-file at
        most once a second, so users appended to a shared file in quick
        succession would be refused; a new file is read on first use.
        """
        if self.root is None:
            raise RuntimeError("start() the server before adding users")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"IMAP user name {name!r}: use letters, digits, _ . - only")
        users = self.root / "users" / name
        users.write_text(f"{name}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
        os.chmod(users, 0o644)
        maildir = self.maildir(name)
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        for path in (maildir.parent, maildir, *(maildir / s for s in ("cur", "new", "tmp"))):
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        return name, password

    def maildir(self, user: str) -> Path:
        """The user's Maildir root; files written into new/ must be chowned to dovecot."""
        return self.root / "home" / user / "Maildir"

    def client(self, user: str) -> IMAPClient:
        """A logged-in client; the password is read back from the passwd-file."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(user, self._password(user))
        return client

    def _password(self, user: str) -> str:
        try:
            line = (self.root / "users" / user).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyError(f"no IMAP user {user!r}") from None
        return line.split(":")[1].removeprefix("{PLAIN}")

    def append(self, user: str, raw: bytes, folder: str = "INBOX", internaldate: datetime | None = None,
               flags: tuple = ()) -> None:
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=flags, msg_time=internaldate)
        finally:
            client.logout()

    def load(self, user: str, mails: list[bytes], start: datetime) -> None:
        """Put many mails into the user's INBOX at once, written straight into its
        Maildir/new (far faster than APPEND); mail i arrives at `start` + i seconds."""
        root = self.maildir(user)
        for sub in ("new", "cur", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        ent = pwd.getpwnam("dovecot")
        t0 = start.timestamp()
        for i, raw in enumerate(mails):
            path = root / "new" / f"{int(t0) + i}.M{i}P{os.getpid()}.mailproc,S={len(raw)}"
            path.write_bytes(raw)
            os.utime(path, (t0 + i, t0 + i))
        for dirpath, _dirs, files in os.walk(root.parent):
            os.chown(dirpath, ent.pw_uid, ent.pw_gid)
            for f in files:
                os.chown(os.path.join(dirpath, f), ent.pw_uid, ent.pw_gid)
