"""The real test servers: Dovecot takes and serves mail, PostgreSQL makes databases."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import peewee as pw
import pytest
from playhouse.db_url import connect

RAW = b"From: ann@example.com\r\nTo: support@example.com\r\nSubject: Hello\r\n\r\nBody text\r\n"


def test_dovecot_append_then_fetch(dovecot, imap_user):
    user, _ = imap_user
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    dovecot.append(user, RAW, internaldate=when)
    client = dovecot.client(user)
    try:
        client.normalise_times = False
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search(["ALL"])
        data = client.fetch([uid], [b"BODY.PEEK[]", b"INTERNALDATE"])[uid]
    finally:
        client.logout()
    assert data[b"BODY[]"] == RAW
    assert data[b"INTERNALDATE"] == when


def test_dovecot_append_to_new_folder(dovecot, imap_user):
    user, _ = imap_user
    dovecot.append(user, RAW, folder="Archive")
    client = dovecot.client(user)
    try:
        assert client.select_folder("Archive", readonly=True)[b"EXISTS"] == 1
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    finally:
        client.logout()


def test_dovecot_reads_files_written_into_maildir(dovecot, imap_user):
    """The benchmark fills mailboxes by writing files straight into new/."""
    user, _ = imap_user
    new = dovecot.maildir(user) / "new"
    path = new / "1700000000.M1P1.bench"
    path.write_bytes(RAW)
    owner = os.stat(new)
    os.chown(path, owner.st_uid, owner.st_gid)
    client = dovecot.client(user)
    try:
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search(["ALL"])
        assert client.fetch([uid], [b"BODY.PEEK[]"])[uid][b"BODY[]"] == RAW
    finally:
        client.logout()


def test_dovecot_rejects_a_wrong_password(dovecot, imap_user):
    from imapclient import IMAPClient
    from imapclient.exceptions import LoginError
    user, _ = imap_user
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    with pytest.raises(LoginError):
        client.login(user, "not-the-password")
    client.logout()


def test_postgres_database_is_usable_with_peewee(postgres):
    url = postgres.create_database(f"servers{os.getpid()}")
    assert url == f"postgresql://postgres@127.0.0.1:{postgres.port}/servers{os.getpid()}"
    conn = connect(url)

    class Note(pw.Model):
        text = pw.TextField()

        class Meta:
            database = conn

    try:
        conn.create_tables([Note])
        Note.create(text="ünïcode survives")
        assert [n.text for n in Note.select()] == ["ünïcode survives"]
        assert "PostgreSQL" in conn.execute_sql("SELECT version()").fetchone()[0]
    finally:
        conn.close()
