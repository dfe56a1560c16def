"""The return date an out-of-office reply states, in English, Portuguese or Spanish.

"I am out of the office until Monday, December 7", "Estarei ausente até 15 de
dezembro", "De volta a 7/12", "regreso el 7 de diciembre", "back in 10 days":
the act stage sets the case's `away_until` from it, and the customer reminders
wait for that day (jobs/statuses.py, still_looking.py); status and owner stay.

Decisions, each leaning towards finding no date rather than a wrong one:
- Only the new text counts (the quoted original mail below an auto-reply is cut,
  with replytext and a few header lines of our own), and in it only a date right
  after a return phrase (until, back, returning, até, regresso, volta, retorno,
  hasta, vuelta, a partir de...): the date a mail was sent, or one the customer
  mentioned in the quoted text, is not a return date.
- A date is kept only if it is after the reply arrived and at most 90 days later
  (MAX_AHEAD): a return date in the past or half a year away is a typo, a stale
  message, or not a return date at all. The first date kept wins.
- A date without a time means the start of that day; a stated time ("back on
  Monday at 14:00") is kept. Both are read in the desk's time zone (`tz`): the
  sender's own zone is not known.
- Numeric dates: Portuguese and Spanish text is day first (7/12 = 7 December).
  English text is read both ways: if only one reading falls in the window above
  it wins; if both do, month first when the desk's time zone is in the Americas
  (America/...), day first elsewhere. yyyy-mm-dd is always ISO. A date without
  a year is the next one to come.
- Words are read by `dateparser` (a well-kept parser that knows month and
  weekday names and relative phrases in many languages), in the language of the
  phrase that was found; it is imported when first needed (it takes a while).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from mailproc import replytext

MAX_AHEAD = timedelta(days=90)
SNIPPET = 80  # characters after a return phrase in which its date must be

EN, PT, ES = "en", "pt", "es"
# A return phrase and the languages its date is read in.
_PHRASES: list[tuple[str, tuple[str, ...]]] = [
    (r"\b(?:until|till|through|thru)\b", (EN,)),
    (r"\b(?:back|return|returns|returning|be in the office|available again)\b(?:\s+(?:to|in)\s+the\s+office)?"
     r"(?:\s+(?:on|by|from)\b)?", (EN,)),
    (r"\baté\b", (PT,)),
    (r"\b(?:regress[oaeá]\w*|volt[oaeá]\w*|retorn\w*|estarei\s+de\s+volta)(?:\s+(?:em|no|na|a)\b)*", (PT, ES)),
    (r"\bhasta\b", (ES,)),
    (r"\b(?:regres[oaeé]\w*|vuelt[oa]|volver\w*|estar[ée]\s+de\s+vuelta)(?:\s+(?:el|en|a|al)\b)*", (ES, PT)),
    (r"\ba\s+partir\s+d[eoa]l?\b", (PT, ES)),
]
_PHRASE = re.compile("|".join(f"(?P<p{i}>{p})" for i, (p, _) in enumerate(_PHRASES)), re.IGNORECASE)

_QUOTE_START = re.compile(
    r"^\s*(?:>|-{2,}\s*(?:original|mensagem original|mensaje original|forwarded)|_{8,}|"
    r"(?:from|sent|de|enviado|enviada|von|envoyé)\s*:|"
    r"(?:on|em|el|le|am)\s.+(?:wrote|escreveu|escribió|a écrit|schrieb)\s*:)",
    re.IGNORECASE)
_NUMERIC = re.compile(r"(?<![\d/.-])(\d{1,4})([/.-])(\d{1,2})(?:\2(\d{2,4}))?(?![\d/]|\.\d)")
_DAY_WORD = re.compile(r"\b(?:n?o\s+)?dia\s+(?=\d)", re.IGNORECASE)
_DAY_ALONE = re.compile(r"^\s*(?:n?o\s+)?dia\s+(\d{1,2})\b(?!\s*(?:de\b|/|-|\.\d))", re.IGNORECASE)
_MONTH_DOT = re.compile(r"\b(jan|feb|fev|mar|apr|abr|jun|jul|aug|ago|sep|sept|set|oct|out|nov|dec|dez|dic)\.",
                        re.IGNORECASE)
_ORDINAL_SIGN = re.compile(r"(?<=\d)[º°ª]")
_TIME = re.compile(r"\d{1,2}(?::\d{2}|h\d{0,2}\b|\s*[ap]\.?\s?m\b)", re.IGNORECASE)


def own_text(text: str) -> str:
    """The reply's own text: above the quote (replytext), and above any line that
    starts a quoted mail which replytext kept (a bottom-posted or odd layout)."""
    kept = []
    for line in replytext.extract_text(text or "").text.splitlines():
        if _QUOTE_START.match(line):
            break
        kept.append(line)
    return "\n".join(kept)


def return_date(text: str, subject: str, received: datetime, tz: tzinfo) -> datetime | None:
    """When the sender of an out-of-office reply is back (aware UTC), or None."""
    local = received.astimezone(tz)
    for source in (own_text(text), subject or ""):
        flat = re.sub(r"[ \t]*\n[ \t]*(?!\n)", " ", source)  # a sentence wrapped over lines is one line
        for match in _PHRASE.finditer(flat):
            languages = _PHRASES[int(match.lastgroup[1:])][1]
            snippet = flat[match.end():match.end() + SNIPPET].split("\n")[0]
            found = _date_in(snippet, languages, local, tz)
            if found is not None:
                return found
    return None


def _in_window(at: datetime, local: datetime) -> bool:
    return local < at <= local + MAX_AHEAD


def _date_in(snippet: str, languages: tuple[str, ...], local: datetime, tz: tzinfo) -> datetime | None:
    alone = _DAY_ALONE.match(snippet)  # "até dia 30": the next 30th
    if alone:
        at = _next_day_of_month(int(alone[1]), local)
        return _result(at, local) if at else None
    snippet = _ORDINAL_SIGN.sub("", _MONTH_DOT.sub(r"\1", _DAY_WORD.sub("", snippet)))
    snippet = _NUMERIC.sub(lambda m: _iso(m, languages[0], local, tz), snippet)
    from dateparser.search import search_dates  # slow to import: only when an auto-reply needs it

    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": local.replace(tzinfo=None), "DATE_ORDER": "DMY",
                "RETURN_AS_TIMEZONE_AWARE": False}
    for words, value in search_dates(snippet, languages=list(languages), settings=settings) or []:
        if not _is_day(words):
            continue
        if not _TIME.search(words):
            value = datetime.combine(value.date(), time())
        return _result(value.replace(tzinfo=tz), local)
    return None


def _result(at: datetime, local: datetime) -> datetime | None:
    at = datetime.fromtimestamp(at.timestamp(), at.tzinfo)  # normalise a wall time in a DST gap
    return at.astimezone(timezone.utc) if _in_window(at, local) else None


def _is_day(words: str) -> bool:
    """A month or a year alone names no day ("em dezembro": dateparser would pick one)."""
    words = words.strip()
    return not (_MONTH_ONLY.match(words) or re.fullmatch(r"\d{4}", words))


_MONTH_ONLY = re.compile(
    r"^(?:(?:in|em|en|de|no|na|el)\s+)?(?:jan\w*|feb\w*|fev\w*|mar\w*|apr\w*|abr\w*|may\w*|mai\w*|jun\w*|jul\w*|"
    r"aug\w*|ago\w*|sep\w*|set\w*|oct\w*|out\w*|nov\w*|dec\w*|dez\w*|dic\w*)$", re.IGNORECASE)


def _next_day_of_month(day: int, local: datetime) -> datetime | None:
    year, month = local.year, local.month
    for _ in range(4):
        try:
            candidate = datetime(year, month, day, tzinfo=local.tzinfo)
        except ValueError:
            candidate = None
        if candidate is not None and candidate > local:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _iso(m: re.Match, language: str, local: datetime, tz: tzinfo) -> str:
    """A numeric date written out as yyyy-mm-dd, read as the module's notes say."""
    a, sep, b, c = int(m[1]), m[2], int(m[3]), m[4]
    if len(m[1]) == 4:  # 2026-12-07
        return (_format(a, b, int(c), local) if c else None) or m[0]
    if sep == "." and c is None and language == EN:
        return m[0]  # "3.5" in English text is a number, not a date
    year = int(c) + (2000 if len(c) < 4 else 0) if c else None
    readings = [(b, a)] if language != EN else [(b, a), (a, b)]  # (month, day)
    found = [f for f in (_format(year, mo, d, local) for mo, d in readings) if f]
    if not found:
        return m[0]
    fitting = [f for f in found if _in_window(datetime.fromisoformat(f).replace(tzinfo=tz), local)]
    if len(fitting) == 1:
        return fitting[0]
    if language == EN and len(found) == 2 and getattr(tz, "key", "").startswith("America/"):
        return found[1]
    return found[0]


def _format(year: int | None, month: int, day: int, local: datetime) -> str | None:
    """yyyy-mm-dd of a month and day (and year, or the next one to come)."""
    try:
        if year is not None:
            return date(year, month, day).isoformat()
        candidate = date(local.year, month, day)
        if candidate < local.date():
            candidate = date(local.year + 1, month, day)
        return candidate.isoformat()
    except ValueError:
        return None
