"""Missing docs (seed 002): the same agent answer, without a help-article link, on three or
more different cases means an article is missing. Answers are recorded by the relay (both
the relayed and the directly sent answer, end to end through Dovecot and SMTP); `find`
groups the near-identical ones; on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from rapidfuzz import fuzz

from mailproc import cases, db, missingdocs
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.models import Answer
from mailproc.reports import clusters as report

from helpers import T0, mail
from test_agent_mail import ANA, PASS, Desk

ARTICLE = "https://help.example.com/articles/reset-password"  # in the shipped rules/help.toml

# One answer as three agents write it to three customers: the greeting's name, a case
# number, a word changed.
CACHE = [
    "Hi Maria,\n\nThis happens when the browser keeps an old copy of the page. Please clear the cache "
    "(Ctrl+Shift+Delete), close every tab of the app and log in again. If it still fails, send us a "
    "screenshot of the error.\n\nBest regards,\nAna",
    "Hi John,\n\nThis happens when the browser keeps an old copy of the page. Please clear the cache "
    "(Ctrl+Shift+Del), close all tabs of the app and log in again. If it still fails, send us a "
    "screenshot of the error.\n\nBest regards,\nBob",
    "Hello Priya,\n\nthis happens when your browser keeps an old copy of the page. Please clear the cache "
    "(Ctrl+Shift+Delete), close every tab of the app and sign in again. If it still fails, send us a "
    "screenshot of the error.\n\nRegards,\nAna",
]
# Different answers on the same subject: they share words, not the text.
OTHERS = [
    "Hi Maria,\n\nPlease reinstall the app from the store: the last update did not finish on your phone. "
    "Your data is kept on our servers.\n\nBest regards,\nAna",
    "Hi John,\n\nWe found the problem on our side: a server was out of date. It is fixed now, please try to "
    "log in again.\n\nBest regards,\nBob",
    "Olá Joana,\n\nPor favor limpe o cache do navegador e entre de novo. Se continuar, envie uma captura de "
    "tela do erro.\n\nAtenciosamente,\nAna",
]


def test_the_threshold_parts_reused_answers_from_different_ones():
    norm = missingdocs._compared
    same = [fuzz.ratio(norm(a), norm(b)) for i, a in enumerate(CACHE) for b in CACHE[i + 1:]]
    different = [fuzz.ratio(norm(a), norm(b)) for a in CACHE[:1] for b in OTHERS]
    assert min(same) >= missingdocs.THRESHOLD > max(different)


def test_urls_are_compared_without_scheme_trailing_slash_or_query():
    key = missingdocs.url_key
    assert key("https://help.example.com/articles/reset-password") == key(
        "http://Help.Example.com/articles/reset-password/?utm_source=mail#step-2")
    assert key("https://www.help.example.com/a/") == key("https://help.example.com/a")
    assert key("https://help.example.com/articles/reset") != key("https://help.example.com/articles/reset-password")


# --- recording and finding, on both databases ---------------------------------------------


@pytest.fixture
def ctx(db_url, make_config):
    config = load(make_config(database=db_url, mailboxes=[dict(name="support", host="127.0.0.1", port=1,
                                                                  username="u", password="p",
                                                                  address="support@example.com")]))
    db.open_database(config.database)
    yield load_context(config, Clock(T0))
    db.close()


def _case(n: int):
    return cases.open_case({"contact": f"cus{n}@shop{n}.example", "summary": "Cannot log in"}, decided={},
                           rules={}, actor="x", now=T0)


def _answer(ctx, case, text, at, agent=ANA):
    return missingdocs.record(ctx, case, actor=agent, text=text, now=at)


def test_three_near_identical_answers_on_three_cases_are_a_missing_doc(ctx):
    made = [_case(n) for n in range(4)]
    for i, (case, text) in enumerate(zip(made, CACHE)):
        _answer(ctx, case, text, T0 + timedelta(days=i), agent=["ana@agents.example", "bob@agents.example"][i % 2])
    for i, text in enumerate(OTHERS):
        _answer(ctx, made[3], text, T0 + timedelta(hours=i))
    [item] = missingdocs.find(end=T0 + timedelta(days=5))
    assert (item["cases"], item["answers"]) == (3, 3)
    assert [e["case"] for e in item["examples"]] == [c.id for c in made[:3]]
    assert [e["agent"] for e in item["examples"]] == ["ana@agents.example", "bob@agents.example",
                                                      "ana@agents.example"]
    assert item["examples"][1]["at"] == (T0 + timedelta(days=1)).isoformat(timespec="seconds")
    assert item["excerpt"].startswith("Hi Maria, This happens when the browser")
    # the digest's section carries it
    assert report.section(ctx, T0 + timedelta(days=4), T0 + timedelta(days=5), T0 + timedelta(days=5))[
        "missing_docs"] == [item]
    # outside the window: not counted (30 days back from the end)
    assert missingdocs.find(end=T0 + timedelta(days=32)) == []


def test_three_near_identical_answers_on_two_cases_are_not_enough(ctx):
    first, second = _case(1), _case(2)
    for i, text in enumerate(CACHE):
        _answer(ctx, first if i < 2 else second, text, T0 + timedelta(hours=i))
    assert missingdocs.find(end=T0 + timedelta(days=1)) == []


def test_an_answer_with_a_help_article_link_is_documented_and_does_not_count(ctx):
    made = [_case(n) for n in range(3)]
    linked = CACHE[2] + f"\n\nStep by step: {ARTICLE.replace('https://', 'http://')}/?utm_source=desk"
    rows = [_answer(ctx, made[0], CACHE[0], T0), _answer(ctx, made[1], CACHE[1], T0),
            _answer(ctx, made[2], linked, T0)]
    assert [r.documented for r in rows] == [False, False, True]
    assert missingdocs.find(end=T0 + timedelta(days=1)) == []
    another = _answer(ctx, _case(4), CACHE[2], T0 + timedelta(hours=1))
    assert not another.documented
    assert [i["cases"] for i in missingdocs.find(end=T0 + timedelta(days=1))] == [3]


HTML_ANSWER = (f'<div dir="ltr"><p>Hi Maria,</p><p>The steps are in <a href="{ARTICLE}?utm=mail">this article</a>.'
               '</p><p>Best regards,<br>Ana</p></div>')
QUOTED_ONLY = ('<div><p>Hi Maria, please clear the cache and log in again.</p></div>'
               f'<blockquote><p>Customer wrote: I read <a href="{ARTICLE}">the article</a> already.</p></blockquote>')
BELOW_QUOTE_HEADER = ('<div><p>Hi Maria, please clear the cache and log in again.</p></div>'
                      f'<div class="gmail_quote"><p>On Monday you wrote:</p><a href="{ARTICLE}">link</a></div>')


def test_an_article_link_only_in_the_replys_html_counts_and_a_quoted_one_does_not(ctx):
    text = "Hi Maria,\n\nThe steps are in this article.\n\nBest regards,\nAna"  # what the HTML reads as
    row = missingdocs.record(ctx, _case(1), actor=ANA, text=text, now=T0, html=HTML_ANSWER)
    assert row.documented
    assert not missingdocs.record(ctx, _case(2), actor=ANA, text=text, now=T0).documented
    assert not missingdocs.linked(ctx, QUOTED_ONLY) and not missingdocs.linked(ctx, BELOW_QUOTE_HEADER)
    assert not missingdocs.linked(ctx, '<a href="https://help.example.com/articles/other">x</a>')
    assert not missingdocs.linked(ctx, "") and not missingdocs.linked(ctx, "<a href=")


def test_an_answer_is_kept_bounded(ctx):
    row = _answer(ctx, _case(1), "x" * 10_000, T0)
    assert len(Answer.get_by_id(row.id).text) == missingdocs.TEXT_LIMIT


def test_an_empty_window_finds_nothing(ctx):
    assert missingdocs.find(end=T0) == []


# --- through the real relay ----------------------------------------------------------------


@pytest.fixture
def desk(dovecot, imap_user, smtp, make_config, db_url):
    return Desk(dovecot, imap_user, smtp, make_config, db_url)


def test_a_relayed_answer_and_a_direct_one_are_recorded(desk):
    desk.deliver(mail("Re: [Case #1] Cannot log in", CACHE[0], sender=ANA, message_id="answer-1",
                      headers={"In-Reply-To": desk.token_id()}))
    desk.deliver(mail("Re: [Case #1] Cannot log in", f"See {ARTICLE} for the steps.", sender=ANA,
                      to="cus@shop.example", message_id="direct-1",
                      headers={"Cc": "support@example.com", "Authentication-Results": PASS}))
    db.open_database(load(desk.config).database)
    rows = list(Answer.select().order_by(Answer.id))
    assert [(r.case_id, r.actor, r.documented) for r in rows] == [(1, ANA, False), (1, ANA, True)]
    assert rows[0].text.startswith("Hi Maria,") and "Best regards" in rows[0].text
    assert rows[0].message is not None and rows[0].message.message_id == "answer-1@test.example"
    assert desk.outgoing("agent_reply")  # the first was relayed, and recorded


def test_an_html_only_answer_linking_an_article_is_documented(desk):
    message = email.message_from_bytes(mail("Re: [Case #1] Cannot log in", "x", sender=ANA, message_id="html-1",
                                            headers={"In-Reply-To": desk.token_id()}), policy=email.policy.default)
    message.set_content(HTML_ANSWER, subtype="html")
    desk.deliver(message.as_bytes())
    db.open_database(load(desk.config).database)
    [row] = list(Answer.select())
    assert row.documented and "this article" in row.text and ARTICLE not in row.text
    assert desk.outgoing("agent_reply")


# --- grouped once, when recorded --------------------------------------------------------------


def test_answers_recorded_over_time_join_the_group_of_their_best_match(ctx):
    made = [_case(n) for n in range(6)]
    day = timedelta(days=1)
    a = _answer(ctx, made[0], CACHE[0], T0)
    b = _answer(ctx, made[1], OTHERS[0], T0 + day)
    a1 = _answer(ctx, made[2], CACHE[1], T0 + 2 * day)
    linked = _answer(ctx, made[3], CACHE[1] + f"\n\nThe steps: {ARTICLE}", T0 + 3 * day)
    c = _answer(ctx, made[4], OTHERS[1], T0 + 4 * day)
    a2 = _answer(ctx, made[5], CACHE[2], T0 + 5 * day)
    assert [r.group_id for r in (a, b, a1, c, a2)] == [a.id, b.id, a.id, c.id, a.id]
    assert linked.documented and linked.group_id is None  # a documented answer joins nothing
    assert [Answer.get_by_id(r.id).group_id for r in (a, a1, a2)] == [a.id] * 3  # stored, not only returned
    [item] = missingdocs.find(end=T0 + 6 * day)
    assert (item["cases"], item["answers"]) == (3, 3)
    assert [e["case"] for e in item["examples"]] == [made[0].id, made[2].id, made[5].id]
    assert item["first_at"] == T0.isoformat(timespec="seconds")
    assert item["last_at"] == (T0 + 5 * day).isoformat(timespec="seconds")
    # a window that starts after A holds only two of the group's cases
    assert missingdocs.find(T0 + timedelta(hours=1), T0 + 6 * day) == []


def test_a_documented_answer_anchors_no_group(ctx):
    made = [_case(n) for n in range(4)]
    first = _answer(ctx, made[0], CACHE[0] + f"\n\nSee {ARTICLE}", T0)
    rows = [_answer(ctx, case, text, T0 + timedelta(hours=1 + i))
            for i, (case, text) in enumerate(zip(made[1:], CACHE))]
    assert first.group_id is None
    assert [r.group_id for r in rows] == [rows[0].id] * 3  # the first undocumented one starts the group
    assert [i["cases"] for i in missingdocs.find(end=T0 + timedelta(days=1))] == [3]


def test_an_answer_older_than_the_window_anchors_no_group(ctx):
    made = [_case(n) for n in range(5)]
    old = _answer(ctx, made[0], CACHE[0], T0)
    later = missingdocs.WINDOW + timedelta(days=1)
    rows = [_answer(ctx, case, text, T0 + later + timedelta(hours=i))
            for i, (case, text) in enumerate(zip(made[1:], [CACHE[1], CACHE[2], CACHE[0]]))]
    assert [r.group_id for r in rows] == [rows[0].id] * 3 != [old.id] * 3
    [item] = missingdocs.find(end=T0 + later + timedelta(days=1))
    assert (item["cases"], item["answers"]) == (3, 3)
    assert item["first_at"] == (T0 + later).isoformat(timespec="seconds")
    # over a window holding the old one too, it is not counted in: it is a group of its own
    assert [i["cases"] for i in missingdocs.find(T0, T0 + later + timedelta(days=1))] == [3]


def test_a_new_answer_is_compared_with_the_newest_candidates_of_its_length_only(ctx, monkeypatch):
    made = [_case(n) for n in range(5)]
    first = _answer(ctx, made[0], CACHE[0], T0)
    # same length band, different text: two newer answers push the first out of a cap of two
    _answer(ctx, made[1], OTHERS[0] + "x" * (len(CACHE[0]) - len(OTHERS[0])), T0 + timedelta(hours=1))
    _answer(ctx, made[2], "y" * len(CACHE[0]), T0 + timedelta(hours=2))
    short = _answer(ctx, made[3], "Thanks, done.", T0 + timedelta(hours=3))  # out of the band: not read
    low, high = missingdocs.band(len(missingdocs._compared(CACHE[1])))
    assert not low <= short.size <= high and low <= first.size <= high
    assert missingdocs.match(missingdocs._compared(CACHE[1]), T0 + timedelta(hours=4)) == first.id
    monkeypatch.setattr(missingdocs, "CANDIDATES", 2)
    assert missingdocs.match(missingdocs._compared(CACHE[1]), T0 + timedelta(hours=4)) is None


def test_the_band_holds_every_length_that_can_reach_the_threshold():
    for size in (1, 2, 10, 85, 100, 317, 600):
        low, high = missingdocs.band(size)
        reach = [n for n in range(1, 2 * size + 3) if fuzz.ratio("a" * size, "a" * n) >= missingdocs.THRESHOLD]
        assert low <= min(reach) and max(reach) <= high  # equal texts of those lengths score the most possible
        assert min(reach) - low <= 2 and high - max(reach) <= 2  # and little more is read


def _plan(query) -> str:
    sql, params = query.sql()
    return " / ".join(row[3] for row in db.query_all(f"EXPLAIN QUERY PLAN {sql}", list(params)))


def test_find_and_record_read_the_window_by_index(ctx, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the plan is SQLite's EXPLAIN QUERY PLAN")
    made = [_case(n) for n in range(20)]
    rows = []
    for i in range(6000):  # 90 days of answers, three windows' worth; a group every 50th
        text = CACHE[i % 3] if i % 50 == 0 else f"answer {i} " + "z" * (i % 300)
        compared = missingdocs._compared(text)
        case = made[(i // 50 if i % 50 == 0 else i) % 20]
        rows.append(dict(case=case.id, actor=ANA, at=T0 + timedelta(minutes=21 * i), text=text,
                         documented=i % 7 == 0, compared=compared, size=len(compared),
                         group_id=None if i % 7 == 0 else (1 if i % 50 == 0 else i + 1)))
    db.insert_many(Answer, rows)
    db.execute("ANALYZE", [])
    end = T0 + timedelta(days=88)
    found = _plan(missingdocs.groups(end - missingdocs.WINDOW, end))
    assert "answer_at_size" in found and "SEARCH" in found, found
    read = _plan(missingdocs.candidates(missingdocs._compared(CACHE[0]), end))
    assert "answer_at_size" in read and "SEARCH" in read, read
    [item] = missingdocs.find(end=end)
    assert item["cases"] == 20 and len(item["examples"]) == missingdocs.EXAMPLES
