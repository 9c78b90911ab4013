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


def test_config_option_works_before_and_after_the_command(tmp_path):
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                        "delivery_timeout = 7s\n")
    for args in (("--config", str(settings), "check-config"), ("check-config", "--config", str(settings))):
        result = subprocess.run([sys.executable, "-m", "tray_alerts", *args], capture_output=True, text=True,
                                env={k: v for k, v in os.environ.items() if k != "TRAY_ALERTS_CONFIG"}, timeout=60)
        assert result.returncode == 0 and "delivery timeout: 7 s" in result.stdout


def _free_port():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_line(process, timeout):
    """The process's first stdout line, or '' if none comes within `timeout` s (a reader thread keeps it bounded)."""
    import queue
    import threading

    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def test_raise_clear_and_ping_go_through_the_running_app(tmp_path):
    import signal
    import stat

    port = _free_port()
    settings = tmp_path / "settings.ini"
    settings.write_text(
        f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'log' / 'app.log'}\napi_port = {port}\n"
        f"[channel.log]\nfile = {tmp_path / 'alerts.log'}\n[channel.desktop]\nenabled = no\n"
        "[monitor.disk_root]\nenabled = no\n[monitor.nightly]\ntype = heartbeat\nmax_age = 26h\n")
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    app = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        line = _first_line(app, timeout=20)
        assert "running headless" in line and f"push API on 127.0.0.1:{port}" in line, (line, app.poll())
        token_file = tmp_path / "state" / "api-token"
        assert token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

        raised = cli(settings, "raise", "backup/nightly job", "critical", "backup failed", "host=nas")
        assert raised.returncode == 0, raised.stderr
        assert "backup/nightly job: critical alert sent [the running app]" in raised.stdout
        assert "log: delivered" in raised.stdout and "not running" not in raised.stdout
        again = cli(settings, "raise", "backup/nightly job", "error", "still failing")
        assert again.returncode == 0 and "debounced, nothing sent" in again.stdout
        status = cli(settings, "status")
        assert status.returncode == 0, status.stderr
        assert "1 active alert" in status.stdout
        for text in ("backup/nightly job", "critical", "backup failed"):
            assert text in status.stdout
        logged = (tmp_path / "alerts.log").read_text().splitlines()
        assert len(logged) == 1 and "[CRITICAL] backup failed" in logged[0] and "host=nas" in logged[0]

        cleared = cli(settings, "clear", "backup/nightly job", "backup done")
        assert cleared.returncode == 0, cleared.stderr
        assert "backup/nightly job: cleared, recovery sent [the running app]" in cleared.stdout
        assert "log: delivered" in cleared.stdout
        assert "All clear" in cli(settings, "status").stdout
        assert "not active — nothing sent" in cli(settings, "clear", "backup/nightly job").stdout
        logged = (tmp_path / "alerts.log").read_text().splitlines()
        assert len(logged) == 2 and "[RESOLVED] backup done" in logged[1]

        pinged = cli(settings, "ping", "nightly")
        assert pinged.returncode == 0 and pinged.stdout.strip() == "nightly: pinged [the running app]"
        assert "last ping" in cli(settings, "check").stdout

        refused = cli(settings, "raise", "   ", "info", "m")  # the app's 400 comes back as a one-line usage error
        assert refused.returncode == 2 and "event id must be a non-empty string" in refused.stderr
        assert "Traceback" not in refused.stderr

        assert app.poll() is None, "the app stopped by itself"
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=15) == 0
        history = cli(settings, "history", "--event", "backup/nightly job").stdout
        assert "fired" in history and "cleared" in history
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(timeout=10)
        app.stdout.close()
        app.stderr.close()
