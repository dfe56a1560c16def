"""The `mailproc` command.

    mailproc [--config PATH] [--now ISO8601] COMMAND

    check                       validate config, rules and templates
    init DIR                    write a mailproc.ini and copies of the rules and templates
    run [--once [--dry-run]]    the daemon (or one poll + due work + send, then exit;
                                --dry-run prints what the due work would send, changes nothing)
    ingest PATH... [--mailbox]  store and process .eml files, mbox files, Maildirs
    deliver --mailbox NAME      one message on stdin (for an MTA pipe)
    cases list [--json]         cases show N [--json]
    messages list [--json]      messages retry ID
    customers import FILE.csv
    status [--json]             mailboxes' last polls, outbox, failed messages, due work,
                                red SLAs, flagged holds; reads only the database

Exit status: 0 success; 1 a runtime failure (e.g. a message kept as failed by
`deliver`); 2 usage; 75 (EX_TEMPFAIL) `run --once` could not poll a mailbox
(unreachable, login refused, another process polling it) or could not use
the SMTP server — each is named on stderr, and trying again later may work;
78 (EX_CONFIG) bad configuration, rules or templates — systemd's unit does
not restart on 78, since restarting cannot fix a file. `status` exits 0
whenever it could read the database, whatever it found: what needs attention
is listed (`attention` in its JSON), for monitoring to act on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from datetime import date
from pathlib import Path

from mailproc import __version__, db, logs, pipeline, sources
from mailproc import config as config_mod
from mailproc.clock import Clock
from mailproc.context import Context
from mailproc.errors import ConfigError, MailprocError, SchemaError, TransientError

log = logging.getLogger("mailproc")
EX_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailproc", description="An email-driven support desk.")
    p.add_argument("--config", default=os.environ.get("MAILPROC_CONFIG", config_mod.DEFAULT_CONFIG),
                   help="path of mailproc.ini (default: $MAILPROC_CONFIG or ./mailproc.ini)")
    p.add_argument("--now", help="ISO 8601 instant to use as the current time (also $MAILPROC_NOW)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="override log_level from the config")
    p.add_argument("--version", action="version", version=f"mailproc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("check", help="validate config, rules and templates; list which rule and template files are used")
    init = sub.add_parser("init", help="write a commented mailproc.ini and editable copies of the rules and templates")
    init.add_argument("directory", type=Path, metavar="DIR")
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--once", action="store_true",
                     help="poll every mailbox once, process, do the due work, send, exit")
    run.add_argument("--dry-run", action="store_true",
                     help="with --once: print the mails the due work would send now; poll, send and change nothing")
    ing = sub.add_parser("ingest", help="store and process messages from files")
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ing.add_argument("--mailbox", help="treat the messages as received by this mailbox")
    dlv = sub.add_parser("deliver", help="store and process one message read from stdin")
    dlv.add_argument("--mailbox", required=True)

    cases = sub.add_parser("cases", help="list or show cases").add_subparsers(dest="action", required=True)
    cl = cases.add_parser("list")
    cl.add_argument("--json", action="store_true")
    cl.add_argument("--status")
    cs = cases.add_parser("show")
    cs.add_argument("number", type=int)
    cs.add_argument("--json", action="store_true")

    msgs = sub.add_parser("messages", help="list or retry stored messages").add_subparsers(dest="action", required=True)
    ml = msgs.add_parser("list")
    ml.add_argument("--json", action="store_true")
    ml.add_argument("--state", choices=("pending", "done", "failed"))
    mr = msgs.add_parser("retry")
    mr.add_argument("id", type=int)

    cust = sub.add_parser("customers", help="the customer directory").add_subparsers(dest="action", required=True)
    ci = cust.add_parser("import")
    ci.add_argument("file", type=Path)

    agents = sub.add_parser("agents", help="the roster").add_subparsers(dest="action", required=True)
    al = agents.add_parser("list", help="each agent: teams, tier, roles, window, at work now, open cases")
    al.add_argument("--json", action="store_true")
    st = sub.add_parser("status", help="mailboxes' last polls, outbox, failed messages, due work, red SLAs, holds")
    st.add_argument("--json", action="store_true")
    cf = sub.add_parser("classify", help="how new mail would be classified (type, priority, team, …) and by which "
                                         "rule, without storing anything; `classify learn`: train the model of "
                                         "agents' corrections; `classify report`: how often agents corrected")
    cf.add_argument("files", nargs="*", type=Path, metavar="FILE.eml")
    cf.add_argument("--mailbox", help="as received by this mailbox (default: the one it is addressed to, else "
                                      "the first)")
    cf.add_argument("--json", action="store_true")
    cf.add_argument("--report", action="store_true",
                    help="instead: how often agents corrected each type and priority, and the rules involved")
    cf.add_argument("--days", type=int, default=30, metavar="N", help="with --report: the last N days (default 30)")
    from mailproc.reports import FORMATS, REPORTS
    rp = sub.add_parser("report", help="print (or mail) a report: the digests, a check-in list, hours, outcomes, "
                                       "known-issue clusters")
    rp.add_argument("kind", choices=tuple(REPORTS))
    rp.add_argument("--for", dest="day", type=_day_arg, metavar="DATE",
                    help="the day reported (YYYY-MM-DD; YYYY-MM for hours); default: the one its latest slot covers")
    rp.add_argument("--agent", metavar="NAME", help="checkin: the agent whose list it is")
    rp.add_argument("--format", choices=FORMATS, default="text")
    rp.add_argument("--to", metavar="ADDR", action="append",
                    help="mail it to ADDR (repeatable) instead of printing it; the daemon's sender sends it")
    rp.add_argument("--dry-run", action="store_true",
                    help="print the mails it would queue (to --to, else to its usual recipients); change nothing")
    return p


def _day_arg(text: str) -> date:
    """YYYY-MM-DD, or YYYY-MM (the first of the month, for the hours report)."""
    try:
        return date.fromisoformat(text + "-01" if len(text) == 7 else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (YYYY-MM-DD, or YYYY-MM)") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level or "info")
    if args.command == "init":  # makes the config, so reads none
        return cmd_init(args.directory)
    try:
        clock = Clock.from_env(args.now)
    except ValueError as exc:
        print(f"mailproc: error: --now/MAILPROC_NOW: {exc}", file=sys.stderr)
        return 2
    try:
        config = config_mod.load(args.config)
        if not args.log_level:
            logs.setup(config.log_level)
        if args.command == "check":
            return cmd_check(config, clock)
        if args.command == "run":
            config_mod.require_mailboxes(config)
        from mailproc.daemon import checked_context
        ctx = checked_context(config, clock)
        db.open_database(config.database)
        from mailproc import roster
        roster.sync(roster.from_context(ctx))  # the database knows the agents of this config
    except (ConfigError, SchemaError) as exc:
        print(f"mailproc: error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except TransientError as exc:
        print(f"mailproc: error: {exc}", file=sys.stderr)
        return 1
    try:
        return dispatch(args, ctx)
    except (ValueError, LookupError, FileNotFoundError, MailprocError) as exc:
        print(f"mailproc: error: {exc}", file=sys.stderr)
        return EX_CONFIG if isinstance(exc, ConfigError) else 1
    finally:
        db.close()


def cmd_check(config: config_mod.Config, clock: Clock) -> int:
    from mailproc.defaults import in_force, shipped
    from mailproc.rules import load_rules
    from mailproc.templates import Templates

    problems: list[str] = []
    try:
        load_rules(config.rules_dir, config.timezone)
    except ConfigError as exc:
        problems.append(str(exc))
    templates = Templates(config.templates_dir)
    problems += templates.check(shipped=True)
    try:
        config_mod.require_mailboxes(config)
    except ConfigError as exc:
        problems.append(str(exc))
    for problem in problems:
        print(f"mailproc: error: {problem}", file=sys.stderr)
    if problems:
        return EX_CONFIG
    print(f"ok: {config.path}: {len(config.mailboxes)} mailbox(es); the rule and template files in force:")
    # Which file is used, and whether it is the site's: an override silently shadowing
    # (or failing to shadow) a shipped file is what an operator cannot see otherwise.
    files = [("rules", f) for f in in_force("rules", config.rules_dir)]
    files += [("templates", f) for f in templates.in_force()]
    for kind, f in files:  # origin: shipped, override (the site's file replaces the shipped one), added
        print(f"  {kind + '/' + f.name:<36} {f.origin:<9} {f.path}")
    # Before the defaults shipped in the package, `rules` and `templates` defaulted to
    # these directories next to the config; a site that relied on that must now name them.
    for key, chosen in (("rules", config.rules_dir), ("templates", config.templates_dir)):
        beside = config.path.parent / key
        if chosen is None and beside.is_dir() and beside.resolve() != shipped(key):
            print(f"mailproc: note: {beside} is not used; to use its files, set {key} = {key} in [mailproc]",
                  file=sys.stderr)
    return 0


def cmd_init(directory: Path) -> int:
    from mailproc import scaffold

    try:
        written = scaffold.init_site(directory)
    except scaffold.InitError as exc:
        print(f"mailproc: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    ini = directory / "mailproc.ini"
    print(f"next: edit {ini} (mailboxes, [smtp]), then: mailproc --config {ini} check")
    return 0


def dispatch(args, ctx: Context) -> int:
    from mailproc import daemon

    if args.command == "run":
        if args.dry_run and not args.once:
            print("mailproc: error: --dry-run goes with --once", file=sys.stderr)
            return 2
        if args.dry_run:
            swept = daemon.dry_run(ctx, sys.stdout)
            print(f"dry run at {ctx.clock.now().isoformat(timespec='seconds')}: "
                  + (", ".join(f"{k}={v}" for k, v in sorted(swept.done.items())) or "nothing due"),
                  file=sys.stderr)
            return 0
        if args.once:
            flags = daemon.Flags()  # SIGTERM/SIGINT: finish the message or due item in hand, stop

            def on_stop(_signum, _frame):
                flags.stop = True
            before = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                result = daemon.run_once(ctx, stop=lambda: flags.stop)
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)
            log.info("run --once: %s",
                     ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())) or "nothing new")
            for problem in result.problems:
                print(f"mailproc: error: {problem}", file=sys.stderr)
            return daemon.EX_TEMPFAIL if result.problems else 0
        return daemon.Daemon(ctx).run()
    if args.command == "ingest":
        if args.mailbox:
            ctx.config.mailbox(args.mailbox)
        rows = sources.ingest(ctx, args.paths, args.mailbox)
        counts = pipeline.process_all(ctx, rows)
        print(json.dumps({"stored": len(rows), **counts}, sort_keys=True))
        return 0
    if args.command == "deliver":
        box = ctx.config.mailbox(args.mailbox)
        from mailproc.store import store_message
        row = store_message(ctx, sys.stdin.buffer.read(), source="deliver", mailbox=box.name)
        disposition = pipeline.process(ctx, row)
        print(json.dumps({"message": row.id, "disposition": disposition}))
        return 0 if disposition != "failed" else 1
    if args.command == "cases":
        return cmd_cases(args, ctx)
    if args.command == "messages":
        return cmd_messages(args, ctx)
    if args.command == "agents":
        return cmd_agents(args, ctx)
    if args.command == "status":
        return cmd_status(args, ctx)
    if args.command == "report":
        return cmd_report(args, ctx)
    if args.command == "classify":
        return cmd_classify(args, ctx)
    if args.command == "customers":
        from mailproc import directory
        imported = directory.import_csv(args.file, ctx.clock.now(), agents=[a.name for a in ctx.config.agents])
        print(f"imported {args.file}: {imported.added} added, {imported.updated} updated")
        return 0
    raise ValueError(f"unknown command {args.command}")


def cmd_cases(args, ctx: Context) -> int:
    from mailproc import views
    from mailproc.jobs import sla
    from mailproc.models import Case

    now = ctx.clock.now()

    def sla_of(case):
        return sla.state(ctx, case, now)

    shown = views.shown  # human output: a sender's control characters are printed escaped
    if args.action == "list":
        rows = views.case_list(args.status, sla_of)
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            for r in rows:
                print(f"#{r['number']:<6} {r['status']:<19} {r['priority']} {r['type']:<11} "
                      f"{shown(r['team'] or '-'):<16} {shown(r['contact']):<30} {shown(r['summary'][:60])}")
        return 0
    case = Case.get_or_none(Case.id == args.number)
    if case is None:
        raise LookupError(f"no case #{args.number}")
    data = views.case_detail(case, sla_of)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(f"Case #{data['number']}: {shown(data['summary'])}")
        for key in ("status", "type", "priority", "tier", "team", "assignee", "contact", "company", "need_by"):
            rule = data["decided_by"].get(key)
            print(f"  {key:<9} {shown(data[key])}" + (f"   (by {shown(rule)})" if rule else ""))
        if data["decided_by"].get("evidence"):  # every classification rule that held, with its weight
            print(f"  {'evidence':<9} {shown(data['decided_by']['evidence'])}")
        if data["sla"]:
            print(f"  {'sla':<9} {data['sla']}" + (f", red at {data['sla_due']}" if data["sla_due"] else ""))
        print("  events:")
        for e in data["events"]:
            change = f"{e['field']}: {e['old'] or ''} -> {e['new']}" if e["field"] else (e["detail"] or e["new"] or "")
            print(f"    {e['at']} {e['kind']:<15} {shown(change)}" + (f"  [{shown(e['rule'])}]" if e["rule"] else ""))
    return 0


def cmd_report(args, ctx: Context) -> int:
    """`report KIND`: print a report, or mail it (`--to`), or show the mail (`--dry-run`)."""
    from mailproc import daemon, reports

    now = ctx.clock.now()
    report = reports.build(ctx, args.kind, day=args.day, now=now, agent=args.agent)
    recipients = args.to or report.to
    if not args.to and not args.dry_run:
        if args.format == "json":
            print(json.dumps(report.data, indent=2, ensure_ascii=False, default=str))
        else:
            print(report.html if args.format == "html" else report.text)
        return 0
    # Without --to, a dry run shows what the daemon's slot would send for this report:
    # a module with `deliver` knows (the clients' hours reports; no check-in for an empty list).
    deliver = getattr(reports.module(args.kind), "deliver", None) if not args.to else None
    if deliver is None and not recipients:
        print(f"mailproc: error: the {args.kind} report has no recipients here; name one with --to ADDR",
              file=sys.stderr)
        return 1

    def queue() -> int:
        if deliver is not None:
            return deliver(ctx, report, now)
        return sum(1 for to in recipients if reports.send(ctx, report, to, now) is not None)
    if args.dry_run:
        queued = daemon.preview(sys.stdout, queue)
        print(f"dry run: {queued} mail(s) would be queued", file=sys.stderr)
        return 0
    with db.transaction():
        queued = queue()
    print(f"queued the {args.kind} report to {', '.join(recipients)} ({queued} mail(s)); the sender sends it",
          file=sys.stderr)
    return 0


def _classify_report(args, ctx: Context) -> int:
    """`classify --report [--days N]`: agents' corrections of type and priority (mailproc.classify_report)."""
    from mailproc import classify_report

    if args.files:
        print("mailproc: error: --report reads no files", file=sys.stderr)
        return 2
    data = classify_report.report(ctx.clock.now(), days=args.days)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(classify_report.render(data), end="")
    return 0


def _classify_learn(args, ctx: Context) -> int:
    """`classify learn`: train and store a model of each field agents corrected often enough."""
    from mailproc import learned

    now, results, code = ctx.clock.now(), [], 0
    for field in learned.FIELDS:
        try:
            model = learned.learn(field, now, ctx.config.learn.min_corrections)  # stores in its own transaction
        except learned.LearnError as exc:
            results.append({"field": field, "trained": False, "why": str(exc)})
            code = max(code, 1 if exc.missing_library else 0)
            continue
        results.append({"trained": True, **learned.describe(model)})
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return code
    for r in results:
        if not r["trained"]:
            print(f"{r['field']}: no model: {r['why']}")
            continue
        accuracy = "n/a (too few corrections per value)" if r["accuracy"] is None else f"{r['accuracy']:.0%}"
        print(f"{r['field']}: trained on {r['examples']} cases ({r['corrections']} corrected), {r['terms']} terms; "
              f"right on {accuracy} of the corrections when left out of training")
        for value, terms in r["strongest"].items():
            print(f"  {value:12} {', '.join(terms)}")
    return code


def cmd_classify(args, ctx: Context) -> int:
    """`classify FILE…`: each mail's decision and the rule behind each field, nothing stored."""
    from mailproc import learned
    from mailproc.parse import parse
    from mailproc.stages.classify import explain

    verb = str(args.files[0]) if args.files else ""
    if verb in ("learn", "report") and not args.files[0].exists():
        args.files = args.files[1:]
        if verb == "learn":
            if args.files or args.report:
                print("mailproc: error: learn reads no files", file=sys.stderr)
                return 2
            return _classify_learn(args, ctx)
        args.report = True
    if args.report:
        return _classify_report(args, ctx)
    if not args.files:
        print("mailproc: error: name one or more .eml files", file=sys.stderr)
        return 2
    chosen = ctx.config.mailbox(args.mailbox) if args.mailbox else None
    now = ctx.clock.now()
    learn = ctx.config.learn
    models = learned.in_use(learn.weight, learn.priority_probability, learn.starter)
    results, code = [], 0
    for path in args.files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            print(f"mailproc: error: {path}: {exc.strerror or exc}", file=sys.stderr)
            code = 1
            continue
        mail = parse(raw)
        box = chosen or _addressed_box(ctx, mail)
        decision = explain(ctx.rules, mail, now, box, models)
        results.append({"file": str(path), "mailbox": box.name if box else None, **decision})
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False, default=str))
        return code
    for r in results:
        f, by = r["fields"], r["decided_by"]
        who = r["customer"]["company"] + f" ({r['customer']['plan']})" if r["customer"] else "not in the directory"
        print(f"{r['file']}: {r['subject']!r} from {r['from'] or '(no sender)'}, {who}")
        for name in ("type", "priority", "status", "team", "need_by", "needs_triage", "urgent"):
            if name in f:
                print(f"  {name:13} {f[name]!s:22} {by.get(name, '')}")
        for name in ("evidence", "model"):
            if by.get(name):
                print(f"  {name:13} {by[name]}")
    return code


def _addressed_box(ctx: Context, mail):
    """The mailbox a parsed mail is addressed to (To/Cc), else the first configured."""
    wanted = {a.lower() for a in (*mail.to, *mail.cc)}
    boxes = ctx.config.mailboxes
    return next((b for b in boxes if b.address.lower() in wanted), boxes[0] if boxes else None)


def cmd_status(args, ctx: Context) -> int:
    """`status`: read from the database only, so it answers while mailboxes or SMTP are down."""
    from mailproc import status

    data = status.report(ctx, ctx.clock.now())
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else status.render(data))
    return 0


def cmd_agents(args, ctx: Context) -> int:
    """`agents list`: the roster as mailproc.ini gives it, with the clock's view of it."""
    from mailproc import roster, views

    rows = roster.listing(roster.from_context(ctx), ctx.clock.now())
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    shown = views.shown
    for r in rows:
        state = "at work" if r["available_now"] else f"off until {r['next_window_start'] or 'never'}"
        extra = ", ".join(filter(None, [r["tier"], *r["roles"]]))
        print(f"{shown(r['name']):<12} {shown(r['address']):<30} {r['open_cases']:>4} open  {state}")
        print(f"{'':<12} teams: {shown(', '.join(r['teams']) or '-')}" + (f"  ({extra})" if extra else ""))
        print(f"{'':<12} hours: {shown(r['hours'])} [{r['hours_timezone']}]; time zone {r['timezone']}")
    if not rows:
        print("no agents: add [agent:NAME] sections to the config")
    return 0


def cmd_messages(args, ctx: Context) -> int:
    from mailproc import views
    from mailproc.models import Message

    if args.action == "retry":
        message = Message.get_or_none(Message.id == args.id)
        if message is None:
            raise LookupError(f"no message {args.id}")
        disposition = pipeline.retry(ctx, message)
        print(json.dumps({"message": message.id, "disposition": disposition}))
        return 0 if disposition != "failed" else 1
    query = Message.select().order_by(Message.id)
    if args.state:
        query = query.where(Message.state == args.state)
    rows = [views.message_dict(m) for m in query]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        shown = views.shown  # human output: a sender's control characters are printed escaped
        for r in rows:
            print(f"{r['id']:<6} {r['state']:<8} {(r['disposition'] or '-'):<10} "
                  f"{('#' + str(r['case'])) if r['case'] else '-':<7} {shown(r['from']):<30} "
                  f"{shown(r['subject'][:50])}" + (f"  ERROR: {shown(r['error'][:80])}" if r["error"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
