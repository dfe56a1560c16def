"""Missing docs (issue 8, item 4; seed 002): agents writing the same answer again and again.

Seed 002: when three agents (or one agent three times) answer different
customers with the same text, the answer belongs in a help article. So the
relay records every agent answer (`record`: an `answer` row, the text bounded
to `TEXT_LIMIT`), marked `documented` when it links an article of
rules/help.toml — an answer that points to the article is what we want, not a
gap. The link is looked for in the new text and in the hrefs of the reply's
HTML part (`linked`): a mail client's HTML-only answer shows "see this article"
with the URL only in the href, which the text taken from the HTML does not keep.
Quoted parts (<blockquote>, and what follows a client's quote header block) are
not the agent's answer and are skipped.

Each undocumented answer is compared ONCE, when recorded, with the undocumented
answers of the last `WINDOW` (RapidFuzz `ratio` on normalized text at or above
`THRESHOLD`): it takes the group (`group_id`) of its best match, else starts its
own (its own id). `find(start, end)` is then an aggregate: the groups with answers
on `MIN_CASES`+ different cases among the window's undocumented answers, and one
query for their examples. A documented answer has no group: it neither counts nor
anchors one. An answer older than `WINDOW` when a new one is recorded is not compared,
so it anchors nothing; a group may still carry an old first answer's id as its label
when the chain of near-identical answers between them stayed within the window, but
`find` counts only the answers inside its window.

Why `ratio` at 85: a reused answer differs by the greeting's name, a case
number, a date or a typo fixed — a few per cent of a 200-character text
(tests/test_missing_docs.py: 92-97); two different answers on one subject
("clear the cache and reload" / "reinstall the app") share words but not
their order, and score 50-70. `ratio` (not `partial_ratio` or token sets)
because a short answer inside a long one is not the same answer.

Cost of `record`, bounded: ratio = 2·matches / (len a + len b), so `THRESHOLD`
bounds the length ratio; only the window's undocumented answers whose compared
length (`size`) is within that ratio are read, the newest `CANDIDATES` of them (the
(at, size) index: walked from the newest, the length checked in the index), and
compared in C (`process.extractOne` with the cutoff). The compared text is stored,
so no candidate is normalized again. A repeated answer whose previous copies are
all older than the newest `CANDIDATES` of its length band starts a new group; at
the benchmark's 50,000 answers a month that is about a day of the band.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from rapidfuzz import fuzz, process

from peewee import fn

from mailproc import db
from mailproc.context import Context
from mailproc.models import Answer, Case, Message, iso, utc
from mailproc.rules.help import normal

WINDOW = timedelta(days=30)  # the digest looks back this far for repeated answers
TEXT_LIMIT = 2000  # characters of an answer kept
COMPARED = 600  # characters of the normalized answer compared: the substance is at the start
THRESHOLD = 85.0
MIN_CASES = 3  # seed 002: "three duplicate answers means a doc is missing"
CANDIDATES = 2000  # answers of the length band a new answer is compared with, the newest
EXAMPLES = 5
EXCERPT = 200
_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
HTML_READ = 200_000  # characters of a reply's HTML searched for article links
# Where mail clients start the quoted mail below a reply: Gmail, Thunderbird, Outlook (web, desktop), Yahoo, Apple
_QUOTE_MARKS = re.compile(r"gmail_quote|moz-cite-prefix|divRplyFwdMsg|appendonsend|OutlookMessageHeader|"
                          r"yahoo_quoted|AppleOriginalContents", re.IGNORECASE)


def url_key(url: str) -> str:
    """A URL as compared with an article's: no scheme, host lower-case without `www.`,
    no query or fragment, no trailing slash — `https://Help.example.com/a/?utm=x` is
    `http://help.example.com/a`."""
    parts = urlsplit(url.strip().rstrip(".,;:!?"))
    host = parts.netloc.lower().removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}"


def documented(ctx: Context, text: str) -> bool:
    """Does `text` link one of rules/help.toml's articles?"""
    articles = {url_key(a.url) for a in ctx.rules.help.articles}
    return bool(articles) and any(url_key(u) in articles for u in _URL.findall(text))


class _Hrefs(HTMLParser):
    """The hrefs of <a> elements outside quotes, up to the first quote mark of a mail client."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.quoted = 0  # <blockquote> depth
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        found = dict(attrs)
        if _QUOTE_MARKS.search(f"{found.get('class') or ''} {found.get('id') or ''}"):
            self.done = True
        elif tag == "blockquote":
            self.quoted += 1
        elif tag == "a" and not self.quoted and found.get("href"):
            self.hrefs.append(found["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self.quoted = max(0, self.quoted - 1)


def linked(ctx: Context, html: str) -> bool:
    """Does the reply's own part of `html` (not what it quotes) link one of rules/help.toml's articles?"""
    articles = {url_key(a.url) for a in ctx.rules.help.articles}
    if not articles or not html:
        return False
    parser = _Hrefs()
    try:
        parser.feed(html[:HTML_READ])
        parser.close()
    except Exception:  # HTMLParser is lenient; keep what was read
        pass
    return any(url_key(h) in articles for h in parser.hrefs if _URL.match(h.strip()))


def record(ctx: Context, case: Case, *, actor: str, text: str, now: datetime,
           message: Message | None = None, html: str = "") -> Answer:
    """Keep the agent's answer on `case` (in the caller's transaction), in the group of its best
    near-identical match of the last `WINDOW` if undocumented; `html` is the reply's HTML part,
    if it has one (its article links count, see the module's docstring)."""
    text = text[:TEXT_LIMIT]
    compared = _compared(text)
    is_documented = documented(ctx, text) or linked(ctx, html)
    group = None if is_documented else match(compared, now)
    row = Answer.create(case=case, actor=actor.lower(), at=utc(now), text=text, documented=is_documented,
                        message=message, compared=compared, size=len(compared), group_id=group)
    if not is_documented and group is None:
        db.update(Answer, row.id, group_id=row.id)
        row.group_id = row.id
    return row


def _compared(text: str) -> str:
    return normal(text)[:COMPARED]


def band(size: int) -> tuple[int, int]:
    """Compared lengths that can score `THRESHOLD` with one of `size`: ratio ≤ 200·shorter /
    (shorter + longer), so the longer is at most (200 - T) / T of the shorter (one character
    of slack each side against rounding)."""
    factor = (200 - THRESHOLD) / THRESHOLD
    return max(0, math.floor(size / factor) - 1), math.ceil(size * factor) + 1


def candidates(compared: str, now: datetime):
    """The query of the undocumented answers a new one is compared with: the newest `CANDIDATES`
    of the last `WINDOW` in its length band (group id, compared text)."""
    low, high = band(len(compared))
    return (Answer.select(Answer.group_id, Answer.compared)
            .where((Answer.at >= utc(now - WINDOW)) & (Answer.size >= low) & (Answer.size <= high)
                   & (Answer.documented == False))  # noqa: E712
            .order_by(Answer.at.desc()).limit(CANDIDATES))


def match(compared: str, now: datetime) -> int | None:
    """The group of the best near-identical undocumented answer of the last `WINDOW`, if any."""
    if not compared:
        return None
    rows = list(candidates(compared, now).tuples())
    if not rows:
        return None
    best = process.extractOne(compared, [r[1] for r in rows], scorer=fuzz.ratio, score_cutoff=THRESHOLD)
    return rows[best[2]][0] if best is not None else None


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT - 1].rstrip() + "…"


def groups(start: datetime, end: datetime):
    """The query of the groups of [start, end) with undocumented answers on `MIN_CASES`+ different
    cases: (group id, cases, answers, first at, last at); the (at, size) index serves the range."""
    cases = fn.COUNT(Answer.case.distinct())
    return (Answer.select(Answer.group_id, cases, fn.COUNT(Answer.id), fn.MIN(Answer.at), fn.MAX(Answer.at))
            .where((Answer.at >= utc(start)) & (Answer.at < utc(end)) & (Answer.documented == False)  # noqa: E712
                   & Answer.group_id.is_null(False))
            .group_by(Answer.group_id).having(cases >= MIN_CASES))


# The first answer of each case in each group (oldest first), at most `EXAMPLES` a group.
_EXAMPLES = """
SELECT "group_id", "case_id", "actor", "at", "text" FROM (
  SELECT "group_id", "case_id", "actor", "at", "text", "id",
         ROW_NUMBER() OVER (PARTITION BY "group_id" ORDER BY "at", "id") AS "k"
  FROM (SELECT "group_id", "case_id", "actor", "at", "text", "id",
               ROW_NUMBER() OVER (PARTITION BY "group_id", "case_id" ORDER BY "at", "id") AS "r"
        FROM "answer" WHERE "group_id" IN ({ids}) AND "at" >= ? AND "at" < ? AND "documented" = ?) AS "a"
  WHERE "r" = 1) AS "b"
WHERE "k" <= ? ORDER BY "group_id", "at", "id"
"""


def find(start: datetime | None = None, end: datetime | None = None) -> list[dict[str, Any]]:
    """Undocumented answers in [start, end) (default: `WINDOW` up to `end`) repeated
    near-identically on `MIN_CASES`+ different cases, most cases first: one aggregate
    query over the groups `record` assigned, and one for the found groups' examples.

    Each item: {"answers": int, "cases": int (distinct), "excerpt": str (the oldest answer's),
    "first_at": ISO, "last_at": ISO, "examples": [{"case": int, "agent": str,
    "at": ISO, "excerpt": str}] (one per case, oldest first, at most `EXAMPLES`)}."""
    if end is None:
        raise ValueError("find needs the end of the window")
    start = start if start is not None else end - WINDOW
    found = {g: (n_cases, n_answers, first, last)
             for g, n_cases, n_answers, first, last in groups(start, end).tuples()}
    if not found:
        return []
    sql = _EXAMPLES.format(ids=", ".join("?" * len(found)))
    examples: dict[int, list[dict[str, Any]]] = defaultdict(list)
    texts: dict[int, str] = {}
    for a in db.raw(Answer, sql, [*found, utc(start), utc(end), False, EXAMPLES]):
        texts.setdefault(a.group_id, a.text)
        examples[a.group_id].append({"case": a.case_id, "agent": a.actor, "at": iso(a.at, "seconds"),
                                     "excerpt": _excerpt(a.text)})
    items = [{"answers": n_answers, "cases": n_cases, "excerpt": _excerpt(texts.get(g, "")),
              "first_at": iso(first, "seconds"), "last_at": iso(last, "seconds"), "examples": examples[g]}
             for g, (n_cases, n_answers, first, last) in found.items()]
    items.sort(key=lambda d: (-d["cases"], -d["answers"], d["first_at"]))
    return items

