"""Config is parsed once into typed objects; every error names file, section and key."""

import os
from datetime import timedelta

import pytest

from mailproc import config
from mailproc.errors import ConfigError

BOX = """
[mailbox:support]
host = imap.example.com
username = support@example.com
password = s3cret-pw
address = support@example.com
"""


def write(tmp_path, text):
    path = tmp_path / "mailproc.ini"
    path.write_text(text)
    return path


def test_defaults(tmp_path):
    cfg = config.load(write(tmp_path, "[mailproc]\n" + BOX))
    box = cfg.mailboxes[0]
    assert (box.port, box.security, box.folder, box.batch_size) == (993, "tls", "INBOX", 100)
    assert cfg.poll_interval == timedelta(hours=2)
    assert cfg.database == f"sqlite:///{tmp_path / 'storage' / 'mailproc.sqlite3'}"
    assert cfg.storage == tmp_path / "storage"
    assert cfg.case_token == "[Case #{number}]"
    assert cfg.autoreply_limit == 5 and cfg.autoreply_window == timedelta(hours=1)
    assert cfg.smtp is None
    assert cfg.our_addresses == {"support@example.com"}


def test_example_config_in_repository_is_valid():
    from mailproc.testing import REPO
    cfg = config.load(REPO / "mailproc.ini")
    assert cfg.mailboxes[0].name == "support"
    assert cfg.smtp is not None and cfg.smtp.port == 587


def test_password_never_in_repr(tmp_path):
    cfg = config.load(write(tmp_path, BOX + "\n[smtp]\nhost = smtp.example.com\nusername = u\npassword = smtp-pw\n"))
    assert "s3cret-pw" not in repr(cfg) and "smtp-pw" not in repr(cfg)
    assert cfg.mailboxes[0].password == "s3cret-pw"


def test_password_from_environment_and_file(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("from-file\n")
    text = BOX.replace("password = s3cret-pw", "password_file = pw")
    assert config.load(write(tmp_path, text)).mailboxes[0].password == "from-file"
    monkeypatch.setenv("MAILPROC_MAILBOX_SUPPORT_PASSWORD", "from-env")
    assert config.load(write(tmp_path, text)).mailboxes[0].password == "from-env"


@pytest.mark.parametrize("text, where, words", [
    ("[mailproc]\npoll_intervall = 2h\n" + BOX, "[mailproc] poll_intervall", "did you mean 'poll_interval'"),
    ("[mailproc]\npoll_interval = soon\n" + BOX, "[mailproc] poll_interval", "not a duration"),
    ("[mailproc]\ntimezone = Mars/Olympus\n" + BOX, "[mailproc] timezone", "unknown time zone"),
    ("[mailproc]\ndatabase = mysql://x\n" + BOX, "[mailproc] database", "must be sqlite"),
    ("[mailproc]\ncase_token = [Case]\n" + BOX, "[mailproc] case_token", "{number}"),
    (BOX.replace("password = s3cret-pw\n", ""), "[mailbox:support] password", "MAILPROC_MAILBOX_SUPPORT_PASSWORD"),
    (BOX + "security = ssl\n", "[mailbox:support] security", "tls, starttls, none"),
    (BOX + "port = many\n", "[mailbox:support] port", "invalid literal"),
    (BOX.replace("address = support@example.com", "address = nobody"), "[mailbox:support] address", "not an email"),
    (BOX + "\n[mailbox:other]\nhost=h\nusername=u\npassword=p\naddress=support@example.com\n",
     None, "share the address"),
    (BOX + "\n[imap]\nhost = x\n", "[imap]", "unknown section"),
    ("[mailproc\n", None, "cannot parse"),
    # ports: the socket layer would quietly use 70000 - 65536 = 4464
    (BOX + "port = 70000\n", "[mailbox:support] port", "from 1 to 65535, not 70000"),
    (BOX + "port = 0\n", "[mailbox:support] port", "from 1 to 65535, not 0"),
    (BOX + "\n[smtp]\nhost = smtp.example.com\nport = 99999\n", "[smtp] port", "from 1 to 65535, not 99999"),
    # case tokens that cannot be rendered, or not found again in replies
    ("[mailproc]\ncase_token = [Case #{number}{0}]\n" + BOX, "[mailproc] case_token", "no other { or }"),
    ("[mailproc]\ncase_token = [Case #{number:05}]\n" + BOX, "[mailproc] case_token", "no other { or }"),
    ("[mailproc]\ncase_token = [Case #{number}] {{x}}\n" + BOX, "[mailproc] case_token", "no other { or }"),
    ("[mailproc]\ncase_token = [Case {number} #{number}]\n" + BOX, "[mailproc] case_token", "once"),
    ("[mailproc]\ncase_token = {number}\n" + BOX, "[mailproc] case_token", "at least 2 characters"),
    ("[mailproc]\ncase_token = #{number}\n" + BOX, "[mailproc] case_token", "at least 2 characters"),
    ("[mailproc]\ncase_token = [Case\x07 #{number}]\n" + BOX, "[mailproc] case_token", "printable"),
    ("[mailproc]\ncase_token = [" + "x" * 70 + " #{number}]\n" + BOX, "[mailproc] case_token", "64 characters"),
    # database URLs, checked without connecting
    ("[mailproc]\ndatabase = postgresql://u:pw@h:xx/d\n" + BOX, "[mailproc] database", "bad port in 'h:xx'"),
    ("[mailproc]\ndatabase = postgresql://u:pw@h:70000/d\n" + BOX, "[mailproc] database", "bad port"),
    ("[mailproc]\ndatabase = postgresql://u:pw@h:0/d\n" + BOX, "[mailproc] database", "bad port"),
    ("[mailproc]\ndatabase = postgresql://u:pw@h/\n" + BOX, "[mailproc] database", "names no database"),
    ("[mailproc]\ndatabase = postgresql://u:p#w@h/d\n" + BOX, "[mailproc] database", "%23"),
    # override directories that are not there
    ("[mailproc]\nrules = nowhere\n" + BOX, "[mailproc] rules", "directory not found"),
    ("[mailproc]\ntemplates = nowhere\n" + BOX, "[mailproc] templates", "directory not found"),
    ("[mailproc]\ntemplates = mailproc.ini\n" + BOX, "[mailproc] templates", "not a directory"),
])
def test_errors_name_file_and_key(tmp_path, text, where, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert message.startswith(str(path))
    if where:
        assert where in message
    assert words in message


def test_database_url_errors_never_show_the_password(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, "[mailproc]\ndatabase = postgresql://u:s3cret-pw@h:xx/d\n" + BOX))
    assert "s3cret-pw" not in str(info.value)


def test_good_database_urls(tmp_path):
    for url in ("postgresql://u:p%23w@db.example:5432/mailproc", "postgres://u@db.example/mailproc",
                "postgresql:///mailproc", "postgresql://u:p@[::1]:6543/mailproc"):
        assert config.load(write(tmp_path, f"[mailproc]\ndatabase = {url}\n" + BOX)).database == url


def test_example_config_uses_the_shipped_rules_and_templates():
    from mailproc.testing import REPO
    cfg = config.load(REPO / "mailproc.ini")
    assert cfg.rules_dir is None and cfg.templates_dir is None


def test_override_directories_are_resolved(tmp_path):
    (tmp_path / "site-rules").mkdir()
    cfg = config.load(write(tmp_path, "[mailproc]\nrules = site-rules\n" + BOX))
    assert cfg.rules_dir == tmp_path / "site-rules" and cfg.templates_dir is None


def storage_error(tmp_path, storage) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, f"[mailproc]\nstorage = {storage}\n" + BOX))
    assert f"{tmp_path / 'mailproc.ini'}:[mailproc] storage: " in str(info.value)
    return str(info.value)


def test_storage_that_is_a_file_or_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    assert f"{tmp_path / 'afile'} is a file, not a directory" in storage_error(tmp_path, "afile")
    message = storage_error(tmp_path, "afile/storage/deeper")
    assert f"cannot create {tmp_path / 'afile/storage/deeper'}: {tmp_path / 'afile'} is a file" in message


def test_storage_is_checked_without_being_created(tmp_path):
    cfg = config.load(write(tmp_path, "[mailproc]\nstorage = new/storage\n" + BOX))
    assert cfg.storage == tmp_path / "new" / "storage" and not (tmp_path / "new").exists()
    (tmp_path / "new" / "storage").mkdir(parents=True)
    config.load(write(tmp_path, "[mailproc]\nstorage = new/storage\n" + BOX))
    assert list((tmp_path / "new" / "storage").iterdir()) == []  # the write probe leaves nothing


def test_sqlite_database_path_is_checked_too(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"\[mailproc\] database: .*afile is a file"):
        config.load(write(tmp_path, "[mailproc]\ndatabase = sqlite:///afile/db.sqlite3\n" + BOX))
    (tmp_path / "adir").mkdir()
    with pytest.raises(ConfigError, match=r"\[mailproc\] database: .*adir is a directory"):
        config.load(write(tmp_path, "[mailproc]\ndatabase = sqlite:///adir\n" + BOX))


def password_file_error(tmp_path, name) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, BOX.replace("password = s3cret-pw", f"password_file = {name}")))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'mailproc.ini'}:[mailbox:support] password_file: {tmp_path / name}: ")
    return message


def test_password_file_that_is_not_a_regular_file_is_refused_unopened(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block until a writer came
    assert password_file_error(tmp_path, "fifo").endswith("not a regular file")
    (tmp_path / "dir").mkdir()
    assert password_file_error(tmp_path, "dir").endswith("not a regular file")


@pytest.mark.parametrize("content, words", [
    (b"caf\xe9\n", "not UTF-8 text (byte 3)"),
    (b"\n  \n", "is empty"),
    (b"first\nsecond\n", "more than one line"),
    (b"x" * 70000, "too large"),
])
def test_password_file_contents(tmp_path, content, words):
    (tmp_path / "pw").write_bytes(content)
    assert words in password_file_error(tmp_path, "pw")


def test_missing_password_file(tmp_path):
    assert "cannot read: No such file or directory" in password_file_error(tmp_path, "nope")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.ini")


@pytest.mark.parametrize("text, seconds", [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("30", 30),
                                           ("1d", 86400)])
def test_durations(text, seconds):
    assert config.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text, size", [("25MB", 25 * 1024**2), ("512k", 512 * 1024), ("100", 100), ("1G", 1024**3)])
def test_sizes(text, size):
    assert config.parse_size(text) == size


# --- the roster and the reply-token key -------------------------------------------------------------

SECRET = "k" * 40
ROSTER = f"""[mailproc]
timezone = Europe/Lisbon
secret = {SECRET}
{BOX}
[agent:ana]
address = ana@agents.example
name = Ana Silva
teams = Support Team, Dev Team
tier = t2
timezone = America/Chicago
hours = Mon-Fri 07:00-13:00, Sat 09:00-12:00
roles = lead, oncall

[agent:bob]
address = bob@agents.example

[team:Support Team]
lead = ana
address = support-team@agents.example

[team:Billing]
"""


def test_agents_and_teams(tmp_path):
    cfg = config.load(write(tmp_path, ROSTER))
    ana, bob = cfg.agents
    assert (ana.name, ana.address, ana.display_name, ana.teams, ana.tier, ana.roles) == \
        ("ana", "ana@agents.example", "Ana Silva", ("Support Team", "Dev Team"), "T2", ("lead", "oncall"))
    assert ana.timezone.key == "America/Chicago" and ana.hours_text == "Mon-Fri 07:00-13:00, Sat 09:00-12:00"
    assert len(ana.hours) == 2
    # defaults: display name = NAME, the installation's time zone, the business calendar (None)
    assert (bob.display_name, bob.teams, bob.tier, bob.roles, bob.timezone.key, bob.hours) == \
        ("bob", (), None, (), "Europe/Lisbon", None)
    teams = {t.name: t for t in cfg.teams}
    assert teams["Support Team"] == config.TeamConfig("Support Team", "ana", "support-team@agents.example", True)
    assert teams["Billing"].configured and teams["Billing"].lead is None
    # the teams of the shipped rules exist without a section
    assert set(config.DEFAULT_TEAMS) <= set(teams) and not teams["Marketing"].configured
    assert cfg.agent("bob") is bob and cfg.agent("carl") is None
    assert cfg.secret == SECRET and cfg.token_keys == (SECRET.encode(),)


def test_a_mailboxs_team_may_be_named_by_agents(tmp_path):
    text = ROSTER.replace("address = support@example.com", "address = support@example.com\nteam = Front Desk")
    cfg = config.load(write(tmp_path, text + "\n[agent:cleo]\naddress = cleo@agents.example\nteams = Front Desk\n"))
    assert cfg.agent("cleo").teams == ("Front Desk",)


def test_secrets_never_in_repr_nor_in_errors(tmp_path, monkeypatch):
    cfg = config.load(write(tmp_path, ROSTER.replace(f"secret = {SECRET}",
                                                     f"secret = {SECRET}\nprevious_secret = {'p' * 32}")))
    assert SECRET not in repr(cfg) and "p" * 32 not in repr(cfg)
    assert cfg.token_keys == (SECRET.encode(), b"p" * 32)
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, ROSTER.replace(SECRET, "short-but-secret")))
    assert "short-but-secret" not in str(info.value) and "16 bytes" in str(info.value)


def test_secret_from_file_and_environment(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("f" * 32 + "\n")
    text = ROSTER.replace(f"secret = {SECRET}", "secret_file = key")
    assert config.load(write(tmp_path, text)).secret == "f" * 32
    monkeypatch.setenv("MAILPROC_SECRET", "e" * 33)
    assert config.load(write(tmp_path, text)).secret == "e" * 33
    monkeypatch.setenv("MAILPROC_SECRET", "e" * 31)
    with pytest.raises(ConfigError, match="31 bytes, from the environment variable MAILPROC_SECRET"):
        config.load(write(tmp_path, text))


def test_no_secret_is_needed_without_agents(tmp_path):
    assert config.load(write(tmp_path, "[mailproc]\n" + BOX)).secret is None


@pytest.mark.parametrize("change, where, words", [
    ((f"secret = {SECRET}\n", ""), "[mailproc] secret", "required when agents are configured"),
    ((f"secret = {SECRET}", "secret = " + "x" * 31), "[mailproc] secret", "too short (31 bytes"),
    ((f"secret = {SECRET}", "secret_file = nowhere"), "[mailproc] secret_file", "cannot read"),
    (("address = bob@agents.example\n", ""), "[agent:bob] address", "is required"),
    (("address = bob@agents.example", "address = bob"), "[agent:bob] address", "not an email address"),
    (("address = bob@agents.example", "address = Support@Example.com"), "[agent:bob] address",
     "is a mailbox's address"),
    (("address = bob@agents.example", "address = ANA@agents.example"), "[agent:bob] address",
     "also the address of [agent:ana]"),
    (("teams = Support Team, Dev Team", "teams = Suport Team"), "[agent:ana] teams",
     "unknown team 'Suport Team'; did you mean 'Support Team'?"),
    (("teams = Support Team, Dev Team", "teams = support team"), "[agent:ana] teams", "did you mean 'Support Team'"),
    (("teams = Support Team, Dev Team", "teams = Night Shift"), "[agent:ana] teams", "[team:Night Shift]"),
    (("tier = t2", "tier = T6"), "[agent:ana] tier", "T1, T2, T3, T4, T5"),
    (("roles = lead, oncall", "roles = leader"), "[agent:ana] roles", "did you mean 'lead'"),
    (("timezone = America/Chicago", "timezone = America/Chicgo"), "[agent:ana] timezone", "unknown time zone"),
    (("hours = Mon-Fri 07:00-13:00, Sat 09:00-12:00", "hours = Mon-Fri 7am-1pm"), "[agent:ana] hours",
     "not DAYS HH:MM-HH:MM"),
    (("hours = Mon-Fri 07:00-13:00, Sat 09:00-12:00", "hours = Mon-Fry 07:00-13:00"), "[agent:ana] hours",
     "unknown day 'Fry'"),
    (("name = Ana Silva", "nmae = Ana Silva"), "[agent:ana] nmae", "did you mean 'name'"),
    (("[agent:bob]", "[agent:bob smith]"), "[agent:bob smith]", "letters, digits"),
    (("lead = ana", "lead = anna"), "[team:Support Team] lead", "no agent named 'anna'; did you mean 'ana'?"),
    (("address = support-team@agents.example", "address = support@example.com"), "[team:Support Team] address",
     "mailbox's address"),
    (("[team:Billing]", "[team:Billing]\nleader = ana"), "[team:Billing] leader", "did you mean 'lead'"),
    (("[team:Billing]", "[team:A, B]"), "[team:A, B]", "without commas"),
])
def test_roster_errors_name_file_and_key(tmp_path, change, where, words):
    path = write(tmp_path, ROSTER.replace(*change))
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert message.startswith(str(path)) and where in message and words in message


def test_the_examples_roster_sections_are_valid_when_uncommented(tmp_path):
    """The commented [agent:ana] and [team:…] of the documented mailproc.ini, uncommented."""
    import re

    from mailproc.testing import REPO
    lines, inside = [], False
    for line in (REPO / "mailproc.ini").read_text().splitlines():
        inside = (inside or line == "# [agent:ana]") and line != "[smtp]"
        if inside and re.match(r"# (\[[a-z]+(:.+)?\]|[a-z_]+ = )", line):
            line = line[2:]
        lines.append(line.replace("# secret =", f"secret = {SECRET}").replace("storage = storage", "storage = st"))
    cfg = config.load(write(tmp_path, "\n".join(lines)))
    assert [a.name for a in cfg.agents] == ["ana"] and cfg.agents[0].hours is not None
    assert next(t for t in cfg.teams if t.name == "Support Team").lead == "ana"
    assert cfg.oncall is not None and cfg.oncall.rotation == ("ana",) and len(cfg.oncall.wakeup) == 2
    assert cfg.digest is not None and cfg.digest.timezone.key == "Europe/Lisbon" and len(cfg.digest.recipients) == 2
    assert cfg.checkin is not None and cfg.checkin.slots.text == "09:30, 13:30, 16:30"
    assert cfg.hours.send_by_day == 8 and cfg.lifecycle.offboarding_tag == "offboarding"


def test_report_sections_default_when_absent(tmp_path):
    from datetime import time
    cfg = config.load(write(tmp_path, "[mailproc]\ntimezone = America/Sao_Paulo\n" + BOX))
    assert cfg.digest is not None and cfg.checkin is not None
    assert [a.wall for a in cfg.digest.time.times] == [time(7, 0)]
    assert cfg.digest.timezone.key == "America/Sao_Paulo"  # the installation's
    assert [(a.wall, a.weekdays) for a in cfg.digest.weekly.times] == [(time(8, 0), frozenset({0}))]
    assert cfg.digest.recipients == ()
    assert [a.wall for a in cfg.checkin.slots.times] == [time(9, 30), time(13, 30), time(16, 30)]
    assert (cfg.hours.send_by_day, cfg.hours.exclude_tags) == (8, ("ProjectManagement", "Meetings"))
    assert cfg.lifecycle.call_prep_day == 1


@pytest.mark.parametrize("text, where, words", [
    ("[digest]\ntime = 7am\n", "[digest] time", "HH:MM"),
    ("[digest]\ntime = Mon 07:00\n", "[digest] time", "without a weekday"),
    ("[digest]\nweekly = Someday 08:00\n", "[digest] weekly", "unknown day"),
    ("[digest]\ntimezone = Mars/Olympus\n", "[digest] timezone", "unknown time zone"),
    ("[digest]\nrecipients = lead-at-example\n", "[digest] recipients", "not an email address"),
    ("[digest]\nrecipients = support@example.com\n", "[digest] recipients", "mailbox's address"),
    ("[digest]\nhour = 07:00\n", "[digest] hour", "unknown key"),
    ("[checkin]\nslots = 09:30, , 16:30\n", "[checkin] slots", "empty entry"),
    ("[checkin]\nslots = 25:00\n", "[checkin] slots", "no such time"),
    ("[hours]\nsend_by_day = 31\n", "[hours] send_by_day", "at most 28"),
    ("[hours]\nsend_by_day = 3\nconfirm_days_before = 3\n", "[hours] confirm_days_before", "less than"),
    ("[hours]\ntime = noon\n", "[hours] time", "not a time of day"),
    ("[lifecycle]\ncall_prep_day = 0\n", "[lifecycle] call_prep_day", "at least 1"),
    ("[reports]\n", "[reports]", "unknown section"),
])
def test_report_section_errors(tmp_path, text, where, words):
    path = write(tmp_path, "[mailproc]\n" + BOX + text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert where in str(info.value) and words in str(info.value)


def test_hours_exclude_tags_replace_the_default(tmp_path):
    cfg = config.load(write(tmp_path, "[mailproc]\n" + BOX + "[hours]\nexclude_tags = Meetings, Travel\n"))
    assert cfg.hours.exclude_tags == ("Meetings", "Travel")
