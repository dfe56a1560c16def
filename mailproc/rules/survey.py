"""rules/survey.toml: the satisfaction question after a case closes, the testimonial
request after a happy answer, and how a customer's answer is read (SPEC §4).

The answers' names are fixed (a case stores the name, reports count by it);
their labels, numbers and words are the site's. Words are compared without
letter case or accents, whole words only, so "Satisfeito", "satisfeito" and
"SATISFEITO" are one answer and "unsatisfied" is never read as "satisfied".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from datetime import timedelta
from pathlib import Path

from mailproc.rules.reader import TomlTable

ANSWER_NAMES = ("extremely_satisfied", "satisfied", "unsatisfied", "extremely_unsatisfied")
SURVEY_KEYS = ("after_close", "once_per", "testimonial_after", "subject", "review_url", "google_review_url",
               "answer")
ANSWER_KEYS = ("name", "label", "number", "happy", "words")
READ_LIMIT = 2000  # characters of a reply read for the answer: it is at the top, or it is not there


@dataclass(frozen=True)
class Answer:
    name: str  # what the case stores
    label: str  # what people see
    number: int
    happy: bool
    words: tuple[str, ...]  # normalized (lower case, no accents)


@dataclass(frozen=True)
class Survey:
    after_close: timedelta
    once_per: timedelta
    testimonial_after: timedelta
    subject: str  # "Satisfaction": the word before the answer in the answer links' subject
    review_url: str
    google_review_url: str
    answers: tuple[Answer, ...]

    def answer(self, name: str | None) -> Answer | None:
        return next((a for a in self.answers if a.name == name), None)

    def happy(self, name: str | None) -> bool:
        answer = self.answer(name)
        return answer is not None and answer.happy

    def unhappy(self, name: str | None) -> bool:
        answer = self.answer(name)
        return answer is not None and not answer.happy

    def read(self, text: str) -> Answer | None:
        """The one answer `text` gives — a number alone at its start, or the words of
        exactly one answer — else None (nothing, or two different answers)."""
        text = normalize(text[:READ_LIMIT])
        found = {self._by_word[m.group(1)] for m in self._words_re.finditer(text)}
        number = re.match(r"\s*[#(]?\s*(\d{1,2})(?![\d.,:/]\d)(?:\W|$)", text)
        if number:
            by_number = next((a.name for a in self.answers if a.number == int(number.group(1))), None)
            if by_number is not None:  # "10 out of 10" is not an answer's number: the words decide
                found.add(by_number)
        return self.answer(found.pop()) if len(found) == 1 else None

    def read_subject(self, subject: str) -> Answer | None:
        """The answer an answer link's subject carries ("… Satisfaction: Satisfied"), if any."""
        marker = self.marker(subject)
        return self.read(subject[marker.end():]) if marker else None

    def marker(self, subject: str) -> re.Match[str] | None:
        """Where `subject` says "Satisfaction:" (the word of `subject` in the file)."""
        return re.search(r"(?<!\w)" + re.escape(self.subject) + r"\s*:", subject or "", re.IGNORECASE)

    @cached_property
    def _by_word(self) -> dict[str, str]:
        return {w: a.name for a in self.answers for w in a.words}

    @cached_property
    def _words_re(self) -> re.Pattern[str]:
        words = sorted(self._by_word, key=len, reverse=True)  # the longest first: "extremely satisfied"
        return re.compile(r"(?<!\w)(" + "|".join(r"\s+".join(map(re.escape, w.split())) for w in words)
                          + r")(?!\w)")


def normalize(text: str) -> str:
    """Lower case without accents, spaces collapsed: 'Não  Satisfeito' -> 'nao satisfeito'."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def load_survey(path: Path) -> Survey:
    root = TomlTable.read(path)
    root.check_keys(SURVEY_KEYS, required=("answer",))
    answers: list[Answer] = []
    owner: dict[str, str] = {}
    for table in root.tables("answer"):
        table.check_keys(ANSWER_KEYS, required=ANSWER_KEYS)
        name = table.need_choice("name", ANSWER_NAMES)
        if any(a.name == name for a in answers):
            raise table.error("name", f"{name!r} is listed twice")
        number = table.int("number")
        if number is None or not 0 <= number <= 99:
            raise table.error("number", "must be a whole number from 0 to 99")
        if any(a.number == number for a in answers):
            raise table.error("number", f"{number} is the number of another answer")
        words = tuple(dict.fromkeys(normalize(w) for w in table.str_list("words") if w.strip()))
        for word in words:
            if owner.get(word, name) != name:
                raise table.error("words", f"{word!r} is also a word of {owner[word]!r}", needle=word)
            owner[word] = name
        answers.append(Answer(name=name, label=table.need_str("label"), number=number,
                              happy=bool(table.bool("happy")), words=words))
    missing = [n for n in ANSWER_NAMES if not any(a.name == n for a in answers)]
    if missing:
        raise root.error("answer", f"every answer must be listed; missing: {', '.join(missing)}")
    subject = (root.str("subject") or "Satisfaction").strip()
    if not subject or not subject.isprintable() or len(subject) > 40:
        raise root.error("subject", "must be a short word, e.g. Satisfaction")
    return Survey(after_close=_duration(root, "after_close", "1m"), once_per=_duration(root, "once_per", "30d"),
                  testimonial_after=_duration(root, "testimonial_after", "7d"), subject=subject,
                  review_url=(root.str("review_url") or "").strip(),
                  google_review_url=(root.str("google_review_url") or "").strip(), answers=tuple(answers))


def _duration(root: TomlTable, key: str, default: str) -> timedelta:
    value = root.duration(key) if key in root.data else None
    if value is None:
        from mailproc.config import parse_duration
        value = parse_duration(default)
    if value < timedelta(0):
        raise root.error(key, "must not be negative")
    return value
