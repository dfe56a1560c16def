"""The sweep against a year of cases (issue 7; see bench/README.md).

    .venv/bin/python bench/due.py [--cases 100000 1000000] [--db sqlite|postgresql|both] [--profile]

For each database and each size, one throwaway database (schema from
`db.open_database`, so the real indexes, `due_pending` among them) is filled
with bulk SQL (executemany on SQLite, COPY on PostgreSQL), then ANALYZEd:

- N cases created over a year, ids in creation order: most old ones closed,
  most recent ones open, spread over statuses, tiers, priorities and ten
  agents; the columns the workflow keeps (SLA clock, waits, holds) filled as
  the code would have left them;
- the `due` table as after a year of running: each open case's pending items
  (SLA yellow/red, still-looking note and nudge, reminder or move, long
  hold, testimonial) in the future, and the done and cancelled rows of past
  work, keys in `due.key`'s format;
- a few rounds of 1,000 cases whose items fall due within one 8-second
  window each: "mixed" rounds (reminders of Pending Input cases, status moves,
  resolutions, closures, still-looking notes, nudges, SLA warnings) and "SLA"
  rounds (sla_yellow / sla_red only). Those cases are written, then planned by
  the real `timers.replan`; an item of theirs that would already have fallen
  due earlier is marked done, as the sweep would have done it.

Each round is one sweep at the end of its window, so every measurement faces
the same 1,000 due items and no reset is needed; chained work (a move that
resolves, whose resolution is then due at once) is done in the same sweep
and counted. Measured: the sweep (`sweep.sweep`, mail queued in the outbox,
no SMTP), its query alone (`due.take`, with the plan of the query), the SLA
pass (an SLA round plus the red-SLA listing of `mailproc status`), and an idle
sweep (nothing due): what the daemon pays every tick.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import peewee as pw

from mailproc import db, due, roster, status, sweep, timers
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.daemon import checked_context
from mailproc.jobs import sla
from mailproc.models import Case, Due
from mailproc.testing import write_config

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, inside business hours (09-17 UTC)
WINDOW = timedelta(seconds=8)  # each round's items fall due within one window
DUE_PER_ROUND = 1000
AGENTS = [f"agent{i}" for i in range(10)]
ALWAYS = "Mon-Sun 00:00-24:00"

OPEN_STATUSES = {"new": 5, "assigned": 45, "pending_input": 15, "waiting": 8, "on_hold": 5, "pending_product": 4,
                 "pending_development": 7, "pending_release": 4, "staging": 2, "pending_closure": 5}
TIERS = {"triage": 10, "T1": 40, "T2": 25, "T3": 12, "T4": 8, "T5": 5}
PRIORITIES = {"P1": 1, "P2": 4, "P3": 15, "P4": 30, "P5": 30, "P6": 20}
TYPES = {"request": 60, "admin": 10, "enhancement": 10, "bug": 20}
PAUSED = ("pending_input", "waiting", "pending_closure")
HOLDS = ("pending_product", "pending_development", "pending_release")
MIXED = {"remind": 250, "move_pending_input": 100, "move_waiting": 50, "move_on_hold": 50, "move_pending_closure": 100,
         "resolution": 50, "closure": 50, "still_looking": 80, "nudge": 120, "sla_yellow": 80, "sla_red": 70}
SLA_ONLY = {"sla_yellow": 500, "sla_red": 500}

CASE_COLUMNS = ("id", "mailbox", "type", "status", "priority", "tier", "team", "assignee_id", "contact", "contact_name",
                "summary", "description", "source", "partner", "internal", "possible_testimonial", "tags",
                "needs_triage", "decided_by", "created_at", "updated_at", "status_changed_at", "tier_entered_at",
                "first_response_at", "last_customer_at", "last_agent_at", "resolved_at", "closed_at", "reminded_at",
                "hold_until", "waiting_since", "sla_paused_at", "sla_paused_hours", "sla_warn_at", "sla_due",
                "long_hold_at", "page_level", "satisfaction", "survey_sent_at")
DUE_COLUMNS = ("case_id", "kind", "key", "due_at", "done_at", "outcome", "attempts", "created_at")
CHUNK = 50_000


def pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def case_row(i: int, rng: random.Random, people: list[int], **values) -> dict:
    """One case's columns; `values` override."""
    created = values.pop("created_at")
    row = dict(id=i, mailbox="support", type=pick(rng, TYPES), status="closed", priority=pick(rng, PRIORITIES),
               tier=pick(rng, TIERS), team="Support Team", assignee_id=rng.choice(people),
               contact=f"c{i}@shop{i % 500}.example", contact_name=f"Customer {i}",
               summary=f"Cannot export report {i} from the dashboard", description="The export button does nothing.",
               source="email", partner=False, internal=False, possible_testimonial=False, tags="[]",
               needs_triage=False, decided_by="{}", created_at=created, updated_at=created,
               status_changed_at=created, tier_entered_at=created, first_response_at=created + timedelta(minutes=40),
               last_customer_at=created, last_agent_at=created + timedelta(minutes=40), resolved_at=None,
               closed_at=None, reminded_at=None, hold_until=None, waiting_since=None, sla_paused_at=None,
               sla_paused_hours=0.0, sla_warn_at=None, sla_due=None, long_hold_at=None, page_level=0,
               satisfaction=None, survey_sent_at=None)
    row.update(values)
    if row["priority"] == "P1":
        row["priority"] = "P2"  # P1 pages on-call; no [oncall] section here
    return row


def bulk(n_cases: int, first_special: int, people: list[int], rng: random.Random):
    """Yield (cases, due rows) chunk by chunk for cases 1..first_special-1: a year of work."""
    start = NOW - timedelta(days=365)
    span = (NOW - timedelta(days=1) - start).total_seconds()
    future0 = NOW + timedelta(minutes=5)  # nothing of the bulk falls due during the measured rounds
    cases, dues = [], []
    for i in range(1, first_special):
        created = naive(start + timedelta(seconds=span * i / n_cases))
        age = (NOW.replace(tzinfo=None) - created).days
        is_open = rng.random() < (0.7 if age < 30 else 0.08)
        k = due.key
        if not is_open:  # closed, with the history of its items
            changed = created + timedelta(days=rng.uniform(1, min(20, max(1, age - 0.5))))
            closed = changed + timedelta(days=rng.choice((0, 7)))
            tier = pick(rng, TIERS)
            row = case_row(i, rng, people, created_at=created, status="closed", tier=tier, status_changed_at=closed,
                           resolved_at=changed, closed_at=closed, updated_at=closed, survey_sent_at=closed)
            cases.append(row)
            entered = row["tier_entered_at"]
            dues += [(i, "sla_yellow", k("sla_yellow", i, tier, entered), entered + timedelta(hours=2), entered
                      + timedelta(hours=2), "done", 0, entered),
                     (i, "sla_red", k("sla_red", i, tier, entered), entered + timedelta(days=1), changed, "cancelled",
                      0, entered),
                     (i, "resolution", k("resolution", i, changed), changed, changed, "done", 0, changed),
                     (i, "closure", k("closure", i, closed), closed, closed, "done", 0, closed)]
            if (NOW.replace(tzinfo=None) - closed).days > 35:
                dues.append((i, "survey", k("survey", i, closed), closed + timedelta(minutes=1),
                             closed + timedelta(minutes=1), "done", 0, closed))
            else:  # recently closed: the testimonial may still be coming
                dues.append((i, "testimonial", k("testimonial", i, closed), closed + timedelta(days=7),
                             None, None, 0, closed))
        else:
            st = pick(rng, OPEN_STATUSES)
            changed = created + timedelta(hours=rng.uniform(1, 24 * min(age, 20)))
            tier = pick(rng, TIERS)
            entered = created if rng.random() < 0.7 else changed
            row = case_row(i, rng, people, created_at=created, status=st, tier=tier, status_changed_at=changed,
                           tier_entered_at=entered, updated_at=changed)
            future = lambda: naive(future0 + timedelta(seconds=rng.uniform(0, 30 * 86400)))  # noqa: E731
            if st in PAUSED:
                row["sla_paused_at"] = max(changed, entered)
                if st == "pending_input":
                    if rng.random() < 0.5:
                        dues.append((i, "remind", k("remind", i, changed), future(), None, None, 0, changed))
                    else:
                        row["reminded_at"] = changed + timedelta(days=3)
                        dues.append((i, "remind", k("remind", i, changed), changed + timedelta(days=3),
                                     changed + timedelta(days=3), "done", 0, changed))
                        dues.append((i, "move", k("move", i, changed), future(), None, None, 0, changed))
                else:
                    if st == "pending_closure":
                        row["resolved_at"] = changed
                    dues.append((i, "move", k("move", i, changed), future(), None, None, 0, changed))
            else:
                recent = (NOW.replace(tzinfo=None) - entered).days < 3
                warn = future() if recent else entered + timedelta(hours=2)
                red = warn + timedelta(hours=8) if recent else entered + timedelta(days=1)
                row.update(sla_warn_at=warn, sla_due=red)
                dues.append((i, "sla_yellow", k("sla_yellow", i, tier, entered), warn, None if recent else warn,
                             None if recent else "done", 0, entered))
                dues.append((i, "sla_red", k("sla_red", i, tier, entered), red, None if recent else red,
                             None if recent else "done", 0, entered))
                if st == "on_hold":
                    row["hold_until"] = future()
                    dues.append((i, "move", k("move", i, changed), row["hold_until"], None, None, 0, changed))
                if st in HOLDS:
                    if (NOW.replace(tzinfo=None) - changed).days > 14:
                        row["long_hold_at"] = changed + timedelta(days=14)
                        dues.append((i, "long_hold", k("long_hold", i, changed), row["long_hold_at"],
                                     row["long_hold_at"], "done", 0, changed))
                    else:
                        dues.append((i, "long_hold", k("long_hold", i, changed), future(), None, None, 0, changed))
                if st in ("new", "assigned") and rng.random() < 0.4:  # waiting on us
                    since = changed
                    row.update(last_customer_at=since, last_agent_at=created, waiting_since=since)
                    dues.append((i, "nudge", k("nudge", i, since), future(), None, None, 0, since))
                    dues.append((i, "still_looking", k("still_looking", i, since), future(), None, None, 0, since))
            cases.append(row)
        if len(cases) >= CHUNK:
            yield cases, dues
            cases, dues = [], []
    if cases:
        yield cases, dues


def solve(deadline, target: datetime) -> datetime:
    """The earliest whole-second start whose deadline is at or after `target` (deadline is monotone)."""
    lo, hi = int((target - timedelta(days=12)).timestamp()), int(target.timestamp())
    while lo < hi:
        mid = (lo + hi) // 2
        if deadline(datetime.fromtimestamp(mid, UTC)) >= target:
            hi = mid
        else:
            lo = mid + 1
    return datetime.fromtimestamp(lo, UTC)


def special(ctx, i: int, kind: str, t: datetime, rng: random.Random, people: list[int]) -> dict:
    """A case whose `kind` item falls due at (about) `t`."""
    cal = ctx.rules.sla.calendar
    sl = ctx.rules.workflow.still_looking
    created = naive(t - timedelta(days=rng.uniform(12, 20)))
    base = dict(created_at=created, status="assigned", updated_at=created)
    tn = naive(t)
    if kind == "remind":
        base.update(status="pending_input", status_changed_at=naive(t - timedelta(days=3)))
    elif kind == "move_pending_input":
        base.update(status="pending_input", status_changed_at=naive(t - timedelta(days=6, hours=1)),
                    reminded_at=naive(t - timedelta(days=3)))
    elif kind == "move_waiting":
        base.update(status="waiting", status_changed_at=naive(t - timedelta(days=10)))
        base["tier_entered_at"] = base["status_changed_at"] - timedelta(minutes=30)
    elif kind == "move_on_hold":
        base.update(status="on_hold", status_changed_at=naive(t - timedelta(days=5)), hold_until=tn)
    elif kind == "move_pending_closure":
        base.update(status="pending_closure", status_changed_at=naive(t - timedelta(days=7)),
                    resolved_at=naive(t - timedelta(days=7)))
    elif kind == "resolution":
        base.update(status="resolved", status_changed_at=tn, resolved_at=tn)
    elif kind == "closure":
        base.update(status="closed", status_changed_at=tn, resolved_at=naive(t - timedelta(days=7)), closed_at=tn)
    elif kind in ("still_looking", "nudge"):
        target = sl.note_after if kind == "still_looking" else sl.nudge_after
        since = naive(solve(lambda s: cal.deadline(target, s), t))
        base.update(status="assigned", last_customer_at=since, last_agent_at=created, waiting_since=since,
                    status_changed_at=created)
    elif kind in ("sla_yellow", "sla_red"):
        tier = rng.choice(("triage", "T1", "T2", "T3"))
        limits = ctx.rules.sla.tiers[tier]
        target = limits.green if kind == "sla_yellow" else limits.yellow
        entered = naive(solve(lambda s: sla._add(ctx, target, s, 0.0), t))
        base.update(status="assigned", tier=tier, tier_entered_at=entered, status_changed_at=entered,
                    created_at=min(created, entered), last_agent_at=entered + timedelta(minutes=5),
                    last_customer_at=entered)
    return case_row(i, rng, people, **base)


# --- writing rows -----------------------------------------------------------------------------------------------

def _pg_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return str(value)


def write(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    if not rows:
        return
    database = db.proxy.obj
    if isinstance(database, pw.SqliteDatabase):
        marks = ", ".join("?" * len(columns))
        cols = ", ".join(f'"{c}"' for c in columns)
        database.connection().executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)
    else:
        buf = io.StringIO()
        for row in rows:
            buf.write("\t".join(_pg_text(v) for v in row))
            buf.write("\n")
        buf.seek(0)
        cols = ", ".join(f'"{c}"' for c in columns)
        database.cursor().copy_expert(f'COPY "{table}" ({cols}) FROM STDIN', buf)


def build(ctx, n_cases: int, rounds: list[dict[str, int]], people: list[int]) -> list[datetime]:
    """Fill the database; return each round's sweep instant."""
    rng = random.Random(7)
    n_special = DUE_PER_ROUND * len(rounds)
    first_special = n_cases - n_special + 1
    database = db.proxy.obj
    sqlite = isinstance(database, pw.SqliteDatabase)
    if sqlite:
        database.execute_sql("PRAGMA synchronous = OFF")
        database.execute_sql("PRAGMA cache_size = -400000")
    started = time.perf_counter()
    done_cases = done_due = 0
    for cases, dues in bulk(n_cases, first_special, people, rng):
        with database.atomic():
            write("cases", CASE_COLUMNS, [tuple(r[c] for c in CASE_COLUMNS) for r in cases])
            write("due", DUE_COLUMNS, dues)
        done_cases += len(cases)
        done_due += len(dues)
        print(f"  {done_cases:>9,} cases, {done_due:>9,} due rows, {time.perf_counter() - started:6.1f} s",
              file=sys.stderr, flush=True)
    # The measured rounds: cases written, then planned by the real code.
    ends = [NOW + WINDOW * r for r in range(len(rounds))]
    i = first_special
    wanted: dict[int, tuple[str, datetime, datetime]] = {}  # case -> (kind, window start, window end)
    rows = []
    for r, mix in enumerate(rounds):
        for kind, count in mix.items():
            for _ in range(count):
                t = ends[r] - WINDOW + timedelta(seconds=rng.randint(1, int(WINDOW.total_seconds()) - 1))
                rows.append(special(ctx, i, kind, t, rng, people))
                wanted[i] = (kind, ends[r] - WINDOW, ends[r])
                i += 1
    build_now = NOW - WINDOW - timedelta(minutes=1)
    with database.atomic():
        write("cases", CASE_COLUMNS, [tuple(r[c] for c in CASE_COLUMNS) for r in rows])
    with db.transaction():
        for case in list(Case.select().where(Case.id >= first_special)):
            timers.replan(ctx, case, build_now)
    # What would already have fallen due before its window was done then (by the sweep of its time).
    extra = 0
    with db.transaction():
        for item in list(Due.select().where(Due.case >= first_special, Due.done_at.is_null())):
            kind, lo, hi = wanted[item.__data__["case"]]
            at = item.due_at.replace(tzinfo=UTC)
            if at <= lo:
                due.finish(item, at)
            elif at <= hi and not kind.startswith(item.kind):
                extra += 1
    for r, end in enumerate(ends):
        lo = utc_naive(end - WINDOW)
        (count,) = db.query_one('SELECT COUNT(*) FROM "due" WHERE "done_at" IS NULL AND "due_at" > ? AND "due_at" <= ?',
                                [lo, utc_naive(end)])
        if count != DUE_PER_ROUND:
            print(f"  round {r}: {count} items due in its window (wanted {DUE_PER_ROUND})", file=sys.stderr)
    print(f"  built in {time.perf_counter() - started:.1f} s ({extra} unintended items in the windows); analyzing",
          file=sys.stderr, flush=True)
    database.execute_sql("ANALYZE")
    if sqlite:
        database.execute_sql("PRAGMA synchronous = NORMAL")
        database.execute_sql("PRAGMA cache_size = -16000")
    return ends


def utc_naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


# --- measuring --------------------------------------------------------------------------------------------------

def take_ms(now: datetime, limit: int) -> float:
    """`due.take` alone, in a transaction that is rolled back (best of 3)."""
    best = float("inf")
    for _ in range(3):
        with db.proxy.obj.atomic() as txn:
            start = time.perf_counter()
            items = due.take(now, limit)
            best = min(best, time.perf_counter() - start)
            txn.rollback()
        if len(items) != min(limit, DUE_PER_ROUND):
            print(f"  take found {len(items)} items", file=sys.stderr)
    return best * 1000


def plan_of_take(now: datetime) -> str:
    database = db.proxy.obj
    sql = 'SELECT * FROM "due" WHERE "done_at" IS NULL AND "due_at" <= ? ORDER BY "due_at", "id" LIMIT ?'
    if isinstance(database, pw.SqliteDatabase):
        rows = db.query_all("EXPLAIN QUERY PLAN " + sql, [utc_naive(now), sweep.BATCH])
        return "\n".join(r[-1] for r in rows)
    rows = db.query_all("EXPLAIN " + sql, [utc_naive(now), sweep.BATCH])
    return "\n".join(r[0] for r in rows)


def plan_of_red(now: datetime) -> str:
    """The plan of the red-SLA count and listing of `mailproc status`."""
    sqlite = isinstance(db.proxy.obj, pw.SqliteDatabase)
    params = [utc_naive(now), *status.STOPPED]
    lines = []
    for sql, extra in ((status.RED_COUNT, []), (status.RED, [status.LIST_LIMIT])):
        rows = db.query_all(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql, params + extra)
        lines += [r[-1] if sqlite else r[0] for r in rows]
    return "\n".join(lines)


def red_ms(now: datetime) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(3):
        start = time.perf_counter()
        count = status._red(now)["count"]
        best = min(best, time.perf_counter() - start)
    return best * 1000, count


def run_round(ctx, now: datetime, profile: bool) -> tuple[float, int, str | None]:
    prof = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if prof:
        prof.enable()
    result = sweep.sweep(ctx, now)
    if prof:
        prof.disable()
    seconds = time.perf_counter() - start
    if result.failed:
        raise SystemExit("items failed:\n" + "\n".join(result.failed[:5]))
    text = None
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(45)
        if os.environ.get("DUE_PSTATS"):  # the whole profile, for pstats' callers and callees
            prof.dump_stats(os.environ["DUE_PSTATS"])
        text = out.getvalue()
    return seconds, result.total + result.stale + result.moved, text


def measure(url: str, work: Path, n_cases: int, profile: bool) -> dict:
    mixed_rounds = 4 if profile else 3
    rounds = [MIXED] * mixed_rounds + [SLA_ONLY] * 3
    site = work / f"site-{n_cases}"
    box = dict(name="support", host="127.0.0.1", port=9, username="bench", password="bench",
               address="support@bench.example")
    agents = {name: dict(address=f"{name}@agents.bench.example", teams="Support Team", hours=ALWAYS)
              for name in AGENTS}
    agents["lea"] = dict(address="lea@agents.bench.example", teams="Support Team", roles="lead", hours=ALWAYS)
    config = load(write_config(site, database=url, mailboxes=[box], smtp=dict(host="127.0.0.1", port=9),
                               agents=agents))
    db.open_database(url)
    ctx = checked_context(config, Clock(NOW))
    roster.sync(roster.from_context(ctx))
    people = [roster.person_id(name) for name in AGENTS]
    print(f"building {n_cases:,} cases on {url.split(':')[0]}", file=sys.stderr, flush=True)
    ends = build(ctx, n_cases, rounds, people)
    (pending,) = db.query_one('SELECT COUNT(*) FROM "due" WHERE "done_at" IS NULL', [])
    (total_due,) = db.query_one('SELECT COUNT(*) FROM "due"', [])
    out = {"db": "sqlite" if url.startswith("sqlite") else "postgresql", "cases": n_cases, "due_rows": total_due,
           "pending": pending, "take_plan": plan_of_take(ends[0]), "red_plan": plan_of_red(ends[0]),
           "load": os.getloadavg()}
    sweeps, takes, takes_all, done, prof_text = [], [], [], [], None
    for r in range(mixed_rounds):
        takes.append(take_ms(ends[r], sweep.BATCH))
        takes_all.append(take_ms(ends[r], DUE_PER_ROUND))
        seconds, items, text = run_round(ctx, ends[r], profile and r == mixed_rounds - 1)
        if text is None:
            sweeps.append(seconds)
            done.append(items)
        else:
            prof_text = text
    sla_runs, reds = [], []
    for r in range(mixed_rounds, len(rounds)):
        seconds, items, _ = run_round(ctx, ends[r], False)
        ms, count = red_ms(ends[r])
        sla_runs.append((seconds, items))
        reds.append((ms, count))
    idle_at = ends[-1] + timedelta(seconds=4)
    idle = []
    for _ in range(20):
        start = time.perf_counter()
        result = sweep.sweep(ctx, idle_at)
        idle.append(time.perf_counter() - start)
        assert result.total == 0
    best = min(range(len(sweeps)), key=lambda k: sweeps[k])
    best_sla = min(range(len(sla_runs)), key=lambda k: sla_runs[k][0])
    out.update(sweep_s=sweeps[best], sweep_items=done[best], sweeps=[round(s, 3) for s in sweeps],
               items_per_s=done[best] / sweeps[best], take_ms=min(takes), take_all_ms=min(takes_all),
               sla_sweep_s=sla_runs[best_sla][0], sla_items=sla_runs[best_sla][1],
               red_ms=min(ms for ms, _ in reds), red_count=reds[-1][1],
               sla_pass_s=sla_runs[best_sla][0] + min(ms for ms, _ in reds) / 1000,
               idle_ms=statistics.median(idle) * 1000, profile=prof_text, load_after=os.getloadavg())
    db.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="cProfile one more mixed round, print the top")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailproc-bench-due-"))
    os.chmod(work, 0o755)
    pg = None
    results = []
    try:
        for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
            for n in args.cases:
                if kind == "sqlite":
                    url = f"sqlite:///{work / f'due-{n}.sqlite3'}"
                else:
                    if pg is None:
                        from mailproc.testing.postgres import Postgres
                        pg = Postgres(work / "pg")
                        pg.start()
                    url = pg.create_database(f"due{n}")
                res = measure(url, work, n, args.profile)
                results.append(res)
                print(f"\n{res['db']} {n:,} cases: {res['due_rows']:,} due rows, {res['pending']:,} pending;"
                      f" plan of the sweep's query:\n{res['take_plan']}\nplan of the red-SLA count and list:\n"
                      f"{res['red_plan']}\n", flush=True)
                if res["profile"]:
                    print(res["profile"], flush=True)
                if kind == "sqlite":
                    Path(url[len("sqlite:///"):]).unlink()
                else:
                    pg.drop_database(f"due{n}")
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    head = (f"{'database':<11}{'cases':>10}{'due rows':>11}{'due now':>8}{'items':>7}{'sweep s':>9}{'items/s':>9}"
            f"{'take ms':>9}{'take1k ms':>10}{'SLA pass s':>11}{'red list ms':>12}{'red':>7}{'idle ms':>9}  load")
    print(head)
    for r in results:
        print(f"{r['db']:<11}{r['cases']:>10,}{r['due_rows']:>11,}{DUE_PER_ROUND:>8}{r['sweep_items']:>7}"
              f"{r['sweep_s']:>9.2f}{r['items_per_s']:>9.0f}{r['take_ms']:>9.2f}{r['take_all_ms']:>10.1f}"
              f"{r['sla_pass_s']:>11.2f}{r['red_ms']:>12.1f}{r['red_count']:>7,}{r['idle_ms']:>9.2f}"
              f"  {r['load'][0]:.2f}/{r['load_after'][0]:.2f}")
    by = {(r["db"], r["cases"]): r for r in results}
    for name in ("sqlite", "postgresql"):
        sizes = sorted(n for d, n in by if d == name)
        if len(sizes) >= 2:
            a, b = by[(name, sizes[0])], by[(name, sizes[-1])]
            print(f"{name} {sizes[-1]:,}/{sizes[0]:,}: sweep {b['sweep_s'] / a['sweep_s']:.2f}x,"
                  f" take {b['take_ms'] / a['take_ms']:.2f}x, SLA pass {b['sla_pass_s'] / a['sla_pass_s']:.2f}x,"
                  f" red list {b['red_ms'] / a['red_ms']:.2f}x, idle {b['idle_ms'] / a['idle_ms']:.2f}x")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
