"""Known-issue clusters (issue 8, item 3; seed 002): many customers hitting the same problem.

Seed 002: three tickets about the same problem may be a known issue, six call
for on-call at once and a status-page post. The pass (`run`, every daemon
tick after the sweep, and in `run --once`) takes the cases created within
`WINDOW` that are in no cluster yet and compares each, with RapidFuzz, only
with cases of the same type created within the window — never with all
cases, so the cost follows the day's volume. A case joins the cluster of its
best match scoring at least `THRESHOLD`, else it starts its own (size 1).
Everything a pass writes (members, sizes, the mails, `suggested_at` /
`paged_at`) is one transaction.

What is compared (`text_of`): the subject (the case's summary without
"Re:"/"Fwd:") and the first `DESCRIPTION` characters of the text, lower
case, accents folded; of that, the distinct words of 3+ letters that are not
common EN/PT/ES words, cut to their first `STEM` letters (sync/syncing,
falha/falhando) and sorted; two cases score RapidFuzz's `ratio` of those
word lists. Customers describe one problem with the same nouns and the same
error message in another order and with other small words; whole-text
`ratio` scored pairs of the same problem in other words (51-65) below pairs
of different problems (50-81). On the word lists, the pairs of
tests/test_clusters.py (`SAME`, `DIFFERENT`, EN/PT/ES) score 67-89 for the
same problem and 48-61 for different ones; `THRESHOLD` = 64 sits in that
gap. Known to join: two mails alike but for one word that changes the
problem ("export to CSV gives an empty file" / "import from CSV gives an
error", 70) — the leads read a suggestion and ignore it, the cost of a
wrong join; a missed pair only delays a cluster until a third case bridges
them (each case joins its best match among all the window's members).
Mails in different languages match through what they share — the product's
and the error message's words, and PT/ES cognates (sincronização,
sincronización: "sincro") — and not otherwise.

Short mails: "please send me the invoice for March" is send/invoic/march once
the small words are gone, and six routine mails of three words score 63-83
against each other (two empty texts score 100). A case with fewer than
`MIN_WORDS` compared words is therefore left out: it gets a cluster of its own
(size 1, similarity 0, so the pass does not read it again) that nothing is
compared with, so it neither joins a cluster nor lets one form around it.

Which cases: every new case of the window except internal ones (the team's
own, not customers hitting a problem). Cases later merged, split, or closed
as spam stay in their cluster: a cluster is clustered minutes after the mail
arrives, and one that shrank after the leads were told would be harder to
read than a member the report shows as closed.

At `SUGGEST_AT` members the leads (roster agents with a role containing
"lead") get, once (`suggested_at`), a `known_issue_suggestion` mail listing the
cases, each with a mailto link whose reply (tokened to that case and lead)
carries `[known=ID-slug]`: the `known` command tags it. ID is the next free
known-issue number (above every known= in use or suggested). At `PAGE_AT`, for
a cluster of bugs or requests (`PAGED_TYPES`: an outage often arrives as "is the
site down?", which the rules may read as a question; many customers wishing for
the same feature, or asking for the same admin task, is no outage), the agent on
call at `now` is paged, once (`paged_at`), with a `known_issue_page` mail
holding a draft status-page post; with nobody on call the page goes to the leads.
The claims are conditional updates, so two daemons never
mail twice, and a claim stands only when a mail was queued in the same
transaction: with no lead, nobody on call or no mailbox, the claim is undone
(with a warning) and the next pass that adds a case to the cluster tries again.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import peewee as pw
from rapidfuzz import fuzz, process

from mailproc import compose, db, oncall, outbox, reports, tokens
from mailproc.context import Context, roster_of
from mailproc.jobs import _mail
from mailproc.models import TYPE_LABELS, Case, Cluster, ClusterMember, aware, utc
from mailproc.rules.help import normal
from mailproc.subject import _strip_prefixes

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)  # new cases are compared with the cases of this long before them
THRESHOLD = 64.0  # 0-100, see the module's docstring
DESCRIPTION = 300  # characters of the text compared, after the subject
STEM = 6  # letters of each word kept
SUGGEST_AT = 3  # seed 002: 3 tickets — suggest a known issue
PAGE_AT = 6  # seed 002: 6 tickets — page on-call at once, post on the status page
PAGED_TYPES = ("bug", "request")  # cluster types that page on-call (others: the leads' suggestion only)
MIN_WORDS = 4  # compared words a case needs to take part, see the module's docstring
MAX_PER_PASS = 5000  # new cases taken by one pass; the rest wait for the next tick
CASES_LISTED = 50  # in one mail

_WORD = re.compile(r"\w+")
# Words every mail has in EN/PT/ES (accents folded, as `normal` leaves them): they say
# nothing about the problem and would make any two short mails look alike.
STOPWORDS = frozenset(normal("""
    the and for with our not you your are was were this that have has from but all any can cant can't dont don't
    doesnt won't wont since when into just then them they their there what which will would could should been
    being about after again also some than very more most only other such here hello dear thanks thank regards
    please support team morning today yesterday anymore now get got still keep keeps does did its it's
    que com para por uma umas uns nos não sao são dos das como mais mas foi está esta isso este essa desde hoje
    olá obrigado obrigada bom dia manhã tarde aparece aqui ainda tem ter estou estamos meu minha nosso nossa
    los las del con una unos unas hoy hola gracias buenos buenas días esta este esto pero muy sale mañana
    tengo tenemos nuestro nuestra sigue ahora saludos favor ayuda
""").split())

_SLUG = re.compile(r"[a-z0-9]+")
_KNOWN_NUMBER = re.compile(r"(\d{1,9})-")


@dataclass
class Found:
    """What one pass did: cases clustered, clusters opened, and the clusters that
    crossed `SUGGEST_AT` (leads mailed) and `PAGE_AT` (on-call paged)."""
    joined: list[tuple[int, int]] = field(default_factory=list)  # (case, cluster) of cases that joined one
    opened: list[int] = field(default_factory=list)  # clusters started
    suggested: list[int] = field(default_factory=list)
    paged: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.joined) + len(self.opened)


def text_of(summary: str, description: str) -> str:
    """What two cases are compared by: see the module's docstring."""
    raw = normal(f"{_strip_prefixes(summary or '')} {(description or '')[:DESCRIPTION]}")
    return " ".join(sorted({w[:STEM] for w in _WORD.findall(raw) if len(w) >= 3 and w not in STOPWORDS}))


def comparable(text: str) -> bool:
    """Has `text` (a `text_of`) enough words to be compared with others?"""
    return text.count(" ") + 1 >= MIN_WORDS if text else False


def score(a: str, b: str) -> float:
    """Similarity 0-100 of two cases' `text_of`."""
    return fuzz.ratio(a, b)


def _new_cases(since: datetime, now: datetime) -> list[tuple]:
    """(id, type, summary, start of description, created_at) of the window's cases in no cluster."""
    return list(Case.select(Case.id, Case.type, Case.summary, pw.fn.SUBSTR(Case.description, 1, DESCRIPTION),
                            Case.created_at)
                .join(ClusterMember, pw.JOIN.LEFT_OUTER, on=(ClusterMember.case == Case.id))
                .where((Case.created_at >= utc(since)) & (Case.created_at <= utc(now))
                       & (Case.internal == False) & ClusterMember.id.is_null())  # noqa: E712
                .order_by(Case.created_at, Case.id).limit(MAX_PER_PASS).tuples())


def _members(since: datetime, types: list[str]) -> list[tuple]:
    """(cluster, type, summary, start of description) of the window's clustered cases."""
    return list(ClusterMember.select(ClusterMember.cluster, Case.type, Case.summary,
                                     pw.fn.SUBSTR(Case.description, 1, DESCRIPTION))
                .join(Case).where((Case.created_at >= utc(since)) & Case.type.in_(types)).tuples())


def run(ctx: Context, now: datetime) -> Found:
    """One pass at `now`; see the module's docstring."""
    found = Found()
    since = now - WINDOW
    with db.transaction():
        new = _new_cases(since, now)
        if not new:
            return found
        types = sorted({row[1] for row in new})
        texts: dict[str, list[str]] = defaultdict(list)  # type -> texts compared with
        owners: dict[str, list[int]] = defaultdict(list)  # type -> the cluster of each text
        for cluster_id, kind, summary, description in _members(since, types):
            text = text_of(summary, description)
            if comparable(text):
                texts[kind].append(text)
                owners[kind].append(cluster_id)
        grown: dict[int, tuple[int, datetime]] = {}  # cluster -> (members added, newest creation)
        members = []
        for case_id, kind, summary, description, created in new:
            text = text_of(summary, description)
            if not comparable(text):  # a cluster of its own, never compared: see the docstring
                cluster_id = db.insert(Cluster, type=kind, opened_at=created, last_at=created, size=1,
                                       summary=(summary or "")[:500])
                members.append(dict(cluster=cluster_id, case=case_id, similarity=0.0, added_at=utc(now)))
                continue
            best = process.extractOne(text, texts[kind], scorer=fuzz.ratio, processor=None,
                                      score_cutoff=THRESHOLD) if texts[kind] else None
            if best is not None:
                cluster_id, similarity = owners[kind][best[2]], float(best[1])
                added, _ = grown.get(cluster_id, (0, created))
                grown[cluster_id] = (added + 1, created)
                found.joined.append((case_id, cluster_id))
            else:
                cluster_id, similarity = db.insert(Cluster, type=kind, opened_at=created, last_at=created, size=1,
                                                   summary=(summary or "")[:500]), 100.0
                found.opened.append(cluster_id)
            members.append(dict(cluster=cluster_id, case=case_id, similarity=similarity, added_at=utc(now)))
            texts[kind].append(text)
            owners[kind].append(cluster_id)
        db.insert_many(ClusterMember, members)
        for cluster_id, (added, newest) in grown.items():
            last = pw.Case(None, [(Cluster.last_at < utc(newest), utc(newest))], Cluster.last_at)
            Cluster.update(size=Cluster.size + added, last_at=last).where(Cluster.id == cluster_id).execute()
        for cluster_id in grown:
            _announce(ctx, cluster_id, now, found)
    if found.suggested or found.paged:
        log.info("clusters: suggested %s, paged %s", found.suggested, found.paged)
    return found


def _claim(cluster_id: int, column: pw.Field, size: int, now: datetime) -> bool:
    """Set `column` (suggested_at / paged_at) to `now` if the cluster has `size`+ members and it
    is not set yet: True for the one pass that set it (the row stays locked to the pass's end)."""
    return Cluster.update({column: utc(now)}).where(
        (Cluster.id == cluster_id) & column.is_null() & (Cluster.size >= size)).execute() == 1


def _unclaim(cluster_id: int, column: pw.Field) -> None:
    """Undo `_claim` when nothing could be mailed: the claim is owed to a later pass."""
    Cluster.update({column: None}).where(Cluster.id == cluster_id).execute()


def _announce(ctx: Context, cluster_id: int, now: datetime, found: Found) -> None:
    if _claim(cluster_id, Cluster.suggested_at, SUGGEST_AT, now):
        if suggest(ctx, Cluster.get_by_id(cluster_id), now):
            found.suggested.append(cluster_id)
        else:
            _unclaim(cluster_id, Cluster.suggested_at)
    cluster = Cluster.get_by_id(cluster_id)
    if cluster.type in PAGED_TYPES and _claim(cluster_id, Cluster.paged_at, PAGE_AT, now):
        if page(ctx, cluster, now):
            found.paged.append(cluster_id)
        else:
            _unclaim(cluster_id, Cluster.paged_at)


def slug(summary: str) -> str:
    """A couple of words of the summary for known=ID-slug (seed 002: "123-calendar-sync")."""
    words = [w for w in _SLUG.findall(normal(_strip_prefixes(summary or "")))
             if len(w) >= 3 and w not in STOPWORDS and not w.isdigit()]
    return "-".join(words[:3])[:40].strip("-") or "issue"


def next_known_id() -> int:
    """One above every known-issue number in use on a case or suggested for a cluster."""
    used = [v for (v,) in Case.select(Case.known_issue).where(Case.known_issue.is_null(False))
            .distinct().tuples()]
    used += [v for (v,) in Cluster.select(Cluster.known).where(Cluster.known.is_null(False)).tuples()]
    numbers = [int(m.group(1)) for v in used if (m := _KNOWN_NUMBER.match(v))]
    return max(numbers, default=0) + 1


def _cases(cluster: Cluster) -> list[Case]:
    # by member: each pass adds cases oldest first; ordered by the case's creation, SQLite walks
    # every case by that index looking for the cluster's
    # only what the mails show (not the description)
    return list(Case.select(Case.id, Case.summary, Case.contact, Case.created_at, Case.status, Case.mailbox)
                .join(ClusterMember).where(ClusterMember.cluster == cluster.id)
                .order_by(ClusterMember.id).limit(CASES_LISTED))


def _listed(ctx: Context, cases: list[Case], known: str, agent_name: str | None, now: datetime,
            mailbox: str) -> list[dict[str, Any]]:
    """The cases as a mail lists them; with `agent_name`, each with a mailto link whose reply
    (tokened to the case and that agent) tags the case known=`known`."""
    keys = ctx.config.token_keys
    out = []
    for case in cases:
        token = ctx.config.case_token.format(number=case.id)
        summary = compose.unlinked(case.summary or "(no subject)")
        subject = f"Re: {token} {summary} [known={known}]"
        mailto = None
        if agent_name is not None and keys:
            address = tokens.reply_address(tokens.make(case.id, agent_name, now, keys[0]), mailbox)
            mailto = f"mailto:{address}?subject={quote(subject, safe='')}"
        out.append(dict(number=case.id, token=token, summary=summary, contact=case.contact,
                        created_at=aware(case.created_at), status=case.status, subject=subject, mailto=mailto))
    return out


def _common(ctx: Context, cluster: Cluster, cases: list[Case], known: str) -> dict[str, Any]:
    return dict(cluster_id=cluster.id, size=cluster.size, known=known,
                type_label=TYPE_LABELS.get(cluster.type, cluster.type),
                summary=compose.unlinked(cluster.summary or "(no subject)"),
                opened_at=aware(cluster.opened_at), last_at=aware(cluster.last_at),
                suggest_at=SUGGEST_AT, page_at=PAGE_AT)


def suggest(ctx: Context, cluster: Cluster, now: datetime) -> int:
    """Mail each lead the `known_issue_suggestion` of `cluster`; how many were queued."""
    cases = _cases(cluster)
    known = f"{next_known_id()}-{slug(cluster.summary)}"
    Cluster.update(known=known).where(Cluster.id == cluster.id).execute()
    box = _mail.mailbox_of(ctx, cases[0]) if cases else None
    leads = reports.leads(ctx)
    if box is None or not leads:
        log.warning("cluster %d: %s", cluster.id, "no mailbox to send from" if box is None else "no lead to tell")
        return 0
    return _mail_each(ctx, "known_issue_suggestion", leads, cluster, cases, known, box.address, now)


def status_post(cluster: Cluster, cases: list[Case]) -> str:
    """A draft status-page post: what customers see, nothing of theirs in it."""
    return (f"We are investigating reports of a problem: {compose.unlinked(cluster.summary or 'a service issue')}. "
            f"Some customers may be affected. We will post an update as soon as we know more.")


def page(ctx: Context, cluster: Cluster, now: datetime) -> int:
    """Page the agent on call at `now` with the `known_issue_page` of `cluster`, else (nobody on
    call) each lead; how many were queued (0: nobody to page or no mailbox)."""
    settings = oncall.settings(ctx.config)
    cases = _cases(cluster)
    box = _mail.mailbox_of(ctx, cases[0]) if cases else None
    name = oncall.on_call(settings, ctx.config.timezone, now) if settings else None
    agent = roster_of(ctx).agent(name) if name else None
    paged = [agent] if agent is not None else reports.leads(ctx)
    if not paged or box is None:
        log.warning("cluster %d: %s", cluster.id, "nobody on call and no lead: not paged" if not paged
                    else "no mailbox to send from")
        return 0
    if agent is None:
        log.warning("cluster %d: nobody is on call: the leads are paged", cluster.id)
    known = cluster.known or f"{next_known_id()}-{slug(cluster.summary)}"
    return _mail_each(ctx, "known_issue_page", paged, cluster, cases, known, box.address, now,
                      status_post=status_post(cluster, cases), on_call=agent is not None)


def _mail_each(ctx: Context, kind: str, people: list, cluster: Cluster, cases: list[Case], known: str,
               mailbox: str, now: datetime, **extra: Any) -> int:
    """Queue `kind` about `cluster` to each agent of `people`, in their zone and with reply
    links tokened to them; how many were queued."""
    sent = 0
    for person in people:
        tz = person.config.timezone
        context = dict(_common(ctx, cluster, cases, known), tz=tz, now=now.astimezone(tz),
                       agent_name=compose.printable_line(person.config.display_name or person.name, compose.MAX_NAME),
                       cases=_listed(ctx, cases, known, person.name, now, mailbox),
                       tokens_off=not ctx.config.token_keys, **extra)
        if outbox.render_and_queue(ctx, kind=kind, case=None, to=person.address, mail_from=mailbox,
                                   context=context, in_reply_to=None, references=[], now=now, automatic=False,
                                   reply=False, auto_submitted="auto-generated"):
            sent += 1
    return sent
