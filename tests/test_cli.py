"""The command line, run as a real process the way a shell or cron job runs it."""
import os
import subprocess
import sys

import pytest


@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "settings.ini"
    path.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'log' / 'app.log'}\n"
                    f"[channel.log]\nfile = {tmp_path / 'alerts.log'}\n[channel.desktop]\nenabled = no\n")
    return path


def cli(settings_file, *args, env_extra=None):
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings_file), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "tray_alerts", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_debounce_and_recovery_scenario(settings_file, tmp_path):
    first = cli(settings_file, "raise", "disk_full", "warning", "disk at 93% on /", "mount=/")
    assert first.returncode == 0, first.stderr
    assert "warning alert sent" in first.stdout and "log: delivered" in first.stdout
    again = cli(settings_file, "raise", "disk_full", "warning", "disk at 93% on /")
    assert "debounced, nothing sent" in again.stdout and "seen 2 times" in again.stdout
    status = cli(settings_file, "status")
    assert "1 active alert" in status.stdout and "disk_full" in status.stdout and "warning" in status.stdout
    cleared = cli(settings_file, "clear", "disk_full", "back to 60%")
    assert "cleared, recovery sent" in cleared.stdout
    assert "not active — nothing sent" in cli(settings_file, "clear", "disk_full").stdout
    assert "warning alert sent" in cli(settings_file, "raise", "disk_full", "warning", "93% again").stdout
    lines = (tmp_path / "alerts.log").read_text().splitlines()
    assert [line.split("disk_full: ")[1].split("]")[0] for line in lines] == ["[WARNING", "[RESOLVED", "[WARNING"]
    assert "mount=/" in lines[0]
    history = cli(settings_file, "history", "--limit", "50").stdout
    for kind in ("fired", "cleared", "delivery", "recovery"):
        assert kind in history


def test_status_when_all_clear(settings_file):
    result = cli(settings_file, "status")
    assert result.returncode == 0 and "All clear" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("raise", "e", "severe", "m"), "unknown level 'severe'"),
    (("raise", "", "info", "m"), "event id must be a non-empty string"),
    (("raise", "e", "info", "m", "novalue"), "context must be key=value"),
])
def test_bad_input_exits_2_with_one_line(settings_file, args, message):
    result = cli(settings_file, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_bad_settings_exit_2_naming_file_section_and_key(tmp_path):
    bad = tmp_path / "settings.ini"
    bad.write_text("[routing]\ncritical = log, smss\n")
    result = cli(bad, "check-config")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"tray-alerts: {bad} [routing] critical: unknown channel 'smss'"
                                     " (known: log, desktop, slack, email, sms)")


def test_check_config_lists_channels_and_routing(settings_file):
    result = cli(settings_file, "check-config")
    assert result.returncode == 0 and "settings OK" in result.stdout
    assert "not configured: webhook_url is empty" in result.stdout and "critical  → log" in result.stdout


def test_help_everywhere(settings_file):
    for command in ("run", "raise", "clear", "status", "history", "check-config"):
        result = cli(settings_file, command, "--help")
        assert result.returncode == 0 and "usage: tray-alerts" in result.stdout


def test_run_stops_cleanly_on_sigterm(settings_file):
    import signal

    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings_file)}
    process = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "running headless" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
