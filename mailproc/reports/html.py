"""The last step of every report mail's HTML part, and the check it must pass.

Mail clients are not browsers: Gmail drops <style> blocks in many views and clips
a message over about 100 KB, Outlook renders with Word's engine, none runs a script
or fetches a remote stylesheet without asking. So a report's template may write its
looks once in a <style> block, and `finish` moves them into each element's `style`
attribute with `css-inline` (a maintained inliner in Rust; remote stylesheets are
never loaded, so rendering a report never reaches the network). Charts are tables
with coloured cells (`bar`), never SVG, images or JavaScript.

`problems(html, parts)` is the static check the tests (and anyone changing a
template) run on a finished part: no <svg>, no <script>, no `data:` URIs, nothing
fetched from elsewhere (http(s) in an <img>/<link>/<script> src or href, a CSS
`@import` or `url(http…)`), every `cid:` reference backed by a MIME part of `parts`
(Content-IDs, with or without angle brackets), and under `LIMIT` bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import css_inline

LIMIT = 100 * 1024  # Gmail clips a message body larger than about 102 KB

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False, keep_link_tags=False)

_SVG = re.compile(r"<\s*svg\b", re.I)
_SCRIPT = re.compile(r"<\s*script\b", re.I)
_DATA_URI = re.compile(r"""(?:src|href|srcset|background|poster)\s*=\s*["']?\s*data:|url\(\s*["']?\s*data:""", re.I)
_TAG = re.compile(r"<\s*(img|link|script|iframe|object|embed|source|video|audio|input)\b[^>]*>", re.I)
_REMOTE_ATTR = re.compile(r"""\b(?:src|href|srcset|data|background|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
_BACKGROUND_ATTR = re.compile(r"""\bbackground\s*=\s*["']?\s*(?:https?:)?//""", re.I)
_IMPORT = re.compile(r"@import\b", re.I)
_REMOTE_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//""", re.I)
_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.I)


def finish(html: str) -> str:
    """`html` with its <style> rules moved into `style` attributes (and the <style> blocks gone)."""
    return _INLINER.inline(html)


def problems(html: str, parts: Iterable[str] = ()) -> list[str]:
    """Why `html` would not read well, or safely, in Gmail, Outlook and Apple Mail; [] if it would.

    `parts` are the Content-IDs of the mail's other MIME parts (for `cid:` references)."""
    found: list[str] = []
    if _SVG.search(html):
        found.append("contains <svg>: mail clients drop or block it; draw charts with table cells")
    if _SCRIPT.search(html):
        found.append("contains <script>: no mail client runs it")
    if _DATA_URI.search(html):
        found.append("contains a data: URI: Gmail and Outlook block them")
    for tag in _TAG.finditer(html):
        if _REMOTE_ATTR.search(tag.group(0)):
            found.append(f"loads an external resource: {tag.group(0)[:120]}")
    if _BACKGROUND_ATTR.search(html):
        found.append("a background attribute loads an external image")
    if _IMPORT.search(html):
        found.append("a stylesheet @import: remote stylesheets are not loaded by mail clients")
    if _REMOTE_URL.search(html):
        found.append("a CSS url() loads an external resource")
    known = {p.strip().strip("<>").lower() for p in parts}
    for cid in sorted({m.group(1).strip("<>").lower() for m in _CID.finditer(html)}):
        if cid not in known:
            found.append(f"cid:{cid} has no MIME part")
    size = len(html.encode("utf-8"))
    if size >= LIMIT:
        found.append(f"{size} bytes: Gmail clips a part of {LIMIT} bytes or more")
    return found
