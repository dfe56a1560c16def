"""The new text of a reply: what an agent wrote, without the history they answered.

An agent's answer is relayed to the customer, so what is cut decides what
the customer reads. Losing the agent's words silently is the worse mistake;
sending some quoted history along is the milder one. Every rule below leans
that way.

In order:

1. Bound the input (64 KB, 2,000 lines) before anything else looks at it:
   quote detection runs dozens of regular expressions on every line, and a
   hostile mail must not stall the pipeline.
2. Our own marker (`MARKER`), which every notification to an agent carries
   on a line of its own: the text above it is the reply. Replies to a
   notification never carry any of the notification (it is internal: plan,
   priority, command reference), so an agent who wrote below or between the
   quoted lines of a notification gets only their own, unquoted, lines.
3. Otherwise quotequail finds the quote header ("On … wrote:", "Em …
   escreveu:", "Am … schrieb", "Le … a écrit :", Outlook's separator line and
   "-----Original Message-----", a "From:/Sent:" block, a block of `>` lines)
   and the text above it is the reply. A text that also goes on below the
   quote is bottom-posted (only the text below is new) or interleaved (the
   answers sit between the quoted questions and need them: the whole text
   is kept, quotes and all).
4. The signature goes: a `-- ` line and what follows, a final "Sent from my
   iPhone" and its kin. Then trailing whitespace.

HTML-only mail is read through `html_lines`, which keeps what plain text
keeps and the text derived by `parse.html_to_text` loses: the quote level of
each line (`<blockquote>` becomes `> `) and Outlook's reply separators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

import quotequail  # type: ignore[import-untyped]  # no type information shipped

from mailproc.parse import ParsedMail, html_to_text

MARKER = "-- Reply above this line --"
"""The line our notifications carry above everything the agent may answer to."""

MAX_BYTES = 64 * 1024  # of UTF-8 text examined
MAX_LINES = 2000  # of text examined
MAX_HTML = 256 * 1024  # characters of HTML read for HTML-only mail (markup is verbose)

# Lines longer than this are shown to quotequail as a neutral stand-in: no quote
# header is that long, and some of its patterns take time cubic in a line's length.
PROBE_CHARS = 200
# quotequail re-reads a run of "Name: value" lines from each of its lines (time
# quadratic in the run); no real header block is this long, so longer runs are broken.
HEADER_RUN = 30
_STAND_IN = "\u2026"

How = Literal["marker", "quotequail", "whole"]


@dataclass(frozen=True)
class ReplyText:
    """The new text, whether the input was cut short where the text was taken
    from (so the text may be incomplete), and which rule found it."""

    text: str
    truncated: bool
    how: How


def extract(mail: ParsedMail) -> ReplyText:
    """The new text of `mail`: from its text/plain body, or from its HTML when that is all it has."""
    if mail.html.strip() and _text_is_from_html(mail):
        lines, cut = html_lines(mail.html)
        return _extract(lines, cut)
    return extract_text(mail.text)


def extract_text(text: str) -> ReplyText:
    """The new text of a plain-text body."""
    lines, cut = _bounded(text)
    return _extract(lines, cut)


def extract_html(html: str) -> ReplyText:
    """The new text of an HTML body."""
    lines, cut = html_lines(html)
    return _extract(lines, cut)


def _text_is_from_html(mail: ParsedMail) -> bool:
    """Whether `mail.text` is only what parse derived from the HTML (no text/plain part).

    Compared on a bounded prefix: the HTML may be huge and the answer only
    needs its beginning.
    """
    if not mail.text.strip():
        return True
    if len(mail.html) <= MAX_HTML:
        return mail.text == html_to_text(mail.html)
    probe = html_to_text(mail.html[:MAX_HTML])
    probe = probe[:min(1024, len(probe) // 2)]
    return bool(probe) and mail.text.startswith(probe)


# --- bounds ------------------------------------------------------------------------


def _bounded(text: str) -> tuple[list[str], bool]:
    """At most MAX_BYTES of UTF-8 and MAX_LINES lines of `text`, and whether it was cut.

    The slice comes first, so nothing below ever touches more than that.
    """
    cut = len(text) > MAX_BYTES
    text = text[:MAX_BYTES]
    if len(text) > MAX_BYTES // 4:  # only then can it be longer in bytes than in characters
        data = text.encode("utf-8", "surrogatepass")
        if len(data) > MAX_BYTES:
            text = data[:MAX_BYTES].decode("utf-8", "ignore")
            cut = True
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n", MAX_LINES)
    if len(lines) > MAX_LINES:
        cut = cut or lines[MAX_LINES] != ""  # "" only if the last line kept ended the text
        lines = lines[:MAX_LINES]
    return lines, cut


# --- the rules ------------------------------------------------------------------------


def _extract(lines: list[str], cut: bool) -> ReplyText:
    marker = _find_marker(lines)
    if marker is not None:
        return _around_marker(lines, marker, cut)
    top, bottom = _split(lines)
    if top is None or bottom is None:
        return _result(lines, cut, "whole")
    if not _signature_stripped(bottom):
        return _result(top, False, "quotequail")
    if not _signature_stripped(top) and not any(_is_quoted(line) for line in bottom):
        return _result(bottom, cut, "quotequail")  # bottom-posted: only the text below is new
    return _result(lines, cut, "whole")  # interleaved: the answers need their questions


def _result(lines: list[str], truncated: bool, how: How) -> ReplyText:
    return ReplyText("\n".join(_signature_stripped(lines)), truncated, how)


def _around_marker(lines: list[str], at: int, cut: bool) -> ReplyText:
    """The text above our marker, without the quote header its client put above the quoted
    notification; or, when the agent wrote only below or between its quoted lines, those."""
    above = lines[:_header_start(lines, at)]
    if _signature_stripped(above):
        return _result(above, False, "marker")
    if not _is_quoted(lines[at]):
        return ReplyText("", False, "marker")  # nothing new: a reply with only commands
    below = [line for line in lines[at + 1:] if not _is_quoted(line)]
    return _result(_squeeze_blank(below), cut, "marker")


def _header_start(lines: list[str], at: int) -> int:
    """Where the quote header above line `at` (the marker) begins, or `at` if there is none.

    Only the block of lines right above the marker is asked about (a quote
    header is at most a few lines: "On … wrote:", wrapped or not, or an
    Outlook separator and header block), with the marker shown quoted below
    it as the quoted notification would be. Everything above that block is
    the agent's own text, quotes included.
    """
    end = at
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    start = end
    while start > 0 and lines[start - 1].strip() and end - start < _HEADER_BLOCK:
        start -= 1
    if start == end:
        return at
    top, _ = _split(lines[start:end] + ["> " + MARKER])
    return at if top is None else start + len(top)


# --- our marker ----------------------------------------------------------------------------

_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]*)*")
_MARKER_LINE = re.compile(r"[-\u2013\u2014=#_*\s\ufeff\u200b]*reply\s+above\s+this\s+line[-\u2013\u2014=#_*\s]*", re.I)


def _unquoted(line: str) -> str:
    return line[_QUOTE_PREFIX.match(line).end():]  # type: ignore[union-attr]  # always matches


def _find_marker(lines: list[str]) -> int | None:
    """Index of the first line holding MARKER, quoted with `>` or not, whole or wrapped onto the next line."""
    for i, line in enumerate(lines):
        if "line" not in line.lower() and "reply" not in line.lower():
            continue  # cheap: the marker, wrapped or not, has one of these on its first line
        here = _unquoted(line).strip()
        if len(here) > 80:
            continue
        if _MARKER_LINE.fullmatch(here):
            return i
        if i + 1 < len(lines) and here and _MARKER_LINE.fullmatch(f"{here} {_unquoted(lines[i + 1]).strip()[:80]}"):
            return i
    return None


# --- quotequail, bounded and double-checked ------------------------------------------------

_HEADER_LIKE = re.compile(r"\*?[-\w ]+:")  # what quotequail counts as a header line
_HEADER = re.compile(r"\*?\s*([^\W\d_]+(?:[ .'-][^\W\d_]+){0,3})\s*\*?\s*:")  # "From:", "*Enviada em:*", "De :"
_FROM_NAMES = {"from", "de", "von", "van", "da", "från", "fra", "od", "от"}
_DATE_OR_SUBJECT_NAMES = {
    "sent", "date", "enviada em", "enviado em", "enviado", "enviada", "data", "gesendet", "datum", "envoyé",
    "enviado el", "fecha", "inviato", "verzonden", "skickat", "sendt", "subject", "assunto", "betreff", "objet",
    "asunto", "oggetto", "onderwerp", "ämne", "emne", "temat", "тема", "дата",
}
_SEPARATOR = re.compile(r"-{3,}\s*[^-]{1,40}?\s*-{3,}|_{20,}")
_ATTEMPTS = 3
_HEADER_BLOCK = 10  # lines a quote header right above our marker may take


def _probe(lines: list[str]) -> list[str]:
    """The lines as quotequail is shown them: one for one, long lines and overlong runs of
    header-like lines replaced by a neutral stand-in, so its work stays linear.

    quotequail reads a header block on through blank lines and through single
    other lines (as wrapped values); only two other lines in a row end it.
    """
    probe = []
    run = 0  # lines since two other lines in a row
    others = 0  # other lines in a row
    forced = 0  # stand-ins still to put, to end an overlong run
    for line in lines:
        if forced or len(line) > PROBE_CHARS:
            forced = max(0, forced - 1)
            probe.append(f"> {_STAND_IN}" if line.startswith(">") else _STAND_IN)
            others += 1
            if others >= 2:
                run = 0
            continue
        probe.append(line)
        if not line.strip():
            continue
        if _HEADER_LIKE.match(_unquoted(line)):
            others = 0
        else:
            others += 1
            if others >= 2:
                run = 0
                continue
        run += 1
        if run > HEADER_RUN:
            forced = 2
    return probe


def _split(lines: list[str]) -> tuple[list[str] | None, list[str] | None]:
    """(lines above the quote, lines below it), as quotequail sees them; (None, None) when
    it finds no quote, or only quote headers that do not hold up (see `_holds_up`)."""
    probe = _probe(lines)
    for _ in range(_ATTEMPTS):
        found = quotequail.unwrap("\n".join(probe))
        if not found:
            return None, None
        top_end = _count_top(probe, found.get("text_top", ""))
        bottom_start = len(probe) - _count_bottom(probe, found.get("text_bottom", ""))
        start = _next_filled(probe, top_end)
        if start is None or _holds_up(probe, start):
            top = lines[:top_end]
            while top and _SEPARATOR.fullmatch(top[-1].strip() or "-"):
                top.pop()  # "-----Mensagem original-----" and kin quotequail does not know
            return top, lines[max(bottom_start, top_end):]
        for i in range(start, min(len(probe), start + 8)):  # a false header: never again
            if not probe[i].strip():
                break
            probe[i] = _STAND_IN
    return None, None


def _count_top(probe: list[str], text_top: str) -> int:
    """How many lines `text_top` (quotequail's stripped join of the first lines) spans."""
    if not text_top:
        return 0
    leading = 0
    while leading < len(probe) and not probe[leading].strip():
        leading += 1
    return leading + text_top.count("\n") + 1


def _count_bottom(probe: list[str], text_bottom: str) -> int:
    """How many of the last lines `text_bottom` spans, blank ones after it included."""
    if not text_bottom:
        return 0
    trailing = 0
    while trailing < len(probe) and not probe[-1 - trailing].strip():
        trailing += 1
    return trailing + text_bottom.count("\n") + 1


def _next_filled(lines: list[str], i: int) -> int | None:
    while i < len(lines):
        if lines[i].strip():
            return i
        i += 1
    return None


def _holds_up(lines: list[str], start: int) -> bool:
    """Whether the quote quotequail found at `start` looks like one a mail client wrote.

    quotequail takes any two header-like lines for a forwarded header block
    ("To: billing@…" and "Subject: refund" in an agent's instructions) and
    anything below an "On … wrote:" line for quoted, also when nothing is
    quoted. Clients write a quote header with the quote right below it, and a
    header block with the sender first and a date or subject in it.
    """
    if _is_quoted(lines[start]):
        return True  # a block of `>` lines, or a quote header inside one (iOS)
    following = [line for line in lines[start + 1:start + 12] if line.strip()][:8]
    header = _HEADER.match(lines[start].strip())
    if header and header.group(1).strip().lower() in _FROM_NAMES:
        return any(_header_name(line) in _DATE_OR_SUBJECT_NAMES for line in following)
    if header and not _SEPARATOR.fullmatch(lines[start].strip()):
        return False  # header-like, but not a sender: not a client's header block
    # A quote header or a separator line: the quote or the headers follow at once.
    return any(_is_quoted(line) or _header_name(line) in _FROM_NAMES for line in following[:3])


def _header_name(line: str) -> str:
    m = _HEADER.match(_unquoted(line).strip())
    return m.group(1).strip().lower() if m else ""


def _is_quoted(line: str) -> bool:
    return line.lstrip(" \t").startswith(">")


# --- signatures ------------------------------------------------------------------------------

_MOBILE = re.compile(
    r"(?:sent from my|enviado (?:do|de|pelo) meu|enviada (?:do|de|pelo) meu)\s+"
    r"(?:iphone|ipad|ipod|android(?: phone| device)?|mobile(?: device)?|smartphone|celular|telem[oó]vel|"
    r"blackberry|samsung|galaxy|huawei|xiaomi|pixel)\b[^<>\n]{0,40}"
    r"|(?:get|sent from) outlook for (?:ios|android)"
    r"|(?:obter o|enviado do) outlook para (?:ios|android)"
    r"|sent from mail for windows(?: 1[01])?|enviado do email para windows(?: 1[01])?"
    r"|sent from yahoo mail (?:for iphone|for ipad|on android)|enviado do yahoo mail (?:para iphone|no android)",
    re.I,
)
_LINK = re.compile(r"\s*<https?://[^\s<>]{1,200}>\s*$")
_BARE_DELIMITER_LINES = 10  # "--" without its space ends a signature only this close to the end


def _signature_stripped(lines: list[str]) -> list[str]:
    """`lines` without the signature and surrounding blank lines, each line right-trimmed.

    Conservative: a `-- ` line (RFC 3676; the last one), a bare `--` only near
    the end (text converted from HTML loses the space), and a final one-line
    mobile signature. Names under a plain "Thanks," are the agent's text.
    """
    out = [line.rstrip() for line in lines]
    for i in range(len(out) - 1, -1, -1):
        if lines[i].rstrip("\n") == "-- " or (out[i] == "--" and len(out) - i <= _BARE_DELIMITER_LINES + 1):
            out = out[:i]
            break
    while out and not out[-1].strip():
        out.pop()
    if out and _MOBILE.fullmatch(_LINK.sub("", out[-1]).strip().rstrip(".")):
        out.pop()
    while out and not out[-1].strip():
        out.pop()
    while out and not out[0].strip():
        out.pop(0)
    return out


def _squeeze_blank(lines: list[str]) -> list[str]:
    """Runs of blank lines as one blank line (what is left where quoted lines were dropped)."""
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1].strip()):
            out.append(line)
    return out


# --- HTML --------------------------------------------------------------------------------------

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "dt", "dd",
          "blockquote", "pre", "hr", "section", "article", "header", "footer", "address", "center", "form"}
_SKIP = {"script", "style", "head", "title", "template"}
_SPACES = re.compile(r"[ \t\r\n\f\v\xa0\u200b]+")
_OUTLOOK_SEPARATOR_STYLE = re.compile(r"border-top:\s*solid\b.*padding:\s*3\.0pt", re.I | re.S)
_OUTLOOK_SEPARATOR = "_" * 32  # what Outlook writes in its own text part there


class _Lines(HTMLParser):
    """HTML -> text lines, with `> ` per `<blockquote>` level and Outlook's reply
    separators as the line Outlook's text part has there. Stops taking output
    at MAX_BYTES / MAX_LINES; nesting is a counter, so depth costs nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.size = 0
        self.full = False
        self.depth = 0  # <blockquote> level
        self.skip = 0
        self.pre = 0
        self.gap = False  # a blank line after the current <p>
        self.buffer: list[str] = []
        self.buffered = 0  # characters in buffer

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if tag not in _BLOCK:
            return
        self.flush(blank=tag == "br")
        found = dict(attrs)
        if found.get("id") == "divRplyFwdMsg" or _OUTLOOK_SEPARATOR_STYLE.search(found.get("style") or ""):
            self.emit(_OUTLOOK_SEPARATOR)
        if tag == "blockquote":
            self.depth += 1
        elif tag == "pre":
            self.pre += 1
        elif tag == "p":  # a paragraph has a margin, except Word's (Outlook's) MsoNormal ones
            self.gap = "msonormal" not in (found.get("class") or "").lower()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if tag not in _BLOCK or tag == "br":
            return
        self.flush(blank=False)
        if tag == "p" and self.gap:
            self.emit("")
        if tag == "blockquote":
            self.depth = max(0, self.depth - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.skip or self.full:
            return
        if self.pre:
            *done, data = data.split("\n")
            for piece in done:
                self.buffer.append(piece)
                self.flush(blank=True, keep_spaces=True)
        self.buffer.append(data)
        self.buffered += len(data)
        if self.buffered > MAX_BYTES:
            self.flush(blank=False)

    def flush(self, blank: bool, keep_spaces: bool = False) -> None:
        text = "".join(self.buffer)
        self.buffer = []
        self.buffered = 0
        raw = text
        text = text.rstrip() if keep_spaces else _SPACES.sub(" ", text).strip()
        if text or blank or "\xa0" in raw:  # a paragraph of &nbsp; is how Outlook writes a blank line
            self.emit(text)

    def emit(self, text: str) -> None:
        if self.full:
            return
        line = ("> " * self.depth + text).rstrip() if self.depth else text
        if not line.strip() and self.lines and not self.lines[-1].strip():
            return  # one blank line between paragraphs is enough
        self.size += len(line.encode("utf-8", "surrogatepass")) + 1
        if self.size > MAX_BYTES or len(self.lines) >= MAX_LINES:
            self.full = True
            return
        self.lines.append(line)


def html_lines(html: str) -> tuple[list[str], bool]:
    """The text lines of `html` with quote levels kept, bounded like plain text, and whether it was cut."""
    parser = _Lines()
    cut = len(html) > MAX_HTML
    try:
        parser.feed(html[:MAX_HTML])
        parser.close()
        parser.flush(blank=False)
    except Exception:  # HTMLParser is lenient; belt and braces, keeping what was read
        pass
    lines = parser.lines
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines, cut or parser.full
