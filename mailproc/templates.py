"""Jinja2 mail templates: one plain-text and one HTML file per kind of mail.

`templates/<kind>.txt.j2` and `templates/<kind>.html.j2` make a kind; files
whose name starts with `_` (the shared HTML layout) are building blocks, not
kinds. The subject lives in the text template's first line, `Subject: ...`,
so the person editing a mail sees subject and body together; it is cut off
the text part and handed to the HTML part as `subject`. See
templates/README.md for the rules a template writer needs.

The templates ship inside the package (`mailproc.defaults`). A site's
`[mailproc] templates` directory is searched first, so its file replaces the
shipped one of the same name and nothing else: a site may reword only
acknowledgement.txt.j2 and keep the shipped HTML part and layout.

Variables are strict (a misspelt name is an error, not a blank in a
customer's mail), HTML is autoescaped (customer text cannot inject markup),
text is not (it is not HTML). Errors name the template file and line.

Every rendered subject loses its command groups (`[status=resolved]`, see
`mailproc.subject`), whatever the template or the sender's text put there;
the `reply_subject` filter builds "Re: <subject> <token>".
"""

from __future__ import annotations

import functools
import re
import traceback
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.bccache
from jinja2 import meta

from mailproc import defaults
from mailproc.errors import ConfigError
from mailproc.subject import reply_subject, strip_commands

_SUBJECT = re.compile(r"Subject:[ \t]*(.*)")


class Rendered(tuple):
    """`(text, html)` as `render` promises, plus the `subject` the template chose."""

    subject: str

    def __new__(cls, subject: str, text: str, html: str) -> "Rendered":
        self = super().__new__(cls, (text, html))
        self.subject = subject
        return self

    @property
    def text(self) -> str:
        return self[0]

    @property
    def html(self) -> str:
        return self[1]


def when(value: datetime) -> str:
    """An instant as a customer reads it: 'Tuesday 4 March 2025, 14:30 WET'.

    The caller passes it already in the site's zone; the zone name is shown
    because customers are often elsewhere.
    """
    return f"{value:%A} {value.day} {value:%B %Y, %H:%M} {value.tzname() or ''}".rstrip()


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


def _line_of(exc: BaseException) -> int | None:
    """The template line a render error happened on (Jinja rewrites tracebacks so
    that template frames carry the template's file name and line)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(".j2"):
            line = frame.lineno
    return getattr(exc, "lineno", None) or line


def _environment(**more) -> jinja2.Environment:
    """How every template is read and rendered: one set of settings, so what one
    environment compiled another can reuse."""
    env = jinja2.Environment(
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **more,
    )
    env.filters["when"] = when
    env.filters["reply_subject"] = reply_subject
    return env


class _SharedBytecode(jinja2.BytecodeCache):
    """Compiled templates kept for the process, keyed by file, and used only while the
    file's source is the same (Jinja compares a checksum): a reload (SIGHUP) or a
    second context compiles only the files that changed."""

    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self.store.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.store[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = _SharedBytecode()
_CHECKER = _environment()


@functools.lru_cache(maxsize=4096)
def _compiled(name: str, filename: str, source: str) -> tuple[str | None, tuple[str, ...]]:
    """One file compiled as `check` does: (its syntax error, or None; the templates
    it names). Kept per source: every context (each reload, each in-process command)
    checks the site's templates again."""
    try:
        tree = _CHECKER.parse(source, name, filename)
        _CHECKER.compile(tree, name, filename)
    except jinja2.TemplateSyntaxError as exc:
        return f"{filename}:{exc.lineno}: {exc.message}", ()
    return None, tuple(ref for ref in meta.find_referenced_templates(tree) if ref is not None)


class Templates:
    def __init__(self, directory: Path | None = None):
        """`directory`: the site's templates (`[mailproc] templates`), each replacing the
        shipped one of its name; None: the shipped templates alone."""
        self.directory = None if directory is None else Path(directory)
        self.shipped = defaults.shipped("templates")
        search = [d for d in (self.directory, self.shipped) if d is not None]
        self.env = _environment(
            # the first directory that has a name wins, for kinds and for what they extend or include
            loader=jinja2.FileSystemLoader([str(d) for d in search]),
            bytecode_cache=_BYTECODE,
            # Loaded once and kept: an edit on disk takes effect on SIGHUP (a new
            # Templates, checked first), never half-way through a run.
            auto_reload=False,
            cache_size=-1,
        )

    def in_force(self) -> list[defaults.InForce]:
        """Every template file used, by name, and where it comes from (the site or the package)."""
        return defaults.in_force("templates", self.directory)

    def _files(self) -> dict[str, Path]:
        try:
            return {f.name: f.path for f in self.in_force()}
        except ConfigError:  # the site's directory is missing: check() says so
            return {}

    def path(self, name: str) -> Path:
        """The file a template name is read from, for messages (where it would be, if missing)."""
        return self._files().get(name) or (self.directory or self.shipped) / name

    def kinds(self) -> list[str]:
        """Every kind that has a text template (check() reports a missing HTML part)."""
        return sorted(name[: -len(".txt.j2")] for name in self._files()
                      if name.endswith(".txt.j2") and not name.startswith("_"))

    def render(self, kind: str, **context) -> Rendered:
        """Render one kind: `text, html = render(...)`; `.subject` holds the subject."""
        text_name, html_name = f"{kind}.txt.j2", f"{kind}.html.j2"
        text = self._render(text_name, context)
        first, _, body = text.partition("\n")
        match = _SUBJECT.fullmatch(first.strip())
        if not match or not match.group(1).strip():
            raise ConfigError("the first line must be 'Subject: ...' with a non-empty subject",
                              file=str(self.path(text_name)), where="line 1")
        # No mail of ours carries a command group: a reply quoting its subject must
        # not bring a command back (see mailproc.subject).
        subject = strip_commands(match.group(1)) or "(no subject)"
        html = self._render(html_name, {**context, "subject": subject})
        return Rendered(subject, body.lstrip("\n"), html)

    def _render(self, name: str, context: dict) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(f"template not found: {exc.name}", file=str(self.path(name))) from None
        except jinja2.TemplateError as exc:
            line = _line_of(exc)
            raise ConfigError(f"{type(exc).__name__}: {exc.message or exc}", file=str(self.path(name)),
                              where=f"line {line}" if line else None) from None

    def _as_shipped(self, name: str, path: Path, source: str) -> bool:
        """Whether `path` is the shipped file of that name, or a copy of it (`mailproc init`
        copies them all into a site)."""
        shipped = self.shipped / name
        if path == shipped:
            return True
        try:
            return shipped.read_text(encoding="utf-8") == source
        except OSError:
            return False

    def check(self, shipped: bool = False) -> list[str]:
        """Compile every template the site wrote; return 'file:line: problem' for each error
        found. The shipped files, and unchanged copies of them, are compiled only with
        `shipped` (`mailproc check`, the tests): at every start they would take 0.3 s to
        find what the package's tests already found."""
        if self.directory is not None and not self.directory.is_dir():
            return [f"{self.directory}: templates directory not found"]
        errors: list[str] = []
        files = self._files()
        names = set(files)
        for name in sorted(names):
            path = files[name]
            try:
                source = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                errors.append(f"{path}: not UTF-8 ({exc.reason})")
                continue
            except OSError as exc:
                errors.append(f"{path}: cannot read: {exc.strerror or exc}")
                continue
            if not shipped and self._as_shipped(name, path, source):
                continue  # the package's own file, compiled by its tests: nothing an operator broke
            error, refs = _compiled(name, str(path), source)
            if error:
                errors.append(error)
                continue
            for ref in refs:
                if ref not in names:
                    line = next((n for n, text in enumerate(source.splitlines(), 1) if ref in text), 1)
                    errors.append(f"{path}:{line}: refers to {ref}, which does not exist")
            if name.endswith(".txt.j2") and not name.startswith("_") \
                    and not re.search(r"^Subject:", source, re.M):
                errors.append(f"{path}:1: the first line must be 'Subject: ...'")
        for kind in self.kinds():
            if f"{kind}.html.j2" not in names:
                errors.append(f"{files[kind + '.txt.j2']}:1: no HTML part {kind}.html.j2")
        for name in sorted(names):
            if name.endswith(".html.j2") and not name.startswith("_") \
                    and name.replace(".html.j2", ".txt.j2") not in names:
                errors.append(f"{files[name]}:1: no text part {name.replace('.html.j2', '.txt.j2')}")
        return errors
