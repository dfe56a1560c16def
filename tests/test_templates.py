"""The template loader and the acknowledgement mail."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mailproc.errors import ConfigError
from mailproc.models import Case
from mailproc.subject import reply_subject
from mailproc.templates import Templates
from mailproc.testing import REPO


def ack_context(**overrides):
    context = dict(
        case=Case(id=12, type="bug", priority="P2", summary="Cannot log in"),
        token="[Case #12]",
        contact_name="Ana Sousa",
        expected_response="within 2 business hours",
        expected_by=datetime(2025, 3, 4, 11, 0, tzinfo=ZoneInfo("Europe/Lisbon")),
        type_label="Bug / Report a Problem",
        priority_label="P2 – Blocker",
        escalated=True,
        is_bug=True,
        mailbox_address="support@example.com",
        original_subject="Login page broken",
    )
    context.update(overrides)
    return context


@pytest.fixture
def templates():
    return Templates()  # the shipped ones


def test_repository_templates_are_valid(templates):
    assert templates.check(shipped=True) == []
    assert "acknowledgement" in templates.kinds()
    assert not any(kind.startswith("_") for kind in templates.kinds())


def test_acknowledgement_states_number_and_expected_time(templates):
    rendered = templates.render("acknowledgement", **ack_context())
    text, html = rendered
    assert rendered.subject == "Re: Login page broken [Case #12]"
    for part in (text, html):
        assert "case #12" in part
        assert "within 2 business hours" in part
        assert "Tuesday 4 March 2025, 11:00 WET" in part
        assert "Ana Sousa" in part
        assert "support@example.com" in part
    assert not text.startswith("Subject:")
    assert "<title>Re: Login page broken [Case #12]</title>" in html


def test_escalation_and_bug_questions_only_when_they_apply(templates):
    text, _ = templates.render("acknowledgement", **ack_context())
    assert "escalated it to our\nengineering team and to our on-call engineer" in text
    assert "different web browser" in text and "different computer" in text
    assert "anyone else in your business" in text

    text, html = templates.render("acknowledgement", **ack_context(escalated=False, is_bug=False))
    for part in (text, html):
        assert "escalated" not in part
        assert "web browser" not in part


def test_html_escapes_customer_text_and_text_part_does_not(templates):
    case = Case(id=7, summary='<script>alert("x")</script> & more')
    text, html = templates.render("acknowledgement",
                                  **ack_context(case=case, token="[Case #7]", contact_name="<b>Bob</b>"))
    assert "<script>" not in html and "<b>Bob</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;Bob&lt;/b&gt;" in html
    assert '<script>alert("x")</script> & more' in text


def test_subject_falls_back_to_summary_and_keeps_existing_prefix(templates):
    rendered = templates.render("acknowledgement", **ack_context(original_subject=""))
    assert rendered.subject == "Re: Cannot log in [Case #12]"
    rendered = templates.render("acknowledgement", **ack_context(original_subject="RE: help\n please"))
    assert rendered.subject == "RE: help please [Case #12]"


def test_no_subject_we_send_carries_a_command_group(templates, tmp_path):
    # a reply that quotes our subject must not bring a command back
    rendered = templates.render("acknowledgement", **ack_context(original_subject="Printer [status=resolved]"))
    assert rendered.subject == "Re: Printer [Case #12]"
    assert "<title>Re: Printer [Case #12]</title>" in rendered.html
    (tmp_path / "acknowledgement.txt.j2").write_text("Subject: {{ case.summary }} {{ token }}\n\nHello\n")
    site = Templates(tmp_path)
    rendered = site.render("acknowledgement", **ack_context(
        case=Case(id=12, type="bug", priority="P2", summary="[close] Cannot log in [note]")))
    assert rendered.subject == "Cannot log in [Case #12]"


def test_reply_subject():
    assert reply_subject("Re: x [Case #3]", "[Case #3]") == "Re: x [Case #3]"
    assert reply_subject("AW: Frage", "[Case #3]") == "AW: Frage [Case #3]"
    assert reply_subject(None, "[Case #3]") == "Re: Your support request [Case #3]"


def test_help_articles_are_optional_and_listed(templates):
    articles = [dict(title="Resetting your password", url="https://help.example.com/reset")]
    text, html = templates.render("acknowledgement", **ack_context(help_articles=articles))
    assert "Resetting your password: https://help.example.com/reset" in text
    assert '<a href="https://help.example.com/reset">Resetting your password</a>' in html


def test_missing_variable_names_file_and_line(templates):
    context = ack_context()
    del context["expected_response"]
    with pytest.raises(ConfigError) as info:
        templates.render("acknowledgement", **context)
    message = str(info.value)
    assert "acknowledgement.txt.j2" in message and "expected_response" in message
    source = (REPO / "templates" / "acknowledgement.txt.j2").read_text().splitlines()
    line = next(n for n, text in enumerate(source, 1) if "expected_response" in text)
    assert f"line {line}" in message


def test_shipped_templates_are_the_repository_files_read_through_the_package(templates):
    assert templates.shipped == (REPO / "templates").resolve()
    in_force = {f.name: f.origin for f in templates.in_force()}
    assert in_force == {path.name: "shipped" for path in (REPO / "templates").glob("*.j2")}
    assert {"_base.html.j2", "acknowledgement.html.j2", "acknowledgement.txt.j2"} <= set(in_force)


def test_site_file_replaces_only_the_shipped_file_of_its_name(tmp_path):
    (tmp_path / "acknowledgement.txt.j2").write_text(
        "Subject: Ticket {{ token }}\n\nWe have your mail, {{ contact_name }}.\n")
    site = Templates(tmp_path)
    assert site.check() == []
    rendered = site.render("acknowledgement", **ack_context())
    assert rendered.subject == "Ticket [Case #12]"
    assert rendered.text == "We have your mail, Ana Sousa.\n"
    assert "within 2 business hours" in rendered.html  # the HTML part is still the shipped one
    assert "<title>Ticket [Case #12]</title>" in rendered.html
    origins = {f.name: (f.origin, f.path) for f in site.in_force()}
    assert origins["acknowledgement.txt.j2"] == ("override", tmp_path / "acknowledgement.txt.j2")
    assert origins["acknowledgement.html.j2"][0] == "shipped"


def test_site_layout_is_used_by_the_shipped_html_part(tmp_path):
    shipped_layout = (REPO / "templates" / "_base.html.j2").read_text(encoding="utf-8")
    (tmp_path / "_base.html.j2").write_text(shipped_layout.replace("<body", "<body data-site=\"acme\"", 1))
    _, html = Templates(tmp_path).render("acknowledgement", **ack_context())
    assert 'data-site="acme"' in html


def test_errors_in_a_site_file_name_that_file(tmp_path):
    (tmp_path / "acknowledgement.html.j2").write_text("<p>{{ case.id }}</p>\n<p>{{ no_such_variable }}</p>\n")
    with pytest.raises(ConfigError) as info:
        Templates(tmp_path).render("acknowledgement", **ack_context())
    assert str(info.value).startswith(f"{tmp_path / 'acknowledgement.html.j2'}:line 2: ")


def test_check_reports_file_and_line(tmp_path):
    (tmp_path / "good.txt.j2").write_text("Subject: hi {{ token }}\nBody\n")
    (tmp_path / "good.html.j2").write_text('{% extends "_layout.html.j2" %}\n')
    (tmp_path / "broken.txt.j2").write_text("Subject: x\n\nline two\n{% if x %}\nno endif\n")
    (tmp_path / "broken.html.j2").write_text("<p>{{ x }}</p>\n")
    (tmp_path / "nosubject.txt.j2").write_text("Hello\n")
    (tmp_path / "orphan.html.j2").write_text("<p>hi</p>\n")
    errors = Templates(tmp_path).check()
    text = "\n".join(errors)
    assert f"{tmp_path / 'broken.txt.j2'}:5:" in text  # the unclosed if is reported at end of file
    assert f"{tmp_path / 'good.html.j2'}:1: refers to _layout.html.j2" in text
    assert f"{tmp_path / 'nosubject.txt.j2'}:1: the first line must be 'Subject: ...'" in text
    assert "no HTML part nosubject.html.j2" in text
    assert "no text part orphan.txt.j2" in text
    assert len(errors) == 5  # the shipped templates beside them are fine
    shipped = [path.name[:-len(".txt.j2")] for path in (REPO / "templates").glob("*.txt.j2")]
    assert Templates(tmp_path).kinds() == sorted(["broken", "good", "nosubject", *shipped])
    assert "acknowledgement" in shipped


def test_a_file_edited_between_two_loads_is_read_anew(tmp_path):
    """Compiled templates are kept for the process (each context checks them all at
    start-up), but only while a file's text is the same: a reload sees an edit."""
    ack = tmp_path / "acknowledgement.txt.j2"
    ack.write_text("Subject: Ticket {{ token }}\n\nFirst wording.\n")
    assert Templates(tmp_path).check() == []
    assert Templates(tmp_path).render("acknowledgement", **ack_context()).text == "First wording.\n"
    ack.write_text("Subject: Ticket {{ token }}\n\nSecond wording.\n{% if x %}\n")
    [error] = Templates(tmp_path).check()
    assert error.startswith(f"{ack}:4: Unexpected end of template.") and "'endif'" in error
    ack.write_text("Subject: Ticket {{ token }}\n\nSecond wording.\n")
    assert Templates(tmp_path).check() == []
    assert Templates(tmp_path).render("acknowledgement", **ack_context()).text == "Second wording.\n"


def test_start_up_compiles_only_what_the_site_changed(tmp_path, monkeypatch):
    """Every start checks the templates; the shipped files and unchanged copies of them
    (`mailproc init` makes those) are compiled only by `mailproc check`."""
    from mailproc import templates as module
    compiled: list[str] = []
    original = module._compiled.__wrapped__
    monkeypatch.setattr(module, "_compiled", lambda name, *rest: compiled.append(name) or original(name, *rest))
    shipped = REPO / "templates"
    for name in ("acknowledgement.txt.j2", "acknowledgement.html.j2"):  # copies, as init makes them
        (tmp_path / name).write_text((shipped / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "closure.txt.j2").write_text("Subject: Closed {{ token }}\n\nDone.\n")
    assert Templates(tmp_path).check() == []
    assert compiled == ["closure.txt.j2"]
    compiled.clear()
    assert Templates(tmp_path).check(shipped=True) == []
    assert sorted(compiled) == sorted(path.name for path in shipped.glob("*.j2"))


def test_check_on_missing_directory(tmp_path):
    assert Templates(tmp_path / "nowhere").check() == [f"{tmp_path / 'nowhere'}: templates directory not found"]


def test_render_without_subject_line_is_an_error(tmp_path):
    (tmp_path / "x.txt.j2").write_text("Hello\n")
    (tmp_path / "x.html.j2").write_text("<p>Hello</p>\n")
    with pytest.raises(ConfigError, match=r"x\.txt\.j2:line 1: the first line must be 'Subject: \.\.\.'"):
        Templates(tmp_path).render("x")
