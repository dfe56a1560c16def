"""rules/help.toml: the help articles, and which of them a new mail is asking about.

Each article has a title, a URL and phrases in the languages customers write
in (EN/PT/ES): what someone who needs the article would write ("reset my
password", "esqueci a senha", "olvidé mi contraseña"). A mail is compared
with every phrase by RapidFuzz's `partial_ratio` — the best alignment of the
phrase inside the text, so a phrase found whole scores 100 and one found
with a typo or a changed ending scores a little less — after both are put in
lower case without accents. An article's score is its best phrase's; the
acknowledgement suggests the best articles at or above `threshold`, at most
`limit` of them. Only the subject and the start of the text are read: the
question is there, and the cost stays bounded for a long mail.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rapidfuzz import fuzz

from mailproc.rules.reader import TomlTable

READ_LIMIT = 2000  # characters of the mail's text compared with the phrases
_WORD = re.compile(r"\w+")


def normal(text: str) -> str:
    """Lower case, accents removed, whitespace runs made one space."""
    text = text.casefold()
    if not text.isascii():  # most mail is: no character-by-character pass for it
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(text.split())


@dataclass(frozen=True)
class Article:
    title: str
    url: str
    phrases: tuple[str, ...]  # normalized

    @cached_property
    def words(self) -> tuple[frozenset[str], ...]:
        """Each phrase's words of 3+ letters: a phrase none of whose words is in the mail is
        not compared at all (a help centre has hundreds of phrases; a mail shares a few)."""
        return tuple(frozenset(w for w in _WORD.findall(phrase) if len(w) >= 3) for phrase in self.phrases)


@dataclass(frozen=True)
class HelpArticles:
    articles: tuple[Article, ...] = ()
    threshold: float = 90.0  # 0-100: how well a phrase must be found
    limit: int = 3

    def suggest(self, subject: str, text: str) -> list[Article]:
        """The articles the mail is asking about, best first (at most `limit`)."""
        if not self.articles:
            return []
        haystack = normal(f"{subject}\n{text[:READ_LIMIT]}")
        present = set(_WORD.findall(haystack))
        scored = []
        for order, article in enumerate(self.articles):
            best = max((fuzz.partial_ratio(phrase, haystack, score_cutoff=self.threshold)
                        for phrase, words in zip(article.phrases, article.words) if words & present or not words),
                       default=0.0)
            if best >= self.threshold:
                scored.append((-best, order, article))
        return [article for _, _, article in sorted(scored)[:self.limit]]


HELP_KEYS = ("threshold", "limit", "article")
ARTICLE_KEYS = ("title", "url", "phrases")


def load_help(path: Path) -> HelpArticles:
    root = TomlTable.read(path)
    root.check_keys(HELP_KEYS)
    threshold = root.data.get("threshold", 90)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 50 <= threshold <= 100:
        raise root.error("threshold", "must be a number from 50 to 100 (how well a phrase must be found; "
                                      "100: word for word)")
    limit = root.int("limit", 3)
    if limit is None or not 1 <= limit <= 10:
        raise root.error("limit", "must be a whole number from 1 to 10")
    articles = []
    for table in root.tables("article"):
        table.check_keys(ARTICLE_KEYS, required=ARTICLE_KEYS)
        url = table.need_str("url")
        if not url.startswith(("https://", "http://")):
            raise table.error("url", f"not a web address: {url!r} (write https://…)")
        phrases = tuple(normal(p) for p in table.str_list("phrases") if p.strip())
        if not phrases:
            raise table.error("phrases", "needs at least one phrase")
        too_short = next((p for p in phrases if len(p) < 4), None)
        if too_short is not None:
            raise table.error("phrases", f"{too_short!r} is too short to tell one mail from another")
        articles.append(Article(title=table.need_str("title"), url=url, phrases=phrases))
    return HelpArticles(articles=tuple(articles), threshold=float(threshold), limit=limit)
