"""Shared fixtures: real Dovecot, real aiosmtpd, real PostgreSQL, fresh databases."""

from __future__ import annotations

import itertools
import os
import shutil

import pytest

from mailproc import db
from mailproc.testing import write_config

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory):
    from mailproc.testing.dovecot import Dovecot
    server = Dovecot(tmp_path_factory.mktemp("dovecot"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def imap_user(dovecot):
    """A fresh, empty IMAP account: (username, password)."""
    name = f"user{os.getpid()}x{next(_counter)}"
    return dovecot.add_user(name, "secret")


@pytest.fixture(scope="session")
def smtp_server():
    from mailproc.testing.smtp import SmtpCatcher
    server = SmtpCatcher()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    """The SMTP catcher, emptied and with no failures armed."""
    smtp_server.reset()
    return smtp_server


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    if shutil.which("pg_ctlcluster") is None and not os.path.isdir("/usr/lib/postgresql"):
        pytest.fail("PostgreSQL is not installed; run scripts/test, which installs it")
    from mailproc.testing.postgres import Postgres
    server = Postgres(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database URL; tests using it run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"t{os.getpid()}x{next(_counter)}")
    yield url
    db.close()


@pytest.fixture
def sqlite_url(tmp_path):
    yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
    db.close()


@pytest.fixture
def database(sqlite_url):
    """An open, migrated SQLite database bound to the models."""
    yield db.open_database(sqlite_url)


@pytest.fixture
def make_config(tmp_path):
    """make_config(**kw) -> path of a mailproc.ini in tmp_path (see testing.write_config)."""
    def make(**kw):
        return write_config(tmp_path / "site", **kw)
    return make
