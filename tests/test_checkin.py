"""Agents' check-ins (seed 001's "Our Turn" list), on SQLite and PostgreSQL: what the list
holds and in which order, waiting times, SLA colours, the reply link's token; at each slot
of the agent's working days in the agent's own zone, exactly once — across a restart, two
racing schedulers, `run --once` twice, and DST changes — and never an empty mail.

The slot-job list is held to the check-in provider (`scheduled.PROVIDERS`), so the other
reports' jobs neither add mail to count nor run in these tests."""

from __future__ import annotations

import email
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

from mailproc import cli, db, roster, scheduled, tokens
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context, roster_of
from mailproc.models import Case, Outbox, SlotRun, utc
from mailproc.reports import checkin

from helpers import run, run_once

UTC = timezone.utc
LISBON, NY = ZoneInfo("Europe/Lisbon"), ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)  # Monday 10:00 in Lisbon (WET, UTC+0), 06:00 in New York
AGENTS = {
    "ana": dict(address="ana@agents.example", teams="Support Team", timezone="Europe/Lisbon",
                hours="Mon Wed Fri 08:00-17:00"),
    "bob": dict(address="bob@agents.example", teams="Support Team", timezone="America/New_York",
                hours="Daily 08:00-18:00"),
    "cy": dict(address="cy@agents.example", teams="Support Team", timezone="Europe/Lisbon"),  # business calendar
    "dee": dict(address="dee@agents.example", teams="Support Team", timezone="Europe/Lisbon",
                hours="Daily 07:00-20:00"),
}


def at(*args, tz=UTC) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)


def box(**extra) -> dict:
    return {**dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                   address="support@example.com"), **extra}


@pytest.fixture(autouse=True)
def only_checkins(monkeypatch):
    monkeypatch.setattr(scheduled, "PROVIDERS", ("mailproc.reports.checkin",))


def _context(config_path, now=NOW):
    config = load(config_path)
    db.open_database(config.database)
    ctx = load_context(config, Clock(now))
    roster.sync(roster_of(ctx))
    return ctx


@pytest.fixture
def ctx(db_url, make_config):
    yield _context(make_config(database=db_url, mailboxes=[box()], agents=AGENTS,
                               extra={"timezone": "Europe/Lisbon"}))
    db.close()


def _case(agent: str | None, customer_at: datetime | None, *, agent_at=None, since=None, status="assigned",
          warn=None, due=None, paused=None, tier="T1", summary="Cannot export") -> Case:
    created = customer_at or NOW - timedelta(days=3)
    return Case.create(contact="cus@shop.example", summary=summary, status=status, tier=tier, mailbox="support",
                       assignee=roster.person_id(agent) if agent else None, created_at=utc(created),
                       updated_at=utc(created), status_changed_at=utc(created), tier_entered_at=utc(created),
                       last_customer_at=utc(customer_at), last_agent_at=utc(agent_at), waiting_since=utc(since),
                       sla_warn_at=utc(warn), sla_due=utc(due), sla_paused_at=utc(paused),
                       closed_at=utc(created) if status == "closed" else None)


def _checkins(to: str | None = None) -> list[Outbox]:
    query = Outbox.select().where(Outbox.kind == "checkin")
    if to:
        query = query.where(Outbox.to_addr == to)
    return list(query.order_by(Outbox.id))


# --- the list -----------------------------------------------------------------------------


def _ana_cases():
    """Ana's desk at NOW: three cases waiting on her (red, yellow, green), one paused, one of a
    tier without limits, and cases that must not be listed."""
    fri = at(2026, 3, 6, 16, 0)
    listed = [
        _case("ana", fri, since=fri, warn=NOW - timedelta(hours=3), due=NOW - timedelta(hours=1), summary="Oldest"),
        # no waiting_since (a case from before the timers): the customer's last mail orders it
        _case("ana", at(2026, 3, 7, 12, 0), agent_at=at(2026, 3, 6, 17, 0), warn=NOW - timedelta(hours=1),
              due=NOW + timedelta(hours=2), summary="Second"),
        _case("ana", at(2026, 3, 9, 8, 0), since=at(2026, 3, 8, 9, 0), status="new", warn=NOW + timedelta(hours=1),
              due=NOW + timedelta(hours=4), summary="Third"),
        _case("ana", at(2026, 3, 8, 10, 0), paused=at(2026, 3, 8, 11, 0), summary="Paused"),
        _case("ana", at(2026, 3, 8, 11, 0), tier="triage-x", summary="No SLA"),
    ]
    _case("ana", at(2026, 3, 5, 9, 0), agent_at=at(2026, 3, 5, 10, 0), summary="Ana answered")
    _case("bob", at(2026, 3, 5, 9, 0), summary="Bob's case")
    _case("ana", at(2026, 3, 5, 9, 0), status="closed", summary="Closed")
    _case("ana", at(2026, 3, 5, 9, 0), status="pending_development", summary="With engineering")
    _case("ana", at(2026, 3, 5, 9, 0), status="on_hold", summary="On hold")
    _case("ana", None, summary="Opened by an agent, the customer never wrote")
    _case(None, at(2026, 3, 5, 9, 0), summary="Unassigned")
    return listed


def test_the_list_is_the_agents_cases_where_the_customer_spoke_last_oldest_first(ctx):
    listed = _ana_cases()
    report = checkin.build(ctx, day=None, now=NOW, agent="ana")
    assert [c["case"] for c in report.data["cases"]] == [c.id for c in listed]
    assert [c["summary"] for c in report.data["cases"]] == ["Oldest", "Second", "Third", "Paused", "No SLA"]
    assert report.data["total"] == report.data["shown"] == 5 and report.to == ["ana@agents.example"]
    assert report.subject == "Your turn: 5 cases waiting on you (morning)"
    lines = report.text.splitlines()
    assert lines[2] == "5 cases wait on your answer: the customer wrote last."
    assert [line.split(". ", 1)[1] for line in lines if line[:3].strip().rstrip(".").isdigit()] == [
        f"[Case #{c.id}] {s}" for c, s in zip(listed, ["Oldest", "Second", "Third", "Paused", "No SLA"])]
    for absent in ("Ana answered", "Bob's case", "Closed", "With engineering", "On hold", "never wrote",
                   "Unassigned"):
        assert absent not in report.text and absent not in report.html
    assert checkin.build(ctx, day=None, now=NOW, agent="bob").data["total"] == 1  # bob's own list has his


def test_waiting_times_are_clock_time_and_business_hours(ctx):
    _ana_cases()
    first, second, third = checkin.build(ctx, day=None, now=NOW, agent="ana").data["cases"][:3]
    # Friday 16:00 -> Monday 10:00 in Lisbon: 66 h on the clock; 17:00 on Friday and 9-10 on Monday in business hours
    assert (first["waiting_hours"], first["waiting"]) == (66.0, "2 d 18 h")
    assert (first["waiting_business_hours"], first["waiting_business"]) == (2.0, "2 h 00 min")
    assert first["waiting_since_local"] == "Fri 06 Mar 16:00"
    # Saturday 12:00 -> 46 h, of which one business hour (Monday 09:00-10:00)
    assert (second["waiting_hours"], second["waiting_business_hours"]) == (46.0, 1.0)
    # the wait started with the first unanswered mail (Sunday 09:00), not the customer's latest
    assert (third["waiting_hours"], third["waiting"]) == (25.0, "1 d 1 h")
    text = checkin.build(ctx, day=None, now=NOW, agent="ana").text
    assert "    Waiting: 2 d 18 h since Fri 06 Mar 16:00 (2 h 00 min of business hours)" in text.splitlines()


def test_sla_colours_come_from_the_stored_instants(ctx):
    _ana_cases()
    report = checkin.build(ctx, day=None, now=NOW, agent="ana")
    assert [c["sla"] for c in report.data["cases"]] == ["red", "yellow", "green", "paused", None]
    assert report.data["sla"] == {"red": 1, "yellow": 1, "green": 1, "paused": 1}
    sla_lines = [line.strip() for line in report.text.splitlines() if line.strip().startswith("SLA:")]
    assert sla_lines[:5] == ["SLA:     RED", "SLA:     YELLOW", "SLA:     green", "SLA:     paused", "SLA:     no SLA"]
    assert ">red</span>" in report.html and "background:#d64545" in report.html
    # an hour later the yellow one is red
    later = checkin.build(ctx, day=None, now=NOW + timedelta(hours=2), agent="ana").data["cases"]
    assert [c["sla"] for c in later[:3]] == ["red", "red", "yellow"]


def test_the_reply_link_carries_a_token_for_the_case_and_the_agent(ctx):
    listed = _ana_cases()
    report = checkin.build(ctx, day=None, now=NOW, agent="ana")
    for item, case in zip(report.data["cases"], listed):
        link = urlsplit(item["reply"])
        assert link.scheme == "mailto" and unquote(link.query) == f"subject=[Case #{case.id}]"
        local, _, domain = link.path.partition("@")
        assert domain == "example.com" and local.startswith("support+")
        token = local.split("+", 1)[1]
        found = tokens.verify(token, NOW, ctx.config.token_keys, [a.name for a in roster_of(ctx).agents])
        assert found == tokens.Verified(case=case.id, agent="ana")
        assert f"Reply:   {item['reply']}" in report.text and f'href="{item["reply"]}"' in report.html


def test_the_agent_is_required_and_must_be_known(ctx):
    with pytest.raises(ValueError, match=r"--agent \(agents: ana, bob, cy, dee\)"):
        checkin.build(ctx, day=None, now=NOW)
    with pytest.raises(ValueError, match=r"no agent named 'zed' \(agents: ana, bob, cy, dee\)"):
        checkin.build(ctx, day=None, now=NOW, agent="zed")


def test_a_long_list_is_cut_and_says_how_many_there_are(ctx, monkeypatch):
    for hour in range(4):
        _case("cy", at(2026, 3, 6, 9 + hour, 0))
    monkeypatch.setattr(checkin, "LIMIT", 3)
    report = checkin.build(ctx, day=None, now=NOW, agent="cy")
    assert (report.data["total"], report.data["shown"], len(report.data["cases"])) == (4, 3, 3)
    assert report.subject.startswith("Your turn: 4 cases waiting on you")
    assert "... and 1 more: only the 3 oldest are listed." in report.text.splitlines()


def test_the_sla_counts_cover_every_waiting_case_not_only_the_listed_ones(ctx, monkeypatch):
    _ana_cases()  # red, yellow, green, paused, no SLA: oldest first
    for n in range(3):  # newer waits, past the cut: two red, one paused
        _case("ana", NOW - timedelta(hours=1, minutes=n), warn=NOW - timedelta(hours=2), due=NOW - timedelta(hours=1))
    _case("ana", NOW - timedelta(minutes=10), paused=NOW - timedelta(minutes=5))
    _case("ana", NOW - timedelta(minutes=5), agent_at=NOW, warn=NOW - timedelta(hours=2), due=NOW)  # answered
    monkeypatch.setattr(checkin, "LIMIT", 2)
    report = checkin.build(ctx, day=None, now=NOW, agent="ana")
    assert (report.data["total"], report.data["shown"]) == (9, 2)
    assert [c["sla"] for c in report.data["cases"]] == ["red", "yellow"]
    assert report.data["sla"] == {"red": 4, "yellow": 1, "green": 1, "paused": 2}
    # the boundaries as sla_colour reads them: at the warning instant yellow, at the due instant red
    ana = roster_of(ctx).agent("ana")
    assert checkin.counts(ctx, ana, NOW + timedelta(hours=1))[1] == {
        "red": 4, "yellow": 2, "green": 0, "paused": 2}  # "Third" warns at NOW + 1 h
    assert checkin.counts(ctx, ana, NOW + timedelta(hours=2))[1]["red"] == 5  # "Second" is due at NOW + 2 h
    monkeypatch.setattr(checkin, "LIMIT", 100)
    for later in (NOW + timedelta(hours=1), NOW + timedelta(hours=2)):  # the SQL reads colours as sla_colour does
        listed = [c["sla"] for c in checkin.build(ctx, day=None, now=later, agent="ana").data["cases"]]
        assert checkin.counts(ctx, ana, later) == (9, {c: listed.count(c) for c in ("red", "yellow", "green",
                                                                                    "paused")})


def test_a_full_list_stays_under_gmails_clipping_size(ctx):
    for n in range(checkin.LIMIT + 1):
        _case("cy", at(2026, 3, 6, 9, 0) + timedelta(minutes=n), summary=f"Problem {n} " + "é" * 480,
              warn=NOW - timedelta(hours=1), due=NOW + timedelta(hours=1))
    report = checkin.build(ctx, day=None, now=NOW, agent="cy")
    assert (report.data["total"], report.data["shown"]) == (checkin.LIMIT + 1, checkin.LIMIT)
    assert report.data["cases"][0]["summary"] == "Problem 0 " + "é" * 109 + "…"
    html = report.html.encode("utf-8")
    assert len(html) < 100_000 and b"<svg" not in html and b"data:" not in html and b"<script" not in html
    assert html.count(b'href="mailto:support+') == checkin.LIMIT


def test_an_empty_list_still_renders(ctx):
    report = checkin.build(ctx, day=None, now=NOW, agent="dee")
    assert report.data["total"] == 0 and report.data["cases"] == []
    assert report.subject == "Your turn: no cases waiting on you (morning)"
    assert "No case waits on you: every customer has your answer." in report.text


# --- at the slots -------------------------------------------------------------------------


def _run(ctx, now) -> list[str]:
    """One tick of a freshly started daemon: the check-in slots it did."""
    return [k for k in scheduled.Scheduler(ctx).run(now).slots if k.startswith("checkin:")]


def test_each_agent_gets_their_list_at_their_slots_and_nobody_gets_an_empty_one(ctx):
    _ana_cases()
    done = _run(ctx, at(2026, 3, 9, 9, 30, tz=LISBON))  # Monday 09:30 in Lisbon; 04:30 in New York
    # ana, cy and dee had a slot; bob's Sunday 16:30 was caught up, and not mailed: it is Monday in New York
    assert sorted(done) == ["checkin:ana:2026-03-09T09:30", "checkin:bob:2026-03-08T16:30",
                            "checkin:cy:2026-03-09T09:30", "checkin:dee:2026-03-09T09:30"]
    # the list goes to ana; cy's and dee's lists are empty
    [mail] = _checkins()
    assert mail.to_addr == "ana@agents.example" and not mail.automatic
    parsed = email.message_from_bytes(bytes(mail.raw))
    assert parsed["Subject"] == "Your turn: 5 cases waiting on you (morning)"
    assert parsed["Auto-Submitted"] == "auto-generated"
    done_keys = {r.key for r in SlotRun.select().where(SlotRun.key.startswith("checkin:dee")
                                                       & (SlotRun.outcome == "done"))}
    assert done_keys == {"checkin:dee:2026-03-09T09:30"}  # claimed, though nothing was sent


def _dee(ctx, now) -> list[str]:
    return [k for k in _run(ctx, now) if k.startswith("checkin:dee:")]


def test_a_missed_slot_is_caught_up_on_its_own_day_only(ctx):
    _case("dee", at(2026, 3, 9, 8, 0))
    # down since before 09:30: at 11:00 the morning's list goes, late
    assert _dee(ctx, at(2026, 3, 9, 11, 0, tz=LISBON)) == ["checkin:dee:2026-03-09T09:30"]
    assert len(_checkins("dee@agents.example")) == 1
    # down from before 16:30 to the next morning: yesterday's end of day is passed over
    assert _dee(ctx, at(2026, 3, 10, 7, 0, tz=LISBON)) == ["checkin:dee:2026-03-09T16:30"]
    assert len(_checkins("dee@agents.example")) == 1
    assert _dee(ctx, at(2026, 3, 10, 9, 30, tz=LISBON)) == ["checkin:dee:2026-03-10T09:30"]
    assert len(_checkins("dee@agents.example")) == 2


def test_the_parts_of_the_day_name_the_subject(ctx):
    _case("dee", at(2026, 3, 9, 8, 0))
    for hour, minute in ((9, 30), (13, 30), (16, 30)):
        _run(ctx, at(2026, 3, 9, hour, minute, tz=LISBON))
    subjects = [email.message_from_bytes(bytes(m.raw))["Subject"] for m in _checkins("dee@agents.example")]
    assert subjects == ["Your turn: 1 case waiting on you (morning)", "Your turn: 1 case waiting on you (mid-day)",
                        "Your turn: 1 case waiting on you (end of day)"]


def test_no_mail_on_a_day_off(ctx):
    for name in ("ana", "cy", "dee"):
        _case(name, at(2026, 3, 2, 9, 0))
    # Tuesday: outside ana's window weekdays (Mon Wed Fri); cy works the business calendar
    _run(ctx, at(2026, 3, 10, 9, 30, tz=LISBON))
    assert {m.to_addr for m in _checkins()} == {"cy@agents.example", "dee@agents.example"}
    # Saturday: a weekend for cy and ana; dee works daily
    _run(ctx, at(2026, 3, 14, 9, 30, tz=LISBON))
    assert [m.to_addr for m in _checkins()][2:] == ["dee@agents.example"]
    # Good Friday (a holiday of the calendar): not for cy; ana's own window has no holidays
    _run(ctx, at(2026, 4, 3, 9, 30, tz=LISBON))
    assert sorted(m.to_addr for m in _checkins()[3:]) == ["ana@agents.example", "dee@agents.example"]
    assert not SlotRun.select().where(SlotRun.key == "checkin:cy:2026-04-03T09:30").exists()
    assert not SlotRun.select().where(SlotRun.key == "checkin:ana:2026-03-10T09:30").exists()


def test_each_slot_once_across_a_restart(ctx):
    _case("ana", at(2026, 3, 6, 9, 0))
    slot = at(2026, 3, 9, 9, 30, tz=LISBON)
    assert "checkin:ana:2026-03-09T09:30" in _run(ctx, slot)
    assert _run(ctx, slot) == []  # a new Scheduler: the daemon restarted
    assert _run(ctx, slot + timedelta(hours=1)) == []
    assert scheduled.run(ctx, slot + timedelta(hours=2)).mails == 0
    assert len(_checkins("ana@agents.example")) == 1
    assert "checkin:ana:2026-03-09T13:30" in _run(ctx, at(2026, 3, 9, 13, 30, tz=LISBON))
    assert len(_checkins("ana@agents.example")) == 2


def test_two_schedulers_racing_send_one_mail(ctx):
    _case("ana", at(2026, 3, 6, 9, 0))
    slot = at(2026, 3, 9, 9, 30, tz=LISBON)
    start = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def daemon() -> None:
        try:
            start.wait(5)
            results.append(scheduled.Scheduler(ctx).run(slot).mails)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            db.close()

    racers = [threading.Thread(target=daemon) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert not errors, errors
    assert sorted(results) == [0, 1]
    assert len(_checkins("ana@agents.example")) == 1


def _walk(ctx, start: datetime, end: datetime, name: str, tz) -> list[datetime]:
    """Tick one scheduler every 5 minutes from `start` to `end`; the local instants at which
    `name`'s check-in mail went out (the first tick's catch-up left out)."""
    scheduler = scheduled.Scheduler(ctx)
    scheduler.run(start)
    fired, now = [], start
    while now < end:
        now += timedelta(minutes=5)
        before = len(_checkins(f"{name}@agents.example"))
        scheduler.run(now)
        fired += [now.astimezone(tz)] * (len(_checkins(f"{name}@agents.example")) - before)
    return fired


def _walls(fired: list[datetime]) -> dict[str, list[str]]:
    days: dict[str, list[str]] = {}
    for t in fired:
        days.setdefault(t.date().isoformat(), []).append(t.strftime("%H:%M %Z"))
    return days


def test_new_york_spring_forward_keeps_the_local_times(ctx):
    _case("bob", at(2026, 3, 1, 9, 0))
    fired = _walk(ctx, at(2026, 3, 6, 18, 0, tz=NY), at(2026, 3, 9, 18, 0, tz=NY), "bob", NY)
    assert _walls(fired) == {
        "2026-03-07": ["09:30 EST", "13:30 EST", "16:30 EST"],
        "2026-03-08": ["09:30 EDT", "13:30 EDT", "16:30 EDT"],  # the change is at 02:00 that night
        "2026-03-09": ["09:30 EDT", "13:30 EDT", "16:30 EDT"]}
    assert fired[3].astimezone(UTC) - fired[0].astimezone(UTC) == timedelta(hours=23)  # Saturday 09:30 to Sunday 09:30


def test_lisbon_spring_forward_keeps_the_local_times(ctx):
    _case("dee", at(2026, 3, 20, 9, 0))
    fired = _walk(ctx, at(2026, 3, 27, 18, 0, tz=LISBON), at(2026, 3, 30, 18, 0, tz=LISBON), "dee", LISBON)
    assert _walls(fired) == {"2026-03-28": ["09:30 WET", "13:30 WET", "16:30 WET"],
                             "2026-03-29": ["09:30 WEST", "13:30 WEST", "16:30 WEST"],
                             "2026-03-30": ["09:30 WEST", "13:30 WEST", "16:30 WEST"]}
    assert [t.astimezone(UTC).hour for t in fired[::3]] == [9, 8, 8]


def test_the_fall_back_day_has_each_slot_once(db_url, make_config):
    """New York falls back on Sunday 2026-11-01: 01:30 happens twice, the slot goes once."""
    config = make_config(database=db_url, mailboxes=[box()], agents={"bob": AGENTS["bob"]},
                         extra={"timezone": "Europe/Lisbon"})
    config.write_text(config.read_text() + "\n[checkin]\nslots = 01:30, 09:30, 16:30\n")
    ctx = _context(config)
    try:
        _case("bob", at(2026, 10, 25, 9, 0))
        fired = _walk(ctx, at(2026, 10, 31, 18, 0, tz=NY), at(2026, 11, 2, 18, 0, tz=NY), "bob", NY)
        assert _walls(fired) == {"2026-11-01": ["01:30 EDT", "09:30 EST", "16:30 EST"],
                                 "2026-11-02": ["01:30 EST", "09:30 EST", "16:30 EST"]}
    finally:
        db.close()


# --- the daemon and the command line ------------------------------------------------------


def test_run_once_twice_sends_the_checkin_once(dovecot, imap_user, smtp, make_config, db_url):
    user, password = imap_user
    config = make_config(database=db_url, smtp=dict(host=smtp.host, port=smtp.port), agents={"ana": AGENTS["ana"]},
                         mailboxes=[box(host=dovecot.host, port=dovecot.port, username=user, password=password)],
                         # no automatic mail at all may go: a check-in is not automatic mail
                         extra={"timezone": "Europe/Lisbon", "autoreply_limit": 0})
    ctx = _context(config)
    _case("ana", at(2026, 3, 6, 9, 0))
    db.close()
    slot = at(2026, 3, 9, 9, 30, tz=LISBON)
    run_once(config, slot)
    run_once(config, slot)
    run_once(config, slot + timedelta(minutes=20))
    got = [m for m in smtp.wait_for(1) if m.message["Subject"].startswith("Your turn")]
    assert [(m.rcpt_tos, m.message["Subject"]) for m in got] == [
        (["ana@agents.example"], "Your turn: 1 case waiting on you (morning)")]
    db.open_database(ctx.config.database)
    assert len(_checkins("ana@agents.example")) == 1


def test_report_checkin_prints_the_agents_list(ctx, capsys):
    listed = _ana_cases()
    db.close()
    code, out = run(ctx.config.path, "report", "checkin", "--agent", "ana", now=NOW.isoformat(), capsys=capsys)
    assert code == 0
    assert out.splitlines()[2] == "5 cases wait on your answer: the customer wrote last."
    assert f" 1. [Case #{listed[0].id}] Oldest" in out.splitlines() and "Bob's case" not in out
    try:
        code = cli.main(["--config", str(ctx.config.path), "--now", NOW.isoformat(), "report", "checkin",
                         "--agent", "zed"])
    finally:
        db.close()
    assert code != 0 and "no agent named 'zed' (agents: ana, bob, cy, dee)" in capsys.readouterr().err
