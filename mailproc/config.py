"""mailproc.ini -> validated, typed `Config`, once, at start-up.

Every key has a default here and a comment in the example `mailproc.ini`.
Errors name the file, the section and the key, and unknown keys are errors
(with a "did you mean"), because a mistyped key silently ignored is a setting
the operator believes is in force and is not.

Secrets: a password comes from the `password` key, a `password_file`, or the
environment (`MAILPROC_MAILBOX_<NAME>_PASSWORD`, `MAILPROC_SMTP_PASSWORD`);
the reply-token key from `[mailproc] secret`, `secret_file` or
`MAILPROC_SECRET` (and `previous_secret…` / `MAILPROC_PREVIOUS_SECRET` during a
key change). `repr()` of a config never shows one.

The roster: `[agent:NAME]` (a person who works cases) and `[team:NAME]`. The
teams an agent may name are the configured ones, those of the shipped rules
(`DEFAULT_TEAMS`) and those of the mailboxes' `team =`; a site whose own
rules route to another team gives it a `[team:…]` section. An agent's `hours`
are kept parsed; None means "the business calendar" (rules/sla.toml), which
only the rules know, so `mailproc.roster` resolves it.

Whatever `run` would trip on later is caught here, so that `check` catches it
too: ports out of range, a case token that cannot be rendered, a malformed
database URL (checked without connecting), a storage directory that cannot be
created or written, a password file that is not a regular UTF-8 file (a FIFO
would hang the reader), override directories that do not exist.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailproc.availability import Window, parse_hours
from mailproc.errors import ConfigError
from mailproc.slots import SlotSpec, parse_slots

SECURITY = ("tls", "starttls", "none")
DEFAULT_CONFIG = "mailproc.ini"


@dataclass(frozen=True)
class MailboxConfig:
    name: str
    host: str
    port: int
    security: str
    username: str
    password: str = field(repr=False)
    folder: str
    address: str
    team: str | None
    processed_folder: str | None
    batch_size: int
    timeout: float


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str | None
    password: str | None = field(repr=False)
    timeout: float


@dataclass(frozen=True)
class AgentConfig:
    """A person who works cases. NAME is the stable key (`assign=NAME`, scripts)."""
    name: str
    address: str
    display_name: str
    teams: tuple[str, ...]
    tier: str | None  # T1 … T5
    timezone: ZoneInfo
    hours: tuple[Window, ...] | None  # None: the business calendar of rules/sla.toml
    hours_text: str | None  # as written
    roles: tuple[str, ...]  # lead, oncall


@dataclass(frozen=True)
class TeamConfig:
    name: str
    lead: str | None  # an agent NAME
    address: str | None  # a shared address for the team's mail
    configured: bool  # False: a default team (named by the shipped rules), not in mailproc.ini


@dataclass(frozen=True)
class OncallConfig:
    """Seed 002's on-call: who is paged for a P1 or on-call case, and who after them.

    The rotation turns at each weekly handover (`handover_day` at `handover_time`,
    in the installation's time zone); the first handover on or after `start` is
    `rotation[0]`'s. Without an [oncall] section the rotation is the agents with
    role `oncall`, in the order of their sections (`configured` False)."""
    rotation: tuple[str, ...]  # agent NAMEs, in turn
    handover_day: int  # 0 Monday … 6 Sunday
    handover_time: time
    start: date
    wakeup: tuple[str, ...]  # the escalation list: addresses
    ack_within: timedelta  # no [ack] by then: the wake-up page
    next_after: timedelta  # after the wake-up page: the next person of the rotation
    configured: bool = True


@dataclass(frozen=True)
class DigestConfig:
    """[digest]: the leads' daily digest and the Monday hand-over digest (SPEC §8).

    `recipients` empty means every agent with the role `lead` (read from the roster
    when the digest goes, so a new lead gets the next one)."""
    time: SlotSpec  # daily, local to `timezone`
    weekly: SlotSpec  # e.g. "Mon 08:00"
    timezone: ZoneInfo
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckinConfig:
    """[checkin]: when each agent gets their "Our Turn" list, in the agent's own zone."""
    slots: SlotSpec


@dataclass(frozen=True)
class HoursConfig:
    """[hours]: the monthly hours report per client (seed 004)."""
    send_by_day: int = 8  # the report for a month goes on this day of the next month
    exclude_tags: tuple[str, ...] = ("ProjectManagement", "Meetings")
    confirm_days_before: int = 3  # the team is asked to confirm their hours this many days earlier
    at: time = time(9, 0)  # local time of both mails


@dataclass(frozen=True)
class LearnConfig:
    """[learn]: the model learnt from agents' corrections (mailproc.learned)."""
    min_corrections: int = 50  # a field gets a model once agents corrected this many cases
    weight: float = 1.5  # the type model's evidence at probability 1 (0: the model is not used)
    priority_probability: float = 0.8  # how sure the priority model must be to override the rules
    nightly: time | None = None  # retrain daily at this local time; None: only `mailproc classify learn`
    starter: bool = True  # until a field has a learnt model, weigh the one shipped (trained on labelled mail)


@dataclass(frozen=True)
class LifecycleConfig:
    """[lifecycle]: customer-lifecycle mails (seeds 001 and 004)."""
    call_prep_day: int = 1  # day of the month the enterprise monthly-call preparation goes
    at: time = time(9, 0)
    offboarding_tag: str = "offboarding"  # a case tagged so invites its contact to an exit interview


@dataclass(frozen=True)
class Config:
    path: Path
    database: str = field(repr=False)  # a PostgreSQL URL may hold a password
    storage: Path
    timezone: ZoneInfo
    poll_interval: timedelta
    # The site's rule files and templates, each replacing the shipped one of the same
    # name (mailproc.defaults); None: the shipped ones alone.
    rules_dir: Path | None
    templates_dir: Path | None
    case_token: str
    instance: str
    max_message_size: int
    autoreply_limit: int
    autoreply_window: timedelta
    retry_limit: timedelta
    log_level: str
    mailboxes: tuple[MailboxConfig, ...]
    smtp: SmtpConfig | None
    # The authserv-id of the receiving server whose Authentication-Results we trust
    # (RFC 8601 §5: results from anyone else may be forged by the sender).
    authserv_id: str | None = None
    agents: tuple[AgentConfig, ...] = ()
    teams: tuple[TeamConfig, ...] = ()
    # The HMAC key of reply tokens, and the one before it while a key change runs out.
    secret: str | None = field(default=None, repr=False)
    previous_secret: str | None = field(default=None, repr=False)
    # [oncall]; None: no section (mailproc.oncall derives the rotation from roles).
    oncall: OncallConfig | None = None
    digest: DigestConfig | None = None  # always set by load(); None only in hand-made configs
    checkin: CheckinConfig | None = None
    hours: HoursConfig = HoursConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    learn: LearnConfig = LearnConfig()

    @property
    def token_keys(self) -> tuple[bytes, ...]:
        """The reply-token keys, the current one first (tokens are made with it), then the
        previous one (tokens made before a key change still verify until they expire)."""
        return tuple(k.encode("utf-8") for k in (self.secret, self.previous_secret) if k)

    def agent(self, name: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.name == name), None)

    def mailbox(self, name: str) -> MailboxConfig:
        for box in self.mailboxes:
            if box.name == name:
                return box
        known = ", ".join(b.name for b in self.mailboxes) or "none"
        raise ConfigError(f"no mailbox named {name!r} (configured: {known})", file=str(self.path))

    @property
    def our_addresses(self) -> frozenset[str]:
        return frozenset(b.address.lower() for b in self.mailboxes)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.I)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """'2h', '90m', '1h30m', '45s', '1d', or a bare number of seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"not a duration: {text!r} (use e.g. 2h, 30m, 1h30m, 45s)")
    return timedelta(seconds=sum(float(n) * _UNITS[u.lower()] for n, u in parts))


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?", re.I)


def parse_size(text: str) -> int:
    """'25MB', '512k', '1G' or bytes; K/M/G are powers of 1024."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 25MB, 512KB)")
    unit = (m.group(2) or "b")[0].lower()
    return int(float(m.group(1)) * {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit])


def env_name(mailbox: str) -> str:
    return "MAILPROC_MAILBOX_" + re.sub(r"[^A-Za-z0-9]", "_", mailbox).upper() + "_PASSWORD"


class _Section:
    """Reads one ini section, records which keys were used, converts values."""

    def __init__(self, parser: configparser.ConfigParser, name: str, file: str, known: tuple[str, ...]):
        self.name, self.file = name, file
        self.values = dict(parser[name]) if parser.has_section(name) else {}
        unknown = [k for k in self.values if k not in known]
        if unknown:
            key = unknown[0]
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"unknown key {key!r}{extra}", file=file, where=f"[{name}] {key}")

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, where=f"[{self.name}] {key}")

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.values.get(key, "").strip()
        if not value:
            if required:
                raise self.error(key, "is required")
            return default
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = (self.str(key, default) or default).lower()
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def convert(self, key: str, default, func):
        raw = self.str(key)
        if raw is None:
            return default
        try:
            return func(raw)
        except (ValueError, TypeError) as exc:
            raise self.error(key, str(exc)) from None

    def int(self, key: str, default: int, minimum: int = 0) -> int:
        value = self.convert(key, default, int)
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.str(key)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value not in BOOLEANS:
            raise self.error(key, f"must be yes or no, not {raw!r}")
        return BOOLEANS[value]

    def port(self, key: str, default: int) -> int:
        value = self.convert(key, default, int)
        if not 1 <= value <= 65535:  # the socket layer would take 70000 modulo 65536, quietly
            raise self.error(key, f"must be a port number from 1 to 65535, not {value}")
        return value

    def duration(self, key: str, default: str, minimum: timedelta = timedelta(0)) -> timedelta:
        value = self.convert(key, parse_duration(default), parse_duration)
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}")
        return value


CORE_KEYS = ("database", "storage", "timezone", "poll_interval", "rules", "templates", "case_token",
             "instance", "max_message_size", "autoreply_limit", "autoreply_window", "retry_limit",
             "log_level", "secret", "secret_file", "previous_secret", "previous_secret_file")
MAILBOX_KEYS = ("host", "port", "security", "username", "password", "password_file", "folder",
                "address", "team", "processed_folder", "batch_size", "timeout")
SMTP_KEYS = ("host", "port", "security", "username", "password", "password_file", "timeout")
AUTH_KEYS = ("authserv_id",)
AGENT_KEYS = ("address", "name", "teams", "tier", "timezone", "hours", "roles")
TEAM_KEYS = ("lead", "address")
ONCALL_KEYS = ("rotation", "handover", "start", "wakeup", "ack_within", "next_after")
DIGEST_KEYS = ("time", "timezone", "recipients", "weekly")
CHECKIN_KEYS = ("slots",)
HOURS_KEYS = ("send_by_day", "exclude_tags", "confirm_days_before", "time")
LIFECYCLE_KEYS = ("call_prep_day", "time", "offboarding_tag")
BOOLEANS = {"yes": True, "true": True, "on": True, "1": True, "no": False, "false": False, "off": False, "0": False}
LEARN_KEYS = ("min_corrections", "weight", "priority_probability", "nightly", "starter")
SECTIONS = ("mailproc", "smtp", "auth", "oncall", "digest", "checkin", "hours", "lifecycle", "learn")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
AGENT_TIERS = ("T1", "T2", "T3", "T4", "T5")
ROLES = ("lead", "oncall")
# The teams the shipped rules route to (classification.toml, routing.toml): they exist
# without a [team:…] section, with no lead and no address.
DEFAULT_TEAMS = ("Support Team", "Admin Task Team", "Product Team", "Dev Team", "Engagement", "Marketing")
# HMAC-SHA256 keys shorter than the hash (32 bytes) are weaker than it (RFC 2104 §3).
MIN_SECRET_BYTES = 32
NAME_PATTERN = r"[A-Za-z0-9_.-]+"


def load(path: str | os.PathLike) -> Config:
    """Read and validate a config file; raise ConfigError naming file and key."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise ConfigError("config file not found (pass --config PATH or set MAILPROC_CONFIG)", file=file)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse: {exc}", file=file) from None
    for section in parser.sections():
        if section not in SECTIONS and not section.startswith(("mailbox:", "agent:", "team:")):
            known = ", ".join(f"[{name}]" for name in SECTIONS)
            raise ConfigError(f"unknown section (expected {known}, [mailbox:NAME], [agent:NAME] or [team:NAME])",
                              file=file, where=f"[{section}]")
    base = path.parent.resolve()
    core = _Section(parser, "mailproc", file, CORE_KEYS)

    def resolve(p: str) -> Path:
        return (base / os.path.expanduser(p)).resolve()

    storage = resolve(core.str("storage", "storage"))
    problem = directory_problem(storage)
    if problem:
        raise core.error("storage", problem)
    database = _database_url(core, base, storage)
    try:
        tz = ZoneInfo(core.str("timezone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise core.error("timezone", f"unknown time zone {core.str('timezone')!r} (e.g. Europe/Lisbon)") from None
    case_token = _case_token(core)
    log_level = core.choice("log_level", ("debug", "info", "warning", "error"), "info")
    mailboxes = tuple(_mailbox(parser, s, file, resolve) for s in parser.sections() if s.startswith("mailbox:"))
    addresses = [b.address.lower() for b in mailboxes]
    dup = {a for a in addresses if addresses.count(a) > 1}
    if dup:
        raise ConfigError(f"two mailboxes share the address {sorted(dup)[0]}", file=file)
    teams = _teams(parser, file, mailboxes)
    agents = tuple(_agent(parser, s, file, tz, teams, mailboxes) for s in parser.sections() if s.startswith("agent:"))
    _check_roster(agents, teams, parser, file)
    secret = _secret(core, resolve, "secret", "MAILPROC_SECRET")
    if agents and secret is None:
        raise core.error("secret", "is required when agents are configured: it signs the reply tokens of "
                                   "their mail (or secret_file, or the environment variable MAILPROC_SECRET); "
                                   "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")
    return Config(
        path=path.resolve(),
        database=database,
        storage=storage,
        timezone=tz,
        poll_interval=core.duration("poll_interval", "2h", minimum=timedelta(seconds=10)),
        rules_dir=_override_dir(core, "rules", resolve),
        templates_dir=_override_dir(core, "templates", resolve),
        case_token=case_token,
        instance=core.str("instance", "mailproc"),
        max_message_size=core.convert("max_message_size", parse_size("25MB"), parse_size),
        autoreply_limit=core.int("autoreply_limit", 5),
        autoreply_window=core.duration("autoreply_window", "1h"),
        retry_limit=core.duration("retry_limit", "2d"),
        log_level=log_level,
        mailboxes=mailboxes,
        smtp=_smtp(parser, file, resolve) if parser.has_section("smtp") else None,
        authserv_id=_Section(parser, "auth", file, AUTH_KEYS).str("authserv_id"),
        agents=agents,
        teams=teams,
        secret=secret,
        previous_secret=_secret(core, resolve, "previous_secret", "MAILPROC_PREVIOUS_SECRET"),
        oncall=_oncall(parser, file, agents, mailboxes) if parser.has_section("oncall") else None,
        digest=_digest(parser, file, tz, mailboxes),
        checkin=CheckinConfig(_Section(parser, "checkin", file, CHECKIN_KEYS).convert(
            "slots", parse_slots("09:30, 13:30, 16:30"), parse_slots)),
        hours=_hours(parser, file),
        lifecycle=_lifecycle(parser, file),
        learn=_learn(parser, file),
    )


def require_mailboxes(config: Config) -> None:
    """`check` and `run` refuse a config without a mailbox: a daemon with none
    would poll nothing, quietly, for ever."""
    if not config.mailboxes:
        raise ConfigError("no [mailbox:NAME] section: nothing to poll", file=str(config.path))


def directory_problem(path: Path) -> str | None:
    """Why mailproc could not create `path` or write in it, or None; creates nothing.

    An existing directory is tried with a temporary file (the truth, whatever
    the permission bits, ACLs or a read-only mount say); a missing one needs its
    nearest existing ancestor to be a directory this user may write in.
    """
    target, missing = path, False
    while True:
        try:
            st = os.stat(target)
            break
        except (FileNotFoundError, NotADirectoryError):
            target, missing = target.parent, True
        except OSError as exc:
            return f"cannot reach {target}: {exc.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"cannot create {path}: {target} is a file" if missing else f"{path} is a file, not a directory"
    if missing:
        if not os.access(target, os.W_OK | os.X_OK):
            return f"cannot create {path}: {target} is not writable by this user"
        return None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"cannot write in {path}: {exc.strerror}"
    return None


def _case_token(core: _Section) -> str:
    """The token must render, and be found again in replies: `thread.token_regex` reads
    the text around one literal `{number}`, so no other `{}` field, format spec or
    escaped brace may appear; and it must say something besides the number, or
    every '#123' in a subject would be taken for a case."""
    token = core.str("case_token") or "[Case #{number}]"
    literal = token.replace("{number}", "", 1)
    if "{number}" not in token or "{" in literal or "}" in literal:
        raise core.error("case_token", "must contain {number} once and no other { or }, e.g. [Case #{number}]")
    try:
        rendered = token.format(number=1)
    except (ValueError, LookupError, AttributeError) as exc:
        raise core.error("case_token", f"cannot be rendered: {exc}") from None
    if len("".join(literal.split())) < 2:
        raise core.error("case_token", "needs at least 2 characters besides {number}, e.g. [Case #{number}]; "
                                       "a bare number or '#{number}' would match order numbers in subjects")
    if not rendered.isprintable() or len(rendered) > 64:
        raise core.error("case_token", "must be printable text of at most 64 characters (it goes in every subject)")
    return token


def _override_dir(core: _Section, key: str, resolve) -> Path | None:
    raw = core.str(key)
    if raw is None:
        return None
    path = resolve(raw)
    if not path.is_dir():
        what = "not a directory" if path.exists() else "directory not found"
        raise core.error(key, f"{what}: {path} (its files replace the shipped {key} of the same name; "
                              f"leave {key} out to use the shipped ones)")
    return path


def _database_url(core: _Section, base: Path, storage: Path) -> str:
    url = core.str("database") or f"sqlite:///{storage / 'mailproc.sqlite3'}"
    if url.startswith("sqlite:///"):
        target = url[len("sqlite:///"):]
        if target != ":memory:":
            if not target.startswith("/"):
                target = str((base / target).resolve())
            problem = f"{target} is a directory" if os.path.isdir(target) else directory_problem(Path(target).parent)
            if problem:
                raise core.error("database", problem)
        return "sqlite:///" + target
    if re.match(r"postgres(ql)?(\+\w+)?://", url):
        problem = _postgresql_problem(url)
        if problem:
            raise core.error("database", problem + " (postgresql://USER:PASSWORD@HOST:PORT/DBNAME)")
        return url
    raise core.error("database", f"must be sqlite:///PATH or postgresql://…, not {url.split(':')[0]!r}")


def _postgresql_problem(url: str) -> str | None:
    """What is wrong with a PostgreSQL URL's shape, found without connecting. Messages
    never quote the user part: it holds the password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if parts.fragment:
        return "a '#' cuts the URL short; write it as %23 (in a password too)"
    try:
        port = parts.port
    except ValueError:
        return f"bad port in {host!r}: must be a number from 1 to 65535"
    if port == 0:
        return f"bad port in {host!r}: must be a number from 1 to 65535"
    if not parts.path.strip("/"):
        return "names no database"
    return None


MAX_PASSWORD_FILE = 64 * 1024


def _read_password_file(section: _Section, path: Path, key: str = "password_file") -> str:
    """A password file's one line. Anything but a regular file is refused before it is
    opened (reading a FIFO would block until someone writes to it, a device may
    never end), and again on the open file, opened without blocking (the path
    may have been swapped in between)."""
    def error(message: str) -> ConfigError:
        return section.error(key, f"{path}: {message}")

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise error("not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise error("not a regular file")
            data = fh.read(MAX_PASSWORD_FILE + 1)
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_PASSWORD_FILE:
        raise error("too large for a password file")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte {exc.start})") from None
    if not text:
        raise error("is empty")
    if "\n" in text or "\r" in text:
        raise error("holds more than one line; the secret must be its only line")
    return text


def _password(section: _Section, resolve, env: str, required: bool) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    if section.str("password"):
        return section.str("password")
    pw_file = section.str("password_file")
    if pw_file:
        return _read_password_file(section, resolve(pw_file))
    if required:
        raise section.error("password", f"is required (or password_file, or the environment variable {env})")
    return None


def _mailbox(parser, section_name: str, file: str, resolve) -> MailboxConfig:
    name = section_name.split(":", 1)[1].strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError("mailbox name may use letters, digits, _ . - only", file=file, where=f"[{section_name}]")
    s = _Section(parser, section_name, file, MAILBOX_KEYS)
    security = s.choice("security", SECURITY, "tls")
    address = s.str("address", required=True)
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
        raise s.error("address", f"not an email address: {address!r}")
    return MailboxConfig(
        name=name,
        host=s.str("host", required=True),
        port=s.port("port", 993 if security == "tls" else 143),
        security=security,
        username=s.str("username", required=True),
        password=_password(s, resolve, env_name(name), required=True),
        folder=s.str("folder", "INBOX"),
        address=address,
        team=s.str("team"),
        processed_folder=s.str("processed_folder"),
        batch_size=s.int("batch_size", 100, minimum=1),
        timeout=s.duration("timeout", "60s", minimum=timedelta(seconds=1)).total_seconds(),
    )


def _smtp(parser, file: str, resolve) -> SmtpConfig:
    s = _Section(parser, "smtp", file, SMTP_KEYS)
    security = s.choice("security", SECURITY, "starttls")
    username = s.str("username")
    return SmtpConfig(
        host=s.str("host", required=True),
        port=s.port("port", {"tls": 465, "starttls": 587, "none": 25}[security]),
        security=security,
        username=username,
        password=_password(s, resolve, "MAILPROC_SMTP_PASSWORD", required=bool(username)),
        timeout=s.duration("timeout", "60s", minimum=timedelta(seconds=1)).total_seconds(),
    )


# --- the roster and the reply-token key ------------------------------------------------------------

def _secret(core: _Section, resolve, key: str, env: str) -> str | None:
    """A key for reply tokens from the environment (wins), `key`, or `key_file`; at least
    MIN_SECRET_BYTES bytes of UTF-8 whichever way it comes."""
    if os.environ.get(env):
        value, where = os.environ[env], f"the environment variable {env}"
    elif core.str(key):
        value, where = core.str(key) or "", key
    elif core.str(f"{key}_file"):
        value, where = _read_password_file(core, resolve(core.str(f"{key}_file")), f"{key}_file"), f"{key}_file"
    else:
        return None
    size = len(value.encode("utf-8"))
    if size < MIN_SECRET_BYTES:  # the message never quotes the value
        raise core.error(key, f"too short ({size} bytes, from {where}): a reply-token key needs at least "
                              f"{MIN_SECRET_BYTES}; make one with: "
                              "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")
    return value


def _did_you_mean(value: str, known: list[str] | tuple[str, ...]) -> str:
    lowered = {k.lower(): k for k in known}
    hint = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[hint[0]]!r}?" if hint else f"; known: {', '.join(known) or 'none'}"


def _address(s: _Section, key: str, required: bool) -> str | None:
    address = s.str(key, required=required)
    if address is not None and not re.fullmatch(r"[^@\s,<>\"]+@[^@\s,<>\"]+", address):
        raise s.error(key, f"not an email address: {address!r}")
    return address


def _list(s: _Section, key: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in (s.str(key) or "").split(",") if item.strip())


def _teams(parser, file: str, mailboxes: tuple[MailboxConfig, ...]) -> tuple[TeamConfig, ...]:
    """The configured teams, then the default ones and the mailboxes' `team =` not configured.
    `lead` is checked against the agents later (`_check_roster`)."""
    teams: dict[str, TeamConfig] = {}
    for section in parser.sections():
        if not section.startswith("team:"):
            continue
        name = section.split(":", 1)[1].strip()
        if not name or "," in name or not name.isprintable():
            raise ConfigError("team name must be printable text without commas", file=file, where=f"[{section}]")
        s = _Section(parser, section, file, TEAM_KEYS)
        address = _address(s, "address", False)
        if address is not None and address.lower() in {b.address.lower() for b in mailboxes}:
            raise s.error("address", f"{address} is a mailbox's address; team mail sent there would come back to us")
        teams[name] = TeamConfig(name=name, lead=s.str("lead"), address=address,
                                 configured=True)
    for name in DEFAULT_TEAMS + tuple(b.team for b in mailboxes if b.team):
        teams.setdefault(name, TeamConfig(name=name, lead=None, address=None, configured=False))
    return tuple(teams.values())


def _agent(parser, section_name: str, file: str, default_tz: ZoneInfo, teams: tuple[TeamConfig, ...],
           mailboxes: tuple[MailboxConfig, ...]) -> AgentConfig:
    name = section_name.split(":", 1)[1].strip()
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError("agent name may use letters, digits, _ . - only (it is typed in assign=NAME)",
                          file=file, where=f"[{section_name}]")
    s = _Section(parser, section_name, file, AGENT_KEYS)
    address = _address(s, "address", True) or ""
    if address.lower() in {b.address.lower() for b in mailboxes}:
        raise s.error("address", f"{address} is a mailbox's address; an agent needs their own "
                                 "(mail from a mailbox is our own mail, never an agent's)")
    team_names = [t.name for t in teams]
    for team in _list(s, "teams"):
        if team not in team_names:
            raise s.error("teams", f"unknown team {team!r}{_did_you_mean(team, team_names)} "
                                   f"(a new team needs a [team:{team}] section)")
    tier = s.str("tier")
    if tier is not None:
        tier = tier.upper()
        if tier not in AGENT_TIERS:
            raise s.error("tier", f"must be one of {', '.join(AGENT_TIERS)}, not {s.str('tier')!r}")
    roles = tuple(r.lower() for r in _list(s, "roles"))
    for role in roles:
        if role not in ROLES:
            raise s.error("roles", f"unknown role {role!r}{_did_you_mean(role, ROLES)}")
    tz = default_tz
    if s.str("timezone"):
        try:
            tz = ZoneInfo(s.str("timezone") or "")
        except (ZoneInfoNotFoundError, ValueError):
            raise s.error("timezone", f"unknown time zone {s.str('timezone')!r} (e.g. America/Chicago)") from None
    hours_text = s.str("hours")
    return AgentConfig(
        name=name,
        address=address,
        display_name=s.str("name", name) or name,
        teams=tuple(dict.fromkeys(_list(s, "teams"))),
        tier=tier,
        timezone=tz,
        hours=None if hours_text is None else s.convert("hours", None, parse_hours),
        hours_text=hours_text,
        roles=tuple(dict.fromkeys(roles)),
    )


def _check_roster(agents: tuple[AgentConfig, ...], teams: tuple[TeamConfig, ...], parser, file: str) -> None:
    """What no single section can see: two agents with one address, a lead who is no agent."""
    seen: dict[str, str] = {}
    for a in agents:
        other = seen.setdefault(a.address.lower(), a.name)
        if other != a.name:
            raise ConfigError(f"{a.address} is also the address of [agent:{other}]; each agent needs their own",
                              file=file, where=f"[agent:{a.name}] address")
    names = [a.name for a in agents]
    for team in teams:
        if team.lead is not None and team.lead not in names:
            raise ConfigError(f"no agent named {team.lead!r}{_did_you_mean(team.lead, names)}",
                              file=file, where=f"[team:{team.name}] lead")


def parse_handover(text: str) -> tuple[int, time]:
    """'Mon 09:00' -> (0, 09:00): a weekday (Mon … Sun, or its full name) and a time."""
    m = re.fullmatch(r"([A-Za-z]+)\s+(\d{1,2}):(\d{2})", text.strip())
    word = m.group(1).lower() if m else ""
    days = [i for i, d in enumerate(WEEKDAYS) if word in (d, WEEKDAY_NAMES[i])]
    if not m or not days or not (0 <= int(m.group(2)) < 24 and 0 <= int(m.group(3)) < 60):
        raise ValueError(f"not a weekday and a time: {text!r} (e.g. Mon 09:00)")
    return days[0], time(int(m.group(2)), int(m.group(3)))


def _oncall(parser, file: str, agents: tuple[AgentConfig, ...],
            mailboxes: tuple[MailboxConfig, ...]) -> OncallConfig:
    """[oncall]: the rotation names agents with role oncall; the wake-up list is addresses
    (never a mailbox's: a page sent there would come back to us as a new case)."""
    s = _Section(parser, "oncall", file, ONCALL_KEYS)
    names = [a.name for a in agents]
    rotation = _list(s, "rotation") or tuple(a.name for a in agents if "oncall" in a.roles)
    if not rotation:
        raise s.error("rotation", "names no agent, and no agent has roles = oncall: name the agents who take "
                                  "turns on call (e.g. rotation = ana, bob)")
    for name in rotation:
        agent = next((a for a in agents if a.name == name), None)
        if agent is None:
            raise s.error("rotation", f"no agent named {name!r}{_did_you_mean(name, names)}")
        if "oncall" not in agent.roles:
            raise s.error("rotation", f"{name} has no role oncall (add roles = oncall to [agent:{name}])")
    day, at = s.convert("handover", (0, time(9, 0)), parse_handover)
    start = s.convert("start", date(1970, 1, 1), date.fromisoformat)
    boxes = {b.address.lower() for b in mailboxes}
    wakeup = _list(s, "wakeup")
    for address in wakeup:
        if not re.fullmatch(r"[^@\s,<>\"]+@[^@\s,<>\"]+", address):
            raise s.error("wakeup", f"not an email address: {address!r}")
        if address.lower() in boxes:
            raise s.error("wakeup", f"{address} is a mailbox's address; a page sent there would come back as a case")
    return OncallConfig(rotation=rotation, handover_day=day, handover_time=at, start=start,
                        wakeup=tuple(dict.fromkeys(wakeup)),
                        ack_within=s.duration("ack_within", "1h", minimum=timedelta(minutes=1)),
                        next_after=s.duration("next_after", "30m", minimum=timedelta(minutes=1)))


def _wall_time(text: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"not a time of day: {text!r} (e.g. 09:00)")
    return time(int(m.group(1)), int(m.group(2)))


def _addresses(s: _Section, key: str, mailboxes: tuple[MailboxConfig, ...]) -> tuple[str, ...]:
    """A comma list of addresses, none a mailbox's (mail sent there would come back as a case)."""
    boxes = {b.address.lower() for b in mailboxes}
    found = _list(s, key)
    for address in found:
        if not re.fullmatch(r"[^@\s,<>\"]+@[^@\s,<>\"]+", address):
            raise s.error(key, f"not an email address: {address!r}")
        if address.lower() in boxes:
            raise s.error(key, f"{address} is a mailbox's address; mail sent there would come back as a case")
    return tuple(dict.fromkeys(found))


def _digest(parser, file: str, default_tz: ZoneInfo, mailboxes: tuple[MailboxConfig, ...]) -> DigestConfig:
    s = _Section(parser, "digest", file, DIGEST_KEYS)
    try:
        tz = ZoneInfo(s.str("timezone")) if s.str("timezone") else default_tz
    except (ZoneInfoNotFoundError, ValueError):
        raise s.error("timezone", f"unknown time zone {s.str('timezone')!r} (e.g. Europe/Lisbon)") from None
    daily = s.convert("time", parse_slots("07:00"), parse_slots)
    if any(at.weekdays is not None for at in daily.times):
        raise s.error("time", "is the daily slot: a time of day without a weekday (weekly is the Monday one)")
    return DigestConfig(time=daily, weekly=s.convert("weekly", parse_slots("Mon 08:00"), parse_slots), timezone=tz,
                        recipients=_addresses(s, "recipients", mailboxes))


def _hours(parser, file: str) -> HoursConfig:
    s = _Section(parser, "hours", file, HOURS_KEYS)
    by_day = s.int("send_by_day", 8, minimum=1)
    if by_day > 28:
        raise s.error("send_by_day", "must be at most 28, a day every month has")
    before = s.int("confirm_days_before", 3, minimum=1)
    if before >= by_day:
        raise s.error("confirm_days_before", f"must be less than send_by_day ({by_day}): the team is asked "
                                             "in the same month the report goes")
    tags = _list(s, "exclude_tags") if s.str("exclude_tags") is not None else HoursConfig.exclude_tags
    return HoursConfig(send_by_day=by_day, exclude_tags=tags, confirm_days_before=before,
                       at=s.convert("time", time(9, 0), _wall_time))


def _lifecycle(parser, file: str) -> LifecycleConfig:
    s = _Section(parser, "lifecycle", file, LIFECYCLE_KEYS)
    day = s.int("call_prep_day", 1, minimum=1)
    if day > 28:
        raise s.error("call_prep_day", "must be at most 28, a day every month has")
    tag = s.str("offboarding_tag", "offboarding") or "offboarding"
    return LifecycleConfig(call_prep_day=day, at=s.convert("time", time(9, 0), _wall_time), offboarding_tag=tag)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be from 0 to 1, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < float("inf"):  # also refuses nan
        raise ValueError(f"must be a number, 0 or more, not {text}")
    return value


def _learn(parser, file: str) -> LearnConfig:
    s = _Section(parser, "learn", file, LEARN_KEYS)
    nightly = s.convert("nightly", None, lambda text: _wall_time(text) if text.strip() else None)
    if nightly is not None:
        try:
            import sklearn  # noqa: F401  (the nightly training needs it: say so at start, not at 03:00)
        except ImportError:
            raise s.error("nightly", "training needs scikit-learn: pip install 'mailproc[learn]'") from None
    return LearnConfig(min_corrections=s.int("min_corrections", 50, minimum=1),
                       weight=s.convert("weight", LearnConfig.weight, _non_negative),
                       priority_probability=s.convert("priority_probability", LearnConfig.priority_probability,
                                                      _fraction),
                       nightly=nightly,
                       starter=s.boolean("starter", True))
