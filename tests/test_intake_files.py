"""Intake from files and pipes: `mailproc ingest` (.eml, mbox, Maildir, folders) and
`mailproc deliver` (one message on stdin), with the real command, a real database
and the SMTP catcher. Bad input is the point: whatever arrives is stored raw, gets
a row, and ends in a final state; nothing is lost or left pending.
"""

from __future__ import annotations

import hashlib
import json
import mailbox
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpers import T0, mail, run, run_json

MAIL_DIR = Path(__file__).parent / "mail"
SUPPORT = "support@example.com"


@pytest.fixture
def site(make_config, smtp, dovecot, imap_user):
    """An empty real mailbox (so `run --once` is quick), the SMTP catcher, a 100 KB size limit."""
    user, password = imap_user
    return make_config(mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port, username=user,
                                       password=password, address=SUPPORT)],
                       smtp=dict(host=smtp.host, port=smtp.port), extra={"max_message_size": "100KB"})


def ingest(config, capsys, *args, now=None):
    code, out = run(config, "ingest", *args, now=now, capsys=capsys)
    assert code == 0, out
    return json.loads(out)


def write(path: Path, raw: bytes, mtime: datetime | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def stored_file(config: Path, raw: bytes) -> Path:
    digest = hashlib.sha256(raw).hexdigest()
    return config.parent / "storage" / "raw" / digest[:2] / f"{digest[2:]}.eml"


def test_ingest_one_eml_file(site, capsys, tmp_path):
    raw = mail("How do I export to PDF?", "Where is the export button?", message_id="one-eml")
    path = write(tmp_path / "in" / "question.eml", raw, mtime=T0)
    assert ingest(site, capsys, path) == {"stored": 1, "new_case": 1}
    [message] = run_json(site, capsys, "messages", "list")
    assert (message["state"], message["disposition"], message["source"]) == ("done", "new_case", "ingest")
    assert message["message_id"] == "one-eml@test.example" and message["size"] == len(raw)
    assert message["arrived_at"] == T0.isoformat()  # an .eml file's arrival is its modification time
    [case] = run_json(site, capsys, "cases", "list")
    assert (case["summary"], case["contact"]) == ("How do I export to PDF?", "alice@acme.example")
    assert stored_file(site, raw).read_bytes() == raw


def test_ingest_mbox_with_three_messages(site, capsys, tmp_path):
    path = tmp_path / "archive.mbox"
    box = mailbox.mbox(str(path))
    for n in range(3):
        entry = mailbox.mboxMessage(mail(f"Mbox question {n}", f"body {n}", sender=f"m{n}@mbox.example",
                                         message_id=f"mbox{n}"))
        entry.set_from(f"m{n}@mbox.example", (T0 + timedelta(hours=n)).utctimetuple())
        box.add(entry)
    box.flush()
    box.close()
    assert path.read_bytes().startswith(b"From ")
    assert ingest(site, capsys, path) == {"stored": 3, "new_case": 3}
    messages = run_json(site, capsys, "messages", "list")
    assert [m["message_id"] for m in messages] == [f"mbox{n}@test.example" for n in range(3)]
    # The arrival time of an mbox message is the date on its "From " line.
    assert [m["arrived_at"] for m in messages] == [(T0 + timedelta(hours=n)).isoformat() for n in range(3)]
    assert [c["contact"] for c in run_json(site, capsys, "cases", "list")] == [f"m{n}@mbox.example" for n in range(3)]
    # What is stored is each message itself, without the mbox "From " line.
    stored = sorted((site.parent / "storage" / "raw").glob("*/*.eml"))
    assert len(stored) == 3
    assert all(f.read_bytes().startswith(b"From: m") and b"Subject: Mbox question" in f.read_bytes()
               for f in stored)


def test_ingest_maildir_reads_new_and_cur_not_tmp(site, capsys, tmp_path):
    md = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    md.add(mailbox.MaildirMessage(mail("Unread one", "in new/", message_id="md-new")))
    seen = mailbox.MaildirMessage(mail("Read one", "in cur/", message_id="md-cur"))
    seen.set_subdir("cur")
    seen.add_flag("S")
    md.add(seen)
    write(tmp_path / "Maildir" / "tmp" / "1.partial", mail("Half delivered", "in tmp/", message_id="md-tmp"))
    assert sorted(p.parent.name for p in (tmp_path / "Maildir").glob("*/*")) == ["cur", "new", "tmp"]
    assert ingest(site, capsys, tmp_path / "Maildir") == {"stored": 2, "new_case": 2}
    ids = sorted(m["message_id"] for m in run_json(site, capsys, "messages", "list"))
    assert ids == ["md-cur@test.example", "md-new@test.example"]


def test_ingest_directory_of_eml_files(site, capsys, tmp_path):
    folder = tmp_path / "backfill"
    for n in range(3):
        write(folder / f"{n}.eml", mail(f"Folder question {n}", f"body {n}", message_id=f"dir{n}"))
    write(folder / "older" / "3.eml", mail("Folder question 3", "in a sub-folder", message_id="dir3"))
    write(folder / ".hidden.eml", mail("Editor backup", "not a message", message_id="hidden"))
    assert ingest(site, capsys, folder, "--mailbox", "support") == {"stored": 4, "new_case": 4}
    messages = run_json(site, capsys, "messages", "list")
    assert sorted(m["message_id"] for m in messages) == [f"dir{n}@test.example" for n in range(4)]
    assert {m["mailbox"] for m in messages} == {"support"}


def test_ingest_missing_path_is_an_error_and_stores_nothing(site, capsys, tmp_path):
    good = write(tmp_path / "good.eml", mail("A real one", "body", message_id="real"))
    code, _ = run(site, "ingest", good, tmp_path / "nope.eml")
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'nope.eml'}: no such file or directory" in err
    # The good file named before the missing one was not stored either (it would sit pending).
    assert run_json(site, capsys, "messages", "list") == []
    code, _ = run(site, "ingest", good, "--mailbox", "sales")
    assert code == 78 and "no mailbox named 'sales'" in capsys.readouterr().err
    assert run_json(site, capsys, "messages", "list") == []


def bad_corpus(folder: Path) -> dict[str, bytes]:
    """Generated bad input, beside the sample mails in tests/mail."""
    big_body = ("All work and no play makes a long mail. " * 3000).encode()
    cases = {
        "zero.eml": b"",
        "oversized.eml": (b"From: big@huge.example\r\nTo: support@example.com\r\nSubject: Huge attachment\r\n"
                          b"Message-ID: <big@huge.example>\r\n\r\n" + big_body),
        "malformed.eml": (b"From: mime@broken.example\r\nSubject: Never-ending multipart\r\n"
                          b"Message-ID: <gen-malformed@broken.example>\r\nMIME-Version: 1.0\r\n"
                          b"Content-Type: multipart/mixed; boundary=\"XYZ\r\n\r\n"
                          b"--XYZ\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                          b"!!!not base64!!!\r\n--XY"),
        "charset.eml": (b"From: odd@charset.example\r\nSubject: =?x-klingon?Q?tlhIngan?=\r\n"
                        b"Message-ID: <gen-charset@charset.example>\r\n"
                        b"Content-Type: text/plain; charset=x-klingon\r\n\r\nQapla\xe9\xff\r\n"),
        "eightbit.eml": ("From: Jos\u00e9 M\u00fcller <jose@latin.example>\r\nSubject: Fatura n\u00e3o chegou\r\n"
                         "Message-ID: <gen-8bit@latin.example>\r\n\r\nOl\u00e1\r\n").encode("latin-1"),
        "no-id.eml": b"From: anon@noid.example\r\nSubject: Who am I\r\n\r\nThere is no Message-ID.\r\n",
        "empty-body.eml": b"From: quiet@empty.example\r\nSubject: Nothing to say\r\nMessage-ID: <e@e.x>\r\n\r\n",
        "garbage.eml": bytes(range(256)) * 4,
        "headers-only.eml": b"From: cut@short.example\r\nSubject: Cut off",
    }
    for name, raw in cases.items():
        write(folder / name, raw)
    return cases


def test_bad_input_corpus_nothing_lost(make_config, smtp, dovecot, imap_user, db_url, capsys, tmp_path):
    user, password = imap_user
    config = make_config(database=db_url, smtp=dict(host=smtp.host, port=smtp.port),
                         mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port, username=user,
                                         password=password, address=SUPPORT)],
                         extra={"max_message_size": "100KB"})
    generated = bad_corpus(tmp_path / "generated")
    # ingest reads sub-folders too (replies/ and the like)
    samples = {str(p.relative_to(MAIL_DIR)): p.read_bytes() for p in sorted(MAIL_DIR.rglob("*.eml"))}
    assert len(samples) >= 20 and samples["empty.eml"] == b""
    result = ingest(config, capsys, MAIL_DIR, tmp_path / "generated")
    total = len(samples) + len(generated)
    assert result["stored"] == total and sum(v for k, v in result.items() if k != "stored") == total

    messages = run_json(config, capsys, "messages", "list")
    assert len(messages) == total  # every file has its row
    assert {m["state"] for m in messages} == {"done"}, [m for m in messages if m["state"] != "done"]
    assert all(m["disposition"] for m in messages)
    by_size = {}
    for m in messages:
        by_size.setdefault(m["size"], []).append(m)
    # empty.eml is rejected; zero.eml, the very same (no) bytes, is a duplicate of it.
    assert [m["disposition"] for m in by_size[0]] == ["rejected", "duplicate"]
    assert all(m["case"] is None and m["from"] == "" for m in by_size[0])
    [big] = by_size[len(generated["oversized.eml"])]
    assert big["disposition"] == "rejected" and big["size"] > 100 * 1024
    assert any(t.startswith("pipeline:too-large") for t in big["trace"])
    assert big["from"] == "big@huge.example"  # who sent it is still recorded, from the headers
    for name, raw in {**samples, **generated}.items():
        assert stored_file(config, raw).read_bytes() == raw, name

    # The cases opened got their acknowledgements through the real SMTP server.
    assert run(config, "run", "--once", capsys=capsys)[0] == 0
    cases = run_json(config, capsys, "cases", "list")
    acknowledged = {c["contact"] for c in cases
                    if any(e["kind"] == "mail_queued" for e in run_json(config, capsys, "cases", "show",
                                                                        c["number"])["events"])}
    assert acknowledged
    received = smtp.wait_for(len(acknowledged))
    assert {r.rcpt_tos[0] for r in received} == acknowledged


def mailproc_cmd(config, *args, stdin: bytes = b"", env: dict | None = None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROC_")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "mailproc", "--config", str(config), *args],
                          input=stdin, capture_output=True, env=environment, timeout=60)


def test_deliver_reads_one_message_on_stdin(site, capsys):
    raw = mail("Piped question", "Came in through the MTA pipe", sender="pipe@mta.example", message_id="piped")
    done = mailproc_cmd(site, "deliver", "--mailbox", "support", stdin=raw)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["disposition"] == "new_case"
    [message] = run_json(site, capsys, "messages", "list")
    assert (message["id"], message["source"], message["mailbox"]) == (result["message"], "deliver", "support")
    [case] = run_json(site, capsys, "cases", "list")
    assert (case["number"], case["summary"], case["mailbox"]) == (message["case"], "Piped question", "support")
    assert stored_file(site, raw).read_bytes() == raw

    # The same mail piped twice is a duplicate, not a second case.
    again = json.loads(mailproc_cmd(site, "deliver", "--mailbox", "support", stdin=raw).stdout)
    assert again["disposition"] == "duplicate"
    assert len(run_json(site, capsys, "cases", "list")) == 1


def test_deliver_to_unknown_mailbox_names_it(site, capsys):
    done = mailproc_cmd(site, "deliver", "--mailbox", "sales", stdin=mail(message_id="lost"))
    stderr = done.stderr.decode()
    assert done.returncode == 78
    assert "no mailbox named 'sales'" in stderr and "configured: support" in stderr and str(site) in stderr
    assert run_json(site, capsys, "messages", "list") == []


SET = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def close_to(text: str, when: datetime, seconds: float = 60) -> bool:
    return timedelta(0) <= datetime.fromisoformat(text) - when <= timedelta(seconds=seconds)


def test_now_sets_processing_time_and_file_time_sets_arrival(site, capsys, tmp_path):
    earlier = SET - timedelta(hours=3)
    path = write(tmp_path / "q.eml", mail("Clock question", "when?", message_id="clock1"), mtime=earlier)
    ingest(site, capsys, path, now=SET.isoformat())
    [message] = run_json(site, capsys, "messages", "list")
    assert message["arrived_at"] == earlier.isoformat()
    assert close_to(message["processed_at"], SET)
    case = run_json(site, capsys, "cases", "show", message["case"])
    assert case["created_at"] == earlier.isoformat()  # the SLA clock starts at arrival
    assert case["events"] and all(close_to(e["at"], SET) for e in case["events"])  # the history uses the clock


def test_file_newer_than_now_arrives_now(site, capsys, tmp_path):
    """A file written (by the real clock) after the instant --now sets cannot have arrived later than now."""
    path = write(tmp_path / "fresh.eml", mail("Fresh file", "just written", message_id="fresh"))
    assert datetime.fromtimestamp(path.stat().st_mtime, timezone.utc) > SET
    ingest(site, capsys, path, now=SET.isoformat())
    [message] = run_json(site, capsys, "messages", "list")
    assert close_to(message["arrived_at"], SET)
    assert close_to(run_json(site, capsys, "cases", "show", message["case"])["created_at"], SET)


def test_mailproc_now_environment_variable(site, capsys, monkeypatch, tmp_path):
    done = mailproc_cmd(site, "deliver", "--mailbox", "support", stdin=mail("Env clock", "x", message_id="env1"),
                        env={"MAILPROC_NOW": SET.isoformat()})
    assert done.returncode == 0, done.stderr.decode()
    [message] = run_json(site, capsys, "messages", "list")
    assert close_to(message["arrived_at"], SET)  # piped mail arrives when it is delivered
    case = run_json(site, capsys, "cases", "show", message["case"])
    assert close_to(case["created_at"], SET) and all(close_to(e["at"], SET) for e in case["events"])

    # --now wins over MAILPROC_NOW.
    monkeypatch.setenv("MAILPROC_NOW", "2020-01-01T00:00:00Z")
    later = SET + timedelta(days=1)
    ingest(site, capsys, write(tmp_path / "b.eml", mail("Flag clock", "y", message_id="env2")), now=later.isoformat())
    assert close_to(run_json(site, capsys, "messages", "list")[1]["processed_at"], later)

    monkeypatch.setenv("MAILPROC_NOW", "yesterday-ish")
    code, _ = run(site, "messages", "list")
    assert code == 2 and "MAILPROC_NOW" in capsys.readouterr().err


def test_mtime_is_read_from_the_file_not_the_clock(site, capsys, tmp_path):
    """Two files ingested at once keep their own times, in the order they arrived."""
    first = write(tmp_path / "b-first.eml", mail("First", "1", message_id="t1"), mtime=T0 - timedelta(days=2))
    second = write(tmp_path / "a-second.eml", mail("Second", "2", message_id="t2"), mtime=T0 - timedelta(days=1))
    ingest(site, capsys, first, second)
    arrived = {m["message_id"]: m["arrived_at"] for m in run_json(site, capsys, "messages", "list")}
    assert arrived == {"t1@test.example": (T0 - timedelta(days=2)).isoformat(),
                       "t2@test.example": (T0 - timedelta(days=1)).isoformat()}
