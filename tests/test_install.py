"""Installing like real software: the rules and templates ship inside the package,
a site overrides single files, `mailproc init DIR` writes a site to start from,
and the built wheel, installed in a fresh venv outside the repository, answers
mail with a six-line mailproc.ini against the real test servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import mail, run
from mailproc.testing import REPO, write_config

SUPPORT = "support@example.com"


def test_init_writes_a_site_that_passes_check(tmp_path, capsys):
    site = tmp_path / "site"
    code, _ = run(tmp_path / "unused.ini", "init", site)  # init reads no config
    out = capsys.readouterr().out
    assert code == 0, out
    ini = site / "mailproc.ini"
    assert f"wrote {ini}\n" in out
    for name in ("classification", "priority", "routing", "screening", "sla", "workflow"):
        assert (site / "rules" / f"{name}.toml").read_bytes() == (REPO / "rules" / f"{name}.toml").read_bytes()
    for name in ("_base.html.j2", "acknowledgement.txt.j2", "acknowledgement.html.j2", "README.md"):
        assert (site / "templates" / name).read_bytes() == (REPO / "templates" / name).read_bytes()
    assert ini.stat().st_mode & 0o777 == 0o600  # it will hold passwords

    # The documented example, its rules and templates pointing at the copies next to it.
    example = (REPO / "mailproc.ini").read_text(encoding="utf-8").splitlines()
    written = ini.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(example, written) if a != b]
    assert len(example) == len(written)
    assert changed == [("# rules =", "rules = rules"), ("# templates =", "templates = templates")]

    code, _ = run(ini, "check")
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith(f"ok: {ini}: 1 mailbox(es)")
    assert f"rules/priority.toml                  override  {site / 'rules' / 'priority.toml'}\n" in out
    assert f"templates/acknowledgement.txt.j2     override  {site / 'templates' / 'acknowledgement.txt.j2'}\n" in out
    # every rule file and every template of the repository, copied, is an override
    shipped = [*(REPO / "rules").glob("*.toml"), *(REPO / "templates").glob("*.j2")]
    assert out.count(" override  ") == len(shipped) >= 9


def test_init_never_overwrites(tmp_path, capsys):
    site = tmp_path / "site"
    (site / "rules").mkdir(parents=True)
    (site / "rules" / "priority.toml").write_text("# the site's own, edited\n")
    code, _ = run(tmp_path / "unused.ini", "init", site)
    captured = capsys.readouterr()
    assert code == 1 and not captured.out
    assert f"{site}: refusing to overwrite 1 existing file(s), nothing written: rules/priority.toml" in captured.err
    assert (site / "rules" / "priority.toml").read_text() == "# the site's own, edited\n"
    assert sorted(p.name for p in site.rglob("*")) == ["priority.toml", "rules"]


def test_check_shows_which_file_is_in_force(tmp_path, capsys):
    overrides = tmp_path / "site-rules"
    overrides.mkdir()
    (overrides / "priority.toml").write_text((REPO / "rules" / "priority.toml").read_text(encoding="utf-8"))
    config = write_config(tmp_path / "site", mailboxes=[dict(name="support", host="127.0.0.1", port=9,
                                                             username="u", password="pw", address=SUPPORT)],
                          extra={"rules": overrides})
    code, _ = run(config, "check")
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"  rules/priority.toml                  override  {overrides / 'priority.toml'}\n" in out
    assert f"  rules/sla.toml                       shipped   {(REPO / 'rules' / 'sla.toml').resolve()}\n" in out
    assert "  templates/acknowledgement.html.j2    shipped   " in out


def test_check_notes_a_rules_directory_beside_the_config_that_is_no_longer_read(tmp_path, capsys):
    config = write_config(tmp_path / "site", mailboxes=[dict(name="support", host="127.0.0.1", port=9,
                                                             username="u", password="pw", address=SUPPORT)])
    (tmp_path / "site" / "rules").mkdir()
    code, _ = run(config, "check")
    err = capsys.readouterr().err
    assert code == 0
    assert f"note: {tmp_path / 'site' / 'rules'} is not used; to use its files, set rules = rules" in err
    assert "templates" not in err


def test_a_site_template_is_what_the_customer_receives(tmp_path, dovecot, imap_user, smtp, capsys):
    overrides = tmp_path / "site-templates"
    overrides.mkdir()
    (overrides / "acknowledgement.txt.j2").write_text(
        "Subject: {{ original_subject | reply_subject(token) }}\n\nAcme support has your mail: case {{ case.id }}.\n")
    user, password = imap_user
    config = write_config(tmp_path / "site", mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port,
                                                             username=user, password=password, address=SUPPORT)],
                          smtp=dict(host=smtp.host, port=smtp.port), extra={"templates": overrides})
    dovecot.append(user, mail("Cannot export", "The export button does nothing.", message_id="site-template"))
    assert run(config, "run", "--once")[0] == 0
    ack = smtp.wait_for(1)[0].message
    assert ack["Subject"] == "Re: Cannot export [Case #1]"
    assert ack.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Acme support has your mail: case 1.\n"
    assert "case #1" in ack.get_body(("html",)).get_content()  # the shipped HTML part


def clean_env() -> dict[str, str]:
    """The environment without anything that could lead the installed command back to the repository."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("MAILPROC_")}


@pytest.mark.slow
def test_the_built_wheel_in_a_fresh_venv_answers_mail(tmp_path, dovecot, imap_user, smtp):
    # Built from a copy of the working tree: setuptools builds in the source tree, and a
    # build/ left there by an earlier build would put stale files into this wheel.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "storage", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "results"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                   check=True, timeout=600, cwd=tmp_path)
    [wheel] = wheels.glob("mailproc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mailproc/defaults/mailproc.ini", "mailproc/defaults/rules/priority.toml",
            "mailproc/defaults/templates/acknowledgement.html.j2", "mailproc/defaults/starter-model.json"} <= names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=clean_env())
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, timeout=900, env=clean_env(), cwd=tmp_path)
    site = tmp_path / "site"
    site.mkdir()

    def mailproc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "mailproc"), *args], capture_output=True, text=True,
                              timeout=120, env=clean_env(), cwd=site)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import mailproc; print(mailproc.__file__)"],
                           capture_output=True, text=True, check=True, env=clean_env(), cwd=site).stdout
    assert where.startswith(str(venv)), where

    user, password = imap_user
    ini = site / "mailproc.ini"  # what a fresh operator writes: no rules, no templates
    ini.write_text(f"[mailbox:support]\nhost = {dovecot.host}\nport = {dovecot.port}\nsecurity = none\n"
                   f"username = {user}\npassword = {password}\naddress = {SUPPORT}\n"
                   f"[smtp]\nhost = {smtp.host}\nport = {smtp.port}\nsecurity = none\n")
    checked = mailproc("check")
    assert checked.returncode == 0, checked.stderr
    assert f"rules/priority.toml                  shipped   {venv}" in checked.stdout
    assert str(REPO) not in checked.stdout

    dovecot.append(user, mail("Cannot log in", "The login page says error 500.", message_id="from-the-wheel"))
    ran = mailproc("run", "--once")
    assert ran.returncode == 0, ran.stderr
    ack = smtp.wait_for(1)[0]
    assert ack.rcpt_tos == ["alice@acme.example"]
    assert ack.message["Subject"] == "Re: Cannot log in [Case #1]"
    listed = mailproc("cases", "list", "--json")
    assert [c["contact"] for c in json.loads(listed.stdout)] == ["alice@acme.example"]

    # init from the installed package: the example config ships too
    started = mailproc("init", str(tmp_path / "new-site"))
    assert started.returncode == 0, started.stderr
    assert mailproc("--config", str(tmp_path / "new-site" / "mailproc.ini"), "check").returncode == 0


def test_the_source_tree_links_the_shipped_files_to_their_editable_source():
    """The package's defaults are the repository's rules/, templates/ and mailproc.ini, not copies
    that could drift from them."""
    defaults = REPO / "mailproc" / "defaults"
    for name in ("rules", "templates", "mailproc.ini"):
        assert (defaults / name).resolve() == (REPO / name).resolve()
    assert Path(os.readlink(defaults / "rules")) == Path("../../rules")
