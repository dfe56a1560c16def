"""Out-of-office return dates: realistic replies in English, Portuguese and Spanish (with
quoted originals full of other dates), the screening of Portuguese and Spanish
out-of-office subjects, and a customer's out-of-office reply postponing the reminder
of a Pending Input case to the day they are back, through the pipeline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mailproc import db
from mailproc.models import Case, Due, Event
from mailproc.ooo import return_date
from mailproc.parse import parse
from mailproc.rules.screening import load_screening
from mailproc.stages import screen
from mailproc.testing import REPO

from helpers import mail, run

LISBON, NY = ZoneInfo("Europe/Lisbon"), ZoneInfo("America/New_York")
RECEIVED = datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc)  # a Monday

OUTLOOK_QUOTE = """

________________________________
From: Support <support@example.com>
Sent: Friday, November 27, 2026 4:02 PM
To: Ana Costa <ana@shop.example>
Subject: [Case #12] Invoice export fails

We expect a fix by 03/12/2026 and will write again until Friday, December 4.
"""

GMAIL_QUOTE_PT = """

Em sex., 27 de nov. de 2026 às 16:02, Suporte <support@example.com> escreveu:
> Voltaremos a contactar até 4 de dezembro.
> Obrigado
"""

CASES = [
    # English, Outlook and Gmail styles
    ("I am out of the office until Monday, December 7 with limited access to email.", "en", "2026-12-07 00:00"),
    ("Thank you for your message. I'm on annual leave and will be back on 07/12/2026.", "en", "2026-12-07 00:00"),
    ("Hi,\n\nI'm travelling, returning 2026-12-07. For urgent matters call +1 555-1234.", "en", "2026-12-07 00:00"),
    ("I am currently out of the office and will return on Tuesday, 8 December 2026.\n\nRegards,\nAna"
     + OUTLOOK_QUOTE, "en", "2026-12-08 00:00"),
    ("Out of office. I will be back in the office on Dec. 14th at 14:00.", "en", "2026-12-14 14:00"),
    ("I'm away until\nFriday, December 11. Your mail will not be forwarded.", "en", "2026-12-11 00:00"),
    ("I will be back in 10 days.", "en", "2026-12-10 00:00"),
    ("I am out of the office with no access to email." + OUTLOOK_QUOTE, "en", None),  # dates only in the quote
    ("Thanks for your email. I'll reply as soon as possible.", "en", None),
    ("I'm out of the office until June 3.", "en", None),  # six months away: a typo or stale, not trusted
    ("I was out until November 20 and am catching up.", "en", None),  # in the past
    # Portuguese (Portugal)
    ("Estarei ausente até 15 de dezembro, sem acesso ao correio eletrónico.", "pt", "2026-12-15 00:00"),
    ("Bom dia,\nEncontro-me de férias. De volta a 7/12.\nCumprimentos", "pt", "2026-12-07 00:00"),
    ("Obrigado pelo seu contacto. Estou fora do escritório e regresso no dia 7 de dezembro.", "pt",
     "2026-12-07 00:00"),
    ("Estou de férias até dia 30.", "pt", "2026-12-30 00:00"),
    ("Ausente do escritório, regressando a 4 de janeiro de 2027." + GMAIL_QUOTE_PT, "pt", "2027-01-04 00:00"),
    ("Estou ausente sem acesso ao email." + GMAIL_QUOTE_PT, "pt", None),
    # Portuguese (Brazil)
    ("Olá! Estou em férias e retorno em 07/12/2026. Em caso de urgência, fale com a Maria.", "pt",
     "2026-12-07 00:00"),
    ("Prezado cliente, estarei de volta na segunda-feira, 14 de dezembro.", "pt", "2026-12-14 00:00"),
    ("Retornarei no dia 10/12 às 14h.", "pt", "2026-12-10 14:00"),
    ("Voltarei amanhã.", "pt", "2026-12-01 00:00"),
    # Spanish
    ("Estaré fuera de la oficina hasta el 7 de diciembre.", "es", "2026-12-07 00:00"),
    ("Gracias por su mensaje. Estoy de vacaciones y regreso el 9/12.", "es", "2026-12-09 00:00"),
    ("Estaré de vuelta el lunes 14 de diciembre.", "es", "2026-12-14 00:00"),
]


@pytest.mark.parametrize("text, language, expected", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_return_dates(text, language, expected):
    found = return_date(text, "Automatic reply: [Case #12] Invoice export fails", RECEIVED, LISBON)
    assert (found.astimezone(LISBON).strftime("%Y-%m-%d %H:%M") if found else None) == expected


def test_the_subject_counts_when_the_body_says_nothing():
    found = return_date("", "Ausente até 9 de dezembro", RECEIVED, LISBON)
    assert found == datetime(2026, 12, 9, tzinfo=LISBON)


def test_start_of_day_is_local_and_aware_utc():
    found = return_date("Back on December 7.", "", RECEIVED, NY)
    assert found == datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc) and found.tzinfo == timezone.utc


@pytest.mark.parametrize("tz, expected", [(LISBON, "2026-12-01"), (NY, "2027-01-12")])
def test_english_numeric_date_read_both_ways_ties_go_by_the_desk_zone(tz, expected):
    # 01/12 is 1 December day first or 12 January month first: both within 90 days
    assert return_date("I am out until 01/12.", "", RECEIVED, tz).astimezone(tz).date().isoformat() == expected


def test_english_numeric_date_only_one_reading_fits():
    # 12/10: 12 October has passed, 10 December has not: month first, whatever the zone
    assert return_date("Away until 12/10.", "", RECEIVED, LISBON) == datetime(2026, 12, 10, tzinfo=LISBON)
    # 15/12 cannot be month first
    assert return_date("Away until 15/12.", "", RECEIVED, NY) == datetime(2026, 12, 15, tzinfo=NY)


def test_portuguese_numeric_dates_are_day_first_even_in_new_york():
    assert return_date("Regresso a 01/12.", "", RECEIVED, NY) == datetime(2026, 12, 1, tzinfo=NY)


# --- screening ------------------------------------------------------------------------

RULES = load_screening(REPO / "rules" / "screening.toml")


@pytest.mark.parametrize("subject", [
    "Ausente: Re: [Case #12] Não consigo entrar", "Férias: Re: [Case #12] Fatura", "Em férias até 7/12",
    "Ausente do escritório", "Ausente até 15 de dezembro", "Mensagem automática: Re: pedido",
    "Resposta automática: Re: [Case #12] Fatura", "Ausencia: Re: pedido", "De vacaciones: Re: pedido",
])
def test_portuguese_and_spanish_out_of_office_subjects_are_auto_replies(subject):
    raw = mail(subject, "Estou de férias.", sender="ana@shop.example")
    verdict = screen.classify(RULES, parse(raw), raw, instance="mailproc", ours=frozenset())
    assert (verdict.kind, verdict.name) == ("auto_reply", "vacation-subject")


@pytest.mark.parametrize("subject", ["Férias e faturas: dúvida sobre o plano", "Ausente na lista de utilizadores",
                                     "Como configurar a resposta de férias?"])
def test_customer_subjects_about_holidays_are_normal_mail(subject):
    raw = mail(subject, "Olá, tenho uma dúvida.", sender="ana@shop.example")
    assert screen.classify(RULES, parse(raw), raw, instance="mailproc", ours=frozenset()) is None


# --- through the pipeline ---------------------------------------------------------------

TRUSTED = "mx.example.com"
PASS = f"{TRUSTED}; dmarc=pass header.from=agents.example"
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def _ingest(config, tmp_path, raw: bytes, now: datetime) -> None:
    path = tmp_path / f"m{now:%d%H%M}.eml"
    path.write_bytes(raw)
    code, _ = run(config, "ingest", path, now=now.isoformat())
    assert code == 0


def test_an_out_of_office_reply_postpones_the_reminder_to_the_return_day(make_config, db_url, tmp_path):
    config = make_config(database=db_url, agents={"ana": dict(address="ana@agents.example", teams="Support Team",
                                                              hours="Mon-Sun 00:00-24:00")})
    config.write_text(config.read_text() + f"\n[auth]\nauthserv_id = {TRUSTED}\n")
    _ingest(config, tmp_path, mail("Cannot log in", "The login page says my password is wrong.",
                                   sender="Cus <cus@shop.example>", message_id="customer-1"), T0)
    asked = T0 + timedelta(hours=1)
    _ingest(config, tmp_path, mail("Re: [Case #1] Cannot log in [status=pending_input assign=ana]",
                                   "Which browser do you use?", sender="ana@agents.example", date=asked,
                                   headers={"Authentication-Results": PASS}), asked)
    db.open_database(db_url)
    case = Case.get_by_id(1)
    assert (case.status, case.assignee.handle) == ("pending_input", "ana")
    [reminder] = Due.select().where((Due.case == 1) & (Due.kind == "remind") & Due.done_at.is_null())
    assert abs(reminder.due_at - (asked + timedelta(days=3)).replace(tzinfo=None)) < timedelta(minutes=1)
    db.close()

    replied = asked + timedelta(minutes=10)
    back = (replied + timedelta(days=10)).strftime("%A, %B %-d")  # "Monday, December 7"
    # Someone else's out-of-office on the case (a colleague on copy) says nothing of the customer.
    _ingest(config, tmp_path, mail("Automatic reply: [Case #1] Cannot log in",
                                   f"I am out of the office until {back}, with no access to email.",
                                   sender="Colleague <boss@shop.example>", date=replied, message_id="ooo-cc",
                                   headers={"Auto-Submitted": "auto-replied",
                                            "In-Reply-To": "<customer-1@test.example>"}), replied)
    db.open_database(db_url)
    assert Event.get((Event.case == 1) & (Event.kind == "auto_reply")).actor == "boss@shop.example"  # on the case
    assert Case.get_by_id(1).away_until is None
    db.close()
    _ingest(config, tmp_path, mail("Automatic reply: [Case #1] Cannot log in",
                                   f"I am out of the office until {back}, with no access to email.",
                                   sender="Cus <cus@shop.example>", date=replied,
                                   headers={"Auto-Submitted": "auto-replied"}), replied)
    db.open_database(db_url)
    case = Case.get_by_id(1)
    assert (case.status, case.assignee.handle) == ("pending_input", "ana")
    return_day = datetime(2026, 12, 6)  # 10 days after 26 November, at the start of the day (UTC desk)
    assert case.away_until == return_day
    [reminder] = Due.select().where((Due.case == 1) & (Due.kind == "remind") & Due.done_at.is_null())
    assert reminder.due_at == return_day
    away = Event.get((Event.case == 1) & (Event.kind == "away"))
    assert "2026-12-06" in away.detail
    since = Event.select().where((Event.case == 1) & (Event.at >= replied.replace(tzinfo=None)))
    assert sorted(e.kind for e in since) == ["auto_reply", "auto_reply", "away"]  # no field changed, nothing sent
