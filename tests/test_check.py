"""`mailproc check` catches what `run` would trip on: each broken setting here is
refused by `check` and by `run --once` alike, with exit 78, the file and the
ini key named, no traceback and no hang, and before anything is created.

Every case is a real file given to the real command line (cli.main in-process;
a subprocess where a regression would hang the test instead of failing it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from helpers import run
from mailproc import cli
from mailproc.testing import write_config

SUPPORT = "support@example.com"
BOX = dict(name="support", host="127.0.0.1", port=9, username="u", password="pw", address=SUPPORT)


def config_with(directory: Path, *, box: dict | None = None, smtp: dict | None = None, **core) -> Path:
    return write_config(directory, mailboxes=[{**BOX, **(box or {})}], smtp=smtp, extra=core)


def refused(config: Path, capsys, where: str, words: str) -> None:
    """`check` and `run --once` both exit 78 naming the file and `where`, and create nothing."""
    for args in (["check"], ["run", "--once"]):
        code, _ = run(config, *args)
        out, err = capsys.readouterr()
        assert code == 78 and not out, (args, out, err)
        assert f"mailproc: error: {config}:{where}: " in err, (args, err)
        assert words in err, (args, err)
        assert "Traceback" not in err
    assert not (config.parent / "storage").exists() or where == "[mailproc] storage"


@pytest.mark.parametrize("box, smtp, where, words", [
    (dict(port=70000), None, "[mailbox:support] port", "from 1 to 65535, not 70000"),
    (None, dict(host="127.0.0.1", port=99999), "[smtp] port", "from 1 to 65535, not 99999"),
])
def test_ports_out_of_range(tmp_path, capsys, box, smtp, where, words):
    refused(config_with(tmp_path / "site", box=box, smtp=smtp), capsys, where, words)


@pytest.mark.parametrize("token, words", [
    ("[Case #{number}{0}]", "no other { or }"),  # rendered, it raised IndexError for every message
    ("[Case #{number!r:>{x}}]", "no other { or }"),
    ("[Case #{numbers}]", "must contain {number}"),
    ("{number}", "at least 2 characters besides {number}"),
])
def test_case_tokens_that_cannot_be_rendered_or_found_again(tmp_path, capsys, token, words):
    refused(config_with(tmp_path / "site", case_token=token), capsys, "[mailproc] case_token", words)


def test_postgresql_url_with_a_bad_port(tmp_path, capsys):
    config = config_with(tmp_path / "site", database="postgresql://u:p@h:xx/d")
    refused(config, capsys, "[mailproc] database", "bad port in 'h:xx'")


def test_storage_that_is_a_file(tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "storage").write_text("not a directory\n")
    refused(config_with(site, storage=site / "storage"), capsys, "[mailproc] storage", "is a file, not a directory")


def test_storage_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x\n")
    config = config_with(tmp_path / "site", storage=tmp_path / "afile" / "storage")
    refused(config, capsys, "[mailproc] storage", f"cannot create {tmp_path / 'afile' / 'storage'}")


def as_other_user(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of cli.main(argv) run by `nobody` when we are root (tests run
    as root, for whom every directory is writable), else by ourselves. A forked child,
    because the interpreter under /root cannot be exec'd by nobody."""
    if os.geteuid() != 0:
        code, _ = run(argv[1], *argv[2:])
        return code, ""
    import mailproc.daemon  # noqa: F401  (imported before the fork: the child may not read /root)
    import mailproc.rules  # noqa: F401
    import mailproc.templates  # noqa: F401
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read)
            sys.stderr = os.fdopen(write, "w")
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = cli.main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        err = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.fixture
def shared_dir():
    """A directory `nobody` can read but not write (tmp_path's parents are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mailproc-check-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.mark.parametrize("existing", [True, False])
def test_storage_this_user_cannot_write(shared_dir, capsys, existing):
    storage = shared_dir / "storage"
    if existing:
        storage.mkdir(mode=0o755)
    else:
        storage = shared_dir / "storage" / "new"
    config = config_with(shared_dir, storage=storage)
    config.chmod(0o644)
    if os.geteuid() != 0:
        (shared_dir / "storage").mkdir(exist_ok=True)
        (shared_dir / "storage").chmod(0o555)
    for args in (["check"], ["run", "--once"]):
        code, err = as_other_user(["--config", str(config), *args])
        err += capsys.readouterr().err
        assert code == 78, err
        assert f"{config}:[mailproc] storage: " in err and "Traceback" not in err
        assert ("cannot write in" if existing else "not writable by this user") in err
    assert not (shared_dir / "storage" / "new").exists()


def cli_subprocess(config: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """The installed command in a process of its own, so that a hang fails the test."""
    return subprocess.run([sys.executable, "-m", "mailproc", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=config.parent)


def test_password_file_that_is_a_fifo_neither_hangs_nor_is_opened(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    os.mkfifo(site / "pw")  # reading it would block until someone wrote to it
    config = config_with(site, box=dict(password="", password_file="pw"))
    for args in (["check"], ["run", "--once"]):
        result = cli_subprocess(config, *args)
        assert result.returncode == 78, result.stderr
        assert f"{config}:[mailbox:support] password_file: {site / 'pw'}: not a regular file" in result.stderr
        assert "Traceback" not in result.stderr


def test_password_file_that_is_not_utf8(tmp_path, capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "pw").write_bytes(b"s\xe9cret\n")
    refused(config_with(site, box=dict(password="", password_file="pw")), capsys,
            "[mailbox:support] password_file", "not UTF-8 text")


def test_no_mailbox_is_refused_by_run_as_by_check(tmp_path, capsys):
    config = write_config(tmp_path / "site")
    messages = []
    for args in (["check"], ["run", "--once"]):
        code, _ = run(config, *args)
        out, err = capsys.readouterr()
        assert code == 78 and not out, (args, err)
        messages.append(err.strip())
    assert messages[0] == messages[1] == f"mailproc: error: {config}: no [mailbox:NAME] section: nothing to poll"
    assert not (tmp_path / "site" / "storage").exists()


@pytest.mark.parametrize("key", ["rules", "templates"])
def test_missing_override_directory_names_its_key(tmp_path, capsys, key):
    config = config_with(tmp_path / "site", **{key: tmp_path / "nowhere"})
    refused(config, capsys, f"[mailproc] {key}", f"directory not found: {tmp_path / 'nowhere'}")


def test_every_refusal_is_one_line_without_traceback_in_a_real_process(tmp_path):
    config = config_with(tmp_path / "site", box=dict(port=70000), case_token="[Case #{number}{0}]")
    result = cli_subprocess(config, "run", "--once")
    assert result.returncode == 78 and not result.stdout
    assert result.stderr == f"mailproc: error: {config}:[mailproc] case_token: must contain {{number}} once and " \
                            "no other { or }, e.g. [Case #{number}]\n"
