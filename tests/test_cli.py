"""The command line, run as a real process the way a shell or cron job runs it."""
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

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


@contextmanager
def headless_app(tmp_path, more_settings: str = ""):
    """`tray-alerts run --headless` on settings of its own (state, log, a free API port, the log channel to
    alerts.log, no desktop, no disk monitor, plus `more_settings`); yields (settings path, port, process, its first
    line) and stops it if the test has not."""
    port = _free_port()
    settings = tmp_path / "settings.ini"
    settings.write_text(
        f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'log' / 'app.log'}\napi_port = {port}\n"
        f"[channel.log]\nfile = {tmp_path / 'alerts.log'}\n[channel.desktop]\nenabled = no\n"
        "[monitor.disk_root]\nenabled = no\n" + more_settings)
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    app = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        yield settings, port, app, _first_line(app, timeout=20)
    finally:
        if app.poll() is None:
            app.send_signal(signal.SIGTERM)
            try:
                app.wait(timeout=15)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait(timeout=10)
        app.stdout.close()
        app.stderr.close()


def test_raise_clear_and_ping_go_through_the_running_app(tmp_path):
    import stat

    with headless_app(tmp_path, "[monitor.nightly]\ntype = heartbeat\nmax_age = 26h\n") as (settings, port, app,
                                                                                               line):
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

        cli(settings, "raise", "router", "error", "no link")
        inhibited = cli(settings, "raise", "nas", "error", "unreachable", "--depends-on", "router, vpn")
        assert inhibited.returncode == 0, inhibited.stderr
        assert "nas: error alert fired, inhibited by router — only the log is told" in inhibited.stdout
        assert "[inhibited by router] unreachable" in cli(settings, "status").stdout
        cli(settings, "clear", "router")
        assert "[inhibited by" not in cli(settings, "status").stdout

        refused = cli(settings, "raise", "   ", "info", "m")  # the app's 400 comes back as a one-line usage error
        assert refused.returncode == 2 and "event id must be a non-empty string" in refused.stderr
        assert "Traceback" not in refused.stderr

        assert app.poll() is None, "the app stopped by itself"
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=15) == 0
        history = cli(settings, "history", "--event", "backup/nightly job").stdout
        assert "fired" in history and "cleared" in history


def test_version():
    from tray_alerts import __version__

    result = subprocess.run([sys.executable, "-m", "tray_alerts", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"tray-alerts {__version__}"


def test_raise_says_the_message_is_missing_and_context_is_optional(settings_file):
    result = cli(settings_file, "raise", "x", "warning")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "tray-alerts raise: error: the following arguments are required: MESSAGE"
    assert "EVENT LEVEL MESSAGE [key=value ...]" in result.stderr


@pytest.mark.parametrize("message", ["", "   ", "\t"])
def test_an_empty_message_is_refused(settings_file, message):
    result = cli(settings_file, "raise", "x", "warning", message)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "tray-alerts: MESSAGE must not be empty: say what happened"


@pytest.mark.parametrize("args, what", [(("ack", "nosuch"), "acknowledged"), (("mute", "nosuch", "2h"), "muted"),
                                        (("unmute", "nosuch"), "unmuted")])
def test_an_event_that_is_not_active_is_named_here_too(settings_file, args, what):
    result = cli(settings_file, *args)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr.startswith(f"tray-alerts: nosuch: not active — nothing {what}")
    assert len(result.stderr.splitlines()) == 1


def test_mute_and_ack_of_an_active_event_here(settings_file):
    assert cli(settings_file, "raise", "disk_full", "warning", "disk at 93%").returncode == 0
    muted = cli(settings_file, "mute", "disk_full", "2h")
    assert muted.returncode == 0 and "disk_full: muted until" in muted.stdout and "[here" in muted.stdout
    acked = cli(settings_file, "ack", "disk_full")
    assert acked.returncode == 0 and "disk_full: acknowledged at" in acked.stdout
    assert cli(settings_file, "unmute", "disk_full").returncode == 0
    assert cli(settings_file, "mute", "disk_full", "soon").stderr.strip() == \
        "tray-alerts: DURATION: not a duration: 'soon' (use e.g. 30s, 5m, 2h)"


def _settings_with_state(tmp_path, state_dir, name="bad.ini"):
    path = tmp_path / name
    path.write_text(f"[alerts]\nstate_dir = {state_dir}\nlog_file = {tmp_path / 'log' / 'app.log'}\n"
                    f"api_port = {_free_port()}\n[channel.desktop]\nenabled = no\n[monitor.disk_root]\nenabled = no\n")
    return path


@pytest.mark.parametrize("layout, problem", [("file", "a file, not a folder"),
                                             ("under_a_file", "cannot be created: {file} is not a folder")])
@pytest.mark.parametrize("command", [("status",), ("run", "--headless"), ("history",), ("check",),
                                     ("raise", "x", "info", "m"), ("check-config",)])
def test_an_unusable_state_folder_is_one_line_exit_2(tmp_path, layout, problem, command):
    file = tmp_path / "not-a-folder"
    file.write_text("")
    state_dir = file if layout == "file" else file / "state"
    settings = _settings_with_state(tmp_path, state_dir)
    if command == ("check",):
        with settings.open("a") as out:
            out.write("[monitor.beat]\ntype = heartbeat\nmax_age = 1h\n")
    result = cli(settings, *command)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result
    assert result.stderr.splitlines() == [f"tray-alerts: state folder {state_dir}: {problem.format(file=file)}"
                                          " (set [alerts] state_dir)"]


def test_folder_problems_are_named(tmp_path, monkeypatch):
    from tray_alerts.paths import folder_problem

    assert folder_problem(tmp_path) is None and folder_problem(tmp_path / "new" / "deeper") is None
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a read-only folder looks to a non-root user
    assert folder_problem(tmp_path) == "not writable"
    assert folder_problem(tmp_path / "new") == f"cannot be created: {tmp_path} is not writable"


@pytest.mark.skipif(os.name != "posix", reason="folder modes are POSIX")
def test_folders_are_created_private_whatever_the_umask(tmp_path):
    settings = tmp_path / "settings.ini"
    state, log = tmp_path / "a" / "b" / "state", tmp_path / "c" / "d" / "app.log"
    settings.write_text(f"[alerts]\nstate_dir = {state}\nlog_file = {log}\n[channel.log]\nfile = "
                        f"{tmp_path / 'alerts.log'}\n[channel.desktop]\nenabled = no\n")
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    result = subprocess.run([sys.executable, "-m", "tray_alerts", "raise", "x", "warning", "m"], capture_output=True,
                            text=True, env=env, timeout=60, preexec_fn=lambda: os.umask(0))
    assert result.returncode == 0, result.stderr
    for folder in (tmp_path / "a", tmp_path / "a" / "b", state, tmp_path / "c", log.parent):
        assert oct(folder.stat().st_mode & 0o777) == oct(0o700), folder


def test_run_names_a_port_another_program_holds_exit_1(tmp_path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = tmp_path / "settings.ini"
        settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                            f"api_port = {port}\n[channel.desktop]\nenabled = no\n")
        result = cli(settings, "run", "--headless")
    assert result.returncode == 1 and result.stderr.strip() == (
        f"tray-alerts: port {port} on 127.0.0.1 is in use by another program (set [alerts] api_port)")


def test_run_while_the_app_holds_the_state_folder_says_already_running_exit_2(settings_file, tmp_path):
    from tray_alerts.instance import InstanceLock

    lock = InstanceLock(tmp_path / "state")
    lock.acquire()
    try:
        result = cli(settings_file, "run", "--headless")
    finally:
        lock.release()
    assert result.returncode == 2 and result.stderr.strip() == f"tray-alerts: already running on {tmp_path / 'state'}"


def test_status_shows_the_worst_50_and_counts_the_rest(settings_file, tmp_path):
    from tray_alerts import Engine

    with Engine({}, {}, tmp_path / "state" / "state.db", retry_in_background=False) as engine:
        for number in range(60):
            engine.raise_alert(f"e{number:02d}", "critical" if number >= 55 else "info", f"m{number}")
    shown = cli(settings_file, "status").stdout.splitlines()
    assert shown[0] == "60 active alerts" and shown[52] == "… and 10 more (tray-alerts status --all)"
    assert [line.split()[0] for line in shown[2:7]] == ["e55", "e56", "e57", "e58", "e59"]  # worst, then oldest
    assert [line.split()[0] for line in shown[7:52]] == [f"e{number:02d}" for number in range(45)]
    every = cli(settings_file, "status", "--all").stdout.splitlines()
    assert every[0] == "60 active alerts" and every[62] == "" and "more" not in "".join(every)


def test_status_reads_the_worst_by_level_then_oldest_then_name(tmp_path):
    from tray_alerts.lifecycle import ActiveEvent
    from tray_alerts.model import Level
    from tray_alerts.state import StateStore

    store = StateStore(tmp_path / "state.db")
    try:
        with store.write() as tx:
            for name, level, since in [("a", "info", 1), ("b", "error", 5), ("c", "error", 2), ("d", "error", 2)]:
                tx.put_event(ActiveEvent(name, Level.parse(level), "m", {}, since=float(since), at=float(since),
                                         last_seen=float(since), episode=f"{name}@1"))
        chosen, total = store.worst_active(3)
        assert [r.event for r in chosen] == ["c", "d", "b"] and total == 4
        assert [r.event for r in store.worst_active(None)[0]] == ["c", "d", "b", "a"]
    finally:
        store.close()


def test_check_config_and_status_say_the_same_of_each_channel(tmp_path):
    from helpers_net import dead_url

    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"[routing]\nwarning = log, hook\n[channel.log]\nfile = {tmp_path / 'alerts.log'}\n"
                        f"[channel.hook]\ntype = webhook\nurl = {dead_url()}\n[channel.desktop]\nenabled = no\n")
    assert cli(settings, "raise", "x", "warning", "m").returncode == 0

    def states(command: str) -> dict[str, str]:
        lines = cli(settings, command).stdout.split("\n\n")[-2 if command == "check-config" else -1].splitlines()
        return {line.split()[0]: line.split(None, 2)[2] for line in lines[2 if command == "check-config" else 1:]}

    in_status, in_check = states("status"), states("check-config")
    assert in_status == in_check and in_status["hook"].startswith("failing: ")
    assert in_status["log"].startswith("ok (last delivery ") and in_status["slack"].startswith("not configured")


def test_an_unavailable_channel_is_logged_once(tmp_path):
    import signal

    settings = tmp_path / "settings.ini"
    settings.write_text(f"[alerts]\nstate_dir = {tmp_path / 'state'}\nlog_file = {tmp_path / 'app.log'}\n"
                        f"api_port = {_free_port()}\n[channel.log]\nfile = {tmp_path / 'alerts.log'}\n"
                        "[channel.desktop]\nenabled = no\n[monitor.disk_root]\nenabled = no\n")
    env = {**os.environ, "TRAY_ALERTS_CONFIG": str(settings)}
    app = subprocess.Popen([sys.executable, "-m", "tray_alerts", "run", "--headless"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        assert "running headless" in _first_line(app, timeout=20)
        assert cli(settings, "raise", "x", "warning", "m").returncode == 0
        assert cli(settings, "raise", "y", "critical", "m").returncode == 0
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=15)
        app.stdout.close()
    lines = (tmp_path / "app.log").read_text().splitlines()
    for channel in ("slack", "email", "sms", "desktop"):
        assert len([line for line in lines if f"channel {channel} " in line]) == 1, (channel, lines)


def test_raise_depends_on_here_and_status_show_the_inhibition(settings_file, tmp_path):
    cli(settings_file, "raise", "router", "critical", "no link")
    kept = cli(settings_file, "raise", "backup", "critical", "NAS unreachable", "--depends-on", "router")
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.splitlines()[0] == ("backup: critical alert fired, inhibited by router — only the log is"
                                           " told; it notifies once router recovers, if it still fires then"
                                           " [here (tray-alerts is not running)]")
    assert "log: delivered" in kept.stdout
    assert "[inhibited by router] NAS unreachable" in cli(settings_file, "status").stdout
    cleared = cli(settings_file, "clear", "router")
    assert cleared.returncode == 0, cleared.stderr
    status = cli(settings_file, "status").stdout
    assert "backup" in status and "[inhibited by" not in status
    logged = (tmp_path / "alerts.log").read_text()
    assert "still firing after router recovered" not in logged  # the log heard the firing already: not again
    refused = cli(settings_file, "raise", "backup", "error", "m", "--depends-on", "backup")
    assert refused.returncode == 2 and "cannot depend on itself" in refused.stderr


def test_history_shows_each_monitors_readings_and_uptime(settings_file, tmp_path):
    import time

    from tray_alerts.readings import record
    from tray_alerts.state import StateStore

    now = time.time()
    store = StateStore(tmp_path / "state" / "state.db")
    with store.write() as tx:
        for minutes, value, bad in [(50, 88.0, False), (40, 92.0, True), (30, 90.0, False), (20, None, True)]:
            record(tx, "disk_root", now - minutes * 60, value, bad)
        record(tx, "api", now - 60, 0.25, False)
    store.close()
    shown = cli(settings_file, "history").stdout.splitlines()
    assert shown[0].split() == ["MONITOR", "NOW", "LAST", "24", "H:", "LOW", "/", "MEAN", "/", "HIGH", "UP", "24",
                                "H", "UP", "7", "D"]
    assert shown[1].split() == ["api", "0.25", "0.25", "/", "0.25", "/", "0.25", "100.0", "%", "100.0", "%"]
    assert shown[2].split() == ["disk_root", "90", "88", "/", "90", "/", "92", "50.0", "%", "50.0", "%"]
    assert "No history yet." in shown
    one = cli(settings_file, "history", "--event", "api").stdout.splitlines()
    assert [line.split()[0] for line in one[:2]] == ["MONITOR", "api"]


def test_check_config_says_the_grace_after_a_resume_and_where_metrics_listen(settings_file, tmp_path):
    shown = cli(settings_file, "check-config")
    assert shown.returncode == 0, shown.stderr
    assert "after a resume from sleep: 2 min before bad readings count" in shown.stdout
    assert "metrics for Prometheus: off ([metrics] enabled = no)" in shown.stdout
    settings_file.write_text(settings_file.read_text().replace("[alerts]\n", "[alerts]\nresume_grace = 0\n")
                             + "[metrics]\nenabled = yes\naddress = 192.168.1.5:9100\n")
    shown = cli(settings_file, "check-config").stdout
    assert "after a resume from sleep: bad readings count at once (resume_grace off)" in shown
    assert "metrics for Prometheus: http://192.168.1.5:9100/metrics (token: metrics-token)" in shown
