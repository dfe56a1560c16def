"""Help articles (rules/help.toml): which articles a new mail asks about, in English,
Portuguese and Spanish, typos and all; the acknowledgement suggests them; bad rules are
refused with the file and line."""

from __future__ import annotations

import email
import email.policy

import pytest

from mailproc import db
from mailproc.config import load
from mailproc.errors import ConfigError
from mailproc.models import Outbox
from mailproc.rules import rule_files
from mailproc.rules.help import load_help

from helpers import T0, mail, run

SHIPPED = rule_files(None)["help.toml"]
PASSWORD, EXPORT, USERS = ("Resetting your password", "Exporting your data to a spreadsheet",
                           "Adding and removing users on your plan")


@pytest.mark.parametrize("subject, text, titles", [
    ("Login", "Hi, I forgot my pasword, can you help?", [PASSWORD]),  # a typo
    ("Ajuda", "Olá, esqueci a minha senha do sistema.", [PASSWORD]),
    ("Ayuda", "Olvidé mi contraseña y no puedo entrar.", [PASSWORD]),
    ("Question", "How do I EXPORT my data to a spreadsheet?", [EXPORT]),
    ("Exportação", "Como posso exportar os dados para excel?", [EXPORT]),
    ("Invoice", "Please send me the invoice for October.", []),
    ("Password policy", "What are your rules for passwords on shared accounts?", []),  # a word, not the need
    ("Several things", "I need to add a user, export to excel and reset my password.", [PASSWORD, EXPORT, USERS]),
])
def test_a_mail_gets_the_articles_it_asks_about(subject, text, titles):
    assert [a.title for a in load_help(SHIPPED).suggest(subject, text)] == titles


def test_at_most_limit_articles_and_only_above_the_threshold(tmp_path):
    path = tmp_path / "help.toml"
    path.write_text(SHIPPED.read_text(encoding="utf-8").replace("limit = 3", "limit = 1")
                    .replace("threshold = 90", "threshold = 100"), encoding="utf-8")
    articles = load_help(path)
    assert [a.title for a in articles.suggest("", "add a user, export to excel, reset my password")] == [PASSWORD]
    assert articles.suggest("", "I forgot my pasword") == []  # the typo is below 100


@pytest.mark.parametrize("change, words", [
    (("\nthreshold = 90\n", "\nthreshold = 30\n"), "threshold: must be a number from 50 to 100"),
    (("\nlimit = 3\n", "\nlimit = 0\n"), "limit: must be a whole number from 1 to 10"),
    (('url = "https://help.example.com/articles/export"', 'url = "help.example.com/export"'),
     "url: not a web address"),
    (('"add a user", ', '"add", '), "'add' is too short"),
    (("[[article]]\ntitle = \"Resetting your password\"", "[[article]]\ntitel = \"Resetting your password\""),
     "unknown key"),
])
def test_bad_rules_are_refused_naming_the_line(tmp_path, change, words):
    path = tmp_path / "help.toml"
    text = SHIPPED.read_text(encoding="utf-8")
    assert change[0] in text
    path.write_text(text.replace(*change, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=words) as err:
        load_help(path)
    assert "help.toml" in str(err.value)


def test_the_acknowledgement_suggests_the_articles(make_config, db_url, tmp_path):
    box = dict(name="support", host="127.0.0.1", port=1, username="u", password="p", address="support@example.com")
    config = make_config(database=db_url, mailboxes=[box])
    for n, (subject, body) in enumerate([("Locked out", "I forgot my password, please help."),
                                         ("Invoice", "Please send me the invoice for October.")]):
        path = tmp_path / f"m{n}.eml"
        path.write_bytes(mail(subject, body, sender=f"c{n}@shop.example", message_id=f"help-{n}"))
        assert run(config, "ingest", path, now=T0.isoformat())[0] == 0
    db.open_database(load(config).database)
    first, second = (email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
                     for row in Outbox.select().where(Outbox.kind == "acknowledgement").order_by(Outbox.id))
    text, html = (first.get_body((kind,)).get_content() for kind in ("plain", "html"))
    url = "https://help.example.com/articles/reset-password"
    assert f"{PASSWORD}: {url}" in text and f'href="{url}"' in html
    assert "help.example.com" not in second.get_body(("plain",)).get_content()


def test_a_phrase_is_found_beside_punctuation_and_not_compared_when_no_word_of_it_is_there():
    articles = load_help(SHIPPED)
    assert [a.title for a in articles.suggest("", "Help: password reset, please!")] == [PASSWORD]
    # "xyz" shares no word with any phrase: no phrase is compared, nothing suggested
    assert articles.suggest("xyz", "xyz") == []
