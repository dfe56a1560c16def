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
