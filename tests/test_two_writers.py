"""Two writers, real processes: the running app, scripts using `tray_alerts.raise_alert` and the command line share
one state folder. Whether the app runs is decided by its lock on STATE_DIR/app.lock: everything goes through the
app while it holds it, a second app refuses to start, and with the lock held and no API answering nothing writes
the state file directly."""
from __future__ import annotations

import fcntl
import os

import pytest

from faults import (RunningApp, cli, finish, log_lines, start_cli, start_script, stored_events, write_settings)
from helpers_net import free_port
from tray_alerts.api import load_or_create_token

RAISE_SCRIPT = """
import tray_alerts
result = tray_alerts.raise_alert("e", "error", "m")
print(result.kind, result.stored)
"""
CLEAR_SCRIPT = """
import tray_alerts
result = tray_alerts.clear_alert("e")
print(result.kind, result.stored)
"""
FIRED_LINE = "e: error alert sent [the running app]"


@pytest.fixture
def settings(tmp_path):
    return write_settings(tmp_path, port=free_port())


@pytest.fixture
def app(settings):
    running = RunningApp(settings)
    yield running
    running.stop()


def test_the_app_a_script_and_the_cli_fire_once_and_clear_through_the_app(app, settings, tmp_path):
    log_file = tmp_path / "alerts.log"
    script = start_script(settings, RAISE_SCRIPT)
    command = start_cli(settings, "raise", "e", "error", "m")
    script_code, script_out, script_err = finish(script)
    cli_code, cli_out, cli_err = finish(command)
    assert script_code == 0, script_err
    assert cli_code == 0, cli_err
    assert script_out.split()[0] in ("fired", "debounced") and script_out.split()[1] == "True"
    cli_fired = FIRED_LINE in cli_out and "log: delivered" in cli_out
    assert cli_fired or "already active at error" in cli_out and "debounced, nothing sent" in cli_out, cli_out
    assert [script_out.split()[0] == "fired", cli_fired].count(True) == 1  # exactly one fired, the other debounced
    assert "not running" not in cli_out  # it went through the app

    assert len(log_lines(log_file, "e", "ERROR")) == 1
    status, alerts = app.call("GET", "/v1/alerts")
    assert status == 200 and [(a["event"], a["level"], a["seen"]) for a in alerts] == [("e", "error", 2)]

    cleared = start_script(settings, CLEAR_SCRIPT)
    code, out, err = finish(cleared)
    assert code == 0 and out.split() == ["cleared", "True"], (out, err)
    status, alerts = app.call("GET", "/v1/alerts")
    assert status == 200 and alerts == []
    assert len(log_lines(log_file, "e", "RESOLVED")) == 1

    again = cli(settings, "raise", "e", "error", "m")
    assert again.returncode == 0, again.stderr
    assert FIRED_LINE in again.stdout and "debounced" not in again.stdout
    assert len(log_lines(log_file, "e", "ERROR")) == 2
    assert app.running()
    assert app.stop() == 0
    assert stored_events(app.state_dir / "state.db") == {"e"}


def test_a_second_app_on_the_same_state_folder_exits_2_and_the_first_keeps_running(app, settings, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    second_settings = other / "settings.ini"  # the same state folder, another api_port
    second_settings.write_text(settings.read_text().replace(f"api_port = {app.port}", f"api_port = {free_port()}"))
    assert f"state_dir = {app.state_dir}" in second_settings.read_text()
    code, out, err = finish(start_cli(second_settings, "run", "--headless"), timeout=10)
    assert code == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and "already running" in lines[0], err
    assert "running headless" not in out

    assert app.running()
    status, alerts = app.call("GET", "/v1/alerts")
    assert status == 200 and alerts == []
    raised = cli(settings, "raise", "still_here", "warning", "the first app still answers")
    assert raised.returncode == 0 and "[the running app]" in raised.stdout, raised.stderr


@pytest.fixture
def app_lock(settings):
    """Hold STATE_DIR/app.lock the way the running app does, with nothing listening on its port."""
    state_dir = settings.parent / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "app.lock", os.O_RDWR | os.O_CREAT, 0o600)

    class Lock:
        def acquire(self) -> None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

        def release(self) -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    yield Lock()
    os.close(fd)


def test_the_cli_decides_running_from_the_lock_not_a_connection(settings, app_lock, tmp_path):
    state = tmp_path / "state" / "state.db"
    before = cli(settings, "raise", "y", "warning", "raised while nothing runs")
    assert before.returncode == 0 and "[here (tray-alerts is not running)]" in before.stdout, before.stderr
    load_or_create_token(tmp_path / "state")  # as an app that ran here before left it

    app_lock.acquire()
    command = start_cli(settings, "raise", "x", "error", "m")
    script = start_script(settings, "import tray_alerts\ntry:\n    tray_alerts.raise_alert('x', 'error', 'm')\n"
                                    "except Exception as error:\n    print(type(error).__name__, error)\n"
                                    "else:\n    print('no error')\n")
    code, out, err = finish(command)
    assert code == 1, (out, err)
    assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "tray-alerts is running but nothing answers on 127.0.0.1:" in err
    script_code, script_out, script_err = finish(script)
    assert script_code == 0, script_err
    assert script_out.startswith("ApiFailed tray-alerts is running but nothing answers"), script_out
    assert stored_events(state) == {"y"}  # never a direct write while the lock is held
    assert log_lines(tmp_path / "alerts.log", "x") == []

    app_lock.release()
    direct = cli(settings, "raise", "x", "error", "m")
    assert direct.returncode == 0, direct.stderr
    assert "x: error alert sent [here (tray-alerts is not running)]" in direct.stdout
    assert stored_events(state) == {"x", "y"}
    assert len(log_lines(tmp_path / "alerts.log", "x", "ERROR")) == 1


def test_a_held_lock_without_a_token_is_an_error_too_never_a_direct_write(settings, app_lock, tmp_path):
    app_lock.acquire()
    refused = cli(settings, "raise", "x", "error", "m")
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1 and "tray-alerts is running" in refused.stderr
    assert stored_events(tmp_path / "state" / "state.db") == set()
    assert log_lines(tmp_path / "alerts.log", "x") == []
