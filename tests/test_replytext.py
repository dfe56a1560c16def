"""replytext: the new text of real replies (Gmail, Outlook desktop and web, Apple Mail,
Thunderbird, iPhone; English and Portuguese; plain and HTML-only), and pathological
mail cut to bounds and answered, not stalled on."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mailproc.parse import parse
from mailproc.replytext import (MARKER, MAX_BYTES, MAX_LINES, ReplyText, extract, extract_html, extract_text,
                                html_lines)

REPLIES = Path(__file__).parent / "mail" / "replies"


def sample(name: str):
    return parse((REPLIES / name).read_bytes())


# --- real client formats ----------------------------------------------------------------------

SAMPLES = {
    # Gmail: "On … wrote:" wrapped onto a second line in text/plain, "-- " signature
    "gmail_en.eml": ("quotequail", "Hi Ana,\n\nI have reset your password. You should have received a link from us a\n"
                                   "minute ago; it is valid for 24 hours.\n\nBest regards,\nBob"),
    # Gmail in Portuguese: "Em … escreveu:" wrapped after the "<"
    "gmail_pt.eml": ("quotequail", "Olá Ana,\n\nsua senha foi redefinida. O link chega em alguns minutos e vale "
                                   "por 24\nhoras.\n\nAbraços,\nJoão"),
    # HTML only: gmail_quote / gmail_attr, gmail_signature, a quote nested in the quote
    "gmail_html_only_en.eml": ("quotequail", "Hi Ana,\n\nthe lock was caused by the new password policy; I have lifted "
                                             "it for your account.\n\nKind regards,\nBob"),
    # Outlook desktop: a From/Sent/To/Subject block without separator line; its
    # signature has no delimiter, so it stays (conservative)
    "outlook_desktop_en.eml": ("quotequail", "Hi Ana,\n\nYour account was locked after five failed attempts. I have "
                                             "unlocked it; please try again now.\n\nRegards,\nBob Agent\n"
                                             "Support | Example Ltd."),
    # Outlook desktop, HTML only, Portuguese: the border-top separator, De/Enviada em/Para/Assunto
    "outlook_desktop_html_only_pt.eml": ("quotequail", "Olá, Ana.\n\nA conta foi desbloqueada. Se o erro voltar, me "
                                                       "avise por aqui.\n\nAtenciosamente,\nJoão"),
    # Outlook 2010: "-----Original Message-----"
    "outlook_2010_en.eml": ("quotequail", "Ana,\n\nCould you try again? I have just restored your access.\n\nBob"),
    # Outlook 2010 in Portuguese: "-----Mensagem original-----", which quotequail does not know
    "outlook_2010_pt.eml": ("quotequail", "Ana,\n\npode tentar de novo? Liberei o acesso agora há pouco.\n\nJoão"),
    # Outlook on the web: the underscore line in text/plain
    "outlook_web_en.eml": ("quotequail", "Hello Ana,\n\nWe have found the cause: your company's single sign-on "
                                         "certificate expired last night. Your administrator has renewed it, so "
                                         "logging in works again.\n\nKind regards,\nBob"),
    # Outlook on the web, HTML only, Portuguese: <hr> + divRplyFwdMsg, De/Enviado/Para/Assunto
    "outlook_web_html_only_pt.eml": ("quotequail", "Ana, bom dia.\n\nO certificado do login único da sua empresa "
                                                   "venceu ontem à noite. Já foi renovado.\n\nJoão"),
    # Apple Mail: the quote header itself quoted ("> On … wrote:")
    "apple_mail_en.eml": ("quotequail", "Hi Ana,\n\nthe portal had a fault this morning; it is fixed and you can log "
                                        "in again.\n\nBob"),
    # Apple Mail, HTML only, Portuguese: <blockquote type="cite">, "Em … à(s) … escreveu:"
    "apple_mail_html_only_pt.eml": ("quotequail", "Oi, Ana!\n\nO portal teve uma falha hoje de manhã. Já está "
                                                  "corrigido.\n\nAbs,\nJoão"),
    # Thunderbird, top-posted, format=flowed, "-- " signature below the quote
    "thunderbird_en.eml": ("quotequail", "Hello Ana,\n\nthank you for the screenshot. The account is unlocked now; "
                                         "please log\nin again and tell me if the error comes back.\n\nBob"),
    # Thunderbird, bottom-posted: only the text below the quote is new
    "thunderbird_bottom_en.eml": ("quotequail", "Hello Ana,\n\nthe lock expires by itself after 30 minutes; I have "
                                                "lifted it now.\n\nBob"),
    # Thunderbird, HTML only, bottom-posted: moz-cite-prefix, blockquote, moz-signature
    "thunderbird_html_only_bottom_pt.eml": ("quotequail", "Oi, Ana.\n\nO bloqueio expira sozinho em 30 minutos; já "
                                                          "liberei.\n\nJoão"),
    # Thunderbird, interleaved: the answers need their questions, so the whole text
    # goes, quote header and quoted lines included; only the signature is cut
    "thunderbird_interleaved_pt.eml": ("whole", "Em 03/06/2024 10:15, Ana Souza escreveu:\n"
                                                "> desde hoje cedo não consigo entrar no portal.\n\n"
                                                "A conta estava bloqueada; já desbloqueei.\n\n"
                                                "> E a fatura de maio, quando chega?\n\n"
                                                "Foi enviada ontem para financeiro@acme.example."),
    # iPhone: "Sent from my iPhone", quoted quote header, U+FEFF in the quote
    "iphone_en.eml": ("quotequail", "On it, I will call you in ten minutes."),
    "iphone_pt.eml": ("quotequail", "Estou verificando, te ligo em dez minutos."),
    # Replies to our notification: the marker decides, the client's quote header above it goes too
    "gmail_marker_en.eml": ("marker", "Hello Ana,\n\nI am looking into it and will write again within the "
                                      "hour.\n\nBob"),
    "outlook_marker_pt.eml": ("marker", "Ana, bom dia.\n\nEstou verificando o bloqueio e retorno ainda hoje.\n\nJoão"),
    # Written below and between the quoted notification lines: only the agent's own lines
    "thunderbird_marker_bottom_en.eml": ("marker", "Hello Ana,\n\nwhich browser do you use? A screenshot of the error "
                                                   "would help too.\n\nThanks,\nBob"),
    # Only commands in the subject, nothing written: nothing to relay
    "iphone_marker_commands_only.eml": ("marker", ""),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_new_text_of_real_replies(name):
    how, text = SAMPLES[name]
    assert extract(sample(name)) == ReplyText(text=text, truncated=False, how=how)


def test_every_sample_is_checked():
    assert sorted(p.name for p in REPLIES.glob("*.eml")) == sorted(SAMPLES)


@pytest.mark.parametrize("name", [n for n in sorted(SAMPLES) if "html_only" in n])
def test_html_only_samples_have_no_text_part(name):
    """So the HTML path is what the samples above check."""
    mail = sample(name)
    assert mail.content_type == "text/html" and mail.html


@pytest.mark.parametrize("name", ["apple_mail_en.eml", "gmail_marker_en.eml", "outlook_desktop_en.eml",
                                  "outlook_web_en.eml"])
def test_html_alternative_gives_the_same_text(name):
    """The HTML part of the same mail reads the same: blockquotes, Outlook's border-top
    separator and divRplyFwdMsg stand for what the text part has."""
    mail = sample(name)
    assert extract_html(mail.html) == extract(mail)


def test_html_lines_keep_quote_levels_and_outlook_separators():
    lines, cut = html_lines(sample("gmail_html_only_en.eml").html)
    assert not cut
    assert "> Still locked. Why does this keep happening?" in lines
    assert "> > I have reset your password." in lines
    lines, _ = html_lines(sample("outlook_web_html_only_pt.eml").html)
    separator = lines.index("_" * 32)
    assert lines[separator + 1] == "De: Ana Souza <ana.souza@acme.example>"
    lines, _ = html_lines(sample("outlook_desktop_html_only_pt.eml").html)
    assert lines[lines.index("_" * 32) + 1] == "De: Ana Souza <ana.souza@acme.example>"


# --- quote headers in other languages and shapes ------------------------------------------------

@pytest.mark.parametrize("header", [
    "Am 03.06.2024 um 10:15 schrieb Ana Souza <ana.souza@acme.example>:",
    "Le lun. 3 juin 2024 à 10:15, Ana Souza <ana.souza@acme.example> a écrit :",
    "El lun, 3 jun 2024 a las 10:15, Ana Souza (<ana.souza@acme.example>) escribió:",
    "On Mon, 3 Jun 2024 at 10:15, Ana Souza <ana.souza@acme.example> wrote:",
])
def test_quote_headers_of_other_languages(header):
    text = f"Unlocked, please try again.\n\nBob\n\n{header}\n> Cannot log in.\n> Ana\n"
    assert extract_text(text) == ReplyText("Unlocked, please try again.\n\nBob", False, "quotequail")


def test_quote_block_without_header_is_cut():
    text = "Done.\n\n> line one\n> line two\n> line three\n"
    assert extract_text(text) == ReplyText("Done.", False, "quotequail")


def test_header_like_lines_of_the_agent_are_not_a_quote():
    """quotequail alone would take "To:" and "Subject:" for a forwarded header block and
    drop the rest; no client writes a header block that does not start with the sender."""
    text = ("Please write to billing with:\nTo: billing@example.com\nSubject: refund for May\n\n"
            "They answer within a day.")
    assert extract_text(text) == ReplyText(text, False, "whole")


def test_a_sentence_that_reads_like_a_quote_header_keeps_what_follows():
    """No quote and no header block below it: the agent's own sentence, not a quote header."""
    text = "Em seu e-mail de ontem você escreveu:\n\"não consigo entrar\". Isso já foi resolvido.\n\nJoão"
    assert extract_text(text) == ReplyText(text, False, "whole")


def test_a_false_header_block_does_not_hide_the_real_quote_below():
    text = ("Please write to billing with:\nTo: billing@example.com\nSubject: refund\n\nBob\n\n"
            "On Mon, Jun 3, 2024 at 10:15 AM Ana Souza <ana@acme.example> wrote:\n> Hello\n")
    assert extract_text(text) == ReplyText(
        "Please write to billing with:\nTo: billing@example.com\nSubject: refund\n\nBob", False, "quotequail")


def test_bottom_posted_and_interleaved():
    bottom = "On Mon, Ana <ana@acme.example> wrote:\n> a\n> b\n\nAnswer.\n"
    assert extract_text(bottom) == ReplyText("Answer.", False, "quotequail")
    interleaved = "Hi Ana,\n\n> a\n> b\n> c\n\nAnswer.\n"
    assert extract_text(interleaved) == ReplyText("Hi Ana,\n\n> a\n> b\n> c\n\nAnswer.", False, "whole")


def test_nothing_quoted_is_all_new():
    assert extract_text("  Just text.  \r\n\r\n") == ReplyText("  Just text.", False, "whole")


# --- our marker ---------------------------------------------------------------------------------------

NOTIFICATION = f"{MARKER}\nCase #123: Cannot log in\nCustomer: Ana Souza, plan Gold\n"


@pytest.mark.parametrize("quoted", [
    NOTIFICATION,
    "> " + NOTIFICATION.replace("\n", "\n> "),
    "> > " + NOTIFICATION.replace("\n", "\n> > "),
    ">>" + NOTIFICATION.replace("\n", "\n>>"),
    "> -- Reply above this\n> line --\n> Case #123\n",  # wrapped by the client
    "> \ufeff-- REPLY ABOVE THIS LINE --\n> Case #123\n",
])
def test_marker_quoted_or_wrapped(quoted):
    text = f"The new text.\n\n{quoted}"
    assert extract_text(text) == ReplyText("The new text.", False, "marker")


def test_marker_beats_a_quote_header_quotequail_does_not_know():
    text = f"The new text.\n\nSupport hat am 3.6. um 10:15 Folgendes geschrieben:\n\n{NOTIFICATION}"
    result = extract_text(text)
    assert result.how == "marker" and result.text.startswith("The new text.")
    assert "Case #123" not in result.text


def test_marker_words_inside_a_sentence_are_not_the_marker():
    text = "Please reply above this line of the form.\n\nBob"
    assert extract_text(text) == ReplyText(text, False, "whole")


def test_marker_below_keeps_only_the_agents_lines():
    text = (f"On Mon, Support <case-1@example.com> wrote:\n> {MARKER}\n> Case #123\n\nFirst answer.\n"
            "> Customer: Ana Souza, plan Gold\nSecond answer.\n")
    assert extract_text(text) == ReplyText("First answer.\nSecond answer.", False, "marker")


def test_marker_not_quoted_and_nothing_above_is_empty():
    assert extract_text(f"\n\n{NOTIFICATION}") == ReplyText("", False, "marker")


# --- signatures ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("signature", [
    "-- \nBob Agent\nSupport",
    "Sent from my iPhone",
    "Enviado do meu iPhone",
    "Sent from my iPad",
    "Get Outlook for iOS<https://aka.ms/o0ukef>",
    "Obter o Outlook para Android<https://aka.ms/AAb9ysg>",
    "Sent from my Samsung Galaxy smartphone.",
])
def test_signatures_are_cut(signature):
    assert extract_text(f"The answer.\n\n{signature}\n") == ReplyText("The answer.", False, "whole")


@pytest.mark.parametrize("text", [
    "Sent from my iPhone, the photo shows the error.\n\nBob",  # not the last line
    "Part one\n--\n" + "\n".join(f"line {i}" for i in range(12)),  # a bare "--" far from the end
    "Thanks,\nBob Agent\nSupport | Example Ltd.",  # no delimiter: the agent's text
])
def test_signature_stripping_is_conservative(text):
    assert extract_text(text).text == text


# --- bounds and pathological mail ---------------------------------------------------------------------

def test_long_text_is_cut_to_the_bounds_and_says_so():
    text = "\n".join(f"line {i}" for i in range(3000))
    result = extract_text(text)
    assert result.truncated and result.how == "whole"
    assert result.text.splitlines() == [f"line {i}" for i in range(MAX_LINES)]


def test_exactly_the_bounds_is_not_truncation():
    text = "\n".join(f"line {i}" for i in range(MAX_LINES)) + "\n"
    assert extract_text(text) == ReplyText(text.rstrip("\n"), False, "whole")


def test_cut_below_the_quote_header_is_not_truncation():
    """The new text ended at the quote header, long before the cut: it is complete."""
    text = "Short answer.\n\nOn Mon, Ana <ana@acme.example> wrote:\n" + "> quoted\n" * 5000
    assert extract_text(text) == ReplyText("Short answer.", False, "quotequail")


def test_multibyte_text_is_cut_by_bytes_on_a_character_boundary():
    result = extract_text("é" * MAX_BYTES)
    assert result == ReplyText("é" * (MAX_BYTES // 2), True, "whole")


# Each runs in a child process with a generous limit: a stall fails the test instead of
# hanging the suite. No speed target here (those live in bench/): the check is that
# each returns, with the right text.
PATHOLOGICAL = {
    "one_mb_line": ("text", "'x' * (1 << 20)"),
    # a 1 MB line shaped like a quote header; quotequail's patterns take cubic time on it
    "one_mb_header_line": ("text", "'2024/1/1 ' + ' <' * 10000 + '@' * 10000 + '>x' * 12000 + 'y' * (1 << 20)"),
    "ten_thousand_quote_levels": ("text", "'Answer on top.\\n\\nOn Mon, Ana <ana@acme.example> wrote:\\n' + "
                                          "'>' * 10000 + ' deep\\n' + '>' * 9999 + ' less deep\\n'"),
    "quote_levels_one_to_ten_thousand": ("text", "'\\n'.join('>' * i + ' q' for i in range(1, 10001))"),
    "long_header_run": ("text", "'Answer.\\n' + 'From: x\\n' * 1500"),
    "cubic_lines": ("text", "'\\n'.join(('2024/1/1 ' + ' <' * 30 + '@' * 30 + '>x' * 30)[:199] for _ in range(5000))"),
    "ten_thousand_blockquotes": ("html", "'<div>Answer on top.</div><div class=\"gmail_quote\">On Mon, Ana "
                                         "&lt;ana@acme.example&gt; wrote:<br>' + '<blockquote>' * 10000 + 'deep' + "
                                         "'</blockquote>' * 10000 + '</div>'"),
    "one_mb_html_line": ("html", "'<div>' + 'y' * (1 << 20) + '</div>'"),
    "unclosed_html_comment": ("html", "'<p>Answer.</p><!--' + 'a' * (1 << 20)"),
}

_RUNNER = textwrap.dedent("""
    import json, sys
    from mailproc.replytext import extract_text, extract_html
    out = {}
    for name, (kind, expression) in json.load(sys.stdin).items():
        result = (extract_text if kind == "text" else extract_html)(eval(expression))
        out[name] = [result.text, result.truncated, result.how]
    json.dump(out, sys.stdout)
""")


@pytest.fixture(scope="module")
def pathological():
    done = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(PATHOLOGICAL), capture_output=True,
                          text=True, timeout=20, check=True)
    return {name: tuple(value) for name, value in json.loads(done.stdout).items()}


def test_one_mb_single_line(pathological):
    assert pathological["one_mb_line"] == ("x" * MAX_BYTES, True, "whole")
    text, truncated, how = pathological["one_mb_header_line"]
    assert (truncated, how) == (True, "whole") and text.startswith("2024/1/1  <")
    assert MAX_BYTES - 1 <= len(text) <= MAX_BYTES  # the cut may end on a space, which is trimmed


def test_ten_thousand_quote_levels(pathological):
    assert pathological["ten_thousand_quote_levels"] == ("Answer on top.", False, "quotequail")
    assert pathological["quote_levels_one_to_ten_thousand"] == ("", False, "quotequail")
    assert pathological["ten_thousand_blockquotes"] == ("Answer on top.", False, "quotequail")


def test_lines_that_make_quotequail_slow(pathological):
    assert pathological["long_header_run"][1:] == (False, "whole")
    assert pathological["long_header_run"][0].startswith("Answer.\nFrom: x\n")
    text, truncated, how = pathological["cubic_lines"]
    assert (truncated, how) == (True, "whole") and len(text.encode()) <= MAX_BYTES


def test_huge_html(pathological):
    assert pathological["one_mb_html_line"][1:] == (True, "whole")
    assert pathological["unclosed_html_comment"] == ("Answer.", True, "whole")
