"""The systemd monitor: `systemctl show` parsed and judged as pure functions, the runtime against a fake
`systemctl` on PATH (answers, failures, a hang), and against the real systemd where one runs."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import psutil
import pytest

from polling import wait_until
from tray_alerts.channels.base import SettingError
from tray_alerts.model import Level
from tray_alerts.monitors import build_monitor
from tray_alerts.monitors.systemd import judge, parse_show

SYSTEMD_RUNNING = os.path.isdir("/run/systemd/system")


def build(**raw: str):
    return build_monitor("t", "systemd", raw).monitor


def show(load="loaded", active="active", sub="running", result="success") -> str:
    return f"LoadState={load}\nResult={result}\nActiveState={active}\nSubState={sub}\n"


# ---- pure: parse and judge -----------------------------------------------------------------------------------


def test_parse_show():
    assert parse_show("ActiveState=active\nSubState=running\n\nnot a property\nExecMainStatus=\nX=a=b\n") == {
        "ActiveState": "active", "SubState": "running", "ExecMainStatus": "", "X": "a=b"}
    assert parse_show("") == {}


@pytest.mark.parametrize("state, level, summary", [
    (show(), None, "is active (running)"),
    (show(sub="exited"), None, "is active (exited)"),
    (show(active="reloading", sub="reload"), None, "is reloading (reload)"),
    (show(active="failed", sub="failed", result="exit-code"), Level.ERROR, "has failed (result exit-code)"),
    (show(active="failed", sub="failed", result="success"), Level.ERROR, "has failed"),
    (show(active="activating", sub="auto-restart", result="exit-code"), Level.ERROR,
     "is restarting after a failure (auto-restart, result exit-code)"),
    (show(active="inactive", sub="dead"), Level.WARNING, "is inactive (dead)"),
    (show(active="inactive", sub="dead", result="timeout"), Level.WARNING, "is inactive (dead, result timeout)"),
    (show(active="activating", sub="start"), Level.WARNING, "is activating (start)"),
    (show(active="deactivating", sub="stop-sigterm"), Level.WARNING, "is deactivating (stop-sigterm)"),
    (show(load="masked", active="inactive", sub="dead"), Level.WARNING, "is inactive and masked (dead)"),
    (show(load="not-found", active="inactive", sub="dead"), Level.ERROR, "is not loaded (no such unit)"),
    (show(load="bad-setting", active="inactive", sub="dead"), Level.ERROR,
     "is not loaded (bad-setting: a bad unit file)"),
    ("LoadState=loaded\n", Level.ERROR, "is unknown: systemctl's answer has no ActiveState"),
])
def test_judge(state, level, summary):
    assert judge(parse_show(state), Level.ERROR, Level.WARNING) == (level, summary)


def test_judge_with_other_levels():
    failed = parse_show(show(active="failed", sub="failed", result="core-dump"))
    inactive = parse_show(show(active="inactive", sub="dead"))
    assert judge(failed, Level.CRITICAL, None) == (Level.CRITICAL, "has failed (result core-dump)")
    assert judge(inactive, Level.CRITICAL, None) == (None, "is inactive (dead)")
    assert judge(inactive, Level.ERROR, Level.INFO)[0] is Level.INFO


# ---- runtime: a fake systemctl on PATH --------------------------------------------------------------------


@pytest.fixture
def systemctl(tmp_path, monkeypatch):
    """A `systemctl` on PATH that logs its arguments and answers what `answer` holds, exiting with `code`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = FakeSystemctl(tmp_path)
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$@" >> {fake.calls}\n. {fake.behaviour}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    fake.answer(show())
    return fake


class FakeSystemctl:
    def __init__(self, directory: Path):
        self.calls = directory / "calls"
        self.behaviour = directory / "behaviour.sh"
        self.pid_file = directory / "child.pid"

    def answer(self, text: str, code: int = 0, stderr: str = "") -> None:
        self.behaviour.write_text(f"cat <<'EOF'\n{text}EOF\n" + (f"cat >&2 <<'EOF'\n{stderr}\nEOF\n" if stderr else "")
                                  + f"exit {code}\n")

    def hang(self) -> None:
        self.behaviour.write_text(f"sleep 60 &\necho $! > {self.pid_file}\nwait\n")

    def arguments(self) -> list[str]:
        return self.calls.read_text().splitlines()


def test_an_active_unit_is_fine(systemctl):
    monitor = build(unit="nginx.service")
    assert monitor.label == "systemd nginx.service"
    reading = monitor.check()
    assert (reading.level, reading.summary) == (None, "is active (running)")
    assert reading.context == {"unit": "nginx.service", "LoadState": "loaded", "ActiveState": "active",
                               "SubState": "running", "Result": "success"}
    assert systemctl.arguments() == ["show nginx.service --property=LoadState,ActiveState,SubState,Result --no-pager"]


def test_the_user_manager_with_user_yes(systemctl):
    monitor = build(unit="syncthing.service", user="yes")
    assert monitor.label == "systemd syncthing.service (user)"
    assert monitor.check().ok
    assert systemctl.arguments()[0].startswith("--user show syncthing.service ")


def test_a_failed_unit_and_its_level(systemctl):
    systemctl.answer(show(active="failed", sub="failed", result="exit-code"))
    reading = build(unit="backup.service").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "has failed (result exit-code)")
    assert reading.context["Result"] == "exit-code"
    assert build(unit="backup.service", level="critical").check().level is Level.CRITICAL


def test_inactive_is_a_warning_unless_told_otherwise(systemctl):
    systemctl.answer(show(active="inactive", sub="dead"))
    assert build(unit="backup.service").check().level is Level.WARNING
    assert build(unit="backup.service", inactive="ok").check().ok
    assert build(unit="backup.service", inactive="error").check().level is Level.ERROR


def test_a_state_change_between_checks(systemctl):
    monitor = build(unit="web.service")
    assert monitor.check().ok
    systemctl.answer(show(active="activating", sub="auto-restart", result="signal"))
    assert monitor.check().summary == "is restarting after a failure (auto-restart, result signal)"
    systemctl.answer(show())
    assert monitor.check().ok


def test_systemctl_failing_is_an_error_with_its_words(systemctl):
    systemctl.answer("", code=1, stderr="System has not been booted with systemd as init system (PID 1)."
                                        " Can't operate.\nFailed to connect to bus: Host is down")
    reading = build(unit="web.service").check()
    assert reading.level is Level.ERROR
    assert reading.summary == ("systemctl failed (exit 1): System has not been booted with systemd as init system"
                               " (PID 1). Can't operate.")


def test_systemctl_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    reading = build(unit="web.service").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "cannot run systemctl: No such file or directory")


def test_a_hung_systemctl_is_killed_with_its_children(systemctl):
    systemctl.hang()
    reading = build(unit="web.service", timeout="500ms").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "systemctl did not answer within 0.5 s")
    child = int(systemctl.pid_file.read_text())
    wait_until(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE,
               "systemctl's child to die", timeout=10)


# ---- the real systemd, where one runs ------------------------------------------------------------------------


@pytest.mark.skipif(not SYSTEMD_RUNNING, reason="no systemd running here (a container without it as PID 1)")
def test_the_real_init_scope_is_active():
    reading = build(unit="init.scope").check()
    assert (reading.level, reading.summary) == (None, "is active (running)")


@pytest.mark.skipif(not SYSTEMD_RUNNING, reason="no systemd running here (a container without it as PID 1)")
def test_a_unit_that_does_not_exist_on_the_real_systemd():
    reading = build(unit="tray-alerts-no-such-unit.service").check()
    assert (reading.level, reading.summary) == (Level.ERROR, "is not loaded (no such unit)")


# ---- settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, key", [
    ({}, "unit"),
    ({"unit": "two words"}, "unit"),
    ({"unit": "--all"}, "unit"),
    ({"unit": "a;b"}, "unit"),
    ({"unit": "x", "user": "maybe"}, "user"),
    ({"unit": "x", "level": "loud"}, "level"),
    ({"unit": "x", "inactive": "fine"}, "inactive"),
])
def test_settings_errors_name_the_key(raw, key):
    with pytest.raises(SettingError) as caught:
        build_monitor("t", "systemd", raw)
    assert caught.value.key == key


def test_unit_names_systemd_accepts():
    for unit in ("nginx", "getty@tty1.service", "dev-disk-by\\x2duuid.swap", "user-1000.slice", "-.mount"[1:]):
        assert build(unit=unit).unit == unit
