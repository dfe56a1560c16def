"""`mailproc status` on SQLite and PostgreSQL: the figures of each section from a
database built through the cases door, the `--json` and text output of the real
command with no mailbox reachable, how polls are recorded, and that every query
is answered from an index (a status check must stay fast with a million cases)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import peewee as pw
import pytest

from mailproc import cases, db, due, status
from mailproc import config as config_mod
from mailproc.due import Planned, key
from mailproc.models import Message, Outbox, Person, utc
from mailproc.testing import write_config
from helpers import run, run_json

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # a Monday
NOW = T0 + timedelta(days=3)
UNREACHABLE = dict(host="127.0.0.1", port=1, username="u", password="p")  # nothing listens on port 1


def _config(tmp_path, db_url):
    return write_config(tmp_path / "site", database=db_url, mailboxes=[
        dict(name="support", address="support@example.com", **UNREACHABLE),
        dict(name="billing", address="billing@example.com", **UNREACHABLE),
        dict(name="sales", address="sales@example.com", **UNREACHABLE)])


def _case(summary: str, **values):
    return cases.open_case({"contact": "cus@shop.example", "summary": summary, **values}, decided={}, rules={},
                           actor="cus@shop.example", now=T0)


def _outbox(n: int, state: str, created_at: datetime) -> None:
    Outbox.create(kind="acknowledgement", message_id=f"<o{n}@example.com>", mail_from="support@example.com",
                  recipients=["cus@shop.example"], to_addr="cus@shop.example", raw=b"x", state=state,
                  next_attempt_at=utc(created_at), created_at=utc(created_at))


def _message(n: int, state: str) -> None:
    Message.create(raw_sha256=f"{n:064d}", size=1, source="ingest", arrived_at=utc(T0), stored_at=utc(T0),
                   state=state, error="boom" if state == "failed" else None)


def build() -> dict[str, int]:
    """A desk with something in every section; returns the case numbers by role."""
    ana = Person.create(address="ana@agents.example", handle="ana", name="Ana")
    red = _case("Export is \x1b[2Jbroken", assignee=ana, tier="T1", priority="P2")
    cases.touch(red, T0, sla_due=NOW - timedelta(hours=2))
    redder = _case("Cannot log in", tier="T2")
    cases.touch(redder, T0, sla_due=NOW - timedelta(hours=30))
    green = _case("Question")
    cases.touch(green, T0, sla_due=NOW + timedelta(hours=1))
    done = _case("Solved already")  # a stopped clock is not red, whatever the column says
    cases.set_field(done, "status", "resolved", actor="mailproc", now=T0)
    cases.touch(done, T0, sla_due=NOW - timedelta(hours=5))
    held = _case("Waiting for the fix", assignee=ana)
    cases.set_field(held, "status", "pending_development", actor="mailproc", now=T0)
    cases.touch(held, T0, long_hold_at=T0 + timedelta(days=2))
    moved_on = _case("Fixed in the release")  # flagged once, no longer on hold
    cases.touch(moved_on, T0, long_hold_at=T0 + timedelta(days=1))
    cases.set_field(moved_on, "status", "assigned", actor="mailproc", now=T0)

    due.sync(red.id, [Planned("remind", key("remind", red.id, 1), NOW - timedelta(hours=1)),
                      Planned("sla_red", key("sla_red", red.id), NOW + timedelta(hours=5))], T0)
    due.sync(green.id, [Planned("remind", key("remind", green.id, 1), NOW + timedelta(hours=2)),
                        Planned("close", key("close", green.id), NOW + timedelta(days=1))], T0)
    due.sync(held.id, [Planned("long_hold", key("long_hold", held.id), NOW - timedelta(minutes=30))], T0)
    (item,) = [i for i in due.take(NOW, 10) if i.kind == "long_hold"]
    due.fail(item, NOW, "template missing")  # raised once: retried a minute later
    done_item = Planned("close", key("close", done.id), NOW - timedelta(days=1))
    due.sync(done.id, [done_item], T0)
    (finished,) = [i for i in due.take(NOW, 10) if i.kind == "close"]
    due.finish(finished, NOW)

    _outbox(1, "queued", NOW - timedelta(hours=3))
    _outbox(2, "queued", NOW - timedelta(hours=1))
    _outbox(3, "sending", NOW - timedelta(minutes=1))
    _outbox(4, "failed", NOW - timedelta(days=1))
    _outbox(5, "sent", NOW - timedelta(days=2))
    for n, state in enumerate(("failed", "failed", "pending", "done")):
        _message(n, state)

    status.record_poll("support", NOW - timedelta(minutes=10), None)
    status.record_poll("billing", NOW - timedelta(hours=1), None)
    status.record_poll("billing", NOW - timedelta(minutes=5), "login refused")
    status.record_poll("retired", NOW - timedelta(days=9), None)  # no longer configured: not listed
    return {"red": red.id, "redder": redder.id, "held": held.id}


@pytest.fixture
def desk(db_url, tmp_path):
    path = _config(tmp_path, db_url)
    db.open_database(db_url)
    try:
        numbers = build()
    finally:
        db.close()
    return path, numbers


def _report(path):
    config = config_mod.load(path)
    db.open_database(config.database)
    try:
        return status.report(config, NOW)
    finally:
        db.close()


def test_report_figures(desk):
    path, n = desk
    data = _report(path)
    boxes = {b["name"]: b for b in data["mailboxes"]}
    assert list(boxes) == ["support", "billing", "sales"]
    assert boxes["support"]["last_ok_at"] == (NOW - timedelta(minutes=10)).isoformat()
    assert not boxes["support"]["failing"] and boxes["support"]["last_error"] is None
    assert boxes["billing"]["failing"] and boxes["billing"]["last_error"] == "login refused"
    assert boxes["billing"]["last_poll_at"] == (NOW - timedelta(minutes=5)).isoformat()
    assert boxes["billing"]["last_ok_at"] == (NOW - timedelta(hours=1)).isoformat()
    assert boxes["sales"]["last_poll_at"] is None and not boxes["sales"]["failing"]

    assert data["outbox"] == {"queued": 2, "sending": 1, "failed": 1,
                              "oldest_queued_at": (NOW - timedelta(hours=3)).isoformat(), "oldest_queued_hours": 3.0}
    assert data["messages"] == {"failed": 2, "pending": 1}

    d = data["due"]
    assert (d["pending"], d["overdue"], d["failing"]) == (5, 1, 1)  # the failed long hold is due again after NOW
    assert d["next_due_at"] == (NOW - timedelta(hours=1)).isoformat()
    assert d["kinds"]["remind"] == {"pending": 2, "next_due_at": (NOW - timedelta(hours=1)).isoformat(),
                                    "overdue": 1, "failing": 0}
    assert d["kinds"]["close"]["pending"] == 1  # the finished one is not counted
    assert d["kinds"]["long_hold"]["failing"] == 1 and d["kinds"]["long_hold"]["overdue"] == 0
    assert list(d["kinds"]) == ["close", "long_hold", "remind", "sla_red"]

    red = data["red_slas"]
    assert red["count"] == 2
    assert [c["number"] for c in red["cases"]] == [n["redder"], n["red"]]  # the longest overdue first
    first, second = red["cases"]
    assert first["hours_overdue"] == 30.0 and first["tier"] == "T2" and first["assignee"] is None
    assert second["assignee"] == "ana" and second["priority"] == "P2" and second["summary"] == "Export is \x1b[2Jbroken"

    holds = data["holds"]
    assert holds["count"] == 1
    (held,) = holds["cases"]
    assert held["number"] == n["held"] and held["status"] == "pending_development" and held["assignee"] == "ana"
    assert held["days_held"] == 3.0 and held["flagged_at"] == (T0 + timedelta(days=2)).isoformat()

    assert data["attention"] == ["mailbox billing: last poll failed: login refused", "mailbox sales: never polled",
                                 "outbox: 1 mail(s) failed",
                                 "messages: 2 failed (mailproc messages list --state failed)",
                                 "due work: 1 item(s) raised and are being retried", "SLA: 2 case(s) red",
                                 "holds: 1 engineering hold(s) flagged"]


def test_json_output_of_the_command(desk, capsys):
    path, n = desk
    data = run_json(path, capsys, "status", now=NOW.isoformat())  # exit 0 although much needs attention
    assert [b["name"] for b in data["mailboxes"]] == ["support", "billing", "sales"]
    assert data["outbox"]["queued"] == 2 and data["messages"]["failed"] == 2
    assert data["due"]["pending"] == 5
    assert [c["number"] for c in data["red_slas"]["cases"]] == [n["redder"], n["red"]]
    assert [c["number"] for c in data["holds"]["cases"]] == [n["held"]]
    assert len(data["attention"]) == 7


def test_text_output_is_terminal_safe(desk, capsys):
    path, n = desk
    code, out = run(path, "status", now=NOW.isoformat(), capsys=capsys)
    assert code == 0
    assert "\x1b" not in out and "Export is \\x1b[2Jbroken" in out
    lines = out.splitlines()
    billing = next(line for line in lines if line.lstrip().startswith("billing"))
    assert "FAILING" in billing
    assert any("last error" in line and "login refused" in line for line in lines)
    assert "Outbox: 2 queued, 1 sending, 1 failed, oldest queued" in out
    assert "Red SLAs: 2" in out and f"#{n['redder']}" in out
    assert "Engineering holds flagged: 1" in out
    held = next(line for line in lines if line.lstrip().startswith(f"#{n['held']} "))
    assert "pending_development" in held and "3.0 days" in held and "ana" in held
    assert "Needs attention:" in out


def test_an_empty_desk_needs_no_attention(db_url, tmp_path, capsys):
    path = write_config(tmp_path / "site", database=db_url)
    code, out = run(path, "status", now=NOW.isoformat(), capsys=capsys)
    assert code == 0 and "Nothing needs attention." in out and "none configured" in out


def test_record_poll_keeps_the_last_error_after_recovery(db_url, tmp_path):
    path = _config(tmp_path, db_url)
    db.open_database(db_url)
    try:
        status.record_poll("support", NOW - timedelta(hours=2), "connection refused")
        status.record_poll("support", NOW - timedelta(hours=1), "connection refused again")
    finally:
        db.close()
    box = _report(path)["mailboxes"][0]
    assert box["failing"] and box["last_ok_at"] is None and box["last_error"] == "connection refused again"
    assert box["last_error_at"] == (NOW - timedelta(hours=1)).isoformat()
    db.open_database(db_url)
    try:
        status.record_poll("support", NOW, None)
    finally:
        db.close()
    box = _report(path)["mailboxes"][0]
    assert not box["failing"] and box["last_ok_at"] == NOW.isoformat() and box["hours_since_ok"] == 0
    assert box["last_error"] == "connection refused again"  # what the trouble was, and when it ended


def _plans(sql: str, params: list) -> list[str]:
    database = db.proxy.obj
    if isinstance(database, pw.SqliteDatabase):
        return [row[-1] for row in db.query_all("EXPLAIN QUERY PLAN " + sql, params)]
    database.execute_sql("SET enable_seqscan = off")  # a sequential scan now means no index can serve
    try:
        return [row[0] for row in db.query_all("EXPLAIN " + sql, params)]
    finally:
        database.execute_sql("SET enable_seqscan = on")


def test_every_query_is_served_by_an_index(db_url):
    db.open_database(db_url)
    try:
        holds = ["pending_product", "pending_development"]
        marks = ", ".join("?" * len(holds))
        now = [utc(NOW)]
        queries = {"outbox": (status.OUTBOX, []), "message": (status.MESSAGES, []), "due": (status.DUE, now),
                   "red": (status.RED_COUNT, now + list(status.STOPPED)),
                   "red list": (status.RED, now + list(status.STOPPED) + [10]),
                   "holds": (status.HOLD_COUNT.format(marks=marks), holds),
                   "holds list": (status.HOLDS.format(marks=marks), holds + [10])}
        for name, (sql, params) in queries.items():
            plan = "\n".join(_plans(sql, params))
            assert "Seq Scan" not in plan, (name, plan)
            for line in plan.splitlines():  # SQLite: each table read through an index or the key
                if line.strip().startswith(("SCAN", "SEARCH")) and "TEMP B-TREE" not in line:
                    assert "USING" in line, (name, plan)
        assert "due_pending" in "\n".join(_plans(status.DUE, now))
        assert "cases_long_hold" in "\n".join(_plans(status.HOLD_COUNT.format(marks=marks), holds))
    finally:
        db.close()
