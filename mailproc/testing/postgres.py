"""A real, throwaway PostgreSQL cluster on 127.0.0.1 for tests and the benchmark.

initdb refuses to run as root, so the cluster is created and run as the
`postgres` OS user (via runuser) in a directory of its own, with trust
authentication, a free port and its unix socket beside the data. Durability
is switched off (fsync, synchronous_commit): the data dies with the test.
"""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
from pathlib import Path

from mailproc.testing import free_port, log_tail
from mailproc.testing.dovecot import reachable_root, remove_later

MARK = "\n# --- mailproc test server ---\n"
SETTINGS = """listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 32MB
"""


def bin_dir() -> Path:
    """The newest /usr/lib/postgresql/N/bin that has initdb."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                           "run scripts/test, which installs it")
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


class Postgres:
    user = "postgres"

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.root: Path | None = None
        self.port = 0
        self.bin = bin_dir()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a PostgreSQL binary as the postgres OS user; output goes to the log file."""
        with open(self.log, "ab") as out:
            done = subprocess.run(["runuser", "-u", self.user, "--", str(self.bin / args[0]), *args[1:]],
                                  cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        if check and done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed (exit {done.returncode}); log {self.log}:\n{self._log_tail()}")
        return done

    def _log_tail(self) -> str:
        return log_tail(self.log)

    def start(self) -> None:
        """Create the cluster (first time only) and start it; after stop() it comes back on the same port."""
        if self.root is None:
            self._create()
        conf = self.data / "postgresql.conf"
        base = conf.read_text().split(MARK)[0]
        fixed = self.port != 0
        for _ in range(1 if fixed else 5):  # another process may grab the free port first
            if not fixed:
                self.port = free_port()
            conf.write_text(base + MARK + SETTINGS.format(port=self.port, socket=self.root / "socket"))
            started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                                "start", check=False)
            if started.returncode == 0:
                return
            if "already in use" not in self._log_tail():
                break
        raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{self.port}; log {self.log}:\n"
                           + self._log_tail())

    def _create(self) -> None:
        owner = pwd.getpwnam(self.user)
        self.root, private = reachable_root(self.directory, "mailproc-pg-")
        if private:
            remove_later(self, self.root)
        socket_dir = self.root / "socket"
        socket_dir.mkdir(exist_ok=True)
        for path in (socket_dir, self.root):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.log.touch()
        os.chown(self.log, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def url(self, name: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; return its URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE "{name}"')

    def _admin(self, statement: str) -> None:
        """A statement outside any transaction, in the maintenance database."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()
