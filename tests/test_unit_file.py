"""deploy/mailproc.service: what the daemon relies on (Type=notify and its watchdog,
SIGHUP for reload, SIGTERM and time enough to stop, no restart on a bad config),
checked everywhere by reading the file; and `systemd-analyze verify` where the
tool exists, on a copy whose ExecStart names an executable of this machine."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailproc import cli, daemon
UNIT = Path(__file__).resolve().parents[1] / "deploy" / "mailproc.service"


def _unit(path: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def _seconds(value: str) -> float:
    """A systemd time span as seconds ("120s", "5min", "2min 30s", "90")."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def test_the_daemon_runs_as_a_notify_service_with_a_watchdog():
    service = _unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert 30 <= _seconds(service["WatchdogSec"]) <= 600
    argv = shlex.split(service["ExecStart"])
    assert argv[0].startswith("/") and argv[0].endswith("/mailproc")
    assert argv[-1] == "run" and "--once" not in argv and "--config" in argv  # the binary, not a shell


def test_reload_is_sighup_and_stop_is_sigterm_with_time_to_finish():
    service = _unit()["Service"]
    assert shlex.split(service["ExecReload"])[1:] == ["-HUP", "$MAINPID"]
    assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert service.get("KillMode", "control-group") in ("control-group", "mixed")
    # the sender's grace to send what is due, then one SMTP timeout (60 s default) for the mail in hand
    assert _seconds(service["TimeoutStopSec"]) >= daemon.STOP_SENDER_AFTER + 60


def test_restarts_on_failure_but_not_on_a_bad_config():
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert str(cli.EX_CONFIG) in service["RestartPreventExitStatus"].split()


def test_hardened_and_private():
    service = _unit()["Service"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("UMask", "0077"),
                       ("CapabilityBoundingSet", ""), ("MemoryDenyWriteExecute", "yes")):
        assert service[key] == value, key
    assert service["User"] not in ("", "root")
    state = "/var/lib/" + service["StateDirectory"]
    assert service["WorkingDirectory"] == state and state in service["ReadWritePaths"].split()
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def _executable() -> str:
    """An executable of this machine for ExecStart: the venv's mailproc, else the interpreter."""
    script = Path(sys.executable).with_name("mailproc")
    return str(script if script.exists() else Path(sys.executable).resolve())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    text = UNIT.read_text(encoding="utf-8")
    shipped = shlex.split(_unit()["Service"]["ExecStart"])[0]
    copy = tmp_path / "mailproc.service"
    copy.write_text(text.replace(shipped, _executable()), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                          timeout=120)
    about_unit = [line for line in (done.stdout + done.stderr).splitlines() if copy.name in line]
    assert done.returncode == 0 and not about_unit, done.stdout + done.stderr  # warnings too: unknown keys


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_verify_would_catch_a_broken_unit(tmp_path):
    """The check above can fail: a unit naming a missing executable is refused."""
    copy = tmp_path / "mailproc.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("ExecStart=/", "ExecStart=/nonexistent/"),
                    encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
