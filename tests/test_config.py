"""Config is parsed once into typed objects; every error names file, section and key."""

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
