"""Hostile input, end to end: a sender controls every name, header and byte of a mail.

Each test runs the real `mailproc` command against Dovecot, the SMTP catcher
and the database (SQLite and PostgreSQL where the database matters), and
looks at what went out on the wire, what was stored and what an operator's
terminal is shown.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from datetime import timedelta

import pytest

from helpers import T0, clock_from, run, run_json
from mailproc import db


@pytest.fixture(autouse=True)
def clock_at_the_mails(monkeypatch):
    """The clock stands just after the test mails' dates (T0): these tests are about intake,
    and on the real clock the workflow's timers (a "still looking" note two business days
    after a mail) would already be due for them."""
    clock_from(monkeypatch, T0 + timedelta(minutes=30))


SUPPORT = "support@example.com"
TRUSTED = "mx.support.example"


def raw_mail(*headers: str, body: str = "Please help.", message_id: str | None = "m1@h.example") -> bytes:
    """A mail exactly as written: the test controls every byte of the header block."""
    lines = [*headers, "To: support@example.com", "Date: Thu, 26 Nov 2026 09:00:00 +0000"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode("utf-8", "surrogateescape")


@pytest.fixture
def site(dovecot, imap_user, smtp, make_config, db_url):
    user, password = imap_user
    path = make_config(database=db_url, mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port,
                                                        username=user, password=password, address=SUPPORT)],
                       smtp=dict(host=smtp.host, port=smtp.port))
    return dict(config=path, user=user)


def poll(site, dovecot, capsys, *raws: bytes) -> None:
    for raw in raws:
        dovecot.append(site["user"], raw, internaldate=T0)
    code, _ = run(site["config"], "run", "--once", capsys=capsys)
    assert code == 0


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def test_encoded_word_names_do_not_split_the_sender(site, dovecot, smtp, capsys):
    poll(site, dovecot, capsys,
         raw_mail("From: =?utf-8?q?Eve=0D=0ABcc:_evil@x.example?= <a@h.example>", message_id="e1@h.example"),
         raw_mail("From: =?utf-8?q?Smith,_John?= <j@h.example>", message_id="e2@h.example"))
    sent = smtp.wait_for(2)
    assert sorted(tuple(got.rcpt_tos) for got in sent) == [("a@h.example",), ("j@h.example",)]
    for got in sent:
        assert b"evil" not in header_block(got.data)
    cases = run_json(site["config"], capsys, "cases", "list")
    assert [(c["contact"], c["contact_name"]) for c in cases] == [
        ("a@h.example", "Eve Bcc: evil@x.example"), ("j@h.example", "Smith, John")]


PHISH_NAME = "=?utf-8?q?Your_account_is_locked.=0D=0AUnlock_it_at_http://phish.example/unlock?="


def test_a_name_cannot_write_lines_links_or_markup_into_our_mail(site, dovecot, smtp, capsys):
    poll(site, dovecot, capsys,
         raw_mail(f"From: {PHISH_NAME} <mallory@h.example>", "Reply-To: victim@v.example",
                  "Subject: <b>Urgent</b> visit www.phish.example or <a href=\"http://phish.example\">here</a>"))
    [got] = smtp.wait_for(1)
    assert got.rcpt_tos == ["victim@v.example"]
    head = header_block(got.data).decode("ascii")
    assert not re.search(r"^(Unlock|Reply-To|Bcc)", head, re.M | re.I)
    text = got.message.get_body(("plain",)).get_content()
    html = got.message.get_body(("html",)).get_content()
    for part in (text, html, got.message["Subject"]):
        assert "phish.example" not in part and "http://" not in part  # nothing a mail client links
        assert "Unlock it" not in part  # a name that carries a link is not used to greet
    assert "Hello there" in text
    assert "www[.]phish[.]example" in text and "www[.]phish[.]example" in html
    # Markup from the sender is shown as text, never interpreted.
    assert "<b>" not in html and "&lt;b&gt;Urgent&lt;/b&gt;" in html
    assert re.findall(r"<a\s[^>]*href=\"([^\"]*)\"", html) == [f"mailto:{SUPPORT}"]
    [case] = run_json(site["config"], capsys, "cases", "list")
    assert "\r" not in case["contact_name"] and "\n" not in case["contact_name"]


def test_names_and_subjects_are_bounded_and_printable_in_our_mail(site, dovecot, smtp, capsys):
    long_name = "N" * 5000
    poll(site, dovecot, capsys, raw_mail(f"From: {long_name} <n@h.example>",
                                         "Subject: " + "Very long subject " * 200 + "end"))
    [got] = smtp.wait_for(1)
    text = got.message.get_body(("plain",)).get_content()
    assert "N" * 101 not in text and "Very long subject " * 20 not in text
    assert len(got.message["Subject"]) < 300
    [case] = run_json(site["config"], capsys, "cases", "list")
    assert len(case["contact_name"]) <= 100 and len(case["summary"]) <= 200


def enable_dmarc(config: Path) -> None:
    with open(config, "a", encoding="utf-8") as fh:
        fh.write(f"\n[auth]\nauthserv_id = {TRUSTED}\n")


def test_sender_failing_dmarc_at_our_server_is_not_acknowledged(site, dovecot, smtp, capsys):
    enable_dmarc(site["config"])
    fail = f"Authentication-Results: {TRUSTED}; spf=pass smtp.mailfrom=h.example; dmarc=fail header.from=bank.example"
    forged = "Authentication-Results: other.example; dmarc=fail header.from=h.example"
    passed = f"Authentication-Results: {TRUSTED.upper()}; dmarc=pass header.from=h.example"
    poll(site, dovecot, capsys,
         raw_mail("From: Bank <alerts@bank.example>", fail, "Subject: forged", message_id="d1@h.example"),
         raw_mail("From: Ana <ana@h.example>", forged, "Subject: forged fail", message_id="d2@h.example"),
         raw_mail("From: Bo <bo@h.example>", passed, forged, "Subject: passed", message_id="d3@h.example"))
    sent = smtp.wait_for(2)
    assert sorted(got.rcpt_tos[0] for got in sent) == ["ana@h.example", "bo@h.example"]
    cases = run_json(site["config"], capsys, "cases", "list")
    assert [c["contact"] for c in cases] == ["alerts@bank.example", "ana@h.example", "bo@h.example"]
    events = run_json(site["config"], capsys, "cases", "show", cases[0]["number"])["events"]
    [suppressed] = [e for e in events if e["kind"] == "mail_suppressed"]
    assert "DMARC" in suppressed["detail"] and TRUSTED in suppressed["detail"]
    assert not any(e["kind"] == "mail_queued" for e in events)


def test_authentication_results_are_ignored_without_an_authserv_id(site, dovecot, smtp, capsys):
    fail = f"Authentication-Results: {TRUSTED}; dmarc=fail header.from=h.example"
    poll(site, dovecot, capsys, raw_mail("From: Ana <ana@h.example>", fail, "Subject: hello"))
    assert [got.rcpt_tos for got in smtp.wait_for(1)] == [["ana@h.example"]]


def test_control_characters_and_huge_headers_never_reach_our_mail(site, dovecot, smtp, capsys):
    huge_id = "x" * 5000 + "@h.example"
    poll(site, dovecot, capsys,
         raw_mail("From: =?utf-8?q?Bell=07_Esc=1B[31m_Nul=00?= <c@h.example>",
                  "Subject: =?utf-8?q?red=1B[31m_bell=07_nul=00_del=7F_c1=C2=9B?= done", message_id="c1@h.example"),
         raw_mail("From: s@h.example", "Subject: " + "S" * (1 << 20), message_id="s1@h.example"),
         raw_mail("From: i@h.example", "Subject: long ids", f"References: <{huge_id}> <root@h.example>",
                  f"In-Reply-To: <{huge_id}>", message_id=huge_id))
    sent = {got.rcpt_tos[0]: got for got in smtp.wait_for(3)}
    assert sorted(sent) == ["c@h.example", "i@h.example", "s@h.example"]
    for got in sent.values():
        assert max(len(line) for line in got.data.split(b"\r\n")) <= 998
        head = got.message.items()
        for name, value in head:
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", str(value)), (name, value)
    assert sent["c@h.example"].message["Subject"].startswith("Re: red[31m bell nul del c1 done [Case #")
    assert len(sent["s@h.example"].message["Subject"]) < 300
    long_ids = sent["i@h.example"].message
    assert long_ids["In-Reply-To"] is None
    assert long_ids["References"].strip() == "<root@h.example>"


def ingest_file(site, capsys, tmp_path, raw: bytes) -> dict:
    path = tmp_path / "nul.eml"
    path.write_bytes(raw)
    code, out = run(site["config"], "ingest", path, "--mailbox", "support", capsys=capsys)
    assert code == 0, out
    return path


def test_nul_bytes_are_left_out_of_stored_text_and_kept_in_the_raw_mail(site, smtp, capsys, tmp_path):
    raw = raw_mail("From: =?utf-8?q?Nu=00ll?= <nul@h.example>", "Subject: before\x00after",
                   body="body\x00text")
    ingest_file(site, capsys, tmp_path, raw)
    [message] = run_json(site["config"], capsys, "messages", "list")
    assert (message["state"], message["disposition"]) == ("done", "new_case"), message["error"]
    assert message["subject"] == "beforeafter"
    [case] = run_json(site["config"], capsys, "cases", "list")
    assert case["contact_name"] == "Null"
    detail = run_json(site["config"], capsys, "cases", "show", case["number"])
    assert detail["description"].strip() == "bodytext"
    digest = hashlib.sha256(raw).hexdigest()
    stored = site["config"].parent / "storage" / "raw" / digest[:2] / f"{digest[2:]}.eml"
    assert stored.read_bytes() == raw
    run(site["config"], "run", "--once", capsys=capsys)
    assert [got.rcpt_tos for got in smtp.wait_for(1)] == [["nul@h.example"]]


def test_terminal_output_escapes_control_characters(site, dovecot, smtp, capsys, tmp_path):
    ingest_file(site, capsys, tmp_path, raw_mail("From: t@h.example", "Subject: a\x1b[2Jb\x07c\x00d\x9be"))
    for args in (("cases", "list"), ("cases", "show", "1"), ("messages", "list")):
        code, out = run(site["config"], *args, capsys=capsys)
        assert code == 0
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), (args, out)
        if args[0] == "messages":
            assert r"a\x1b[2Jb\x07cd\x9be" in out


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_storage_is_private_whatever_the_umask(dovecot, imap_user, smtp, make_config, db_url, capsys, umask_022,
                                               tmp_path):
    storage = tmp_path / "site" / "storage"
    sqlite = db_url.startswith("sqlite")
    url = f"sqlite:///{storage / 'db' / 'mailproc.sqlite3'}" if sqlite else db_url
    user, password = imap_user
    config = make_config(database=url, mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port,
                                                       username=user, password=password, address=SUPPORT)],
                         smtp=dict(host=smtp.host, port=smtp.port))
    dovecot.append(user, raw_mail("From: p@h.example", "Subject: private"), internaldate=T0)
    assert run(config, "run", "--once", capsys=capsys)[0] == 0
    smtp.wait_for(1)
    database = db.open_database(url)
    database.execute_sql("UPDATE message SET state = state")  # SQLite's WAL and its index exist while open
    try:
        directories = [storage, storage / "raw", *(storage / "raw").iterdir()]
        files = list((storage / "raw").glob("*/*.eml"))
        assert len(files) == 1
        if sqlite:
            directories.append(storage / "db")
            files += list((storage / "db").iterdir())
            assert {p.name for p in (storage / "db").iterdir()} >= {
                "mailproc.sqlite3", "mailproc.sqlite3-wal", "mailproc.sqlite3-shm"}
        assert {str(p): oct(mode(p)) for p in directories} == {str(p): "0o700" for p in directories}
        assert {str(p): oct(mode(p)) for p in files} == {str(p): "0o600" for p in files}
    finally:
        db.close()
