"""The known-issue cluster pass over a day of new cases (issue 8; see bench/README.md).

    .venv/bin/python bench/clusters.py [--new 2000] [--history 100000] [--db sqlite|postgresql|both]

For each database, one throwaway database (schema from `db.open_database`) gets
`--history` older cases spread over the 90 days before the day (already
clustered, so the window's query must skip them by their creation index), then
`--new` cases created over one day: about 30 recurring problems, each reported
20-40 times in varied wording (subjects and sentences from several phrasings,
in random order, with greetings, names, other small words, some in PT/ES), and
the rest unique problems (words of their own, in the same sentences, greetings
and filler as the recurring ones). Measured at the day's end:

- **one pass, the whole day new**: all `--new` cases unclustered at once (the
  worst case: the daemon was down for the day), `clusters.run` with its mails
  queued (leads and on-call configured);
- **a tick's pass**: 10 more new cases against the day's clustered ones — what a
  busy daemon pays now and then;
- **an idle pass**: nothing new, what every tick pays.

And how well it clustered: recurring problems that reached a cluster of 3+,
the purity of clusters of 3+ (members of the cluster's main problem / size),
and unique cases that joined something.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mailproc import clusters, db
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.models import Case, ClusterMember, Outbox
from mailproc.testing import write_config

UTC = timezone.utc
DAY_END = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
ALWAYS = "Mon-Sun 00:00-24:00"

PRODUCTS = ["calendar", "invoice", "export", "login", "report", "dashboard", "mobile app", "API", "webhook",
            "single sign-on", "search", "notifications", "file upload", "billing page", "user import",
            "time tracking", "contacts", "reminders", "backup", "audit log"]
INTEGRATIONS = ["Outlook", "Google Workspace", "Slack", "Salesforce", "Excel", "Zapier", "Teams", "Dropbox",
                "HubSpot", "Jira"]
SYMPTOMS = [("stopped syncing", "does not sync", "sync fails"), ("is blank", "shows an empty page", "comes out empty"),
            ("times out", "never finishes loading", "keeps spinning"), ("crashes", "closes by itself", "crashed"),
            ("shows the wrong totals", "has wrong numbers", "sums are off"),
            ("sends duplicates", "arrives twice", "is duplicated")]
OPENINGS = ["Hi,", "Hello support,", "Good morning,", "Dear team,", "Hi there,", "Olá,", "Hola,", "Bom dia,",
            "Buenos días,", ""]
CLOSINGS = ["Thanks", "Regards", "Best, {name}", "Obrigado, {name}", "Gracias", "Cheers", ""]
NAMES = ["Maria", "John", "Priya", "Chen", "Lucas", "Ana", "Omar", "Sofia", "Kenji", "Fatima"]
SUBJECTS = ["{product} {symptom}", "{integration} {product} {symptom}", "Problem: {product} {symptom}",
            "Re: {product} with {integration} {symptom}", "Urgent - {product} {symptom} ({code})",
            "{code} on {product}"]
SENTENCES = ["Since this morning the {product} {symptom} with {integration}.",
             "We get {code} every time we try.",
             "Our users say the {product} {symptom}.",
             "It worked yesterday; today the {integration} connection {symptom}.",
             "The error {code} shows in the {product} page.",
             "Desde hoje o {product} {symptom} com o {integration}, erro {code}.",
             "Desde esta mañana el {product} {symptom} con {integration}, error {code}."]
FILLER = ("could you please look at this as soon as possible we have a meeting at noon and need it "
          "the whole team is waiting this is blocking our month end close I already restarted twice "
          "and cleared the cache").split()
RARE = ("aardvark bracket cobalt dolphin ember fjord garnet harbor igloo jasper kelp lantern marble nectar "
        "orchid pepper quartz raven saffron tundra umber velvet walnut xenon yarrow zephyr amber birch cedar "
        "dune elm fern grove heron iris juniper kiwi lotus maple nutmeg olive pine quince reed sage thyme "
        "ginger hazel indigo jade koala lemur mango nickel onyx prism quill ridge slate topaz urchin violet").split()
TYPES = ["bug", "bug", "bug", "request", "admin", "enhancement"]


def _fill(template: str, problem: dict, rng: random.Random) -> str:
    return template.format(product=problem["product"], integration=problem["integration"],
                           symptom=rng.choice(problem["symptom"]), code=problem["code"])


def _mail(problem: dict, rng: random.Random) -> tuple[str, str]:
    subject = _fill(rng.choice(SUBJECTS), problem, rng)
    sentences = [_fill(s, problem, rng) for s in rng.sample(SENTENCES, rng.randint(2, 4))]
    filler = " ".join(rng.sample(FILLER, rng.randint(3, 12)))
    body = " ".join([rng.choice(OPENINGS), *sentences, filler.capitalize() + ".",
                     rng.choice(CLOSINGS).format(name=rng.choice(NAMES))])
    return subject, body


def _problem(rng: random.Random, unique: bool) -> dict:
    problem = {"product": rng.choice(PRODUCTS), "integration": rng.choice(INTEGRATIONS),
               "symptom": rng.choice(SYMPTOMS), "code": f"E{rng.randint(1000, 9999)}", "type": rng.choice(TYPES)}
    if unique:  # a problem of its own: its own thing and symptom, in the same sentences as the others
        words = rng.sample(RARE, 5)
        problem["product"] = f"{words[0]} {words[1]}"
        problem["integration"] = words[2]
        problem["symptom"] = (f"{words[3]} {words[4]}",)
    return problem


def corpus(n_new: int, seed: int = 8) -> list[dict]:
    """The day's new cases: (problem id or None, type, summary, description, created_at)."""
    rng = random.Random(seed)
    recurring = [_problem(rng, False) for _ in range(30)]
    rows = []
    for pid, problem in enumerate(recurring):
        for _ in range(rng.randint(20, 40)):
            rows.append((pid, problem))
    while len(rows) < n_new:
        rows.append((None, _problem(rng, True)))
    rows = rows[:n_new]
    rng.shuffle(rows)
    out = []
    for i, (pid, problem) in enumerate(rows):
        subject, body = _mail(problem, rng)
        at = DAY_END - timedelta(days=1) + timedelta(seconds=86_399 * (i + 1) / (n_new + 1))
        out.append({"problem": pid, "type": problem["type"], "summary": subject, "description": body, "at": at})
    return out


def _case_row(n: int, kind: str, summary: str, description: str, at: datetime) -> dict:
    naive = at.astimezone(UTC).replace(tzinfo=None)
    return dict(contact=f"c{n}@customer{n % 500}.example", type=kind, summary=summary[:500], description=description,
                created_at=naive, updated_at=naive, status_changed_at=naive, tier_entered_at=naive)


def measure(url: str, work: Path, n_new: int, n_history: int) -> dict:
    agents = {"lena": dict(address="lena@agents.example", teams="Support Team", hours=ALWAYS, roles="lead"),
              "omar": dict(address="omar@agents.example", teams="Support Team", hours=ALWAYS, roles="lead, oncall")}
    site = work / f"site-{abs(hash(url))}"
    config = load(write_config(site, database=url, agents=agents,
                               mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                               address="support@example.com")]))
    db.open_database(config.database)
    ctx = load_context(config, Clock(DAY_END))
    rng = random.Random(1)
    # history: older cases, clustered long ago (each alone), outside the window
    with db.transaction():
        batch = []
        for n in range(n_history):
            problem = _problem(rng, rng.random() < 0.6)
            subject, body = _mail(problem, rng)
            at = DAY_END - timedelta(days=1) - timedelta(seconds=rng.randint(60, 90 * 86_400))
            batch.append(_case_row(n, problem["type"], subject, body, at))
            if len(batch) == 5000:
                db.insert_many(Case, batch)
                batch = []
        db.insert_many(Case, batch)
    first_new = (Case.select(Case.id).order_by(Case.id.desc()).scalar() or 0) + 1
    with db.transaction():
        rows = [dict(cluster=None, case=i) for i in range(1, first_new)]
        if rows:
            from mailproc.models import Cluster
            cluster_id = db.insert(Cluster, type="bug", opened_at=DAY_END - timedelta(days=90),
                                   last_at=DAY_END - timedelta(days=2), size=len(rows), summary="history")
            db.insert_many(ClusterMember, [dict(cluster=cluster_id, case=r["case"], similarity=100.0,
                                                added_at=(DAY_END - timedelta(days=2)).replace(tzinfo=None))
                                           for r in rows])
    day = corpus(n_new)
    with db.transaction():
        db.insert_many(Case, [_case_row(first_new + i, d["type"], d["summary"], d["description"], d["at"])
                              for i, d in enumerate(day)])
    if not url.startswith("sqlite"):
        db.proxy.obj.execute_sql("ANALYZE")
    else:
        db.proxy.obj.execute_sql("ANALYZE")
    start = time.perf_counter()
    found = clusters.run(ctx, DAY_END)
    whole = time.perf_counter() - start
    # 10 more, as a busy tick sees them
    extra = corpus(10, seed=99)
    with db.transaction():
        db.insert_many(Case, [_case_row(first_new + n_new + i, d["type"], d["summary"], d["description"],
                                        DAY_END + timedelta(seconds=i + 1)) for i, d in enumerate(extra)])
    tick_at = DAY_END + timedelta(seconds=30)
    start = time.perf_counter()
    clusters.run(ctx, tick_at)
    tick = time.perf_counter() - start
    idle = []
    for _ in range(5):
        start = time.perf_counter()
        clusters.run(ctx, tick_at)
        idle.append(time.perf_counter() - start)
    # quality
    member = {m.case_id: m.cluster_id for m in ClusterMember.select().where(ClusterMember.case >= first_new)}
    by_cluster: dict[int, list] = defaultdict(list)
    for i, d in enumerate(day):
        by_cluster[member[first_new + i]].append(d["problem"])
    big = {c: ps for c, ps in by_cluster.items() if len(ps) >= 3}
    purity = [Counter(ps).most_common(1)[0][1] / len(ps) for ps in big.values()]
    found_problems = {Counter(ps).most_common(1)[0][0] for ps in big.values()} - {None}
    unique_joined = sum(1 for ps in by_cluster.values() if len(ps) > 1 for p in ps if p is None)
    mails = Counter(k for (k,) in Outbox.select(Outbox.kind).tuples())
    db.close()
    return {"db": "sqlite" if url.startswith("sqlite") else "postgresql", "new": n_new, "history": n_history,
            "whole_s": whole, "tick_ms": tick * 1000, "idle_ms": statistics.median(idle) * 1000,
            "joined": len(found.joined), "opened": len(found.opened), "suggested": len(found.suggested),
            "paged": len(found.paged), "clusters3": len(big), "problems_found": len(found_problems),
            "purity": min(purity) if purity else 1.0, "purity_mean": statistics.mean(purity) if purity else 1.0,
            "unique_joined": unique_joined, "unique": sum(1 for d in day if d["problem"] is None), "mails": mails}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new", type=int, default=2000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailproc-bench-clusters-"))
    work.chmod(0o755)
    pg = None
    results = []
    try:
        for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
            if kind == "sqlite":
                url = f"sqlite:///{work / 'clusters.sqlite3'}"
            else:
                from mailproc.testing.postgres import Postgres
                pg = Postgres(work / "pg")
                pg.start()
                url = pg.create_database("clusters")
            results.append(measure(url, work, args.new, args.history))
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'database':<11}{'new':>6}{'history':>9}{'pass s':>8}{'tick ms':>9}{'idle ms':>9}{'joined':>8}"
          f"{'opened':>8}{'3+':>5}{'problems':>9}{'purity':>12}{'unique joined':>15}  mails")
    for r in results:
        print(f"{r['db']:<11}{r['new']:>6}{r['history']:>9,}{r['whole_s']:>8.2f}{r['tick_ms']:>9.1f}"
              f"{r['idle_ms']:>9.2f}{r['joined']:>8}{r['opened']:>8}{r['clusters3']:>5}{r['problems_found']:>6}/30"
              f"{r['purity']:>6.2f}/{r['purity_mean']:.2f}{r['unique_joined']:>8}/{r['unique']}"
              f"  {dict(r['mails'])}")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
