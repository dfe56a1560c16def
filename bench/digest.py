"""The leads' digests against a million cases (issue 8; see bench/README.md).

    .venv/bin/python bench/digest.py [--cases 1000000] [--recent 200000] [--db sqlite|postgresql|both]

For each database one throwaway database (schema from `db.open_database`, so the real
indexes) is filled by the database itself — `INSERT … SELECT` over a recursive CTE on
SQLite, over `generate_series` on PostgreSQL, never a row through Python — then ANALYZEd:

- N cases, ids in creation order: N - RECENT spread over the two years before the last
  30 days (97 % closed, the rest open: old engineering holds, forgotten ones), RECENT in
  the last 30 days (about 55 % closed, the rest over every open status); types,
  priorities, tiers and ten agents spread by fixed arithmetic on the id; first
  responses from minutes to a day; red and yellow SLA clocks on open cases, flagged long
  holds, survey answers and testimonial requests on closed ones, P1s paged (most
  acknowledged), every 500th case tagged with one of 40 known issues, every 1,000th
  tagged Process-Tweak;
- for the recent cases only (older history is never read by a digest): one message each
  (half with a follow-up), a 'created' and a status event each, a 'paged' event per P1,
  a tag event per review tag, an agent answer for every fourth (a third of them
  documented; of the rest a quarter are two canned texts with the case's number in them,
  near-identical, which the missing-docs pass exists to find, the others random text),
  plus a few clusters, a queued outbox and the mailbox's poll state.

Answers get the group `missingdocs.record` would give them (the canned texts one group each),
and `missingdocs.record` itself is timed for 300 new answers against the 30 days of answers
(rolled back).

Measured: `reports.digest.build` for yesterday and `reports.weekly.build` for last week
(the figures and both renderings, as the slot job builds them), first run and best of
three, with the time of each query group beside it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import peewee as pw

from mailproc import db, roster
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.testing import write_config

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # Tuesday: the daily digest of Monday, the weekly of 16-22 Nov
AGENTS = 10
RECENT_DAYS = 30
OLD_DAYS = 700


class Dialect:
    """The few SQL spellings that differ between the two databases."""

    def __init__(self, sqlite: bool):
        self.sqlite = sqlite
        self.epoch = int(NOW.timestamp())

    def ts(self, seconds: str) -> str:
        """The instant `seconds` (an SQL expression) from NOW, as the column stores it (naive UTC)."""
        if self.sqlite:
            return f"strftime('%Y-%m-%d %H:%M:%S', {self.epoch} + ({seconds}), 'unixepoch')"
        return f"(TIMESTAMP '{NOW.replace(tzinfo=None).isoformat(sep=' ')}' + ({seconds}) * INTERVAL '1 second')"

    def series(self, first: int, last: int) -> str:
        """A FROM clause naming one integer column `i` running first..last."""
        if self.sqlite:
            return (f"(WITH RECURSIVE s(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM s WHERE i < {last})"
                    " SELECT i FROM s) AS s")
        return f"generate_series({first}::bigint, {last}::bigint) AS s(i)"

    def noise(self) -> str:
        """About 100 characters of random text: an answer like no other."""
        if self.sqlite:
            return "lower(hex(randomblob(50)))"
        return "md5(random()::text) || md5(random()::text) || md5(random()::text)"

    def sha(self, expr: str) -> str:
        return f"printf('%064d', {expr})" if self.sqlite else f"lpad(({expr})::text, 64, '0')"


def case_select(d: Dialect, n: int, recent: int) -> tuple[list[str], str]:
    """Columns and the SELECT expressions of a case numbered i."""
    old = n - recent
    # Seconds from NOW, in integer arithmetic on both databases: the old cases over OLD_DAYS
    # before the last RECENT_DAYS, the recent ones evenly up to NOW.
    created = (f"(CASE WHEN i <= {old} THEN -{RECENT_DAYS * 86400} - ({old} - i) * {OLD_DAYS * 86400} / {max(old, 1)}"
               f" ELSE -{RECENT_DAYS * 86400} + (i - {old}) * {RECENT_DAYS * 86400} / {max(recent, 1)} END)")
    r = {k: f"((i * {p}) % 100)" for k, p in dict(t=7, p=13, s=17, tier=19, f=23, sat=29, misc=31).items()}
    status = (f"(CASE WHEN i <= {old} THEN (CASE WHEN {r['s']} < 97 THEN 'closed' WHEN {r['s']} < 98"
              " THEN 'pending_development' WHEN {s} < 99 THEN 'on_hold' ELSE 'assigned' END)"
              " ELSE (CASE WHEN {s} < 55 THEN 'closed' WHEN {s} < 60 THEN 'resolved' WHEN {s} < 63"
              " THEN 'pending_closure' WHEN {s} < 75 THEN 'assigned' WHEN {s} < 80 THEN 'new' WHEN {s} < 85"
              " THEN 'pending_input' WHEN {s} < 88 THEN 'waiting' WHEN {s} < 91 THEN 'on_hold' WHEN {s} < 95"
              " THEN 'pending_development' WHEN {s} < 97 THEN 'pending_release' ELSE 'staging' END) END)"
              ).format(s=r["s"])
    closed = f"({status} = 'closed')"
    finished = f"({status} IN ('closed', 'resolved', 'pending_closure'))"
    running = f"({status} IN ('new', 'assigned'))"
    hours = "(3600 * (1 + i % 72))"  # resolution: 1 to 72 hours
    first = "(60 * ((i * 37) % 1500))"  # first response: 0 to 25 hours
    cols = {
        "id": "i", "mailbox": "'support'",
        "type": (f"(CASE WHEN {r['t']} < 60 THEN 'request' WHEN {r['t']} < 70 THEN 'admin'"
                 f" WHEN {r['t']} < 80 THEN 'enhancement' ELSE 'bug' END)"),
        "status": status,
        "priority": (f"(CASE WHEN {r['p']} < 1 THEN 'P1' WHEN {r['p']} < 5 THEN 'P2' WHEN {r['p']} < 20 THEN 'P3'"
                     f" WHEN {r['p']} < 50 THEN 'P4' WHEN {r['p']} < 80 THEN 'P5' ELSE 'P6' END)"),
        "tier": (f"(CASE WHEN {r['tier']} < 10 THEN 'triage' WHEN {r['tier']} < 50 THEN 'T1' WHEN {r['tier']} < 75"
                 f" THEN 'T2' WHEN {r['tier']} < 87 THEN 'T3' WHEN {r['tier']} < 95 THEN 'T4' WHEN {r['tier']} < 98"
                 " THEN 'T5' ELSE 'oncall' END)"),
        "team": "'Support Team'", "assignee_id": f"(1 + i % {AGENTS})",
        "contact": "('c' || i || '@shop' || (i % 500) || '.example')", "contact_name": "('Customer ' || i)",
        "summary": "('Cannot export report ' || i || ' from the dashboard')",
        "description": "'The export button does nothing.'", "source": "'email'", "partner": "FALSE",
        "internal": "FALSE", "possible_testimonial": "FALSE",
        "tags": "(CASE WHEN i % 1000 = 0 THEN '[\"Process-Tweak\"]' ELSE '[]' END)",
        "known_issue": "(CASE WHEN i % 500 = 0 THEN ((i / 500) % 40) || '-known-issue' END)",
        "satisfaction": (f"(CASE WHEN {closed} AND {r['sat']} < 30 THEN (CASE WHEN {r['sat']} < 22"
                         " THEN 'extremely_satisfied' WHEN {r['sat']} < 26 THEN 'satisfied' ELSE 'unsatisfied' END)"
                         " END)").replace("{r['sat']}", r["sat"]),
        "outcome": f"(CASE WHEN {closed} AND {r['misc']} < 10 THEN '' || (1 + i % 5) END)",
        "needs_triage": "FALSE", "decided_by": "'{}'",
        "created_at": d.ts(created), "updated_at": d.ts(created), "status_changed_at": d.ts(created),
        "tier_entered_at": d.ts(f"{created} + 1800"),
        "first_response_at": d.ts(f"{created} + {first}"),
        "last_customer_at": d.ts(created), "last_agent_at": d.ts(f"{created} + {first}"),
        "resolved_at": f"(CASE WHEN {finished} THEN {d.ts(f'{created} + {hours}')} END)",
        "closed_at": f"(CASE WHEN {closed} THEN {d.ts(f'{created} + {hours} + 3600')} END)",
        "sla_paused_hours": "0",
        "sla_warn_at": f"(CASE WHEN {running} THEN {d.ts(f'{created} + 43200')} END)",
        "sla_due": f"(CASE WHEN {running} THEN {d.ts(f'{created} + 86400')} END)",
        "long_hold_at": (f"(CASE WHEN {status} = 'pending_development' AND {created} < -14 * 86400"
                         f" THEN {d.ts(f'{created} + 14 * 86400')} END)"),
        "survey_sent_at": f"(CASE WHEN {closed} THEN {d.ts(f'{created} + {hours} + 90000')} END)",
        "satisfaction_at": (f"(CASE WHEN {closed} AND {r['sat']} < 30"
                            f" THEN {d.ts(f'{created} + {hours} + 100000')} END)"),
        "testimonial_sent_at": (f"(CASE WHEN {closed} AND {r['sat']} < 26"
                                f" THEN {d.ts(f'{created} + {hours} + 700000')} END)"),
        "paged_at": f"(CASE WHEN {r['p']} < 1 THEN {d.ts(f'{created} + 120')} END)",
        "page_ack_at": f"(CASE WHEN {r['p']} < 1 AND i % 4 <> 0 THEN {d.ts(f'{created} + 120 + 60 * (i % 90)')} END)",
        "page_level": f"(CASE WHEN {r['p']} < 1 THEN 1 ELSE 0 END)",
    }
    return list(cols), ", ".join(cols.values())


def fill(database: pw.Database, d: Dialect, n: int, recent: int) -> dict[str, int]:
    """Write the data set; how many rows of each table."""
    old = n - recent
    started = time.perf_counter()

    def run(sql: str, label: str) -> None:
        t = time.perf_counter()
        with database.atomic():
            database.execute_sql(sql if d.sqlite else sql.replace("%", "%%"))  # psycopg2 reads % as a placeholder
        print(f"  {label}: {time.perf_counter() - t:5.1f} s", file=sys.stderr, flush=True)

    columns, select = case_select(d, n, recent)
    names = ", ".join(f'"{c}"' for c in columns)
    chunk = 250_000
    for lo in range(1, n + 1, chunk):
        hi = min(n, lo + chunk - 1)
        run(f'INSERT INTO "cases" ({names}) SELECT {select} FROM {d.series(lo, hi)}', f"cases {lo:,}-{hi:,}")
    first = old + 1
    created = 'c."created_at"'
    m_cols = ('"raw_sha256", "size", "source", "mailbox", "subject", "from_addr", "arrived_at", "stored_at",'
              ' "processed_at", "state", "disposition", "case_id", "attempts", "trace"')
    run(f'INSERT INTO "message" ({m_cols}) SELECT {d.sha("c.id")}, 2000, \'imap\', \'support\', c."summary",'
        f' c."contact", {created}, {created}, {created}, \'done\', \'new_case\', c."id", 0, \'[]\''
        f' FROM "cases" c WHERE c."id" >= {first}', "messages (new cases)")
    run(f'INSERT INTO "message" ({m_cols}) SELECT {d.sha(f"c.id + {n}")}, 1500, \'imap\', \'support\','
        f' \'Re: \' || c."summary", c."contact", c."first_response_at", c."first_response_at",'
        f' c."first_response_at", CASE WHEN c."id" % 97 = 0 THEN \'failed\' ELSE \'done\' END,'
        f' CASE WHEN c."id" % 97 = 0 THEN \'failed\' WHEN c."id" % 10 = 1 THEN \'auto_reply\' ELSE \'follow_up\' END,'
        f' c."id", 0, \'[]\' FROM "cases" c WHERE c."id" >= {first} AND c."id" % 2 = 0', "messages (follow-ups)")
    e_cols = '"case_id", "at", "actor", "kind", "field", "old", "new", "rule"'
    run(f'INSERT INTO "event" ({e_cols}) SELECT c."id", {created}, c."contact", \'created\', NULL, NULL, NULL, NULL'
        f' FROM "cases" c WHERE c."id" >= {first}', "events (created)")
    run(f'INSERT INTO "event" ({e_cols}) SELECT c."id", c."status_changed_at", \'ana@agents.example\', \'field\','
        f' \'status\', \'new\', c."status", \'command:status\' FROM "cases" c WHERE c."id" >= {first}',
        "events (status)")
    run(f'INSERT INTO "event" ({e_cols}) SELECT c."id", c."paged_at", \'mailproc\', \'paged\', NULL, NULL,'
        f' \'agent\' || (c."id" % {AGENTS}), \'oncall:page\' FROM "cases" c WHERE c."paged_at" IS NOT NULL'
        f' AND c."id" >= {first}', "events (pages)")
    run(f'INSERT INTO "event" ({e_cols}) SELECT c."id", {created}, \'ana@agents.example\', \'field\', \'tags\','
        f' \'[]\', \'[\'\'Process-Tweak\'\']\', \'command:tag\' FROM "cases" c WHERE c."id" >= {first}'
        f' AND c."id" % 1000 = 0', "events (review tags)")
    a_cols = '"case_id", "actor", "at", "text", "documented", "compared", "size"'
    # A quarter of the answers are two canned texts with the case's number in them (near-identical:
    # what the missing-docs pass exists to find), the rest are texts of their own.
    texts = ("'Hello, please open Settings, then Exports, and press Retry on report ' || c.\"id\" || '. Best, Ana'",
             "'Your invoice ' || c.\"id\" || ' was corrected; the new total shows on the Billing page tomorrow.'")
    text = (f"CASE WHEN c.\"id\" % 32 = 0 THEN {texts[0]} WHEN c.\"id\" % 32 = 4 THEN {texts[1]}"
            f" ELSE {d.noise()} END")
    run(f'INSERT INTO "answer" ({a_cols}) SELECT c."id", \'agent\' || (c."id" % {AGENTS}) || \'@agents.example\','
        f' c."first_response_at", {text}, c."id" % 3 = 0, \'\', 0 FROM "cases" c'
        f' WHERE c."id" >= {first} AND c."id" % 4 = 0', "answers")
    # The groups `missingdocs.record` gives them (ASCII texts: compared = lower case): each canned
    # text one group labelled by its first undocumented answer, every other answer its own.
    first_of = ('(SELECT MIN(b."id") FROM "answer" b WHERE NOT b."documented" AND b."text" LIKE \'{}%\')')
    run(f'UPDATE "answer" SET "compared" = lower("text"), "size" = length("text"),'
        f' "group_id" = CASE WHEN "documented" THEN NULL'
        f' WHEN "text" LIKE \'Hello, please open%\' THEN {first_of.format("Hello, please open")}'
        f' WHEN "text" LIKE \'Your invoice %\' THEN {first_of.format("Your invoice ")} ELSE "id" END', "answer groups")
    yesterday = NOW - timedelta(days=1)
    with database.atomic():
        for k in range(5):
            cluster = db.insert(_model("Cluster"), type="bug", opened_at=yesterday, last_at=yesterday, size=3 + k,
                                summary=f"Export fails {k}", suggested_at=yesterday)
            for j in range(3 + k):
                db.insert(_model("ClusterMember"), cluster=cluster, case=n - 1000 - 10 * k - j, similarity=90.0,
                          added_at=yesterday)
        for k in range(200):
            db.insert(_model("Outbox"), kind="acknowledgement", message_id=f"bench{k}@example.com",
                      mail_from="support@example.com", recipients=["c@example.com"], to_addr="c@example.com",
                      raw=b"x", next_attempt_at=NOW, created_at=NOW - timedelta(minutes=k))
        db.insert(_model("MailboxState"), mailbox="support", last_poll_at=NOW, last_ok_at=NOW)
    counts = {}
    for table in ("cases", "message", "event", "answer"):
        (counts[table],) = db.query_one(f'SELECT COUNT(*) FROM "{table}"', [])
    print(f"  built in {time.perf_counter() - started:.1f} s: {counts}; analyzing", file=sys.stderr, flush=True)
    database.execute_sql("ANALYZE")
    return counts


def time_record(ctx, database: pw.Database, n: int, k: int = 300) -> dict:
    """`missingdocs.record` for k new answers at NOW (canned texts and random ones, a third each),
    each compared with the window's answers of its length; rolled back."""
    import random

    from mailproc import missingdocs
    from mailproc.models import Case
    rng = random.Random(8)
    spent, joined = [], 0
    with database.atomic() as txn:
        for j in range(k):
            text = (f"Hello, please open Settings, then Exports, and press Retry on report {n + j}. Best, Ana",
                    f"Your invoice {n + j} was corrected; the new total shows on the Billing page tomorrow.",
                    "".join(rng.choice("0123456789abcdef") for _ in range(100)))[j % 3]
            case = Case.get_by_id(n - j)
            t = time.perf_counter()
            row = missingdocs.record(ctx, case, actor="agent1@agents.example", text=text, now=NOW)
            spent.append(time.perf_counter() - t)
            joined += row.group_id != row.id
        txn.rollback()
    spent.sort()
    return {"k": k, "mean": sum(spent) / k, "p95": spent[int(k * 0.95)], "max": spent[-1], "joined": joined}


def _model(name: str):
    from mailproc import models
    return getattr(models, name)


class Timings:
    """Wall time of each query group, by wrapping the module functions that run them."""

    def __init__(self):
        self.spent: dict[str, float] = defaultdict(float)
        self.saved: list[tuple[object, str, object]] = []

    def wrap(self, module, names: tuple[str, ...], prefix: str) -> None:
        for name in names:
            original = getattr(module, name)

            def timed(*args, _original=original, _label=f"{prefix}.{name}", **kwargs):
                t = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.spent[_label] += time.perf_counter() - t
            self.saved.append((module, name, original))
            setattr(module, name, timed)

    def take(self) -> dict[str, float]:
        spent, self.spent = dict(self.spent), defaultdict(float)
        return spent


def measure(url: str, work: Path, n: int, recent: int) -> dict:
    print(f"{url.split(':')[0]}: {n:,} cases ({recent:,} in the last {RECENT_DAYS} days)", file=sys.stderr)
    agents = {f"agent{k}": {"address": f"agent{k}@agents.example", "teams": "Support Team",
                            **({"roles": "lead"} if k < 2 else {})} for k in range(AGENTS)}
    path = write_config(work / f"site-{n}-{url[:6]}", database=url, agents=agents,
                        mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                        address="support@example.com")])
    with path.open("a", encoding="utf-8") as f:
        f.write("\n[digest]\ntimezone = Europe/Lisbon\n")
    config = load(path)
    database = db.open_database(url)
    ctx = load_context(config, Clock(NOW))
    roster.sync(ctx.roster)
    sqlite = isinstance(database, pw.SqliteDatabase)
    counts = fill(database, Dialect(sqlite), n, recent)

    from mailproc.reports import clusters, digest, queries, weekly
    timings = Timings()
    timings.wrap(queries, ("volumes", "trend", "resolution", "first_response", "sla", "stuck", "satisfaction",
                           "testimonials", "outcomes", "pipeline"), "digest")
    timings.wrap(clusters, ("section",), "digest")
    timings.wrap(weekly, ("volumes", "open_loops", "known_issues", "pages", "review"), "weekly")
    result = {"db": "sqlite" if sqlite else "postgresql", "cases": n, "counts": counts,
              "record": time_record(ctx, database, n)}
    for name, build in (("digest", lambda: digest.build(ctx, day=None, now=NOW)),
                        ("weekly", lambda: weekly.build(ctx, day=None, now=NOW))):
        runs, parts = [], {}
        for _ in range(4):
            t = time.perf_counter()
            report = build()
            runs.append(time.perf_counter() - t)
            spent = timings.take()
            if not parts or runs[-1] == min(runs):
                parts = spent
        result[name] = {"first": runs[0], "best": min(runs[1:]), "parts": parts, "html_kb": len(report.html) / 1024,
                        "subject": report.subject,
                        "missing_docs": [m["cases"] for m in report.data.get("knowledge", {}).get("missing_docs", [])]}
    db.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--recent", type=int, default=200_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailproc-bench-digest-"))
    os.chmod(work, 0o755)
    pg = None
    results = []
    try:
        for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
            if kind == "sqlite":
                url = f"sqlite:///{work / 'digest.sqlite3'}"
            else:
                from mailproc.testing.postgres import Postgres
                pg = Postgres(work / "pg")
                pg.start()
                url = pg.create_database("digest")
            res = measure(url, work, args.cases, args.recent)
            results.append(res)
            rec = res["record"]
            print(f"{res['db']} record: {rec['k']} answers, mean {rec['mean'] * 1000:.1f} ms, p95"
                  f" {rec['p95'] * 1000:.1f} ms, max {rec['max'] * 1000:.1f} ms; {rec['joined']} joined a group",
                  flush=True)
            for name in ("digest", "weekly"):
                r = res[name]
                print(f"{res['db']} {name}: first {r['first']:.2f} s, best of 3 {r['best']:.2f} s,"
                      f" HTML {r['html_kb']:.0f} KB — {r['subject']}; missing docs (cases): {r['missing_docs']}",
                      flush=True)
                for part, seconds in sorted(r["parts"].items(), key=lambda kv: -kv[1]):
                    print(f"    {part:<28}{seconds * 1000:9.1f} ms", flush=True)
            if kind == "sqlite":
                Path(url[len("sqlite:///"):]).unlink()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'database':<11}{'cases':>11}{'messages':>10}{'events':>10}{'answers':>9}"
          f"{'digest 1st s':>13}{'digest s':>9}{'weekly 1st s':>13}{'weekly s':>9}")
    for r in results:
        c = r["counts"]
        print(f"{r['db']:<11}{c['cases']:>11,}{c['message']:>10,}{c['event']:>10,}{c['answer']:>9,}"
              f"{r['digest']['first']:>13.2f}{r['digest']['best']:>9.2f}{r['weekly']['first']:>13.2f}"
              f"{r['weekly']['best']:>9.2f}")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
