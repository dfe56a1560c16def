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
not the agent's answer and are skipped. `find(start, end)` groups the undocumented answers of the window that
are near-identical (RapidFuzz `ratio` on normalized text at or above
`THRESHOLD`) and reports a group spanning 3+ different cases.

Why `ratio` at 85: a reused answer differs by the greeting's name, a case
number, a date or a typo fixed — a few per cent of a 200-character text
(tests/test_missing_docs.py: 92-97); two different answers on one subject
("clear the cache and reload" / "reinstall the app") share words but not
their order, and score 50-70. `ratio` (not `partial_ratio` or token sets)
because a short answer inside a long one is not the same answer.

Cost: only the window's undocumented answers are read (the `answer.at`
index), at most `MAX_ANSWERS` of the newest, and only answers whose lengths
allow the threshold are compared: ratio = 2·matches / (len a + len b), so
`THRESHOLD` bounds the length ratio; answers are put in length bands of that
ratio and each band is compared (`process.extract`, in C) with itself and the next.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from html.parser import HTMLParser
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from rapidfuzz import fuzz, process

from mailproc.context import Context
from mailproc.models import Answer, Case, Message, aware, utc
from mailproc.rules.help import normal

WINDOW = timedelta(days=30)  # the digest looks back this far for repeated answers
TEXT_LIMIT = 2000  # characters of an answer kept
COMPARED = 600  # characters of the normalized answer compared: the substance is at the start
THRESHOLD = 85.0
MIN_CASES = 3  # seed 002: "three duplicate answers means a doc is missing"
MAX_ANSWERS = 20000
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
    """Keep the agent's answer on `case` (in the caller's transaction); `html` is the reply's
    HTML part, if it has one (its article links count, see the module's docstring)."""
    text = text[:TEXT_LIMIT]
    return Answer.create(case=case, actor=actor.lower(), at=utc(now), text=text,
                         documented=documented(ctx, text) or linked(ctx, html), message=message)


def _compared(text: str) -> str:
    return normal(text)[:COMPARED]


def _bands(texts: list[str]) -> dict[int, list[int]]:
    """Indices of `texts` by length band: two texts can score THRESHOLD only if the
    shorter is at least `THRESHOLD / (200 - THRESHOLD)` of the longer, so with bands that
    wide a text's match is in its own band or the next."""
    width = math.log((200 - THRESHOLD) / THRESHOLD)
    bands: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(texts):
        bands[int(math.log(max(len(t), 1)) / width)].append(i)
    return bands


def _groups(texts: list[str]) -> list[list[int]]:
    """Connected groups (2+) of near-identical texts."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    bands = _bands(texts)
    for band, rows in bands.items():
        cols = rows + bands.get(band + 1, [])
        choices = [texts[j] for j in cols]
        for a, i in enumerate(rows):
            # the band's later rows and the next band: each pair once
            for _, _, b in process.extract(texts[i], choices[a + 1:], scorer=fuzz.ratio,
                                           score_cutoff=THRESHOLD, limit=None):
                parent[root(i)] = root(cols[a + 1 + b])
    found: dict[int, list[int]] = defaultdict(list)
    for i in range(len(texts)):
        found[root(i)].append(i)
    return [g for g in found.values() if len(g) > 1]


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT - 1].rstrip() + "…"


def find(start: datetime | None = None, end: datetime | None = None) -> list[dict[str, Any]]:
    """Undocumented answers in [start, end) (default: `WINDOW` up to `end`) repeated
    near-identically on `MIN_CASES`+ different cases, most cases first.

    Each item: {"answers": int, "cases": int (distinct), "excerpt": str,
    "first_at": ISO, "last_at": ISO, "examples": [{"case": int, "agent": str,
    "at": ISO, "excerpt": str}] (one per case, oldest first, at most `EXAMPLES`)}."""
    if end is None:
        raise ValueError("find needs the end of the window")
    start = start if start is not None else end - WINDOW
    rows = list(Answer.select(Answer.id, Answer.case, Answer.actor, Answer.at, Answer.text)
                .where((Answer.at >= utc(start)) & (Answer.at < utc(end)) & (Answer.documented == False))  # noqa: E712
                .order_by(Answer.at.desc(), Answer.id.desc()).limit(MAX_ANSWERS).tuples())
    if len(rows) < MIN_CASES:
        return []
    rows.reverse()  # oldest first
    texts = [_compared(r[4]) for r in rows]
    items = []
    for group in _groups(texts):
        answers = [rows[i] for i in sorted(group)]
        per_case: dict[int, tuple] = {}
        for a in answers:
            per_case.setdefault(a[1], a)
        if len(per_case) < MIN_CASES:
            continue
        examples = [{"case": a[1], "agent": a[2], "at": aware(a[3]).isoformat(timespec="seconds"),
                     "excerpt": _excerpt(a[4])} for a in list(per_case.values())[:EXAMPLES]]
        items.append({"answers": len(answers), "cases": len(per_case), "excerpt": _excerpt(answers[0][4]),
                      "first_at": aware(answers[0][3]).isoformat(timespec="seconds"),
                      "last_at": aware(answers[-1][3]).isoformat(timespec="seconds"),
                      "examples": examples})
    items.sort(key=lambda d: (-d["cases"], -d["answers"], d["first_at"]))
    return items
