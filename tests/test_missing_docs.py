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
