"""parse(): real-world mail in, ParsedMail out, never an exception."""

from __future__ import annotations

import base64
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailproc.parse import ParsedMail, authentication_results, html_to_text, parse, parse_with_email

MAIL = Path(__file__).parent / "mail"


def sample(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def test_plain_mail_headers_addresses_and_date():
    m = parse(sample("plain.eml"))
    assert m.parser == "mail-parser" and m.defects == []
    assert m.message_id == "CAF1234.abcd@mail.acme.example"
    assert m.subject == "Cannot log in since this morning"
    assert (m.from_addr, m.from_name) == ("jane.doe@acme.example", "Jane Doe")
    assert m.to == ["support@example.com"]
    assert m.cc == ["bob@acme.example", "carol@acme.example"]
    assert m.reply_to == ["helpdesk@acme.example"]
    assert m.date == datetime(2024, 6, 3, 8, 0, tzinfo=timezone.utc)
    assert m.date.utcoffset() == timedelta(hours=2)
    assert m.content_type == "text/plain"
    assert m.text.startswith("Hello,\n\nsince this morning") and m.html == ""
    assert m.header("Return-Path") == "<jane.doe@acme.example>"
    assert len(m.headers["received"]) == 1 and "\n" not in m.headers["received"][0]


def test_html_only_mail_gets_text_derived_from_html():
    m = parse(sample("html_only.eml"))
    assert m.content_type == "text/html"
    assert "<p>" in m.html
    assert m.text == "Hello & good morning,\n\nwhere is order #4711?\nIt was due on Friday.\n\nCafé <Team>"
    assert "alert" not in m.text and "color" not in m.text and "ignored" not in m.text


def test_alternative_with_attachments_keeps_text_and_records_sizes_only():
    m = parse(sample("alternative_attachments.eml"))
    assert m.content_type == "multipart/mixed"
    assert m.text.strip() == "Please find the invoice attached."
    assert "<b>invoice</b>" in m.html
    pdf_size = len(base64.b64decode("JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8"
                                    "PC9Sb290IDEgMCBSPj4KJSVFT0YK"))
    assert [(a.filename, a.content_type, a.size) for a in m.attachments] == [
        ("invoice-2024-06.pdf", "application/pdf", pdf_size), ("résumé.png", "image/png", 8)]


def test_iso_8859_1_body_and_encoded_headers():
    m = parse(sample("latin1.eml"))
    assert m.subject == "Problème de facturation"
    assert (m.from_name, m.from_addr) == ("François Müller", "francois@exemple.example")
    assert "arrivée" in m.text and "à vous" in m.text


def test_unknown_charset_decodes_as_utf8_with_a_defect():
    m = parse(sample("unknown_charset.eml"))
    assert m.text.startswith("Café and a stray byte \ufffd here.")
    assert any("x-unknown" in d for d in m.defects)


def test_unknown_charset_in_ascii_text_still_noted():
    raw = b"From: a@b.example\nSubject: s\nContent-Type: text/plain; charset=x-mystery\n\nplain ascii\n"
    m = parse(raw)
    assert m.text.strip() == "plain ascii"
    assert any("x-mystery" in d for d in m.defects)


def test_raw_8bit_headers_utf8_then_latin1():
    m = parse(sample("eight_bit_headers.eml"))
    assert m.subject == "Grüße aus Köln"
    assert (m.from_name, m.from_addr) == ("Jörg Schmidt", "joerg@firma.example")
    assert m.headers["cc"] == ["René <rene@firma.example>"]  # latin-1 byte 0xE9
    assert m.cc == ["rene@firma.example"]
    assert any("latin-1" in d for d in m.defects)
    assert m.text.strip() == "Hallo, schöne Grüße."


def test_rfc2047_folded_subject_and_reference_lists():
    m = parse(sample("rfc2047.eml"))
    assert m.subject == "产品无法启动 — urgent"
    assert m.from_name == "张三"
    assert m.headers["to"] == ["Support Équipe <support@example.com>"]
    assert m.in_reply_to == ["first@example.com"]
    assert m.references == ["root@example.com", "first@example.com"]
    assert m.text == "产品无法启动。"


def test_no_message_id_and_unparseable_date():
    m = parse(sample("no_message_id.eml"))
    assert m.message_id is None and m.date is None
    assert m.from_addr == "legacy@oldsystem.example"
    assert m.text.startswith("A mail from a system")


def test_empty_body_and_empty_subject():
    m = parse(sample("empty_body.eml"))
    assert (m.subject, m.text, m.html, m.attachments) == ("", "", "", [])
    assert m.message_id == "empty-body-1@example.net"


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n  \n"])
def test_zero_byte_input_is_headers_only(raw):
    m = parse(raw)
    assert isinstance(m, ParsedMail) and m.parser == "headers-only"
    assert (m.message_id, m.from_addr, m.subject, m.text) == (None, "", "", "")
    assert m.defects and "empty" in m.defects[0]


def test_sample_empty_file_is_zero_bytes():
    assert sample("empty.eml") == b"" and parse(sample("empty.eml")).parser == "headers-only"


def test_malformed_boundary_keeps_the_body_as_text():
    for m in (parse(sample("malformed_boundary.eml")), parse_with_email(sample("malformed_boundary.eml"))):
        assert m.content_type == "multipart/mixed"
        assert "boundary in the header is not the one used" in m.text
        assert any("StartBoundaryNotFound" in d for d in m.defects)


def _nested(depth: int) -> bytes:
    head = ["From: deep@example.com", "Subject: deep", "Message-ID: <deep@example.com>", "MIME-Version: 1.0"]
    body = []
    for i in range(depth):
        body += [f"Content-Type: multipart/mixed; boundary=b{i}", "", f"--b{i}"]
    body += ["Content-Type: text/plain", "", "innermost text"]
    body += [f"--b{i}--" for i in reversed(range(depth))]
    return ("\n".join(head + body) + "\n").encode()


def _nested_messages(depth: int) -> bytes:
    head = "From: deep@example.com\nSubject: deep\nMessage-ID: <deep@example.com>\n"
    layer = "Content-Type: message/rfc822\n\nSubject: inner\n"
    return (head + layer * depth + "\ninner text\n").encode()


def test_200_levels_of_nesting_are_parsed():
    m = parse(_nested(200))
    assert m.text.strip() == "innermost text"
    assert m.subject == "deep" and m.content_type == "multipart/mixed"


@pytest.mark.parametrize("raw", [_nested(3000), _nested_messages(3000)], ids=["multipart", "rfc822"])
def test_absurd_nesting_is_refused_quickly_and_keeps_headers(raw):
    start = time.perf_counter()
    m = parse(raw)
    assert time.perf_counter() - start < 0.5
    assert m.parser == "headers-only"
    assert any("nested MIME containers" in d for d in m.defects)
    assert (m.message_id, m.subject, m.from_addr) == ("deep@example.com", "deep", "deep@example.com")
    assert m.content_type in ("multipart/mixed", "message/rfc822")


def test_recursion_in_the_stdlib_fallback_ends_in_headers_only():
    m = parse_with_email(_nested(1200))
    assert m.parser == "headers-only"
    assert any("RecursionError" in d for d in m.defects)
    assert m.subject == "deep"


def test_huge_attachment_size_recorded_content_not_kept():
    size = 30 * 1024 * 1024
    encoded = base64.encodebytes(b"\x00\x01\x02" * (size // 3))
    raw = (b"From: big@example.com\nSubject: big\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nsee attachment\n"
           b"--XX\nContent-Type: application/octet-stream; name=dump.bin\n"
           b"Content-Disposition: attachment; filename=dump.bin\nContent-Transfer-Encoding: base64\n\n"
           + encoded + b"--XX--\n")
    del encoded
    tracemalloc.start()
    m = parse(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [(a.filename, a.size) for a in m.attachments] == [("dump.bin", size)]
    assert not any(hasattr(a, "payload") for a in m.attachments)
    assert m.text.strip() == "see attachment"
    # the attachment's lines are never held one object per line (that costs ~8x)
    assert peak < 2 * len(raw), f"peak {peak / 1e6:.0f} MB for {len(raw) / 1e6:.0f} MB"


def test_large_mail_text_parts_are_kept_and_attachment_sizes_exact():
    text = ("Zeile mit Umlauten: äöü, and more words to make it long.\n" * 40000).encode()
    blob = bytes(range(256)) * 8000 + b"tail"
    raw = (b"From: big@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
           b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(text).replace(b"\n", b"\r\n")
           + b"--XX\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=a.jpg\r\n\r\n"
           + base64.encodebytes(blob).replace(b"\n", b"\r\n")
           + b"--XX\r\nContent-Type: application/zip; name=b.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(blob[:-1]) + b"--XX--\r\n")
    assert len(raw) > 2_000_000
    for m in (parse(raw), parse_with_email(raw)):
        assert m.text.replace("\r\n", "\n") == text.decode()
        assert [(a.filename, a.size) for a in m.attachments] == [("a.jpg", len(blob)), ("b.zip", len(blob) - 1)]


def test_stdlib_fallback_agrees_with_mail_parser_on_every_sample():
    for path in sorted(MAIL.glob("*.eml")):
        raw = path.read_bytes()
        if not raw:
            continue
        a, b = parse(raw), parse_with_email(raw)
        assert b.parser == "email", path.name
        assert (a.message_id, a.subject, a.from_addr, a.to, a.cc, a.date, a.content_type) == \
               (b.message_id, b.subject, b.from_addr, b.to, b.cc, b.date, b.content_type), path.name
        assert a.text.strip().split() == b.text.strip().split() or path.name.startswith("bounce"), path.name
        assert [(x.filename, x.size) for x in a.attachments] == [(x.filename, x.size) for x in b.attachments], \
            path.name


def test_html_to_text_blocks_and_entities():
    assert html_to_text("<div>a&nbsp;&amp;&#x42;</div><ul><li>one</li><li>two</li></ul>") == "a &B\n\none\n\ntwo"
    assert html_to_text("unclosed <b>bold <i>x") == "unclosed bold x"


def test_parse_speed_on_a_typical_mail():
    body = "A line of ordinary support mail text, nothing special about it.\n" * 40
    raw = ("From: \"Jane\" <jane@acme.example>\nTo: support@example.com\nSubject: =?utf-8?q?H=C3=A9llo?=\n"
           "Date: Mon, 3 Jun 2024 10:00:00 +0200\nMessage-ID: <speed@acme.example>\nMIME-Version: 1.0\n"
           "Content-Type: multipart/alternative; boundary=BB\n\n--BB\nContent-Type: text/plain; charset=utf-8\n\n"
           + body + "\n--BB\nContent-Type: text/html; charset=utf-8\n\n<p>" + body + "</p>\n--BB--\n").encode()
    assert 4000 < len(raw) < 7000
    parse(raw)
    start = time.perf_counter()
    for _ in range(100):
        parse(raw)
    per_mail = (time.perf_counter() - start) / 100
    assert per_mail < 0.01, f"{per_mail * 1000:.2f} ms per 5 KB mail"


@pytest.mark.parametrize("raw", [
    bytes(range(256)) * 4,
    b"\x00" * 100,
    b"no colon header line\nsecond line\n\nbody",
    b"Content-Type: multipart/mixed; boundary=\"x\"\n\n--x\nContent-Type: text/plain\n\ntruncated",
    b"Content-Type: multipart/mixed\n\nno boundary parameter at all\n",
    b"Content-Type: text/plain; charset=\"=?utf-8?q?x?=\"\nContent-Transfer-Encoding: base64\n\n!!!not base64",
    b"Subject: =?bogus-charset?B?w6k=?= and =?utf-8?Q?broken=ZZ?=\nFrom: <>\nTo: ,,,\n\nx",
    b"Date: Mon, 99 Foo 20245 99:99:99 +9999\nMessage-ID: <>\nReferences: garbage <a@b> <\n\n",
], ids=["binary", "nul", "no-colon", "truncated", "no-boundary", "bad-base64", "bad-words", "bad-ids"])
def test_garbage_never_raises(raw):
    m = parse(raw)
    assert isinstance(m, ParsedMail)
    assert isinstance(m.text, str) and isinstance(m.headers, dict)
    assert m.date is None or m.date.tzinfo is not None


def test_bad_encoded_words_and_ids_degrade_gracefully():
    m = parse(b"Subject: =?bogus-charset?B?w6k=?= ok\nMessage-ID: <>\nReferences: garbage <a@b> <\n\nx")
    assert m.subject == "é ok"
    assert any("bogus-charset" in d for d in m.defects)
    assert m.message_id is None and m.references == ["a@b"]


def test_encoded_names_are_decoded_after_the_address_list_is_split():
    m = parse(b"From: =?utf-8?q?Eve=0D=0ABcc:_evil@x.example?= <a@h.example>\r\n"
              b"To: =?utf-8?q?Smith,_John?= <j@h.example>, =?utf-8?b?RG9lLCBKYW5l?= <d@h.example>\r\n"
              b"Cc: x@h.example (Old =?utf-8?q?St=C3=BFle?=)\r\nReply-To: =?utf-8?q?a,b?= <r@h.example>\r\n\r\nhi")
    assert (m.from_addr, m.from_name) == ("a@h.example", "Eve Bcc: evil@x.example")
    assert m.to == ["j@h.example", "d@h.example"] and m.reply_to == ["r@h.example"]
    assert m.cc == ["x@h.example"]
    assert parse(b"From: =?utf-8?q?Smith,_John?= <j@h.example>\r\n\r\nhi").from_name == "Smith, John"
    assert parse(b"From: x@h.example (Old =?utf-8?q?St=C3=BFle?=)\r\n\r\nhi").from_name == "Old Stÿle"


def test_unreadable_address_header_falls_back_and_never_raises():
    m = parse(b"From: a@b.example <<<>>> ,;:\r\nTo: ,,,@@@ <\r\n\r\nhi")
    assert isinstance(m, ParsedMail) and m.from_addr in ("a@b.example", "")


@pytest.mark.parametrize("parser", [parse, parse_with_email])
def test_decoded_text_holds_no_nul_and_no_lone_surrogates(parser):
    raw = (b"From: =?utf-8?q?Nu=00ll?= <n@h.example>\r\nTo: =?utf-8?b?////?= <t@h.example>\r\n"
           b"Subject: before\x00after =?utf-8?q?and=00more?=\r\nX-Thing: a\x00b\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\x00text\r\n")
    m = parser(raw)
    assert (m.subject, m.from_name, m.text.strip()) == ("beforeafter andmore", "Null", "bodytext")
    assert m.header("x-thing") == "ab"
    for value in [m.subject, m.from_name, m.text, m.html, *(v for vs in m.headers.values() for v in vs)]:
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates: a database driver would refuse them


def test_authentication_results_only_from_the_named_server():
    m = parse(b"From: a@h.example\r\n"
              b"Authentication-Results: MX.Ours.example; spf=pass smtp.mailfrom=h.example;\r\n"
              b" dmarc=fail header.from=h.example\r\n"
              b"Authentication-Results: mx.ours.example; ;; unreadable\r\n"
              b"Authentication-Results: forger.example; dmarc=pass header.from=h.example\r\n\r\nhi")
    assert authentication_results(m, "mx.ours.example") == [("spf", "pass"), ("dmarc", "fail")]
    assert authentication_results(m, "forger.example") == [("dmarc", "pass")]
    assert authentication_results(m, "nobody.example") == []


@pytest.mark.parametrize("value, expected", [
    ("J. Smith <J@X.example>", [("J. Smith", "j@x.example")]),
    ('"Smith, John" <j@x.example>, b@x.example', [("Smith, John", "j@x.example"), ("", "b@x.example")]),
    ("a@x.example,, Bob  Bobson <b@x.example>", [("", "a@x.example"), ("Bob Bobson", "b@x.example")]),
    ("Jöhn Dœ <j@x.example>", [("Jöhn Dœ", "j@x.example")]),
    ("undisclosed-recipients:;", []),
    ('"quoted local"@x.example', [("", '"quoted local"@x.example')]),
    ("Team: a@x.example, B <b@x.example>;", [("", "a@x.example"), ("B", "b@x.example")]),
])
def test_plain_and_structured_address_lists(value, expected):
    m = parse(f"From: {value}\r\nTo: {value}\r\n\r\nhi".encode())
    assert (m.from_name, m.from_addr) == (expected[0] if expected else ("", ""))
    assert m.to == [addr for _, addr in expected]


def test_addresses_with_control_characters_are_not_addresses():
    m = parse(b'From: "esc\x1b"@h.example\r\nTo: a\x07b@h.example, ok@h.example\r\nCc: "a\x85b"@h.example\r\n\r\nhi')
    assert (m.from_addr, m.to, m.cc) == ("", ["ok@h.example"], [])
    assert any("control characters" in d for d in m.defects)
