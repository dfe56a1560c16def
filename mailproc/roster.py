"""The roster: who works which team when, and whom a new case goes to.

mailproc.ini's `[agent:NAME]` and `[team:NAME]` sections are the truth
(`config.AgentConfig`, `config.TeamConfig`); `build` joins them with the
business calendar of the rules, for agents who give no `hours`, and with the
teams the rules route to. `sync` copies the roster into the Person, Team and
TeamMember tables at start-up and on reload, so that the database (threading's
`is_agent`, a case's assignee) knows the same people.

Assignment (SPEC §7, seed 001: "prevent off-hours assignment") is `choose`, a
pure function: among the team's agents available at the mail's arrival, the
one with the fewest open cases, then the longest since their last
assignment, then by name so that the same inputs give the same agent. If
nobody of the team is available, the case goes at once to the agent whose
window opens soonest (rule `assignment:next-window`, `Choice.starts_at` says
when): the case has an owner and lands in the right queue, nobody working is
passed over for someone off duty, and the SLA clock is not touched — it counts
from the mail's arrival in business hours, whoever holds the case. The caller
(the act stage) calls `pick` in the case's transaction and sets the assignee
(`person_id`) through `mailproc.cases`, which moves `Person.last_assigned_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping

from mailproc import db
from mailproc.availability import Schedule, Window, describe_days
from mailproc.config import AgentConfig, Config, TeamConfig
from mailproc.models import Person, Team, TeamMember, aware

# A case in one of these is off the agent's desk; every other status counts as open.
CLOSED_STATUSES = ("resolved", "pending_closure", "closed")
RULE_AVAILABLE = "assignment:available"
RULE_NEXT_WINDOW = "assignment:next-window"


@dataclass(frozen=True)
class Agent:
    """An agent of the roster with their working time resolved."""
    config: AgentConfig
    schedule: Schedule

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def address(self) -> str:
        return self.config.address

    @property
    def teams(self) -> tuple[str, ...]:
        return self.config.teams


@dataclass(frozen=True)
class Roster:
    agents: tuple[Agent, ...]
    teams: tuple[TeamConfig, ...]

    def agent(self, name: str) -> Agent | None:
        return next((a for a in self.agents if a.name == name), None)

    def by_address(self, address: str) -> Agent | None:
        address = (address or "").strip().lower()
        return next((a for a in self.agents if a.address.lower() == address), None)

    def team_agents(self, team: str) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if team in a.teams)


@dataclass(frozen=True)
class Choice:
    """Whom a new case goes to, the rule behind it (recorded in `decided_by`), and when
    the agent's window starts (the arrival itself when they are at work)."""
    agent: Agent
    rule: str
    starts_at: datetime


def calendar_schedule(calendar) -> Schedule:
    """The business calendar (businesstime.BusinessCalendar, rules/sla.toml) as a schedule:
    its days, hours, holidays and time zone (the installation's)."""
    windows = tuple(Window(days=frozenset(calendar.working_days), start=start,
                           minutes=(end.hour * 60 + end.minute) - (start.hour * 60 + start.minute))
                    for start, end in calendar.windows)
    hours = ", ".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in calendar.windows)
    text = f"business hours ({describe_days(frozenset(calendar.working_days))} {hours})"
    return Schedule(tz=calendar.tz, windows=windows, text=text, holidays=frozenset(calendar.holidays))


def teams_in_rules(rules) -> list[str]:
    """The team names the rules route to (classification.toml's types, routing.toml)."""
    names = [t.team for t in rules.classification.types.values()]
    names += [route.team for route in rules.routing.rules]
    return list(dict.fromkeys(names))


def build(config: Config, calendar, rule_teams: Iterable[str] = ()) -> Roster:
    """The roster of `config`; agents without `hours` work the business calendar.
    A team the rules name that the config does not know exists with no lead."""
    default = calendar_schedule(calendar)
    agents = tuple(Agent(a, default if a.hours is None else
                         Schedule(tz=a.timezone, windows=a.hours, text=a.hours_text or ""))
                   for a in config.agents)
    teams = {t.name: t for t in config.teams}
    for name in rule_teams:
        teams.setdefault(name, TeamConfig(name=name, lead=None, address=None, configured=False))
    return Roster(agents=agents, teams=tuple(teams.values()))


def from_context(ctx) -> Roster:
    """The roster of a loaded context (config and rules)."""
    return build(ctx.config, ctx.rules.sla.calendar, teams_in_rules(ctx.rules))


def available(agent: Agent, at: datetime) -> bool:
    """Whether `agent` is at work at the aware instant `at`."""
    return agent.schedule.contains(at)


def next_window_start(agent: Agent, after: datetime) -> datetime | None:
    """When `agent`'s next window starts, strictly after `after`; None if never."""
    return agent.schedule.next_start(after)


def choose(team_agents: Iterable[Agent], at: datetime, open_counts: Mapping[str, int],
           last_assigned: Mapping[str, datetime | None]) -> Choice | None:
    """The agent a case arriving at `at` goes to; None for a team with no agents.

    `open_counts` and `last_assigned` are keyed by agent NAME (see `team_load`);
    a missing entry is 0 open cases / never assigned (first in line)."""
    agents = list(team_agents)
    if not agents:
        return None

    def load(agent: Agent) -> tuple:
        last = last_assigned.get(agent.name)
        # never assigned sorts first; aware datetimes compare as instants
        return (open_counts.get(agent.name, 0), last is not None, last.timestamp() if last else 0.0, agent.name)

    at_work = [a for a in agents if available(a, at)]
    if at_work:
        return Choice(min(at_work, key=load), RULE_AVAILABLE, at)
    upcoming = [(start, a) for a in agents if (start := next_window_start(a, at)) is not None]
    if not upcoming:
        return None
    start, agent = min(upcoming, key=lambda pair: (pair[0], load(pair[1])))
    return Choice(agent, RULE_NEXT_WINDOW, start)


def pick(roster: Roster, team: str | None, at: datetime) -> Choice | None:
    """The assignee of a new case of `team` that arrived at `at`: `choose` over the team's
    agents with their current load (one query). Call inside the case's transaction,
    then set the assignee (`person_id`) through `mailproc.cases`."""
    agents = roster.team_agents(team) if team else ()
    if not agents:
        return None
    open_counts, last_assigned = team_load(a.name for a in agents)
    return choose(agents, at, open_counts, last_assigned)


# --- the database ---------------------------------------------------------------------------------

def team_load(names: Iterable[str]) -> tuple[dict[str, int], dict[str, datetime | None]]:
    """(open cases, last assignment) per agent NAME, in one aggregate query; agents not
    synced yet are absent (choose() takes them as 0 open, never assigned)."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}, {}
    marks = ", ".join("?" * len(names))
    closed = ", ".join("?" * len(CLOSED_STATUSES))
    rows = db.query_all(
        f'SELECT p."handle", p."last_assigned_at", COUNT(c."id") FROM "person" p '
        f'LEFT JOIN "cases" c ON c."assignee_id" = p."id" AND c."status" NOT IN ({closed}) '
        f'WHERE p."handle" IN ({marks}) GROUP BY p."id", p."handle", p."last_assigned_at"',
        [*CLOSED_STATUSES, *names])
    last_field = Person._meta.fields["last_assigned_at"]
    counts = {handle: count for handle, _, count in rows}
    last = {handle: aware(last_field.python_value(at)) for handle, at, _ in rows}
    return counts, last


def person_id(name: str) -> int | None:
    """The Person row of agent NAME (for Case.assignee)."""
    row = Person.select(Person.id).where(Person.handle == name).first()
    return row.id if row else None


def sync(roster: Roster) -> dict[str, int]:
    """Make Person, Team and TeamMember say what the roster says; idempotent.

    An agent is found by NAME, else by address (a row from before NAMEs, or
    one whose NAME changed keeps its cases); one no longer in the roster is
    marked inactive, never deleted, so their cases keep their assignee and
    `is_agent` stops answering for them. `last_assigned_at` is left alone.
    Returns what changed: {"added", "updated", "deactivated"}."""
    changed = {"added": 0, "updated": 0, "deactivated": 0}
    with db.transaction():
        db.serialize_messages()  # PostgreSQL: two processes starting together sync one after the other
        teams: dict[str, Team] = {t.name: t for t in Team.select()}
        for tc in roster.teams:
            team = teams.get(tc.name)
            if team is None:
                teams[tc.name] = Team.create(name=tc.name, address=tc.address, lead=tc.lead)
            elif (team.address, team.lead) != (tc.address, tc.lead):
                team.address, team.lead = tc.address, tc.lead
                team.save()
        people = list(Person.select())
        by_handle = {p.handle: p for p in people if p.handle}
        by_address = {p.address.lower(): p for p in people}
        kept: set[int] = set()
        for agent in roster.agents:
            c = agent.config
            person = by_handle.get(c.name) or by_address.get(c.address.lower())
            # another row holding this address (an agent renamed, and another took the old NAME) lets go of it
            holder = by_address.get(c.address.lower())
            if holder is not None and person is not None and holder.id != person.id:
                del by_address[holder.address.lower()]
                holder.address = f"{holder.address}#left-{holder.id}"  # the column is unique
                holder.active = False
                holder.save()
                by_address[holder.address.lower()] = holder
            values = dict(handle=c.name, address=c.address, name=c.display_name,
                          role=",".join(c.roles) or "agent", team=teams[c.teams[0]].id if c.teams else None,
                          tier=c.tier, timezone=c.timezone.key,
                          availability=c.hours_text, active=True)
            if person is None:
                person = Person.create(**values)
                changed["added"] += 1
            elif any((person.team_id if k == "team" else getattr(person, k)) != v for k, v in values.items()):
                by_address.pop(person.address.lower(), None)
                for k, v in values.items():
                    setattr(person, k, v)
                person.save()
                changed["updated"] += 1
            by_address[person.address.lower()] = person
            kept.add(person.id)
            wanted = {teams[t].id for t in c.teams}
            have = {m.team_id for m in TeamMember.select().where(TeamMember.person == person.id)}
            for team_id in wanted - have:
                TeamMember.create(team=team_id, person=person.id)
            if have - wanted:
                TeamMember.delete().where((TeamMember.person == person.id)
                                          & TeamMember.team.in_(list(have - wanted))).execute()
        gone = [p.id for p in people if p.active and p.id not in kept]
        if gone:
            changed["deactivated"] = Person.update(active=False).where(Person.id.in_(gone)).execute()
            TeamMember.delete().where(TeamMember.person.in_(gone)).execute()
    return changed


def listing(roster: Roster, now: datetime) -> list[dict]:
    """`agents list`: each agent, their teams, tier, roles, time zone, window (and the zone
    it is read in: the business calendar's for an agent without `hours`), whether
    at work now, when their next window starts and how many open cases they hold."""
    counts, _ = team_load(a.name for a in roster.agents)
    rows = []
    for agent in roster.agents:
        c = agent.config
        upcoming = next_window_start(agent, now)
        rows.append({
            "name": c.name, "display_name": c.display_name, "address": c.address, "teams": list(c.teams),
            "tier": c.tier, "roles": list(c.roles), "timezone": c.timezone.key,
            "hours": agent.schedule.text, "hours_default": c.hours is None,
            "hours_timezone": getattr(agent.schedule.tz, "key", str(agent.schedule.tz)),
            "available_now": available(agent, now),
            # in the zone of the hours, with its offset: exact for scripts, readable for people
            "next_window_start": upcoming.astimezone(agent.schedule.tz).isoformat() if upcoming else None,
            "open_cases": counts.get(c.name, 0),
        })
    return rows
