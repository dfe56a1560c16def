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
def test_a_legal_disclaimer_paragraph_is_left_out_wherever_it_is(notice):
    kept = own_text(f"{notice}\n\n{ASK}\n\nRegards,\nRui\n\n{notice}")
    assert kept.startswith(ASK) and "Rui" in kept and "error" not in kept.replace(ASK, "")
    assert "confiden" not in kept


def test_one_legal_word_in_the_customers_own_words_is_kept():
    ask = "Borré por error la factura de marzo, ¿pueden recuperarla? Es confidencial para nosotros."
    assert own_text(f"Hola,\n\n{ask}\n\nGracias") == f"Hola,\n\n{ask}\n\nGracias"


def test_quoted_lines_and_the_size_limit_still_apply():
    assert body_text("Our export fails.\n> old: the import fails\nThanks") == "our export fails. thanks"
    assert len(body_text("word " * 10_000)) <= 20_000
    assert own_text("") == ""
