"""What the classifier reads of a body: the sender's own words, without quoted history,
signatures or legal disclaimers (mailproc/rules/trim.py), in EN, PT and ES."""

from __future__ import annotations

import pytest

from mailproc.rules.matching import body_text
from mailproc.rules.trim import own_text

ASK = "Please cancel our subscription at the end of this month, we are moving to another tool for the whole team."


@pytest.mark.parametrize("history", [
    "On Tue, 3 Nov 2026 at 10:02, Ana Lopes <ana@shop.example> wrote:\n> The export is broken\n> error 500",
    "On Tue, 3 Nov 2026 at 10:02, Ana Lopes <ana@shop.example>\nwrote:\nThe export is broken, error 500",
    "Em ter., 3 de nov. de 2026 às 10:02, Ana <ana@loja.example> escreveu:\nA exportação dá erro 500",
    "El mar, 3 nov 2026 a las 10:02, Ana (<ana@tienda.example>) escribió:\nLa exportación da error 500",
    "-----Original Message-----\nFrom: Ana\nSent: Tuesday\nThe export is broken, error 500",
    "________________________________\nDe: Mesa de Ayuda <mesa@andes.example>\nEnviado: martes, 14 de abril\n"
    "Para: Camilo\nAsunto: error\nLa exportación da error 500",
    "From: Ana Lopes <ana@shop.example>\nSent: Tuesday, November 3, 2026 10:02 AM\nTo: Support\n"
    "Subject: export\nThe export is broken, error 500",
    "---------- Forwarded message ---------\nFrom: Ana\nThe export is broken, error 500",
])
def test_history_under_the_senders_own_ask_is_left_out(history):
    kept = own_text(f"Hi,\n\n{ASK}\n\nThanks, Rui\n\n{history}")
    assert ASK in kept and "500" not in kept and "Rui" in kept


def test_history_under_a_few_words_is_the_ask_and_is_kept():
    body = ("See below, can you help?\n\n---------- Forwarded message ---------\nFrom: Ana <ana@shop.example>\n"
            "Date: Tue, 3 Nov 2026\nSubject: export\n\nThe export is broken, error 500 since this morning.")
    assert "error 500 since this morning" in own_text(body)
    assert "error 500" in own_text("FYI\n\nOn Tue, 3 Nov 2026, Ana <a@b.example> wrote:\nThe export gives error 500")


@pytest.mark.parametrize("signature", ["-- \nRui Costa\nCEO, error-free since 1999", "--\nRui, error-free since 1999",
                                       "Sent from my iPhone\nerror-free since 1999",
                                       "Enviado do meu iPhone\nerror-free", "Enviado desde mi Android\nerror-free",
                                       "Get Outlook for iOS\nerror-free"])
def test_a_signature_is_left_out(signature):
    kept = own_text(f"{ASK}\n{signature}")
    assert ASK in kept and "error" not in kept


@pytest.mark.parametrize("notice", [
    "This e-mail and any attachments are confidential and intended solely for the addressee. If you have "
    "received it in error, please notify the sender and delete it.",
    "Esta mensagem é confidencial. Se a recebeu por engano, avise o remetente e apague-a.",
    "Este mensaje y sus anexos son confidenciales. Si lo ha recibido por error, notifíquelo al remitente.",
])
def test_a_legal_disclaimer_at_the_end_or_the_start_is_left_out(notice):
    kept = own_text(f"{notice}\n\n{ASK}\n\nRegards,\nRui\n\n{notice}")
    assert kept.startswith(ASK) and "Rui" in kept and "error" not in kept.replace(ASK, "")
    assert "confiden" not in kept


def test_one_legal_word_in_the_customers_own_words_is_kept():
    ask = "Borré por error la factura de marzo, ¿pueden recuperarla? Es confidencial para nosotros."
    assert own_text(f"Hola,\n\n{ask}\n\nGracias") == f"Hola,\n\n{ask}\n\nGracias"


def test_quoted_lines_and_the_size_limit_still_apply():
    assert body_text("Our export fails.\n> old: the import fails\nThanks") == "our export fails. thanks"
    assert len(body_text("word " * 10_000)) <= 8_000
    assert own_text("") == ""


def test_legal_words_in_the_middle_of_a_mail_are_the_customers_own():
    leak = ("Your notification went to the wrong recipient in error: it was confidential, only the intended "
            "recipient should see it.")
    pt = "Os e-mails não chegam ao destinatário e o remetente recebe um erro; é confidencial e foi por engano."
    for ask in (leak, pt):
        kept = own_text(f"Hello,\n\n{ask}\n\nThanks, Rui")
        assert ask in kept and kept.endswith("Thanks, Rui")


def test_a_short_forward_from_a_phone_keeps_the_forwarded_ask():
    body = ("See below\n\nSent from my iPhone\n\nBegin forwarded message:\n\nFrom: Ana <ana@shop.example>\n"
            "Date: 3 November 2026\nSubject: export\n\nThe export is broken, error 500 since this morning.")
    assert "error 500 since this morning" in own_text(body)


def test_a_short_reply_keeps_the_quoted_lines_it_answers():
    body = "Still broken!\n\nOn Tue, 3 Nov 2026 at 10:02, Ana <ana@shop.example> wrote:\n> The export gives error 500\n"
    kept = own_text(body)
    assert "Still broken!" in kept and "The export gives error 500" in kept and ">" not in kept


@pytest.mark.parametrize("line", [
    "Please change the sender of our alerts", "From: alerts@shop.example", "To: support@shop.example",
    "El lunes Juan escribió el informe y lo subió", "Mails sent from my iPhone never arrive at your address",
    "Sent from my iPhone the invoices never attach, but from the laptop they do"])
def test_ordinary_lines_are_not_history_or_a_signature(line):
    body = f"{line}\nand everything after it is still the customer's: the export gives error 500 every time."
    assert "error 500" in own_text(body)
