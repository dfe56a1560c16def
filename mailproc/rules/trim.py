"""What the sender wrote this time: quoted history, signature and legal disclaimers left out.

A new mail often carries more than its ask: an Outlook "From: … Sent: …" block or a
Gmail "On … wrote:" history, a forwarded thread, a signature with the company's
slogan, a confidentiality notice ("if you received this in error…"). Rules reading
those would find evidence in text the customer did not write for us, so the
classifier reads only what `own_text` keeps (seed 000: the type is the customer's
ask). It works line by line with a few anchored patterns, in EN, PT and ES:

- history: everything from the first reply header on ("On … wrote:", "Em … escreveu:",
  "El … escribió:", "-----Original Message-----", an Outlook "From:" line followed by
  "Sent:"/"Date:" within a few lines, a line of underscores before one), and quoted
  '>' lines;
- forwarded mail ("---------- Forwarded message ---------"): kept when the sender's
  own words above it are few ("see below"), since then the forwarded mail *is* the
  ask; cut when the sender wrote the ask themselves;
- a signature: from "-- " or a short "Sent from my iPhone" line on;
- disclaimers: paragraphs with three or more different legal-notice phrases (confidential,
  intended recipient, received in error…) at the end of the mail, or at its very start.

Quoted history and a signature are treated like a forward: a mail whose own part is
only a few words ("See below", then "Sent from my iPhone", then the forwarded mail)
keeps what follows, '>' quoted lines included, which is where the problem is described.
"""

from __future__ import annotations

import re

FEW_WORDS = 12  # fewer of the sender's own words than this above history: the history is the ask

_REPLY_HEADER = re.compile(
    r"^(?:on\b.{0,300}\bwrote:|em\b.{0,300}\bescreveu:|el\b.{0,300}\bescribi[oó]:|"
    r"-{2,}\s*(?:original message|mensagem original|mensaje original)\s*-{0,})\s*$", re.IGNORECASE)
_REPLY_START = re.compile(r"^(?:on|em|el)\b.{0,300}$", re.IGNORECASE)  # "On …" wrapped onto a "wrote:" line
_REPLY_END = re.compile(r"^.{0,200}\b(?:wrote|escreveu|escribi[oó]):\s*$", re.IGNORECASE)
_OUTLOOK_FROM = re.compile(r"^\*?(?:from|de|von)\s*:\*?\s+\S", re.IGNORECASE)
# Outlook's block: "From:" then, within a few lines, when it was sent ("To:" alone is not enough:
# "please change From: … To: …" is a customer's own words).
_OUTLOOK_NEXT = re.compile(r"^\*?(?:sent|date|enviad[oa](?: el| em)?|data|fecha|gesendet)\s*:", re.IGNORECASE)
_RULE_LINE = re.compile(r"^_{8,}\s*$")
_FORWARD = re.compile(r"^-{2,}\s*(?:forwarded message|begin forwarded message|mensagem encaminhada|"
                      r"mensaje reenviado|mensaje original reenviado)\s*-{0,}\s*$|^begin forwarded message:?\s*$|"
                      r"^(?:fwd?|enc|rv):.{0,200}$", re.IGNORECASE)
# A signature starts at "-- " (or "--") alone on a line, or a phone's short "Sent from my iPhone".
_SIGNATURE = re.compile(
    r"^--\s*$|^(?:sent from my|enviado do meu|enviado de meu|enviado desde mi|get outlook for|"
    r"obtener outlook para|obter o outlook para)\b(?:\W*\w+){0,4}\W*$", re.IGNORECASE)
# A legal notice uses three or more of these (different ones); a customer may use two
# ("borré por error… es confidencial"). Only a notice at the end (or the very start) of the
# mail is left out: in the middle, the same words are the customer's ("it reached the wrong
# recipient in error").
_DISCLAIMER = re.compile(
    r"confiden[ct]ial|intended (?:recipient|solely|only)|exclusivamente|in error|privileged|prohibited|"
    r"proibid[ao]|prohibid[ao]|"
    r"destinat[aá]rio|destinatario|por engano|por error|por erro|notify the sender|remetente|remitente|"
    r"think before (?:you )?print|antes de imprimir|legal notice|aviso legal|disclaimer", re.IGNORECASE)
DISCLAIMER_HITS = 3
NOTICE_LIMIT = 3_000  # characters: the longest legal notices are about half that
_WORD = re.compile(r"\w+")


def own_text(text: str) -> str:
    """The sender's own part of a mail body (see the module's docstring)."""
    if not text:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    history = False  # reading history kept because the sender's own part was too short
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith(">"):
            if history:
                kept.append(line.lstrip("> "))
            continue
        if _SIGNATURE.match(line) or (line and _history_starts(lines, i, line)):
            if _enough(kept):
                break
            history = True  # too little of their own: what follows is the ask; keep reading it
            continue
        kept.append(raw)
    return _without_disclaimers(kept)


def _history_starts(lines: list[str], i: int, line: str) -> bool:
    if _REPLY_HEADER.match(line) or _FORWARD.match(line):
        return True
    if _REPLY_START.match(line) and i + 1 < len(lines) and _REPLY_END.match(lines[i + 1].strip()) \
            and len(line) + len(lines[i + 1]) < 300:
        return True
    if _OUTLOOK_FROM.match(line) or _RULE_LINE.match(line):
        ahead = [x.strip() for x in lines[i + 1:i + 5]]
        return any(_OUTLOOK_NEXT.match(x) for x in ahead)
    return False


def _enough(kept: list[str]) -> bool:
    count = 0
    for line in kept:
        count += len(_WORD.findall(line))
        if count >= FEW_WORDS:
            return True
    return False


def _without_disclaimers(lines: list[str]) -> str:
    """The lines without the legal notices at the end of the mail (and at its very start)."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    paragraphs = [p for p in paragraphs if p]
    while paragraphs and _is_notice(paragraphs[-1]):
        paragraphs.pop()
    while paragraphs and _is_notice(paragraphs[0]):
        paragraphs.pop(0)
    return "\n\n".join("\n".join(p) for p in paragraphs)


def _is_notice(paragraph: list[str]) -> bool:
    text = " ".join(paragraph)
    if len(text) > NOTICE_LIMIT:  # a pasted log is not a legal notice (and not worth a scan)
        return False
    return len({m.lower() for m in _DISCLAIMER.findall(text)}) >= DISCLAIMER_HITS
